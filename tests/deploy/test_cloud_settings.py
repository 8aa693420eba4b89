"""Settings -> client configurations for the AWS deployment: MSK IAM auth, S3 locations, the database secret, the
EMR Serverless job run. The default path (no such setting) must come out exactly as before."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from tweetdesk.config import Settings
from tweetdesk.errors import ConfigError
from tweetdesk.kafka.auth import jvm_config, msk_iam_token, with_callbacks
from tweetdesk.kafka.client import client_config
from tweetdesk.stream.emr import spark_submit_parameters, start_job_run_request
from tweetdesk.stream.locations import checkpoint_location, parquet_location

MSK = "b-1.tweetdesk.abc123.c2.kafka-serverless.eu-west-1.amazonaws.com:9098"


@pytest.fixture
def aws_env(monkeypatch):
    # Static credentials: the signer signs locally (SigV4 presigning needs no network).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")


def test_default_client_config_is_unchanged():
    s = Settings(kafka_bootstrap="127.0.0.1:9092", kafka_config={"client.id": "x"})
    assert client_config(s.kafka) == {"bootstrap.servers": "127.0.0.1:9092", "client.id": "x"}
    assert with_callbacks(client_config(s.kafka)) == client_config(s.kafka)
    assert jvm_config(s.kafka, client_config(s.kafka)) == client_config(s.kafka)


def test_msk_iam_config_and_token(aws_env):
    s = Settings(kafka_bootstrap=MSK, kafka_auth="msk_iam")
    conf = client_config(s.kafka)
    assert conf["security.protocol"] == "SASL_SSL" and conf["sasl.mechanism"] == "OAUTHBEARER"
    json.dumps(conf)  # travels as JSON to Spark's Python workers
    full = with_callbacks(conf)
    assert full["oauth_cb"] is msk_iam_token
    # librdkafka accepts every property (an unknown or mistyped one raises KafkaException here).
    for cls in (Producer, AdminClient):
        cls(full)
    Consumer({**full, "group.id": "g"}).close()

    token, expiry = full["oauth_cb"](conf["sasl.oauthbearer.config"])
    url = urlparse(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
    q = parse_qs(url.query)
    assert url.hostname == "kafka.eu-west-1.amazonaws.com"
    assert q["Action"] == ["kafka-cluster:Connect"]
    assert q["X-Amz-Credential"][0].startswith("AKIAIOSFODNN7EXAMPLE/") and "/eu-west-1/kafka-cluster/" in q["X-Amz-Credential"][0]
    assert time.time() < expiry < time.time() + 3600


def test_msk_iam_region_from_settings_wins_and_is_required(aws_env, monkeypatch):
    s = Settings(kafka_bootstrap=MSK, kafka_auth="msk_iam", aws_region="us-east-1")
    assert client_config(s.kafka)["sasl.oauthbearer.config"] == "msk_iam region=us-east-1"
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(ConfigError, match="region"):
        client_config(Settings(kafka_bootstrap=MSK, kafka_auth="msk_iam").kafka)


def test_msk_iam_for_the_jvm_source(aws_env):
    s = Settings(kafka_bootstrap=MSK, kafka_auth="msk_iam")
    conf = jvm_config(s.kafka, client_config(s.kafka))
    assert conf["sasl.mechanism"] == "AWS_MSK_IAM"
    assert "IAMLoginModule" in conf["sasl.jaas.config"]
    assert "sasl.oauthbearer.config" not in conf and conf["bootstrap.servers"] == MSK


def test_bad_kafka_auth_is_one_line(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "TWEETDESK_KAFKA_AUTH": "kerberos", "TWEETDESK_WORK_DIR": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "tweetdesk.cli", "stream"], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("tweetdesk: error: bad setting TWEETDESK_KAFKA_AUTH") and r.stderr.count("\n") == 1


def test_locations_default_local_and_s3(tmp_path):
    s = Settings(work_dir=tmp_path)
    assert parquet_location(s) == (tmp_path / "parquet").resolve()
    assert checkpoint_location(s, "stream") == (tmp_path / "checkpoints" / "stream").resolve()
    s3 = Settings(work_dir=tmp_path, parquet_uri="s3://bucket/parquet/", checkpoint_uri="s3://bucket/ckpt")
    assert parquet_location(s3) == "s3://bucket/parquet"
    assert checkpoint_location(s3, "stream") == "s3://bucket/ckpt/stream"
    local = Settings(work_dir=tmp_path, parquet_uri=str(tmp_path / "elsewhere"))
    assert parquet_location(local) == Path(tmp_path / "elsewhere").resolve()


def test_database_url_from_secret():
    secret = json.dumps({"username": "tweetdesk", "password": "p@ss:w/rd", "host": "db.x.rds.amazonaws.com",
                         "port": 5432, "dbname": "tweetdesk", "engine": "postgres"})
    s = Settings(database_secret=secret)
    assert s.store.db_url == ("postgresql+psycopg://tweetdesk:p%40ss%3Aw%2Frd@db.x.rds.amazonaws.com:5432/tweetdesk"
                        "?sslmode=require")
    assert "p@ss" not in repr(s)
    # An explicit URL wins; neither set: SQLite as before.
    assert Settings(database_secret=secret, database_url="sqlite:///x.db").store.db_url == "sqlite:///x.db"
    assert Settings().store.db_url.startswith("sqlite:///")
    with pytest.raises(ConfigError, match="lacks password"):
        Settings(database_secret='{"username": "u", "host": "h"}').store.db_url
    with pytest.raises(ConfigError, match="not a JSON object"):
        Settings(database_secret="[1]").store.db_url


def test_database_secret_reaches_the_store(tmp_path):
    """The URL built from the secret is one the ticket store's engine accepts (no connection is made)."""
    import sqlalchemy as sa

    secret = json.dumps({"username": "u", "password": "pw", "host": "127.0.0.1", "port": 1, "dbname": "d"})
    url = sa.engine.make_url(Settings(database_secret=secret).store.db_url)
    assert (url.drivername, url.username, url.password, url.port, url.database) == \
        ("postgresql+psycopg", "u", "pw", 1, "d")
    assert url.query["sslmode"] == "require"


