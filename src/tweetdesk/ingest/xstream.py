"""X API v2 filtered stream source, through tweepy's ``StreamingClient`` (tweepy 4.17 still ships it).

What tweepy does: the rules calls (``get_rules``/``add_rules``/``delete_rules`` on /2/tweets/search/stream/rules),
bearer auth, and the stream parameters (``filter(tweet_fields=…, expansions=…)`` -> GET /2/tweets/search/stream).
What we override, and why:

* ``_connect`` — tweepy's loop sleeps with ``time.sleep`` (a stop request waits out a 320 s back-off), retries
  on 401/403 forever, and does not count connects. Ours follows X's "handling disconnections" guidance: reconnect
  at once when an established stream drops, then back off linearly by 250 ms up to 16 s on network errors,
  exponentially from 5 s up to 320 s on HTTP errors, exponentially from 1 min on 429; stop on 400/401/403/404
  with a clear error; stay within 50 connects per 15 minutes; 21 s read timeout (keep-alives come every 20 s).
* ``on_data`` — tweepy's raises on a malformed payload, which ends its loop. Ours maps each payload to a
  ``records.Tweet`` (``ingest.xpayload``: thread fields, mentions, referenced tweets and their authors) or, if it
  cannot, to a dead letter with the reason.
* The host — tweepy hard-codes https://api.twitter.com; a session that rebases URLs onto ``settings.x_api_base``
  lets tests (and proxies) point it elsewhere.

The bearer token comes from ``TWEETDESK_X_BEARER_TOKEN`` (a ``SecretStr``) and is redacted from tweepy's debug
log, which would otherwise print the Authorization header.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from math import inf

import requests
import tweepy
import urllib3

from tweetdesk.config import Settings, XSettings
from tweetdesk.errors import TweetdeskError
from tweetdesk.ingest.publisher import IngestStats, Publisher
from tweetdesk.records import DeadLetter, Tweet
from tweetdesk.x.auth import RebasedSession, bearer_token_hint
from tweetdesk.x.payload import EXPANSIONS, TWEET_FIELDS, USER_FIELDS, PayloadError, tweet_from_payload

__all__ = ["XFilteredStream", "XStreamError", "run_x_stream", "tweet_from_payload"]  # the mapping: ingest.xpayload

log = logging.getLogger(__name__)

STAGE = "ingest"
FATAL_STATUS = {400: "bad request", 401: "unauthorized", 403: "forbidden", 404: "not found"}


class XStreamError(TweetdeskError):
    pass


# --- policy: back-off and connect budget -----------------------------------------------------------------------
@dataclass(frozen=True)
class Backoff:
    """X's reconnect guidance, in seconds. Tests pass smaller numbers; the shape stays the same."""

    network_step: float = 0.25
    network_max: float = 16.0
    http_start: float = 5.0
    http_max: float = 320.0
    rate_limit_start: float = 60.0
    rate_limit_max: float = 960.0


class BackoffState:
    """The wait before the next connect attempt, given what went wrong so far. ``reset`` after a good connect."""

    def __init__(self, policy: Backoff = Backoff()):
        self.policy = policy
        self.reset()

    def reset(self) -> None:
        self._network = 0.0
        self._http: float | None = None
        self._rate: float | None = None

    def network(self) -> float:
        """Linear: 0 (reconnect at once), then +step each time, up to the cap."""
        wait = self._network
        self._network = min(self._network + self.policy.network_step, self.policy.network_max)
        return wait

    def http(self, status: int) -> float:
        """Exponential: from http_start (from rate_limit_start for 429/420), doubling, capped."""
        p = self.policy
        if status in (420, 429):
            self._rate = p.rate_limit_start if self._rate is None else min(self._rate * 2, p.rate_limit_max)
            return self._rate
        self._http = p.http_start if self._http is None else min(self._http * 2, p.http_max)
        return self._http


