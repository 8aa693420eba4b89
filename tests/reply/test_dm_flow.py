"""A support case finished in private (issue 29), through the real broker, the real models and the reply service
posting live to the X API stand-in (which enforces X's DM rule and caps): a public complaint gets an automatic
reply inviting a DM; the customer's DM (read by ``ingest dms``) joins the ticket; the agent answers by DM with
the privacy link; the ticket resolves. A DM to a customer who never DMed us is refused before any call to X."""

from __future__ import annotations

import time

import pytest
import requests
from pydantic import SecretStr

from tests.fixtures.broker import read_topic
from tests.fixtures.xapi import ACCOUNT_HANDLE
from tweetdesk.ingest import Publisher
from tweetdesk.ingest.dms import DmSource
from tweetdesk.kafka.client import make_producer
from tweetdesk.models.enrich import enrich_batch
from tweetdesk.records import ReplyStatus, Tweet, parse_record, utcnow
from tweetdesk.serve import ReplyService
from tweetdesk.tickets.schema import TicketStatus

KEY = "dm-flow-admin-key-long-enough-for-the-rules"
PRIVACY = "https://example.com/privacy"


@pytest.fixture
def settings(fresh_topics, xapi, tmp_path):
    return fresh_topics.model_copy(update={
        "work_dir": tmp_path / "work", "api_key": SecretStr(KEY), "x_api_base": xapi.base_url,
        "x_consumer_key": SecretStr("ck"), "x_consumer_secret": SecretStr("cs"), "x_access_token": SecretStr("at"),
        "x_access_token_secret": SecretStr("ats"), "privacy_policy_url": PRIVACY,
    })


def publish_enriched(settings, tweets: list[Tweet]) -> list:
    """What the stream job does with a raw record: the real models and entities, then ``tweets.enriched``."""
    enriched = enrich_batch(tweets, settings)
    p = make_producer(settings.kafka)
    for t in enriched:
        p.produce(settings.topic_enriched, key=t.partition_key.encode(), value=t.model_dump_json().encode())
    assert p.flush(15) == 0
    return enriched


