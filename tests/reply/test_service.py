"""The reply service end to end on a real broker: Kafka → tickets → replies → offsets, exactly once,
including a service killed with SIGKILL between storing and acknowledging (a real subprocess)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from pydantic import SecretStr

from tests.fixtures.store import enriched_tweet
from tests.fixtures.waiting import wait_for
from tweetdesk.records import ReplyStatus
from tweetdesk.reply.consumer import DEFAULT_GROUP
from tweetdesk.serve import ReplyService
from tweetdesk.tickets.store import TicketStatus, TicketStore

VENV_BIN = Path(sys.executable).parent


def _produce(settings, records: list[bytes | str], key: str | None = None) -> None:
    from tweetdesk.kafka.client import make_producer

    p = make_producer(settings.kafka)
    for r in records:
        value = r.encode() if isinstance(r, str) else r
        p.produce(settings.topic_enriched, key=(key or "k").encode(), value=value)
    assert p.flush(15) == 0


def _committed(settings, group: str = DEFAULT_GROUP) -> dict[int, int]:
    from confluent_kafka import TopicPartition

    from tweetdesk.kafka.client import make_consumer, topic_partitions

    c = make_consumer(settings.kafka, group)
    try:
        parts = [TopicPartition(settings.topic_enriched, p) for p in topic_partitions(settings.kafka, settings.topic_enriched)]
        return {tp.partition: tp.offset for tp in c.committed(parts, timeout=10) if tp.offset >= 0}
    finally:
        c.close()


def _read_all(settings, topic: str, expect: int, timeout: float = 15) -> list[bytes]:
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    from tweetdesk.kafka.client import make_consumer, topic_partitions

    c = make_consumer(settings.kafka, "test-reader")
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in topic_partitions(settings.kafka, topic)])
    out, end = [], time.monotonic() + timeout
    try:
        while len(out) < expect and time.monotonic() < end:
            for m in c.consume(100, 0.5):
                if m.error() is None:
                    out.append(m.value())
    finally:
        c.close()
    return out



def test_service_turns_records_into_tickets_once_and_commits(fresh_topics, tmp_path):
    settings = fresh_topics.model_copy(update={"work_dir": tmp_path, "api_key": SecretStr("service-test-admin-key-long-enough-for-rules")})
    a, b = enriched_tweet("7001"), enriched_tweet("7002", topic="Extra Charges", sentiment="neutral")
    # Every record three times, plus two that are not enriched tweets.
    bad_id = enriched_tweet("7003").model_copy(update={"ticket_id": "BAG-22222222-2"}).model_dump_json()
    _produce(settings, [a.model_dump_json(), b.model_dump_json()] * 3 + ["{broken", bad_id])
    with ReplyService(settings, port=0) as svc:
        wait_for(lambda: sum(_committed(settings).values()) == 8, what="offsets committed")
        health = requests.get(f"{svc.url}/healthz", headers={"X-API-Key": "service-test-admin-key-long-enough-for-rules"}, timeout=5).json()
        public = requests.get(f"{svc.url}/api/tickets/{a.ticket_id}", timeout=5).json()
    assert health["poster"]["mode"] == "dry-run" and health["consumer"]["tickets_created"] == 2
    assert health["consumer"]["duplicates"] == 4 and health["consumer"]["dead_letters"] == 2
    assert public["status"] == "replied"
    store = TicketStore(settings.store.db_url)
    stats = store.stats()
    assert stats["tickets"] == 2 and stats["replies_by_status"] == {"dry_run": 2}
    assert len(store.replies_for(a.ticket_id)) == 1 and len(store.replies_for(b.ticket_id)) == 1
    dead = [json.loads(v) for v in _read_all(settings, settings.topic_dead, 2)]
    reasons = sorted(d["reason"] for d in dead)
    assert len(dead) == 2 and any("Invalid JSON" in r for r in reasons) and any("check character" in r for r in reasons)
    assert all(d["stage"] == "reply" and d["source_topic"] == settings.topic_enriched for d in dead)

    # A restart resumes at the committed offsets: only the new record is read.
    c = enriched_tweet("7004")
    _produce(settings, [c.model_dump_json()])
    with ReplyService(settings, port=0) as svc:
        wait_for(lambda: sum(_committed(settings).values()) == 9, what="offset of the new record")
        assert svc.consumer.stats["records"] == 1
    assert store.stats()["tickets"] == 3


def _serve(env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(VENV_BIN / "tweetdesk"), "serve", "--port", "0"],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _env(settings, xapi, tmp_path, live: bool = True) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWEETDESK_") or k == "TWEETDESK_OUR_HANDLES"}
    env.update(
        TWEETDESK_CONFIG=str(tmp_path / "absent.toml"),
        TWEETDESK_WORK_DIR=str(tmp_path / "work"),
        TWEETDESK_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        TWEETDESK_TOPIC_RAW=settings.topic_raw,
        TWEETDESK_TOPIC_ENRICHED=settings.topic_enriched,
        TWEETDESK_TOPIC_DEAD=settings.topic_dead,
        TWEETDESK_X_API_BASE=xapi.base_url,
    )
    if live:
        env.update(
            TWEETDESK_X_CONSUMER_KEY="ck",
            TWEETDESK_X_CONSUMER_SECRET="cs",
            TWEETDESK_X_ACCESS_TOKEN="at",
            TWEETDESK_X_ACCESS_TOKEN_SECRET="ats",
        )
    return env


@pytest.mark.parametrize("kill_when", ["x_accepted_no_answer_yet", "x_answered"])
def test_sigkill_between_storing_and_acknowledging_still_posts_once(fresh_topics, xapi, tmp_path, kill_when):
    """Three deliveries of one record and a SIGKILL mid-flight: one ticket, one posted reply."""
    settings = fresh_topics
    tw = enriched_tweet("8001")
    record = tw.model_dump_json()
    env = _env(settings, xapi, tmp_path)
    if kill_when == "x_accepted_no_answer_yet":
        xapi.script(xapi.hold())  # X takes the post; its answer never reaches the service
    _produce(settings, [record], key=tw.id)

    first = _serve(env, tmp_path)
    try:
        if kill_when == "x_accepted_no_answer_yet":
            assert xapi.held.wait(60), "the service never posted"
        else:
            assert xapi.wait_for(lambda x: len(x.posts) == 1, timeout=60), "the service never posted"
    finally:
        first.send_signal(signal.SIGKILL)
        out = first.communicate(timeout=30)[0]
    xapi.release()
    store = TicketStore(f"sqlite:///{tmp_path / 'work' / 'tickets.db'}")
    assert store.stats()["tickets"] == 1, out
    if kill_when == "x_accepted_no_answer_yet":
        # Killed after storing (ticket + reply intent) and before acknowledging the offset.
        assert store.list_replies()[0].status == ReplyStatus.posting
        assert _committed(settings) == {}

    _produce(settings, [record, record], key=tw.id)  # deliveries two and three
    second = _serve(env, tmp_path)
    try:
        wait_for(lambda: sum(_committed(settings).values()) == 3, what="all three deliveries acknowledged")
        wait_for(lambda: store.list_replies()[0].status == ReplyStatus.posted, what="reply settled as posted")
    finally:
        second.send_signal(signal.SIGTERM)
        out = second.communicate(timeout=30)[0]
    assert second.returncode == 0, out

    [reply] = store.list_replies()
    assert len(xapi.posts) == 1 and len(xapi.post_requests()) == 1
    assert reply.posted_id == xapi.posts[0]["id"]
    assert xapi.posts[0]["in_reply_to_tweet_id"] == "8001" and tw.ticket_id in xapi.posts[0]["text"]
    ticket = store.get_ticket(tw.ticket_id)
    assert ticket.status == TicketStatus.replied and ticket.posted_reply_id == reply.posted_id
    assert store.stats()["tickets"] == 1


def test_serve_without_credentials_runs_dry_run_with_a_warning(fresh_topics, xapi, tmp_path):
    settings = fresh_topics
    tw = enriched_tweet("9001")
    _produce(settings, [tw.model_dump_json()], key=tw.id)
    proc = _serve(_env(settings, xapi, tmp_path, live=False), tmp_path)
    store = None
    try:
        store = TicketStore(f"sqlite:///{tmp_path / 'work' / 'tickets.db'}", migrate=False)
        wait_for(lambda: _safe_status(store, tw.ticket_id) == TicketStatus.replied, what="dry-run reply")
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, out
    assert "DRY-RUN mode" in out and "credentials are not set" in out
    assert "replies: dry-run" in out
    assert store.list_replies()[0].status == ReplyStatus.dry_run
    assert not xapi.requests


def _safe_status(store, ticket_id):
    try:
        t = store.get_ticket(ticket_id)
    except Exception:  # schema not created yet by the subprocess
        return None
    return t.status if t else None
