"""Settings come from env and tweetdesk.toml; the CLI turns bad input into one readable line."""

from __future__ import annotations

import subprocess
import sys

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
    assert s.parquet_dir == tmp_path / "parquet"
    assert s.db_url.startswith("sqlite:///") and s.db_url.endswith("tickets.db")
    assert s.x_user_credentials is False
    s2 = Settings(x_consumer_key="a", x_consumer_secret="s3cr3t-Xq9", x_access_token="c", x_access_token_secret="d")
    assert s2.x_user_credentials is True
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
