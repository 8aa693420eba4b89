"""The reply budget: priority classes, the sliding window + pacing, spend, never a URL, restarts — on the real
ticket store (SQLite and PostgreSQL) with a fake clock, posting to the X API stand-in; and the reply service
on the session's broker holding replies back once the window is spent."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
import requests
from pydantic import SecretStr

from tests.fixtures.clock import FakeClock
from tests.fixtures.store import enriched_tweet
from tweetdesk.config import Settings
from tweetdesk.records import ReplyStatus
from tweetdesk.reply.budget import ReplyBudget
from tweetdesk.reply.poster import Poster
from tweetdesk.reply.templates import ReplyTemplates, find_urls
from tweetdesk.tickets.intake import Intake
from tweetdesk.tickets.priority import AGENT, NEGATIVE, NEUTRAL, POSITIVE, URGENT, priority_of
from tweetdesk.tickets.store import ReplyKind, TicketStore
from tweetdesk.web.queries import dashboard_figures

RENDER = ReplyTemplates.load().render



def live_settings(tmp_path, xapi=None, **kw) -> Settings:
    return Settings(
        work_dir=tmp_path,
        x_api_base=xapi.base_url if xapi else "http://127.0.0.1:9",
        x_consumer_key="ck",
        x_consumer_secret="cs",
        x_access_token="at",
        x_access_token_secret="ats",
        **kw,
    )


def mixed(n: int, start: int = 10_000) -> list:
    """n tweets cycling through the four classes, oldest first, distinct authors."""
    kinds = [
        dict(sentiment="positive", topic="Customer Experience", text="@united thanks, great crew today", entities=[]),
        dict(sentiment="neutral", topic="Online Booking", text="@united does the app show seat maps?", entities=[]),
        dict(sentiment="negative", topic="Extra Charges", text="@united why a fee for a carry-on", entities=[]),
        dict(sentiment="negative", topic="Delay and Customer Service", text="@united delayed 3 hours, no update", entities=[]),
    ]
    t0 = datetime(2025, 10, 9, 8, 0, tzinfo=timezone.utc)
    return [
        enriched_tweet(str(start + i), author=f"c{i}", created_at=t0 + timedelta(seconds=i), **kinds[i % 4])
        for i in range(n)
    ]


def test_priority_classes():
    def p(**kw):
        kw.setdefault("entities", [])
        return priority_of(enriched_tweet("1", **kw))

    assert p(sentiment="negative", topic="Baggage Issue", text="bag") == URGENT
    assert p(sentiment="negative", topic="Seating Preferences", text="they cancelled my flight") == URGENT
    assert p(sentiment="negative", topic="Customer Experience", text="rude crew on",
             entities=[{"text": "UA 12", "label": "FLIGHT", "start": 0, "end": 5}]) == URGENT
    assert p(sentiment="negative", topic="Customer Experience", text="rude crew") == NEGATIVE
    assert p(sentiment="neutral", topic="Baggage Issue", text="delayed?") == NEUTRAL
    assert p(sentiment="unclassifiable", topic="unclassifiable", text=":)") == NEUTRAL
    assert p(sentiment="positive", topic="Baggage Issue", text="bag found, thanks") == POSITIVE


def test_window_and_pacing_on_the_store(store):
    settings = live_settings("/tmp")
    clock = FakeClock()
    store.clock = clock.dt
    budget = ReplyBudget(settings, store, clock=clock)
    assert budget.allowance().posts == 10  # the burst

    def post(n):
        res = store.add_tickets(mixed(n, start=int(clock.t * 10) % 10**9 + 1), RENDER)
        for rid in res.replies:
            store.claim(rid)
            store.record_posted(rid, str(rid), cost_usd=budget.cost_of("x"))

    post(10)
    a = budget.allowance()
    assert a.posts == 0 and a.binding == "pacing" and a.wait == pytest.approx(9.0)
    clock.t += 9
    assert budget.allowance().posts == 1
    # Spread posts so pacing never binds: the window does, at 100.
    for _ in range(90):
        post(budget.allowance().posts)
        clock.t += 9.0
    # 100 posts in the last 900 s: the window binds until the oldest leaves it.
    clock.t -= 9.0
    post(budget.allowance().posts)
    assert store.posted_since(clock.dt() - timedelta(seconds=900)) <= 100
    times = store.post_times(clock.dt() - timedelta(days=1))
    assert all((times[i + 100] - times[i]).total_seconds() >= 900 for i in range(len(times) - 100))
    assert store.spend_since(clock.dt() - timedelta(days=1)) == pytest.approx(0.01 * len(times))  # summoned replies (X: $0.01)


def test_poster_drains_by_priority_within_the_limit_and_never_posts_a_url(tmp_path, xapi):
    """130 replies queued at once; 30 minutes of fake time: ≤ 100 posts in any 15 minutes, urgent
    first, oldest first within a class, the agent's reply before all; a URL reply is failed, not posted."""
    clock = FakeClock()
    settings = live_settings(tmp_path, xapi)
    store = TicketStore(settings.store.db_url, clock=clock.dt)
    tweets = mixed(130)
    store.add_tickets(tweets, RENDER, intake=Intake.from_settings(settings), priority=priority_of)
    agent, _ = store.queue_reply(tweets[-1].id, f"@{tweets[-1].author} an agent is on it, ref {tweets[-1].ticket_id}")
    spam, _ = store.queue_reply(tweets[0].id, "@c0 see united.com/help", key="url")  # the API would refuse it
    poster = Poster(settings, store, clock=clock)
    start = clock.t
    while clock.t - start < 1800:
        wait = poster.step()
        clock.t += max(wait, 0.5)
    # The fake clock stands still during one step: posts of one instant sort in the order they went.
    posted = sorted(
        store.list_replies(ReplyStatus.posted, limit=1000), key=lambda r: (r.posted_at, r.priority, r.created_at, r.id)
    )
    times = [r.posted_at for r in posted]
    assert len(xapi.posts) == len(posted) == 131  # 130 + the agent's: 100 in the first window, the rest as it slides
    assert all((times[i + 100] - times[i]).total_seconds() >= 900 for i in range(len(times) - 100))
    assert not any(find_urls(p["text"]) for p in xapi.posts)
    assert store.get_reply(spam.id).status == ReplyStatus.failed and "URL" in store.get_reply(spam.id).error
    assert posted[0].id == agent.id and posted[0].priority == AGENT
    order = [(r.priority, r.created_at, r.id) for r in posted if r.kind == ReplyKind.auto]
    assert order == sorted(order)
    first_window = [r for r in posted if (r.posted_at - times[0]).total_seconds() < 900]
    # The first window goes to the agent, every urgent, negative and neutral reply, then positives.
    per_class = {p: sum(1 for t in tweets if priority_of(t) == p) for p in (URGENT, NEGATIVE, NEUTRAL)}
    assert len(first_window) == 100
    assert sum(r.priority == POSITIVE for r in first_window) == 100 - 1 - sum(per_class.values())
    assert store.spend_since(clock.dt() - timedelta(days=1)) == pytest.approx(0.01 * 131)  # summoned replies (X: $0.01)
    store.close()


