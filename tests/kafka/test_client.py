"""The Kafka client helpers (kafka/client.py) against the real broker: topics, the producer, ``produce_all``'s
delivery accounting, ``read_topic``, the once-per-problem log, and the consumer loop that stores before it
commits and never dies on a record."""

from __future__ import annotations

import json
import logging
import threading

import pytest

from tests.fixtures.waiting import wait_for
from tweetdesk.errors import ConfigError
from tweetdesk.kafka.client import (
    MAX_MESSAGE_BYTES,
    TOPIC_RETENTION_MS,
    Deliveries,
    DeliveryError,
    OncePerProblem,
    StoreThenCommitConsumer,
    client_config,
    ensure_topics,
    make_admin,
    make_producer,
    produce_all,
    read_topic,
    topic_partitions,
)


def test_topics_created_with_configured_partitions(fresh_topics):
    assert topic_partitions(fresh_topics.kafka, fresh_topics.topic_raw) == list(range(fresh_topics.topic_partitions))
    ensure_topics(fresh_topics.kafka)  # idempotent: a second call is not an error


def test_produce_and_read_back_every_message(fresh_topics):
    p = make_producer(fresh_topics.kafka)
    for i in range(500):
        p.produce(fresh_topics.topic_raw, key=str(i), value=json.dumps({"i": i}))
    assert p.flush(10) == 0
    got = read_topic(fresh_topics.kafka, fresh_topics.topic_raw)
    assert sorted(int(m.key()) for m in got) == list(range(500))


def test_a_one_megabyte_record_gets_through(fresh_topics):
    # The stream job must see oversized tweets to dead-letter them with a reason.
    p = make_producer(fresh_topics.kafka)
    p.produce(fresh_topics.topic_raw, key="big", value=b"x" * (1024 * 1024 + 10))
    assert p.flush(10) == 0
    [m] = read_topic(fresh_topics.kafka, fresh_topics.topic_raw)
    assert len(m.value()) == 1024 * 1024 + 10 < MAX_MESSAGE_BYTES



def test_topics_keep_records_at_most_24_hours(fresh_topics):
    """X's data rules: a deleted post must not linger in a topic past X's 24-hour deadline."""
    from confluent_kafka.admin import ConfigResource

    admin = make_admin(fresh_topics.kafka)
    res = ConfigResource(ConfigResource.Type.TOPIC, fresh_topics.topic_raw)
    conf = admin.describe_configs([res])[res].result(timeout=10)
    assert int(conf["retention.ms"].value) == TOPIC_RETENTION_MS <= 24 * 3600 * 1000


def test_a_topic_that_does_not_exist_is_one_readable_error(fresh_topics):
    with pytest.raises(ConfigError, match="topic 'no-such-topic' does not exist"):
        topic_partitions(fresh_topics.kafka, "no-such-topic")


def test_no_bootstrap_is_one_readable_error(fresh_topics):
    with pytest.raises(ConfigError, match="no Kafka bootstrap servers"):
        client_config(fresh_topics.model_copy(update={"kafka_bootstrap": None}).kafka)


def test_produce_all_counts_every_delivery_and_goes_on_past_a_refused_record(fresh_topics):
    p = make_producer(fresh_topics.kafka)
    too_big = b"x" * (MAX_MESSAGE_BYTES + 1)  # refused by the producer before sending
    msgs = [(fresh_topics.topic_raw, str(i), f"v{i}") for i in range(50)]
    d = produce_all(p, msgs[:25] + [(fresh_topics.topic_raw, "big", too_big)] + msgs[25:], flush=10)
    assert (d.delivered, d.failed, d.unacknowledged) == (50, 1, 0) and not d.ok
    assert len(d.errors) == 1
    with pytest.raises(DeliveryError, match="did not acknowledge 1 tweets"):
        d.raise_for_failures("tweets")
    assert sorted(m.value().decode() for m in read_topic(fresh_topics.kafka, fresh_topics.topic_raw)) == sorted(
        v for _, _, v in msgs)


