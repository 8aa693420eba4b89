"""Threads, our own tweets and the flood guard, on the real ticket store (SQLite and PostgreSQL), and the
shipped sample through the reply service on the session's broker."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from tests.fixtures.store import enriched_tweet
from tweetdesk.config import SAMPLE_OUR_HANDLES, SAMPLE_TWEETS, Settings
from tweetdesk.records import EnrichedTweet, ReplyStatus
from tweetdesk.reply.templates import ReplyTemplates
from tweetdesk.tickets import store as store_mod
from tweetdesk.tickets.ids import ticket_id_for
from tweetdesk.tickets.intake import Intake
from tweetdesk.tickets.priority import NEUTRAL, URGENT, priority_of
from tweetdesk.tickets.store import TicketStatus, TicketStore
from tweetdesk.x.rules import opt_out_phrase, summoned_by

T0 = datetime(2026, 3, 3, 18, 0, tzinfo=timezone.utc)
INTAKE = Intake.from_settings(Settings())  # our handles "tweetdesk" and "united" (conftest), 5 tickets per author per hour
RENDER = ReplyTemplates.load().render


def tw(tweet_id, *, at=0, author="ana", author_id="35151341", conv=None, parent=None, **kw) -> EnrichedTweet:
    kw.setdefault("text", "@united my flight UA 1234 is delayed again")
    kw.setdefault("topic", "Delay and Customer Service")
    return enriched_tweet(
        tweet_id,
        author=author,
        author_id=author_id,
        created_at=T0 + timedelta(seconds=at),
        conversation_id=conv,
        in_reply_to_tweet_id=parent,
        in_reply_to_user_id=author_id if parent else None,
        **kw,
    )


def take(store, tweets):
    return store.add_tickets(tweets, RENDER, intake=INTAKE, priority=priority_of)


def thread_of_three():
    return [
        tw("100", at=0, conv="100", sentiment="neutral", text="@united is UA 1234 on time tonight?", topic="Customer Experience"),
        tw("101", at=600, conv="100", parent="100", text="update: now it's cancelled. rebooking line is 80 deep"),
        tw("102", at=4000, conv="100", parent="101", text="finally rebooked for tomorrow 7am, no hotel voucher"),
    ]


@pytest.mark.parametrize("batches", ["one batch", "three batches"])
def test_a_thread_of_three_is_one_ticket_with_one_reply(store, batches):
    a, b, c = thread_of_three()
    results = [take(store, [a, b, c])] if batches == "one batch" else [take(store, [x]) for x in (a, b, c)]
    assert sum(len(r.created) for r in results) == 1
    assert sum(len(r.threaded) for r in results) == 2
    assert sum(len(r.replies) for r in results) == 1
    st = store.stats()
    assert st["tickets"] == 1 and st["replies_by_status"] == {"queued": 1}
    t = store.get_ticket(a.ticket_id)
    assert t.message_count == 3 and t.last_tweet_id == "102"
    # The whole conversation, in order.
    assert [m["tweet_id"] for m in store.conversation(a.ticket_id) if m["kind"] == "customer"] == ["100", "101", "102"]
    # The one queued reply moved up (the thread became urgent) and still answers the tweet that mentioned us:
    # the customer's follow-ups in their own thread do not, and X refuses replies to posts that did not summon us.
    (reply,) = store.replies_for(a.ticket_id)
    assert reply.tweet_id == "100" and reply.priority == URGENT and priority_of(a) == NEUTRAL
    # A thread tweet is its ticket's, not a ticket of its own.
    assert store.get_ticket_by_tweet("101") is None
    assert store.tweet_disposition("101")["ticket_id"] == a.ticket_id


def test_a_reply_without_conversation_id_joins_through_its_parent(store):
    a = tw("200")  # replay files may carry in_reply_to only
    b = tw("201", at=60, parent="200")
    c = tw("202", at=120, parent="201")
    take(store, [a])
    r = take(store, [b, c])
    assert r.threaded == ["201", "202"] and not r.created
    assert store.get_ticket(a.ticket_id).message_count == 3


def test_redelivery_changes_nothing(store):
    thread = thread_of_three()
    take(store, thread)
    stamp = store.get_ticket(thread[0].ticket_id).updated_at

    def snapshot():
        with store.engine.connect() as conn:
            return [
                conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in (store_mod.tickets, store_mod.replies, store_mod.tweets_table)
            ]

    before = snapshot()
    again = take(store, [*thread, thread[1]])
    assert sorted(again.duplicates) == ["100", "101", "101", "102"]
    assert not (again.created or again.threaded or again.replies or again.capped or again.own)
    assert snapshot() == before
    t = store.get_ticket(thread[0].ticket_id)
    assert t.message_count == 3 and t.updated_at == stamp


def test_our_own_reply_echoed_back_is_not_ticketed(store):
    a = tw("300", conv="300", topic="Baggage Issue", text="@united my bag never arrived and my inhaler is in it")
    rid = take(store, [a]).replies[0]
    store.claim(rid)
    store.record_posted(rid, "390", cost_usd=0.015)
    # Our reply comes back through the filtered stream, then the customer answers it.
    echo = tw("390", at=60, author="TweetDesk", author_id="1501", conv="300", parent="300", sentiment="neutral",
              text=store.get_reply(rid).text)
    answer = tw("301", at=600, conv=None, parent="390", text="@tweetdesk thanks. any news? the inhaler is the urgent part")
    r = take(store, [echo, answer])
    assert r.own == ["390"] and r.threaded == ["301"] and not r.created and not r.replies
    assert store.stats()["tickets"] == 1
    assert store.tweet_disposition("390")["disposition"] == "own"
    conv = store.conversation(a.ticket_id)
    assert [(m["kind"], m["tweet_id"]) for m in conv] == [("customer", "300"), ("own", "390"), ("customer", "301")]


def test_an_author_flooding_50_tweets_in_a_minute_is_capped_with_a_reason(store):
    flood = [tw(str(1000 + i), at=i * 1.2, author="spammer", author_id="666", text=f"@united refund now #{i}") for i in range(50)]
    r = take(store, flood[:20]) , take(store, flood[20:])
    created = sum(len(x.created) for x in r)
    capped = [c for x in r for c in x.capped]
    assert created == INTAKE.per_author == 5 and len(capped) == 45
    assert all(reason.startswith("flood guard: @spammer opened 5 tickets within 1 h") for _id, reason in capped)
    st = store.intake_stats()
    assert st["by_disposition"]["capped"] == 45 and st["by_disposition"]["opened"] == 5
    assert st["flood_reasons"] == [(capped[0][1], 45)]
    held = store.tweet_disposition(capped[0][0])
    assert held["disposition"] == "capped" and held["ticket_id"] is None and held["reason"] == capped[0][1]
    assert store.stats()["tickets"] == 5 and store.stats()["replies_by_status"] == {"queued": 5}
    # Another customer is not affected, and the author may open tickets again after the window.
    assert take(store, [tw("2000", at=30, author="bob", author_id="7")]).created
    assert take(store, [tw("2001", at=3700, author="spammer", author_id="666")]).created


def test_the_rule_cap_and_a_thread_from_another_customer(store):
    intake = Intake(our_handles=frozenset({"tweetdesk"}), per_author=None, per_rule=3, window_seconds=600)
    many = [tw(str(3000 + i), at=i, author=f"u{i}", author_id=str(90 + i), rule="too-broad") for i in range(5)]
    r = store.add_tickets(many, RENDER, intake=intake)
    assert len(r.created) == 3 and [reason for _i, reason in r.capped] == ["flood guard: rule 'too-broad' opened 3 tickets within 10 min (limit 3)"] * 2
    # A different customer replying in someone else's conversation gets a ticket of their own.
    root = tw("4000", conv="4000")
    other = tw("4001", at=30, conv="4000", parent="4000", author="bystander", author_id="5")
    r = store.add_tickets([root, other], RENDER, intake=intake)
    assert len(r.created) == 2 and not r.threaded


def test_a_resolved_ticket_is_closed_to_its_thread(store):
    a = tw("500", conv="500")
    take(store, [a])
    store.resolve(a.ticket_id)
    later = tw("501", at=7200, conv="500", parent="500")
    r = take(store, [later])
    assert r.created == [later.ticket_id] and store.get_ticket(a.ticket_id).status == TicketStatus.resolved


def test_a_follow_up_after_our_reply_reopens_the_ticket_without_a_second_reply(store):
    a = tw("600", conv="600")
    r = take(store, [a])
    (reply_id,) = r.replies
    assert store.claim(reply_id) and store.record_posted(reply_id, "9600")
    assert store.get_ticket(a.ticket_id).status == TicketStatus.replied
    # The rest of the first thread, written before our reply went out: nothing changes.
    before = tw("601", at=60, conv="600", parent="600")
    take(store, [before])
    assert store.get_ticket(a.ticket_id).status == TicketStatus.replied
    # The customer answers our reply: back in the agents' queue, same ticket, no new automatic reply.
    replied_at = store.get_ticket(a.ticket_id).replied_at
    after = tw("602", at=(replied_at - T0).total_seconds() + 60, conv="600", parent="9600",
               text="@united that did not help, still no bag")
    r2 = take(store, [after])
    ticket = store.get_ticket(a.ticket_id)
    assert r2.threaded == ["602"] and not r2.created and not r2.replies
    assert ticket.status == TicketStatus.open and ticket.message_count == 3 and ticket.last_tweet_id == "602"
    assert take(store, [after]).threaded == []  # a re-delivery changes nothing


def test_schema_v1_database_is_upgraded(store_url):
    """A database written by schema v1 (before threads) gains the tweets table, backfilled."""
    old = sa.MetaData()
    new_cols = {"message_count", "last_tweet_id", "priority", "cost_usd", "summoned_by", "no_reply_reason"}
    for t in (store_mod.schema_version, store_mod.tickets, store_mod.replies):
        sa.Table(t.name, old, *[c._copy() for c in t.columns if c.name not in new_cols])
    engine = sa.create_engine(store_mod.normalise_url(store_url))
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    with engine.begin() as conn:
        old.create_all(conn)
        conn.execute(old.tables["schema_version"].insert(), {"version": 1, "applied_at": now})
        conn.execute(
            old.tables["tickets"].insert(),
            {"ticket_id": ticket_id_for("1", "Baggage Issue", key=b"test"), "tweet_id": "1", "author": "Ana", "text": "lost bag",
             "sentiment": "negative", "topic": "Baggage Issue", "entities": [], "status": "replied", "attempts": 1,
             "created_at": now, "updated_at": now},
        )
    engine.dispose()
    store = TicketStore(store_url)
    try:
        assert store.schema_version() == store_mod.SCHEMA_VERSION
        got = store.tweet_disposition("1")
        assert got["disposition"] == "opened" and got["author_key"] == "@ana" and got["conversation_key"] == "1"
        # The old ticket's thread continues on it.
        r = take(store, [tw("2", conv="1", parent="1", author="ana", author_id=None)])
        assert r.threaded == ["2"] and store.get_ticket(ticket_id_for("1", "Baggage Issue", key=b"test")).message_count == 2
    finally:
        store.close()


# ----------------------------------------------------------------------------------------------
# The shipped sample through the reply service on the real broker
# ----------------------------------------------------------------------------------------------


def _sample_enriched() -> list[EnrichedTweet]:
    out = []
    for line in SAMPLE_TWEETS.read_text().splitlines():
        d = json.loads(line)
        topic, sentiment = d.pop("expected_topic"), d.pop("expected_sentiment")
        out.append(
            EnrichedTweet(
                **d, clean_text=d["text"].lower(), sentiment=sentiment, sentiment_score=0.9, topic=topic,
                topic_score=0.9, ticket_id=ticket_id_for(d["id"], topic, key=b"test"), model_version="sample-labels",
            )
        )
    return out


def test_the_sample_through_the_service_threads_and_skips_our_own(fresh_topics, tmp_path):
    from tweetdesk.kafka.client import make_producer
    from tweetdesk.serve import ReplyService

    sample = _sample_enriched()
    own = [t for t in sample if t.author == "tweetdesk"]
    customers = Counter((t.conversation_id or t.id, t.author_id or t.author) for t in sample if t.author != "tweetdesk")
    settings = fresh_topics.model_copy(update={"work_dir": tmp_path, "our_handles": list(SAMPLE_OUR_HANDLES)})
    # X's rules: a conversation gets its one reply only if a tweet in it summoned us; the sample's "STOP" opts its
    # author out, so neither the STOP nor that author's later tweet is answered.
    own_ids = {t.id for t in own}
    summoned = {(t.conversation_id or t.id, t.author_id or t.author) for t in sample
                if t.author != "tweetdesk" and summoned_by(t, SAMPLE_OUR_HANDLES, own_ids)}
    (stop,) = [t for t in sample if t.author != "tweetdesk" and opt_out_phrase(t.text, settings.opt_out_phrases)]
    after_stop = [t for t in sample if t.author == stop.author and t.created_at > stop.created_at]
    assert len(after_stop) == 1 and len(summoned) < len(customers)
    p = make_producer(settings.kafka)
    for t in sample + sample[:50]:  # the first 50 delivered twice
        p.produce(settings.topic_enriched, key=t.partition_key.encode(), value=t.model_dump_json().encode())
    assert p.flush(15) == 0
    with ReplyService(settings, port=0, serve_http=False) as svc:
        end = time.monotonic() + 60
        while svc.consumer.stats["records"] < len(sample) + 50 and time.monotonic() < end:
            time.sleep(0.1)
        stats = dict(svc.consumer.stats)
        store = svc.store
        assert stats["records"] == len(sample) + 50 and stats["duplicates"] == 50
        assert stats["tickets_created"] == len(customers) and stats["own"] == len(own) == 2
        assert stats["threaded"] == len(sample) - len(own) - len(customers) > 0
        intake = store.intake_stats()["by_disposition"]
        assert intake == {"opened": len(customers), "threaded": stats["threaded"], "own": 2, "capped": 0}
        st = store.stats()
        assert st["tickets"] == len(customers) and sum(st["replies_by_status"].values()) == len(summoned) - 2
        listening = [t for t in store.list_tickets(limit=1000).items if t.listening_only]
        assert len(listening) == len(customers) - len(summoned) and all(t.reply_text is None for t in listening)
        assert [o["author"] for o in store.list_opt_outs()] == [stop.author]
        for t in (stop, *after_stop):
            ticket = store.get_ticket_by_tweet(t.id)
            assert not store.replies_for(ticket.ticket_id) and "opted out" in ticket.no_reply_reason
        # Each multi-tweet conversation is one ticket holding its tweets in order; our reply in it too.
        for (conv, _who), n in customers.items():
            if n > 1:
                t = store.get_ticket_by_tweet(conv)
                assert t is not None and t.message_count == n
                times = [m["at"] for m in store.conversation(t.ticket_id) if m["kind"] != "reply"]
                assert times == sorted(times)
        for t in own:
            assert store.get_ticket_by_tweet(t.id) is None
            assert store.tweet_disposition(t.id)["disposition"] == "own"
        # Every reply went to the outbox, but the STOP author's first one if it was still queued at their STOP.
        assert {r.status for r in store.list_replies(limit=1000)} <= {ReplyStatus.dry_run, ReplyStatus.cancelled}
        assert len(store.list_replies(ReplyStatus.cancelled, limit=1000)) <= 1


def test_the_intake_decision_is_a_pure_function():
    """``intake.decide`` decides a batch from what the store knows, without a store, and changes nothing it is
    given: the same inputs give the same decision (the store's add_tickets only reads, decides and writes)."""
    import copy

    from tweetdesk.tickets.intake import Known, decide
    from tweetdesk.tickets.policy import LISTENING_ONLY

    flood = Intake(our_handles=INTAKE.our_handles, per_author=1, summoned_only=True, opt_out_phrases=("stop",))
    batch = [
        tw("1", at=0, conv="1"),  # summons us (mentions @united): opens a ticket with a reply
        tw("2", at=10, conv="1", parent="1", text="still waiting"),  # the same thread: joins it
        tw("3", at=20, conv="3", text="@united another one"),  # a second ticket within the hour: flood guard
        tw("4", at=30, conv="4", author="bo", author_id="7", text="Delta lost my bag"),  # listening only
        tw("5", at=40, conv="5", author="united", author_id="1"),  # our own tweet
        tw("6", at=50, conv="7", author="cy", author_id="8", text="@united STOP"),  # opts out, replies to an open ticket
    ]
    known = Known(thread={("7", "8"): "DLY-OLD"}, answered={"DLY-OLD": True}, barred={"9": "@dee opted out"})
    frozen = copy.deepcopy(known)
    first, again = decide(batch, known, flood), decide(batch, known, flood)
    assert known == frozen and first == again
    got = {v.tweet.id: (v.disposition, v.ticket_id, v.no_reply) for v in first.verdicts}
    assert got == {
        "1": ("opened", batch[0].ticket_id, None),
        "2": ("threaded", batch[0].ticket_id, None),
        "3": ("capped", None, None),
        "4": ("opened", batch[3].ticket_id, LISTENING_ONLY),
        "5": ("own", None, None),
        "6": ("threaded", "DLY-OLD", None),
    }
    assert first.verdicts[2].reason.startswith("flood guard: @ana opened 1 tickets")
    assert list(first.opting_out) == ["8"] and not first.late_summons
