"""The dashboard's queries on a real ticket store, on SQLite and on PostgreSQL (the time buckets use
each backend's own date arithmetic, so both must agree)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tests.fixtures.browser import make_tweet, seed_store
from tweetdesk.config import Settings
from tweetdesk.records import DeadLetter
from tweetdesk.reply.templates import ReplyTemplates
from tweetdesk.tickets.intake import Intake
from tweetdesk.tickets.priority import priority_of
from tweetdesk.web import queries
from tweetdesk.web.queries import BudgetFigures, Filters, FloodReason


def test_summary_counts_match_the_store(store):
    seeded = seed_store(store, n=24)
    s = queries.summary(store, Filters(), newest=5)
    assert s.tickets == s.tweets == 24
    for status, n in seeded["counts"].items():
        assert s.by_status[status] == n
    assert set(s.by_status) >= {"open", "replied", "resolved", "failed"}
    expected_topics: dict[str, int] = {}
    for tw in seeded["tweets"]:
        expected_topics[tw.topic] = expected_topics.get(tw.topic, 0) + 1
    assert s.by_topic == expected_topics
    assert sum(s.by_sentiment.values()) == 24
    assert len(s.newest) == 5
    first = store.get_ticket(s.newest[0].ticket_id)
    assert s.newest[0].reply_text == first.reply_text and s.newest[0].reply_text
    assert s.newest[0].entities == first.entities
    assert s.newest[0].reply_status in ("queued", "dry_run", "failed")

    # A ticket that arrives later is first in the list.
    later = store.clock() + timedelta(minutes=1)
    store.clock = lambda: later
    new = make_tweet(99)
    store.add_tickets([new])
    s = queries.summary(store, Filters(), newest=5)
    assert s.newest[0].ticket_id == new.ticket_id and s.tickets == 25


def test_filters_apply_to_every_figure(store):
    seed_store(store, n=24)
    f = Filters.parse("Baggage Issue", "negative")
    s = queries.summary(store, f)
    page = store.list_tickets(topic="Baggage Issue", sentiment="negative", limit=100)
    assert s.tickets == page.total == 3
    assert s.tweets == 24  # tweets are not filtered: they are the intake
    assert set(s.by_topic) == {"Baggage Issue"}
    assert set(s.by_sentiment) == {"negative"}
    assert {t.ticket_id for t in s.newest} == {t.ticket_id for t in page.items}
    assert sum(sum(v) for v in s.over_time.series.values()) == 3
    # Unknown filter values are ignored, not an error.
    assert Filters.parse("Lost Dogs", "furious") == Filters()


def test_tweets_count_the_intake_not_the_tickets(store):
    """A thread's later tweets join its ticket: more tweets than tickets on the dashboard."""
    from tests.fixtures.store import enriched_tweet

    root = enriched_tweet("300", conversation_id="300")
    follow = enriched_tweet("301", conversation_id="300", in_reply_to_tweet_id="300",
                            created_at=root.created_at + timedelta(minutes=5))
    store.add_tickets([root])
    store.add_tickets([follow])
    s = queries.summary(store, Filters())
    assert (s.tweets, s.tickets) == (2, 1)
    assert queries.summary(store, Filters.parse(None, "positive")).tweets == 2  # the intake is not filtered


