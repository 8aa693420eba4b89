"""The embedded broker and the Kafka helpers, against the real tansu broker."""

from __future__ import annotations

import json

from confluent_kafka import TopicPartition

from tweetdesk.config import Settings
from tweetdesk.kafka.broker import EmbeddedBroker
from tweetdesk.kafka.client import MAX_MESSAGE_BYTES, ensure_topics, make_consumer, make_producer, topic_partitions


def _read_all(settings, topic, expect, timeout=20.0):
    import time

    c = make_consumer(settings, "test-read")
    c.assign([TopicPartition(topic, p, 0) for p in topic_partitions(settings, topic)])
    got, deadline = [], time.monotonic() + timeout
    while len(got) < expect and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is not None and not m.error():
            got.append(m)
    c.close()
    return got


def test_topics_created_with_configured_partitions(fresh_topics):
    assert topic_partitions(fresh_topics, fresh_topics.topic_raw) == list(range(fresh_topics.topic_partitions))
    ensure_topics(fresh_topics)  # idempotent: a second call is not an error


def test_produce_and_read_back_every_message(fresh_topics):
    p = make_producer(fresh_topics)
    for i in range(500):
        p.produce(fresh_topics.topic_raw, key=str(i), value=json.dumps({"i": i}))
    assert p.flush(10) == 0
    got = _read_all(fresh_topics, fresh_topics.topic_raw, 500)
    assert sorted(int(m.key()) for m in got) == list(range(500))


def test_a_one_megabyte_record_gets_through(fresh_topics):
    # The stream job must see oversized tweets to dead-letter them with a reason.
    p = make_producer(fresh_topics)
    p.produce(fresh_topics.topic_raw, key="big", value=b"x" * (1024 * 1024 + 10))
    assert p.flush(10) == 0
    [m] = _read_all(fresh_topics, fresh_topics.topic_raw, 1)
    assert len(m.value()) == 1024 * 1024 + 10 < MAX_MESSAGE_BYTES


def test_embedded_broker_restarts_on_the_same_port_and_comes_back_empty(tmp_path):
    with EmbeddedBroker(log_path=tmp_path / "b.log") as b:
        s = Settings(kafka_bootstrap=b.bootstrap, work_dir=tmp_path)
        ensure_topics(s)
        port = b.port
        b.restart()
        assert b.port == port and b.running
        # in-memory storage: the topics are gone after a restart (documented limit)
        from confluent_kafka.admin import AdminClient

        assert s.topic_raw not in AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=5).topics
    assert not b.running


def test_broker_command_stops_tansu_on_sigterm(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "tweetdesk.cli", "broker"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "TWEETDESK_WORK_DIR": str(tmp_path)},
    )
    line = proc.stdout.readline()  # "tansu broker on 127.0.0.1:PORT …": it is up
    assert "tansu broker on" in line
    port = int(line.split("127.0.0.1:")[1].split()[0])
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)
    import socket

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the port is released once tansu is gone
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"tansu still listening on {port} after SIGTERM to `tweetdesk broker`")
