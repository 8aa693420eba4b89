"""The stream job: Kafka ``tweets.raw`` -> parse/validate -> enrich -> Parquet + ``tweets.enriched`` (+ ``tweets.dead``).

    job = StreamJob(settings)
    handle = job.start(spark)            # runs until handle.stop()
    handle.process_all_available()       # block until everything in Kafka now is in Parquet
    run_available_now(spark, settings)   # process what is in Kafka now, then return the totals

One streaming query, checkpointed under ``settings.stream.checkpoint_dir / "stream"``: restarting with the same
settings resumes from the checkpoint, exactly once into Parquet (see ``sink.py``). Under spark-submit the
same code runs unchanged: ``spark-submit --master spark://host:7077 -m``-style launchers call
``stream_command`` through ``python -m tweetdesk.stream.job``.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tweetdesk.config import Settings
from tweetdesk.errors import ConfigError, TweetdeskError
from tweetdesk.models.enrich import enrich_batch
from tweetdesk.stream.kafka_source import read_kafka_stream, source_kind
from tweetdesk.stream.locations import checkpoint_location, is_uri, parquet_location
from tweetdesk.stream.schema import TRANSFORM_SCHEMA
from tweetdesk.stream.sink import BatchSink, Totals, clean_stale_staging
from tweetdesk.stream.transform import Enricher, Transformer, freeze_loaded

log = logging.getLogger(__name__)

QUERY_NAME = "stream"


class StreamError(TweetdeskError):
    pass


@dataclass
class StreamHandle:
    """A running stream query and what it has written so far (this process)."""

    query: object  # pyspark.sql.streaming.StreamingQuery
    totals: Totals
    source: str  # "python" | "native"
    checkpoint: Path | str  # a str when it is a URI (s3://…)
    parquet_dir: Path | str
    sink: BatchSink | None = None

    @property
    def active(self) -> bool:
        return self.query.isActive

    def process_all_available(self) -> None:
        """Block until every record in Kafka at call time has been processed (raises if the query died)."""
        try:
            self.query.processAllAvailable()
        except Exception as e:
            raise StreamError(f"stream query failed: {_first_line(e)}") from e

    def await_termination(self, timeout: float | None = None) -> bool:
        try:
            return bool(self.query.awaitTermination(timeout)) if timeout is not None else \
                (self.query.awaitTermination() or True)
        except Exception as e:
            raise StreamError(f"stream query failed: {_first_line(e)}") from e

    awaitTermination = await_termination

    def stop(self) -> None:
        """Stop after the current micro-batch (an interrupted batch is replayed by the next start)."""
        if self.query.isActive:
            self.query.stop()
        if self.sink is not None:
            self.sink.publisher.close()


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class _Warm:
    """mapInPandas function that warms the enricher in the Python worker running it (what it loads stays there)."""

    def __init__(self, settings: Settings, enricher: Enricher):
        self.settings = settings
        self.enricher = enricher

    def __call__(self, batches):
        warm = getattr(self.enricher, "warm", None)
        if warm is not None:
            warm(self.settings)
        freeze_loaded()
        yield from batches


def warm_up(spark, settings: Settings, enricher: Enricher = enrich_batch, workers_per_task: int = 1) -> float:
    """Start Spark's Python workers and warm the enricher in them (``Enricher.warm``: the default one loads the
    models) before the first micro-batch rather than during it.

    Spark reuses idle Python workers. A micro-batch task holds one (the Python Kafka source enriches in its
    readers) or two (Spark's native source, then ``mapInArrow``): ``workers_per_task`` chained Python stages
    per core. Returns the seconds it took. Best effort: a worker started later warms on its first batch.
    """
    t0 = time.monotonic()
    n = max(1, spark.sparkContext.defaultParallelism)
    try:
        df = spark.range(n, numPartitions=n)
        for _ in range(max(1, workers_per_task)):
            df = df.mapInPandas(_Warm(settings, enricher), "id long")
        df.collect()
    except Exception as e:  # the first batch reports the real problem, dead-lettering with the reason
        log.warning("warming up the Python workers failed: %s", _first_line(e))
    return time.monotonic() - t0


class StreamJob:
    """Builds and starts the one streaming query. ``enricher`` is the function itself (``transform.Enricher``;
    the benchmark swaps in one without models)."""

    def __init__(self, settings: Settings, enricher: Enricher = enrich_batch, query_name: str = QUERY_NAME,
                 on_batch=None):
        if not settings.kafka.bootstrap:
            raise ConfigError("the stream job needs a Kafka: set TWEETDESK_KAFKA_BOOTSTRAP "
                              "(e.g. run `tweetdesk broker` in another shell)")
        from tweetdesk.secret_key import with_secret_key

        # Ticket IDs are keyed with the deployment's secret: resolved here, on the driver, and shipped to the
        # Python workers inside the settings (on a cluster they cannot read the driver's work dir).
        self.settings = with_secret_key(settings)
        self.enricher = enricher
        self.query_name = query_name
        self.on_batch = on_batch
        self.checkpoint = checkpoint_location(settings.stream, query_name)
        self.parquet_dir = parquet_location(settings.stream)

    def start(self, spark, available_now: bool = False) -> StreamHandle:
        from tweetdesk.kafka.client import ensure_topics

        ensure_topics(self.settings.kafka)
        if not is_uri(self.parquet_dir):
            clean_stale_staging(self.parquet_dir)
        kind = source_kind(spark, self.settings.stream)
        threads = int(spark.conf.get("spark.task.cpus", "1") or 1)
        transformer = Transformer(self.settings, self.enricher, threads)
        if kind == "python":  # the source's readers enrich what they read (kafka_source.enriching_source)
            transformed = read_kafka_stream(spark, self.settings, transform=transformer)
        else:
            transformed = read_kafka_stream(spark, self.settings).mapInArrow(transformer, TRANSFORM_SCHEMA)
        sink = BatchSink(self.settings, on_batch=self.on_batch)
        sink.publisher.connect()  # connects while the workers warm up
        writer = (transformed.writeStream
                  .option("checkpointLocation", str(self.checkpoint))
                  .foreachBatch(sink))
        if available_now:
            writer = writer.trigger(availableNow=True)
        elif self.settings.stream.trigger_seconds > 0:
            writer = writer.trigger(processingTime=f"{self.settings.stream.trigger_seconds} seconds")
        log.info("Python workers ready (enricher warmed) in %.1f s",
                 warm_up(spark, self.settings, self.enricher, workers_per_task=1 if kind == "python" else 2))
        query = writer.start()
        log.info("stream query %s started (%s Kafka source, checkpoint %s)", query.id, kind, self.checkpoint)
        return StreamHandle(query, sink.totals, kind, self.checkpoint, self.parquet_dir, sink)


def run_available_now(spark, settings: Settings, **job_kw) -> Totals:
    """Process everything currently in ``tweets.raw`` (from the checkpoint on) and return the totals."""
    handle = StreamJob(settings, **job_kw).start(spark, available_now=True)
    try:
        handle.await_termination()
    finally:
        handle.stop()  # the query has ended; this closes the sink's Kafka producer
    return handle.totals


def stream_command(settings: Settings, available_now: bool = False) -> None:
    """`tweetdesk stream [--master M] [--available-now]`."""
    import click
    from tqdm import tqdm

    from tweetdesk.stream.spark import build_spark

    kafka = settings.kafka
    if not kafka.bootstrap:
        raise ConfigError("no Kafka to read from: start one with `tweetdesk broker` and export "
                          "TWEETDESK_KAFKA_BOOTSTRAP=<host:port> (or point it at your cluster)")
    from tweetdesk.kafka.client import ensure_topics

    # An unreachable cluster fails here in seconds, with one line, before Spark takes its time to start.
    ensure_topics(kafka)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # one line per Python<->JVM call otherwise
    spark = build_spark(settings.stream, app_name="tweetdesk-stream")
    bar = tqdm(unit=" tweets", desc="stream", dynamic_ncols=True)

    def on_batch(r):
        bar.update(r.enriched + r.dead)
        bar.set_postfix(batch=r.batch_id, enriched=r.enriched, dead=r.dead)

    job = StreamJob(settings, on_batch=on_batch)
    handle = job.start(spark, available_now=available_now)
    click.echo(f"stream: {kafka.topic_raw} -> {handle.parquet_dir} + {kafka.topic_enriched} "
               f"(dead letters: {kafka.topic_dead}); {handle.source} Kafka source; master "
               f"{spark.sparkContext.master}; checkpoint {handle.checkpoint}", err=True)
    try:
        handle.await_termination()
    except KeyboardInterrupt:
        click.echo("stream: stopping (the current micro-batch is replayed on the next start)", err=True)
        handle.stop()
    finally:
        bar.close()
        t = handle.totals
        click.echo(f"stream: {t.enriched} tweets to Parquet, {t.dead} dead letters, {t.batches} micro-batches",
                   err=True)
        spark.stop()


if __name__ == "__main__":  # spark-submit path: spark-submit --master … src/tweetdesk/stream/job.py [--available-now]
    stream_command(Settings(), available_now="--available-now" in sys.argv[1:])
