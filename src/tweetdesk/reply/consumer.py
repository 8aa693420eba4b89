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
from dataclasses import dataclass, field
from typing import Literal

from confluent_kafka import KafkaException

from tweetdesk.kafka.client import DeliveryError, StoreThenCommitConsumer, make_producer, produce_all
from tweetdesk.records import DeadLetter, EnrichedTweet
from tweetdesk.reply.templates import DM_ACK, dm_text
from tweetdesk.tickets.ids import parse_ticket_id
from tweetdesk.tickets.intake import Intake
from tweetdesk.tickets.priority import priority_of
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


class ReplyConsumer(StoreThenCommitConsumer):
    name = "reply consumer"
    # Outages only (the store or the broker down): anything else a batch raises is about its records, which
    # are then taken one by one and the failing ones dead-lettered (StoreThenCommitConsumer).
    retry_on = (StoreError, DeliveryError, KafkaException)

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
        super().__init__(settings, group_id, batch_size=batch_size, poll_timeout=poll_timeout)
        self.store = store
        self.poster = poster
        self.templates = templates
        self.intake = Intake.from_settings(settings)  # threads, our own handles, the flood guard
        self.priority = priority_of  # each reply's place in the budget's queue
        self.mode = mode
        self._producer = None
        self.stats.update(tickets_created=0, duplicates=0, threaded=0, own=0, capped=0, dead_letters=0)

    def reply_text(self, tw: EnrichedTweet) -> str | None:
        """A new ticket's automatic reply: the templates' for a post; for a direct message an acknowledgement by
        DM with the privacy-policy link (None without the link: the intake already said why)."""
        if tw.channel == "dm":
            url = self.settings.privacy_policy_url
            return dm_text(DM_ACK.format(ticket_id=tw.ticket_id), url) if url else None
        return self.templates.render(tw)

    @property
    def topic(self) -> str:
        return self.settings.topic_enriched

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
                if tw.channel == "dm" and not (tw.author_id and tw.dm_conversation_id):
                    raise ValueError("a direct message without its sender's id or conversation: it cannot be answered")
                tweets.append(tw)
            except Exception as e:  # noqa: BLE001 (whatever a record holds, it becomes a dead letter)
                dead.append(self._dead(value, e, meta, context="not an enriched tweet"))
        ingest = self.store.add_tickets(tweets, self.reply_text, intake=self.intake, priority=self.priority)
        for tweet_id, reason in ingest.rejected:
            tw = next(t for t in tweets if t.id == tweet_id)
            dead.append(self._dead(tw.model_dump_json().encode(), ValueError(reason), {"key": tweet_id}))
        res.created, res.duplicates, res.replies_queued = len(ingest.created), len(ingest.duplicates), len(ingest.replies)
        res.threaded, res.own, res.capped = len(ingest.threaded), len(ingest.own), len(ingest.capped)
        for tweet_id, reason in ingest.capped:
            log.info("tweet %s not ticketed: %r", tweet_id, reason)
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

    def dead_letter(self, value: bytes | None, meta: dict, error: BaseException) -> None:
        """A record whose processing raised (``StoreThenCommitConsumer._store_each``): to the dead-letter topic."""
        self._send_dead([self._dead(value, error, meta, context=f"could not process ({type(error).__name__})")])
        self.stats["dead_letters"] += 1

    def _dead(self, value, error: BaseException, meta: dict, context: str | None = None) -> DeadLetter:
        letter = DeadLetter.from_error(
            value,
            error,
            stage="reply",
            context=context,
            key=meta.get("key"),
            source_topic=self.settings.topic_enriched,
            partition=meta.get("partition"),
            offset=meta.get("offset"),
        )
        log.warning("dead-lettering record at %s: %r", meta, letter.reason)
        return letter

    def _send_dead(self, dead: list[DeadLetter]) -> None:
        if self._producer is None:
            self._producer = make_producer(self.settings.kafka)
        done = produce_all(self._producer, [(self.settings.topic_dead, (d.key or "").encode(),
                                             d.model_dump_json().encode()) for d in dead], flush=30)
        done.raise_for_failures("dead letters; not committing offsets")  # a RuntimeError: the batch is retried

    # --- the Kafka loop: tweetdesk.kafka.StoreThenCommitConsumer.run -----------------------
    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(10)
