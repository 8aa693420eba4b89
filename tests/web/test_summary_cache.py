"""The dashboard summary is shared (issue 12 item 4): computed at most once per few seconds for every client,
in the background while the previous one is served, one computation at a time. Speed figures live in
benchmarks/web.py; these tests check the behaviour, on the real app and store where it matters."""

from __future__ import annotations

import threading
import time

import pytest

from tests.fixtures.browser import make_tweet, seed_store
from tests.fixtures.clock import FakeClock
from tweetdesk.app import create_app
from tweetdesk.config import Settings
from tweetdesk.web.summary_cache import SummaryCache


class Gate:
    """A compute function that counts its calls and can be held until the test lets it finish."""

    def __init__(self, clock: FakeClock | None = None, took: float = 0.0):
        self.calls = 0
        self.running = 0
        self.most_at_once = 0
        self.open = threading.Event()
        self.open.set()
        self.entered = threading.Event()
        self.clock, self.took = clock, took
        self.fail: BaseException | None = None
        self._lock = threading.Lock()

    def __call__(self, key):
        with self._lock:
            self.calls += 1
            n = self.calls
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        self.entered.set()
        try:
            assert self.open.wait(10)
            if self.clock is not None:
                self.clock.t += self.took
            if self.fail is not None:
                raise self.fail
            return (key, n)
        finally:
            with self._lock:
                self.running -= 1


def _wait(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def test_concurrent_first_requests_share_one_computation():
    gate = Gate()
    gate.open.clear()
    cache = SummaryCache(gate, max_age=5)
    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.get("all").value)) for _ in range(20)]
    for t in threads:
        t.start()
    assert gate.entered.wait(5)
    time.sleep(0.05)
    gate.open.set()
    for t in threads:
        t.join(5)
    assert gate.calls == 1 and got == [("all", 1)] * 20


def test_stale_while_recomputing_and_at_most_once_per_max_age():
    clock = FakeClock(0.0)
    gate = Gate()
    cache = SummaryCache(gate, max_age=5, clock=clock)
    assert cache.get("all").value == ("all", 1)
    for _ in range(50):
        clock.t += 0.09
        assert cache.get("all").value == ("all", 1)  # fresh for 5 s: nothing recomputed
    assert gate.calls == 1
    clock.t = 5.0
    gate.open.clear()
    gate.entered.clear()
    t0 = time.monotonic()
    assert cache.get("all").value == ("all", 1)  # stale, served at once; a refresh starts behind it
    assert gate.entered.wait(5) and time.monotonic() - t0 < 1
    assert all(cache.get("all").value == ("all", 1) for _ in range(10))  # still computing: still the old one
    assert gate.calls == 2  # one refresh, however many requests came meanwhile
    gate.open.set()
    _wait(lambda: cache.get("all").value == ("all", 2))


def test_a_slow_store_is_asked_at_most_every_twice_the_time_it_took():
    clock = FakeClock(0.0)
    gate = Gate(clock=clock, took=4.0)
    cache = SummaryCache(gate, max_age=1, clock=clock)
    cache.get("all")  # took 4 s: the next is due 8 s after it ended
    clock.t += 7.5
    cache.get("all")
    assert gate.calls == 1
    clock.t += 0.6
    cache.get("all")
    _wait(lambda: gate.calls == 2)


def test_one_computation_at_a_time_across_filters():
    gate = Gate()
    gate.open.clear()
    cache = SummaryCache(gate, max_age=5, workers=1)
    threads = [threading.Thread(target=cache.get, args=(f"topic-{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    assert gate.entered.wait(5)
    time.sleep(0.1)
    assert gate.calls == 1  # the other five wait for the slot
    gate.open.set()
    for t in threads:
        t.join(10)
    assert gate.calls == 6 and gate.most_at_once == 1


def test_a_failed_refresh_keeps_serving_the_last_summary_and_a_failed_first_one_raises():
    clock = FakeClock(0.0)
    gate = Gate()
    cache = SummaryCache(gate, max_age=5, clock=clock)
    assert cache.get("all").value == ("all", 1)
    gate.fail = RuntimeError("store down")
    clock.t = 10
    assert cache.get("all").value == ("all", 1)
    _wait(lambda: gate.calls == 2)
    assert cache.get("all").value == ("all", 1)
    with pytest.raises(RuntimeError, match="store down"):
        cache.get("other")


def test_max_age_zero_computes_on_every_request():
    gate = Gate()
    cache = SummaryCache(gate, max_age=0)
    assert [cache.get("all").value for _ in range(3)] == [("all", 1), ("all", 2), ("all", 3)]


# --- through the app, on the real store ---------------------------------------------------------------------

def test_twenty_dashboards_cost_one_summary(tmp_path, sqlite_store):
    seed_store(sqlite_store, n=12)
    app = create_app(Settings(work_dir=tmp_path, web_summary_seconds=30), sqlite_store)
    answers: list[dict] = []

    def poll():
        c = app.test_client()
        for _ in range(5):
            r = c.get("/web/api/summary")
            assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
            answers.append(r.get_json())

    threads = [threading.Thread(target=poll) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == 100 and all(a == answers[0] for a in answers)
    assert answers[0]["totals"]["tickets"] == 12
    assert app.extensions["tweetdesk"].summary.computations == 1
    # The dashboard page itself reads the same summary.
    assert app.test_client().get("/").status_code == 200
    assert app.extensions["tweetdesk"].summary.computations == 1


def test_new_tickets_show_up_within_max_age(tmp_path, sqlite_store):
    seed_store(sqlite_store, n=4)
    app = create_app(Settings(work_dir=tmp_path, web_summary_seconds=5), sqlite_store)
    c = app.test_client()
    assert c.get("/web/api/summary").get_json()["totals"]["tickets"] == 4
    cache = app.extensions["tweetdesk"].summary
    cache.clock = clock = FakeClock(time.monotonic())  # time stands still from here
    sqlite_store.add_tickets([make_tweet(40)])
    assert c.get("/web/api/summary").get_json()["totals"]["tickets"] == 4  # within max_age: the shared one
    clock.t += 5
    c.get("/web/api/summary")  # stale: served, and a refresh starts
    _wait(lambda: c.get("/web/api/summary").get_json()["totals"]["tickets"] == 5)
    assert cache.computations == 2


def test_dashboards_beyond_the_gate_wait_while_the_tracking_page_goes_through(tmp_path, sqlite_store):
    """At most two dashboard requests are served at once; the others wait inside the app, so the tracking page
    and the API never queue behind a crowd of dashboards."""
    seeded = seed_store(sqlite_store, n=4)
    app = create_app(Settings(work_dir=tmp_path), sqlite_store)
    c = app.test_client()
    assert c.get("/web/api/summary").status_code == 200
    gate = app.extensions["tweetdesk"].summary_gate
    assert gate.acquire(timeout=1) and gate.acquire(timeout=1)  # two dashboards being served
    answered = threading.Event()
    waiting = threading.Thread(target=lambda: (app.test_client().get("/web/api/summary"), answered.set()))
    waiting.start()
    try:
        assert not answered.wait(0.3)  # a third dashboard waits its turn ...
        tid = seeded["tweets"][0].ticket_id
        assert c.get(f"/t/{tid}").status_code == 200  # ... while a customer's lookup goes straight through
        assert c.get(f"/api/tickets/{tid}").status_code == 200
        assert not answered.is_set()
    finally:
        gate.release()
        gate.release()
    assert answered.wait(5)
    waiting.join(5)
    assert gate.acquire(blocking=False) and gate.acquire(blocking=False)  # every request gave its place back
