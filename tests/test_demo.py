"""The demo's latency figures (the demo itself runs with `make demo`; its figures are printed, not asserted)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd

from tweetdesk.demo import reply_latency
from tweetdesk.tickets.store import StoredReply

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


def _reply(i: int, tweet_id: str, posted_after_s: float | None) -> StoredReply:
    posted = None if posted_after_s is None else T0 + timedelta(seconds=posted_after_s)
    return StoredReply(id=i, ticket_id=f"GEN-{i}", tweet_id=tweet_id, text="thanks", status="dry_run",
                       created_at=T0, updated_at=T0, posted_at=posted)


def test_reply_latency_runs_from_ingest_to_the_outbox_per_answered_tweet():
    # What read_enriched gives: one row per tweet (a replayed micro-batch can repeat one), ingest stamps in UTC.
    df = pd.DataFrame({
        "id": ["1", "2", "3", "3"],
        "ingested_at": pd.to_datetime([T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2),
                                       T0 + timedelta(seconds=2)], utc=True),
    })
    outbox = [
        _reply(1, "1", 1.5),  # 1.5 s after its tweet
        _reply(2, "3", 4.0),  # the reply to the newest tweet of a thread: from that tweet's ingest, 2 s
        _reply(3, "99", 3.0),  # a tweet not in this Parquet (another run): no figure
        _reply(4, "2", None),  # not in the outbox yet: no figure
    ]
    lat = reply_latency(df, outbox)
    assert lat.sort_index().to_dict() == {"1": 1.5, "3": 2.0}
