"""The consumer of the dead-letter topic (``settings.topic_dead``): every dead letter, from any stage
(ingest, the stream job, the reply consumer), is stored in the ``dead_letters`` table
(``tweetdesk.web.queries.record_dead_letters``) so the dashboard can count them and an operator can
read them with SQL.

Same discipline as the reply consumer: partitions are **assigned** (no ~23 s group join on the
embedded broker), offsets are committed to its own consumer group only after the batch is stored,
and storing is idempotent (a digest of the record is unique), so a crash or a replay changes nothing.
A message on the topic that is not a ``DeadLetter`` (another producer's bug) is not dropped either: it
is stored as a dead letter of stage ``dead-letter`` with the reason, timed by its Kafka timestamp so
that a re-delivery has the same digest.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from tweetdesk.records import DeadLetter
from tweetdesk.tickets.store import StoreError

log = logging.getLogger(__name__)

DEFAULT_DEAD_GROUP = "tweetdesk-dead-letters"


class DeadLetterConsumer:
    def __init__(self, settings, store, *, group_id: str = DEFAULT_DEAD_GROUP, batch_size: int = 500,
                 poll_timeout: float = 0.5):
        self.settings = settings
        self.store = store
        self.group_id = group_id
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        self.ready = threading.Event()
        self.stats = {"records": 0, "recorded": 0, "unreadable": 0, "commits": 0, "last_error": None}

    def parse(self, value: bytes | None, meta: dict) -> DeadLetter:
        """A message of the dead-letter topic as a ``DeadLetter`` (a foreign one is wrapped, with the reason)."""
        try:
            if value is None:
                raise ValueError("empty message (tombstone)")
            return DeadLetter.model_validate_json(value)
        except (ValidationError, ValueError) as e:
            self.stats["unreadable"] += 1
            reason = f"not a dead letter record: {e.errors()[0]['msg'] if isinstance(e, ValidationError) else e}"
            ts = meta.get("timestamp_ms")
            at = datetime.fromtimestamp(ts / 1000, timezone.utc) if ts and ts > 0 else datetime(1970, 1, 1, tzinfo=timezone.utc)
            return DeadLetter.of(
                value, reason, stage="dead-letter", key=meta.get("key"), source_topic=self.settings.topic_dead,
                partition=meta.get("partition"), offset=meta.get("offset"), at=at,
            )

    def process(self, values: list[tuple[bytes | None, dict]]) -> int:
        """Store a batch; returns how many dead letters were new."""
        from tweetdesk.web.queries import record_dead_letters

        new = record_dead_letters(self.store, [self.parse(v, meta) for v, meta in values])
        self.stats["records"] += len(values)
        self.stats["recorded"] += new
        return new

    def _open(self):
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        from tweetdesk.kafka import make_consumer, topic_partitions

        topic = self.settings.topic_dead
        consumer = make_consumer(self.settings, self.group_id)
        parts = [TopicPartition(topic, p) for p in topic_partitions(self.settings, topic)]
        committed = consumer.committed(parts, timeout=15)
        consumer.assign([
            TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING) for tp in committed
        ])
        return consumer

    def run(self, stop: threading.Event) -> None:
        from confluent_kafka import KafkaError, KafkaException, TopicPartition

        consumer = None
        while consumer is None and not stop.is_set():
            try:
                consumer = self._open()
            except Exception as e:  # broker not up yet, topic missing: keep trying
                self.stats["last_error"] = str(e)
                log.error("dead-letter consumer cannot start: %s; retrying in 5 s", e)
                stop.wait(5)
        if consumer is None:
            return
        self.ready.set()
        try:
            while not stop.is_set():
                msgs = consumer.consume(num_messages=self.batch_size, timeout=self.poll_timeout)
                batch, last = [], {}
                for m in msgs or []:
                    err = m.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            log.warning("kafka (dead letters): %s", err)
                            self.stats["last_error"] = str(err)
                        continue
                    key = m.key().decode("utf-8", "replace") if m.key() else None
                    _, ts = m.timestamp()
                    batch.append((m.value(), {"key": key, "partition": m.partition(), "offset": m.offset(),
                                              "timestamp_ms": ts}))
                    last[m.partition()] = max(last.get(m.partition(), -1), m.offset())
                if not batch:
                    continue
                while not stop.is_set():
                    try:
                        self.process(batch)
                        break
                    except (StoreError, SQLAlchemyError) as e:
                        self.stats["last_error"] = str(e)
                        log.error("dead-letter consumer: %s; retrying the batch in 2 s", e)
                        stop.wait(2)
                else:
                    return  # stopping with the batch unstored: replayed on restart
                try:
                    consumer.commit(offsets=[TopicPartition(self.settings.topic_dead, p, o + 1) for p, o in last.items()],
                                    asynchronous=False)
                    self.stats["commits"] += 1
                except KafkaException as e:  # harmless: stored; a later commit or a replay covers it
                    log.warning("dead-letter offset commit failed: %s", e)
                    self.stats["last_error"] = str(e)
        finally:
            consumer.close()
