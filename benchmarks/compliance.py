"""Benchmark: X's data rules — one compliance cycle over N stored IDs, and erasing one author from M tickets and
M Parquet rows (issue target: <= 60 s each on this 2-core machine for 100k IDs / 1M tickets).

Seeding writes the ticket store's ``tickets`` and ``tweets`` rows directly (bulk INSERTs, the columns
``add_tickets`` fills) because seeding a million tickets through ``add_tickets`` alone takes minutes; the
measured paths are the real ones:

  * compliance  ``tweetdesk.compliance.run_cycle`` against the X API stand-in (tests/fixtures/xapi.py, in this
    process over HTTP): both jobs (posts, authors) created, IDs uploaded, polled, results downloaded and 1% of
    the posts plus 0.1% of the authors removed through ``tickets.removal``.
  * erase       ``tickets.erase.erase_author`` for an author of ``--author-posts`` posts, then
    ``stream.rewrite.rewrite`` over ``--tickets`` Parquet rows in ``--partitions`` day=/batch_id= partitions
    (Spark ``local[2]``; the session's start is printed apart).

    .venv/bin/python benchmarks/compliance.py [--ids 100000] [--tickets 1000000] [--partitions 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the X API stand-in lives with the tests

from tweetdesk.tickets import schema  # noqa: E402
from tweetdesk.tickets.store import TicketStore  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
TOPICS = ["Baggage Issue", "Flight Delay", "Customer Experience", "Extra Charges"]


def seed(store: TicketStore, n: int, authors: int, special: str, special_posts: int) -> None:
    batch = 20_000
    for start in range(0, n, batch):
        tickets, tweets = [], []
        for i in range(start, min(n, start + batch)):
            tid, a = str(10**15 + i), i % authors
            author, aid = (special, "9" * 12) if i < special_posts else (f"cust{a}", str(10**9 + a))
            at = T0 + timedelta(seconds=i)
            tickets.append(dict(ticket_id=f"T{i:015d}", tweet_id=tid, author=author, author_id=aid,
                                text=f"@united ticket text {i}", sentiment="negative", topic=TOPICS[i % 4],
                                entities=[], status="open", attempts=0, created_at=at, updated_at=at,
                                tweet_created_at=at, message_count=1, summoned_by="mention"))
            tweets.append(dict(tweet_id=tid, ticket_id=f"T{i:015d}", disposition="opened", conversation_key=tid,
                               author=author, author_key=aid, text=f"@united ticket text {i}",
                               tweet_created_at=at, received_at=at, source="mentions"))
        with store.transaction(write=True) as conn:
            conn.execute(schema.tickets.insert(), tickets)
            conn.execute(schema.tweets_table.insert(), tweets)


def write_parquet(root: Path, n: int, partitions: int, special_posts: int) -> None:
    per = n // partitions
    for p in range(partitions):
        ids = range(p * per, (p + 1) * per)
        d = root / f"day=2026-01-{p % 28 + 1:02d}" / f"batch_id={p}"
        d.mkdir(parents=True)
        pq.write_table(pa.table({
            "id": [str(10**15 + i) for i in ids], "text": [f"@united ticket text {i}" for i in ids],
            "author": ["special" if i < special_posts else f"cust{i % 1000}" for i in ids],
            "author_id": [str(10**9 + i % 1000) for i in ids], "topic": [TOPICS[i % 4] for i in ids],
            "sentiment": ["negative"] * per}), d / "part-0.parquet")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ids", type=int, default=100_000)
    ap.add_argument("--tickets", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=100)
    ap.add_argument("--author-posts", type=int, default=25)
    a = ap.parse_args()
    from tests.fixtures.xapi import XApiStandIn
    from tweetdesk.tickets.compliance import run_cycle
    from tweetdesk.tickets.erase import erase_author
    from tweetdesk.x.compliance import ComplianceClient

    with tempfile.TemporaryDirectory(prefix="tweetdesk-bench-compliance-") as tmp:
        tmp = Path(tmp)
        # --- one compliance cycle over --ids stored posts ----------------------------------------
        store = TicketStore(f"sqlite:///{tmp / 'c.db'}")
        t = time.perf_counter()
        seed(store, a.ids, max(1, a.ids // 10), "special", 0)
        print(f"seeded {a.ids:,} tickets in {time.perf_counter() - t:.1f} s")
        xapi = XApiStandIn().start()
        for i in range(0, a.ids, 100):
            xapi.compliance.mark_tweet(str(10**15 + i), "deleted")
        for u in range(0, a.ids // 10, 1000):
            xapi.compliance.mark_user(str(10**9 + u), "suspended")
        t = time.perf_counter()
        r = run_cycle(None, store, ComplianceClient(xapi.base_url, "bench", poll_seconds=0))
        took = time.perf_counter() - t
        print(f"compliance cycle: {r.checked['tweets']:,} post IDs + {r.checked['users']:,} author IDs, "
              f"{len(r.removed_posts):,} posts removed in {took:.1f} s")
        xapi.stop()
        store.close()
        # --- erase one author from --tickets tickets + Parquet rows --------------------------------
        store = TicketStore(f"sqlite:///{tmp / 'e.db'}")
        t = time.perf_counter()
        seed(store, a.tickets, 1000, "special", a.author_posts)
        root = tmp / "parquet"
        write_parquet(root, a.tickets, a.partitions, a.author_posts)
        print(f"seeded {a.tickets:,} tickets and Parquet rows in {time.perf_counter() - t:.1f} s")
        from tweetdesk.config import Settings
        from tweetdesk.stream.rewrite import rewrite
        from tweetdesk.stream.spark import build_spark

        t = time.perf_counter()
        spark = build_spark(Settings(spark_master="local[2]"), app_name="bench-compliance")
        print(f"Spark session started in {time.perf_counter() - t:.1f} s (not counted)")
        t = time.perf_counter()
        er = erase_author(store, "special", actor="bench", key=b"k" * 32)
        t_store = time.perf_counter() - t
        pr = rewrite(spark, root, er.tweet_ids)
        took = time.perf_counter() - t
        print(f"erase: {len(er.tweet_ids)} posts of one author out of {a.tickets:,} tickets in {t_store:.1f} s; "
              f"with the Parquet rewrite ({pr.rows_blanked} rows in {len(pr.partitions)} of {a.partitions} "
              f"partitions) {took:.1f} s (target <= 60 s)")
        spark.stop()
        store.close()


if __name__ == "__main__":
    main()
