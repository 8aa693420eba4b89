"""What the polled X sources share (our mentions timeline, our DM events): a user-context client that honours
X's rate limits, the saved position, and the polling loop with its back-off.

* ``PollState``: where a timeline was read up to (``since_id``) and, after a poll that could not read all its
  pages, the ids above it already handled; a JSON file in the work dir, written atomically (mode 600), moved
  only after Kafka acknowledged the poll.
* ``UserPoller``: one user-context call at a time with X's ``x-rate-limit-*`` headers honoured (at 0, or on a
  429, it sleeps until the reset, interruptibly), 5xx / X unreachable -> ``Transient`` (the poll is abandoned,
  nothing published, retried after a back-off), 401 -> one line (``run tweetdesk x-login again``), another 4xx
  -> the source's own error with X's reason. A subclass writes ``poll(pub)``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests
import tweepy

from tweetdesk.config import Settings
from tweetdesk.errors import TweetdeskError
from tweetdesk.ingest.publisher import Publisher, PublishError
from tweetdesk.x.auth import XAuthError, read_private, user_client, user_context_hint, write_private

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 900.0


class Transient(Exception):
    """X is down or unreachable for this poll; try again later."""


@dataclass
class PollState:
    """Where a timeline was read up to. ``handled``: ids above ``since_id`` already published or dead-lettered
    by a poll that could not read all its pages."""

    account_id: str | None = None
    since_id: str | None = None
    handled: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path, account_id: str, what: str) -> "PollState":
        if not path.exists():
            return cls(account_id)
        data = read_private(path, f"{what} state")
        if data.get("account_id") != account_id:
            log.warning("%s belongs to account %s, not %s: reading this account's %s from the start",
                        path, data.get("account_id"), account_id, what)
            return cls(account_id)
        return cls(account_id, data.get("since_id"), [str(i) for i in data.get("handled") or []])

    def save(self, path: Path) -> None:
        write_private(path, {"account_id": self.account_id, "since_id": self.since_id, "handled": self.handled})

    def advance(self, seen: list[str], complete: bool) -> None:
        """After Kafka acknowledged a poll: a complete poll moves ``since_id`` to the newest id seen; an incomplete
        one keeps it and remembers what it handled, so the next poll neither skips nor repeats."""
        if complete:
            newest = max((int(i) for i in [*seen, *self.handled, self.since_id or 0]), default=0)
            self.since_id, self.handled = (str(newest) if newest else None), []
        else:
            self.handled = sorted(set(self.handled) | set(seen), key=int)


@dataclass
class PollResult:
    published: int = 0
    dead: int = 0
    pages: int = 0
    skipped: int = 0
    complete: bool = True


class UserPoller:
    """A polled user-context X source. ``clock`` (epoch seconds) and ``sleep`` (seconds -> True when asked to
    stop) are injectable so tests never wait. Subclasses set ``what`` (for messages), ``state_file`` and
    ``error`` (the one-line error class) and write ``poll``."""

    what = "timeline"
    state_file = "x_state.json"
    error: type[TweetdeskError] = TweetdeskError

    def __init__(self, settings: Settings, *, client: tweepy.Client | None = None, stop: threading.Event | None = None,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], bool] | None = None):
        if client is None and not settings.x.user_credentials:
            raise XAuthError(f"no X user credentials to read our {self.what}: {user_context_hint()}")
        self.settings = settings
        self.client = client or user_client(settings, return_type=requests.Response, clock=clock)
        self.stop = stop or threading.Event()
        self.clock = clock
        self._sleep = sleep or self.stop.wait
        self.state_path = settings.work_dir / self.state_file
        self.account_id: str | None = None
        self.account_handle: str | None = None
        self.state: PollState | None = None
        self._remaining: int | None = None
        self._reset: float | None = None
        self.waits: list[tuple[str, float]] = []  # (why, seconds) of every wait, for logs and tests
        self.counts = {"polls": 0, "pages": 0, "rate_limit_waits": 0, "x_unavailable": 0}

    # --- X --------------------------------------------------------------------------------------------------------
    def call(self, fn, *args, **kwargs) -> requests.Response | None:
        """One user-context call with X's rate limits honoured; None when asked to stop while waiting."""
        while not self.stop.is_set():
            wait = self._rate_wait()
            if wait > 0:
                self.counts["rate_limit_waits"] += 1
                if self.wait(f"rate limit used up until {self._reset:.0f}", wait):
                    return None
            try:
                resp = fn(*args, user_auth=True, **kwargs)
            except tweepy.TooManyRequests as e:
                self._note_rate(e.response.headers)
                self._remaining = 0
                self._reset = float(e.reset_time) if e.reset_time else self.clock() + 60.0
                continue
            except tweepy.TwitterServerError as e:
                raise Transient(f"X answered HTTP {e.response.status_code}") from None
            except tweepy.Unauthorized:
                raise XAuthError(f"X refused our user credentials (401 Unauthorized): {user_context_hint()}") from None
            except tweepy.HTTPException as e:
                detail = "; ".join(map(str, e.api_messages)) or e.response.reason
                raise self.error(f"X refused to read the {self.what} (HTTP {e.response.status_code}: {detail})"
                                 + (": does the app's access include it?" if e.response.status_code == 403 else "")
                                 ) from None
            except requests.RequestException as e:
                raise Transient(f"cannot reach X at {self.settings.x.api_base} ({type(e).__name__})") from None
            self._note_rate(resp.headers)
            return resp
        return None

    def _note_rate(self, headers) -> None:
        try:
            if "x-rate-limit-remaining" in headers:
                self._remaining = int(headers["x-rate-limit-remaining"])
            if "x-rate-limit-reset" in headers:
                self._reset = float(headers["x-rate-limit-reset"])
        except (TypeError, ValueError):
            pass  # a garbled header is no reason to stop: the next 429 says when to come back

    def _rate_wait(self) -> float:
        if self._remaining is None or self._remaining > 0 or self._reset is None:
            return 0.0
        wait = self._reset - self.clock() + 1.0  # X's reset is whole seconds: one more to be past it
        if wait <= 0:
            self._remaining = None
            return 0.0
        return wait

    def wait(self, why: str, seconds: float) -> bool:
        self.waits.append((why, seconds))
        log.warning("X %s: %s; waiting %.0f s", self.what, why, seconds)
        stopped = self._sleep(seconds)
        if self._reset is not None and self.clock() >= self._reset:
            self._remaining = None
        return bool(stopped)

    def account(self) -> str | None:
        """Our account id (``GET /2/users/me``, asked once) and its saved state; None when asked to stop."""
        if self.account_id is None:
            resp = self.call(self.client.get_me)
            if resp is None:
                return None
            try:
                data = resp.json()["data"]
                self.account_id = str(data["id"])
            except (ValueError, KeyError, TypeError):
                raise self.error(f"X's answer to GET /2/users/me holds no user id: {resp.text[:200]!r}") from None
            handle = data.get("username")
            self.account_handle = handle if isinstance(handle, str) and handle else None
            self.state = PollState.load(self.state_path, self.account_id, self.what)
        return self.account_id

    # --- the loop -------------------------------------------------------------------------------------------------
    def finish_poll(self, pub: Publisher, state: PollState, records: dict, bad: list, seen: list[str],
                    result: PollResult, *, position: str = "the position") -> PollResult:
        """The end of every poll: publish the poll's records oldest first (X pages newest first) but those an
        incomplete earlier poll handled, then its dead letters; and only once Kafka acknowledged them all, move
        the state on and save it."""
        skip = set(state.handled)
        for r in sorted(records.values(), key=lambda r: int(r.id)):
            if r.id not in skip:
                pub.publish(r)
                result.published += 1
        for d in bad:
            pub.dead_letter(d)
            result.dead += 1
        if not pub.acknowledged():
            pub.raise_for_failures()
            raise PublishError("Kafka did not acknowledge every message of the poll")
        state.advance(seen, result.complete)
        if not result.complete:
            log.warning("X %s: a page could not be read; %s stays at %s until a poll reads them all",
                        self.what, position, state.since_id)
        state.save(self.state_path)
        return result

    def poll(self, pub: Publisher) -> PollResult:  # pragma: no cover (each source writes its own)
        raise NotImplementedError

    def run(self, pub: Publisher, *, interval: float = 30.0, once: bool = False, limit: int | None = None) -> None:
        """Poll every ``interval`` seconds until ``stop``, Ctrl-C, ``once`` or ``limit`` (checked after a poll, so
        a poll is never cut in two)."""
        failures = 0
        while not self.stop.is_set():
            try:
                self.poll(pub)
                failures = 0
            except Transient as e:
                self.counts["x_unavailable"] += 1
                if once:
                    raise self.error(f"X {self.what}: {e}; nothing was read (try again later)") from None
                failures += 1
                if self.wait(f"{e}", min(interval * 2 ** (failures - 1), MAX_BACKOFF_SECONDS)):
                    return
                continue
            if once or (limit is not None and pub.stats.read >= limit):
                return
            if self._sleep(interval):
                return
