"""Dead letters from the Kafka topic into the store, and onto the dashboard: the reply service's
dead-letter consumer on the real session broker (tansu), with the dashboard read in headless chromium."""

from __future__ import annotations

import pytest
import requests

from tests.fixtures.store import enriched_tweet
from tests.fixtures.waiting import wait_for
from tweetdesk.records import DeadLetter
from tweetdesk.reply.dead_letters import DeadLetterConsumer
from tweetdesk.serve import ReplyService
from tweetdesk.tickets.reports import dead_letter_count
from tweetdesk.tickets.schema import dead_letters
from tweetdesk.tickets.store import TicketStore


def _produce(settings, topic: str, values: list[bytes]) -> None:
    from tweetdesk.kafka.client import make_producer

    p = make_producer(settings.kafka)
    for v in values:
        p.produce(topic, key=b"k", value=v)
    assert p.flush(15) == 0



def _letters(n: int, stage: str) -> list[bytes]:
    return [DeadLetter.of(f"broken line {i}", f"reason {i}", stage, key=f"f:{i}").model_dump_json().encode()
            for i in range(n)]


def test_parse_wraps_a_foreign_message_idempotently(tmp_path):
    from tweetdesk.config import Settings

    c = DeadLetterConsumer(Settings(work_dir=tmp_path), store=None)
    meta = {"key": "x", "partition": 1, "offset": 7, "timestamp_ms": 1_764_000_000_000}
    a, b = c.parse(b"not json at all", meta), c.parse(b"not json at all", meta)
    assert a == b and a.stage == "dead-letter" and "not a dead letter record" in a.reason
    assert a.raw == "not json at all" and a.offset == 7
    good = DeadLetter.of(b"{oops", "invalid JSON", "parse")
    assert c.parse(good.model_dump_json().encode(), meta) == good


def test_service_records_every_dead_letter_once_and_the_dashboard_counts_them(fresh_topics, tmp_path, browser_page):
    settings = fresh_topics.model_copy(update={"work_dir": tmp_path, "api_key": None})
    ingest = _letters(3, "ingest")
    # Dead letters of the ingest stage, one re-delivered (same record twice), and a foreign message.
    _produce(settings, settings.topic_dead, ingest + [ingest[0], b"\xff not a dead letter"])
    # And one the reply consumer itself dead-letters (a bad enriched record), which comes round the topic.
    _produce(settings, settings.topic_enriched, [b"{broken", enriched_tweet("5001").model_dump_json().encode()])
    store = TicketStore(settings.store.db_url)
    try:
        with ReplyService(settings, store=store, port=0) as svc:
            svc.app.config["TWEETDESK_WEB_REFRESH_SECONDS"] = 1.0
            wait_for(lambda: dead_letter_count(store) == 5, what="5 dead letters stored")
            wait_for(lambda: svc.dead_letters.stats["commits"] >= 1 and svc.dead_letters.stats["records"] == 6,
                  what="dead-letter offsets committed")
            summary = requests.get(f"{svc.url}/web/api/summary", timeout=5).json()
            assert summary["totals"]["dead_letters"] == 5
            health = dict(svc.dead_letters.stats)  # /healthz shows it to the admin key (none is set here)
            assert health["recorded"] == 5 and health["unreadable"] == 1

            page = browser_page
            page.goto(svc.url + "/")
            assert page.locator('[data-kpi="totals.dead_letters"]').inner_text().strip() == "5"
            # A new dead letter shows up on the open page without a reload.
            page.evaluate("() => { window.__noReload = true; }")
            _produce(settings, settings.topic_dead, _letters(1, "stream"))
            page.wait_for_function(
                "() => document.querySelector('[data-kpi=\"totals.dead_letters\"]').textContent.trim() === '6'"
            )
            assert page.evaluate("() => window.__noReload") is True
            page.shot("dashboard-dead-letters")

        with store.engine.connect() as conn:
            import sqlalchemy as sa

            rows = conn.execute(sa.select(dead_letters.c.stage, dead_letters.c.reason)).all()
        stages = sorted(r.stage for r in rows)
        assert stages == ["dead-letter", "ingest", "ingest", "ingest", "reply", "stream"]
        assert any("Invalid JSON" in r.reason for r in rows if r.stage == "reply")

        # A restart resumes after the committed offsets and replays nothing into the count.
        with ReplyService(settings, store=store, port=0) as svc:
            wait_for(lambda: svc.dead_letters.ready.is_set(), what="dead-letter consumer ready")
            _produce(settings, settings.topic_dead, _letters(2, "late"))
            wait_for(lambda: dead_letter_count(store) == 8, what="the two new dead letters")
            assert svc.dead_letters.stats["records"] == 2
    finally:
        store.close()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_replayed_batch_changes_nothing(backend, request, tmp_path):
    from tweetdesk.config import Settings

    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    store = TicketStore(url)
    try:
        c = DeadLetterConsumer(Settings(work_dir=tmp_path), store)
        batch = [(v, {"partition": 0, "offset": i}) for i, v in enumerate(_letters(4, "ingest"))]
        assert c.process(batch) == 4
        assert c.process(batch) == 0  # a crash before the commit replays the batch
        assert dead_letter_count(store) == 4
    finally:
        store.close()