def test_the_budget_survives_a_restart(tmp_path, xapi):
    clock = FakeClock()
    settings = live_settings(tmp_path, xapi, reply_limit=10, reply_burst=10)
    store = TicketStore(settings.store.db_url, clock=clock.dt)
    ids = store.add_tickets(mixed(15), RENDER, priority=priority_of).replies
    Poster(settings, store, clock=clock).deliver(ids)
    assert len(xapi.posts) == 10
    clock.t += 60
    # A new process on the same store: the window is still spent.
    again = Poster(settings, TicketStore(settings.store.db_url, clock=clock.dt), clock=clock)
    assert again.budget_wait() == pytest.approx(900 - 60)
    again.step()
    assert len(xapi.posts) == 10
    clock.t += 900 - 60
    again.step()
    assert len(xapi.posts) == 15


def test_a_429_stops_the_drain_until_reset(tmp_path, xapi):
    clock = FakeClock()
    settings = live_settings(tmp_path, xapi)
    store = TicketStore(settings.store.db_url, clock=clock.dt)
    ids = store.add_tickets(mixed(5), RENDER, priority=priority_of).replies
    xapi.script(xapi.rate_limited(reset=int(clock.t) + 120))
    poster = Poster(settings, store, clock=clock)
    poster.deliver(ids)
    assert len(xapi.post_requests()) == 1  # not one 429 per queued reply
    assert poster.step() == 60.0 and len(xapi.post_requests()) == 1  # waits (re-checking each minute)
    clock.t += 125
    poster.step()
    assert len(xapi.posts) == 5


