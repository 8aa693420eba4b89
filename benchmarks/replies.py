"""Benchmark: tickets created and replies recorded per second (dry-run), SQLite and PostgreSQL.

Runs the reply service's own code path without Kafka (the broker is measured elsewhere): each batch
of serialized enriched tweets goes through ``ReplyConsumer.process`` — parse, template, one store
transaction opening tickets and queuing replies, then the dry-run poster recording the replies —
exactly what the service does between reading a batch and committing its offsets.

Figures printed per backend:
  * tickets/s      — ``add_tickets`` alone (parse + render + insert-if-absent + queue reply)
  * replies/s      — the dry-run poster draining those queued replies (``Poster.step``)
  * end-to-end/s   — ``ReplyConsumer.process`` on a fresh store (tickets + reply outcome per record)
  * replays/s      — the same records delivered again (all duplicates: nothing changes)
Targets: ≥ 1,000/s end to end with SQLite, ≥ 2,500/s with PostgreSQL (the production store). The load average
is printed with the figures (the machine may be shared).

PostgreSQL: ``--postgres-url URL`` (an empty database you own), else a throwaway server is started
from Debian's binaries (fsync on, like production) through tests/fixtures/store.py; skipped with the
reason where neither works.

    .venv/bin/python benchmarks/replies.py [--n 20000] [--batch 500] [--postgres-url URL] [--no-postgres]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.fixtures.store (throwaway PostgreSQL)

from tweetdesk.config import Settings  # noqa: E402
from tweetdesk.records import TOPICS, EnrichedTweet  # noqa: E402
from tweetdesk.reply.consumer import ReplyConsumer  # noqa: E402
from tweetdesk.reply.poster import Poster  # noqa: E402
from tweetdesk.reply.templates import ReplyTemplates  # noqa: E402
from tweetdesk.tickets.ids import ticket_id_for  # noqa: E402
from tweetdesk.tickets.store import TicketStore  # noqa: E402

SENT = ("negative", "neutral", "positive")


def make_records(n: int, offset: int = 0) -> list[bytes]:
    out = []
    base = 570_000_000_000_000_000
    for i in range(n):
        tid = str(base + offset + i)
        topic = TOPICS[i % len(TOPICS)]
        tw = EnrichedTweet(
            id=tid,
            text=f"@united flight UA{100 + i % 900} delayed again, bag missing #{i}",
            author=f"user_{i % 5000}",
            created_at=datetime(2015, 2, 24, tzinfo=timezone.utc),
            clean_text="flight delay bag miss",
            sentiment=SENT[i % 3],
            sentiment_score=0.9,
            topic=topic,
            topic_score=0.8,
            entities=[{"text": f"UA{100 + i % 900}", "label": "FLIGHT", "start": 15, "end": 20}],
            ticket_id=ticket_id_for(tid, topic, key=b"bench"),
            model_version="bench",
        )
        out.append(tw.model_dump_json().encode())
    return out


def batches(items, size):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def run_backend(name: str, url: str, n: int, batch: int, work: Path) -> dict[str, float]:
    # The tweets mention @united: as our account, X lets it reply to every one of them.
    settings = Settings(work_dir=work, database_url=url, our_handles=["united"])
    templates = ReplyTemplates.load()
    figures: dict[str, float] = {}

    # 1) tickets alone, then 2) the dry-run poster draining the queued replies.
    store = TicketStore(url)
    poster = Poster(settings, store, live=False)
    records = [EnrichedTweet.model_validate_json(r) for r in make_records(n)]
    t0 = time.perf_counter()
    for chunk in tqdm(list(batches(records, batch)), desc=f"{name}: tickets", unit="batch", leave=False):
        store.add_tickets(chunk, templates.render)
    figures["tickets/s"] = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    with tqdm(total=n, desc=f"{name}: replies", unit="reply", leave=False) as bar:
        done = 0
        while done < n:
            before = poster.counts["dry_run"]
            poster.step()
            step = poster.counts["dry_run"] - before
            if step == 0:
                break
            done += step
            bar.update(step)
    figures["replies/s"] = done / (time.perf_counter() - t0)
    assert store.stats()["replies_by_status"].get("dry_run") == n, "not every reply was recorded"
    store.close()

    # 3) end to end through the consumer's batch path on a fresh store, 4) then a full replay.
    url2 = fresh(url, work)
    store = TicketStore(url2)
    poster = Poster(settings.model_copy(update={"database_url": url2}), store, live=False)
    consumer = ReplyConsumer(settings, store, poster, templates)
    raw = make_records(n, offset=n)
    values = [(v, {"partition": 0, "offset": i}) for i, v in enumerate(raw)]
    t0 = time.perf_counter()
    for chunk in tqdm(list(batches(values, batch)), desc=f"{name}: end-to-end", unit="batch", leave=False):
        consumer.process(chunk)
    figures["end-to-end/s"] = n / (time.perf_counter() - t0)
    stats = store.stats()
    assert stats["tickets"] == n and stats["replies_by_status"].get("dry_run") == n, stats
    t0 = time.perf_counter()
    for chunk in tqdm(list(batches(values, batch)), desc=f"{name}: replay", unit="batch", leave=False):
        consumer.process(chunk)
    figures["replays/s"] = n / (time.perf_counter() - t0)
    assert store.stats() == stats, "a replay changed the store"
    store.close()
    return figures


_pg_cluster = None


def fresh(url: str, work: Path) -> str:
    """A second, empty database of the same kind."""
    if url.startswith("sqlite"):
        return f"sqlite:///{work / 'tickets-e2e.db'}"
    if _pg_cluster is not None:
        return _pg_cluster.create_database()
    # A user-supplied server: reuse the database, emptied.
    import sqlalchemy as sa

    from tweetdesk.tickets.store import normalise_url

    eng = sa.create_engine(normalise_url(url))
    with eng.begin() as c:
        c.execute(sa.text("TRUNCATE replies, tickets"))
    eng.dispose()
    return url


def main() -> None:
    global _pg_cluster
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20_000, help="records per phase")
    ap.add_argument("--batch", type=int, default=500, help="records per consumer batch (one transaction)")
    ap.add_argument("--postgres-url", help="an empty PostgreSQL database to use (else a throwaway server)")
    ap.add_argument("--no-postgres", action="store_true")
    args = ap.parse_args()

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="tweetdesk-bench-") as tmp:
        work = Path(tmp)
        print(f"reply benchmark: {args.n:,} records per phase, batches of {args.batch}, dry-run", flush=True)
        results["SQLite (WAL file)"] = run_backend("sqlite", f"sqlite:///{work / 'tickets.db'}", args.n, args.batch, work)
        if not args.no_postgres:
            url = args.postgres_url
            try:
                if not url:
                    from tests.fixtures.store import PostgresCluster

                    _pg_cluster = PostgresCluster(fsync=True).start()
                    url = _pg_cluster.create_database()
                results["PostgreSQL 15 (fsync on)" if _pg_cluster else "PostgreSQL"] = run_backend(
                    "postgresql", url, args.n, args.batch, work
                )
            except Exception as e:  # no server here: say so, keep the SQLite figures
                print(f"PostgreSQL skipped: {e}", flush=True)
            finally:
                if _pg_cluster is not None:
                    _pg_cluster.stop()

    cols = ["tickets/s", "replies/s", "end-to-end/s", "replays/s"]
    print(f"\n{'backend':<28}" + "".join(f"{c:>15}" for c in cols))
    for name, f in results.items():
        print(f"{name:<28}" + "".join(f"{f[c]:>15,.0f}" for c in cols))
    e2e = results["SQLite (WAL file)"]["end-to-end/s"]
    load = f"load {os.getloadavg()[0]:.1f}"
    print(f"\ntarget ≥ 1,000/s end to end with SQLite: {'met' if e2e >= 1000 else 'NOT met'} ({e2e:,.0f}/s; {load})")
    for name, f in results.items():
        if name.startswith("PostgreSQL"):
            e2e = f["end-to-end/s"]
            print(f"target ≥ 2,500/s end to end with PostgreSQL: {'met' if e2e >= 2500 else 'NOT met'} "
                  f"({e2e:,.0f}/s; {load})")


if __name__ == "__main__":
    main()
