"""DMs X pushes to us: the receiving end of the X Activity API's ``dm.received`` webhook (the route is
``web.x_webhook``; this is what it does with a delivery).

X's contract (docs.x.com/x-api/webhooks/quickstart; x-api/activity/introduction and event-payloads):

* **CRC**: X sends ``GET <webhook>?crc_token=…`` at registration, hourly and on demand; the answer is
  ``{"response_token": "sha256=" + base64(HMAC-SHA256(consumer secret, crc_token))}``. A webhook that fails it is
  marked invalid and gets no more events.
* **Deliveries**: ``POST`` with the event JSON, signed in ``x-twitter-webhooks-signature`` (the same HMAC over
  the raw body). An unsigned or wrongly signed body is refused (4xx) and nothing of it is kept.
* **Price**: ``dm.received`` is billed $0.010 per event delivered (docs.x.com/x-api/getting-started/pricing,
  "Webhook events"; ``dm.sent`` / ``dm.read`` / ``dm.indicate_typing`` are not billed): subscribe to
  ``dm.received`` only.

Each customer message becomes a ``DirectMessage(source="activity")`` on ``tweets.raw``, keyed by its
``dm_conversation_id``; a delivery or event that cannot make one goes to ``tweets.dead`` with the reason, and
the delivery is still answered 200 (it came from X, signed: sending it again would not mend it).

**Stored once**: X redelivers what it thinks failed, and a replay job sends events again. Every event id is
claimed in ``<work_dir>/x_webhook_events.sqlite`` (a bounded table of the ids of the last ``KEEP_SECONDS``,
at most ``KEEP_ROWS``) before it is published: a second delivery of the same event, in this process or after
a restart, publishes nothing. If Kafka does not acknowledge, the claims are released and X gets a 503, so
its retry publishes the event then. The producer is idempotent (acks=all): what Kafka acknowledged is in the
topic exactly once. The one window left: the process dies after Kafka's acknowledgement and before the
answer: the event is claimed and in the topic; X's retry is then a duplicate, found and dropped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tweetdesk.config import Settings
from tweetdesk.errors import ConfigError, TweetdeskError
from tweetdesk.ingest.publisher import Publisher
from tweetdesk.records import DeadLetter
from tweetdesk.x.dms import parse_delivery
from tweetdesk.x.payload import PayloadError

log = logging.getLogger(__name__)

STAGE = "ingest"
SEEN_FILE = "x_webhook_events.sqlite"
KEEP_SECONDS = 7 * 86400  # X retries within minutes and a replay job reaches back days: a week covers both
KEEP_ROWS = 200_000


class ActivityUnavailable(TweetdeskError):
    """Kafka did not take the delivery: X should send it again (503)."""


def x_signature(secret: str, message: bytes) -> str:
    """``sha256=`` + base64(HMAC-SHA256(secret, message)): X's webhook signature and CRC response token."""
    return "sha256=" + base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


class SeenEvents:
    """The event ids already published (or dead-lettered), in a small SQLite table: survives restarts, shared by
    every thread (and process) using the same work dir, pruned to the last ``keep_seconds`` / ``keep_rows``."""

    def __init__(self, path: Path, *, keep_seconds: float = KEEP_SECONDS, keep_rows: int = KEEP_ROWS,
                 clock=time.time):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.keep_seconds, self.keep_rows, self.clock = path, keep_seconds, keep_rows, clock
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, at REAL NOT NULL)")
            db.execute("CREATE INDEX IF NOT EXISTS seen_at ON seen (at)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    def claim(self, ids: list[str]) -> set[str]:
        """Mark ``ids`` seen; returns the ones that were not seen before (only those are to be published)."""
        now = self.clock()
        fresh: set[str] = set()
        with self._lock, self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            for i in dict.fromkeys(ids):
                if db.execute("INSERT OR IGNORE INTO seen (id, at) VALUES (?, ?)", (i, now)).rowcount:
                    fresh.add(i)
            db.execute("DELETE FROM seen WHERE at < ?", (now - self.keep_seconds,))
            db.execute("DELETE FROM seen WHERE id IN (SELECT id FROM seen ORDER BY at DESC LIMIT -1 OFFSET ?)",
                       (self.keep_rows,))
            db.execute("COMMIT")
        return fresh

    def release(self, ids: set[str]) -> None:
        with self._lock, self._connect() as db:
            db.executemany("DELETE FROM seen WHERE id = ?", [(i,) for i in ids])


@dataclass
class Received:
    published: int = 0
    duplicates: int = 0
    skipped: int = 0
    dead: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"published": self.published, "duplicates": self.duplicates, "skipped": self.skipped,
                "dead_letters": self.dead}


