"""No record may stop a consumer: full-string validation (a handle "someone\\n" is not a handle), and any
exception one record raises in the reply service or the dead-letter consumer makes that record a dead letter
with the reason while the service stays up and commits past it.

The property test publishing arbitrary records against the running stream job and service is in
test_poison_property.py."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr, ValidationError

from tests.fixtures.store import enriched_tweet
from tests.fixtures.waiting import wait_for
from tweetdesk.kafka.client import make_producer, read_topic
from tweetdesk.records import DeadLetter, EnrichedTweet, Tweet
from tweetdesk.reply.consumer import DEFAULT_GROUP
from tweetdesk.reply.templates import valid_handle
from tweetdesk.serve import ReplyService
from tweetdesk.tickets.store import TicketStore
from tweetdesk.x.rules import is_handle


def _produce(settings, topic: str, values: list[bytes]) -> None:
    p = make_producer(settings.kafka)
    for v in values:
        p.produce(topic, key=b"k", value=v)
    assert p.flush(15) == 0


def _committed(settings, topic: str, group: str) -> int:
    from confluent_kafka import TopicPartition

    from tweetdesk.kafka.client import make_consumer, topic_partitions

    c = make_consumer(settings.kafka, group)
    try:
        parts = [TopicPartition(topic, p) for p in topic_partitions(settings.kafka, topic)]
        return sum(tp.offset for tp in c.committed(parts, timeout=10) if tp.offset >= 0)
    finally:
        c.close()


def _dead(settings) -> list[DeadLetter]:
    return [DeadLetter.model_validate_json(m.value()) for m in read_topic(settings.kafka, settings.topic_dead)]


@pytest.mark.parametrize("value", ["someone\n", "someone\r\n", "\nsomeone", "some one", "someone\x00"])
def test_a_handle_is_the_whole_string(value):
    assert not is_handle(value) and valid_handle(value) is None
    with pytest.raises(ValidationError, match="author"):
        Tweet(id="1", text="hi @united", author=value, created_at="2026-01-01T00:00:00Z")


@pytest.mark.parametrize("value", ["123\n", "\n123", "12 3", "١٢٣"])
def test_a_tweet_id_is_ascii_digits_and_nothing_else(value):
    with pytest.raises(ValidationError, match="id"):
        Tweet(id=value, text="hi @united", author="jane", created_at="2026-01-01T00:00:00Z")


def test_author_with_a_trailing_newline_is_dead_lettered_and_the_service_goes_on(fresh_topics, tmp_path):
    """The crash loop of issue 25: the template refused its own reply, the consumer thread died, the service
    stopped, and the uncommitted offset killed it again on every restart."""
    settings = fresh_topics.model_copy(update={"work_dir": tmp_path, "api_key": SecretStr("service-test-admin-key-long-enough-for-rules")})
    bad = json.loads(enriched_tweet("8001").model_dump_json())
    bad["author"] = "someone\n"
    good = enriched_tweet("8002")
    _produce(settings, settings.topic_enriched, [json.dumps(bad).encode(), good.model_dump_json().encode()])
    for _ in range(2):  # and again after a restart: nothing is replayed, nothing dies
        with ReplyService(settings, port=0) as svc:
            wait_for(lambda: _committed(settings, settings.topic_enriched, DEFAULT_GROUP) == 2, timeout=30,
                     what="both offsets committed")
            assert not svc.stopping.is_set() and svc.restarts == {}
    store = TicketStore(settings.store.db_url)
    try:
        assert [t.tweet_id for t in store.list_tickets().items] == ["8002"]
        assert len(store.replies_for(good.ticket_id)) == 1
    finally:
        store.close()
    dead = _dead(settings)
    assert len(dead) == 1 and dead[0].stage == "reply" and "author" in dead[0].reason
    assert "someone\\n" in dead[0].reason  # the value, escaped: no forged log line


def test_a_record_that_breaks_the_reply_is_dead_lettered_and_the_next_one_answered(fresh_topics, tmp_path):
    """Any exception a record raises past parsing (here: a topic the operator's templates print, holding a
    foreign @mention, so the reply and its fallback both break the rules) makes that record a dead letter."""
    templates = tmp_path / "templates.toml"
    templates.write_text('[default]\ndefault = "{{ mention }} Ticket {{ ticket_id }} about {{ topic }}."\n')
    settings = fresh_topics.model_copy(update={"work_dir": tmp_path / "work", "reply_templates": templates})
    hostile = enriched_tweet("8101", topic="ask @otherbrand")
    good = [enriched_tweet("8102"), enriched_tweet("8103")]
    _produce(settings, settings.topic_enriched, [good[0].model_dump_json().encode(),
                                                 hostile.model_dump_json().encode(),
                                                 good[1].model_dump_json().encode()])
    with ReplyService(settings, port=0) as svc:
        wait_for(lambda: _committed(settings, settings.topic_enriched, DEFAULT_GROUP) == 3, timeout=30,
                 what="all three offsets committed")
        assert not svc.stopping.is_set() and svc.restarts == {}
        assert svc.consumer.stats["tickets_created"] == 2
        store = svc.store
        assert sorted(t.tweet_id for t in store.list_tickets().items) == ["8102", "8103"]
        assert all(len(store.replies_for(g.ticket_id)) == 1 for g in good)
    dead = _dead(settings)
    assert len(dead) == 1 and "@otherbrand" in dead[0].reason and "ReplyTextError" in dead[0].reason
    assert EnrichedTweet.model_validate_json(dead[0].raw).id == "8101"


@pytest.mark.postgres
def test_dead_letter_the_store_refuses_is_stored_escaped_and_the_consumer_goes_on(fresh_topics, tmp_path, pg_url):
    """A NUL in a dead letter (PostgreSQL text cannot hold one) was retried forever by the dead-letter consumer."""
    settings = fresh_topics.model_copy(update={"work_dir": tmp_path, "database_url": pg_url})
    nul = DeadLetter.of(b"x", "reason", "ingest").model_dump_json().replace('"x"', '"a\\u0000b"', 1)
    after = DeadLetter.of(b"y", "later", "ingest").model_dump_json()
    _produce(settings, settings.topic_dead, [nul.encode(), b"\x00\xff raw NUL", after.encode()])
    with ReplyService(settings, port=0) as svc:
        wait_for(lambda: svc.dead_letters.stats["records"] >= 3 and svc.dead_letters.stats["commits"] >= 1,
                 timeout=30, what="the dead letters stored and committed")
        assert not svc.stopping.is_set()
        import sqlalchemy as sa

        from tweetdesk.tickets.store import dead_letters

        with svc.store.engine.connect() as conn:
            rows = conn.execute(sa.select(dead_letters.c.raw, dead_letters.c.reason)).all()
    assert len(rows) == 3 and {"a\ufffdb", "y"} <= {r.raw for r in rows}
