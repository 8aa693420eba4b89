"""Property: whatever arrives on ``tweets.raw`` and ``tweets.enriched``, the running stream job (real SparkSession,
real models) and the running reply service (real broker, real store) stay up; every record that is not a valid
tweet becomes a dead letter with a reason, and every valid tweet that summons us gets exactly one reply.

Records are random bytes, random JSON, and valid records with one field made hostile (a handle with a final
newline, NUL, lone surrogates, bidi overrides, a huge string, the wrong type). The number of records tried is
printed with the figures."""

from __future__ import annotations

import itertools
import json
import threading

import sqlalchemy as sa
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.fixtures.figures import record_figures
from tests.fixtures.store import enriched_tweet
from tests.fixtures.waiting import wait_for
from tweetdesk.kafka.client import make_producer, read_topic
from tweetdesk.records import DeadLetter
from tweetdesk.serve import ReplyService
from tweetdesk.stream.job import StreamJob
from tweetdesk.tickets.store import replies, tweets_table

EXAMPLES = 12

HOSTILE = st.one_of(
    st.sampled_from(["someone\n", "someone\r\n", "a\x00b", "\ud800", "\udfff lost bag", "\u202eevil", "x" * 200_000,
                     "@united\r\n2026-01-01 INFO forged line", "", " ", "{{ 9 ** 9 }}", "%s%n", "１２３", "123\n"]),
    st.text(max_size=40),
    st.integers(), st.floats(allow_nan=True), st.none(), st.booleans(), st.lists(st.integers(), max_size=3),
)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                    max_leaves=12)
TWEET_FIELDS = ["id", "text", "author", "created_at", "lang", "brand", "mentions", "referenced_tweets", "source"]
ENRICHED_FIELDS = TWEET_FIELDS + ["ticket_id", "topic", "sentiment", "sentiment_score", "entities", "model_version"]

_ids = itertools.count(1_896_000_000_000_000_000)


def _good_raw() -> dict:
    i = next(_ids)
    return {"id": str(i), "text": f"@united my bag did not arrive, case {i}", "author": f"cust{i % 10**9}",
            "created_at": "2026-03-01T10:00:00Z"}


def _good_enriched() -> dict:
    i = next(_ids)
    return json.loads(enriched_tweet(str(i), text="@united where is my bag", author=f"ecust{i % 10**9}")
                      .model_dump_json())


@st.composite
def record(draw, good, fields):
    """(value bytes, True if it is a valid record by construction)."""
    kind = draw(st.sampled_from(["good", "hostile", "hostile", "bytes", "json"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200)), False
    if kind == "json":
        return json.dumps(draw(JSON)).encode(), False
    rec = good()
    if kind == "hostile":
        rec[draw(st.sampled_from(fields))] = draw(HOSTILE)
    # ensure_ascii keeps lone surrogates as \\ud800 escapes, as a hostile producer would send them
    return json.dumps(rec).encode(), kind == "good"


class _Sent:
    def __init__(self, settings):
        self.settings = settings
        self.producer = make_producer(settings.kafka)
        self.records: list[dict] = []  # topic, partition, offset, good, id
        self.lock = threading.Lock()

    def send(self, topic: str, value: bytes, good: bool) -> None:
        def done(err, msg):
            assert err is None, err
            try:
                tid = json.loads(value).get("id")
            except (ValueError, AttributeError):
                tid = None
            with self.lock:
                self.records.append({"topic": topic, "partition": msg.partition(), "offset": msg.offset(),
                                     "good": good, "id": tid if isinstance(tid, str) else None})
        self.producer.produce(topic, key=b"poison", value=value, on_delivery=done)

    def flush(self) -> None:
        assert self.producer.flush(30) == 0


def test_arbitrary_records_never_stop_the_stream_job_or_the_service(spark, fresh_topics, tmp_path, model_ready):
    s = fresh_topics.model_copy(update={"work_dir": tmp_path / "work", "trigger_seconds": 0.0, "api_key": None})
    handle = StreamJob(s).start(spark)
    sent = _Sent(s)
    tried = {"raw": 0, "enriched": 0}
    try:
        with ReplyService(s, port=0) as svc:

            def outcome(r, dead):
                """'dead' (with a reason), 'answered' (its ticket has one reply), 'taken' (recorded without a
                reply: not summoning us, or another's duplicate) or None (not yet)."""
                d = dead.get((r["topic"], r["partition"], r["offset"]))
                if d is not None:
                    assert d.reason.strip(), d
                    return "dead"
                if r["id"] is None:
                    return None
                with svc.store.engine.connect() as conn:
                    taken = conn.execute(sa.select(tweets_table.c.ticket_id)
                                         .where(tweets_table.c.tweet_id == r["id"])).first()
                    if taken is None:
                        return None
                    n = conn.execute(sa.select(sa.func.count()).select_from(replies)
                                     .where(replies.c.in_reply_to_tweet_id == r["id"])).scalar()
                assert n <= 1, r  # never two replies to one tweet
                return "answered" if n == 1 else "taken"

            @hsettings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                       suppress_health_check=list(HealthCheck))
            @given(raw=st.lists(record(_good_raw, TWEET_FIELDS), min_size=1, max_size=4),
                   enriched=st.lists(record(_good_enriched, ENRICHED_FIELDS), min_size=1, max_size=4))
            def check(raw, enriched):
                start = len(sent.records)
                for value, good in raw:
                    sent.send(s.topic_raw, value, good)
                for value, good in enriched:
                    sent.send(s.topic_enriched, value, good)
                sent.flush()
                tried["raw"] += len(raw)
                tried["enriched"] += len(enriched)
                batch = sent.records[start:]

                def settled():
                    dead = {(d.source_topic, d.partition, d.offset): d for d in
                            (DeadLetter.model_validate_json(m.value()) for m in read_topic(s.kafka, s.topic_dead, 5))}
                    got = [outcome(r, dead) for r in batch]
                    return got if all(got) else None

                got = wait_for(settled, timeout=90, interval=0.5, what=f"an outcome for each of {len(batch)} records")
                for r, o in zip(batch, got):
                    if r["good"]:
                        assert o == "answered", r  # a valid tweet that summons us: one reply, never dead
                assert handle.active and not svc.stopping.is_set() and svc.restarts == {}

            check()
            assert handle.active and not svc.stopping.is_set() and svc.restarts == {}
            assert svc.consumer.stats["last_error"] is None or svc.consumer.ready.is_set()
    finally:
        handle.stop()
    total = tried["raw"] + tried["enriched"]
    print(f"\npoison property: {total} records tried ({tried['raw']} on raw, {tried['enriched']} on enriched) "
          f"in {EXAMPLES} examples")
    record_figures("poison records (hypothesis)", records_tried=total, raw=tried["raw"], enriched=tried["enriched"],
                   examples=EXAMPLES)