class ConnectBudget:
    """At most ``limit`` connection attempts per sliding ``window`` seconds (X: 50 per 15 minutes)."""

    def __init__(self, limit: int = 50, window: float = 900.0, clock: Callable[[], float] = time.monotonic):
        self.limit, self.window, self._clock = limit, window, clock
        self._attempts: deque[float] = deque()

    def delay(self) -> float:
        """Seconds to wait before the next attempt is within budget (0 = go now)."""
        now = self._clock()
        while self._attempts and self._attempts[0] <= now - self.window:
            self._attempts.popleft()
        if len(self._attempts) < self.limit:
            return 0.0
        return self._attempts[0] + self.window - now

    def record(self) -> None:
        self._attempts.append(self._clock())


# --- plumbing --------------------------------------------------------------------------------------------------
class _Redact(logging.Filter):
    def __init__(self, secret: str):
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if self.secret and self.secret in msg:
            record.msg, record.args = msg.replace(self.secret, "***"), ()
        return True


@dataclass
class RuleSync:
    kept: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    by_id: dict[str, str] = field(default_factory=dict)  # rule id -> value, for every active rule


def _http_detail(resp) -> str:
    try:
        body = resp.json()
        return body.get("detail") or body.get("title") or resp.text[:200]
    except Exception:
        return (resp.text or "")[:200]


