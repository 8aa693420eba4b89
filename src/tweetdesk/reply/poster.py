"""The poster: drains the outbox (``replies`` table) to X, or to the log in dry-run.

Modes
-----
* **dry-run** (default; whenever the four OAuth 1.0a user-context secrets are not all set): a queued
  reply is marked ``dry_run`` and logged; nothing leaves the machine. A warning says so at start.
* **live**: tweepy ``Client.create_tweet(text=…, in_reply_to_tweet_id=…)`` with user context,
  against ``settings.x_api_base`` (tweepy hard-codes ``https://api.twitter.com``; ``RebasedSession``
  rewrites the URL *before* the request is prepared, so OAuth 1.0a signs the URL actually called).

Exactly once, across crashes (the outbox state machine lives in ``tickets.store``)
---------------------------------------------------------------------------------
1. ``claim``: ``queued → posting`` is committed **before** the HTTP call (the intent).
2. The call; then the outcome is committed: ``posted`` (with X's id), ``queued`` again with a
   ``not_before`` (429: X's reset time; 5xx or a connection refused: exponential backoff), or
   ``failed`` with the reason (at once for a 4xx; see "Outages" for the rest).
3. A row still ``posting`` when the poster starts means the process died during a call: X may hold
   the post. It is **verified, never blindly re-posted**: the account's recent timeline (``GET
   /2/users/:id/tweets``) is searched for a reply to that tweet with that text. Found → ``posted``
   with its id. Not found → queued again (and should the timeline lag, X itself refuses a second
   post with identical text — every reply carries its unique ticket ID — which we treat the same
   way). Verification impossible (API down, no access) → ``unknown``: shown to agents, never
   re-posted automatically. A call that may have reached X but got no answer (read timeout, reset
   connection) goes through the same verification.

Outages
-------
A 5xx or "cannot reach X" is taken as X being down, not as a fault of that one reply: the poster
pauses the **whole drain** (as it does until a 429's reset), for ``backoff_base``·2^(n-1) seconds
after the n-th failure in a row, capped at ``backoff_cap`` (300 s). When the pause ends, one probe
goes out (the most urgent due reply); only that reply's attempt counts. Success (or any answer that
shows X is up: 2xx, 4xx, 429) ends the outage and the queue drains under the budget. A reply is failed
only when its attempts reach ``reply_max_attempts`` **and** its first attempt is older than
``reply_give_up_after_seconds`` (default 3600). The first attempt's time is what this process saw (in
memory; a reply already tried by an earlier process counts from its first attempt here), so a restart
can only delay a give-up, never hasten it.

Delays are injectable (``clock``, ``backoff_base``) so tests need no real waiting; rate limits are
honoured through the stored ``not_before`` rather than by sleeping in a thread.

The reply budget (``tweetdesk.reply.budget``) decides how many replies may go now and the queue's
order (priority, then oldest); X's 429 stays the backstop. A reply holding a URL is failed, never
posted. Dry-run has no budget unless ``reply_budget_dry_run`` rehearses it.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

import requests
import tweepy

from tweetdesk.reply.budget import ReplyBudget, UrlInReply
from tweetdesk.tickets.store import StoredReply, StoreError, TicketStore
from tweetdesk.x.auth import RebasedSession, XAuthError, user_client  # noqa: F401 (RebasedSession: re-exported)

log = logging.getLogger(__name__)

def make_x_client(settings, *, timeout: float | tuple[float, float] = (5.0, 30.0)) -> tweepy.Client:
    """A tweepy Client acting as our account (OAuth 2.0 tokens from `tweetdesk x-login`, else OAuth 1.0a),
    pointed at ``settings.x_api_base``: ``tweetdesk.x.auth.user_client``."""
    return user_client(settings, timeout=timeout)


class XTransport:
    """What the poster asks X: post a reply or send a DM, and find one of our recent replies or DMs."""

    def __init__(self, client: tweepy.Client):
        self.client = client
        self._me: str | None = None

    @classmethod
    def from_settings(cls, settings) -> "XTransport":
        return cls(make_x_client(settings))

    def post(self, text: str, in_reply_to_tweet_id: str) -> str:
        resp = self.client.create_tweet(text=text, in_reply_to_tweet_id=in_reply_to_tweet_id, user_auth=True)
        return str(resp["data"]["id"])

    def send_dm(self, participant_id: str, text: str) -> str:
        """``POST /2/dm_conversations/with/:participant_id/messages``: X's id of the DM event we sent."""
        resp = self.client.create_direct_message(participant_id=participant_id, text=text, user_auth=True)
        return str(resp["data"]["dm_event_id"])

    def find_dm(self, participant_id: str, text: str, ticket_id: str | None = None) -> str | None:
        """Id of our recent DM to ``participant_id`` with this text (or naming the ticket), or None: the
        one-to-one conversation's events (``GET /2/dm_conversations/with/:participant_id/dm_events``)."""
        me = self._my_id()
        resp = self.client.get_direct_message_events(
            participant_id=participant_id, user_auth=True, max_results=100, event_types="MessageCreate",
            dm_event_fields=["id", "text", "sender_id", "created_at"],
        )
        want = " ".join(text.split())
        for e in resp.get("data") or []:
            if str(e.get("sender_id")) != me:
                continue
            got = " ".join(html.unescape(e.get("text", "")).split())
            if got == want or (ticket_id and ticket_id in got):
                return str(e["id"])
        return None

    def _my_id(self) -> str:
        if self._me is None:
            self._me = str(self.client.get_me(user_auth=True)["data"]["id"])
        return self._me

    def find_reply(self, in_reply_to_tweet_id: str, text: str, ticket_id: str | None = None) -> str | None:
        """Id of our recent post replying to ``in_reply_to_tweet_id`` with this text, or None."""
        resp = self.client.get_users_tweets(
            self._my_id(), user_auth=True, max_results=100, tweet_fields=["referenced_tweets", "created_at"]
        )
        want = " ".join(text.split())
        for t in resp.get("data") or []:
            refs = t.get("referenced_tweets") or []
            if not any(r.get("type") == "replied_to" and str(r.get("id")) == str(in_reply_to_tweet_id) for r in refs):
                continue
            got = " ".join(html.unescape(t.get("text", "")).split())  # X returns &amp; for &
            if got == want or (ticket_id and ticket_id in got):
                return str(t["id"])
        return None


