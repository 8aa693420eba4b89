"""The stream job end to end on the session's real broker and real SparkSession, with the real models:
N tweets in -> exactly N rows in Parquet (each id once) and N records on tweets.enriched; malformed records ->
tweets.dead with a reason; a job stopped mid-stream and restarted from its checkpoint -> each tweet once.

Small N and one SparkSession for the whole session keep this file quick (the first batch pays for loading
the models in the Python worker).
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from itertools import islice

import pytest

from tests.fixtures.broker import publish
from tests.fixtures.clock import clocks_agree_across_processes
from tweetdesk.config import SAMPLE_TWEETS
from tweetdesk.ingest.replay import iter_tweets
from tweetdesk.kafka.client import read_topic
from tweetdesk.records import NOT_INFERRED, SENTIMENTS, TOPICS, UNCLASSIFIABLE, DeadLetter, EnrichedTweet, Tweet
from tweetdesk.stream.job import StreamJob, run_available_now
from tweetdesk.stream.sink import read_enriched


@pytest.fixture(scope="module")
def model_version(kafka_settings) -> str:
    """The shipped model's version; the file skips with the reason where no trained model exists."""
    from tweetdesk.errors import TweetdeskError
    from tweetdesk.models.predict import resolve_version

    try:
        folder = resolve_version(kafka_settings.artifacts_dir, kafka_settings.model_version)
    except TweetdeskError as e:
        pytest.skip(f"no trained model: {e}")
    return json.loads((folder / "model.json").read_text())["version"]


@pytest.fixture
def job_settings(fresh_topics, tmp_path, model_version):
    """Topics and a work_dir (Parquet, checkpoint) of this test's own; no wait between micro-batches."""
    return fresh_topics.model_copy(update={"work_dir": tmp_path / "work", "trigger_seconds": 0.0})


def sample(n: int, skip: int = 0) -> list[Tweet]:
    tweets = list(islice(iter_tweets(SAMPLE_TWEETS), skip, skip + n))
    assert len(tweets) == n
    return tweets


def dead_letters(settings) -> list[DeadLetter]:
    return [DeadLetter.model_validate_json(m.value()) for m in read_topic(settings.kafka, settings.topic_dead)]


def test_n_tweets_in_n_enriched_rows_out(spark, job_settings, model_version):
    from tweetdesk.models.enrich import enrich_batch

    # 39 of the sample (X's lang on each) and a Spanish tweet with none, as a replay file or a DM may send.
    spanish = Tweet(id="1999000000000000001", text="@united mi vuelo UA 1234 fue cancelado y nadie contesta",
                    author="ana", created_at=datetime(2025, 3, 6, 22, 0, tzinfo=timezone.utc))
    tweets = [*sample(39), spanish]
    publish(job_settings, tweets)

    totals = run_available_now(spark, job_settings)

    df = read_enriched(job_settings.stream.parquet_dir)
    assert len(df) == 40
    assert sorted(df["id"]) == sorted(t.id for t in tweets)  # each tweet once, none missing
    assert totals.enriched == 40 and totals.dead == 0
    assert dead_letters(job_settings) == []

    # Every row carries what the real models say about that tweet, as enrich_batch says it in this process.
    assert set(df["model_version"]) == {model_version}
    assert set(df["sentiment"]) <= {*SENTIMENTS, UNCLASSIFIABLE, NOT_INFERRED}
    assert set(df["topic"]) <= {*TOPICS, UNCLASSIFIABLE, NOT_INFERRED}
    assert df["ticket_id"].str.len().min() > 0
    expected = {e.id: e for e in enrich_batch(tweets, job_settings)}
    for row in df.itertuples():
        e = expected[row.id]
        assert (row.sentiment, row.topic, row.ticket_id) == (e.sentiment, e.topic, e.ticket_id), row.text
        assert row.lang == e.lang and row.lang, row.text  # every row says its language (X's, or identified)
        assert [(x["text"], x["label"]) for x in row.entities] == [(x.text, x.label) for x in e.entities]
    assert any(len(x) for x in df["entities"])  # the sample names flights, airports, booking references
    es = df[df["id"] == spanish.id].iloc[0]  # identified, not guessed at, its flight still found
    assert (es["lang"], es["sentiment"], es["topic"], es["sentiment_score"]) == ("es", NOT_INFERRED, NOT_INFERRED, 0.0)
    assert [x["label"] for x in es["entities"]] == ["FLIGHT"] and es["ticket_id"].startswith("LNG-")
    # Partitioned by the tweet's UTC day, with the batch id; latency stamps survive the trip.
    days = {t.created_at.astimezone(timezone.utc).strftime("%Y-%m-%d") for t in tweets}
    assert set(df["day"].astype(str)) == days
    if clocks_agree_across_processes():  # stamped by a Spark worker and by this process
        assert (df["processed_at"] >= df["ingested_at"]).all()

    # The same N records go to tweets.enriched for the reply service, keyed by conversation (in order per thread).
    msgs = read_topic(job_settings.kafka, job_settings.topic_enriched)
    assert sorted(EnrichedTweet.model_validate_json(m.value()).id for m in msgs) == sorted(t.id for t in tweets)
    assert sorted(m.key().decode() for m in msgs) == sorted(t.partition_key for t in tweets)
    first = EnrichedTweet.model_validate_json(msgs[0].value())
    assert first.ticket_id == expected[first.id].ticket_id


