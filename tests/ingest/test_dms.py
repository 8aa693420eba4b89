"""The DM source (``tweetdesk ingest dms``) against the X API stand-in (tests/fixtures/xdm.py) and the real broker.

X is the stand-in on a fake clock; the source's sleeps move that clock instead of waiting, so X's 15 lookups per
15 minutes take no time. Each DM must reach ``tweets.raw`` exactly once, whatever stops a poll half-way."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pydantic import SecretStr

from tests.fixtures.broker import read_topic
from tests.fixtures.clock import FakeClock
from tests.fixtures.xapi import ACCOUNT_HANDLE, ACCOUNT_ID, Answer
from tests.fixtures.xdm import conversation_id
from tweetdesk.cli import main
from tweetdesk.ingest import Publisher
from tweetdesk.ingest.dms import STATE_FILE, DmSource
from tweetdesk.records import DeadLetter, DirectMessage, parse_record
from tweetdesk.x.dms import parse_delivery, parse_dm_page
from tweetdesk.x.payload import PayloadError


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def x(clocked_xapi):
    return clocked_xapi


@pytest.fixture
def settings(fresh_topics, tmp_path, x):
    return fresh_topics.model_copy(update={
        "work_dir": tmp_path / "work", "x_api_base": x.base_url, "x_consumer_key": SecretStr("ck"),
        "x_consumer_secret": SecretStr("cs"), "x_access_token": SecretStr("at"), "x_access_token_secret": SecretStr("ats"),
    })


class FakeSleep:
    def __init__(self, clock: FakeClock):
        self.clock, self.slept = clock, []

    def __call__(self, seconds: float) -> bool:
        self.slept.append(seconds)
        self.clock.t += seconds
        return False


def source(settings, clock, **kw) -> DmSource:
    return DmSource(settings, clock=clock, sleep=kw.pop("sleep", None) or FakeSleep(clock), **kw)


def state(settings) -> dict:
    return json.loads((settings.work_dir / STATE_FILE).read_text())


def dms(x, n, start=0, **kw) -> list[str]:
    return [x.add_dm(f"my confirmation number is QX{start + i:04d}, the bag is still missing",
                     author=f"cust{(start + i) % 7}", **kw) for i in range(n)]


def records(msgs) -> list[DirectMessage]:
    return [parse_record(m.value()) for m in msgs]


def env_for(monkeypatch, settings) -> None:
    for k, v in {
        "KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "TOPIC_RAW": settings.topic_raw,
        "TOPIC_DEAD": settings.topic_dead, "WORK_DIR": str(settings.work_dir), "X_API_BASE": settings.x_api_base,
        "X_CONSUMER_KEY": "ck", "X_CONSUMER_SECRET": "cs", "X_ACCESS_TOKEN": "at", "X_ACCESS_TOKEN_SECRET": "ats",
    }.items():
        monkeypatch.setenv(f"TWEETDESK_{k}", v)


# --- exactly once across a restart -------------------------------------------------------------------------------
def test_two_runs_with_a_restart_between_give_every_customer_dm_exactly_once(settings, x, clock, monkeypatch, capsys):
    """`tweetdesk ingest dms --once`, twice (only the work dir survives between the processes), with more DMs and
    our own answers arriving between: each customer DM once in tweets.raw, as a DirectMessage keyed by its
    conversation, oldest first per conversation; our own DMs and joins never."""
    env_for(monkeypatch, settings)
    clock.t = time.time()  # the CLI runs on the real clock: its first poll reads the last 24 hours
    x.add_dm("two days ago", author="old", created_at=datetime.now(timezone.utc) - timedelta(days=2))
    first = dms(x, 130)  # two pages of 100
    x.add_dm(None, author="cust1", event_type="ParticipantsJoin", participant_ids=[x.user_id("cust1")])
    assert main(["ingest", "dms", "--once"]) == 0
    assert state(settings)["since_id"] == first[-1]
    kay = x.user_id("cust3")
    x.dms.add("We are on it: ticket BAG-7KQ4M2XZ-H.", author=ACCOUNT_HANDLE, author_id=ACCOUNT_ID, created_at=None,
              to=kay)  # our own answer, as the desk would send it
    second = dms(x, 20, start=130)
    assert main(["ingest", "dms", "--once"]) == 0
    msgs = read_topic(settings, settings.topic_raw, 150)
    got = records(msgs)
    assert sorted(m.id for m in got) == sorted(first + second)  # each once, none missing, nothing of ours
    assert all(isinstance(m, DirectMessage) and m.channel == "dm" and m.source == "dms" for m in got)
    assert all(m.brand == ACCOUNT_HANDLE and m.author.startswith("cust") and m.lang is None for m in got)
    assert all(m.dm_conversation_id == conversation_id(ACCOUNT_ID, m.author_id) for m in got)
    assert all(msg.key().decode() == m.dm_conversation_id for msg, m in zip(msgs, got))  # keyed by conversation
    by_conv: dict[str, list[int]] = {}
    for m in got:
        by_conv.setdefault(m.dm_conversation_id, []).append(int(m.id))
    assert all(ids == sorted(ids) for ids in by_conv.values())  # one conversation, one partition, in order
    q = x.dm_requests()[0].path.replace("%2C", ",")
    for part in ("dm_event.fields=", "sender_id", "dm_conversation_id", "created_at", "expansions=sender_id",
                 "user.fields=username", "max_results=100", "event_types=MessageCreate"):
        assert part in q, part
    err = capsys.readouterr().err
    assert "dms: published 130 tweets" in err and "dms: published 20 tweets" in err


def test_a_dm_outside_the_backfill_and_the_position_reached_stop_the_paging(settings, x, clock):
    """The lookup has no since_id: the source stops at the first page reaching its position (X bills each event
    read), and on the first run at the first event older than backfill_hours."""
    x.add_dm("last week", author="old", created_at=clock.dt() - timedelta(days=7))
    dms(x, 12)
    src = source(settings, clock, page_size=5, backfill_hours=24)
    with Publisher(settings.kafka, progress=False) as pub:
        r1 = src.poll(pub)
        assert (r1.published, r1.pages, r1.complete) == (12, 3, True)
        new = dms(x, 3, start=12)
        r2 = src.poll(pub)
        assert (r2.published, r2.pages) == (3, 1)  # page 1 holds the 3 new and reaches the position
    assert sorted(m.id for m in records(read_topic(settings, settings.topic_raw, 15)))[-3:] == sorted(new)


def test_x_holding_back_the_second_page_then_failing_publishes_nothing_until_a_poll_reads_it_all(settings, x, clock):
    """X accepts page 1 and answers page 2 with 503 (or stops answering): the poll is abandoned, nothing
    published, the position kept; the next poll publishes everything once."""
    ids = dms(x, 8)
    x.script_dm_reads(Answer(200, transform=lambda b: b), x.unavailable(503))
    src = source(settings, clock, page_size=5)
    with Publisher(settings.kafka, progress=False) as pub:
        src.run(pub, interval=60, limit=8)  # 503 -> back-off (fake clock) -> a full poll
    assert src.counts["x_unavailable"] == 1 and src.waits[0][1] == 60
    assert sorted(m.id for m in records(read_topic(settings, settings.topic_raw, 8))) == sorted(ids)
    assert state(settings)["since_id"] == ids[-1]


def test_kafka_not_acknowledging_keeps_the_position_so_the_next_run_publishes_the_dms(settings, x, clock):
    ids = dms(x, 4)
    broken = settings.model_copy(update={"kafka_bootstrap": "127.0.0.1:1", "kafka_config": {
        "message.timeout.ms": "1500", "socket.connection.setup.timeout.ms": "1000"}})
    src = source(broken, clock)
    with pytest.raises(Exception, match="acknowledge"):
        with Publisher(broken.kafka, progress=False) as pub:
            src.poll(pub)
    assert not (settings.work_dir / STATE_FILE).exists()
    src2 = source(settings, clock)
    with Publisher(settings.kafka, progress=False) as pub:
        assert src2.poll(pub).published == 4
    assert sorted(m.id for m in records(read_topic(settings, settings.topic_raw, 4))) == sorted(ids)


def test_a_malformed_page_in_the_middle_loses_nothing_and_repeats_nothing(settings, x, clock):
    ids = dms(x, 8)
    x.script_dm_reads(Answer(200, transform=lambda b: b), x.malformed(b"<html>502 Bad Gateway</html>"))
    src = source(settings, clock, page_size=5)
    with Publisher(settings.kafka, progress=False) as pub:
        r1 = src.poll(pub)
        assert (r1.published, r1.dead, r1.complete) == (5, 1, False)
        assert state(settings)["since_id"] is None and len(state(settings)["handled"]) == 5
        r2 = src.poll(pub)
        assert (r2.published, r2.dead, r2.complete) == (3, 0, True)
    assert sorted(m.id for m in records(read_topic(settings, settings.topic_raw, 8))) == sorted(ids)
    assert state(settings) == {"account_id": ACCOUNT_ID, "since_id": ids[-1], "handled": []}
    dead = DeadLetter.model_validate_json(read_topic(settings, settings.topic_dead, 1)[0].value())
    assert "page 2: not JSON" in dead.reason


def test_the_lookup_limit_is_waited_out_and_a_stop_ends_the_wait(settings, x, clock):
    ids = dms(x, 12)
    x.dms.lookups.limit = 2  # X's 15 per 15 minutes, scaled down
    sleep = FakeSleep(clock)
    src = source(settings, clock, page_size=5, sleep=sleep)
    with Publisher(settings.kafka, progress=False) as pub:
        r = src.poll(pub)
    assert r.pages == 3 and r.published == 12 and src.counts["rate_limit_waits"] == 1
    assert len(sleep.slept) == 1 and 899 <= sleep.slept[0] <= 902
    assert sorted(m.id for m in records(read_topic(settings, settings.topic_raw, 12))) == sorted(ids)
    # A stop during the wait: nothing half-read is published.
    x.script_dm_reads(x.rate_limited(reset=int(clock.t) + 900))
    dms(x, 2, start=12)
    stop = threading.Event()
    src2 = DmSource(settings, clock=clock, stop=stop)
    done = threading.Event()

    def run():
        with Publisher(settings.kafka, progress=False) as p:
            src2.run(p, interval=60)
        done.set()

    n = len(x.dm_requests())
    threading.Thread(target=run, daemon=True).start()
    assert x.wait_for(lambda s: len(s.dm_requests()) == n + 1, 10)
    stop.set()
    assert done.wait(10), "the source did not stop during its 15-minute wait"
    assert state(settings)["since_id"] == ids[-1]


# --- bad input ------------------------------------------------------------------------------------------------------
def test_bad_dm_events_become_dead_letters_and_our_own_and_joins_are_skipped(settings, x, clock):
    good = dms(x, 3)
    x.add_dm(None, author="cust9", event_type="ParticipantsLeave", participant_ids=[x.user_id("cust9")])

    def spoil(body: dict) -> dict:
        data = body["data"]
        data.append({"id": "1900000000000000900", "event_type": "MessageCreate", "text": "no sender",
                     "dm_conversation_id": "1-2", "created_at": data[0]["created_at"]})
        data.append({"id": "1900000000000000901", "event_type": "MessageCreate", "text": "   ",
                     "sender_id": data[0]["sender_id"], "dm_conversation_id": data[0]["dm_conversation_id"],
                     "created_at": data[0]["created_at"]})
        data.append({"id": "1900000000000000902", "event_type": "MessageCreate", "text": "who?", "sender_id": "424242",
                     "dm_conversation_id": "424242-9", "created_at": data[0]["created_at"]})
        data.append({"id": "1900000000000000903", "event_type": "MessageCreate", "text": "us", "sender_id": ACCOUNT_ID,
                     "dm_conversation_id": "x", "created_at": data[0]["created_at"]})
        data.append("not an object")
        return body

    x.script_dm_reads(Answer(200, transform=spoil))
    src = source(settings, clock)
    with Publisher(settings.kafka, progress=False) as pub:
        r = src.poll(pub)
    assert (r.published, r.dead, r.complete) == (3, 4, True) and r.skipped == 1  # our own DM; the leave is not asked
    assert sorted(m.id for m in records(read_topic(settings, settings.topic_raw, 3))) == sorted(good)
    reasons = sorted(DeadLetter.model_validate_json(m.value()).reason for m in read_topic(settings, settings.topic_dead, 4))
    assert any("author_id" in r for r in reasons), reasons  # a DM without its sender
    assert any("text is blank" in r for r in reasons), reasons
    assert any("424242" in r and "includes.users" in r for r in reasons), reasons
    assert any("not an object" in r for r in reasons), reasons


def test_refused_credentials_and_bad_arguments_are_one_line(settings, x, clock, monkeypatch, capsys):
    env_for(monkeypatch, settings)
    assert main(["ingest", "dms", "--once", "--rate", "5"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--rate" in err[0] and "Traceback" not in err[0]
    assert main(["ingest", "dms", "--interval", "0"]) != 0
    assert "Traceback" not in capsys.readouterr().err
    monkeypatch.delenv("TWEETDESK_X_ACCESS_TOKEN")
    assert main(["ingest", "dms", "--once"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "DM events" in err[0] and "x-login" in err[0]


# --- any input: records, reasons or skips, never an exception ---------------------------------------------------------
_KEYS = st.sampled_from(["data", "includes", "meta", "users", "id", "event_type", "text", "sender_id", "username",
                         "dm_conversation_id", "created_at", "next_token", "event_uuid", "filter", "user_id", "payload",
                         "direct_message_events", "type", "message_create", "message_data", "target", "recipient_id",
                         "created_timestamp", "for_user_id"])
_VALUES = st.none() | st.booleans() | st.integers() | st.text(max_size=12) | st.sampled_from(
    ["MessageCreate", "ParticipantsJoin", "message_create", "dm.received", ACCOUNT_ID, "3000000001", "kay_b",
     "2026-03-01T09:00:00.000Z", "1772355600000"])
_JSON = st.recursive(_VALUES, lambda c: st.lists(c, max_size=4) | st.dictionaries(_KEYS | st.text(max_size=4), c,
                                                                                  max_size=6), max_leaves=40)


@given(_JSON)
@hsettings(max_examples=150, deadline=None)
def test_any_json_gives_dms_bad_events_or_skips_never_an_exception(doc):
    raw = json.dumps(doc)
    for parse in (lambda: parse_dm_page(raw, account_id=ACCOUNT_ID, brand="tweetdesk"), lambda: parse_delivery(raw)):
        try:
            batch = parse()
        except PayloadError as e:
            assert str(e)
            continue
        assert all(isinstance(m, DirectMessage) and m.author_id and m.dm_conversation_id for m in batch.messages)
        assert all(reason for _, reason, _ in batch.bad)


@given(st.binary(max_size=300))
@hsettings(max_examples=100, deadline=None)
def test_any_bytes_give_dms_or_a_reason(raw):
    for parse in (lambda: parse_dm_page(raw, account_id=ACCOUNT_ID, brand=None), lambda: parse_delivery(raw)):
        try:
            parse()
        except PayloadError as e:
            assert str(e)
