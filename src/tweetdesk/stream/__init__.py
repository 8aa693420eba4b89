"""The Spark Structured Streaming job: Kafka ``tweets.raw`` -> parse/validate -> enrich -> Parquet (exactly once)
+ ``tweets.enriched`` (+ ``tweets.dead`` for what cannot be processed).

Modules: ``spark`` (session), ``kafka_source`` (Python Data Source over confluent-kafka), ``schema`` (Spark/Arrow
schemas derived from ``tweetdesk.records``), ``transform`` (per-record work in the Python workers), ``sink``
(foreachBatch: Parquet + topics), ``job`` (StreamJob, run_available_now, stream_command).

Nothing is imported here: Spark's Python processes import ``kafka_source`` and ``transform`` from this package (the
source's planner process anew at every query start), and importing the job and the sink with them (pyarrow, the
settings) made that import 0.65 s instead of 0.25 s. Import from the modules.
"""
