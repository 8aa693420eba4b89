"""Contract tests: the poster and tweepy against the local X API v2 stand-in (tests/fixtures/xapi.py)."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone

import pytest

from tests.fixtures.clock import FakeClock
from tests.fixtures.store import enriched_tweet
from tweetdesk.config import Settings
from tweetdesk.records import ReplyStatus
from tweetdesk.reply.poster import Poster, make_x_client
from tweetdesk.reply.templates import ReplyTemplates
from tweetdesk.tickets.store import TicketStatus, TicketStore


def live_settings(tmp_path, xapi, **kw) -> Settings:
    return Settings(
        work_dir=tmp_path,
        x_api_base=xapi.base_url,
        x_consumer_key="ck",
        x_consumer_secret="cs",
        x_access_token="at",
        x_access_token_secret="ats",
        **kw,
    )


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def live(tmp_path, xapi, clock):
    """(settings, store, poster) in live mode against the stand-in, on a fake clock."""
    settings = live_settings(tmp_path, xapi, reply_max_attempts=3)
    store = TicketStore(settings.store.db_url, clock=clock.dt)
    poster = Poster(settings, store, clock=clock, backoff_base=10.0)
    yield settings, store, poster
    store.close()


def _open(store, tweet_id="1001", **kw):
    tw = enriched_tweet(tweet_id, **kw)
    res = store.add_tickets([tw], ReplyTemplates.load().render)
    return tw, res.replies[0]


def test_tweepy_sends_the_reply_body_with_user_context(live, xapi):
    settings, store, poster = live
    tw, rid = _open(store)
    out = poster.attempt(rid)
    assert out.kind == "posted"
    [req] = xapi.post_requests()
    assert req.path == "/2/tweets"
    assert req.body == {"text": store.get_reply(rid).text, "reply": {"in_reply_to_tweet_id": "1001"}}
    assert req.headers["Authorization"].startswith("OAuth ")
    assert 'oauth_consumer_key="ck"' in req.headers["Authorization"]
    assert 'oauth_token="at"' in req.headers["Authorization"]
    reply, ticket = store.get_reply(rid), store.get_ticket(tw.ticket_id)
    assert reply.status == ReplyStatus.posted and reply.posted_id == xapi.posts[0]["id"]
    assert ticket.status == TicketStatus.replied and ticket.posted_reply_id == xapi.posts[0]["id"]
    # The public reply names the customer and the ticket, and echoes nothing else from the tweet.
    text = xapi.posts[0]["text"]
    assert text.startswith("@jane_doe ") and tw.ticket_id in text
    assert "@otherbrand" not in text and "@united" not in text and "http" not in text and "spam.example" not in text


def test_client_is_rebased_and_times_out():
    s = Settings(x_api_base="http://127.0.0.1:9/")
    client = make_x_client(s)
    assert client.session.base == "http://127.0.0.1:9"
    assert client.session.timeout  # tweepy itself sets no timeout


def test_429_waits_until_reset_then_succeeds(live, xapi, clock):
    settings, store, poster = live
    tw, rid = _open(store)
    reset = int(clock()) + 300
    xapi.script(xapi.rate_limited(reset=reset))
    assert poster.attempt(rid).kind == "retry"
    r = store.get_reply(rid)
    assert r.status == ReplyStatus.queued and r.not_before == datetime.fromtimestamp(reset + 1, timezone.utc)
    assert r.attempts == 0  # a 429 is X's budget, not a failed try
    # Before the reset nothing is sent.
    clock.t = reset - 10
    poster.step()
    assert len(xapi.post_requests()) == 1
    # After it, the reply goes out.
    clock.t = reset + 2
    poster.step()
    assert len(xapi.post_requests()) == 2
    assert store.get_reply(rid).status == ReplyStatus.posted
    assert store.get_ticket(tw.ticket_id).status == TicketStatus.replied


def test_5xx_backs_off_then_the_ticket_fails_with_the_reason(live, xapi, clock):
    settings, store, _ = live  # reply_max_attempts=3, backoff 10 s, 20 s
    # Give-up time 0: the last attempt fails the reply (by default it must also be an hour past its first try).
    poster = Poster(settings.model_copy(update={"reply_give_up_after_seconds": 0}), store, clock=clock, backoff_base=10.0)
    tw, rid = _open(store)
    xapi.script(xapi.unavailable(), xapi.unavailable(), xapi.unavailable(), xapi.ok())
    assert poster.attempt(rid).kind == "retry"
    assert store.get_reply(rid).not_before == datetime.fromtimestamp(clock() + 10, timezone.utc)
    clock.t += 10
    poster.step()
    assert store.get_reply(rid).not_before == datetime.fromtimestamp(clock() + 20, timezone.utc)
    clock.t += 20
    poster.step()
    assert len(xapi.post_requests()) == 3
    reply, ticket = store.get_reply(rid), store.get_ticket(tw.ticket_id)
    assert reply.status == ReplyStatus.failed and reply.attempts == 3
    assert ticket.status == TicketStatus.failed
    assert "503" in ticket.last_error and "after 3 attempts" in ticket.last_error
    clock.t += 3600
    poster.step()  # a failed reply is never tried again
    assert len(xapi.post_requests()) == 3 and not xapi.posts


def test_a_4xx_fails_at_once(live, xapi):
    settings, store, poster = live
    tw, rid = _open(store)
    from tests.fixtures.xapi import Answer

    xapi.script(Answer(400, {"title": "Invalid Request", "detail": "bad", "errors": [{"message": "text too long"}]}))
    assert poster.attempt(rid).kind == "failed"
    assert "400" in store.get_ticket(tw.ticket_id).last_error
    assert len(xapi.post_requests()) == 1


def test_unreachable_x_is_retried_not_guessed(tmp_path, clock):
    settings = Settings(
        work_dir=tmp_path, x_api_base="http://127.0.0.1:9", x_consumer_key="a", x_consumer_secret="b",
        x_access_token="c", x_access_token_secret="d", reply_max_attempts=2, reply_give_up_after_seconds=0,
    )
    store = TicketStore(settings.store.db_url, clock=clock.dt)
    poster = Poster(settings, store, clock=clock, backoff_base=1.0)
    tw, rid = _open(store)
    assert poster.attempt(rid).kind == "retry"  # connection refused: nothing reached X
    clock.t += 1
    poster.step()
    r = store.get_reply(rid)
    assert r.status == ReplyStatus.failed and "cannot reach X API" in r.error


def test_crash_during_the_call_is_verified_not_reposted(live, xapi, clock):
    """The process died after X accepted the post but before we stored its id (row left 'posting')."""
    settings, store, poster = live
    tw, rid = _open(store)
    store.claim(rid)  # the intent, as committed before the HTTP call...
    posted_id = make_x_client(settings).create_tweet(
        text=store.get_reply(rid).text, in_reply_to_tweet_id=tw.id, user_auth=True
    )["data"]["id"]  # ...and the call X accepted; then the process "died".
    restarted = Poster(settings, store, clock=clock)
    assert restarted.recover() == {"requeued": 0, "verified_posted": 1, "unknown": 0}
    restarted.step()
    assert len(xapi.posts) == 1 and len(xapi.post_requests()) == 1
    assert store.get_reply(rid).posted_id == posted_id
    assert store.get_ticket(tw.ticket_id).status == TicketStatus.replied


def test_crash_before_the_call_reached_x_posts_once(live, xapi, clock):
    settings, store, poster = live
    tw, rid = _open(store)
    store.claim(rid)  # died right after committing the intent: X has nothing
    restarted = Poster(settings, store, clock=clock)
    assert restarted.recover()["requeued"] == 1
    clock.t += 60
    restarted.step()
    assert len(xapi.posts) == 1 and store.get_reply(rid).status == ReplyStatus.posted


def test_unverifiable_post_is_left_for_an_agent(live, xapi, clock, tmp_path):
    settings, store, poster = live
    tw, rid = _open(store)
    store.claim(rid)
    broken = live_settings(tmp_path, xapi).model_copy(update={"x_api_base": "http://127.0.0.1:9"})
    restarted = Poster(broken, store, clock=clock)
    assert restarted.recover()["unknown"] == 1
    clock.t += 3600
    restarted.step()
    assert store.get_reply(rid).status == ReplyStatus.unknown
    assert not xapi.post_requests()


def test_duplicate_content_answer_is_taken_as_already_posted(live, xapi):
    settings, store, poster = live
    tw, rid = _open(store)
    text = store.get_reply(rid).text
    make_x_client(settings).create_tweet(text=text, in_reply_to_tweet_id=tw.id, user_auth=True)
    assert poster.attempt(rid).kind == "posted"  # X said 403 duplicate; the timeline confirms it
    assert len(xapi.posts) == 1


def test_no_credentials_means_dry_run_with_a_warning(tmp_path, caplog, xapi):
    settings = Settings(work_dir=tmp_path, x_api_base=xapi.base_url)
    store = TicketStore(settings.store.db_url)
    with caplog.at_level(logging.INFO, logger="tweetdesk.reply.poster"):
        poster = Poster(settings, store)
        tw, rid = _open(store)
        poster.step()
    assert poster.mode == "dry-run"
    assert any(r.levelno == logging.WARNING and "DRY-RUN" in r.getMessage() for r in caplog.records)
    assert any("DRY-RUN reply to tweet 1001" in r.getMessage() for r in caplog.records)
    r = store.get_reply(rid)
    assert r.status == ReplyStatus.dry_run and r.dry_run and r.posted_id is None
    assert store.get_ticket(tw.ticket_id).status == TicketStatus.replied
    assert not xapi.requests  # nothing left the machine


def test_partial_credentials_are_dry_run(tmp_path):
    s = Settings(work_dir=tmp_path, x_consumer_key="only-this-one")
    assert Poster(s, TicketStore(s.store.db_url)).mode == "dry-run"


def test_dry_run_can_be_forced_with_credentials_set(tmp_path, caplog, xapi):
    """What the demo does: credentials in the environment, yet nothing leaves the machine."""
    settings = live_settings(tmp_path, xapi)
    store = TicketStore(settings.store.db_url)
    with caplog.at_level(logging.WARNING, logger="tweetdesk.reply.poster"):
        poster = Poster(settings, store, live=False)
    _, rid = _open(store)
    poster.step()
    assert poster.mode == "dry-run" and store.get_reply(rid).status == ReplyStatus.dry_run
    assert any("DRY-RUN mode (asked for)" in r.getMessage() for r in caplog.records)
    assert not xapi.requests


def test_background_loop_honours_a_real_reset_header(tmp_path, xapi):
    """The same 429 path with the real clock and the poster thread (reset one second ahead)."""
    import time

    settings = live_settings(tmp_path, xapi)
    store = TicketStore(settings.store.db_url)
    poster = Poster(settings, store)
    tw, rid = _open(store)
    xapi.script(xapi.rate_limited(reset=int(time.time()) + 1))
    stop = threading.Event()
    t = threading.Thread(target=poster.run, args=(stop,), daemon=True)
    t.start()
    try:
        assert xapi.wait_for(lambda x: len(x.posts) == 1, timeout=20)
    finally:
        stop.set()
        poster.wake()
        t.join(10)
    first, second = xapi.post_requests()
    assert second.at >= int(first.at) + 1  # not retried before the announced reset
    assert store.get_reply(rid).status == ReplyStatus.posted


def test_local_budget_holds_posts_back(tmp_path, xapi, clock):
    settings = live_settings(tmp_path, xapi, reply_limit=2, reply_window_seconds=900)
    store = TicketStore(settings.store.db_url, clock=clock.dt)
    poster = Poster(settings, store, clock=clock)
    ids = [_open(store, str(2000 + i))[1] for i in range(3)]
    poster.deliver(ids)
    assert len(xapi.posts) == 2
    assert store.get_reply(ids[2]).status == ReplyStatus.queued
    clock.t += 901
    poster.step()
    assert len(xapi.posts) == 3


def _x_down_until(xapi, clock, until: float) -> dict[str, list[float]]:
    """Make the stand-in answer 503 to every POST while the fake clock is before ``until``; returns the
    fake-clock times of the 503s and of the accepted posts."""
    seen: dict[str, list[float]] = {"down": [], "accepted": []}
    real = xapi._answer_post

    def answer(headers, body):
        if clock() < until:
            seen["down"].append(clock())
            return 503, {"title": "Service Unavailable", "status": 503, "detail": "down"}, {}
        status, out, hdrs = real(headers, body)
        if status == 201:
            seen["accepted"].append(clock())
        return status, out, hdrs

    xapi._answer_post = answer
    return seen


def test_an_outage_pauses_the_drain_and_the_queue_drains_after_it_within_the_rate_limit(tmp_path, xapi, clock):
    """Issue 6: X down for 20 minutes (simulated clock) with 50 replies queued, default retry settings
    (5 attempts, backoff from 2 s capped at 300 s, give up after an hour). One probe per backoff step,
    not one request per reply per step; nothing failed; everything posted once after X returns, within
    the posting limit."""
    limit, window = 20, 600
    settings = live_settings(tmp_path, xapi, reply_limit=limit, reply_window_seconds=window)
    assert settings.reply_max_attempts == 5 and settings.reply_give_up_after_seconds == 3600
    store = TicketStore(settings.store.db_url, clock=clock.dt)
    poster = Poster(settings, store, clock=clock)  # default backoff: 2 s, doubling, capped at 300 s
    ids = [_open(store, str(3000 + i))[1] for i in range(50)]
    start = clock()
    back = start + 20 * 60
    seen = _x_down_until(xapi, clock, back)
    poster.deliver(ids)  # what the consumer does as the replies arrive
    while clock() < back + 4 * 3600 and len(xapi.posts) < len(ids):
        clock.t += max(poster.step(), 0.5)
        assert not store.list_replies(ReplyStatus.failed)
    during = len(seen["down"])
    accepted = sorted(seen["accepted"])
    busiest = max(sum(1 for t in accepted if s <= t < s + window) for s in accepted)
    drain = accepted[-1] - back
    print(f"\noutage 20 min, 50 replies queued: {during} requests during the outage, first post "
          f"{accepted[0] - back:.0f} s after X returned, all {len(accepted)} posted {drain:.0f} s after it returned; "
          f"busiest {window} s window: {busiest}/{limit}")
    assert during <= 15  # one probe per backoff step (2, 4, … 300 s), not 50 per step
    assert all(t >= back for t in accepted)  # nothing got through while X was down
    assert accepted[0] - back <= 300  # the next probe comes within the backoff cap
    assert not store.list_replies(ReplyStatus.failed)
    assert all(store.get_reply(r).status == ReplyStatus.posted for r in ids)
    per_tweet = [p["in_reply_to_tweet_id"] for p in xapi.posts]
    assert len(per_tweet) == len(set(per_tweet)) == len(ids)  # each posted exactly once
    assert busiest <= limit  # the budget scheduler still paces the drain
    assert sum(store.get_reply(r).attempts > 1 for r in ids) == 1  # only the probe's attempts counted


def test_a_reply_fails_only_after_its_attempts_and_the_give_up_time(tmp_path, xapi, clock):
    """X stays down: the probed reply is failed, with the reason, once it has had reply_max_attempts
    *and* its first attempt is reply_give_up_after_seconds old; the others were never tried."""
    settings = live_settings(tmp_path, xapi, reply_max_attempts=3, reply_give_up_after_seconds=600)
    store = TicketStore(settings.store.db_url, clock=clock.dt)
    poster = Poster(settings, store, clock=clock, backoff_base=10.0, backoff_cap=120.0)
    ids = [_open(store, str(4000 + i))[1] for i in range(5)]
    start = clock()
    seen = _x_down_until(xapi, clock, start + 10 * 3600)
    poster.deliver(ids)
    failed_at = None
    while clock() < start + 900:
        clock.t += max(poster.step(), 0.5)
        if failed_at is None and store.list_replies(ReplyStatus.failed):
            failed_at = clock() - start
    [failed] = store.list_replies(ReplyStatus.failed)
    assert failed.id == ids[0] and failed.attempts > 3  # 3 attempts came within 30 s: not enough
    assert 600 <= failed_at <= 600 + 120 + 60
    assert "503" in failed.error and "attempts" in failed.error
    assert store.get_ticket(failed.ticket_id).status == TicketStatus.failed
    assert all(store.get_reply(r).attempts == 0 for r in ids[2:])  # the next probe is the next reply alone
    assert store.get_reply(ids[1]).status == ReplyStatus.queued
    assert len(seen["down"]) <= 12