def test_dry_run_rehearses_the_budget_when_asked(tmp_path):
    clock = FakeClock()
    settings = Settings(work_dir=tmp_path, reply_limit=4, reply_budget_dry_run=True)
    store = TicketStore(settings.store.db_url, clock=clock.dt)
    ids = store.add_tickets(mixed(6), RENDER, priority=priority_of).replies
    poster = Poster(settings, store, clock=clock)
    poster.deliver(ids)
    assert store.stats()["replies_by_status"] == {"dry_run": 4, "queued": 2}
    f = dashboard_figures(store, settings, clock=clock)
    assert f == {
        "queue_length": 2, "expected_wait_seconds": pytest.approx(2 * 900 / 4), "replies_this_window": 4,
        "reply_limit": 4, "window_seconds": 900, "spend_today_usd": 0.0, "flood_reasons": [],
        # a rehearsal is enforced; dry-run posts cost nothing and read nothing from X
        "enforced": True, "spend_month_usd": 0.0, "reads_month": 0, "monthly_read_cap": 3_000_000,
        "read_cap_warning": None, "x_usage": {"today": {}, "month": {}},
        # no DM rehearsed: X's DM caps leave room
        "dms": {"sent_this_window": 0, "limit": 15, "window_seconds": 900, "sent_24h": 0, "daily_limit": 1440,
                "next_dm_in_seconds": 0.0, "held_by": None},
    }
    # Without the setting, dry-run lets everything through at once (as before the budget).
    plain = Poster(Settings(work_dir=tmp_path / "plain"), TicketStore(Settings(work_dir=tmp_path / "plain").store.db_url), clock=clock)
    assert not plain.budget.enforced and plain.budget_wait() == 0


def test_the_service_on_the_broker_holds_replies_back_and_reports_the_budget(fresh_topics, xapi, tmp_path):
    from tweetdesk.kafka.client import make_producer
    from tweetdesk.serve import ReplyService

    settings = fresh_topics.model_copy(
        update={
            "work_dir": tmp_path,
            "api_key": SecretStr("service-test-admin-key-long-enough-for-rules"),
            "x_api_base": xapi.base_url,
            "x_consumer_key": SecretStr("ck"),
            "x_consumer_secret": SecretStr("cs"),
            "x_access_token": SecretStr("at"),
            "x_access_token_secret": SecretStr("ats"),
            "reply_limit": 5,
            "flood_per_author": 3,
        }
    )
    tweets = mixed(12)
    flood = [enriched_tweet(str(20_000 + i), author="loud", created_at=tweets[0].created_at + timedelta(seconds=i)) for i in range(6)]
    p = make_producer(settings.kafka)
    for t in tweets + flood:
        p.produce(settings.topic_enriched, key=b"k", value=t.model_dump_json().encode())
    assert p.flush(15) == 0
    with ReplyService(settings, port=0) as svc:
        end = time.monotonic() + 60
        while svc.consumer.stats["records"] < 18 and time.monotonic() < end:
            time.sleep(0.1)
        time.sleep(1.0)  # the poster thread gets its chance to overspend (it must not)
        f = requests.get(f"{svc.url}/api/budget", headers={"X-API-Key": "service-test-admin-key-long-enough-for-rules"}, timeout=5).json()
        assert requests.get(f"{svc.url}/api/budget", timeout=5).status_code in (401, 403)
        panel = dashboard_figures(svc.store, settings)
    assert len(xapi.posts) == 5 and not any(find_urls(x["text"]) for x in xapi.posts)
    assert f["replies_this_window"] == 5 and f["reply_limit"] == 5 and f["queue_length"] == 12 + 3 - 5
    assert f["spend_today_usd"] == pytest.approx(5 * 0.01) and f["enforced"] is True
    assert f["intake"]["capped"] == 3 and f["flood_reasons"] == [
        {"reason": "flood guard: @loud opened 3 tickets within 1 h (limit 3)", "count": 3}
    ]
    assert {h["author"] for h in f["held_back"]} == {"loud"} and len(f["held_back"]) == 3
    assert f["expected_wait_seconds"] == pytest.approx(10 * 900 / 5)
    # The dashboard panel's figures (web.queries.BudgetFigures) say the same.
    assert panel == {k: f[k] for k in panel}