def test_malformed_records_go_to_dead_letters_with_a_reason(spark, job_settings):
    good = sample(3)
    template = json.loads(good[0].model_dump_json())
    no_text = {k: v for k, v in template.items() if k != "text"} | {"id": "1897000000000000001"}
    huge = template | {"id": "1897000000000000002", "text": "delayed again " * 80_000}  # ~1.1 MB of text
    bad = {
        "bad json": b'{"id": "1897000000000000000", "text": "my bag is',
        "missing text": json.dumps(no_text).encode(),
        "1 MB text": json.dumps(huge).encode(),
        "not UTF-8": b"\xff\xfe\x00garbage",
        "not an object": b"[1, 2, 3]",
    }
    assert len(bad["1 MB text"]) > 1_000_000
    publish(job_settings, good, raw=list(bad.values()))

    totals = run_available_now(spark, job_settings)

    df = read_enriched(job_settings.stream.parquet_dir)
    assert sorted(df["id"]) == sorted(t.id for t in good)
    assert totals.dead == len(bad)
    letters = {d.raw_bytes: d for d in dead_letters(job_settings)}
    assert len(letters) == len(bad)
    for what, value in bad.items():
        d = letters[len(value)]
        assert d.reason and d.source_topic == job_settings.topic_raw and d.offset is not None, what
        assert d.stage in ("parse", "validate"), (what, d.stage)
    assert letters[len(bad["bad json"])].stage == "parse"
    assert "text" in letters[len(bad["missing text"])].reason
    assert letters[len(bad["missing text"])].stage == "validate"
    big = letters[len(bad["1 MB text"])]
    assert "text" in big.reason and len(big.reason) < 500  # the reason does not echo the megabyte
    assert len(big.raw) <= 64 * 1024  # the original is kept, truncated
    assert letters[len(bad["not an object"])].stage == "parse"


def test_restart_from_the_checkpoint_mid_stream_gives_each_tweet_once(spark, job_settings):
    s = job_settings.model_copy(update={"max_offsets_per_trigger": 10})
    first_half, second_half = sample(50), sample(20, skip=50)
    publish(s, first_half)

    # Run 1: stop as soon as the first micro-batch is written (the next one may be half done).
    first_batch = threading.Event()
    handle = StreamJob(s, on_batch=lambda r: first_batch.set() if r.enriched else None).start(spark)
    try:
        assert first_batch.wait(180), "no micro-batch within 180 s"
    finally:
        handle.stop()
    assert not handle.active
    before = read_enriched(s.stream.parquet_dir)
    assert 10 <= len(before) < len(first_half)  # stopped mid-stream: some of the topic is still unread
    assert before["id"].is_unique

    # More tweets arrive while the job is down; run 2 resumes from run 1's checkpoint.
    publish(s, second_half)
    handle = StreamJob(s).start(spark)
    try:
        handle.process_all_available()
    finally:
        handle.stop()

    df = read_enriched(s.stream.parquet_dir)
    assert sorted(df["id"]) == sorted(t.id for t in first_half + second_half)  # every tweet exactly once
    assert dead_letters(s) == []


def test_day_partition_is_the_tweets_utc_day(spark, job_settings):
    """A tweet created just before midnight UTC lands in that day's partition, whatever the local time zone."""
    t = sample(1)[0].model_copy(update={"created_at": datetime(2025, 3, 3, 23, 59, 59, tzinfo=timezone.utc)})
    publish(job_settings, [t])
    run_available_now(spark, job_settings)
    df = read_enriched(job_settings.stream.parquet_dir)
    assert list(df["day"].astype(str)) == ["2025-03-03"]