def test_sentiment_over_time_buckets(store):
    base = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)
    # Three negative in the first 5-minute bucket, one positive 12 minutes later (third bucket).
    tweets = [make_tweet(i, when=base + timedelta(seconds=30 * i), sentiment="negative") for i in range(3)]
    tweets.append(make_tweet(3, when=base + timedelta(minutes=12), sentiment="positive"))
    tweets.append(make_tweet(4, when=base + timedelta(minutes=20, seconds=59), sentiment="neutral"))
    store.add_tickets(tweets)
    sot = queries.summary(store, Filters()).over_time
    assert sot.bucket_seconds == 60  # 21 minutes span: minute buckets
    assert sot.starts[0] == base and sot.starts[-1] == base + timedelta(minutes=20)
    assert len(sot.starts) == 21
    assert sot.series["negative"][0] == 2 and sot.series["negative"][1] == 1
    assert sot.series["positive"][12] == 1
    assert sot.series["neutral"][20] == 1
    assert sum(map(sum, sot.series.values())) == 5

    # Over days, the bucket widens so the chart keeps a readable number of bars.
    store.add_tickets([make_tweet(50, when=base + timedelta(days=3), sentiment="neutral")])
    sot = queries.summary(store, Filters()).over_time
    assert sot.bucket_seconds == 3 * 3600
    assert len(sot.starts) <= queries.MAX_BUCKETS
    assert sum(map(sum, sot.series.values())) == 6


def test_empty_store(store):
    s = queries.summary(store, Filters())
    assert s.tickets == s.tweets == s.dead_letters == 0
    assert s.newest == [] and s.over_time.starts == []
    assert s.budget is None  # no settings: no budget panel


def test_dead_letters_recorded_once(store):
    a = DeadLetter.of(b"{not json", "invalid JSON: Expecting property name", "parse", source_topic="tweets.raw", partition=0, offset=7)
    b = DeadLetter.of(b"x" * 30_000, "text longer than 25000 characters", "validate")
    assert queries.record_dead_letters(store, [a, b]) == 2
    # The consumer may see the same records again after a restart: nothing new.
    assert queries.record_dead_letters(store, [a, b]) == 0
    assert queries.dead_letter_count(store) == 2
    assert queries.summary(store, Filters()).dead_letters == 2


def test_public_status_has_no_personal_data(store):
    seeded = seed_store(store, n=8)
    tid = seeded["tweets"][5].ticket_id
    st = queries.public_status(store, tid)
    assert st.ticket_id == tid and st.status == seeded["statuses"][tid]
    assert set(st.__dict__) == {"ticket_id", "status", "topic", "created_at", "updated_at", "replied_at", "resolved_at",
                         "removed_reason", "removed_at"}  # a tombstone says so (X's data rules)
    assert queries.public_status(store, "BAG-22222222-2") is None


