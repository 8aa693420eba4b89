"""Our account's mentions timeline as a tweet source: ``tweetdesk ingest mentions``.

``GET /2/users/:id/mentions`` (user context) lists the posts that @mention our account: exactly the customers who
asked us, the ones X lets an automated account answer, at X's *owned read* price ($0.001 a post against $0.005
for a post read through the filtered stream). It is the live source for replying; the filtered stream stays for
listening (keyword rules).

One poll asks for everything newer than ``since_id`` (the first poll: the last ``backfill_hours``), with the
tweet fields and expansions the record needs (``ingest.xpayload``: author, referenced tweets and their authors,
mentions, conversation, long-post text), follows ``meta.next_token`` across pages (X answers newest first), then
publishes the poll's tweets to ``tweets.raw`` oldest first as ``Tweet(source="mentions")``.

* **Neither skip nor repeat across restarts**: ``since_id`` lives in ``<work_dir>/x_mentions_state.json``
  (written atomically) and moves only after Kafka acknowledged every message of the poll. A poll that could not
  read all its pages (a malformed page) publishes what it read, keeps ``since_id`` and remembers the ids it
  handled, so the next poll fills the gap without publishing them again. Only a crash between Kafka's
  acknowledgement and the state write repeats a poll (at least once; downstream dedupes by tweet id).
* **Bad input**: a tweet that cannot make a record, or a page that cannot be read (not JSON, wrong shapes), goes
  to ``tweets.dead`` with the reason; the poll goes on.
* **Rate limits**: X's ``x-rate-limit-remaining`` / ``x-rate-limit-reset`` on every answer; at 0 (or on a 429)
  the source sleeps until the reset, interruptibly (``stop``). 5xx or X unreachable: the poll is abandoned
  (nothing published, nothing lost) and retried after a back-off.
* **Credentials**: ``tweetdesk.x.auth.user_client`` (OAuth 2.0 from ``tweetdesk x-login``, or OAuth 1.0a). A
  refresh token X refuses ends the source with one line (``run tweetdesk x-login again``), since_id untouched.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests
import tweepy

from tweetdesk.config import Settings
from tweetdesk.errors import TweetdeskError
from tweetdesk.ingest.publisher import Publisher, PublishError
from tweetdesk.records import DeadLetter, Tweet
from tweetdesk.x.auth import XAuthError, read_private, user_client, user_context_hint, write_private
from tweetdesk.x.payload import EXPANSIONS, TWEET_FIELDS, USER_FIELDS, PayloadError, parse_page

log = logging.getLogger(__name__)

STAGE = "ingest"
STATE_FILE = "x_mentions_state.json"
PAGE_SIZE = 100  # X's maximum per request
MAX_BACKOFF_SECONDS = 900.0


class MentionsError(TweetdeskError):
    """X refuses the mentions timeline for a reason only the user can fix."""


class _Transient(Exception):
    """X is down or unreachable for this poll; try again later."""


@dataclass
class MentionsState:
    """Where the timeline was read up to. ``handled``: ids above ``since_id`` already published or dead-lettered
    by a poll that could not read all its pages."""

    account_id: str | None = None
    since_id: str | None = None
    handled: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path, account_id: str) -> "MentionsState":
        if not path.exists():
            return cls(account_id)
        data = read_private(path, "mentions state")
        if data.get("account_id") != account_id:
            log.warning("%s belongs to account %s, not %s: reading this account's mentions from the start",
                        path, data.get("account_id"), account_id)
            return cls(account_id)
        return cls(account_id, data.get("since_id"), [str(i) for i in data.get("handled") or []])

    def save(self, path: Path) -> None:
        write_private(path, {"account_id": self.account_id, "since_id": self.since_id, "handled": self.handled})


@dataclass
class PollResult:
    published: int = 0
    dead: int = 0
    pages: int = 0
    complete: bool = True


class MentionsSource:
    """Polls our mentions timeline into a ``Publisher``. ``clock`` (epoch seconds) and ``sleep`` (seconds -> True
    when asked to stop) are injectable so tests never wait."""

    def __init__(self, settings: Settings, *, client: tweepy.Client | None = None, stop: threading.Event | None = None,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], bool] | None = None,
                 page_size: int = PAGE_SIZE, backfill_hours: float = 24.0):
        if client is None and not settings.x.user_credentials:
            raise XAuthError(f"no X user credentials to read our mentions: {user_context_hint()}")
        self.settings = settings
        self.client = client or user_client(settings, return_type=requests.Response, clock=clock)
        self.stop = stop or threading.Event()
        self.clock = clock
        self._sleep = sleep or self.stop.wait
        self.page_size = page_size
        self.backfill_hours = backfill_hours
        self.state_path = settings.work_dir / STATE_FILE
        self.account_id: str | None = None
        self.state: MentionsState | None = None
        self._remaining: int | None = None
        self._reset: float | None = None
        self.waits: list[tuple[str, float]] = []  # (why, seconds) of every wait, for logs and tests
        self.counts = {"polls": 0, "pages": 0, "rate_limit_waits": 0, "x_unavailable": 0}

    # --- X --------------------------------------------------------------------------------------------------------
    def _call(self, fn, *args, **kwargs) -> requests.Response | None:
        """One user-context call with X's rate limits honoured; None when asked to stop while waiting."""
        while not self.stop.is_set():
            wait = self._rate_wait()
            if wait > 0:
                self.counts["rate_limit_waits"] += 1
                if self._wait(f"rate limit used up until {self._reset:.0f}", wait):
                    return None
            try:
                resp = fn(*args, user_auth=True, **kwargs)
            except tweepy.TooManyRequests as e:
                self._note_rate(e.response.headers)
                self._remaining = 0
                self._reset = float(e.reset_time) if e.reset_time else self.clock() + 60.0
                continue
            except tweepy.TwitterServerError as e:
                raise _Transient(f"X answered HTTP {e.response.status_code}") from None
            except tweepy.Unauthorized:
                raise XAuthError(f"X refused our user credentials (401 Unauthorized): {user_context_hint()}") from None
            except tweepy.HTTPException as e:
                detail = "; ".join(map(str, e.api_messages)) or e.response.reason
                raise MentionsError(f"X refused to read the mentions timeline (HTTP {e.response.status_code}: {detail})"
                                    + (": does the app's access include it?" if e.response.status_code == 403 else "")
                                    ) from None
            except requests.RequestException as e:
                raise _Transient(f"cannot reach X at {self.settings.x.api_base} ({type(e).__name__})") from None
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

    def _wait(self, why: str, seconds: float) -> bool:
        self.waits.append((why, seconds))
        log.warning("X mentions: %s; waiting %.0f s", why, seconds)
        stopped = self._sleep(seconds)
        if self._reset is not None and self.clock() >= self._reset:
            self._remaining = None
        return bool(stopped)

    def account(self) -> str | None:
        """Our account id (``GET /2/users/me``, asked once) and its saved state; None when asked to stop."""
        if self.account_id is None:
            resp = self._call(self.client.get_me)
            if resp is None:
                return None
            try:
                self.account_id = str(resp.json()["data"]["id"])
            except (ValueError, KeyError, TypeError):
                raise MentionsError(f"X's answer to GET /2/users/me holds no user id: {resp.text[:200]!r}") from None
            self.state = MentionsState.load(self.state_path, self.account_id)
        return self.account_id

    # --- one poll -------------------------------------------------------------------------------------------------
    def poll(self, pub: Publisher) -> PollResult:
        """Read everything new, publish it oldest first, then (Kafka having acknowledged all) save the state."""
        account = self.account()
        result = PollResult()
        if account is None:
            return result
        state = self.state
        params: dict = {"max_results": self.page_size, "tweet_fields": TWEET_FIELDS, "expansions": EXPANSIONS,
                        "user_fields": USER_FIELDS}
        if state.since_id:
            params["since_id"] = state.since_id
        elif self.backfill_hours > 0:
            params["start_time"] = datetime.fromtimestamp(self.clock(), timezone.utc) - timedelta(hours=self.backfill_hours)
        self.counts["polls"] += 1
        tweets: dict[str, Tweet] = {}
        bad: list[DeadLetter] = []
        seen: list[str] = []
        token = None
        while True:
            resp = self._call(self.client.get_users_mentions, account,
                              **params, **({"pagination_token": token} if token else {}))
            if resp is None:  # asked to stop: publish nothing of a half-read poll
                return result
            result.pages += 1
            self.counts["pages"] += 1
            where = f"X mentions page {result.pages}"
            try:
                page = parse_page(resp.content, source="mentions")
            except PayloadError as e:
                bad.append(DeadLetter.of(resp.content, f"{where}: {e}", STAGE, key=f"mentions:{account}"))
                result.complete = False  # the pages after it cannot be reached: since_id stays
                break
            for t in page.tweets:
                tweets.setdefault(t.id, t)
            for raw, reason in page.bad:
                bad.append(DeadLetter.of(raw, f"{where}: {reason}", STAGE, key=f"mentions:{account}"))
            seen += page.ids
            token = page.meta.get("next_token")
            if not token:
                break
            if not isinstance(token, str):
                bad.append(DeadLetter.of(resp.content, f"{where}: meta.next_token is not a string", STAGE,
                                         key=f"mentions:{account}"))
                result.complete = False
                break
        skip = set(state.handled)
        for t in sorted(tweets.values(), key=lambda t: int(t.id)):  # X pages newest first; publish oldest first
            if t.id not in skip:
                pub.publish(t)
                result.published += 1
        for d in bad:
            pub.dead_letter(d)
            result.dead += 1
        if not pub.acknowledged():
            pub.raise_for_failures()
            raise PublishError("Kafka did not acknowledge every message of the poll")
        if result.complete:
            newest = max((int(i) for i in [*seen, *state.handled, state.since_id or 0]), default=0)
            state.since_id, state.handled = (str(newest) if newest else None), []
        else:
            state.handled = sorted(set(state.handled) | set(seen), key=int)
            log.warning("X mentions: a page could not be read; since_id stays at %s until a poll reads them all",
                        state.since_id)
        state.save(self.state_path)
        return result

    # --- the loop -------------------------------------------------------------------------------------------------
    def run(self, pub: Publisher, *, interval: float = 30.0, once: bool = False, limit: int | None = None) -> None:
        """Poll every ``interval`` seconds until ``stop``, Ctrl-C, ``once`` or ``limit`` (checked after a poll, so
        a poll is never cut in two)."""
        failures = 0
        while not self.stop.is_set():
            try:
                self.poll(pub)
                failures = 0
            except _Transient as e:
                self.counts["x_unavailable"] += 1
                if once:
                    raise MentionsError(f"X mentions: {e}; nothing was read (try again later)") from None
                failures += 1
                if self._wait(f"{e}", min(interval * 2 ** (failures - 1), MAX_BACKOFF_SECONDS)):
                    return
                continue
            if once or (limit is not None and pub.stats.read >= limit):
                return
            if self._sleep(interval):
                return


def run_mentions(settings: Settings, pub: Publisher, *, interval: float = 30.0, once: bool = False,
                 limit: int | None = None, backfill_hours: float = 24.0) -> MentionsSource:
    """``tweetdesk ingest mentions``: the loop above with the settings' credentials."""
    src = MentionsSource(settings, backfill_hours=backfill_hours)
    try:
        src.run(pub, interval=interval, once=once, limit=limit)
    finally:
        pub.stats.extra.update({k: v for k, v in src.counts.items() if v})
        src.client.session.close()
    return src
