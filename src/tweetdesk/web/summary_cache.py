"""One shared dashboard summary per filter, so the dashboard costs the same at a million tickets as at a
thousand, however many agents watch it.

Computing the figures reads every ticket (counts by status, topic and sentiment, the sentiment chart):
hundreds of milliseconds at a million tickets. Twenty dashboards polling every few seconds used to run that
twenty times over, on the same two cores as the public tracking page. Now:

* a summary is computed at most once per ``max_age`` seconds (``TWEETDESK_WEB_SUMMARY_SECONDS``), and
  never more often than every 2× the time the last computation took (a slow store keeps the background
  work under a third of one core);
* while a newer one is computed, in a background thread, requests get the last one (``generated_at``
  says how old); only the first request for a filter waits, and concurrent first requests share one
  computation;
* at most ``workers`` computations run at once, for all filters together.

``max_age=0`` computes on every request (no sharing): for tests that must see each write at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class SummaryBusy(RuntimeError):
    """No summary for this filter yet and none could be computed in time."""


@dataclass
class Snapshot(Generic[T]):
    value: T
    computed_at: float
    took: float
    # Derived forms of the value that every request would otherwise rebuild (the rendered fragment, the JSON
    # body): filled by the first request that needs one, shared by the rest.
    memo: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Entry:
    snapshot: Snapshot | None = None
    running: threading.Event | None = None  # set when the computation in flight ends
    error: BaseException | None = None
    fresh_until: float = 0.0


class SummaryCache(Generic[T]):
    def __init__(
        self,
        compute: Callable[[Hashable], T],
        max_age: float,
        *,
        workers: int = 1,
        wait_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.compute = compute
        self.max_age = max_age
        self.wait_timeout = wait_timeout
        self.clock = clock
        self._slots = threading.BoundedSemaphore(workers)
        self._lock = threading.Lock()
        self._entries: dict[Hashable, _Entry] = {}
        self.computations = 0  # how many summaries were computed (for tests and the benchmark)

    def ready(self, key: Hashable) -> bool:
        """True when ``get(key)`` answers at once (a summary exists, fresh or stale)."""
        if self.max_age <= 0:
            return False
        with self._lock:
            e = self._entries.get(key)
            return e is not None and e.snapshot is not None

    def get(self, key: Hashable) -> Snapshot[T]:
        if self.max_age <= 0:
            return self._run(key, None)
        with self._lock:
            e = self._entries.setdefault(key, _Entry())
            now = self.clock()
            if e.snapshot is not None:
                if now >= e.fresh_until and e.running is None:
                    e.running = threading.Event()
                    threading.Thread(target=self._run, args=(key, e), name="tweetdesk-summary", daemon=True).start()
                return e.snapshot  # fresh, or stale while a newer one is computed
            if e.running is None:
                e.running = threading.Event()
                threading.Thread(target=self._run, args=(key, e), name="tweetdesk-summary", daemon=True).start()
            done = e.running
        if not done.wait(self.wait_timeout):
            raise SummaryBusy(f"the dashboard summary took over {self.wait_timeout:.0f} s")
        with self._lock:
            if e.snapshot is None:
                raise e.error or SummaryBusy("the dashboard summary could not be computed")
            return e.snapshot

    def _run(self, key: Hashable, e: _Entry | None) -> Snapshot[T]:
        try:
            with self._slots:
                t0 = self.clock()
                value = self.compute(key)
                t1 = self.clock()
            snap = Snapshot(value=value, computed_at=t1, took=t1 - t0)
            with self._lock:
                self.computations += 1
                if e is not None:
                    e.snapshot, e.error = snap, None
                    e.fresh_until = t1 + max(self.max_age, 2 * snap.took)
            return snap
        except BaseException as exc:
            if e is None:
                raise
            with self._lock:
                e.error = exc
                e.fresh_until = self.clock() + min(self.max_age, 1.0)  # retry soon, not on every request
            if e.snapshot is not None:
                log.warning("dashboard summary not refreshed (serving the previous one): %s", exc)
            return None  # type: ignore[return-value]
        finally:
            if e is not None:
                with self._lock:
                    done, e.running = e.running, None
                if done is not None:
                    done.set()
