"""The consumer of ``tweets.enriched``: enriched tweet → ticket + queued reply → reply outcome → offset.

Order per batch, which is what makes replays harmless:

1. parse each record (``EnrichedTweet``); a record that does not parse, or whose ticket ID fails its
   check, goes to the dead-letter topic with the reason (nothing is dropped silently);
2. one store transaction: insert-if-absent the tickets (unique tweet id) and queue each new ticket's
   reply (unique per ticket) — a re-delivered record changes nothing. A later tweet of a customer's
   conversation joins its open ticket, our own tweets and flood-guarded ones are recorded without a
   ticket (``tweetdesk.tickets.intake``); each reply is queued with its budget priority;
3. the poster tries the new replies at once (dry-run: recorded instantly; live: one attempt each,
   within the posting budget), so normally the *outcome* is stored before step 5. A reply that has
   to wait (rate limit, X outage) stays queued in the store, which owns it from then on;
4. dead letters are flushed;
5. only then are the offsets committed. A crash anywhere before 5 replays the batch, and 2 makes the
   replay a no-op.

Partitions are **assigned**, not subscribed: a ``subscribe()`` group join takes ~23 s on the embedded
broker, an assigned consumer reads at once. Offsets are still committed to the consumer group, so a
restart resumes where it stopped, on tansu and on a real Kafka cluster alike (an assign-mode group has
no members; the broker accepts its commits). Run one instance per group in this mode; set
``mode="subscribe"`` to let several instances share the partitions through the group protocol.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Literal

from pydantic import ValidationError

from tweetdesk.records import DeadLetter, EnrichedTweet
from tweetdesk.reply.budget import priority_of
from tweetdesk.tickets.ids import TicketIdError, parse_ticket_id
from tweetdesk.tickets.intake import Intake
from tweetdesk.tickets.store import StoreError

log = logging.getLogger(__name__)

DEFAULT_GROUP = "tweetdesk-replies"


@dataclass
class BatchResult:
    records: int = 0
    created: int = 0
    duplicates: int = 0
    dead: int = 0
    replies_queued: int = 0
    threaded: int = 0  # joined an open ticket of their conversation
    own: int = 0  # our own tweets, not ticketed
    capped: int = 0  # held back by the flood guard
    settled: dict[str, int] = field(default_factory=dict)


class ReplyConsumer:
    def __init__(
        self,
        settings,
        store,
        poster,
        templates,
        *,
        group_id: str = DEFAULT_GROUP,
        mode: Literal["assign", "subscribe"] = "assign",
        batch_size: int = 500,
        poll_timeout: float = 0.5,
    ):
        self.settings = settings
        self.store = store
        self.poster = poster
        self.templates = templates
        self.intake = Intake.from_settings(settings)  # threads, our own handles, the flood guard
        self.priority = priority_of  # each reply's place in the budget's queue
        self.group_id = group_id
        self.mode = mode
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        self._producer = None
        self.ready = threading.Event()  # set once partitions are assigned and reading can start
        self.stats = {
            "records": 0,
            "tickets_created": 0,
            "duplicates": 0,
            "threaded": 0,
            "own": 0,
            "capped": 0,
            "dead_letters": 0,
            "commits": 0,
            "offsets": {},
            "last_error": None,
        }

    # --- one batch, no Kafka needed (tests call this directly) --------------------------------
    def process(self, values: list[tuple[bytes | None, dict]]) -> BatchResult:
        """Store a batch. ``values``: (message value, meta) with meta keys key/partition/offset."""
        res = BatchResult(records=len(values))
        tweets: list[EnrichedTweet] = []
        dead: list[DeadLetter] = []
        for value, meta in values:
            try:
                if value is None:
                    raise ValueError("empty message (tombstone)")
                tw = EnrichedTweet.model_validate_json(value)
                parse_ticket_id(tw.ticket_id)
                tweets.append(tw)
            except (ValidationError, ValueError, TicketIdError) as e:
                dead.append(self._dead(value, _reason(e), meta))
        ingest = self.store.add_tickets(tweets, self.templates.render, intake=self.intake, priority=self.priority)
        for tweet_id, reason in ingest.rejected:
            tw = next(t for t in tweets if t.id == tweet_id)
            dead.append(self._dead(tw.model_dump_json().encode(), reason, {"key": tweet_id}))
        res.created, res.duplicates, res.replies_queued = len(ingest.created), len(ingest.duplicates), len(ingest.replies)
        res.threaded, res.own, res.capped = len(ingest.threaded), len(ingest.own), len(ingest.capped)
        for tweet_id, reason in ingest.capped:
            log.info("tweet %s not ticketed: %s", tweet_id, reason)
        if ingest.replies and self.poster is not None:
            try:
                res.settled = self.poster.deliver(ingest.replies)
            except Exception as e:  # the replies are safely queued; the poster loop will take them
                log.warning("immediate delivery failed (%s); replies stay queued", e)
            self.poster.wake()
        if dead:
            self._send_dead(dead)
        res.dead = len(dead)
        self.stats["records"] += res.records
        self.stats["tickets_created"] += res.created
        self.stats["duplicates"] += res.duplicates
        self.stats["threaded"] += res.threaded
        self.stats["own"] += res.own
        self.stats["capped"] += res.capped
        self.stats["dead_letters"] += res.dead
        return res

    def _dead(self, value, reason: str, meta: dict) -> DeadLetter:
        log.warning("dead-lettering record at %s: %s", meta, reason)
        return DeadLetter.of(
            value,
            reason,
            stage="reply",
            key=meta.get("key"),
            source_topic=self.settings.topic_enriched,
            partition=meta.get("partition"),
            offset=meta.get("offset"),
        )

    def _send_dead(self, dead: list[DeadLetter]) -> None:
        if self._producer is None:
            from tweetdesk.kafka import make_producer

            self._producer = make_producer(self.settings)
        for d in dead:
            self._producer.produce(self.settings.topic_dead, key=(d.key or "").encode(), value=d.model_dump_json().encode())
        left = self._producer.flush(30)
        if left:
            raise RuntimeError(f"{left} dead letters not acknowledged by Kafka; not committing offsets")

    # --- the Kafka loop -----------------------------------------------------------------------
    def _open(self):
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        from tweetdesk.kafka import make_consumer, topic_partitions

        topic = self.settings.topic_enriched
        consumer = make_consumer(self.settings, self.group_id)
        if self.mode == "subscribe":
            consumer.subscribe([topic])
            return consumer
        parts = [TopicPartition(topic, p) for p in topic_partitions(self.settings, topic)]
        committed = consumer.committed(parts, timeout=15)
        start = [
            TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING) for tp in committed
        ]
        consumer.assign(start)
        log.info(
            "reply consumer: group %s assigned %s from %s",
            self.group_id,
            topic,
            {tp.partition: (tp.offset if tp.offset >= 0 else "beginning") for tp in start},
        )
        return consumer

    def run(self, stop: threading.Event) -> None:
        from confluent_kafka import KafkaError, KafkaException, TopicPartition

        consumer = None
        while consumer is None and not stop.is_set():
            try:
                consumer = self._open()
            except Exception as e:  # broker not up yet, topic missing: keep trying
                self.stats["last_error"] = str(e)
                log.error("reply consumer cannot start: %s; retrying in 5 s", e)
                stop.wait(5)
        if consumer is None:
            return
        self.ready.set()
        try:
            while not stop.is_set():
                msgs = consumer.consume(num_messages=self.batch_size, timeout=self.poll_timeout)
                if not msgs:
                    continue
                batch, last = [], {}
                for m in msgs:
                    err = m.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            log.warning("kafka: %s", err)
                            self.stats["last_error"] = str(err)
                        continue
                    key = m.key().decode("utf-8", "replace") if m.key() else None
                    batch.append((m.value(), {"key": key, "partition": m.partition(), "offset": m.offset()}))
                    last[m.partition()] = max(last.get(m.partition(), -1), m.offset())
                if not batch:
                    continue
                # Until the batch is stored, nothing is acknowledged; a store outage retries it.
                while not stop.is_set():
                    try:
                        self.process(batch)
                        break
                    except (StoreError, RuntimeError) as e:
                        self.stats["last_error"] = str(e)
                        log.error("reply consumer: %s; retrying the batch in 2 s", e)
                        stop.wait(2)
                else:
                    return  # stopping with the batch unstored: it is replayed on restart
                offsets = [TopicPartition(self.settings.topic_enriched, p, o + 1) for p, o in last.items()]
                try:
                    consumer.commit(offsets=offsets, asynchronous=False)
                except KafkaException as e:
                    # Harmless: the batch is stored; a later commit covers it, or a restart replays it.
                    log.warning("offset commit failed: %s", e)
                    self.stats["last_error"] = str(e)
                    continue
                self.stats["commits"] += 1
                self.stats["offsets"].update({str(p): o + 1 for p, o in last.items()})
        finally:
            consumer.close()
            if self._producer is not None:
                self._producer.flush(10)


def _reason(e: Exception) -> str:
    if isinstance(e, ValidationError):
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "record"
        return f"not an enriched tweet: {where}: {first['msg']} ({e.error_count()} error(s))"
    return f"not an enriched tweet: {e}"

