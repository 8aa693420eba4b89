"""Everything that talks to Kafka goes through here, with confluent-kafka. A real cluster is a config
change: ``TWEETDESK_KAFKA_BOOTSTRAP`` plus ``TWEETDESK_KAFKA_CONFIG='{"security.protocol": "SASL_SSL", ...}'``.

The functions take the Kafka section of the settings (``config.KafkaSettings``); a whole ``Settings`` is
accepted too and read through its ``kafka`` section.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tweetdesk.config import KafkaSettings, Settings
from tweetdesk.errors import ConfigError
from tweetdesk.kafka.auth import auth_config, prime, with_callbacks

if TYPE_CHECKING:  # confluent_kafka is imported lazily: Spark workers unpickle code that refers to us
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, ClusterMetadata

log = logging.getLogger(__name__)

# Room for a 1 MB tweet plus its JSON envelope: oversized input must reach the stream job so that it can be
# dead-lettered with a reason, not be refused at the producer where the reason would be lost.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


def client_config(kafka: KafkaSettings) -> dict:
    if not kafka.bootstrap:
        raise ConfigError("no Kafka bootstrap servers: set TWEETDESK_KAFKA_BOOTSTRAP or start the embedded broker")
    return {"bootstrap.servers": kafka.bootstrap, **kafka.config, **auth_config(kafka)}


class OncePerProblem(logging.LoggerAdapter):
    """A logger that passes each distinct message once per ``every`` seconds, then says how often it repeated.

    librdkafka logs every reconnect attempt (about 20 lines a second against a refused port) and reports each
    to ``error_cb`` as well; a user should see one line per problem. Messages differing only in numbers
    ("after 0ms", "rdkafka#producer-3") count as the same problem. ``level`` forces one level for all
    messages, e.g. DEBUG for a client whose caller reports the problem itself.
    """

    _NUMBERS = re.compile(r"\d+")

    def __init__(self, logger: logging.Logger, every: float = 60.0, level: int | None = None):
        super().__init__(logger, {})
        self.every = every
        self.level = level
        self._last: dict[tuple[int, str], list] = {}  # problem -> [monotonic time last shown, repeats held back]
        self._lock = threading.Lock()

    def log(self, level, msg, *args, **kwargs):  # what confluent-kafka's ``logger`` setting calls
        level = self.level if self.level is not None else level
        if not self.isEnabledFor(level):
            return
        text = str(msg) % args if args else str(msg)
        key, now = (level, self._NUMBERS.sub("#", text)), time.monotonic()
        with self._lock:
            seen = self._last.get(key)
            if seen is not None and now - seen[0] < self.every:
                seen[1] += 1
                return
            if len(self._last) > 1000:  # a long run with many distinct messages: forget the old ones
                self._last.clear()
            self._last[key] = [now, 0]
        if seen is not None and seen[1]:
            text += f" (repeated {seen[1]} times)"
        self.logger.log(level, "%s", text, **{k: v for k, v in kwargs.items() if k in ("exc_info", "stack_info")})


# librdkafka's log, for every client made here: through Python logging, once per problem (not on stderr directly).
LIBRDKAFKA_LOG = OncePerProblem(logging.getLogger("tweetdesk.kafka.librdkafka"))
# For a client whose failures the caller turns into its own error message: librdkafka's lines at DEBUG.
_QUIET_LOG = OncePerProblem(logging.getLogger("tweetdesk.kafka.librdkafka"), level=logging.DEBUG)
# Errors a consumer reads from Kafka (broker down: one per reconnect attempt), once per problem.
_CONSUMER_LOG = OncePerProblem(log)
# Delivery failures repeat for every message: one line per problem.
_DELIVERY_LOG = OncePerProblem(log)
# Distinct delivery errors kept for the report (the first few say what went wrong).
MAX_ERRORS_KEPT = 5
# A starting broker gets this long after every bootstrap server has failed before start-up gives up.
ALL_BROKERS_DOWN_GRACE_S = 2.0


def make_admin(kafka: KafkaSettings, **conf) -> "AdminClient":
    from confluent_kafka.admin import AdminClient

    full = {**client_config(kafka), "logger": LIBRDKAFKA_LOG, **conf}
    admin = AdminClient(with_callbacks(full))
    prime(admin, full)
    return admin


def connect_admin(kafka: KafkaSettings, timeout: float = 15.0) -> tuple["AdminClient", "ClusterMetadata"]:
    """An admin client and the cluster's metadata, once a broker answers; otherwise one ``ConfigError`` line,
    raised ``ALL_BROKERS_DOWN_GRACE_S`` after every bootstrap server failed (refused, unresolvable, TLS or
    SASL failure), or after ``timeout`` (an address that never answers)."""
    from confluent_kafka import KafkaError, KafkaException

    errors: list = []
    admin = make_admin(kafka, error_cb=errors.append, logger=_QUIET_LOG)
    deadline = time.monotonic() + timeout
    all_down_since, reason = None, "no broker answered"
    while True:
        try:
            return admin, admin.list_topics(timeout=max(0.05, min(0.5, deadline - time.monotonic())))
        except KafkaException as e:
            reason = e.args[0].str()
        admin.poll(0)  # serves error_cb
        now, fatal = time.monotonic(), False
        for err in errors:
            if err.code() == KafkaError._ALL_BROKERS_DOWN:
                all_down_since = all_down_since or now
            else:
                reason = err.str()
                fatal = fatal or err.fatal() or err.code() == KafkaError._AUTHENTICATION
        errors.clear()
        if fatal or now >= deadline or (all_down_since and now - all_down_since >= ALL_BROKERS_DOWN_GRACE_S):
            raise ConfigError(f"cannot reach Kafka at {kafka.bootstrap}: {reason}")


def make_producer(kafka: KafkaSettings, **conf) -> "Producer":
    """An idempotent producer (acks=all): retries after a broker hiccup never duplicate or reorder."""
    from confluent_kafka import Producer

    producer = Producer(with_callbacks({
        **client_config(kafka),
        "logger": LIBRDKAFKA_LOG,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.max.bytes": MAX_MESSAGE_BYTES,
        **conf,
    }))
    prime(producer, client_config(kafka))
    return producer


class DeliveryError(RuntimeError):
    """Kafka did not acknowledge every message of a ``produce_all`` (a RuntimeError: consumers retry the batch)."""


@dataclass
class Deliveries:
    """Delivery reports of the messages handed to ``produce_all``: counts and the first few distinct errors.
    Passed as the producer's ``on_delivery`` callback; one object may count over many calls."""

    delivered: int = 0  # acknowledged by the broker
    failed: int = 0  # refused by the broker, timed out after the producer's retries, or refused before sending
    unacknowledged: int = 0  # still in flight when the last flush gave up
    errors: list[str] = field(default_factory=list)

    def __call__(self, err, msg) -> None:
        if err is None:
            self.delivered += 1
        else:
            self.refused(f"{msg.topic()}: {err.str()}")

    def refused(self, error: str) -> None:
        self.failed += 1
        if error not in self.errors and len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(error)
        _DELIVERY_LOG.error("Kafka delivery failed: %s", error)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.unacknowledged == 0

    def raise_for_failures(self, what: str) -> None:
        """``DeliveryError`` unless every message so far was acknowledged; ``what`` names them in the message."""
        if not self.ok:
            raise DeliveryError(f"Kafka did not acknowledge {self.failed + self.unacknowledged} {what} "
                                f"({self.failed} failed ({self.errors[:3]}), {self.unacknowledged} undelivered)")


