"""Where each micro-batch goes: Parquet (exactly once), then ``tweets.enriched`` and ``tweets.dead``.

Exactly-once in Parquet. The stream runs one query whose ``foreachBatch`` writes Parquet partitioned by
``day`` (UTC day of ``created_at``) and ``batch_id``. Spark's checkpoint guarantees that a micro-batch replayed
after a crash (even a SIGKILL between the Parquet write and the checkpoint commit) has the same batch id and the
same Kafka offsets, hence the same records and the same ``day`` values; so the replay replaces the partitions
``day=*/batch_id=N`` it wrote the first time instead of adding a second copy. On a local file system each
partition is written under a hidden name and swapped in whole (``write_local_batch``); on an object store Spark's
writer does it with dynamic partition overwrite and its commit protocol (``.spark-staging-*`` / ``_temporary``).
Every Parquet reader -- Spark, pyarrow, pandas, DuckDB -- skips ``.`` and ``_`` names, so it sees each tweet once.
(Spark's streaming file sink gives the same guarantee only to readers that honour its ``_spark_metadata`` log, and
cannot feed three outputs from one pass over the models.)

``day`` is the tweet's creation day, not the processing day: processing time changes when a batch is
replayed (e.g. across midnight), which would leave the first attempt's partition behind.

At-least-once on the topics. Records are published after the Parquet write; a crash between the two
(or during publishing) replays the batch and publishes its records again. The idempotent producer
removes duplicates from producer retries, not from replays. Consumers dedupe: the reply service keys
on tweet id (its ticket store has a unique key on it), dead letters carry topic/partition/offset.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
import pyarrow.parquet as pq
from pyspark.sql.types import StringType, StructField, StructType

from tweetdesk.config import KafkaSettings, Settings
from tweetdesk.stream.locations import is_uri
from tweetdesk.stream.schema import (
    BATCH_COLUMN,
    DAY_COLUMN,
    ENRICHED_COLUMNS,
    KIND_DEAD,
    KIND_ENRICHED,
    PARQUET_PARTITIONS,
    PARQUET_SCHEMA,
    arrow_schema,
)

log = logging.getLogger(__name__)

_PARQUET_ARROW = arrow_schema(PARQUET_SCHEMA)
_PARQUET_WITH_PARTITIONS = StructType(list(PARQUET_SCHEMA.fields) + [StructField(c, StringType()) for c in PARQUET_PARTITIONS])


@dataclass
class BatchResult:
    batch_id: int
    enriched: int
    dead: int
    seconds: float
    written_at: float = 0.0  # wall clock (time.time()) when the batch's Parquet files were in place
    # Where the batch's time went (seconds): reading Kafka + the models (one Spark job, wall clock), the Parquet
    # write, the publish to the topics; ``model_s``: the enricher's own time summed over the Python workers.
    transform_s: float = 0.0
    parquet_s: float = 0.0
    publish_s: float = 0.0
    model_s: float = 0.0


@dataclass
class Totals:
    """Running counts of what this process's query has written (a replayed batch counts again)."""

    batches: int = 0
    enriched: int = 0
    dead: int = 0
    last: BatchResult | None = None
    history: list[BatchResult] = field(default_factory=list)

    def add(self, r: BatchResult) -> None:
        self.batches += 1
        self.enriched += r.enriched
        self.dead += r.dead
        self.last = r
        self.history.append(r)
        del self.history[:-100_000]


