"""The Kafka Python Data Source's planning and reading, against the real broker (no Spark needed):
the true end of a partition (tansu's watermark quirk), read limits, checkpoint resets, exact ranges."""

from __future__ import annotations

import json
import time

from confluent_kafka import TopicPartition
from pyspark.sql.streaming.datasource import ReadAllAvailable, ReadMaxRows

from tweetdesk.kafka.client import client_config, make_consumer, make_producer, topic_partitions
from tweetdesk.stream.kafka_source import KafkaRange, KafkaStreamReader, _apply_limit, plan_resets, read_range


def _reader(settings, **opts) -> KafkaStreamReader:
    return KafkaStreamReader({"topic": settings.topic_raw, "kafka_config": json.dumps(client_config(settings.kafka)),
                              **{k: str(v) for k, v in opts.items()}})


def _produce(settings, n: int, start: int = 0, batches: int = 1) -> None:
    p = make_producer(settings.kafka)
    per = -(-n // batches)
    for b in range(batches):
        for i in range(start + b * per, min(start + n, start + (b + 1) * per)):
            p.produce(settings.topic_raw, key=str(i), value=json.dumps({"i": i, "pad": "x" * 120}))
        assert p.flush(30) == 0


def test_latest_offset_reaches_the_true_end_of_every_partition(fresh_topics):
    """tansu can report a high watermark short of the last record batch; the source must not stop there."""
    _produce(fresh_topics, 50_000, batches=5)
    reader = _reader(fresh_topics)
    try:
        start = reader.initialOffset()
        assert set(start["partitions"].values()) == {0}
        end = reader.latestOffset(start, ReadAllAvailable())
        assert sum(end["partitions"].values()) == 50_000
        # For the record: what the broker's watermark says (on tansu often less than 50,000).
        c = make_consumer(fresh_topics.kafka, "wm")
        wm = sum(c.get_watermark_offsets(TopicPartition(fresh_topics.topic_raw, p), timeout=10, cached=False)[1]
                 for p in topic_partitions(fresh_topics.kafka, fresh_topics.topic_raw))
        c.close()
        print(f"watermarks sum to {wm}; true end {sum(end['partitions'].values())}")
        # Nothing new: the same offset comes back unchanged, so Spark runs no empty batch.
        assert reader.latestOffset(end, ReadAllAvailable()) is end
        # A small tail after that is found too, without waiting for more data.
        _produce(fresh_topics, 7, start=50_000)
        tail = reader.latestOffset(end, ReadAllAvailable())
        assert sum(tail["partitions"].values()) == 50_007
    finally:
        reader.stop()


def test_read_limit_caps_a_batch_and_shares_it_by_lag(fresh_topics):
    _produce(fresh_topics, 1_000)
    reader = _reader(fresh_topics, max_offsets_per_trigger=300)
    try:
        assert reader.getDefaultReadLimit() == ReadMaxRows(300)
        start = reader.initialOffset()
        first = reader.latestOffset(start, reader.getDefaultReadLimit())
        assert sum(first["partitions"].values()) == 300
        ranges = reader.partitions(start, first)
        assert sum(r.end - r.start for r in ranges) == 300
        assert {r.partition for r in ranges} <= set(range(fresh_topics.topic_partitions))
    finally:
        reader.stop()
    assert _apply_limit({"0": 0, "1": 0}, {"0": 90, "1": 10}, ReadMaxRows(10)) == {"0": 9, "1": 1}
    assert _apply_limit({"0": 5}, {"0": 6}, ReadMaxRows(10)) == {"0": 6}


def test_read_range_returns_exactly_the_planned_offsets(fresh_topics):
    _produce(fresh_topics, 2_000, batches=3)
    reader = _reader(fresh_topics)
    try:
        end = reader.latestOffset(reader.initialOffset(), ReadAllAvailable())
    finally:
        reader.stop()
    n = end["partitions"]["0"]
    r = KafkaRange(fresh_topics.topic_raw, 0, 10, n - 3)
    batches = list(read_range(reader.options, r))
    offsets = [o for b in batches for o in b.column("offset").to_pylist()]
    assert offsets == list(range(10, n - 3))
    assert batches[0].schema.names == ["key", "value", "topic", "partition", "offset", "timestamp", "timestampType"]


def test_read_range_past_the_end_returns_promptly_with_nothing(fresh_topics):
    """A replayed batch whose records the broker no longer has (tansu restarted) must not hang the task."""
    _produce(fresh_topics, 10)
    reader = _reader(fresh_topics)
    t0 = time.monotonic()
    got = list(read_range(reader.options, KafkaRange(fresh_topics.topic_raw, 0, 1_000, 1_100)))
    assert got == []
    assert time.monotonic() - t0 < 30


def test_checkpoint_offsets_that_cannot_continue_are_reset_with_a_reason():
    bounds = {"0": (0, 10), "1": (5, 20)}
    same = {"topic_id": "A", "partitions": {"0": 3, "1": 7}}
    assert plan_resets("t", same, bounds, "A") == ({}, [])
    past_end = {"topic_id": "A", "partitions": {"0": 500, "1": 7}}
    froms, why = plan_resets("t", past_end, bounds, "A")
    assert froms == {"0": 0} and "past the end" in why[0]
    aged_out = {"topic_id": "A", "partitions": {"0": 3, "1": 2}}
    froms, why = plan_resets("t", aged_out, bounds, "A")
    assert froms == {"1": 5} and "no longer in Kafka" in why[0]
    recreated = {"topic_id": "A", "partitions": {"0": 3, "1": 7}}
    froms, why = plan_resets("t", recreated, bounds, "B")
    assert froms == {"0": 0, "1": 5} and "recreated" in why[0]
    new_partition = {"topic_id": "A", "partitions": {"0": 3}}
    assert plan_resets("t", new_partition, bounds, "A") == ({"1": 5}, [])


def test_a_reset_is_planned_into_the_batch_range(fresh_topics):
    """latestOffset records where each reset partition starts, so partitions() (and a replay) reads from there."""
    _produce(fresh_topics, 40)
    reader = _reader(fresh_topics)
    try:
        real = reader.initialOffset()
        stale = {"topic": real["topic"], "topic_id": real["topic_id"],
                 "partitions": {p: 10_000 for p in real["partitions"]}}
        end = reader.latestOffset(stale, ReadAllAvailable())
        assert "past the end" in end["reset"]
        ranges = reader.partitions(stale, end)
        assert sum(r.end - r.start for r in ranges) == 40
        assert all(r.start == 0 for r in ranges)
    finally:
        reader.stop()
