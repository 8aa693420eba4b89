"""The stream job on a Spark standalone cluster (a master and one worker started from the pyspark install with
``spark-class``), submitted with ``spark-submit --master spark://…`` exactly as docs/scale-out.md says, against
the session's broker: every tweet in Parquet once, malformed records dead-lettered with a reason.

The driver is a subprocess (one SparkContext per process: the session's ``local[2]`` one is taken). The
cluster is small on purpose: a 2-core, 1 GB worker, 512 MB executor, 256 MB daemons.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from itertools import islice
from pathlib import Path

import pytest

from tests.fixtures.broker import publish
from tweetdesk.config import REPO_ROOT, SAMPLE_TWEETS
from tweetdesk.ingest.replay import iter_tweets
from tweetdesk.kafka.client import read_topic
from tweetdesk.records import DeadLetter
from tweetdesk.stream.sink import read_enriched

VENV_BIN = Path(sys.executable).parent
JOB = REPO_ROOT / "src" / "tweetdesk" / "stream" / "job.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spark_bin(name: str) -> str:
    for d in (VENV_BIN, Path(os.environ.get("SPARK_HOME", "/nonexistent")) / "bin"):
        if (d / name).exists():
            return str(d / name)
    found = shutil.which(name)
    if not found:
        pytest.skip(f"{name} not found (it ships with the pyspark package)")
    return found


def _spark_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWEETDESK_") or k == "TWEETDESK_OUR_HANDLES"}
    env.update(
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
        SPARK_LOCAL_IP="127.0.0.1",
        SPARK_DAEMON_MEMORY="256m",
        SPARK_LOG_DIR=str(tmp / "logs"),
        SPARK_WORKER_DIR=str(tmp / "worker"),
        SPARK_LOCAL_DIRS=str(tmp / "local"),
        SPARK_NO_DAEMONIZE="1",
    )
    return env


class StandaloneCluster:
    """``spark-class …deploy.master.Master`` + ``…deploy.worker.Worker``, on free loopback ports."""

    def __init__(self, tmp: Path, cores: int = 2, memory: str = "1g"):
        self.tmp = tmp
        self.env = _spark_env(tmp)
        self.port, self.ui_port, self.worker_ui_port = _free_port(), _free_port(), _free_port()
        self.cores, self.memory = cores, memory
        self.procs: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    def _spawn(self, name: str, *args: str) -> None:
        log = open(self.tmp / f"{name}.log", "wb")
        self.procs.append(subprocess.Popen([_spark_bin("spark-class"), *args], env=self.env, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True))

    def state(self) -> dict:
        import requests

        return requests.get(f"http://127.0.0.1:{self.ui_port}/json/", timeout=2).json()

    def start(self, timeout: float = 120.0) -> "StandaloneCluster":
        self._spawn("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                    "--port", str(self.port), "--webui-port", str(self.ui_port))
        self._spawn("worker", "org.apache.spark.deploy.worker.Worker", self.url, "--host", "127.0.0.1",
                    "--cores", str(self.cores), "--memory", self.memory, "--webui-port", str(self.worker_ui_port),
                    "--work-dir", str(self.tmp / "worker"))
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"spark daemon exited with {p.returncode}: {self.logs()}")
            try:
                if any(w.get("state") == "ALIVE" for w in self.state().get("workers", [])):
                    return self
            except Exception:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"no ALIVE worker within {timeout:.0f} s: {self.logs()}")

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in self.tmp.glob("*.log"))

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not shutil.which("java") and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java: Spark needs Java 17")
    c = StandaloneCluster(tmp_path_factory.mktemp("standalone"))
    try:
        c.start()
    except RuntimeError as e:
        c.stop()
        pytest.fail(str(e))
    yield c
    c.stop()


def spark_submit(cluster: StandaloneCluster, settings, timeout: float = 420.0) -> subprocess.CompletedProcess:
    """The command of docs/scale-out.md, scaled down to this machine."""
    env = {
        **cluster.env,
        "TWEETDESK_CONFIG": str(cluster.tmp / "absent.toml"),
        "TWEETDESK_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "TWEETDESK_TOPIC_RAW": settings.topic_raw,
        "TWEETDESK_TOPIC_ENRICHED": settings.topic_enriched,
        "TWEETDESK_TOPIC_DEAD": settings.topic_dead,
        "TWEETDESK_WORK_DIR": str(settings.work_dir),
        "TWEETDESK_ARTIFACTS_DIR": str(settings.artifacts_dir),
        "TWEETDESK_MODEL_VERSION": settings.model_version,
    }
    cmd = [
        _spark_bin("spark-submit"),
        "--master", cluster.url,
        "--deploy-mode", "client",
        "--name", "tweetdesk-stream",
        "--driver-memory", "512m",
        "--executor-memory", "512m",
        "--total-executor-cores", "2",
        "--conf", f"spark.pyspark.python={sys.executable}",
        "--conf", "spark.sql.shuffle.partitions=2",
        "--conf", f"spark.local.dir={cluster.tmp / 'local'}",
        str(JOB), "--available-now",
    ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)



def test_stream_job_runs_on_a_standalone_master_and_worker(cluster, fresh_topics, tmp_path, model_ready):
    settings = fresh_topics.model_copy(update={"work_dir": tmp_path / "work"})
    tweets = list(islice(iter_tweets(SAMPLE_TWEETS), 60))
    bad = [b'{"id": "1", "text": "cut off', b"\xff\xfe not utf-8", b'{"id": "1897000000000000009", "text": 42}']
    publish(settings, tweets, raw=bad)

    t0 = time.monotonic()
    r = spark_submit(cluster, settings)
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, f"spark-submit failed:\n{r.stderr[-4000:]}\n{cluster.logs()}"
    # The driver ran against the standalone master, and the cluster ran an application for it.
    assert f"master {cluster.url}" in r.stderr, r.stderr[-2000:]
    apps = cluster.state().get("completedapps", []) + cluster.state().get("activeapps", [])
    assert any(a.get("name") == "tweetdesk-stream" for a in apps), apps

    df = read_enriched(settings.stream.parquet_dir)
    assert sorted(df["id"]) == sorted(t.id for t in tweets)  # every tweet once
    letters = [DeadLetter.model_validate_json(m.value()) for m in read_topic(settings.kafka, settings.topic_dead)]
    assert len(letters) == len(bad) and all(d.reason and d.stage in ("parse", "validate") for d in letters)
    enriched = read_topic(settings.kafka, settings.topic_enriched)
    assert sorted(m.key().decode() for m in enriched) == sorted(t.partition_key for t in tweets)
    print(f"\n[scale-out] standalone {cluster.url} (1 worker, 2 cores, 512 MB executor): {len(tweets)} tweets + "
          f"{len(bad)} bad records -> {len(df)} Parquet rows, {len(letters)} dead letters; spark-submit took "
          f"{elapsed:.1f} s including JVM and model start-up")
    assert json.loads(json.dumps(cluster.state()))["workers"][0]["cores"] == 2
