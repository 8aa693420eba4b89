"""The container image: built by deploy/build-image.sh (buildah, chroot isolation), then `tweetdesk demo` runs inside
it on the host network. Checks facts, not the summary's wording: the exit code, every sample tweet in the Parquet
the demo wrote, tickets and a dry-run outbox in its SQLite store.

Marked `image` (minutes: `make test-image`, run by .ci/run after `make test`); skipped with the reason where
buildah cannot build here (not installed, not root, no base image to be had).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.fixtures.figures import record_figures
from tweetdesk.config import REPO_ROOT, SAMPLE_TWEETS

pytestmark = pytest.mark.image

IMAGE = "localhost/tweetdesk"
BUILD_TIMEOUT_S = 1800
DEMO_TIMEOUT_S = 600


def _why_not() -> str | None:
    if shutil.which("buildah") is None:
        return "buildah is not installed (Debian package buildah; .ci/run installs it)"
    if os.geteuid() != 0:
        return "building with buildah --isolation chroot needs root here (no user namespaces set up)"
    if shutil.which("mmdebstrap") is None and subprocess.run(
            ["buildah", "inspect", "--type", "image", "docker.io/library/debian:bookworm-slim"],
            capture_output=True).returncode != 0:
        return "no base image: debian:bookworm-slim is not stored locally and mmdebstrap is not installed"
    return None


@pytest.fixture(scope="module")
def image() -> str:
    why = _why_not()
    if why:
        pytest.skip(why)
    t0 = time.monotonic()
    r = subprocess.run(["bash", str(REPO_ROOT / "deploy" / "build-image.sh")], cwd=REPO_ROOT, capture_output=True,
                       text=True, timeout=BUILD_TIMEOUT_S)
    seconds = time.monotonic() - t0
    assert r.returncode == 0, f"build-image.sh failed (exit {r.returncode}):\n{_build_failure(r.stderr)}"
    size = subprocess.run(["buildah", "images", "--format", "{{.Size}}", f"{IMAGE}:latest"], capture_output=True,
                          text=True).stdout.split("\n")[0]
    record_figures("image build", seconds=f"{seconds:.0f}", size=size)
    return f"{IMAGE}:latest"


def _build_failure(stderr: str, tail: int = 25) -> str:
    """What a failed build said: the script's own lines (its steps and ``build-image: error: line N: `cmd` exited
    rc``, which name the failing command) and the last lines of everything else, less pip's repeated warnings
    about find-links folders absent here."""
    lines = stderr.splitlines()
    steps = [ln for ln in lines if ln.startswith("build-image:")]
    rest = [ln for ln in lines if not ln.startswith("build-image:")
            and not (ln.startswith("WARNING: Location") and "is ignored" in ln)]
    return "\n".join(["script:", *steps, f"last {tail} other lines of stderr:", *rest[-tail:]])


def _inspect(image: str) -> dict:
    out = subprocess.run(["buildah", "inspect", "--type", "image", image], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_image_config(image):
    info = _inspect(image)
    cfg = info["Docker"]["config"]
    assert cfg["User"] == "10001:10001"
    assert cfg["Entrypoint"][-1].endswith("/tweetdesk") and cfg["Entrypoint"][0].endswith("tini")
    assert any("/healthz" in part for part in cfg["Healthcheck"]["Test"])
    labels = cfg["Labels"]
    import tomllib

    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert {"org.opencontainers.image.source", "org.opencontainers.image.revision"} <= set(labels)


def _run(image: str, *cmd: str, volumes: dict[Path, str] | None = None, env: dict[str, str] | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess:
    """``buildah run`` in a fresh working container of ``image`` (chroot isolation, host network)."""
    ctr = subprocess.run(["buildah", "from", "--quiet", image], capture_output=True, text=True, check=True).stdout.strip()
    try:
        args = ["buildah", "run", "--isolation", "chroot", "--network", "host"]
        for host, inside in (volumes or {}).items():
            args += ["-v", f"{host}:{inside}"]
        for k, v in (env or {}).items():
            args += ["-e", f"{k}={v}"]
        return subprocess.run([*args, ctr, "--", *cmd], capture_output=True, text=True, timeout=timeout)
    finally:
        subprocess.run(["buildah", "rm", ctr], capture_output=True)


def test_runtime_versions_and_user(image):
    r = _run(image, "sh", "-c", "id -u; python --version; java -version 2>&1 | head -1; tweetdesk --version")
    assert r.returncode == 0, r.stderr
    uid, python, java, tweetdesk = r.stdout.strip().splitlines()
    assert uid == "10001"
    assert python.startswith("Python 3.11.")
    assert '"17.' in java
    assert "tweetdesk" in tweetdesk


def test_demo_in_the_image(image, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    os.chown(work, 10001, 10001)  # the image's user writes here
    t0 = time.monotonic()
    r = _run(image, "tweetdesk", "demo", volumes={work: "/data"}, timeout=DEMO_TIMEOUT_S,
             env={"TWEETDESK_WORK_DIR": "/data", "TWEETDESK_HOST": "127.0.0.1"})
    seconds = time.monotonic() - t0
    assert r.returncode == 0, f"demo failed in the image:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"

    import pyarrow.dataset as ds

    sent = {json.loads(line)["id"] for line in SAMPLE_TWEETS.read_text().splitlines() if line.strip()}
    dataset = ds.dataset(work / "demo" / "parquet", format="parquet", partitioning="hive")
    ids = dataset.to_table(columns=["id"]).column("id").to_pylist()
    # Every sample tweet once (the sample holds no malformed line: those are the demo's separate bad file).
    assert len(ids) == len(sent) and set(ids) == sent

    # The Athena table (docs/deploy-aws.md) has exactly the columns of the Parquet the job wrote.
    from tweetdesk.stream.athena import columns

    assert [n for n, _ in columns()] == [n for n in dataset.schema.names if n not in ("day", "batch_id")]

    with sqlite3.connect(work / "demo" / "tickets.db") as db:
        tickets = db.execute("SELECT count(*) FROM tickets").fetchone()[0]
        replies = db.execute("SELECT count(*) FROM replies").fetchone()[0]
        # Recorded by the service's dead-letter consumer, which the demo does not wait for: a figure only.
        dead = db.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
        # every reply went to the dry-run outbox or was cancelled (the sample's "STOP"): none was posted
        live = db.execute("SELECT count(*) FROM replies WHERE status NOT IN ('dry_run', 'cancelled')").fetchone()[0]
    assert tickets > 0 and replies > 0, "no tickets or no replies in the outbox"
    assert live == 0, "the demo must never post: every reply is a dry-run one"
    record_figures("demo in the image", seconds=f"{seconds:.0f}", parquet_rows=len(ids), tickets=tickets,
                   outbox=replies, dead_letters=dead)
