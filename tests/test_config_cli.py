"""Settings come from env and tweetdesk.toml; the CLI turns bad input into one readable line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tweetdesk.config import Settings


def test_env_overrides_toml_overrides_defaults(tmp_path, monkeypatch):
    toml = tmp_path / "tweetdesk.toml"
    toml.write_text('topic_partitions = 4\nspark_master = "spark://h:7077"\nx_rules = ["@delta"]\n')
    monkeypatch.setenv("TWEETDESK_CONFIG", str(toml))
    monkeypatch.setenv("TWEETDESK_SPARK_MASTER", "local[1]")
    monkeypatch.setenv("TWEETDESK_KAFKA_CONFIG", '{"security.protocol": "SASL_SSL"}')
    s = Settings()
    assert s.topic_partitions == 4  # from the file
    assert s.spark_master == "local[1]"  # env wins over the file
    assert s.x_rules == ["@delta"]
    assert s.kafka_config == {"security.protocol": "SASL_SSL"}
    assert s.kafka_bootstrap is None  # embedded broker by default


def test_derived_paths_and_dry_run_default(tmp_path):
    s = Settings(work_dir=tmp_path)
    assert s.stream.parquet_dir == tmp_path / "parquet"
    assert s.store.db_url.startswith("sqlite:///") and s.store.db_url.endswith("tickets.db")
    assert s.x.user_credentials is False
    s2 = Settings(x_consumer_key="a", x_consumer_secret="s3cr3t-Xq9", x_access_token="c", x_access_token_secret="d")
    assert s2.x.user_credentials is True
    assert "s3cr3t-Xq9" not in repr(s2) and "s3cr3t-Xq9" not in str(s2.model_dump())  # secrets never show in reprs/logs


def _cli(*args, env=None):
    import os

    return subprocess.run(
        [sys.executable, "-m", "tweetdesk.cli", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})},
    )


def test_bad_argument_is_one_readable_line():
    r = _cli("train", "--epochs", "0")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and r.stderr.startswith("tweetdesk: error:")
    assert "Traceback" not in r.stderr


def test_unknown_command_is_one_readable_line():
    r = _cli("frobnicate")
    assert r.returncode == 2 and "No such command" in r.stderr and "Traceback" not in r.stderr


def test_bad_setting_is_one_readable_line():
    r = _cli("broker", env={"TWEETDESK_TOPIC_PARTITIONS": "zero"})
    assert r.returncode == 1
    assert "TWEETDESK_TOPIC_PARTITIONS" in r.stderr and "Traceback" not in r.stderr


def test_help_lists_every_stage_command():
    r = _cli("--help")
    assert r.returncode == 0
    for cmd in ("demo", "train", "evaluate", "classify", "broker", "ingest", "stream", "serve", "bench"):
        assert cmd in r.stdout


def _closed_port() -> int:
    """A loopback port nothing listens on: every connection attempt is refused at once."""
    from tweetdesk.kafka.broker import free_port

    return free_port()


@pytest.mark.parametrize("command", [("ingest", "replay", "--limit", "3"), ("serve",), ("stream",)])
def test_unreachable_kafka_is_one_line_and_fails_fast(command, tmp_path):
    # librdkafka used to print ~200 "Connection refused" lines over 10 s before our one line.
    bootstrap = f"127.0.0.1:{_closed_port()}"
    r = subprocess.run(  # the bound the issue sets: a non-zero exit within 10 s, not a hang
        [sys.executable, "-m", "tweetdesk.cli", *command], capture_output=True, text=True, timeout=10,
        env={**os.environ, "TWEETDESK_KAFKA_BOOTSTRAP": bootstrap, "TWEETDESK_WORK_DIR": str(tmp_path)},
    )
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1, r.stderr
    assert len(lines) <= 3, r.stderr
    assert lines[-1].startswith(f"tweetdesk: error: cannot reach Kafka at {bootstrap}: "), r.stderr
    assert "Connection refused" in lines[-1]
    assert "Traceback" not in r.stderr and "rdkafka#" not in r.stderr


def test_librdkafka_log_goes_through_python_logging_once_per_problem():
    # A producer left retrying a dead broker for 3 s: librdkafka retries every ~50 ms and used to write a
    # line to stderr for each attempt; through Python logging the problem shows once.
    code = (
        "import logging, sys\n"
        "from tweetdesk.config import Settings\n"
        "from tweetdesk.kafka.client import make_producer\n"
        "logging.basicConfig(stream=sys.stdout, format='%(name)s %(levelname)s %(message)s')\n"
        f"p = make_producer(Settings(kafka_bootstrap='127.0.0.1:{_closed_port()}').kafka)\n"
        "p.produce('tweets.raw', b'x')\n"
        "print('left', p.flush(3.0))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    refused = [ln for ln in r.stdout.splitlines() if "Connection refused" in ln]
    assert len(refused) == 1, r.stdout
    assert refused[0].startswith("tweetdesk.kafka.librdkafka ERROR FAIL [rdkafka#producer-1]")
    assert "left 1" in r.stdout  # the message was never acknowledged, and nothing went to stderr directly
    assert r.stderr == ""