# --- the source ------------------------------------------------------------------------------------------------
class XFilteredStream(tweepy.StreamingClient):
    """The filtered stream as a tweet source. ``sync_rules()`` then ``run(publisher)``; ``disconnect()`` stops it
    from another thread.

    ``on_tweet``/``on_dead`` receive each mapped tweet / dead letter (``run`` wires them to a ``Publisher``).
    """

    def __init__(
        self,
        settings: XSettings | Settings,
        *,
        backoff: Backoff = Backoff(),
        budget: ConnectBudget | None = None,
        read_timeout: float = 21.0,
        connect_timeout: float = 10.0,
        max_retries: float = inf,
    ):
        x = self.x = XSettings.of(settings)  # the X section: base URL, bearer token, rules
        token = x.bearer_token.get_secret_value() if x.bearer_token else ""
        if not token.strip():
            raise XStreamError(f"no X bearer token: {bearer_token_hint()}")
        super().__init__(token, return_type=dict, max_retries=max_retries, daemon=True)
        self.base = x.api_base.rstrip("/")
        self.backoff = BackoffState(backoff)
        self.budget = budget or ConnectBudget()
        self.timeout = (connect_timeout, read_timeout)
        self.session = RebasedSession(self.base, timeout=self.timeout)  # tweepy's rules calls and our stream share it
        self.rule_values: dict[str, str] = {}
        self.on_tweet: Callable[[Tweet], object] = lambda t: None
        self.on_dead: Callable[[DeadLetter], object] = lambda d: None
        self.counts = {"connects": 0, "reconnects": 0, "keep_alives": 0, "http_errors": 0, "network_errors": 0}
        self.waits: list[tuple[str, float]] = []  # (why, seconds) of every back-off, for logs and tests
        self._stop = threading.Event()
        self._fatal: str | None = None
        self._resp = None
        self._redact = _Redact(token)
        for name in ("tweepy.client", "tweepy.streaming"):
            logging.getLogger(name).addFilter(self._redact)

    def __repr__(self) -> str:  # never show the token
        return f"XFilteredStream(base={self.base!r})"

    def close(self) -> None:
        for name in ("tweepy.client", "tweepy.streaming"):
            logging.getLogger(name).removeFilter(self._redact)
        self.session.close()

    # --- rules ----------------------------------------------------------------------------------------------------
    def _rules_call(self, fn, *args, **kwargs) -> dict:
        try:
            return fn(*args, **kwargs) or {}
        except tweepy.Unauthorized:
            raise XStreamError(f"X API refused the bearer token (401 Unauthorized) at {self.base}: {bearer_token_hint()}") from None
        except tweepy.Forbidden as e:
            raise XStreamError(f"X API: 403 Forbidden at {self.base} (does the app have filtered-stream access?): "
                               f"{'; '.join(e.api_messages) or e}") from None
        except tweepy.HTTPException as e:
            raise XStreamError(f"X API rules call failed: {e}".splitlines()[0]) from None
        except requests.RequestException as e:
            raise XStreamError(f"cannot reach the X API at {self.base}: {type(e).__name__}") from None

    def sync_rules(self, wanted: list[str] | None = None) -> RuleSync:
        """Make the stream's rules exactly ``x.rules`` (TWEETDESK_X_RULES): add the missing ones (tag = value), delete the
        others. One rules request each way at most (X allows 100 rule changes per 15 minutes)."""
        wanted = list(dict.fromkeys(wanted if wanted is not None else self.x.rules))
        if not wanted:
            raise XStreamError("no filtered-stream rules: set TWEETDESK_X_RULES, e.g. '[\"@united OR to:united\"]'")
        current = self._rules_call(self.get_rules).get("data") or []
        have = {r["value"]: r["id"] for r in current}
        sync = RuleSync(kept=[v for v in wanted if v in have])
        stale = [(v, i) for v, i in have.items() if v not in wanted]
        if stale:
            self._rules_call(self.delete_rules, [i for _, i in stale])
            sync.deleted = [v for v, _ in stale]
        missing = [v for v in wanted if v not in have]
        if missing:
            resp = self._rules_call(self.add_rules, [tweepy.StreamRule(value=v, tag=v) for v in missing])
            problems = [e for e in resp.get("errors") or [] if e.get("title") != "DuplicateRule"]
            if problems:
                detail = "; ".join(f"{p.get('value', '')!r}: {p.get('details') or p.get('title')}" for p in problems)
                raise XStreamError(f"X API rejected stream rules: {detail}")
            sync.added = missing
        final = self._rules_call(self.get_rules).get("data") or []
        sync.by_id = {str(r["id"]): r["value"] for r in final}
        self.rule_values = sync.by_id
        log.info("stream rules: kept %d, added %d, deleted %d", len(sync.kept), len(sync.added), len(sync.deleted))
        return sync

    # --- streaming ------------------------------------------------------------------------------------------------
    def stream(self) -> None:
        """Connect and deliver until ``disconnect()`` or a fatal error (raised as ``XStreamError``)."""
        self._stop.clear()
        self.filter(tweet_fields=TWEET_FIELDS, expansions=EXPANSIONS, user_fields=USER_FIELDS)
        if self._fatal:
            raise XStreamError(self._fatal)

    def disconnect(self) -> None:
        self.running = False
        self._stop.set()
        resp = self._resp
        if resp is not None:  # unblock a read that waits for the next line
            try:
                resp.close()
            except Exception:
                pass

    def _wait(self, why: str, seconds: float) -> bool:
        """Back off (interruptibly); True if asked to stop meanwhile."""
        self.waits.append((why, seconds))
        if seconds > 0:
            log.warning("X stream: %s; reconnecting in %.2f s", why, seconds)
        return self._stop.wait(seconds) if seconds > 0 else self._stop.is_set()

    def _connect(self, method, endpoint, params=None, **kwargs):
        url = f"{self.base}/2/tweets/{endpoint}/stream"
        # Connection: close: a stream the server ended cleanly must not hand its socket back to the pool, where the
        # reconnect could pick it up just as the server closes it and count a network error that never happened.
        headers = {"Authorization": f"Bearer {self.bearer_token}", "User-Agent": self.user_agent,
                   "Connection": "close"}
        self.running = True
        self._fatal = None
        errors = 0
        try:
            while self.running and not self._stop.is_set() and errors <= self.max_retries:
                delay = self.budget.delay()
                if delay > 0 and self._wait("50 connects per 15 min used", delay):
                    break
                self.budget.record()
                try:
                    with self.session.request(method, url, params=params, headers=headers, stream=True,
                                              timeout=self.timeout) as resp:
                        self._resp = resp
                        if resp.status_code == 200:
                            if self.counts["connects"]:
                                self.counts["reconnects"] += 1
                            self.counts["connects"] += 1
                            self.backoff.reset()
                            errors = 0
                            self.on_connect()
                            for line in resp.iter_lines(chunk_size=self.chunk_size):
                                if line:
                                    self.on_data(line)
                                else:
                                    self.counts["keep_alives"] += 1
                                if not self.running or self._stop.is_set():
                                    return
                            # The server ended the stream cleanly (deploy, operational disconnect): at once.
                            if self._wait("stream closed by the server", self.backoff.network()):
                                return
                            continue
                        status = resp.status_code
                        detail = _http_detail(resp)
                        if status in FATAL_STATUS:
                            hint = f": {bearer_token_hint()}" if status == 401 else ""
                            self._fatal = f"X stream: HTTP {status} {FATAL_STATUS[status]} ({detail}){hint}"
                            return
                        self.counts["http_errors"] += 1
                        errors += 1
                        if self._wait(f"HTTP {status} ({detail})", self.backoff.http(status)):
                            return
                except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                        urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError) as e:
                    if self._stop.is_set():
                        return
                    self.counts["network_errors"] += 1
                    errors += 1
                    if self._wait(f"network error ({type(e).__name__})", self.backoff.network()):
                        return
                finally:
                    self._resp = None
        finally:
            self.running = False

    def on_connect(self):
        log.info("X filtered stream connected (%s)", self.base)

    def on_data(self, raw_data: bytes) -> None:
        try:
            payload = json.loads(raw_data)
        except (ValueError, UnicodeDecodeError) as e:
            self.on_dead(DeadLetter.of(raw_data, f"X stream payload is not JSON: {e}", STAGE))
            return
        if not isinstance(payload, dict):
            self.on_dead(DeadLetter.of(raw_data, "X stream payload is not a JSON object", STAGE))
            return
        if "data" not in payload:
            if payload.get("errors"):
                # System messages (operational disconnect, …): not tweets; the connection loop handles the close.
                log.warning("X stream says: %r", "; ".join(
                    str(e.get("detail") or e.get("title")) for e in payload["errors"] if isinstance(e, dict)))
                return
            self.on_dead(DeadLetter.of(raw_data, "X stream payload has neither 'data' nor 'errors'", STAGE))
            return
        try:
            tweet = tweet_from_payload(payload, self.rule_values)
        except PayloadError as e:
            reason = str(e) if str(e).startswith("X payload") else f"X payload: {e}"
            self.on_dead(DeadLetter.of(raw_data, reason, STAGE))
            return
        self.on_tweet(tweet)


