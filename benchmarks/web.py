"""Benchmark: the dashboard's summary under a crowd of dashboards, and the public tracking page meanwhile.

For each store size (default 50,000 and 1,000,000 tickets) and backend (SQLite, and a throwaway PostgreSQL):

1. a fresh store is seeded in bulk (executemany on SQLite, COPY on PostgreSQL, secondary indexes built after
   the load): tickets over 90 days with their intake rows and replies, and a few dead letters;
2. the reply service runs as ``tweetdesk serve`` does (``ReplyService``: waitress, 8 threads, the dry-run
   poster; no Kafka consumer) in a subprocess;
3. ``--clients`` (20) clients request ``/web/api/summary`` back to back for ``--seconds`` (30), on kept-alive
   connections, from two processes; meanwhile one more client, in a process of its own, requests
   ``/t/<id>`` for random seeded tickets back to back.

Printed: requests/s and p50/p95 latency of both, and how long the first summary took (the only request
that waits for one). Targets (issue 12): summary p95 <= 100 ms at 1M tickets, tracking page p95 <= 50 ms
during the flood. Client and server share the machine (and here, its 2 cores): rerun where you deploy.

    .venv/bin/python benchmarks/web.py [--sizes 50000,1000000] [--clients 20] [--seconds 30]
                                       [--no-postgres] [--postgres-url URL] [--summary-seconds 5]

PostgreSQL: ``--postgres-url`` (a server you own; one database per size is created and dropped), else a
throwaway server from Debian's binaries through tests/fixtures/store.py; skipped with the reason where
neither works. Progress goes to stderr, figures to stdout.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.fixtures.store (throwaway PostgreSQL)

TOPICS = ("Baggage Issue", "Customer Experience", "Delay and Customer Service", "Extra Charges", "Online Booking",
          "Reschedule and Refund", "Reservation Issue", "Seating Preferences", "unclassifiable")
SENTIMENTS = ("negative", "negative", "negative", "neutral", "positive")  # complaints dominate
# status of the ticket, and of its reply (None = no reply row)
STATUSES = [("replied", "dry_run")] * 80 + [("resolved", "dry_run")] * 10 + [("open", None)] * 6 + [("failed", "failed")] * 4
CHUNK = 50_000
FIRST_ID = 1_700_000_000_000_000_000


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# Seeding
# ---------------------------------------------------------------------------------------------------------------

def ticket_ids(n: int) -> list[str]:
    from tweetdesk.tickets.ids import ticket_id_for

    return [ticket_id_for(str(FIRST_ID + i), TOPICS[i % len(TOPICS)], key=b"bench") for i in range(n)]


def _rows(start: int, stop: int, n: int, ids: list[str], now: datetime):
    """(tickets, tweets, replies) rows for tickets start..stop-1 of n, as dicts keyed by column name."""
    span = timedelta(days=90)
    tk, tw, rp = [], [], []
    for i in range(start, stop):
        tweet_id = str(FIRST_ID + i)
        topic = TOPICS[i % len(TOPICS)]
        sentiment = SENTIMENTS[(i * 7) % len(SENTIMENTS)]
        status, reply_status = STATUSES[(i * 13) % len(STATUSES)]
        created = now - span + span * (i / n)
        author = f"user_{i % 50_000}"
        text = f"@united flight UA{100 + i % 900} delayed again, bag missing #{i}"
        reply = f"@{author} Sorry about that. Your ticket is {ids[i]}; an agent follows up." if reply_status else None
        tk.append({
            "ticket_id": ids[i], "tweet_id": tweet_id, "author": author, "author_id": str(10_000 + i % 50_000),
            "text": text, "lang": "en", "brand": "united", "rule": "united", "tweet_created_at": created - timedelta(seconds=5),
            "sentiment": sentiment, "sentiment_score": 0.9, "topic": topic, "topic_score": 0.8, "entities": "[]",
            "model_version": "bench", "status": status, "reply_text": reply, "posted_reply_id": None,
            "attempts": 1 if reply_status else 0, "last_error": "X said 503" if status == "failed" else None,
            "conversation_id": tweet_id, "in_reply_to_tweet_id": None, "in_reply_to_user_id": None,
            "created_at": created, "updated_at": created + timedelta(seconds=2),
            "replied_at": created + timedelta(seconds=2) if status in ("replied", "resolved") else None,
            "resolved_at": created + timedelta(hours=3) if status == "resolved" else None,
            "message_count": 1, "last_tweet_id": tweet_id,
        })
        tw.append({
            "tweet_id": tweet_id, "ticket_id": ids[i], "disposition": "opened", "reason": None,
            "conversation_key": tweet_id, "in_reply_to_tweet_id": None, "author": author,
            "author_key": str(10_000 + i % 50_000), "rule": "united", "text": text, "sentiment": sentiment,
            "topic": topic, "tweet_created_at": created - timedelta(seconds=5), "received_at": created,
        })
        if reply_status:
            rp.append({
                "id": i + 1, "ticket_id": ids[i], "in_reply_to_tweet_id": tweet_id, "kind": "auto",
                "dedupe_key": f"auto:{ids[i]}", "text": reply, "status": reply_status, "dry_run": True,
                "attempts": 1, "posted_id": None, "error": "X said 503" if reply_status == "failed" else None,
                "not_before": None, "created_at": created, "updated_at": created + timedelta(seconds=2),
                "posted_at": created + timedelta(seconds=2) if reply_status == "dry_run" else None,
                "priority": 3, "cost_usd": None,
            })
    return tk, tw, rp


def seed(url: str, n: int) -> float:
    """Fill an empty, migrated store with ``n`` tickets; returns the seconds it took."""
    import sqlalchemy as sa
    from tqdm import tqdm

    from tweetdesk.records import DeadLetter
    from tweetdesk.tickets.store import TicketStore, replies, tickets, tweets_table

    t0 = time.perf_counter()
    store = TicketStore(url)
    tables = (tickets, tweets_table, replies)
    now = datetime.now(timezone.utc)
    ids = ticket_ids(n)
    indexes = [ix for t in tables for ix in t.indexes]
    with store.engine.connect() as conn:
        conn.execution_options(tweetdesk_write=True)
        with conn.begin():
            for ix in indexes:  # built once after the load: much faster than kept up row by row
                ix.drop(conn)
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        if store.dialect == "sqlite":
            cur.execute("PRAGMA synchronous=OFF")
            cur.execute("PRAGMA cache_size=-400000")  # 400 MB: ticket IDs arrive in random order for the primary key
            cur.execute("BEGIN")
        cols = {t.name: [c.name for c in t.columns] for t in tables}
        with tqdm(total=n, desc=f"seeding {store.dialect}", unit=" tickets", file=sys.stderr, leave=False) as bar:
            for start in range(0, n, CHUNK):
                stop = min(n, start + CHUNK)
                for table, rows in zip(tables, _rows(start, stop, n, ids, now)):
                    names = cols[table.name]
                    if store.dialect == "sqlite":
                        q = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
                        cur.executemany(q, [tuple(_sqlite_value(r[c]) for c in names) for r in rows])
                    else:
                        with cur.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
                            for r in rows:
                                copy.write_row([r[c] for c in names])
                bar.update(stop - start)
        if store.dialect == "postgresql":
            cur.execute("SELECT setval(pg_get_serial_sequence('replies', 'id'), (SELECT max(id) FROM replies))")
        raw.commit()
        if store.dialect == "sqlite":
            cur.execute("PRAGMA synchronous=NORMAL")
    finally:
        raw.close()
    with store.engine.connect() as conn:
        conn.execution_options(tweetdesk_write=True)
        with conn.begin():
            for ix in tqdm(indexes, desc="indexes", file=sys.stderr, leave=False):
                ix.create(conn)

    if store.dialect == "postgresql":  # what autovacuum would have done by now (SQLite is never analyzed)
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
    store.record_dead_letters([DeadLetter.of(b"{oops %d" % i, "not JSON", "parse") for i in range(n // 1000)])
    store.close()
    return time.perf_counter() - t0


def _sqlite_value(v):
    if isinstance(v, datetime):  # the store keeps naive UTC on SQLite (UTCDateTime)
        return v.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
    if isinstance(v, bool):
        return int(v)
    return v


# ---------------------------------------------------------------------------------------------------------------
# The server (a subprocess: `benchmarks/web.py --serve`)
# ---------------------------------------------------------------------------------------------------------------

def serve(url: str, work: Path, summary_seconds: float) -> None:
    import logging

    from tweetdesk.config import Settings
    from tweetdesk.app import ReplyService

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "Task queue depth is N": the point of the test
    settings = Settings(work_dir=work, database_url=url, web_summary_seconds=summary_seconds,
                        kafka_bootstrap="127.0.0.1:9")  # never contacted: no consumer here
    svc = ReplyService(settings, consume=False, port=0).start()
    print(f"listening {svc.port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        sys.stdin.read()  # until the benchmark closes our stdin (or SIGTERM)
    finally:
        svc.stop()


class Server:
    def __init__(self, url: str, work: Path, summary_seconds: float):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", url, "--work", str(work), "--summary-seconds", str(summary_seconds)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )
        line = self.proc.stdout.readline()
        if not line.startswith("listening "):
            self.stop()
            raise RuntimeError(f"the service did not start: {line!r}")
        self.port = int(line.split()[1])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------------------------------------------------------
# Clients
# ---------------------------------------------------------------------------------------------------------------

def _client_loop(port: int, paths, deadline: float, out: list, errors: list) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    rng = random.Random()
    while time.time() < deadline:
        path = paths if isinstance(paths, str) else rng.choice(paths)
        t0 = time.perf_counter()
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
        except (OSError, http.client.HTTPException) as e:
            errors.append(type(e).__name__)
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            continue
        took = time.perf_counter() - t0
        if resp.status != 200:
            errors.append(str(resp.status))
        else:
            out.append(took)
    conn.close()


def _worker(port: int, paths, threads: int, start_at: float, deadline: float, q) -> None:
    """One client process: ``threads`` clients; puts (latencies, errors) on ``q``."""
    out: list[float] = []
    errors: list[str] = []
    time.sleep(max(0.0, start_at - time.time()))
    ts = [threading.Thread(target=_client_loop, args=(port, paths, deadline, out, errors)) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    q.put((out, errors))


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] * 1000


def run_flood(port: int, track_paths: list[str], clients: int, seconds: float) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    qs = {"summary": ctx.Queue(), "track": ctx.Queue()}
    start_at = time.time() + 2.0  # the spawned interpreters need a moment to start
    deadline = start_at + seconds
    half = clients // 2
    procs = [ctx.Process(target=_worker, args=(port, "/web/api/summary", k, start_at, deadline, qs["summary"]))
             for k in (half, clients - half) if k]
    procs.append(ctx.Process(target=_worker, args=(port, track_paths, 1, start_at, deadline, qs["track"])))
    for p in procs:
        p.start()
    got = {"summary": ([], []), "track": ([], [])}
    for kind, n in (("summary", len(procs) - 1), ("track", 1)):
        for _ in range(n):
            lat, err = qs[kind].get()
            got[kind][0].extend(lat)
            got[kind][1].extend(err)
    for p in procs:
        p.join()
    f = {}
    for kind, (lat, err) in got.items():
        f[f"{kind} req/s"] = len(lat) / seconds
        f[f"{kind} p50 ms"] = _pct(lat, 50)
        f[f"{kind} p95 ms"] = _pct(lat, 95)
        f[f"{kind} errors"] = len(err)
    return f


def get(port: int, path: str) -> tuple[int, bytes, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.perf_counter()
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, body, time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------------------------

def run(name: str, url: str, n: int, work: Path, args) -> dict[str, float]:
    say(f"{name}, {n:,} tickets: seeding")
    seeded = seed(url, n)
    say(f"{name}, {n:,} tickets: seeded in {seeded:.1f} s; serving")
    server = Server(url, work, args.summary_seconds)
    try:
        status, body, first = get(server.port, "/web/api/summary")
        if status != 200 or json.loads(body)["totals"]["tickets"] != n:
            raise RuntimeError(f"summary answered {status}: {body[:200]!r}")
        from tweetdesk.tickets.ids import ticket_id_for

        rng = random.Random(12)
        picks = [rng.randrange(n) for _ in range(2000)]
        track = [f"/t/{ticket_id_for(str(FIRST_ID + i), TOPICS[i % len(TOPICS)], key=b'bench')}" for i in picks]
        assert get(server.port, track[0])[0] == 200
        say(f"{name}, {n:,} tickets: first summary {first * 1000:.0f} ms; {args.clients} clients for {args.seconds:.0f} s")
        f = run_flood(server.port, track, args.clients, args.seconds)
    finally:
        server.stop()
    f["seed s"] = seeded
    f["first summary ms"] = first * 1000
    return f


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="50000,1000000", help="store sizes (tickets), comma-separated")
    ap.add_argument("--clients", type=int, default=20, help="concurrent summary clients")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each flood")
    ap.add_argument("--summary-seconds", type=float, default=5.0, help="TWEETDESK_WEB_SUMMARY_SECONDS for the service")
    ap.add_argument("--postgres-url", help="a PostgreSQL server you own (a database per size is created there)")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--serve", metavar="URL", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.work, args.summary_seconds)
        return

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    results: list[tuple[str, int, dict[str, float]]] = []
    cluster = None
    with tempfile.TemporaryDirectory(prefix="tweetdesk-bench-web-") as tmp:
        work = Path(tmp)
        print(f"web benchmark: {args.clients} clients on /web/api/summary for {args.seconds:.0f} s while one client "
              f"times /t/<id>; summary shared for {args.summary_seconds:g} s; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
        if not args.no_sqlite:
            for n in sizes:
                results.append(("SQLite", n, run("SQLite", f"sqlite:///{work / f'tickets-{n}.db'}", n, work, args)))
                (work / f"tickets-{n}.db").unlink(missing_ok=True)
        if not args.no_postgres:
            try:
                if args.postgres_url:
                    from tweetdesk.tickets.store import normalise_url

                    urls = [_pg_database(normalise_url(args.postgres_url), f"bench_web_{n}") for n in sizes]
                else:
                    from tests.fixtures.store import PostgresCluster

                    cluster = PostgresCluster(fsync=True).start()
                    urls = [cluster.create_database(f"bench_web_{n}") for n in sizes]
                for n, url in zip(sizes, urls):
                    results.append(("PostgreSQL", n, run("PostgreSQL", url, n, work, args)))
            except Exception as e:  # no server here: say so, keep the SQLite figures
                print(f"PostgreSQL skipped: {e}", flush=True)
            finally:
                if cluster is not None:
                    cluster.stop()

    cols = ["summary req/s", "summary p50 ms", "summary p95 ms", "track req/s", "track p50 ms", "track p95 ms",
            "first summary ms", "seed s"]
    print(f"\n{'backend':<11}{'tickets':>10}" + "".join(f"{c:>17}" for c in cols) + f"{'errors':>8}")
    for name, n, f in results:
        errors = int(f["summary errors"] + f["track errors"])
        print(f"{name:<11}{n:>10,}" + "".join(f"{f[c]:>17,.1f}" for c in cols) + f"{errors:>8}")
    big = [(name, f) for name, n, f in results if n >= 1_000_000]
    for name, f in big:
        ok = f["summary p95 ms"] <= 100 and f["track p95 ms"] <= 50
        print(f"target at 1M ({name}): summary p95 <= 100 ms ({f['summary p95 ms']:.0f}), tracking p95 <= 50 ms "
              f"({f['track p95 ms']:.0f}): {'met' if ok else 'NOT met'}")


def _pg_database(url: str, name: str) -> str:
    import sqlalchemy as sa

    eng = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    eng.dispose()
    return str(sa.engine.make_url(url).set(database=name).render_as_string(hide_password=False))


if __name__ == "__main__":
    main()