class BatchPublisher:
    """Produces a micro-batch's output records to tweets.enriched / tweets.dead from the driver.

    One long-lived idempotent producer for the whole query: a micro-batch is at most
    ``max_offsets_per_trigger`` records of a few KB, small enough to collect, and a producer per Spark
    task (a new connection and producer id per batch) cost more than the publishing itself.
    """

    def __init__(self, kafka: KafkaSettings):
        self.kafka = kafka
        self.topics = {KIND_ENRICHED: kafka.topic_enriched, KIND_DEAD: kafka.topic_dead}
        self._producer = None

    def connect(self) -> None:
        """Create the producer now: an idempotent producer's first message waits for its connection and producer id
        (0.5-1 s on the embedded broker), which the first micro-batch would otherwise pay."""
        from tweetdesk.kafka.client import make_producer

        if self._producer is None:
            self._producer = make_producer(self.kafka, **{"linger.ms": 20})
            self._producer.poll(0)

    def publish(self, table) -> dict[str, int]:
        """Produce every row of an Arrow table (kind, out_key, payload); raise unless all are acknowledged."""
        from tweetdesk.kafka.client import produce_all

        self.connect()
        kinds, keys, payloads = (table.column(c).to_pylist() for c in ("kind", "out_key", "payload"))
        done = produce_all(self._producer, zip((self.topics[k] for k in kinds), keys, payloads), flush=120)
        # Failing the batch: Spark does not commit it and the restart replays it.
        done.raise_for_failures("records of the micro-batch")
        return {KIND_ENRICHED: kinds.count(KIND_ENRICHED), KIND_DEAD: kinds.count(KIND_DEAD)}

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(30)
            self._producer = None


class BatchSink:
    """The ``foreachBatch`` function. ``df`` is the transformed micro-batch (schema.TRANSFORM_SCHEMA)."""

    def __init__(self, settings: Settings, on_batch=None):
        self.settings = settings
        from tweetdesk.stream.locations import parquet_location

        self.path = str(parquet_location(settings.stream))
        self.on_batch = on_batch
        self.totals = Totals()
        self.publisher = BatchPublisher(settings.kafka)

    def __call__(self, df, batch_id: int) -> None:
        t0 = time.monotonic()
        # One Spark job runs the transform (the models) and brings its rows here: the messages to publish, and the
        # enriched ones are also the Parquet rows. Parquet is written from those rows, not from a cached copy of the
        # micro-batch: a cache costs building, analysing the streaming plan again per DataFrame call, and dropping.
        out = df.toArrow()
        kinds = out.column("kind").to_pylist()
        n_ok, n_dead = kinds.count(KIND_ENRICHED), kinds.count(KIND_DEAD)
        t1 = time.monotonic()
        if n_ok:
            self._write_parquet(df.sparkSession, out.filter(pc.equal(out.column("kind"), KIND_ENRICHED)), batch_id)
        t2 = time.monotonic()
        written_at = time.time()
        if n_ok or n_dead:
            self.publisher.publish(out)
        t3 = time.monotonic()
        model_s = pc.sum(out.column("model_s")).as_py() or 0.0
        result = BatchResult(batch_id, n_ok, n_dead, t3 - t0, written_at, transform_s=t1 - t0, parquet_s=t2 - t1,
                             publish_s=t3 - t2, model_s=model_s)
        self.totals.add(result)
        if n_ok or n_dead:
            log.info("batch %d: %d enriched, %d dead-lettered in %.2f s (read + models %.2f s, Parquet %.2f s, "
                     "publish %.2f s)", batch_id, n_ok, n_dead, result.seconds, t1 - t0, t2 - t1, t3 - t2)
        if self.on_batch is not None:
            self.on_batch(result)

    def _write_parquet(self, spark, enriched, batch_id: int) -> None:
        """Write the enriched rows (kind, out_key, payload, day) as Parquet ``day=…/batch_id=N``, replacing what an
        earlier attempt at this batch wrote."""
        # The Parquet columns are the messages parsed by Arrow's JSON reader (multithreaded C++): the Python workers
        # send each record once, as its message.
        lines = "\n".join(enriched.column("payload").to_pylist()).encode()
        table = pajson.read_json(
            pa.BufferReader(lines),
            # A block must hold a whole record: a tweet's longest message is a few hundred KB.
            read_options=pajson.ReadOptions(block_size=4 << 20),
            parse_options=pajson.ParseOptions(explicit_schema=_PARQUET_ARROW, unexpected_field_behavior="ignore"))
        if not is_uri(self.path):
            write_local_batch(Path(self.path), table, enriched.column(DAY_COLUMN), batch_id)
            return
        # An object store (S3 on EMR): Spark's writer and its commit protocol.
        table = (table.append_column(DAY_COLUMN, enriched.column(DAY_COLUMN))
                 .append_column(BATCH_COLUMN, pa.array([str(batch_id)] * table.num_rows, pa.string())))
        # One write task per micro-batch: each task writes a file per day it sees.
        (spark.createDataFrame(table, schema=_PARQUET_WITH_PARTITIONS).coalesce(1)
           .write.mode("overwrite")
           .option("partitionOverwriteMode", "dynamic")  # replace this batch's partitions only
           .partitionBy(*PARQUET_PARTITIONS)
           .parquet(self.path))


