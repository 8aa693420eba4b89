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

Two more phases (issue 25), on a store of ``--export-tickets`` (60,000) tickets per backend:

* slowloris: ``--half-open`` (120) connections are opened and held half-open (headers never finished, one more
  header byte every second), then a fresh client (a new connection each time) asks ``/healthz`` 50 times;
  target p95 <= 1 s;
* exports: 6 clients each download the Parquet export of every ticket at once (the service allows 6 at once
  here, the worst case for memory), while the serve process's resident memory is sampled; target peak RSS
  <= 300 MB.

    .venv/bin/python benchmarks/web.py [--sizes 50000,1000000] [--clients 20] [--seconds 30]
                                       [--no-postgres] [--postgres-url URL] [--summary-seconds 5]
                                       [--phases summary,slowloris,exports] [--export-tickets 60000]

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
import secrets
import signal
import socket
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
EXPORTS = 6  # concurrent exports in the export phase
ADMIN_KEY = secrets.token_urlsafe(32)  # the serve subprocess's admin key (exports are for admins)
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
            "summoned_by": "mention" if reply_status else None, "no_reply_reason": None,
            "removed_reason": None, "removed_at": None,  # X's data rules: nothing removed yet
        })
        tw.append({
            "tweet_id": tweet_id, "ticket_id": ids[i], "disposition": "opened", "reason": None,
            "conversation_key": tweet_id, "in_reply_to_tweet_id": None, "author": author,
            "author_key": str(10_000 + i % 50_000), "rule": "united", "text": text, "sentiment": sentiment,
            "topic": topic, "tweet_created_at": created - timedelta(seconds=5), "received_at": created,
            "source": "mentions", "summoned_by": "mention" if reply_status else None,
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
    from tweetdesk.serve import ReplyService

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "Task queue depth is N": the point of the test
    settings = Settings(work_dir=work, database_url=url, web_summary_seconds=summary_seconds,
                        kafka_bootstrap="127.0.0.1:9",  # never contacted: no consumer here
                        desk_export_concurrency=EXPORTS)  # all of the export phase's at once: memory's worst case
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
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
               "TWEETDESK_API_KEY": ADMIN_KEY}
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


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.perf_counter()
    conn.request("GET", path, headers=headers or {})
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


# ---------------------------------------------------------------------------------------------------------------
# Hardening phases (issue 25): half-open connections, concurrent exports
# ---------------------------------------------------------------------------------------------------------------

def run_slowloris(port: int, half_open: int, probes: int = 50) -> dict[str, float]:
    """/healthz from a fresh client (a new connection per request) while ``half_open`` connections are held with
    unfinished headers, one more header byte a second each (so an idle timeout alone does not end them)."""
    held: list[socket.socket] = []
    stop = threading.Event()

    def trickle():
        while not stop.wait(1.0):
            for s in list(held):
                try:
                    s.sendall(b"a")
                except OSError:
                    held.remove(s)
                    s.close()

    for _ in range(half_open):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        held.append(s)
    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    time.sleep(2.0)  # every one of them accepted (or waiting in the backlog) before the first probe
    lat, errors = [], 0
    for _ in range(probes):
        t0 = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/healthz")
            r = conn.getresponse()
            r.read()
            conn.close()
            ok = r.status == 200
        except (OSError, http.client.HTTPException):
            ok = False
        took = time.perf_counter() - t0
        lat.append(took if ok else 10.0)  # a probe that failed counts as the client's timeout
        errors += not ok
        time.sleep(0.05)
    still = len(held)
    stop.set()
    t.join()
    for s in held:
        s.close()
    return {"healthz p50 ms": _pct(lat, 50), "healthz p95 ms": _pct(lat, 95), "healthz errors": errors,
            "half-open held": still}


def _rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of ``pid`` in MB, from /proc."""
    got = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                got[k] = int(v.split()[0]) / 1024
    return got["VmRSS"], got["VmHWM"]


def _download(port: int, out: list, errors: list) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        conn.request("GET", "/api/export?format=parquet&status=all", headers={"X-API-Key": ADMIN_KEY})
        r = conn.getresponse()
        size = 0
        while chunk := r.read(1 << 16):
            size += len(chunk)
        out.append(size) if r.status == 200 else errors.append(str(r.status))
    except (OSError, http.client.HTTPException) as e:
        errors.append(type(e).__name__)
    finally:
        conn.close()


def run_exports(server: "Server", n: int) -> dict[str, float]:
    """``EXPORTS`` Parquet exports of every ticket at once; the serve process's RSS sampled every 50 ms."""
    import pyarrow.parquet as pq

    pid = server.proc.pid
    before, _ = _rss_mb(pid)
    sizes: list[int] = []
    errors: list[str] = []
    peak = before
    t0 = time.perf_counter()
    ts = [threading.Thread(target=_download, args=(server.port, sizes, errors)) for _ in range(EXPORTS)]
    for t in ts:
        t.start()
    while any(t.is_alive() for t in ts):
        peak = max(peak, _rss_mb(pid)[0])
        time.sleep(0.05)
    took = time.perf_counter() - t0
    hwm = _rss_mb(pid)[1]
    status, body, _ = get(server.port, "/api/export?format=parquet&status=all", {"X-API-Key": ADMIN_KEY})
    rows = pq.ParquetFile(__import__("io").BytesIO(body)).metadata.num_rows if status == 200 else -1
    return {"rss before MB": before, "rss peak MB": max(peak, hwm), "exports s": took, "export MB": (
        sum(sizes) / len(sizes) / 1e6 if sizes else 0.0), "export rows": rows, "export errors": len(errors)}


def run_hardening(name: str, url: str, n: int, work: Path, args) -> dict[str, float]:
    say(f"{name}, {n:,} tickets: seeding for the hardening phases")
    seed(url, n)
    server = Server(url, work, args.summary_seconds)
    f: dict[str, float] = {}
    try:
        if "slowloris" in args.phases:
            say(f"{name}: /healthz while {args.half_open} connections are held half-open")
            f.update(run_slowloris(server.port, args.half_open))
        if "exports" in args.phases:
            say(f"{name}: {EXPORTS} concurrent Parquet exports of {n:,} tickets")
            f.update(run_exports(server, n))
    finally:
        server.stop()
    return f


def report_hardening(results: list[tuple[str, int, dict[str, float]]], half_open: int) -> None:
    for name, n, f in results:
        if "healthz p95 ms" in f:
            ok = f["healthz p95 ms"] <= 1000 and not f["healthz errors"]
            print(f"slowloris ({name}): /healthz from a fresh client while {half_open} connections are held half-open "
                  f"({int(f['half-open held'])} still open at the end): p50 {f['healthz p50 ms']:.0f} ms, p95 "
                  f"{f['healthz p95 ms']:.0f} ms, {int(f['healthz errors'])} errors; target p95 <= 1 s: "
                  f"{'met' if ok else 'NOT met'}")
        if "rss peak MB" in f:
            ok = f["rss peak MB"] <= 300 and not f["export errors"] and f["export rows"] == n
            print(f"exports ({name}): {EXPORTS} concurrent Parquet exports of {n:,} tickets ({f['export MB']:.1f} MB "
                  f"each, {int(f['export rows']):,} rows) in {f['exports s']:.1f} s, {int(f['export errors'])} errors: "
                  f"serve RSS {f['rss before MB']:.0f} MB before, peak {f['rss peak MB']:.0f} MB; target peak <= 300 MB: "
                  f"{'met' if ok else 'NOT met'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="50000,1000000", help="store sizes (tickets), comma-separated")
    ap.add_argument("--clients", type=int, default=20, help="concurrent summary clients")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each flood")
    ap.add_argument("--summary-seconds", type=float, default=5.0, help="TWEETDESK_WEB_SUMMARY_SECONDS for the service")
    ap.add_argument("--postgres-url", help="a PostgreSQL server you own (a database per size is created there)")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--phases", default="summary,slowloris,exports",
                    help="which phases: summary (the flood per size), slowloris, exports; comma-separated")
    ap.add_argument("--export-tickets", type=int, default=60_000, help="store size of the slowloris and export phases")
    ap.add_argument("--half-open", type=int, default=120, help="connections held half-open in the slowloris phase")
    ap.add_argument("--serve", metavar="URL", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.work, args.summary_seconds)
        return

    args.phases = {p.strip() for p in args.phases.split(",") if p.strip()}
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()] if "summary" in args.phases else []
    hard = args.export_tickets if args.phases & {"slowloris", "exports"} else None
    results: list[tuple[str, int, dict[str, float]]] = []
    hardening: list[tuple[str, int, dict[str, float]]] = []
    cluster = None
    with tempfile.TemporaryDirectory(prefix="tweetdesk-bench-web-") as tmp:
        work = Path(tmp)
        print(f"web benchmark ({', '.join(sorted(args.phases))}): {args.clients} clients on /web/api/summary for "
              f"{args.seconds:.0f} s while one client times /t/<id>; summary shared for {args.summary_seconds:g} s; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
        if not args.no_sqlite:
            for n in sizes:
                results.append(("SQLite", n, run("SQLite", f"sqlite:///{work / f'tickets-{n}.db'}", n, work, args)))
                (work / f"tickets-{n}.db").unlink(missing_ok=True)
            if hard:
                db = work / "tickets-hardening.db"
                hardening.append(("SQLite", hard, run_hardening("SQLite", f"sqlite:///{db}", hard, work, args)))
                db.unlink(missing_ok=True)
        if not args.no_postgres and (sizes or hard):
            try:
                names = [f"bench_web_{n}" for n in sizes] + (["bench_web_hardening"] if hard else [])
                if args.postgres_url:
                    from tweetdesk.tickets.store import normalise_url

                    urls = [_pg_database(normalise_url(args.postgres_url), name) for name in names]
                else:
                    from tests.fixtures.store import PostgresCluster

                    cluster = PostgresCluster(fsync=True).start()
                    urls = [cluster.create_database(name) for name in names]
                for n, url in zip(sizes, urls):
                    results.append(("PostgreSQL", n, run("PostgreSQL", url, n, work, args)))
                if hard:
                    hardening.append(("PostgreSQL", hard, run_hardening("PostgreSQL", urls[-1], hard, work, args)))
            except Exception as e:  # no server here: say so, keep the SQLite figures
                print(f"PostgreSQL skipped: {e}", flush=True)
            finally:
                if cluster is not None:
                    cluster.stop()

    if results:
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
    report_hardening(hardening, args.half_open)


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
