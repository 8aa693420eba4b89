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

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from tweetdesk.kafka import StoreThenCommitConsumer
from tweetdesk.records import DeadLetter
from tweetdesk.tickets.store import StoreError

log = logging.getLogger(__name__)

DEFAULT_DEAD_GROUP = "tweetdesk-dead-letters"


class DeadLetterConsumer(StoreThenCommitConsumer):
    name = "dead-letter consumer"
    retry_on = (StoreError, SQLAlchemyError)

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
        except (ValidationError, ValueError) as e:
            self.stats["unreadable"] += 1
            ts = meta.get("timestamp_ms")
            at = datetime.fromtimestamp(ts / 1000, timezone.utc) if ts and ts > 0 else datetime(1970, 1, 1, tzinfo=timezone.utc)
            return DeadLetter.from_error(
                value, e, stage="dead-letter", context="not a dead letter record", key=meta.get("key"),
                source_topic=self.settings.topic_dead,
                partition=meta.get("partition"), offset=meta.get("offset"), at=at,
            )

    def process(self, values: list[tuple[bytes | None, dict]]) -> int:
        """Store a batch; returns how many dead letters were new."""
        new = self.store.record_dead_letters([self.parse(v, meta) for v, meta in values])
        self.stats["records"] += len(values)
        self.stats["recorded"] += new
        return new