def run_x_stream(
    settings: Settings,
    *,
    limit: int | None = None,
    progress: bool | None = None,
    publisher: Publisher | None = None,
    client: XFilteredStream | None = None,
    stop: threading.Event | None = None,
) -> IngestStats:
    """Sync the rules, then publish the stream to Kafka until ``limit`` tweets, ``stop``, Ctrl-C or a fatal error."""
    x = client or XFilteredStream(settings.x)
    own = publisher is None
    pub = publisher or Publisher(settings.kafka, total=limit, progress=progress, desc="X stream")
    done = threading.Event()
    try:
        x.sync_rules()

        def on_tweet(t: Tweet) -> None:
            pub.publish(t)
            if limit is not None and pub.stats.read >= limit:
                x.disconnect()

        def on_dead(d: DeadLetter) -> None:
            pub.dead_letter(d)
            if limit is not None and pub.stats.read >= limit:
                x.disconnect()

        x.on_tweet, x.on_dead = on_tweet, on_dead
        if stop is not None:
            def watch() -> None:
                while not done.is_set():
                    if stop.wait(0.2):
                        x.disconnect()
                        return

            threading.Thread(target=watch, name="x-stream-stop", daemon=True).start()
        x.stream()
    finally:
        done.set()
        pub.stats.extra.update({k: v for k, v in x.counts.items() if k != "keep_alives"})
        if own:
            pub.close()
        if client is None:
            x.close()
    return pub.stats
