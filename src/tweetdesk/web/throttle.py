"""Wrong API keys, per client address: a few free tries, then waits that double (1 s, 2 s, 4 s … up to
``TWEETDESK_AUTH_MAX_DELAY_SECONDS``). While an address waits, a key it sends is not even compared: the
answer is 429 with ``Retry-After``. The right key resets its address; other addresses are never slowed.

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
        """Whole seconds ``address`` must wait before a key it sends is checked (0 = now)."""
        with self._lock:
            c = self._clients.get(client_of(address))
            wait = c.blocked_until - self.clock() if c else 0.0
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, address: str | None, where: str, what: str = "API key") -> int:
        """Count a wrong key from ``address`` (``what``: API key, token or password, for the log); returns the
        seconds it must now wait."""
        now = self.clock()
        key = client_of(address)
        with self._lock:
            c = self._clients.pop(key, None) or _Client()
            if now - c.last_failure > self.forget_after:
                c.failures = 0
            c.failures += 1
            c.last_failure = now
            over = c.failures - self.free_failures
            delay = min(2.0 ** (over - 1), self.max_delay) if over > 0 else 0.0
            c.blocked_until = now + delay
            self._clients[key] = c
            self._trim(now)
            failures = c.failures
            line = self._may_log(now)
        if line is not None:
            log.warning(
                "wrong %s from %r on %r: failure %d from this address, next one checked in %d s%s",
                what, key, where, failures, math.ceil(delay), line,
            )
        return math.ceil(delay)

    def succeeded(self, address: str | None) -> None:
        with self._lock:
            self._clients.pop(client_of(address), None)

    def _trim(self, now: float) -> None:
        if len(self._clients) <= self.max_clients:
            return
        for k in [k for k, c in self._clients.items() if c.blocked_until <= now][: len(self._clients) - self.max_clients]:
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