def wait_for(predicate, what: str, timeout: float = 60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = predicate()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def api(svc, method: str, path: str, **kw):
    return requests.request(method, svc.url + path, headers={"X-API-Key": KEY}, timeout=10, **kw)


def test_a_public_complaint_is_finished_by_dm(settings, xapi):
    kay = xapi.user_id("kay_b")
    tid_public = xapi.add_tweet(f"@{ACCOUNT_HANDLE} my reservation disappeared from the app, the booking is gone",
                                author="kay_b")
    complaint = Tweet(id=tid_public, text=f"@{ACCOUNT_HANDLE} my reservation disappeared from the app, the booking is gone",
                      author="kay_b", author_id=kay, created_at=utcnow(), source="mentions", brand=ACCOUNT_HANDLE,
                      conversation_id=tid_public)
    with ReplyService(settings, port=0) as svc:
        (opened,) = publish_enriched(settings, [complaint])
        ticket = opened.ticket_id
        # 1. The automatic public reply invites a DM (X opens a DM from the profile: no link needed).
        (auto,) = wait_for(lambda: xapi.posts, "the automatic reply")
        assert ticket in auto["text"] and "DM" in auto["text"] and "http" not in auto["text"]
        page = requests.get(f"{svc.url}/tickets/{ticket}", headers={"X-API-Key": KEY}, timeout=10)
        # 2. A DM to a customer who never DMed us is refused before any call to X.
        r = api(svc, "POST", f"/api/tickets/{ticket}/reply", json={"text": "Please send your code", "channel": "dm"})
        assert r.status_code == 409 and r.json()["kind"] == "never_dmed"
        assert xapi.dm_sends() == []
        # 3. The customer DMs us; `ingest dms` reads it, the models enrich it, the ticket takes it in.
        event = xapi.add_dm(f"Hi, about {ticket}: my confirmation code is QX7RT2", author="kay_b")
        with Publisher(settings.kafka) as pub:
            DmSource(settings).poll(pub)
        (raw,) = [parse_record(m.value()) for m in read_topic(settings, settings.topic_raw, 1)]
        assert raw.id == event and raw.channel == "dm"
        publish_enriched(settings, [raw])
        wait_for(lambda: (svc.store.tweet_disposition(event) or {}).get("ticket_id") == ticket, "the DM in the ticket")
        conv = api(svc, "GET", f"/api/tickets/{ticket}").json()
        # 4. The agent answers by DM: the stand-in (X's rule: they DMed us first) takes it, privacy link and all.
        r = api(svc, "POST", f"/api/tickets/{ticket}/reply",
                json={"text": "Thanks Kay, your booking is restored.", "channel": "dm"})
        assert r.status_code == 202 and r.json()["channel"] == "dm", r.text
        (sent,) = wait_for(lambda: xapi.dm_sends(), "the DM to X")
        assert sent["participant_id"] == kay and sent["text"].endswith(f"Privacy: {PRIVACY}")
        dm_reply = wait_for(lambda: [x for x in svc.store.replies_for(ticket) if x.channel == "dm"
                                     and x.status == ReplyStatus.posted], "the DM recorded as sent")[0]
        assert dm_reply.posted_id == sent["dm_event_id"]
        # 5. The ticket resolves; the tracking page never shows the DM's text.
        assert api(svc, "POST", f"/api/tickets/{ticket}/resolve", json={}).status_code in (200, 201)
        assert svc.store.get_ticket(ticket).status == TicketStatus.resolved
        public = requests.get(f"{svc.url}/t/{ticket}", timeout=10).text
        usage = svc.store.usage()["today"]
    assert page.status_code == 200
    assert [m.get("channel") for m in conv.get("conversation", []) if m["kind"] == "customer"] == ["public", "dm"], conv
    assert "QX7RT2" not in public and "restored" not in public
    assert usage["dm_send"]["count"] == 1 and usage["dm_send"]["cost_usd"] == pytest.approx(0.015)
    assert usage["dm_read"]["count"] == 1 and usage["dm_read"]["cost_usd"] == pytest.approx(0.010)


def test_stop_by_dm_opts_the_customer_out(settings, xapi):
    with ReplyService(settings, port=0) as svc:
        first = xapi.add_dm("my bag is missing, tag UA123456", author="lee_q")
        with Publisher(settings.kafka) as pub:
            src = DmSource(settings)
            src.poll(pub)
            publish_enriched(settings, [parse_record(m.value()) for m in read_topic(settings, settings.topic_raw, 1)])
            ticket = wait_for(lambda: (svc.store.tweet_disposition(first) or {}).get("ticket_id"), "the DM's ticket")
            # Its acknowledgement goes by DM (they DMed us first), with the privacy link.
            (ack,) = wait_for(lambda: xapi.dm_sends(), "the acknowledgement DM")
            assert ticket in ack["text"] and ack["text"].endswith(f"Privacy: {PRIVACY}")
            stop = xapi.add_dm("STOP", author="lee_q")
            src.poll(pub)
        raws = [parse_record(m.value()) for m in read_topic(settings, settings.topic_raw, 2)]
        publish_enriched(settings, [r for r in raws if r.id == stop])
        wait_for(lambda: svc.store.opt_out_of("lee_q", xapi.user_id("lee_q")), "the opt-out")
        r = api(svc, "POST", f"/api/tickets/{ticket}/reply", json={"text": "Any news?", "channel": "dm"})
    assert r.status_code == 409 and r.json()["kind"] == "opted_out"
    assert len(xapi.dm_sends()) == 1


def test_a_dm_interrupted_mid_call_is_verified_never_sent_twice(settings, xapi, tmp_path):
    """A crash between the intent (``posting``) and X's answer: on restart the poster looks for our DM in the
    conversation (``GET /2/dm_conversations/with/:id/dm_events``) before sending anything again."""
    from tests.fixtures.store import enriched_tweet
    from tweetdesk.reply.poster import Poster, XTransport
    from tweetdesk.reply.templates import ReplyTemplates
    from tweetdesk.tickets.intake import Intake
    from tweetdesk.tickets.store import TicketStore

    s = settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 't.db'}"})
    store = TicketStore(s.store.db_url)
    from tweetdesk.reply.consumer import ReplyConsumer

    rc = ReplyConsumer.__new__(ReplyConsumer)  # its reply_text only (the DM acknowledgement): no broker needed
    rc.settings, rc.templates = s, ReplyTemplates.load()
    sent_before, lost = [], []
    for name in ("ann_a", "ben_b"):
        uid = xapi.user_id(name)
        eid = xapi.add_dm("my booking code is QX7RT2", author=name)
        dm = enriched_tweet(eid, text="my booking code is QX7RT2", author=name, author_id=uid, channel="dm",
                            dm_conversation_id=f"{uid}-1", source="dms", mentions=[])
        (rid,) = store.add_tickets([dm], rc.reply_text, intake=Intake.from_settings(s)).replies
        r = store.claim(rid)  # the intent is committed ...
        if name == "ann_a":  # ... and X took Ann's DM before the process died; Ben's call never left
            XTransport.from_settings(s).send_dm(uid, r.text)
            sent_before.append(rid)
        else:
            lost.append(rid)
    poster = Poster(s, store, backoff_base=0.0)  # a verified-not-sent DM is due again at once
    counts = poster.recover()
    assert counts == {"requeued": 1, "verified_posted": 1, "unknown": 0}
    ann = store.get_reply(sent_before[0])
    assert ann.status == ReplyStatus.posted and ann.posted_id == xapi.dm_sends()[0]["dm_event_id"]
    poster.step()
    assert store.get_reply(lost[0]).status == ReplyStatus.posted
    assert sorted(d["participant_id"] for d in xapi.dm_sends()) == sorted([xapi.user_id("ann_a"), xapi.user_id("ben_b")])
    store.close()
