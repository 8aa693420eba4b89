"""The SparkSession: ``local[2]`` by default, any master from settings, and unchanged under spark-submit."""

from __future__ import annotations

import logging
import os
import sys
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
}


def _prepare_env() -> None:
    # Workers must run this interpreter (the venv's), or they fail with "Python worker failed to
    # connect back"; the driver binds to loopback so a laptop's changing network does not matter.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


def build_spark(settings: StreamSettings | Settings, app_name: str = "tweetdesk", ui: bool = False,
                conf: dict[str, str] | None = None, quiet: bool = False):
    """Get or create the SparkSession.

    The master comes from the stream section's ``spark_master`` unless spark-submit already chose one (then
    ``--master`` of spark-submit wins and this function changes nothing about where it runs).
    ``quiet``: Spark logs errors only, from the JVM's start (no banner, no WARN lines), for a console a person
    reads; it only takes effect when this call starts the JVM.
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
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR" if quiet else "WARN")
    log.info("Spark %s on %s", spark.version, spark.sparkContext.master)
    return spark
