"""The mentions source (``tweetdesk ingest mentions``) against the X API stand-in and the real broker.

X is the stand-in (tests/fixtures/xapi.py) on a fake clock; the source's sleeps move that clock instead of
waiting, so rate-limit waits of 15 minutes take no time."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
import tweepy
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pydantic import SecretStr

from tests.fixtures.broker import read_topic, tweets_of
from tests.fixtures.clock import FakeClock
from tests.fixtures.xapi import ACCOUNT_HANDLE, ACCOUNT_ID, Answer
from tweetdesk.cli import main
from tweetdesk.ingest import Publisher
from tweetdesk.ingest.mentions import STATE_FILE, MentionsSource
from tweetdesk.records import DeadLetter
from tweetdesk.x.payload import PayloadError, parse_page


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
    """Moves the fake clock instead of waiting; records every wait."""

    def __init__(self, clock: FakeClock):
        self.clock, self.slept = clock, []

    def __call__(self, seconds: float) -> bool:
        self.slept.append(seconds)
        self.clock.t += seconds
        return False


def source(settings, clock, **kw) -> MentionsSource:
    return MentionsSource(settings, clock=clock, sleep=kw.pop("sleep", None) or FakeSleep(clock), **kw)


def poll_once(settings, clock, **kw):
    src = source(settings, clock, **kw)
    with Publisher(settings.kafka, progress=False) as pub:
        result = src.poll(pub)
    return src, result, pub.stats


def state(settings) -> dict:
    return json.loads((settings.work_dir / STATE_FILE).read_text())


def mentions(x, n, start=0, **kw) -> list[str]:
    return [x.add_tweet(f"@{ACCOUNT_HANDLE} my bag is lost, case {start + i}", author=f"cust{(start + i) % 7}", **kw)
            for i in range(n)]


def env_for(monkeypatch, settings) -> None:
    for k, v in {
        "KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "TOPIC_RAW": settings.topic_raw,
        "TOPIC_DEAD": settings.topic_dead, "WORK_DIR": str(settings.work_dir), "X_API_BASE": settings.x_api_base,
        "X_CONSUMER_KEY": "ck", "X_CONSUMER_SECRET": "cs", "X_ACCESS_TOKEN": "at", "X_ACCESS_TOKEN_SECRET": "ats",
    }.items():
        monkeypatch.setenv(f"TWEETDESK_{k}", v)


# --- exactly once across a restart -------------------------------------------------------------------------------
def test_two_runs_with_a_restart_between_give_every_mention_exactly_once(settings, x, clock, monkeypatch, capsys):
    """`tweetdesk ingest mentions --once`, twice (two processes' worth of state: only the work dir survives),
    with more mentions arriving between: each mention once in tweets.raw, nothing else; oldest first."""
    env_for(monkeypatch, settings)
    clock.t = time.time()  # the CLI runs on the real clock: its first poll reads the last 24 hours
    x.add_tweet(f"@{ACCOUNT_HANDLE} two days ago", author="old", created_at=datetime.now(timezone.utc) - timedelta(days=2))
    first = mentions(x, 120)  # two pages of 100
    x.add_tweet("flying united again, never again", author="kw_only")  # keyword only: not a mention
    x.add_tweet(f"write to help@{ACCOUNT_HANDLE}.com they said", author="mailer")  # an e-mail address, no mention
    assert main(["ingest", "mentions", "--once"]) == 0
    since = state(settings)["since_id"]
    assert since == first[-1]
    second = mentions(x, 30, start=120)
    assert main(["ingest", "mentions", "--once"]) == 0
    assert state(settings)["since_id"] == second[-1]
    msgs = read_topic(settings, settings.topic_raw, 150)
    got = tweets_of(msgs)
    assert sorted(t.id for t in got) == sorted(first + second)  # each once, none missing, no keyword-only tweet
    assert all(t.source == "mentions" and t.mentions == [ACCOUNT_HANDLE] and t.author.startswith("cust") for t in got)
    for p in {m.partition() for m in msgs}:  # published oldest first: each partition holds ascending ids
        ids = [int(t.id) for m, t in zip(msgs, got) if m.partition() == p]
        assert ids == sorted(ids)
    # The requests asked X for what the record needs.
    q = x.mention_requests()[0].path
    for part in ("tweet.fields=", "entities", "referenced_tweets", "note_tweet", "conversation_id",
                 "expansions=", "referenced_tweets.id.author_id", "entities.mentions.username", "in_reply_to_user_id",
                 "max_results=100", "start_time="):
        assert part in q.replace("%2C", ",")
    assert "since_id=" + since in x.mention_requests()[-1].path
    err = capsys.readouterr().err
    assert "mentions: published 120 tweets" in err and "mentions: published 30 tweets" in err


def test_polls_publish_oldest_first_and_record_references(settings, x, clock):
    ours = x.add_tweet("Flights resume at 6am.", author=ACCOUNT_HANDLE)
    reply = x.add_tweet("still stuck at the gate", author="kay_b", reply_to=ours)  # X puts @tweetdesk in front
    quote = x.add_tweet(f"@{ACCOUNT_HANDLE} and this?", author="lee", quote_of=ours)
    long = x.add_tweet(f"@{ACCOUNT_HANDLE} " + "so long " * 60, author="lee")
    _, result, stats = poll_once(settings, clock, page_size=5)
    assert (result.published, result.dead, result.complete) == (3, 0, True)
    got = tweets_of(read_topic(settings, settings.topic_raw, 3))
    by_id = {t.id: t for t in got}
    r, q, lg = by_id[reply], by_id[quote], by_id[long]
    assert r.text.startswith(f"@{ACCOUNT_HANDLE} ") and r.in_reply_to_tweet_id == ours
    assert [(ref.type, ref.id, ref.author) for ref in r.referenced_tweets] == [("replied_to", ours, ACCOUNT_HANDLE)]
    assert r.conversation_id == ours and r.in_reply_to_user_id == ACCOUNT_ID
    assert [(ref.type, ref.author) for ref in q.referenced_tweets] == [("quoted", ACCOUNT_HANDLE)]
    assert len(lg.text) > 280  # the long post's full text (note_tweet), not X's 280-character cut
    assert sorted(by_id) == sorted(by_id, key=int)


# --- pagination and rate limits -----------------------------------------------------------------------------------
def test_pages_are_followed_and_the_rate_limit_is_waited_out(settings, x, clock):
    """12 mentions in pages of 5 with X allowing 2 requests per 15 minutes: the source reads two pages, sleeps
    until X's reset (fake clock: no real waiting), reads the third, then publishes all 12, oldest first."""
    ids = mentions(x, 12)
    x.mentions_limit = 2
    sleep = FakeSleep(clock)
    t0 = clock.t
    src, result, stats = poll_once(settings, clock, page_size=5, sleep=sleep)
    assert result.pages == 3 and result.published == 12 and stats.dead == 0
    assert len(sleep.slept) == 1 and 900 <= clock.t - t0 <= 902  # until x-rate-limit-reset (+1 s)
    assert src.counts["rate_limit_waits"] == 1 and "rate limit" in src.waits[0][0]
    reqs = x.mention_requests()
    assert len(reqs) == 3 and "pagination_token=" not in reqs[0].path and "pagination_token=" in reqs[2].path
    got = tweets_of(read_topic(settings, settings.topic_raw, 12))
    assert sorted(t.id for t in got) == sorted(ids)
    assert state(settings)["since_id"] == ids[-1]


def test_a_429_is_waited_out_then_retried(settings, x, clock):
    ids = mentions(x, 3)
    x.script_mentions(x.rate_limited(reset=int(clock.t) + 60, limit=450))
    sleep = FakeSleep(clock)
    _, result, _ = poll_once(settings, clock, sleep=sleep)
    assert result.published == 3 and sleep.slept == [pytest.approx(61.0)]
    assert len(x.mention_requests()) == 2  # the 429, then the same request again
    assert sorted(t.id for t in tweets_of(read_topic(settings, settings.topic_raw, 3))) == sorted(ids)


def test_a_stop_request_ends_a_rate_limit_wait_and_publishes_nothing_half_read(settings, x, clock):
    mentions(x, 3)
    x.script_mentions(x.rate_limited(reset=int(clock.t) + 900))
    stop = threading.Event()
    src = MentionsSource(settings, clock=clock, stop=stop)  # the real, interruptible wait (stop.wait)
    done = threading.Event()

    def run():
        with Publisher(settings.kafka, progress=False) as pub:
            src.run(pub, interval=30)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert x.wait_for(lambda s: len(s.mention_requests()) == 1, 10)
    stop.set()
    assert done.wait(10), "the source did not stop during its 15-minute wait"
    assert not (settings.work_dir / STATE_FILE).exists() or state(settings)["since_id"] is None
    assert read_topic(settings, settings.topic_raw, 0, timeout=1.0) == []


# --- bad input ------------------------------------------------------------------------------------------------------
def test_bad_tweets_and_bad_pages_become_dead_letters_and_polling_goes_on(settings, x, clock):
    good = mentions(x, 4)

    def spoil(body: dict) -> dict:
        del body["data"][0]["author_id"]  # a missing field
        body["data"][1]["author_id"] = "424242"  # an author the expansions do not hold
        return body

    x.script_mentions(Answer(200, transform=spoil))
    src = source(settings, clock)
    with Publisher(settings.kafka, progress=False) as pub:
        r1 = src.poll(pub)
        assert (r1.published, r1.dead, r1.complete) == (2, 2, True)
        later = mentions(x, 2, start=4)
        x.script_mentions(x.malformed(b'{"data": [{"id": "1", "text": '))
        r2 = src.poll(pub)  # the page cannot be read: a dead letter, since_id stays
        assert (r2.published, r2.dead, r2.complete) == (0, 1, False)
        assert state(settings)["since_id"] == good[-1]
        r3 = src.poll(pub)  # X answers properly again: the two new mentions, once
        assert (r3.published, r3.dead, r3.complete) == (2, 0, True)
    got = tweets_of(read_topic(settings, settings.topic_raw, 4))
    assert sorted(t.id for t in got) == sorted(good[:2] + later)  # X pages newest first: the two newest were spoilt
    dead = [DeadLetter.model_validate_json(m.value()) for m in read_topic(settings, settings.topic_dead, 3)]
    reasons = sorted(d.reason for d in dead)
    assert len(dead) == 3 and all(d.stage == "ingest" and d.raw for d in dead)
    assert any("no author_id" in r for r in reasons)
    assert any("424242" in r and "includes.users" in r for r in reasons)
    assert any("page 1: page is not JSON" in r for r in reasons)
    assert state(settings)["since_id"] == later[-1]


def test_a_malformed_page_in_the_middle_loses_nothing_and_repeats_nothing(settings, x, clock):
    """Page 1 (newest) reads, page 2 does not: page 1's tweets go out, since_id stays, and the next poll
    publishes only what page 2 held."""
    ids = mentions(x, 8)
    x.script_mentions(Answer(200, transform=lambda b: b), x.malformed(b"<html>502 Bad Gateway</html>"))
    src = source(settings, clock, page_size=5)
    with Publisher(settings.kafka, progress=False) as pub:
        r1 = src.poll(pub)
        assert (r1.published, r1.dead, r1.complete) == (5, 1, False)
        assert state(settings)["since_id"] is None and len(state(settings)["handled"]) == 5
        r2 = src.poll(pub)
        assert (r2.published, r2.dead, r2.complete) == (3, 0, True)
    got = tweets_of(read_topic(settings, settings.topic_raw, 8))
    assert sorted(t.id for t in got) == sorted(ids)  # each once
    assert state(settings) == {"account_id": ACCOUNT_ID, "since_id": ids[-1], "handled": []}


def test_an_unknown_expansion_refused_by_x_is_one_clear_error(settings, x, clock):
    src = source(settings, clock)
    with Publisher(settings.kafka, progress=False) as pub:
        with pytest.raises(tweepy.BadRequest, match="expansions.*not one of"):
            src.client.get_users_mentions(ACCOUNT_ID, user_auth=True, expansions=["author_id", "widgets"])
        assert src.poll(pub).complete  # our own request is one X accepts


# --- any page, any bytes: a record or a reason, never a crash ------------------------------------------------------
_KEYS = st.sampled_from(["data", "includes", "users", "tweets", "meta", "next_token", "id", "text", "author_id",
                         "username", "created_at", "entities", "mentions", "referenced_tweets", "type", "note_tweet",
                         "in_reply_to_user_id", "conversation_id"])
_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=12),
                     lambda c: st.lists(c, max_size=4) | st.dictionaries(_KEYS | st.text(max_size=4), c, max_size=6),
                     max_leaves=40)


@given(_JSON)
@hsettings(max_examples=150, deadline=None)
def test_any_json_page_gives_tweets_or_reasons_never_an_exception(doc):
    try:
        page = parse_page(json.dumps(doc), source="mentions")
    except PayloadError as e:
        assert str(e)
        return
    data = doc.get("data", []) if isinstance(doc, dict) else []
    assert len(page.tweets) + len(page.bad) == len(data)
    assert all(reason for _, reason in page.bad)


@given(st.binary(max_size=300))
@hsettings(max_examples=100, deadline=None)
def test_any_bytes_give_a_page_or_a_reason(raw):
    try:
        parse_page(raw, source="mentions")
    except PayloadError as e:
        assert str(e)