def produce_all(
    producer: "Producer",
    messages: Iterable[tuple[str, str | bytes | None, str | bytes]],
    deliveries: Deliveries | None = None,
    *,
    flush: float | None = None,
    on_delivery=None,
) -> Deliveries:
    """Hand every (topic, key, value) to ``producer``, counting each delivery report in ``deliveries``.

    A full local queue is back-pressure, not loss: serve delivery reports until there is room, then go on.
    A message refused before sending (larger than ``message.max.bytes``) counts as failed; the rest still go.
    With ``flush`` (seconds) wait for every report and record what stayed unacknowledged; without it, the
    caller flushes later (a paced source that produces one message at a time). ``on_delivery`` replaces
    ``deliveries`` as the delivery callback (one that also does its own bookkeeping, then calls it)."""
    from confluent_kafka import KafkaException

    deliveries = deliveries if deliveries is not None else Deliveries()
    on_delivery = on_delivery or deliveries
    for topic, key, value in messages:
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
            except KafkaException as e:
                deliveries.refused(str(e.args[0]))
                break
    producer.poll(0)
    if flush is not None:
        deliveries.unacknowledged = producer.flush(flush)
    return deliveries


def make_consumer(kafka: KafkaSettings, group_id: str, **conf) -> "Consumer":
    """A consumer that never commits on its own: callers commit after their side effects are stored."""
    from confluent_kafka import Consumer

    consumer = Consumer(with_callbacks({
        **client_config(kafka),
        "logger": LIBRDKAFKA_LOG,
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "fetch.message.max.bytes": MAX_MESSAGE_BYTES,
        **conf,
    }))
    prime(consumer, client_config(kafka))
    return consumer


# X's data rules: a post deleted on X must be gone from our systems within 24 hours, so no topic keeps a record
# longer than that (MSK Serverless and every other cluster the roles create topics on).
TOPIC_RETENTION_MS = 24 * 3600 * 1000


