"""The embedded tansu broker (kafka/broker.py): restarts on its port, and the `tweetdesk broker` command."""

from __future__ import annotations

from tweetdesk.config import Settings
from tweetdesk.kafka.broker import EmbeddedBroker
from tweetdesk.kafka.client import ensure_topics


def test_embedded_broker_restarts_on_the_same_port_and_comes_back_empty(tmp_path):
    with EmbeddedBroker(log_path=tmp_path / "b.log") as b:
        s = Settings(kafka_bootstrap=b.bootstrap, work_dir=tmp_path)
        ensure_topics(s.kafka)
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