@dataclass
class Outcome:
    kind: Literal["posted", "dry_run", "retry", "failed", "unknown", "skipped"]
    detail: str = ""


def _never_sent(exc: BaseException) -> bool:
    """True when the request surely did not reach X (no connection made): safe to retry."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        e = stack.pop()
        if id(e) in seen or e is None:
            continue
        seen.add(id(e))
        name = type(e).__name__
        if name in ("NewConnectionError", "ConnectTimeoutError", "NameResolutionError"):
            return True
        if isinstance(e, BaseException):
            stack.extend([e.__cause__, e.__context__, *[a for a in e.args if isinstance(a, BaseException)]])
            reason = getattr(e, "reason", None)
            if isinstance(reason, BaseException):
                stack.append(reason)
    return False


def _http_reason(e: tweepy.HTTPException) -> str:
    status = getattr(e.response, "status_code", "?")
    reason = getattr(e.response, "reason", "") or ""
    msgs = "; ".join(str(m) for m in (e.api_messages or [])) if getattr(e, "api_messages", None) else ""
    return f"X API {status} {reason}".strip() + (f": {msgs}" if msgs else "")


class Poster:
    """Drives replies through the outbox state machine. Thread-safe (the store arbitrates claims)."""

    def __init__(
        self,
        settings,
        store: TicketStore,
        *,
        transport: XTransport | None = None,
        live: bool | None = None,
        clock: Callable[[], float] = time.time,
        backoff_base: float = 2.0,
        backoff_cap: float = 300.0,
        batch: int = 500,
        budget: ReplyBudget | None = None,
    ):
        self.settings = settings
        self.store = store
        self.live = settings.x.user_credentials if live is None else live
        if self.live and transport is None:
            transport = XTransport.from_settings(settings)
        self.transport = transport
        self.clock = clock
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.batch = batch
        self.max_attempts = settings.reply_max_attempts
        self.give_up_after = float(settings.reply_give_up_after_seconds)
        self._first_attempt: dict[int, datetime] = {}  # reply id -> first attempt seen by this process
        self._outage_failures = 0  # 5xx / unreachable answers in a row (0: X is up, as far as we know)
        self._x_down_until: datetime | None = None  # X is down: no probe before then
        self.budget = budget or ReplyBudget(settings, store, clock=clock, live=self.live)
        self._drain_lock = threading.Lock()  # the consumer and the poster thread share one budget
        self._x_reset: datetime | None = None  # X said 429 until then: post nothing before
        self._wake = threading.Event()
        self.counts = {"posted": 0, "dry_run": 0, "retry": 0, "failed": 0, "unknown": 0}
        if not self.live and settings.x.user_credentials:
            log.warning("replies run in DRY-RUN mode (asked for), although X credentials are set: nothing is posted")
        elif not self.live:
            log.warning(
                "X user-context credentials are not set (TWEETDESK_X_CONSUMER_KEY/_SECRET, "
                "TWEETDESK_X_ACCESS_TOKEN/_SECRET): replies run in DRY-RUN mode, written to the outbox "
                "table and the log, never posted"
            )

    @property
    def mode(self) -> str:
        return "live" if self.live else "dry-run"

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), timezone.utc)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based): base·2^(n-1), capped."""
        return min(self.backoff_cap, self.backoff_base * (2 ** max(0, attempt - 1)))

    # --- crash recovery -------------------------------------------------------------------------
    def recover(self) -> dict[str, int]:
        """Settle replies left ``posting`` by a previous process (see the module docstring)."""
        counts = {"requeued": 0, "verified_posted": 0, "unknown": 0}
        for r in self.store.in_flight():
            if not self.live:
                # Only live posting claims rows; without credentials now, we cannot ask X.
                self.store.record_unknown(
                    r.id, "a live post was interrupted and the service now runs without credentials: check by hand"
                )
                counts["unknown"] += 1
                continue
            outcome = self._verify(r, "the process stopped during the call to X")
            counts[{"posted": "verified_posted", "retry": "requeued"}.get(outcome.kind, "unknown")] += 1
        if any(counts.values()):
            log.warning("reply recovery after restart: %s", counts)
        return counts

    def _verify(self, r: StoredReply, why: str) -> Outcome:
        """Did X get this reply? Record what we learn; never post from here."""
        try:
            if r.channel == "dm":
                found = self.transport.find_dm(r.to_user_id, r.text, r.ticket_id)
            else:
                found = self.transport.find_reply(r.tweet_id, r.text, r.ticket_id)
        except (tweepy.TweepyException, requests.RequestException, KeyError, TypeError, ValueError) as e:
            msg = f"{why}; X may hold the post and it could not be verified ({type(e).__name__}: {e}): check by hand"
            self.store.record_unknown(r.id, msg[:2000])
            self._first_attempt.pop(r.id, None)
            log.error("reply %s (ticket %s): %r", r.id, r.ticket_id, msg)
            self.counts["unknown"] += 1
            return Outcome("unknown", msg)
        if found:
            self._record_posted(r, found)
            self._first_attempt.pop(r.id, None)
            log.info("reply %s (ticket %s) verified as posted: %s", r.id, r.ticket_id, found)
            self.counts["posted"] += 1
            return Outcome("posted", found)
        # Not on the timeline: not posted. Retry counts as an attempt.
        return self._retry_or_fail(r, f"{why}; verified not posted")

    # --- posting --------------------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    def budget_wait(self) -> float:
        """Seconds until the posting budget (``tweetdesk.reply.budget``) allows a post; 0 = now.
        Dry-run posts nothing, so it has no budget unless ``reply_budget_dry_run`` is set."""
        a = self.budget.allowance(self._now())
        return 0.0 if a.posts else a.wait

    def deliver(self, reply_ids: Iterable[int]) -> dict[str, int]:
        """Post what the budget allows now (the consumer calls this before acknowledging Kafka):
        in dry-run without a budget, these replies; otherwise the most urgent due replies, which
        may or may not be these. Anything not settled stays queued for the background loop."""
        ids = list(reply_ids)
        before = dict(self.counts)
        if not self.budget.enforced:
            self._dry_run(ids)
        else:
            self._drain()
        return {k: self.counts[k] - before[k] for k in self.counts}

    def _drain(self) -> float | None:
        """Post due replies, most urgent first, as long as the budget allows. Returns the seconds
        the budget asks to wait, or None when nothing is due."""
        with self._drain_lock:
            for _ in range(100):
                now = self._now()
                hold = self._hold_until(now)
                if hold is not None:
                    return (hold - now).total_seconds()
                a = self.budget.allowance(now)
                if not a.posts:
                    return a.wait
                ids = self.store.due_replies(min(a.posts, self.batch), now=now)
                if not ids:
                    return None
                if self.live:
                    for rid in ids:
                        self.attempt(rid)
                        if self._hold_until(self._now()) is not None:
                            break  # X's own limit (429) or X down: nothing more until then
                else:
                    self._dry_run(ids)
            return 0.0

    def _hold_until(self, now: datetime) -> datetime | None:
        """Until when nothing may be sent to X (a 429's reset, or an outage's backoff), or None."""
        holds = [t for t in (self._x_reset, self._x_down_until) if t is not None and now < t]
        return max(holds) if holds else None

    @property
    def outage(self) -> dict[str, object]:
        """The poster's view of X: failures in a row and when the next probe may go (None: X is up)."""
        return {"failures_in_a_row": self._outage_failures, "next_probe_at": self._x_down_until}

    def step(self) -> float:
        """Process the due replies once; return seconds until the next is due (capped at 1 s idle)."""
        if not self.budget.enforced:
            ids = self.store.due_replies(self.batch, now=self._now())
            self._dry_run(ids)
            if len(ids) == self.batch:
                return 0.0
        else:
            wait = self._drain()
            if wait:
                return min(wait, 60.0)  # re-check at least every minute; a wake() comes sooner
        nxt = self.store.next_due_at()
        if nxt is None:
            return 1.0
        return max(0.0, min(1.0, (nxt - self._now()).total_seconds()))

    def run(self, stop: threading.Event, *, recover: bool = True) -> None:
        """The background loop: recover (unless the caller already did, before anything else could
        claim a reply), then drain until ``stop`` is set."""
        while recover and not stop.is_set():
            try:
                self.recover()
                break
            except StoreError as e:
                log.error("reply recovery: %s; retrying in 5 s", e)
                stop.wait(5)
        while not stop.is_set():
            try:
                delay = self.step()
            except StoreError as e:
                log.error("poster: %s; retrying in 5 s", e)
                delay = 5.0
            if delay > 0:
                self._wake.wait(delay)
            self._wake.clear()

    def _dry_run(self, ids: list[int]) -> None:
        if not ids:
            return
        done = self.store.record_dry_run(ids)
        self.counts["dry_run"] += len(done)
        for r in done:
            log.info("DRY-RUN reply to tweet %s (ticket %s): %r", r.tweet_id, r.ticket_id, r.text)

    def attempt(self, reply_id: int) -> Outcome:
        """One live attempt at one reply, if it is still queued (else ``skipped``)."""
        r = self.store.claim(reply_id)  # intent committed: from here on a crash means "verify"
        if r is None:
            return Outcome("skipped")
        self._first_attempt.setdefault(r.id, self._now())
        dm = r.channel == "dm"
        if dm:
            held = self.budget.dm_allowance(self._now())
            if not held.posts:  # X's DM send caps: wait for a slot rather than hit them
                until = self._now() + timedelta(seconds=held.wait)
                self.store.record_retry(r.id, f"held back: X's DM {held.binding} limit, until {until.isoformat()}",
                                        until, count_attempt=False)
                self.counts["retry"] += 1
                return Outcome("retry", "DM limit")
        else:
            try:
                self.budget.check(r.text)
            except UrlInReply as e:  # templates and the API refuse links already: this is the last guard
                return self._fail(r, str(e))
        try:
            posted_id = self.transport.send_dm(r.to_user_id, r.text) if dm else self.transport.post(r.text, r.tweet_id)
        except XAuthError as e:  # our OAuth 2.0 grant is gone (refresh refused): the request never left
            return self._auth_lost(r, str(e))
        except tweepy.TooManyRequests as e:
            self._x_is_up()  # X answers; it only asks us to wait
            reset = e.reset_time or int(self.clock()) + 60
            until = datetime.fromtimestamp(reset + 1, timezone.utc)
            self._x_reset = until
            self.store.record_retry(r.id, f"X API 429 rate limited until {until.isoformat()}", until, count_attempt=False)
            log.warning("X rate limit (429): reply %s waits until %s", r.id, until.isoformat())
            self.counts["retry"] += 1
            return Outcome("retry", "rate limited")
        except tweepy.TwitterServerError as e:
            return self._retry_or_fail(r, _http_reason(e), outage=True)
        except tweepy.Forbidden as e:
            self._x_is_up()
            if any("duplicate" in str(m).lower() for m in (e.api_messages or [])) or "duplicate" in str(e).lower():
                # X refuses identical text from the same account: this reply is already out there.
                return self._verify(r, "X refused it as duplicate content")
            return self._refused(r, _http_reason(e))
        except tweepy.HTTPException as e:  # other 4xx: our request is wrong; retrying will not help
            self._x_is_up()
            return self._fail(r, _http_reason(e))
        except requests.RequestException as e:
            if _never_sent(e):
                return self._retry_or_fail(r, f"cannot reach X API: {type(e).__name__}", outage=True)
            return self._verify(r, f"no answer from X ({type(e).__name__})")
        except (KeyError, TypeError, ValueError) as e:  # 2xx with a body we cannot read: it was posted
            return self._verify(r, f"unreadable answer from X ({type(e).__name__}: {e})")
        self._x_is_up()
        self._first_attempt.pop(r.id, None)
        if not self._record_posted(r, posted_id):
            # Someone moved the row while we posted (two services on one store?): say so loudly.
            log.error("reply %s was posted as %s but was no longer 'posting' in the store", r.id, posted_id)
        self.counts["posted"] += 1
        log.info("posted reply %s to tweet %s (ticket %s): %r", posted_id, r.tweet_id, r.ticket_id, r.text)
        return Outcome("posted", posted_id)

    def _record_posted(self, r: StoredReply, posted_id: str) -> bool:
        kind, usd = self.budget.price_of(r.text, dm=r.channel == "dm")
        return self.store.record_posted(r.id, posted_id, cost_usd=usd, cost_kind=kind)

    def _auth_lost(self, r: StoredReply, reason: str) -> Outcome:
        """X refused our credentials before anything was posted: the reply waits, and all posting pauses
        (re-checked every ``backoff_cap`` seconds, so a new ``tweetdesk x-login`` resumes it)."""
        now = self._now()
        self._x_down_until = now + timedelta(seconds=self.backoff_cap)
        self.store.record_retry(r.id, f"not posted: {reason}", self._x_down_until, count_attempt=False)
        log.error("posting paused: %s", reason)
        self.counts["retry"] += 1
        return Outcome("retry", reason)

    def _x_is_up(self) -> None:
        if self._outage_failures:
            log.warning("X API answers again after %d failed probes: the outbox drains", self._outage_failures)
        self._outage_failures = 0
        self._x_down_until = None

    def _retry_or_fail(self, r: StoredReply, reason: str, *, outage: bool = False) -> Outcome:
        """Queue ``r`` again after a backoff, or fail it once it has had ``reply_max_attempts`` and its
        first attempt is older than ``reply_give_up_after_seconds``. ``outage``: X is down (5xx, cannot
        connect): the whole drain pauses for the backoff, not just this reply."""
        now = self._now()
        first = self._first_attempt.setdefault(r.id, now)
        age = (now - first).total_seconds()
        if r.attempts >= self.max_attempts and age >= self.give_up_after:
            return self._fail(r, f"{reason} (after {r.attempts} attempts over {age:.0f} s)")
        if outage:
            self._outage_failures += 1
            delay = self.backoff(self._outage_failures)
            self._x_down_until = now + timedelta(seconds=delay)
        else:
            delay = self.backoff(r.attempts)
        self.store.record_retry(r.id, reason, now + timedelta(seconds=delay))
        log.warning(
            "reply %s attempt %d (give up after %d and %.0f s): %s; %s in %.1f s", r.id, r.attempts,
            self.max_attempts, self.give_up_after, reason, "all posting paused, next probe" if outage else "retry", delay,
        )
        self.counts["retry"] += 1
        return Outcome("retry", reason)

    def _refused(self, r: StoredReply, reason: str) -> Outcome:
        """X said 403 (the post did not summon us, the customer blocked us, or another refusal): never
        retried, and the customer gets no automatic reply again — for good if they blocked us, else for
        ``reply_refused_cooldown_seconds``. Their other queued replies are cancelled."""
        self._first_attempt.pop(r.id, None)
        blocked = "block" in reason.lower()
        self.store.record_refused(
            r.id, reason, blocked=blocked, cooldown_seconds=self.settings.reply_refused_cooldown_seconds
        )
        log.error("X refused reply %s to tweet %s (ticket %s), not retried: %s", r.id, r.tweet_id, r.ticket_id, reason)
        self.counts["failed"] += 1
        return Outcome("failed", reason)

    def _fail(self, r: StoredReply, reason: str) -> Outcome:
        self._first_attempt.pop(r.id, None)
        self.store.record_failed(r.id, reason)
        log.error("reply %s to tweet %s (ticket %s) failed: %r", r.id, r.tweet_id, r.ticket_id, reason)
        self.counts["failed"] += 1
        return Outcome("failed", reason)