class ActivityReceiver:
    """Verifies, dedupes and publishes the deliveries of the X Activity API (one delivery at a time)."""

    def __init__(self, settings: Settings, *, publisher: Publisher | None = None, seen: SeenEvents | None = None):
        secret = settings.x.webhook_secret
        if secret is None or not secret.get_secret_value():
            raise TweetdeskError("no webhook secret: set TWEETDESK_X_WEBHOOK_SECRET to the app's consumer secret")
        self._secret = secret.get_secret_value()
        self.settings = settings
        self.publisher = publisher
        self._own_publisher = publisher is None
        self.seen = seen or SeenEvents(settings.work_dir / SEEN_FILE)
        self._lock = threading.Lock()
        self._topics_ready = publisher is not None

    def crc_response(self, crc_token: str) -> str:
        return x_signature(self._secret, crc_token.encode())

    def signed(self, body: bytes, header: str | None) -> bool:
        return bool(header) and hmac.compare_digest(x_signature(self._secret, body), header)

    def _publisher(self) -> Publisher:
        if self.publisher is None:
            kafka = self.settings.kafka
            if not kafka.bootstrap:
                raise ActivityUnavailable("no Kafka to publish to (TWEETDESK_KAFKA_BOOTSTRAP is not set)")
            self.publisher = Publisher(kafka, progress=False, desc="X webhook")
        if not self._topics_ready:
            from confluent_kafka import KafkaException

            from tweetdesk.kafka.client import ensure_topics

            kafka = self.settings.kafka
            try:
                ensure_topics(kafka, [kafka.topic_raw, kafka.topic_dead], timeout=10.0)
            except ConfigError as e:  # Kafka unreachable
                raise ActivityUnavailable(str(e)) from None
            except KafkaException as e:
                raise ActivityUnavailable(f"cannot reach Kafka at {kafka.bootstrap}: {e.args[0].str()}") from None
            self._topics_ready = True
        return self.publisher

    def close(self) -> None:
        with self._lock:
            if self.publisher is not None and self._own_publisher:
                self.publisher.close()
                self.publisher, self._topics_ready = None, False

    def receive(self, body: bytes) -> Received:
        """One signed delivery: publish its new customer messages and dead letters once. Raises
        ``ActivityUnavailable`` when Kafka did not acknowledge (nothing is marked seen then)."""
        out = Received()
        with self._lock:
            pub = self._publisher()
            failed_before = pub.stats.failed
            try:
                batch = parse_delivery(body, brand=None)
            except PayloadError as e:
                digest = hashlib.sha256(body).hexdigest()
                if self.seen.claim([f"delivery:{digest}"]):
                    pub.dead_letter(DeadLetter.of(body, f"X webhook delivery: {e}", STAGE, key="activity"))
                    out.dead = 1
                else:
                    out.duplicates = 1
                claimed = {f"delivery:{digest}"} if out.dead else set()
            else:
                ids = [m.id for m in batch.messages] + [i for _, _, i in batch.bad if i]
                claimed = self.seen.claim(ids)
                for m in batch.messages:
                    if m.id in claimed:
                        pub.publish(m)
                        out.published += 1
                    else:
                        out.duplicates += 1
                for raw, reason, eid in batch.bad:
                    if eid is None or eid in claimed:
                        pub.dead_letter(DeadLetter.of(raw, f"X webhook: {reason}", STAGE, key="activity"))
                        out.dead += 1
                    else:
                        out.duplicates += 1
                out.skipped = len(batch.skipped)
            if not pub.acknowledged(failed_before=failed_before):
                self.seen.release(claimed)
                raise ActivityUnavailable("Kafka did not acknowledge the delivery; X will send it again")
        if out.published or out.dead:
            log.info("X webhook: %s", out.as_dict())
        return out