def test_dms_travel_beside_tweets_into_parquet_once_and_a_dm_without_sender_is_dead_lettered(spark, job_settings, xapi):
    """DMs (one polled, one pushed by X's webhook and pushed twice) and tweets through the same job: each once in
    Parquet, the DMs with channel "dm" and their conversation, the tweets "public"; a DM record missing its
    sender or its conversation goes to tweets.dead with the reason (records.parse_record)."""
    from pydantic import SecretStr

    from tweetdesk.ingest.activity import ActivityReceiver
    from tweetdesk.ingest.publisher import Publisher
    from tweetdesk.records import DirectMessage

    tweets = sample(4)
    publish(job_settings, tweets)
    pushed = xapi.add_dm("Booking ref QX7Y2K, flight UA 1234 to SFO: my bag never arrived", author="kay_b")
    delivery = json.dumps(xapi.dms.activity_event(pushed)).encode()
    with_secret = job_settings.model_copy(update={"x_webhook_secret": SecretStr("cs")})
    polled = DirectMessage(id="1897000000000000500", text="my flight was cancelled, rebook me please",
                           author="lee", author_id="3000000099", created_at=datetime(2026, 3, 1, 9, tzinfo=timezone.utc),
                           dm_conversation_id="1500000000000000042-3000000099", brand="tweetdesk", lang=None)
    template = json.loads(polled.model_dump_json())
    no_sender = {k: v for k, v in template.items() if k != "author_id"} | {"id": "1897000000000000501"}
    no_conversation = template | {"id": "1897000000000000502", "dm_conversation_id": None}
    with Publisher(job_settings.kafka, progress=False) as pub:
        receiver = ActivityReceiver(with_secret, publisher=pub)
        assert receiver.receive(delivery).published == 1
        assert receiver.receive(delivery).duplicates == 1  # X delivered it twice
        pub.publish(polled, key=polled.dm_conversation_id)
        pub.publish_raw(json.dumps(no_sender), key="x")
        pub.publish_raw(json.dumps(no_conversation), key="x")

    totals = run_available_now(spark, job_settings)

    df = read_enriched(job_settings.stream.parquet_dir)
    assert sorted(df["id"]) == sorted([t.id for t in tweets] + [pushed, polled.id])  # each once
    rows = {r.id: r for r in df.itertuples()}
    kay = xapi.user_id("kay_b")
    assert rows[pushed].channel == "dm" and rows[pushed].source == "activity" and rows[pushed].author_id == kay
    assert rows[pushed].dm_conversation_id == "-".join(sorted([kay, "1500000000000000042"], key=int))
    assert rows[polled.id].channel == "dm" and rows[polled.id].dm_conversation_id == polled.dm_conversation_id
    assert {(e["label"], e["norm"]) for e in rows[pushed].entities} >= {("FLIGHT", "UA1234"), ("AIRPORT", "SFO")}
    assert rows[pushed].sentiment in {*SENTIMENTS, UNCLASSIFIABLE} and rows[pushed].topic in {*TOPICS, UNCLASSIFIABLE}
    for t in tweets:
        assert rows[t.id].channel == "public" and rows[t.id].dm_conversation_id is None
    assert totals.enriched == 6 and totals.dead == 2
    reasons = sorted(d.reason for d in dead_letters(job_settings))
    assert len(reasons) == 2 and any("author_id" in r for r in reasons) and any("dm_conversation_id" in r for r in reasons)


def test_a_checkpoint_the_topic_no_longer_matches_is_read_from_the_start(spark, job_settings):
    """The broker lost its topic (tansu keeps nothing across a restart; a real topic can be recreated): the job
    reads the new topic from its start. (The reason goes to the driver's stderr from the source's planner
    process, started by the JVM before any per-test capture, so this test cannot read it; the planning test in
    test_kafka_source.py checks the reason itself.)"""
    publish(job_settings, sample(6))
    assert run_available_now(spark, job_settings).enriched == 6

    import uuid

    from tweetdesk.kafka.client import ensure_topics

    # Same checkpoint (work_dir), another topic with fewer records: the checkpoint's offsets are past its end.
    moved = job_settings.model_copy(update={"topic_raw": f"raw-moved-{uuid.uuid4().hex[:8]}"})
    ensure_topics(moved.kafka)
    publish(moved, sample(2, skip=6))
    assert run_available_now(spark, moved).enriched == 2
    assert len(read_enriched(moved.stream.parquet_dir)) == 8
