"""The consumer of the dead-letter topic (``settings.topic_dead``): every dead letter, from any stage
(ingest, the stream job, the reply consumer), is stored in the store's ``dead_letters`` table
(``TicketStore.record_dead_letters``) so the dashboard can count them and an operator can read them
with SQL.

Same discipline as the reply consumer: partitions are **assigned** (no ~23 s group join on the
embedded broker), offsets are committed to its own consumer group only after the batch is stored,
and storing is idempotent (a digest of the record is unique), so a crash or a replay changes nothing.
A message on the topic that is not a ``DeadLetter`` (another producer's bug) is not dropped either: it
is stored as a dead letter of stage ``dead-letter`` with the reason, timed by its Kafka timestamp so
that a re-delivery has the same digest.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from tweetdesk.kafka.client import StoreThenCommitConsumer
from tweetdesk.records import DeadLetter
from tweetdesk.tickets.store import StoreError

log = logging.getLogger(__name__)

DEFAULT_DEAD_GROUP = "tweetdesk-dead-letters"


class DeadLetterConsumer(StoreThenCommitConsumer):
    name = "dead-letter consumer"
    # Outages only: a record the store refuses (a DataError) must not be retried forever; it is stored as
    # a dead letter of its own (``dead_letter``), and the consumer goes on.
    retry_on = (StoreError, OperationalError, InterfaceError, PoolTimeout)

    def __init__(self, settings, store, *, group_id: str = DEFAULT_DEAD_GROUP, batch_size: int = 500,
                 poll_timeout: float = 0.5):
        super().__init__(settings, group_id, batch_size=batch_size, poll_timeout=poll_timeout)
        self.store = store
        self.stats.update(recorded=0, unreadable=0)

    @property
    def topic(self) -> str:
        return self.settings.topic_dead

    def parse(self, value: bytes | None, meta: dict) -> DeadLetter:
        """A message of the dead-letter topic as a ``DeadLetter`` (a foreign one is wrapped, with the reason)."""
        try:
            if value is None:
                raise ValueError("empty message (tombstone)")
            return DeadLetter.model_validate_json(value)
        except Exception as e:  # noqa: BLE001 (whatever the message holds, it is stored with the reason)
            self.stats["unreadable"] += 1
            ts = meta.get("timestamp_ms")
            at = datetime.fromtimestamp(ts / 1000, timezone.utc) if ts and ts > 0 else datetime(1970, 1, 1, tzinfo=timezone.utc)
            return DeadLetter.from_error(
                value, e, stage="dead-letter", context="not a dead letter record", key=meta.get("key"),
                source_topic=self.settings.topic_dead,
                partition=meta.get("partition"), offset=meta.get("offset"), at=at,
            )

    def dead_letter(self, value: bytes | None, meta: dict, error: BaseException) -> None:
        """A message the store refused as it was: stored again as a foreign one, with the reason, its text
        made safe for any store (``ascii``: no NUL, no surrogate)."""
        raw = ascii(bytes(value or b"")[: 64 * 1024])
        self.store.record_dead_letters([DeadLetter.from_error(
            raw, error, stage="dead-letter", context=f"could not store this dead letter ({type(error).__name__})",
            key=ascii(meta.get("key"))[:200] if meta.get("key") is not None else None,
            source_topic=self.settings.topic_dead, partition=meta.get("partition"), offset=meta.get("offset"),
            at=datetime(1970, 1, 1, tzinfo=timezone.utc),
        )])
        self.stats["unreadable"] += 1

    def process(self, values: list[tuple[bytes | None, dict]]) -> int:
        """Store a batch; returns how many dead letters were new."""
        new = self.store.record_dead_letters([self.parse(v, meta) for v, meta in values])
        self.stats["records"] += len(values)
        self.stats["recorded"] += new
        return new
