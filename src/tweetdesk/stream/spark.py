"""The SparkSession: ``local[2]`` by default, any master from settings, and unchanged under spark-submit."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tweetdesk.config import Settings, StreamSettings

QUIET_LOG4J = Path(__file__).with_name("log4j2-quiet.properties")

log = logging.getLogger(__name__)

# Small, fixed defaults that suit a streaming job of small micro-batches on a few cores. Anything set
# by spark-submit (--conf) or spark-defaults.conf wins: we only fill in what is missing.
DEFAULT_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",  # days and timestamps in Parquet are UTC, whatever the host says
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.streaming.numRecentProgressUpdates": "1000",
    "spark.ui.showConsoleProgress": "false",
    # Parquet written by this job is read by pyarrow/pandas too: plain microsecond timestamps.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # A checkpoint on a local disk (offset log before, commit log after every micro-batch) without Hadoop's .crc
    # side files: each file Hadoop creates locally costs a chmod (and a rename a readlink) run as a child process
    # of the JVM, pyspark shipping no native Hadoop library. Checkpoint per micro-batch 0.27 -> 0.16 s (median,
    # benchmarks/stream.py paced, 2 cores). The logs stay atomic (written aside, renamed); S3 is not affected.
    "spark.hadoop.fs.file.impl": "org.apache.hadoop.fs.RawLocalFileSystem",
    "spark.hadoop.fs.AbstractFileSystem.file.impl": "org.apache.hadoop.fs.local.RawLocalFs",
    # Still, Spark's default checkpoint manager (Hadoop's FileContext API) started five child processes per log file
    # locally: a chmod after creating it and four readlinks while renaming it (strace). The FileSystem API creates
    # the file without a chmod and renames it with one rename(2), atomic on a local disk: offset log + commit log
    # per micro-batch 0.17 -> 0.04 s (median, 500 tweets/s). S3 through EMRFS has no FileContext: Spark uses it there anyway.
    "spark.sql.streaming.checkpointFileManagerClass":
        "org.apache.spark.sql.execution.streaming.checkpointing.FileSystemBasedCheckpointFileManager",
}


def _prepare_env() -> None:
    # Workers must run this interpreter (the venv's), or they fail with "Python worker failed to
    # connect back"; the driver binds to loopback so a laptop's changing network does not matter.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


@contextmanager
def _stderr_to(path: Path | None) -> Iterator[None]:
    """File descriptor 2 appends to ``path`` for the block: a process started inside (the JVM) keeps writing its
    stderr there for good, while this process's stderr comes back after the block."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.dup2(fd, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(fd)


def build_spark(settings: StreamSettings | Settings, app_name: str = "tweetdesk", ui: bool = False,
                conf: dict[str, str] | None = None, quiet: bool = False, jvm_log: Path | None = None):
    """Get or create the SparkSession.

    The master comes from the stream section's ``spark_master`` unless spark-submit already chose one (then
    ``--master`` of spark-submit wins and this function changes nothing about where it runs).
    ``quiet``: Spark logs errors only, from the JVM's start (no banner, no WARN lines), for a console a person
    reads; it only takes effect when this call starts the JVM. ``jvm_log`` (with ``quiet``): the JVM's own stderr
    (its start-up warnings, such as "Using incubator modules") goes to that file instead of the console.
    """
    _prepare_env()
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    stream = StreamSettings.of(settings)
    if os.environ.get("PYSPARK_GATEWAY_PORT"):
        # Under spark-submit the JVM is already up: connect to it first, or SparkConf() below is a bare
        # Python dict that knows nothing of --master/--conf, and local[2] would silently win.
        from pyspark import SparkContext

        SparkContext._ensure_initialized()
    existing = SparkConf()  # under spark-submit this already holds --master and --conf values
    builder = SparkSession.builder.appName(app_name)
    if not existing.contains("spark.master"):
        builder = builder.master(stream.spark_master)
    wanted = {**DEFAULT_CONF, "spark.ui.enabled": "true" if ui else "false", **(conf or {})}
    if quiet and not existing.contains("spark.driver.extraJavaOptions"):
        wanted["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile={QUIET_LOG4J.as_uri()}"
    for k, v in wanted.items():
        if conf and k in conf or not existing.contains(k):
            builder = builder.config(k, v)
    from pyspark import SparkContext

    starts_jvm = SparkContext._gateway is None  # pyspark's own marker of a running JVM
    with _stderr_to(jvm_log if quiet and starts_jvm else None):
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR" if quiet else "WARN")
    log.info("Spark %s on %s", spark.version, spark.sparkContext.master)
    return spark