def ensure_topics(kafka: KafkaSettings, topics: list[str] | None = None, timeout: float = 15.0) -> None:
    """Create the topics if absent (the embedded broker does not auto-create them). The first thing every command
    does with Kafka: an unreachable cluster fails here, in seconds, with one line (``connect_admin``)."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic

    names = topics or [kafka.topic_raw, kafka.topic_enriched, kafka.topic_dead]
    admin, metadata = connect_admin(kafka, timeout)
    existing = set(metadata.topics)
    wanted = [
        NewTopic(t, num_partitions=kafka.topic_partitions, replication_factor=kafka.topic_replication,
                 config={"retention.ms": str(TOPIC_RETENTION_MS)})
        for t in names
        if t not in existing
    ]
    if not wanted:
        return
    for topic, fut in admin.create_topics(wanted, operation_timeout=timeout).items():
        try:
            fut.result(timeout)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        log.info("created topic %s (%d partitions)", topic, kafka.topic_partitions)


def topic_partitions(kafka: KafkaSettings, topic: str, timeout: float = 10.0) -> list[int]:
    # The whole cluster's metadata, not the topic's: tansu creates a topic that a metadata request names, so a
    # mistyped topic would be made, empty, instead of reported.
    md = make_admin(kafka).list_topics(timeout=timeout)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        raise ConfigError(f"Kafka topic '{topic}' does not exist on {kafka.bootstrap}")
    return sorted(t.partitions)


def read_topic(kafka: KafkaSettings, topic: str, timeout: float = 20.0) -> list:
    """Every message now in ``topic`` (all partitions, earliest to end), read with an assigned consumer.

    Stops at end-of-partition as reported by fetches (correct on tansu, whose ListOffsets watermark can
    lag the last record batch), or at ``timeout``. For tests, tools and summaries, not for streaming.
    """
    import time

    from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

    parts = topic_partitions(kafka, topic)
    c = make_consumer(kafka, "tweetdesk-read-topic", **{"enable.partition.eof": True, "fetch.wait.max.ms": 50})
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        pending, out = set(parts), []
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for m in c.consume(num_messages=10_000, timeout=0.2):
                err = m.error()
                if err is None:
                    out.append(m)
                elif err.code() == KafkaError._PARTITION_EOF:
                    pending.discard(m.partition())
        return out
    finally:
        c.close()


# How long a consumer waits for more records once a batch has begun (StoreThenCommitConsumer.run).
_GATHER_S = 0.05


class StoreThenCommitConsumer:
    """The loop both reply-service consumers share: partitions of one topic are **assigned** from the
    group's committed offsets (no slow group join on the embedded broker), each batch is stored by
    ``process`` and only then are its offsets committed, so a crash replays rather than loses.

    Subclasses set ``name`` (for logs), ``retry_on`` (outages worth retrying the batch for: a store or
    broker that is down), ``topic``, ``process`` and ``dead_letter``; they may override ``close`` for their
    own clean-up.

    A consumer never dies on a record: when ``process`` raises anything but ``retry_on``, the batch is
    taken one record at a time, each record whose processing raises goes to ``dead_letter`` with the
    reason, and the offsets move past it (otherwise one record would stop or crash-loop the service).
    """

    name = "consumer"
    retry_on: tuple[type[BaseException], ...] = ()
    mode = "assign"  # or "subscribe": a normal group join (for several instances sharing the topic)

    def __init__(self, settings: Settings, group_id: str, *, batch_size: int = 500, poll_timeout: float = 0.5):
        import threading

        self.settings = settings
        self.group_id = group_id
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        self.ready = threading.Event()  # set once partitions are assigned and reading can start
        self.stats: dict = {"records": 0, "commits": 0, "offsets": {}, "last_error": None}

    @property
    def topic(self) -> str:
        raise NotImplementedError

    def process(self, values: list[tuple[bytes | None, dict]]):
        """Store a batch of (message value, meta with key/partition/offset/timestamp_ms)."""
        raise NotImplementedError

    def dead_letter(self, value: bytes | None, meta: dict, error: BaseException) -> None:
        """Set aside one record that ``process`` could not take, with the reason (``error``)."""
        raise NotImplementedError

    def close(self) -> None:
        """Called once the Kafka consumer is closed."""

    def _store(self, batch: list, stop) -> bool:
        """``process(batch)``, retried while the store or broker is out (``retry_on``); False if stopping first.
        Any other exception propagates: it says something about the records."""
        while not stop.is_set():
            try:
                self.process(batch)
                return True
            except self.retry_on as e:
                self.stats["last_error"] = str(e)
                log.error("%s: %s; retrying the batch in 2 s", self.name, e)
                stop.wait(2)
        return False

    def _store_each(self, batch: list, stop, error: BaseException) -> bool:
        """The batch one record at a time, after ``error`` sank it whole: each record that fails alone is
        dead-lettered with its reason; the others are stored. False if stopping first."""
        log.warning("%s: a batch of %d failed (%s: %s); taking its records one by one", self.name, len(batch),
                    type(error).__name__, error)
        for value, meta in batch:
            try:
                if not self._store([(value, meta)], stop):
                    return False
                continue
            except Exception as e:  # noqa: BLE001 (whatever one record raises must not stop the consumer)
                bad = e
            self.stats["failed_records"] = self.stats.get("failed_records", 0) + 1
            self.stats["last_error"] = f"{type(bad).__name__}: {bad}"
            log.warning("%s: record at %s failed (%s: %s); dead-lettering it", self.name,
                        {k: meta.get(k) for k in ("partition", "offset")}, type(bad).__name__, bad)
            while not stop.is_set():
                try:
                    self.dead_letter(value, meta, bad)
                    break
                except self.retry_on as e:
                    self.stats["last_error"] = str(e)
                    log.error("%s: %s; retrying the dead letter in 2 s", self.name, e)
                    stop.wait(2)
                except Exception:  # noqa: BLE001 (last resort: the record stays in Kafka; log it, go on)
                    log.exception("%s: could not dead-letter the record at %s; skipping it", self.name, meta)
                    break
            else:
                return False
        return True

    def _open(self) -> "Consumer":
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        consumer = make_consumer(self.settings.kafka, self.group_id)
        if self.mode == "subscribe":
            consumer.subscribe([self.topic])
            return consumer
        parts = [TopicPartition(self.topic, p) for p in topic_partitions(self.settings.kafka, self.topic)]
        committed = consumer.committed(parts, timeout=15)
        start = [
            TopicPartition(self.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
            for tp in committed
        ]
        consumer.assign(start)
        log.info(
            "%s: group %s assigned %s from %s", self.name, self.group_id, self.topic,
            {tp.partition: (tp.offset if tp.offset >= 0 else "beginning") for tp in start},
        )
        return consumer

    def run(self, stop) -> None:
        """Consume until ``stop`` (a threading.Event) is set."""
        from confluent_kafka import KafkaError, KafkaException, TopicPartition

        consumer = None
        while consumer is None and not stop.is_set():
            try:
                consumer = self._open()
            except Exception as e:  # broker not up yet, topic missing: keep trying
                self.stats["last_error"] = str(e)
                log.error("%s cannot start: %s; retrying in 5 s", self.name, e)
                stop.wait(5)
        if consumer is None:
            return
        self.ready.set()
        try:
            while not stop.is_set():
                # Wait for the first record, then gather while more keep coming (a micro-batch is published at once,
                # its partitions' records arrive within milliseconds and are decided together, oldest first).
                # consume() waits out its whole timeout unless the full count comes: asked for a full batch, it held
                # every batch of a quiet stream for poll_timeout.
                msgs = consumer.consume(num_messages=1, timeout=self.poll_timeout)
                while msgs and len(msgs) < self.batch_size:
                    more = consumer.consume(num_messages=self.batch_size - len(msgs), timeout=_GATHER_S)
                    if not more:
                        break
                    msgs += more
                batch, last = [], {}
                for m in msgs or []:
                    err = m.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:  # e.g. broker down: every reconnect
                            _CONSUMER_LOG.warning("kafka (%s): %s", self.name, err.str())
                            self.stats["last_error"] = str(err)
                        continue
                    key = m.key().decode("utf-8", "replace") if m.key() else None
                    _, ts = m.timestamp()
                    batch.append((m.value(), {"key": key, "partition": m.partition(), "offset": m.offset(),
                                              "timestamp_ms": ts}))
                    last[m.partition()] = max(last.get(m.partition(), -1), m.offset())
                if not batch:
                    continue
                # Until the batch is stored, nothing is acknowledged; a store outage retries it.
                try:
                    stored = self._store(batch, stop)
                except Exception as e:  # noqa: BLE001 (a record broke the batch: find it, set it aside)
                    stored = self._store_each(batch, stop, e)
                if not stored:
                    return  # stopping with the batch unstored: it is replayed on restart
                try:
                    consumer.commit(offsets=[TopicPartition(self.topic, p, o + 1) for p, o in last.items()],
                                    asynchronous=False)
                except KafkaException as e:
                    # Harmless: the batch is stored; a later commit covers it, or a restart replays it.
                    log.warning("%s: offset commit failed: %s", self.name, e)
                    self.stats["last_error"] = str(e)
                    continue
                self.stats["commits"] += 1
                self.stats["offsets"].update({str(p): o + 1 for p, o in last.items()})
        finally:
            consumer.close()
            self.close()