def test_emr_job_run_from_settings(monkeypatch):
    monkeypatch.setenv("TWEETDESK_KAFKA_BOOTSTRAP", MSK)
    monkeypatch.setenv("TWEETDESK_KAFKA_AUTH", "msk_iam")
    monkeypatch.setenv("TWEETDESK_PARQUET_URI", "s3://td-data/parquet")
    monkeypatch.setenv("TWEETDESK_CHECKPOINT_URI", "s3://td-data/checkpoints")
    monkeypatch.setenv("TWEETDESK_TOPIC_PARTITIONS", "6")
    monkeypatch.setenv("TWEETDESK_KAFKA_CONFIG", '{"client.id": "tweetdesk stream"}')
    req = start_job_run_request(Settings(), application_id="00abc", role_arn="arn:aws:iam::1:role/job",
                                code="s3://td-code/stream/", log_group="/tweetdesk/stream")
    assert req["mode"] == "STREAMING" and req["jobDriver"]["sparkSubmit"]["entryPoint"] == \
        "s3://td-code/stream/stream_entry.py"
    params = req["jobDriver"]["sparkSubmit"]["sparkSubmitParameters"]
    import shlex

    conf = dict(a.split("=", 1) for a in shlex.split(params) if a != "--conf")
    assert conf["spark.archives"] == "s3://td-code/stream/tweetdesk-venv.tar.gz#environment"
    for prefix in ("spark.emr-serverless.driverEnv.", "spark.executorEnv."):
        assert conf[prefix + "TWEETDESK_KAFKA_BOOTSTRAP"] == MSK
        assert conf[prefix + "TWEETDESK_KAFKA_AUTH"] == "msk_iam"
        assert conf[prefix + "TWEETDESK_PARQUET_URI"] == "s3://td-data/parquet"
        assert conf[prefix + "TWEETDESK_TOPIC_PARTITIONS"] == "6"
        assert json.loads(conf[prefix + "TWEETDESK_KAFKA_CONFIG"]) == {"client.id": "tweetdesk stream"}
        assert conf[prefix + "PYSPARK_PYTHON"] == "./environment/bin/python"
    # Each variable read back through Settings gives the same values (what the job will see).
    env = {k.split(".")[-1]: v for k, v in conf.items() if k.startswith("spark.executorEnv.TWEETDESK_")}
    for k in list(__import__("os").environ):
        if k.startswith("TWEETDESK_"):
            monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    again = Settings()
    assert (again.kafka_bootstrap, again.topic_partitions, again.parquet_uri) == (MSK, 6, "s3://td-data/parquet")


def test_emr_job_run_refuses_secrets_and_local_paths():
    base = dict(kafka_bootstrap=MSK, parquet_uri="s3://b/p", checkpoint_uri="s3://b/c")
    with pytest.raises(ConfigError, match="secret"):
        spark_submit_parameters(Settings(**base, api_key="k"), "s3://code")
    with pytest.raises(ConfigError, match="s3:// URI"):
        spark_submit_parameters(Settings(**{**base, "checkpoint_uri": "/tmp/c"}), "s3://code")


def test_athena_table_from_the_stream_schema():
    from tweetdesk.stream.athena import columns, create_table_ddl
    from tweetdesk.stream.schema import ENRICHED_COLUMNS

    cols = dict(columns())
    assert list(cols) == list(ENRICHED_COLUMNS)
    assert cols["created_at"] == "timestamp" and cols["sentiment_score"] == "double"
    assert cols["entities"].startswith("array<struct<") and "`end`:bigint" in cols["entities"]
    ddl = create_table_ddl("s3://td-data/parquet")
    assert "PARTITIONED BY (`day` string, `batch_id` string)" in ddl and "LOCATION 's3://td-data/parquet/'" in ddl
