"""The Spark Structured Streaming job: Kafka ``tweets.raw`` -> parse/validate -> enrich -> Parquet (exactly once)
+ ``tweets.enriched`` (+ ``tweets.dead`` for what cannot be processed).

Modules: ``spark`` (session), ``kafka_source`` (Python Data Source over confluent-kafka), ``schema`` (Spark/Arrow
schemas derived from ``tweetdesk.records``), ``transform`` (per-record work in the Python workers), ``sink``
(foreachBatch: Parquet + topics), ``job`` (StreamJob, run_available_now, stream_command).
"""

from tweetdesk.stream.job import StreamError, StreamHandle, StreamJob, run_available_now, stream_command
from tweetdesk.stream.sink import read_enriched

__all__ = ["StreamError", "StreamHandle", "StreamJob", "read_enriched", "run_available_now", "stream_command"]