def test_deliveries_add_up_over_calls(fresh_topics):
    p = make_producer(fresh_topics.kafka)
    d = Deliveries()
    for batch in range(3):
        produce_all(p, [(fresh_topics.topic_dead, None, f"{batch}-{i}") for i in range(10)], d, flush=10)
    assert (d.delivered, d.failed) == (30, 0) and d.ok
    d.raise_for_failures("records")  # nothing to raise


def test_once_per_problem_says_a_repeated_message_once_with_its_count(caplog):
    log = OncePerProblem(logging.getLogger("test.once"), every=3600)
    with caplog.at_level(logging.INFO, logger="test.once"):
        for i in range(20):
            log.error("connect to 127.0.0.1:%d failed after %dms", 9092, i)  # numbers differ: one problem
        log.error("another problem")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["connect to 127.0.0.1:9092 failed after 0ms", "another problem"]
    log.every = 0  # the next one is due: it says how many were held back
    with caplog.at_level(logging.INFO, logger="test.once"):
        log.error("connect to 127.0.0.1:%d failed after %dms", 9092, 99)
    assert caplog.records[-1].getMessage() == "connect to 127.0.0.1:9092 failed after 99ms (repeated 19 times)"


class _Collect(StoreThenCommitConsumer):
    """Stores JSON records in a list; one whose value is not JSON breaks the batch (and is dead-lettered)."""

    name = "test-consumer"

    def __init__(self, settings, group_id):
        super().__init__(settings, group_id, batch_size=100, poll_timeout=0.1)
        self.stored, self.dead = [], []

    @property
    def topic(self):
        return self.settings.topic_raw

    def process(self, values):
        parsed = [json.loads(v) for v, _ in values]  # raises on a bad record: the whole batch fails
        self.stored.extend(parsed)

    def dead_letter(self, value, meta, error):
        self.dead.append((value, meta["offset"], type(error).__name__))


def _run(consumer):
    stop = threading.Event()
    t = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    t.start()
    return stop, t


def test_the_consumer_loop_dead_letters_a_bad_record_stores_the_rest_and_commits(fresh_topics):
    produce_all(make_producer(fresh_topics.kafka), [(fresh_topics.topic_raw, None, json.dumps({"i": i})) for i in range(5)]
                + [(fresh_topics.topic_raw, None, b"{not json")]
                + [(fresh_topics.topic_raw, None, json.dumps({"i": i})) for i in range(5, 10)], flush=10)
    c = _Collect(fresh_topics, "test-store-then-commit")
    stop, t = _run(c)
    try:
        wait_for(lambda: len(c.stored) == 10 and len(c.dead) == 1, timeout=30, what="10 stored and 1 dead letter")
        wait_for(lambda: sum(c.stats["offsets"].values()) == 11, timeout=30, what="offsets committed past all 11")
    finally:
        stop.set()
        t.join(15)
    assert sorted(r["i"] for r in c.stored) == list(range(10))
    assert c.dead[0][0] == b"{not json" and c.dead[0][2] == "JSONDecodeError"
    # A second consumer of the same group starts after the committed offsets: nothing is stored twice.
    again = _Collect(fresh_topics, "test-store-then-commit")
    stop, t = _run(again)
    try:
        wait_for(lambda: again.ready.is_set(), timeout=30, what="the second consumer's assignment")
        produce_all(make_producer(fresh_topics.kafka), [(fresh_topics.topic_raw, None, json.dumps({"i": 10}))], flush=10)
        wait_for(lambda: again.stored, timeout=30, what="the new record")
    finally:
        stop.set()
        t.join(15)
    assert again.stored == [{"i": 10}] and again.dead == []


def test_ensure_topics_is_idempotent_and_creates_what_is_missing(fresh_topics):
    extra = fresh_topics.topic_raw + "-extra"
    ensure_topics(fresh_topics.kafka, [extra])
    ensure_topics(fresh_topics.kafka, [extra])
    assert topic_partitions(fresh_topics.kafka, extra) == list(range(fresh_topics.topic_partitions))