def write_local_batch(root: Path, table: pa.Table, days: pa.ChunkedArray, batch_id: int) -> list[Path]:
    """Write a micro-batch's rows on a local file system as ``root/day=D/batch_id=N/part-00000.parquet``, one file per
    day, each partition swapped in whole: written under a hidden name (``day=D/.batch_id=N.write-…``: readers skip
    ``.`` names), then renamed into place, or exchanged atomically (``rewrite.exchange``) with what an earlier
    attempt at the same batch wrote, which is then deleted. A reader sees the batch's rows once or not yet.

    pyarrow here, not a Spark write job: on a 2-core machine that job (planning, a task, Hadoop's commit protocol
    with a forked ``chmod`` per file and folder) was the largest fixed cost of a micro-batch (issue 31)."""
    from tweetdesk.stream.rewrite import exchange

    written = []
    for day in sorted(set(days.to_pylist())):
        final = root / f"{DAY_COLUMN}={day}" / f"{BATCH_COLUMN}={batch_id}"
        staging = final.with_name(f".{final.name}.write-{uuid.uuid4().hex[:12]}")
        staging.mkdir(parents=True)
        pq.write_table(table.filter(pc.equal(days, day)), staging / "part-00000.parquet")
        try:
            os.rename(staging, final)  # fails if an earlier attempt's partition is there (not empty)
        except OSError:
            exchange(staging, final)
            shutil.rmtree(staging)
        written.append(final)
    return written


def clean_stale_staging(parquet_dir: Path) -> None:
    """Remove what a killed writer left behind (staging folders no reader looks at); the batch is replayed."""
    root = Path(parquet_dir)
    if not root.exists():
        return
    for p in [*root.glob(".spark-staging-*"), root / "_temporary", *root.glob(f"{DAY_COLUMN}=*/.{BATCH_COLUMN}=*.write-*")]:
        if p.exists():
            log.info("removing %s left by an interrupted write", p)
            shutil.rmtree(p, ignore_errors=True)


def parquet_latency(df, totals: Totals):
    """Seconds from ingest (``ingested_at``, stamped by the producer) to the row's Parquet file being in place,
    per row of ``df`` (from ``read_enriched``) written by this process's query; rows of other batches are NaN."""
    import pandas as pd

    written = {r.batch_id: r.written_at for r in totals.history}
    done = pd.to_datetime(df[BATCH_COLUMN].astype("int64").map(written), unit="s", utc=True)
    return (done - pd.to_datetime(df["ingested_at"], utc=True)).dt.total_seconds()


def read_enriched(parquet_dir: Path | str, columns: list[str] | None = None):
    """The enriched tweets in Parquet as a pandas DataFrame (empty, with the right columns, if none yet)."""
    import pandas as pd
    import pyarrow.dataset as ds

    root = Path(parquet_dir)
    if not root.exists() or not any(root.glob(f"{DAY_COLUMN}=*")):
        return pd.DataFrame(columns=columns or [*ENRICHED_COLUMNS, *PARQUET_PARTITIONS])
    dataset = ds.dataset(root, format="parquet", partitioning="hive")
    return dataset.to_table(columns=columns).to_pandas()
