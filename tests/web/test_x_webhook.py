"""``/x/webhook``: the X Activity API's ``dm.received`` deliveries, through the real service (waitress) on loopback,
X played by the stand-in (tests/fixtures/xdm.py: the signed push and the CRC as X does them) and the real broker.

A delivery X sends twice is published once (also after a restart of the service); a forged one is refused with
4xx JSON and nothing is kept; a signed but malformed one goes to tweets.dead with the reason."""

from __future__ import annotations

import json

import pytest
import requests
from pydantic import SecretStr

from tests.fixtures.broker import read_topic
from tests.fixtures.xapi import ACCOUNT_HANDLE, ACCOUNT_ID
from tests.fixtures.xdm import conversation_id, signature
from tweetdesk.records import DeadLetter, DirectMessage, parse_record
from tweetdesk.serve import ReplyService

SECRET = "consumer-secret-of-the-app"


@pytest.fixture
def settings(fresh_topics, tmp_path):
    return fresh_topics.model_copy(update={"work_dir": tmp_path / "work", "x_webhook_secret": SecretStr(SECRET)})


@pytest.fixture
def service(settings):
    with ReplyService(settings, consume=False, port=0) as svc:
        yield svc


def url(svc) -> str:
    return f"http://127.0.0.1:{svc.port}/x/webhook"


def test_x_crc_check_passes_and_a_wrong_secret_would_not(service, xapi):
    assert xapi.crc_check(url(service), SECRET)
    assert not xapi.crc_check(url(service), "another-secret")
    r = requests.get(url(service), timeout=10)
    assert r.status_code == 400 and "crc_token" in r.json()["error"]


def test_a_dm_delivered_twice_is_published_once_even_across_a_restart(settings, xapi):
    first = xapi.add_dm("DM us your confirmation number, they said: it is ZX81QP", author="kay_b")
    second = xapi.add_dm("and my bag tag is UA123456", author="kay_b")
    with ReplyService(settings, consume=False, port=0) as svc:
        r1 = xapi.push_dm_event(url(svc), SECRET, first)
        assert r1.status_code == 200 and r1.json() == {"published": 1, "duplicates": 0, "skipped": 0, "dead_letters": 0}
        r2 = xapi.push_dm_event(url(svc), SECRET, first)  # X redelivers (a retry, a replay job)
        assert r2.status_code == 200 and r2.json()["published"] == 0 and r2.json()["duplicates"] == 1
    with ReplyService(settings, consume=False, port=0) as svc:  # a restarted service still knows it
        assert xapi.push_dm_event(url(svc), SECRET, first).json()["duplicates"] == 1
        assert xapi.push_dm_event(url(svc), SECRET, second).json()["published"] == 1
        # The Account Activity API's shape of the same event: the same id, so a duplicate too.
        r = xapi.push_dm_event(url(svc), SECRET, event=xapi.dms.account_activity_event(second))
        assert r.json()["duplicates"] == 1
    msgs = read_topic(settings, settings.topic_raw, 2)
    got = [parse_record(m.value()) for m in msgs]
    assert [m.id for m in got] == [first, second]
    kay = xapi.user_id("kay_b")
    for msg, m in zip(msgs, got):
        assert isinstance(m, DirectMessage) and m.source == "activity" and m.channel == "dm"
        assert (m.author, m.author_id, m.brand) == ("kay_b", kay, ACCOUNT_HANDLE)
        assert m.dm_conversation_id == conversation_id(ACCOUNT_ID, kay) == msg.key().decode()
    assert got[0].text == "DM us your confirmation number, they said: it is ZX81QP"
    assert read_topic(settings, settings.topic_dead, 0, timeout=1.0) == []