def test_budget_figures_from_the_store(store, tmp_path):
    """The dashboard's reply budget panel on a real store: queued and posted replies, and tweets the
    flood guard held back; the figures, the page's view-model and its JSON agree."""
    from tweetdesk.web.views import summary_payload

    settings = Settings(
        work_dir=tmp_path,
        x_api_base="http://127.0.0.1:9",  # live budget rules (credentials set); nothing is posted here
        x_consumer_key="ck", x_consumer_secret="cs", x_access_token="at", x_access_token_secret="ats",
        flood_per_author=2,
    )
    now = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
    store.clock = lambda: now
    clock = lambda: now.timestamp()  # noqa: E731 - the budget's clock, in epoch seconds
    base = now - timedelta(minutes=30)
    customers = [make_tweet(i, when=base + timedelta(minutes=i)) for i in range(6)]
    # One author opens two tickets; the flood guard holds back their next three tweets.
    loud = [
        make_tweet(40 + i, when=base + timedelta(minutes=10, seconds=i), text=f"@united answer me ({i})")
        .model_copy(update={"author": "loud"})
        for i in range(5)
    ]
    res = store.add_tickets(customers + loud, ReplyTemplates.load().render, intake=Intake.from_settings(settings),
                            priority=priority_of)
    assert len(res.replies) == 8  # 6 customers + 2 of loud's tweets
    for rid in res.replies[:3]:  # three posted, at $0.015 each; five stay queued
        store.claim(rid)
        store.record_posted(rid, f"9{rid}", cost_usd=0.015)

    b = queries.budget_figures(store, settings, clock=clock)
    assert b == BudgetFigures(
        queue_length=5,
        expected_wait_seconds=5 * 900 / 100,
        replies_this_window=3,
        reply_limit=100,
        window_seconds=900,
        spend_today_usd=0.045,
        flood_reasons=[FloodReason("flood guard: @loud opened 2 tickets within 1 h (limit 2)", 3)],
        # No DM sent: X's DM caps (15 per 15 min, 1,440 per 24 h) leave room now.
        dms={"sent_this_window": 0, "limit": 15, "window_seconds": 900, "sent_24h": 0, "daily_limit": 1440,
             "next_dm_in_seconds": 0.0, "held_by": None},
    )
    assert queries.budget_figures(store, None) is None

    s = queries.summary(store, Filters(), settings=settings, clock=clock)
    assert s.budget == b
    # Filters narrow the ticket figures, not the budget (it is the whole desk's).
    assert queries.summary(store, Filters.parse(None, "positive"), settings=settings, clock=clock).budget == b
    payload = summary_payload(s)["budget"]
    assert payload == {
        "queue_length": 5,
        "expected_wait_seconds": 45.0,
        "expected_wait": "under 1 min",
        "replies_this_window": "3 / 100",
        "window_text": "limit per 15 min",
        "spend_today_usd": 0.045,
        "spend_today": "$0.045",
        "flood_reasons": [{"reason": "flood guard: @loud opened 2 tickets within 1 h (limit 2)", "count": 3}],
        # X's usage: posts recorded without a kind, no reads from X (the tweets were not read through X)
        "enforced": True,
        "spend_month": "$0.00",
        "reads_month": "0",
        "reads_cap_text": "of X's monthly cap, 3,000,000",
        "read_cap_warning": None,
        "dms_window": "0 / 15",
        "dms_text": "per 15 min; 0 / 1,440 in 24 h",
        "dm_month": "none",
    }

    # Sixteen minutes on, the three posts have left the window; the day's spend stays.
    later = now + timedelta(minutes=16)
    b2 = queries.budget_figures(store, settings, clock=lambda: later.timestamp())
    assert (b2.replies_this_window, b2.spend_today_usd, b2.queue_length) == (0, 0.045, 5)
    # Without X credentials (dry run, budget not rehearsed) replies go at once: no wait.
    dry = Settings(work_dir=tmp_path, flood_per_author=2)
    assert queries.budget_figures(store, dry, clock=clock).expected_wait_seconds == 0.0


def test_the_indexed_chart_agrees_with_grouping_every_ticket(store):
    """The sentiment chart counts ranges of the chart index; the general path groups every ticket row. Both
    must give the same bars, over minutes, days and years (where the bucket cap cuts the oldest off)."""
    import random

    from tweetdesk.tickets.reports import _sentiment_over_time_grouped, sentiment_over_time

    rng = random.Random(5)
    base = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)
    sentiments = ["negative", "neutral", "positive", "unclassifiable"]
    i = 0
    for spread in (timedelta(minutes=30), timedelta(days=4), timedelta(days=3 * 365)):
        batch = [make_tweet(i + k, when=base + spread * rng.random(), sentiment=rng.choice(sentiments))
                 for k in range(60)]
        i += 60
        store.add_tickets(batch)
        with store.engine.connect() as conn:
            for f in (Filters(), Filters(sentiment="neutral")):
                fast = sentiment_over_time(conn, f)
                assert fast == _sentiment_over_time_grouped(conn, f), (spread, f)
                assert fast.starts and sum(map(sum, fast.series.values())) > 0
    with store.engine.connect() as conn:
        plan = " ".join(str(r) for r in conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT count(*) FROM tickets WHERE sentiment = 'neutral' "
            "AND tweet_created_at >= '2026-01-01' AND tweet_created_at < '2026-02-01'").all()) \
            if store.dialect == "sqlite" else "ix_tickets_sentiment_tweet_time"
    assert "ix_tickets_sentiment_tweet_time" in plan
