"""X filtered-stream source against the local v2 stand-in (tests/fixtures/xstream.py) and the real broker."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from pydantic import SecretStr

from tests.fixtures.broker import read_topic, tweets_of
from tests.fixtures.xstream import TOKEN, drop, end, keepalive, raw, status, tweet
from tweetdesk.cli import main
from tweetdesk.ingest.xstream import (
    Backoff,
    BackoffState,
    ConnectBudget,
    XFilteredStream,
    XStreamError,
    run_x_stream,
    tweet_from_payload,
)
from tweetdesk.records import DeadLetter
from tweetdesk.x.payload import PayloadError
from tweetdesk.x.rules import summoned_by

RULES = ["@united OR to:united -is:retweet", "@Delta OR to:Delta"]
# X's policy shape, scaled down so a test waits milliseconds, not minutes.
FAST = Backoff(network_step=0.01, network_max=0.04, http_start=0.02, http_max=0.08,
               rate_limit_start=0.05, rate_limit_max=0.2)


@pytest.fixture
def x_settings(fresh_topics, x_standin):
    return fresh_topics.model_copy(update={
        "x_api_base": x_standin.url, "x_bearer_token": SecretStr(TOKEN), "x_rules": RULES,
    })


def client(settings, **kw) -> XFilteredStream:
    return XFilteredStream(settings, backoff=FAST, read_timeout=5.0, **kw)


def run(settings, limit, **kw):
    x = client(settings)
    try:
        stats = run_x_stream(settings, limit=limit, progress=False, client=x, **kw)
    finally:
        x.close()
    return stats, x


# --- policy (pure) -----------------------------------------------------------------------------------------------
def test_backoff_follows_x_guidance():
    b = BackoffState()
    assert [b.network() for _ in range(70)][:5] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert b.network() == 16.0  # capped
    assert [b.http(503) for _ in range(8)] == [5, 10, 20, 40, 80, 160, 320, 320]
    assert [b.http(429) for _ in range(3)] == [60, 120, 240]
    b.reset()
    assert (b.network(), b.http(500), b.http(429)) == (0.0, 5, 60)


def test_connect_budget_allows_50_per_15_minutes():
    now = [0.0]
    budget = ConnectBudget(clock=lambda: now[0])
    for i in range(50):
        assert budget.delay() == 0
        budget.record()
        now[0] += 1.0
    assert budget.delay() == pytest.approx(900.0 - 50.0)  # the first attempt leaves the window at t=900
    now[0] = 900.0
    assert budget.delay() == 0


# --- mapping -----------------------------------------------------------------------------------------------------
def test_payload_maps_to_tweet_with_thread_fields(x_standin):
    rid = x_standin.add_rule("@united OR to:united", tag="united-mentions")
    p = x_standin.payload("1899000000000000002", "@united still no bag. day 3", "kay_b", author_id="12345",
                          reply_to=("1899000000000000001", "12345"), conversation_id="1899000000000000001")
    t = tweet_from_payload(p, {rid: "@united OR to:united"})
    assert (t.id, t.author, t.author_id, t.source) == ("1899000000000000002", "kay_b", "12345", "x")
    assert (t.in_reply_to_tweet_id, t.in_reply_to_user_id, t.conversation_id) == (
        "1899000000000000001", "12345", "1899000000000000001")
    assert t.rule == "united-mentions" and t.brand == "united" and t.lang == "en"
    assert t.created_at.isoformat() == "2025-03-04T15:02:11+00:00"
    # no tag: the rule's value; no mention in the text: the rule's handle
    p["matching_rules"][0].pop("tag")
    p["data"]["text"] = "still no bag"
    t = tweet_from_payload(p, {rid: "@united OR to:united"})
    assert t.rule == "@united OR to:united" and t.brand == "united"
    # a long post: the full text is in note_tweet
    p["data"]["note_tweet"] = {"text": "long " * 100}
    assert tweet_from_payload(p).text == "long " * 100
    bad = x_standin.payload("1", "x", "kay_b")
    bad["includes"]["users"] = []
    with pytest.raises(ValueError, match="no username"):
        tweet_from_payload(bad)


def test_payload_fills_mentions_and_referenced_tweets_with_their_authors(x_standin):
    """X's entities.mentions and referenced tweets (with their authors, from includes) reach the record: what
    decides whether a tweet summoned us."""
    p = x_standin.payload("1899000000000000020", "@tweetdesk @united mail me at kay@delta.com, bag lost", "kay_b",
                          author_id="111", reply_to=("1899000000000000011", "999"), reply_to_author="tweetdesk",
                          quote_of=("1899000000000000005", "999", "tweetdesk"))
    t = tweet_from_payload(p)
    assert t.mentions == ["tweetdesk", "united"]  # X's own reading: the e-mail address is no mention
    assert [(r.type, r.id, r.author_id, r.author) for r in t.referenced_tweets] == [
        ("replied_to", "1899000000000000011", "999", "tweetdesk"),
        ("quoted", "1899000000000000005", "999", "tweetdesk"),
    ]
    assert t.in_reply_to_tweet_id == "1899000000000000011" and t.in_reply_to_user_id == "999"
    assert summoned_by(t, ["tweetdesk"]) == "mention" and summoned_by(t, ["delta"]) is None
    # A quote of our tweet that names nobody: X sends no entities, so mentions stay None (read from the text).
    q = x_standin.payload("1899000000000000021", "this, again", "kay_b", author_id="111",
                          quote_of=("1899000000000000005", "999", "tweetdesk"))
    tq = tweet_from_payload(q)
    assert tq.mentions is None and summoned_by(tq, ["tweetdesk"]) == "quote"
    # A referenced tweet X could not include (deleted, protected): its author is unknown, the tweet still maps.
    del q["includes"]["tweets"]
    assert [(r.id, r.author) for r in tweet_from_payload(q).referenced_tweets] == [("1899000000000000005", None)]
    # Malformed parts are errors with a reason (the stream turns them into dead letters).
    bad = x_standin.payload("1899000000000000022", "@tweetdesk hi", "kay_b")
    bad["data"]["entities"] = {"mentions": "tweetdesk"}
    with pytest.raises(PayloadError, match="entities.mentions"):
        tweet_from_payload(bad)
    bad = x_standin.payload("1899000000000000023", "hi", "kay_b")
    bad["includes"] = {"users": {"id": "1"}}
    with pytest.raises(PayloadError, match="includes.users"):
        tweet_from_payload(bad)
    bad = x_standin.payload("1899000000000000024", "hi", "kay_b", quote_of=("1899000000000000005", "999", "x"))
    bad["data"]["referenced_tweets"][0]["type"] = "boosted"
    with pytest.raises(PayloadError, match="referenced_tweets"):
        tweet_from_payload(bad)


# --- against the stand-in ----------------------------------------------------------------------------------------
def test_rules_are_synced_add_missing_delete_stale(x_settings, x_standin):
    x_standin.add_rule(RULES[0], tag=RULES[0])  # already there: kept
    x_standin.add_rule("from:someone_else")  # stale: deleted
    x = client(x_settings)
    try:
        sync = x.sync_rules()
        assert sync.kept == [RULES[0]] and sync.added == [RULES[1]] and sync.deleted == ["from:someone_else"]
        assert sorted(r["value"] for r in x_standin.rules.values()) == sorted(RULES)
        assert all(r["tag"] == r["value"] for r in x_standin.rules.values())
        assert set(sync.by_id) == set(x_standin.rules)
        again = x.sync_rules()  # idempotent: nothing to change
        assert (again.added, again.deleted) == ([], [])
    finally:
        x.close()
    assert all(r["authorized"] for r in x_standin.requests)


def test_invalid_rule_is_a_clear_error(x_settings):
    x = client(x_settings.model_copy(update={"x_rules": ["(@united OR"]}))
    try:
        with pytest.raises(XStreamError, match="rejected stream rules.*Rule syntax error"):
            x.sync_rules()
    finally:
        x.close()


def test_stream_tweets_are_published_with_thread_fields(x_settings, x_standin, caplog):
    caplog.set_level(logging.DEBUG)  # tweepy's debug log would print the Authorization header
    x_standin.add_rule(RULES[0], tag=RULES[0])
    root = x_standin.payload("1899000000000000010", "@united flight UA 1234 delayed 3 hrs, missing my connection",
                             "kay_b", author_id="111")
    own = x_standin.payload("1899000000000000011", "@kay_b Sorry about the delay. Ticket DLY-7KQ4M2XZ-H is open.",
                            "tweetdesk", author_id="999", reply_to=("1899000000000000010", "111"),
                            conversation_id="1899000000000000010")
    follow = x_standin.payload("1899000000000000012", "@tweetdesk thanks, rebooked on the 7am",
                               "kay_b", author_id="111", reply_to=("1899000000000000011", "999"),
                               conversation_id="1899000000000000010")
    x_standin.script([keepalive(), tweet(root), keepalive(), tweet(own), tweet(follow)])
    stats, x = run(x_settings, limit=3)
    assert stats.published == 3 and stats.dead == 0 and stats.ok
    got = {t.id: t for t in tweets_of(read_topic(x_settings, x_settings.topic_raw, 3))}
    assert len(got) == 3
    r, o, f = got["1899000000000000010"], got["1899000000000000011"], got["1899000000000000012"]
    assert r.in_reply_to_tweet_id is None and r.conversation_id == r.id and r.author == "kay_b"
    assert o.author == "tweetdesk" and o.in_reply_to_tweet_id == r.id and o.in_reply_to_user_id == "111"
    assert f.in_reply_to_tweet_id == o.id and f.conversation_id == r.id and f.in_reply_to_user_id == "999"
    assert all(t.source == "x" and t.rule == RULES[0] and t.ingested_at for t in got.values())
    assert r.brand == "united"
    assert x.counts["keep_alives"] >= 2 and x.counts["connects"] == 1
    # the request asked for the fields replies need
    q = next(rq["query"] for rq in x_standin.requests if rq["path"] == "/2/tweets/search/stream")
    fields = set(q["tweet.fields"][0].split(","))
    assert {"created_at", "lang", "author_id", "conversation_id", "in_reply_to_user_id", "referenced_tweets"} <= fields
    assert {"entities", "note_tweet"} <= fields
    assert set(q["expansions"][0].split(",")) == {
        "author_id", "referenced_tweets.id", "referenced_tweets.id.author_id", "entities.mentions.username",
        "in_reply_to_user_id"}
    assert q["user.fields"] == ["username"]
    # the bearer token never reaches a log line
    assert caplog.records and not any(TOKEN in rec.getMessage() for rec in caplog.records)


def test_reconnects_after_a_dropped_connection_and_a_clean_close(x_settings, x_standin):
    x_standin.add_rule(RULES[0], tag=RULES[0])
    p = [x_standin.payload(f"18990000000000001{i:02d}", f"@united message {i}", "kay_b") for i in range(3)]
    x_standin.script([tweet(p[0]), drop()], [tweet(p[1]), end()], [tweet(p[2])])
    stats, x = run(x_settings, limit=3)
    assert stats.published == 3
    assert sorted(t.id for t in tweets_of(read_topic(x_settings, x_settings.topic_raw, 3))) == [q["data"]["id"] for q in p]
    assert x.counts["connects"] == 3 and x.counts["reconnects"] == 2 and x.counts["network_errors"] == 1
    # an established stream that drops is retried at once (X: reconnect immediately, then back off linearly)
    assert [w for _, w in x.waits] == [0.0, 0.0]


def test_reconnects_with_backoff_after_503_and_429(x_settings, x_standin):
    x_standin.add_rule(RULES[0], tag=RULES[0])
    p = x_standin.payload("1899000000000000200", "@united finally", "kay_b")
    x_standin.script([status(503)], [status(503)], [status(429)], [status(429)], [tweet(p)])
    stats, x = run(x_settings, limit=1)
    assert stats.published == 1 and x_standin.stream_statuses == [503, 503, 429, 429, 200]
    assert [w for _, w in x.waits] == [FAST.http_start, 2 * FAST.http_start, FAST.rate_limit_start,
                                       2 * FAST.rate_limit_start]
    assert x.counts["http_errors"] == 4 and x.counts["connects"] == 1


def test_connect_budget_is_respected(x_settings, x_standin):
    x_standin.add_rule(RULES[0], tag=RULES[0])
    p = x_standin.payload("1899000000000000300", "@united hello", "kay_b")
    x_standin.script([drop()], [drop()], [tweet(p)])
    now = [0.0]
    budget = ConnectBudget(limit=2, window=900.0, clock=lambda: now[0])
    x = XFilteredStream(x_settings, backoff=FAST, budget=budget, read_timeout=5.0)
    stop = threading.Event()
    result = {}

    def go():
        result["stats"] = run_x_stream(x_settings, limit=1, progress=False, client=x, stop=stop)

    th = threading.Thread(target=go)
    th.start()
    deadline = time.monotonic() + 10.0
    while not any("50 connects" in why for why, _ in x.waits) and time.monotonic() < deadline:
        time.sleep(0.02)
    # two connects used up the budget: the third waits for the window instead of hammering the API
    assert th.is_alive() and x_standin.stream_connects == 2
    assert any("50 connects" in why and w == pytest.approx(900.0) for why, w in x.waits)
    stop.set()
    th.join(5.0)
    x.close()
    assert not th.is_alive() and result["stats"].published == 0


def test_malformed_payloads_become_dead_letters(x_settings, x_standin):
    x_standin.add_rule(RULES[0], tag=RULES[0])
    no_text = x_standin.payload("1899000000000000400", "x", "kay_b")
    del no_text["data"]["text"]
    good = x_standin.payload("1899000000000000401", "@united ok", "kay_b")
    disconnect_notice = {"errors": [{"title": "operational-disconnect", "disconnect_type": "UpstreamOperationalDisconnect",
                                     "detail": "This stream has been disconnected upstream for operational reasons."}]}
    x_standin.script([raw(b"{not json"), tweet(no_text), tweet(disconnect_notice), raw(b"[1]"), tweet(good)])
    stats, _ = run(x_settings, limit=4)
    assert (stats.published, stats.dead) == (1, 3)
    dead = [DeadLetter.model_validate_json(m.value()) for m in read_topic(x_settings, x_settings.topic_dead, 3)]
    reasons = sorted(d.reason for d in dead)
    assert len(dead) == 3 and all(d.stage == "ingest" for d in dead)
    assert any("not JSON" in r for r in reasons) and any("text" in r for r in reasons)
    assert any("not a JSON object" in r for r in reasons)


def test_bad_bearer_token_is_a_clear_error(x_settings, x_standin):
    bad = x_settings.model_copy(update={"x_bearer_token": SecretStr("wrong-token")})
    with pytest.raises(XStreamError, match="401 Unauthorized.*TWEETDESK_X_BEARER_TOKEN"):
        run(bad, limit=1)
    assert x_standin.stream_connects == 0  # refused at the rules call, before any stream connect


def test_stream_refusal_is_fatal_not_retried(x_settings, x_standin):
    x_standin.add_rule(RULES[0], tag=RULES[0])
    x_standin.script([status(403)], [tweet(x_standin.payload("1", "@united x", "a"))])
    with pytest.raises(XStreamError, match="HTTP 403 forbidden"):
        run(x_settings, limit=1)
    assert x_standin.stream_connects == 1


def test_missing_token_names_the_env_var(x_settings, monkeypatch, capsys):
    with pytest.raises(XStreamError, match="TWEETDESK_X_BEARER_TOKEN"):
        XFilteredStream(x_settings.model_copy(update={"x_bearer_token": None}))
    monkeypatch.delenv("TWEETDESK_X_BEARER_TOKEN", raising=False)
    assert main(["ingest", "x"]) == 1
    err = capsys.readouterr().err
    assert "TWEETDESK_X_BEARER_TOKEN" in err and err.count("\n") == 1


def test_cli_ingest_x_end_to_end(x_settings, x_standin, monkeypatch, capsys):
    x_standin.add_rule("@united OR to:united -is:retweet", tag="@united OR to:united -is:retweet")
    x_standin.script([tweet(x_standin.payload("1899000000000000500", "@united cli path", "kay_b"))])
    for k, v in {"KAFKA_BOOTSTRAP": x_settings.kafka_bootstrap, "TOPIC_RAW": x_settings.topic_raw,
                 "TOPIC_DEAD": x_settings.topic_dead, "X_API_BASE": x_standin.url, "X_BEARER_TOKEN": TOKEN,
                 "X_RULES": '["@united OR to:united -is:retweet"]', "WORK_DIR": str(x_settings.work_dir)}.items():
        monkeypatch.setenv(f"TWEETDESK_{k}", v)
    assert main(["ingest", "x", "--limit", "1"]) == 0
    assert "published 1 tweets" in capsys.readouterr().err
    [t] = tweets_of(read_topic(x_settings, x_settings.topic_raw, 1))
    assert t.id == "1899000000000000500" and t.rule == "@united OR to:united -is:retweet"
