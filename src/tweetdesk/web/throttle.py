"""Wrong credentials, counted per bucket (a client address, a target account, a known browser): a few free
tries, then waits that double (1 s, 2 s, 4 s … up to ``TWEETDESK_AUTH_MAX_DELAY_SECONDS``); the answer to a
wrong one is then 429 with ``Retry-After``. A right credential forgives nothing: failures fade only with time
(``forget_after``), so mixing in a credential one does have cannot reset the count.

Two ways in (``web.auth`` picks):

* ``begin``/``end`` for guessable secrets (passwords): the check and the count are one step under the lock —
  a bucket with a try in flight lets another through only while the free tries are not used up, so 30
  concurrent tries from a fresh address get at most ``free_failures`` checks.
* ``count`` for credentials no one can guess (the API key, refused below ~96 bits at start; 256-bit personal
  tokens): they are always compared, so a right one is never refused because someone else at the same address
  (one proxy, one office) guessed wrong; a wrong one is counted atomically and answered 429 once over.

A counting rate limiter (flask-limiter) allows N tries per window forever; what a key-guesser needs is a
delay that grows with every miss, so this keeps per-address state itself: a few numbers per address, at
most ``max_clients`` addresses (the ones no longer waiting are forgotten first). IPv6 clients are counted
per /64, the block one subscriber usually holds.

Failures are logged, but at most ``log_per_minute`` lines a minute: a flood of guesses must not become a
flood of log lines (the next line says how many were not logged).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("tweetdesk.auth")


@dataclass
class _Client:
    failures: int = 0
    last_failure: float = 0.0
    blocked_until: float = 0.0
    inflight: int = 0  # tries let through by ``begin`` and not yet ``end``ed


def client_of(address: str | None) -> str:
    """The unit throttled: the IPv4 address, or the IPv6 /64."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class KeyThrottle:
    def __init__(
        self,
        *,
        free_failures: int = 5,
        max_delay: float = 900.0,
        forget_after: float = 3600.0,
        max_clients: int = 10_000,
        log_per_minute: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.free_failures = free_failures
        self.max_delay = max_delay
        self.forget_after = max(forget_after, max_delay)
        self.max_clients = max_clients
        self.log_per_minute = log_per_minute
        self.clock = clock
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self._lock = threading.Lock()
        self._log_window_start = -math.inf
        self._logged = 0
        self._unlogged = 0

    @classmethod
    def from_settings(cls, settings, **kw) -> "KeyThrottle":
        return cls(free_failures=settings.auth_free_failures, max_delay=settings.auth_max_delay_seconds, **kw)

    def retry_after(self, address: str | None) -> int:
        """Whole seconds ``address`` must wait before a wrong key it sends is answered 401 again (0 = now)."""
        return self.retry_after_of(client_of(address))

    def retry_after_of(self, bucket: str) -> int:
        with self._lock:
            c = self._clients.get(bucket)
            wait = c.blocked_until - self.clock() if c else 0.0
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, address: str | None, where: str, what: str = "API key") -> int:
        """Count a wrong key from ``address`` (``what``: API key, token or password, for the log); returns the
        seconds it must now wait."""
        return self.count([client_of(address)], where, what)

    def count(self, buckets: list[str], where: str, what: str = "API key") -> int:
        """Count one wrong credential against every bucket (the first names the client in the log); returns the
        seconds the most delayed of them must now wait (0 = still within the free tries)."""
        now = self.clock()
        with self._lock:
            failures, delay = self._count(buckets, now)
            line = self._may_log(now)
        if line is not None:
            log.warning(
                "wrong %s from %r on %r: failure %d from this address, next one checked in %d s%s",
                what, buckets[0], where, failures, math.ceil(delay), line,
            )
        return math.ceil(delay)

    def begin(self, buckets: list[str]) -> int:
        """Reserve a try for a guessable secret: 0 = go ahead (then call ``end``), else the seconds to wait."""
        now = self.clock()
        with self._lock:
            wait = 0.0
            for b in buckets:
                c = self._clients.get(b)
                if c is None:
                    continue
                if now - c.last_failure > self.forget_after and not c.inflight:
                    c.failures = 0
                wait = max(wait, c.blocked_until - now)
                if c.inflight and c.failures + c.inflight >= self.free_failures:
                    wait = max(wait, 1.0)  # the tries in flight may use up the free ones: one at a time now
            if wait > 0:
                return math.ceil(wait)
            for b in buckets:
                c = self._clients.pop(b, None) or _Client()
                c.inflight += 1
                self._clients[b] = c
            return 0

    def end(self, buckets: list[str], ok: bool, where: str, what: str = "password") -> None:
        """The outcome of a try ``begin`` let through; a wrong one is counted."""
        with self._lock:
            for b in buckets:
                c = self._clients.get(b)
                if c is not None and c.inflight:
                    c.inflight -= 1
        if not ok:
            self.count(buckets, where, what)

    def _count(self, buckets: list[str], now: float) -> tuple[int, float]:
        first, most = 0, 0.0
        for i, b in enumerate(buckets):
            c = self._clients.pop(b, None) or _Client()
            if now - c.last_failure > self.forget_after:
                c.failures = 0
            c.failures += 1
            c.last_failure = now
            over = c.failures - self.free_failures
            delay = min(2.0 ** (over - 1), self.max_delay) if over > 0 else 0.0
            c.blocked_until = max(c.blocked_until, now + delay)
            self._clients[b] = c
            first = c.failures if i == 0 else first
            most = max(most, delay)
        self._trim(now)
        return first, most

    def _trim(self, now: float) -> None:
        if len(self._clients) <= self.max_clients:
            return
        idle = [k for k, c in self._clients.items() if c.blocked_until <= now and not c.inflight]
        for k in idle[: len(self._clients) - self.max_clients]:
            del self._clients[k]
        while len(self._clients) > self.max_clients:
            self._clients.popitem(last=False)  # the least recently failed

    def _may_log(self, now: float) -> str | None:
        """None when this failure is not to be logged; else a suffix naming the failures not logged."""
        if now - self._log_window_start >= 60:
            self._log_window_start, self._logged = now, 0
        if self._logged >= self.log_per_minute:
            self._unlogged += 1
            return None
        self._logged += 1
        suffix = f" ({self._unlogged} more wrong keys not logged)" if self._unlogged else ""
        self._unlogged = 0
        return suffix