def test_a_forged_or_unsigned_delivery_is_refused_with_json_and_nothing_is_kept(service, settings, xapi):
    eid = xapi.add_dm("transfer the refund to this account", author="mallory")
    r = xapi.push_dm_event(url(service), SECRET, eid, sign_with="guessed-secret")
    assert r.status_code == 403 and r.json()["kind"] == "bad_signature"
    r = requests.post(url(service), data=json.dumps(xapi.dms.activity_event(eid)), timeout=10,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 403 and r.headers["Content-Type"].startswith("application/json")
    body = json.dumps(xapi.dms.activity_event(eid)).encode()
    r = requests.post(url(service), data=body + b" ", timeout=10,  # the body changed after X signed it
                      headers={"x-twitter-webhooks-signature": signature(SECRET, body)})
    assert r.status_code == 403
    # After all that, X's genuine delivery still goes through: nothing was marked seen.
    assert xapi.push_dm_event(url(service), SECRET, eid).json()["published"] == 1
    assert [m.id for m in map(parse_record, (m.value() for m in read_topic(settings, settings.topic_raw, 1)))] == [eid]


def test_signed_but_bad_deliveries_go_to_dead_letters_with_the_reason(service, settings, xapi):
    ok = xapi.add_dm("where is my bag", author="kay_b")
    ours = xapi.dms.add("We are on it.", author=ACCOUNT_HANDLE, author_id=ACCOUNT_ID, created_at=None,
                        to=xapi.user_id("kay_b"))
    event = xapi.dms.activity_event(ok)
    evs = event["data"]["payload"]["direct_message_events"]
    no_sender = json.loads(json.dumps(evs[0])) | {"id": "1900000000000000777"}
    del no_sender["message_create"]["sender_id"]
    blank = json.loads(json.dumps(evs[0])) | {"id": "1900000000000000778"}
    blank["message_create"]["message_data"]["text"] = "  \n "
    mine = xapi.dms.activity_event(ours)["data"]["payload"]["direct_message_events"][0]
    evs += [no_sender, blank, mine, {"type": "message_create", "id": "1900000000000000779"}]
    r = xapi.push_dm_event(url(service), SECRET, event=event)
    assert r.status_code == 200
    assert r.json() == {"published": 1, "duplicates": 0, "skipped": 1, "dead_letters": 3}  # ours skipped
    for raw in (b"{not json", b"[1, 2]", json.dumps({"data": {"event_type": "dm.received", "payload": []}}).encode()):
        r = xapi.push_dm_event(url(service), SECRET, event=raw)
        assert r.status_code == 200 and r.json()["dead_letters"] == 1, raw
    other = {"data": {"event_type": "dm.read", "filter": {"user_id": ACCOUNT_ID}, "payload": {}}}
    assert xapi.push_dm_event(url(service), SECRET, event=other).json() == {
        "published": 0, "duplicates": 0, "skipped": 0, "dead_letters": 0}
    dead = [DeadLetter.model_validate_json(m.value()) for m in read_topic(settings, settings.topic_dead, 6)]
    reasons = [d.reason for d in dead]
    assert len(dead) == 6 and all(d.stage == "ingest" and d.raw for d in dead)
    assert any("author_id" in x for x in reasons), reasons  # no sender
    assert any("text is blank" in x for x in reasons), reasons
    assert any("message_create" in x for x in reasons), reasons
    assert any("not JSON" in x for x in reasons) and any("not a JSON object" in x for x in reasons), reasons
    assert any("payload" in x for x in reasons), reasons
    assert [parse_record(m.value()).id for m in read_topic(settings, settings.topic_raw, 1)] == [ok]


def test_without_a_secret_the_route_says_it_is_not_configured(tmp_path):
    from tweetdesk.config import Settings

    with ReplyService(Settings(work_dir=tmp_path, kafka_bootstrap="127.0.0.1:9"), consume=False, port=0) as svc:
        for r in (requests.get(url(svc), params={"crc_token": "x"}, timeout=10), requests.post(url(svc), data=b"{}", timeout=10)):
            assert r.status_code == 404 and r.json()["kind"] == "not_configured"
            assert "TWEETDESK_X_WEBHOOK_SECRET" in r.json()["error"]


def test_kafka_down_answers_503_so_x_sends_it_again_and_then_it_is_published(settings, xapi):
    eid = xapi.add_dm("my flight was cancelled", author="kay_b")
    down = settings.model_copy(update={"kafka_bootstrap": "127.0.0.1:9"})
    with ReplyService(down, consume=False, port=0) as svc:
        r = xapi.push_dm_event(url(svc), SECRET, eid)
        assert r.status_code == 503 and r.json()["kind"] == "unavailable" and r.headers["Retry-After"] == "30"
    with ReplyService(settings, consume=False, port=0) as svc:  # same work dir: nothing was marked seen
        assert xapi.push_dm_event(url(svc), SECRET, eid).json()["published"] == 1
    assert [parse_record(m.value()).id for m in read_topic(settings, settings.topic_raw, 1)] == [eid]


def test_kafka_not_acknowledging_releases_the_claim(settings, xapi):
    """Kafka reachable when the service started, gone when the delivery comes: not acknowledged -> 503, the
    event's id released, so X's retry publishes it."""
    from tweetdesk.ingest.activity import ActivityReceiver, ActivityUnavailable
    from tweetdesk.ingest.publisher import Publisher

    eid = xapi.add_dm("my flight was cancelled", author="kay_b")
    down = settings.model_copy(update={"kafka_bootstrap": "127.0.0.1:9", "kafka_config": {
        "message.timeout.ms": "1500", "socket.connection.setup.timeout.ms": "1000"}})
    body = json.dumps(xapi.dms.activity_event(eid)).encode()
    with Publisher(down.kafka, progress=False) as pub:
        with pytest.raises(ActivityUnavailable, match="acknowledge"):
            ActivityReceiver(down, publisher=pub).receive(body)
    with Publisher(settings.kafka, progress=False) as pub:
        assert ActivityReceiver(settings, publisher=pub).receive(body).published == 1


def test_a_dm_of_x_s_10000_characters_is_taken_though_the_api_caps_bodies_at_16_kib(service, settings, xapi):
    eid = xapi.add_dm("é" * 10_000, author="kay_b")  # X's longest DM; \u00e9 escapes make ~60 KB of JSON
    event = xapi.dms.activity_event(eid)
    assert len(json.dumps(event)) > 16 * 1024
    r = xapi.push_dm_event(url(service), SECRET, eid)
    assert r.status_code == 200 and r.json()["published"] == 1
    assert parse_record(read_topic(settings, settings.topic_raw, 1)[0].value()).text == "é" * 10_000


def test_a_dm_holding_control_characters_is_a_record_or_a_dead_letter_not_a_refused_delivery(service, settings, xapi):
    eid = xapi.add_dm("bag\u0007 tag\u200b UA123456\x00", author="kay_b")
    r = xapi.push_dm_event(url(service), SECRET, eid)
    assert r.status_code == 200 and r.json()["published"] == 1  # the text may hold anything; the stream cleans it
    assert parse_record(read_topic(settings, settings.topic_raw, 1)[0].value()).text == "bag\u0007 tag\u200b UA123456\x00"
    r = requests.post(url(service) + "?x=%00", data=b"{}", timeout=10, headers={"x-twitter-webhooks-signature": "x"})
    assert r.status_code == 400 and r.json()["kind"] == "bad_character"  # the query is still checked
