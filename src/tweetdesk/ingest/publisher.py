"""Publish ``Tweet`` records to the Kafka section's ``topic_raw`` (JSON, keyed by tweet id, DMs by conversation) and ``DeadLetter``
records to its ``topic_dead``, counting every delivery report.

Nothing acknowledged is lost: the producer is idempotent with acks=all (``tweetdesk.kafka.make_producer``), so the
broker has every acknowledged message exactly once and in order per partition; what was not acknowledged by the
end of ``flush`` is counted and reported, never hidden.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tqdm import tqdm

from tweetdesk.config import KafkaSettings
from tweetdesk.errors import TweetdeskError
from tweetdesk.kafka.client import Deliveries, OncePerProblem, make_producer, produce_all
from tweetdesk.records import DeadLetter, Tweet, utcnow

if TYPE_CHECKING:
    from confluent_kafka import Producer

log = logging.getLogger(__name__)
# Broker errors repeat for every reconnect: one line per problem.
kafka_log = OncePerProblem(log)


class PublishError(TweetdeskError):
    """Kafka did not acknowledge some messages (or the producer hit a fatal error)."""


@dataclass
class IngestStats(Deliveries):
    """What one ingest run did. ``read`` counts input records (tweets and malformed ones alike); the delivery
    counts (``delivered``, ``failed``, ``unacknowledged``, ``errors``) cover tweets and dead letters alike."""

    read: int = 0
    published: int = 0  # tweets handed to the producer for topic_raw
    dead: int = 0  # dead letters handed to the producer for topic_dead
    started: float = field(default_factory=time.monotonic)
    elapsed: float = 0.0
    extra: dict[str, int] = field(default_factory=dict)  # source-specific counters (reconnects, keep-alives…)

    @property
    def rate(self) -> float:
        """Tweets published per second over the run."""
        return self.published / self.elapsed if self.elapsed > 0 else 0.0

    def summary(self) -> str:
        parts = [
            f"published {self.published} tweets",
            f"{self.dead} dead letters",
            f"{self.delivered} acknowledged",
        ]
        if self.failed or self.unacknowledged:
            parts.append(f"{self.failed} failed, {self.unacknowledged} unacknowledged")
        parts += [f"{k} {v}" for k, v in self.extra.items()]
        return ", ".join(parts) + f" in {self.elapsed:.2f} s ({self.rate:,.0f} tweets/s)"


class Publisher:
    """One producer, one progress bar, one set of counters. Use as a context manager: leaving it flushes."""

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        total: int | None = None,
        progress: bool | None = None,
        desc: str = "ingest",
        producer: "Producer | None" = None,
    ):
        self.kafka = kafka
        self.stats = IngestStats()
        self._fatal: str | None = None
        self.producer = producer or make_producer(self.kafka, error_cb=self._on_error)
        # progress=None: tqdm shows the bar on a terminal only (no noise in logs and tests).
        self._bar = tqdm(total=total, unit="tweet", desc=desc, disable=None if progress is None else not progress,
                         dynamic_ncols=True, smoothing=0.1)

    def set_total(self, total: int | None) -> None:
        """Set the progress bar's total once it is known."""
        self._bar.total = total
        self._bar.refresh()

    # --- producing ----------------------------------------------------------------------------------------------
    def publish(self, tweet: Tweet, key: str | None = None) -> Tweet:
        """Send one tweet to topic_raw, stamped with ``ingested_at`` now (the start of the latency clock), keyed
        by ``key`` (default: its conversation, ``Tweet.partition_key``, so one conversation stays in order)."""
        tweet = tweet.model_copy(update={"ingested_at": utcnow()})
        self._produce(self.kafka.topic_raw, key or tweet.partition_key, tweet.model_dump_json())
        self.stats.read += 1
        self.stats.published += 1
        self._bar.update(1)
        return tweet

    def dead_letter(self, letter: DeadLetter) -> None:
        """Send one malformed input record, with its reason, to topic_dead."""
        self._produce(self.kafka.topic_dead, letter.key, letter.model_dump_json())
        self.stats.read += 1
        self.stats.dead += 1
        self._bar.update(1)
        self._bar.set_postfix(dead=self.stats.dead, refresh=False)
        log.info("dead letter (%s): %r", letter.stage, letter.reason)

    def publish_raw(self, value: bytes | str, key: str | None = None) -> None:
        """Send bytes to topic_raw as they are, unvalidated: for exercising the stream job's own dead-lettering."""
        self._produce(self.kafka.topic_raw, key, value)
        self.stats.read += 1
        self.stats.published += 1
        self._bar.update(1)

    def _produce(self, topic: str, key: str | None, value: str | bytes) -> None:
        if self._fatal:
            raise PublishError(f"Kafka producer failed: {self._fatal}")
        self._serve(produce_all, self.producer, [(topic, key, value)], self.stats, on_delivery=self._on_delivery)

    def _serve(self, call, *args, **kwargs):
        """``call``, with a fatal producer error that librdkafka raises from poll or flush (an idempotent
        producer whose id a restarted broker no longer knows) recorded as if ``error_cb`` had reported it: the
        run then ends with a ``PublishError`` at the next send, not a traceback. Returns None after one."""
        from confluent_kafka import KafkaException

        try:
            return call(*args, **kwargs)
        except KafkaException as e:
            self._on_error(e.args[0])
            if not self._fatal:
                raise
            return None

    def poll(self, timeout: float = 0.0) -> None:
        """Serve delivery reports (call while idle, e.g. while pacing)."""
        self._serve(self.producer.poll, timeout)

    def acknowledged(self, timeout: float = 60.0, *, failed_before: int = 0) -> bool:
        """Wait (up to ``timeout``) for the delivery report of every message sent so far; True when Kafka
        acknowledged them all (a long-lived publisher: all since ``stats.failed`` was ``failed_before``). A
        source that keeps a read position (the mentions timeline's since_id) moves it only after this."""
        left = self._flush(timeout)
        return left == 0 and self.stats.failed == failed_before and not self._fatal

    def _flush(self, timeout: float) -> int:
        left = self._serve(self.producer.flush, timeout)
        if left is None:  # raised before it served the reports: they are still waiting (failed, after a fatal error)
            left = self._serve(self.producer.flush, timeout)
        return len(self.producer) if left is None else left

    # --- callbacks ----------------------------------------------------------------------------------------------
    def _on_delivery(self, err, msg) -> None:
        self.stats(err, msg)  # counts it (``kafka.Deliveries``)

    def _on_error(self, err) -> None:
        # Transient errors (broker down a moment) are retried by librdkafka; a fatal one ends the run.
        if err.fatal():
            self._fatal = err.str()
        kafka_log.warning("Kafka: %s", err.str())

    # --- finishing ----------------------------------------------------------------------------------------------
    def flush(self, timeout: float = 60.0) -> IngestStats:
        """Wait for every delivery report (up to ``timeout``), close the bar, and return the counts."""
        self.stats.unacknowledged = self._flush(timeout)
        if self._fatal:  # the report librdkafka raised the fatal error from may never come: count the silent ones
            s = self.stats
            s.unacknowledged = max(s.unacknowledged, s.published + s.dead - s.delivered - s.failed)
        self.stats.elapsed = time.monotonic() - self.stats.started
        self._bar.set_postfix(dead=self.stats.dead, failed=self.stats.failed, refresh=False)
        self._bar.close()
        return self.stats

    def close(self, timeout: float = 60.0) -> IngestStats:
        """Flush, then let the producer go now. Its error callback points back here, so without this the
        producer lives until the garbage collector runs -- after a demo has stopped its broker, librdkafka
        then logs "connection refused" for a run that ended fine."""
        stats = self.flush(timeout)
        self.producer = None
        return stats

    def raise_for_failures(self) -> None:
        s = self.stats
        if s.failed or s.unacknowledged or self._fatal:
            first = f"; first error: {s.errors[0]}" if s.errors else (f"; {self._fatal}" if self._fatal else "")
            raise PublishError(
                f"Kafka did not acknowledge {s.failed + s.unacknowledged} of {s.published + s.dead} messages "
                f"({s.failed} failed, {s.unacknowledged} still in flight){first}"
            )

    def __enter__(self) -> "Publisher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
