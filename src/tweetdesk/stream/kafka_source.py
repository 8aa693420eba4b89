"""Kafka as a Spark streaming source without the spark-sql-kafka jar: a Spark 4 Python Data Source
(``DataSourceStreamReader``) over confluent-kafka.

* One Spark partition per Kafka partition per micro-batch; offsets (next offset to read, per partition)
  live in Spark's checkpoint, so a restarted query resumes exactly where it stopped. Nothing is
  committed to Kafka consumer groups.
* The end of a partition is found by reading, not trusted from the high watermark: the embedded tansu
  broker can report a watermark that stops at the first offset of the last record batch + 1, which
  would leave the tail unread until more data arrives. ``latestOffset`` starts at the watermark and
  probes forward with an assigned consumer until end-of-partition. On real Kafka the probe reads
  nothing and costs one short fetch.
* A checkpoint can point past the end of the topic (tansu keeps nothing across its own restart; a
  real topic can be deleted and recreated, or retention can drop unread data). The reader detects a
  changed topic id, a start beyond the end and a start below the earliest offset, logs a warning and
  reads the affected partitions from their earliest offset. The decision is written into the batch's
  end offset (``"from"``), so replaying that batch after a crash reads the same range.
* confluent_kafka is imported inside the methods: the reader is pickled to Python workers, and a
  module-level import of the C extension does not survive that trip.

Columns are those of Spark's native ``kafka`` source (``schema.KAFKA_SCHEMA``), so everything downstream
is the same whichever source is used (``read_kafka_stream``).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.streaming.datasource import ReadAllAvailable, ReadLimit, ReadMaxRows, SupportsTriggerAvailableNow

from tweetdesk.stream.schema import KAFKA_SCHEMA, TRANSFORM_SCHEMA

log = logging.getLogger(__name__)

FORMAT = "tweetdesk_kafka"
ENRICHED_FORMAT = "tweetdesk_kafka_enriched"
# Consumer group id for assign()-only consumers: librdkafka wants one, we never join or commit.
_READER_GROUP = "tweetdesk-stream-reader"
# After an end-of-partition short of the planned end, how long a reader waits for the rest before
# concluding the range is gone (topic recreated / broker restarted between planning and reading).
_GAP_GRACE_S = 5.0
# Give up on a partition that returns no data and no end-of-partition for this long (broker down).
_STALL_TIMEOUT_S = 120.0
# A reader hands on what it has read once it holds this many records (memory stays bounded on a huge range). A
# micro-batch's range is usually smaller (TWEETDESK_MAX_OFFSETS_PER_TRIGGER, shared by the partitions): read
# whole, it goes to the models in one piece. At 10,000, a range of 10,001 ran its models on 10,000, then fetched
# the last record after a pause (0.3-0.9 s), then ran them again on 1: one core idle for that long per batch.
_READ_BATCH_ROWS = 50_000


@dataclass(frozen=True)
class KafkaRange(InputPartition):
    """One Spark partition: offsets [start, end) of one Kafka partition."""

    topic: str
    partition: int
    start: int
    end: int


def _client(cls, conf: dict):
    """A confluent-kafka client of ``cls`` with the callbacks its (JSON-borne) configuration needs."""
    from tweetdesk.kafka.auth import prime, with_callbacks

    client = cls(with_callbacks(conf))
    prime(client, conf)
    return client


def _consumer_conf(options: dict, **extra) -> dict:
    from tweetdesk.kafka.client import LIBRDKAFKA_LOG, MAX_MESSAGE_BYTES

    return {
        **json.loads(options["kafka_config"]),
        "group.id": _READER_GROUP,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "error",  # an out-of-range offset is reported, never silently skipped
        "fetch.message.max.bytes": MAX_MESSAGE_BYTES,
        "max.partition.fetch.bytes": MAX_MESSAGE_BYTES,
        "log_level": 3,
        "logger": LIBRDKAFKA_LOG,  # once per problem, not a line per reconnect attempt
        **extra,
    }


class KafkaStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    """Runs in Spark's long-lived planner Python process (offsets) and in workers (``read``)."""

    def __init__(self, options: dict, transform=None):
        self.options = dict(options)
        self.transform = transform  # see enriching_source
        self.topic = options["topic"]
        self.max_rows = int(options.get("max_offsets_per_trigger", "0")) or None
        self._consumer = None  # planner-side probe consumer, created on first use
        self._admin = None
        self._target: dict[str, int] | None = None  # availableNow: the ends at query start

    # --- planner side ---------------------------------------------------------------------------
    def _probe_consumer(self):
        if self._consumer is None:
            from confluent_kafka import Consumer

            # Short fetch wait: an end-of-partition answer comes back in ~10 ms instead of 500 ms.
            self._consumer = _client(Consumer, _consumer_conf(self.options, **{"fetch.wait.max.ms": 10}))
        return self._consumer

    def _topic_id(self) -> str | None:
        """The topic's id (a recreated topic gets a new one); None where the broker cannot tell."""
        try:
            from confluent_kafka import TopicCollection
            from confluent_kafka.admin import AdminClient

            from tweetdesk.kafka.client import LIBRDKAFKA_LOG

            if self._admin is None:
                self._admin = _client(AdminClient, {**json.loads(self.options["kafka_config"]), "log_level": 3,
                                                    "logger": LIBRDKAFKA_LOG})
            fut = self._admin.describe_topics(TopicCollection([self.topic]), request_timeout=10)[self.topic]
            tid = fut.result(timeout=10).topic_id
            return str(tid) if tid is not None else None
        except Exception as e:  # older brokers / restricted ACLs: fall back to offset checks only
            log.debug("no topic id for %s: %s", self.topic, e)
            return None

    def _bounds(self) -> dict[str, tuple[int, int]]:
        """{partition: (earliest, true end)}; the end found by reading past the reported watermark."""
        from confluent_kafka import KafkaError, TopicPartition

        c = self._probe_consumer()
        md = c.list_topics(self.topic, timeout=10)
        t = md.topics.get(self.topic)
        if t is None or t.error is not None:
            from tweetdesk.errors import ConfigError

            raise ConfigError(f"Kafka topic '{self.topic}' is not available: {t.error if t else 'missing'}")
        lows, ends = {}, {}
        for p in sorted(t.partitions):
            lo, hi = c.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10, cached=False)
            lows[p], ends[p] = max(lo, 0), max(hi, 0)
        # Probe: read from the reported end until end-of-partition; whatever arrives extends the end.
        c.assign([TopicPartition(self.topic, p, ends[p]) for p in ends])
        pending = set(ends)
        deadline = time.monotonic() + 5.0
        try:
            while pending and time.monotonic() < deadline:
                # Ask for one event per partition still open: consume() returns as soon as it has that many
                # (each partition ends with an end-of-partition event), where a larger count would always
                # wait out the timeout. Records past the watermark just take more rounds.
                for m in c.consume(num_messages=len(pending), timeout=0.2):
                    err = m.error()
                    if err is None:
                        ends[m.partition()] = max(ends[m.partition()], m.offset() + 1)
                    elif err.code() == KafkaError._PARTITION_EOF:
                        ends[m.partition()] = max(ends[m.partition()], m.offset())
                        pending.discard(m.partition())
                    elif err.code() == KafkaError._AUTO_OFFSET_RESET:
                        pending.discard(m.partition())  # watermark raced a truncation: keep it
                    elif err.fatal():
                        raise RuntimeError(f"Kafka error probing {self.topic}: {err}")
        finally:
            c.unassign()
        if pending:
            log.debug("probe of %s partitions %s did not reach the end within 5 s", self.topic, sorted(pending))
        return {str(p): (lows[p], ends[p]) for p in sorted(ends)}

    def initialOffset(self) -> dict:
        # A new query starts at the earliest offset: every tweet that reached Kafka gets processed.
        bounds = self._bounds()
        return {"topic": self.topic, "topic_id": self._topic_id(),
                "partitions": {p: lo for p, (lo, _) in bounds.items()}}

    def prepareForTriggerAvailableNow(self) -> None:
        self._target = {p: end for p, (_, end) in self._bounds().items()}

    def getDefaultReadLimit(self) -> ReadLimit:
        return ReadMaxRows(self.max_rows) if self.max_rows else ReadAllAvailable()

    def latestOffset(self, start: dict, limit: ReadLimit) -> dict:
        bounds = self._bounds()
        topic_id = self._topic_id()
        froms, reasons = plan_resets(self.topic, start, bounds, topic_id)
        for r in reasons:
            log.warning("%s", r)
        begin = {p: froms.get(p, start["partitions"].get(p, lo)) for p, (lo, _) in bounds.items()}
        ends = {p: end for p, (_, end) in bounds.items()}
        if self._target is not None:  # availableNow: never past what existed when the query started
            ends = {p: max(begin[p], min(e, self._target.get(p, e))) for p, e in ends.items()}
        ends = _apply_limit(begin, ends, limit)
        if not froms and ends == {p: start["partitions"].get(p) for p in ends}:
            return start  # nothing new: Spark compares offsets to decide whether to run a batch
        out = {"topic": self.topic, "topic_id": topic_id, "partitions": ends}
        if froms:
            # Written to the offset log with the batch: a replay reads the same range. The warning above goes to
            # this planner process's stderr, which is the driver's (Spark starts the planner beside the driver).
            # A Python StreamingQueryListener repeating it in the driver's log cost 0.17 of a core in the JVM at
            # 500 tweets/s (py4j turning each progress event into Python objects), so there is none.
            out["from"] = froms
            out["reset"] = " ".join(reasons)
        return out

    def reportLatestOffset(self) -> dict | None:
        return None

    def partitions(self, start: dict, end: dict) -> list[KafkaRange]:
        froms = end.get("from", {})
        ranges = []
        for p, e in end["partitions"].items():
            s = froms.get(p, start["partitions"].get(p, e) if start else e)
            if e > s:
                ranges.append(KafkaRange(self.topic, int(p), s, e))
        return ranges

    def commit(self, end: dict) -> None:
        pass  # offsets live in Spark's checkpoint; nothing to tell Kafka

    def stop(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    # --- worker side ----------------------------------------------------------------------------
    def read(self, partition: KafkaRange):
        batches = read_range(self.options, partition)
        return batches if self.transform is None else self.transform(batches)


def plan_resets(topic: str, start: dict, bounds: dict[str, tuple[int, int]],
                topic_id: str | None) -> tuple[dict[str, int], list[str]]:
    """Partitions that cannot continue from the checkpoint's offsets: {partition: read from here}, reasons."""
    froms: dict[str, int] = {}
    reasons: list[str] = []
    old_id = start.get("topic_id")
    if old_id and topic_id and old_id != topic_id:
        reasons.append(f"Kafka topic {topic} was recreated (id {old_id} -> {topic_id}): the checkpoint's offsets "
                       f"belong to the old topic; starting over from the earliest offset.")
        return {p: lo for p, (lo, _) in bounds.items()}, reasons
    for p, (lo, end) in bounds.items():
        s = start["partitions"].get(p)
        if s is None:
            froms[p] = lo  # a partition added since the last batch: read it from the start
        elif s > end:
            froms[p] = lo
            reasons.append(f"checkpoint offset {s} of {topic}[{p}] is past the end of the topic ({end}): the broker "
                           f"lost its data (the embedded broker keeps nothing across a restart); starting over "
                           f"from the earliest offset ({lo}).")
        elif s < lo:
            froms[p] = lo
            reasons.append(f"offsets {s}..{lo - 1} of {topic}[{p}] are no longer in Kafka (retention); "
                           f"continuing from the earliest offset ({lo}).")
    return froms, reasons


def _apply_limit(begin: dict[str, int], ends: dict[str, int], limit: ReadLimit) -> dict[str, int]:
    """Cap a micro-batch at ``limit.max_rows``, shared between partitions in proportion to their lag."""
    if not isinstance(limit, ReadMaxRows):
        return ends
    lag = {p: max(0, ends[p] - begin[p]) for p in ends}
    total = sum(lag.values())
    if total <= limit.max_rows:
        return ends
    take = {p: (limit.max_rows * n) // total for p, n in lag.items()}
    spare = limit.max_rows - sum(take.values())
    for p in sorted(lag, key=lambda q: lag[q] - take[q], reverse=True):  # hand out the rounding remainder
        if spare <= 0:
            break
        if take[p] < lag[p]:
            take[p] += 1
            spare -= 1
    return {p: begin[p] + take[p] for p in ends}


def read_range(options: dict, r: KafkaRange):
    """Yield Arrow record batches of the records [r.start, r.end) of one Kafka partition."""
    import pyarrow as pa
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    from tweetdesk.stream.schema import arrow_schema

    schema = arrow_schema(KAFKA_SCHEMA)
    c = _client(Consumer, _consumer_conf(options, **{"fetch.wait.max.ms": 10}))
    c.assign([TopicPartition(r.topic, r.partition, r.start)])
    cols: dict[str, list] = {f: [] for f in KAFKA_SCHEMA.fieldNames()}

    def flush():
        batch = pa.RecordBatch.from_pydict(cols, schema=schema)
        for v in cols.values():
            v.clear()
        return batch

    next_offset = r.start
    eof_at: float | None = None  # when fetches last said "end of partition" short of r.end
    heard = time.monotonic()  # when the broker last answered with data or end-of-partition
    try:
        while next_offset < r.end:
            # consume() returns when it has num_messages or when the timeout expires, whichever comes first:
            # asking for more than the range holds would wait out the whole timeout on every call.
            msgs = c.consume(num_messages=min(10_000, r.end - next_offset), timeout=0.5)
            now = time.monotonic()
            for m in msgs:
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        eof_at, heard = eof_at or now, now
                        continue
                    if err.code() == KafkaError._AUTO_OFFSET_RESET:  # real Kafka: offset out of range
                        log.warning("%s[%d] offsets %d..%d are no longer in Kafka (topic recreated or broker "
                                    "restarted): skipped", r.topic, r.partition, next_offset, r.end - 1)
                        next_offset = r.end
                        break
                    if err.fatal():
                        raise RuntimeError(f"Kafka error reading {r.topic}[{r.partition}]: {err}")
                    continue  # transient (broker reconnecting): librdkafka retries
                off = m.offset()
                heard = now
                if off >= r.end:
                    next_offset = r.end
                    break
                if off < next_offset:
                    continue
                ts_type, ts_ms = m.timestamp()
                cols["key"].append(m.key())
                cols["value"].append(m.value())
                cols["topic"].append(r.topic)
                cols["partition"].append(r.partition)
                cols["offset"].append(off)
                cols["timestamp"].append(ts_ms * 1000 if ts_ms is not None and ts_ms >= 0 else None)
                cols["timestampType"].append(ts_type - 1 if ts_type > 0 else None)  # Spark: 0 create, 1 log-append
                next_offset = off + 1
                eof_at = None
            if next_offset >= r.end:
                break
            if len(cols["offset"]) >= _READ_BATCH_ROWS:
                # Paused while the caller works on the batch (the enriching source runs the models here): a consumer
                # fetches ahead on its own threads, tens of MB past the range, competing for the cores with the models.
                tp = [TopicPartition(r.topic, r.partition)]
                c.pause(tp)
                yield flush()
                c.resume(tp)
            if eof_at is not None and now - eof_at > _GAP_GRACE_S:
                # End of partition short of the planned end, and nothing more came: those offsets are gone.
                log.warning("%s[%d]: offsets %d..%d could not be read (end of partition reached first): skipped",
                            r.topic, r.partition, next_offset, r.end - 1)
                break
            if now - heard > _GAP_GRACE_S and _beyond_end(c, r, next_offset):
                # tansu answers a fetch past the end with silence (no out-of-range error, no end-of-partition).
                log.warning("%s[%d]: offsets %d..%d are past the end of the partition (broker restarted or topic "
                            "recreated): skipped", r.topic, r.partition, next_offset, r.end - 1)
                break
            if now - heard > _STALL_TIMEOUT_S:
                raise RuntimeError(f"no answer from Kafka for {r.topic}[{r.partition}] for {_STALL_TIMEOUT_S:.0f} s "
                                   f"(at offset {next_offset}, reading to {r.end}): is the broker up?")
    finally:
        c.close()  # before the last batch goes to the caller: nothing more to fetch
    if cols["offset"]:
        yield flush()


def _beyond_end(consumer, r: KafkaRange, offset: int) -> bool:
    """True when the broker's high watermark is at or below ``offset`` (False if it cannot be asked)."""
    from confluent_kafka import TopicPartition

    try:
        _, hi = consumer.get_watermark_offsets(TopicPartition(r.topic, r.partition), timeout=5, cached=False)
    except Exception:
        return False  # broker unreachable: keep waiting (the stall timeout decides)
    return hi <= offset


class KafkaDataSource(DataSource):
    """``spark.readStream.format("tweetdesk_kafka").option("topic", …).option("kafka_config", json)``; the
    subclasses ``enriching_source`` makes run their ``transform`` in the readers."""

    transform = None

    @classmethod
    def name(cls) -> str:
        return FORMAT if cls.transform is None else ENRICHED_FORMAT

    def schema(self):
        return KAFKA_SCHEMA if self.transform is None else TRANSFORM_SCHEMA

    def streamReader(self, schema) -> DataSourceStreamReader:
        return KafkaStreamReader(self.options, transform=self.transform)


def enriching_source(transform) -> type[KafkaDataSource]:
    """The source whose readers run ``transform`` (``stream.transform.Transformer``: Arrow batches of Kafka rows in,
    ``schema.TRANSFORM_SCHEMA`` batches out) on what they read, in the same Python worker.

    Reading with the plain source and enriching with ``mapInArrow`` runs two Python workers per task, the records
    crossing into the JVM and back out between them; here they cross once. Draining 100,000 tweets (2 cores, five
    20,000-tweet micro-batches, runs alternated): 26.4 and 25.2 s of micro-batches against 33.8 and 26.2 s. The
    transform travels inside the class (Spark pickles it to its Python workers), not in the options, which hold
    strings and show in query plans."""
    return type("EnrichingKafkaDataSource", (KafkaDataSource,), {"transform": staticmethod(transform)})


# --- choosing the source ------------------------------------------------------------------------

def native_kafka_available(spark) -> bool:
    """True when Spark's own ``kafka`` source (the spark-sql-kafka jar) is on the classpath."""
    try:
        jvm = spark.sparkContext._jvm
        jvm.java.lang.Class.forName(
            "org.apache.spark.sql.kafka010.KafkaSourceProvider", True,
            jvm.java.lang.Thread.currentThread().getContextClassLoader(),
        )
        return True
    except Exception:
        return False


def source_kind(spark, settings) -> str:
    """'native' or 'python': what ``read_kafka_stream`` will use for these settings (``StreamSettings`` or the
    whole ``Settings``)."""
    from tweetdesk.config import StreamSettings
    from tweetdesk.errors import ConfigError

    wanted = StreamSettings.of(settings).kafka_source
    if wanted == "python":
        return "python"
    native = native_kafka_available(spark)
    if wanted == "native" and not native:
        raise ConfigError("TWEETDESK_KAFKA_SOURCE=native but the spark-sql-kafka jar is not on Spark's classpath "
                          "(spark-submit --packages org.apache.spark:spark-sql-kafka-0-10_2.13:<spark version>)")
    return "native" if native else "python"


def read_kafka_stream(spark, settings, topic: str | None = None, transform=None):
    """A streaming DataFrame of ``topic`` (default tweets.raw) with the native ``kafka`` columns: the Kafka and
    the stream sections of ``settings``. With ``transform`` (Python source only, see ``enriching_source``): its
    output rows instead."""
    from tweetdesk.kafka.client import client_config

    kafka, stream = settings.kafka, settings.stream
    topic = topic or kafka.topic_raw
    conf = client_config(kafka)
    if source_kind(spark, stream) == "native":
        if transform is not None:
            raise ValueError("Spark's native Kafka source runs no Python transform: use mapInArrow on its rows")
        from tweetdesk.kafka.auth import jvm_config

        conf = jvm_config(kafka, conf)
        reader = (spark.readStream.format("kafka")
                  .option("subscribe", topic)
                  .option("startingOffsets", "earliest")
                  # Same policy as the Python source: lost offsets are logged and skipped, not fatal.
                  .option("failOnDataLoss", "false")
                  .option("maxOffsetsPerTrigger", str(stream.max_offsets_per_trigger)))
        for k, v in conf.items():
            reader = reader.option(f"kafka.{k}", str(v))
        return reader.load().select(*KAFKA_SCHEMA.fieldNames())
    source = KafkaDataSource if transform is None else enriching_source(transform)
    spark.dataSource.register(source)
    return (spark.readStream.format(source.name())
            .option("topic", topic)
            .option("kafka_config", json.dumps(conf))
            .option("max_offsets_per_trigger", str(stream.max_offsets_per_trigger))
            .load())
