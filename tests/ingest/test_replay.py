"""Replay source against the real (embedded) broker: what goes in comes out on tweets.raw, exactly; malformed
input lands on tweets.dead with a reason."""

from __future__ import annotations

import csv
import itertools
import json

import pytest

from tests.fixtures.broker import read_topic, tweets_of
from tweetdesk.cli import main
from tweetdesk.config import SAMPLE_TWEETS
from tweetdesk.errors import ConfigError, InputError
from tweetdesk.ingest import SAMPLE_BAD, ingest_command
from tweetdesk.ingest.replay import Pacer, brand_of, read_records, replay, replay_records
from tweetdesk.ingest.snowflake import SnowflakeGenerator, snowflake_time
from tweetdesk.records import DeadLetter, Tweet


def _by_id(tweets):
    return {t.id: t for t in tweets}


# --- reading files -----------------------------------------------------------------------------------------------
def test_sample_file_reads_as_valid_tweets():
    recs = list(read_records(SAMPLE_TWEETS))
    assert recs and all(isinstance(r, Tweet) for r in recs)
    assert all(r.source == "replay" and r.ingested_at is None for r in recs)


def test_replay_lines_reference_tweets_as_x_records_do(tmp_path):
    """Replies, quotes (X's ``referenced_tweets`` or ``quoted_tweet_id``/``quoted_author``) come out as X's
    referenced_tweets, with the author when the file wrote the referenced tweet; mentions stay None (read from the
    text where used) unless the line gives them. A loop pass renumbers references into the file like the ids."""
    at = "2025-03-03T06:18:29Z"
    lines = [
        {"id": "100", "text": "Flights resume at 6am.", "author": "tweetdesk", "author_id": "9", "created_at": at},
        {"id": "101", "text": "@tweetdesk still stuck", "author": "kay", "author_id": "7", "created_at": at,
         "in_reply_to_tweet_id": "100", "in_reply_to_user_id": "9", "conversation_id": "100"},
        {"id": "102", "text": "so much for that", "author": "kay", "created_at": at, "quoted_tweet_id": "100"},
        {"id": "103", "text": "again", "author": "lee", "created_at": at, "mentions": ["united"],
         "referenced_tweets": [{"type": "quoted", "id": "555", "author": "tweetdesk"}]},
        {"id": "104", "text": "nope", "author": "lee", "created_at": at, "quoted_tweet_id": "not-an-id"},
        {"id": "105", "text": "and?", "author": "lee", "created_at": at,
         "referenced_tweets": [{"type": "replied_to", "id": "101"}]},
    ]
    path = tmp_path / "refs.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    recs = list(read_records(path))
    t100, t101, t102, t103, dead, t105 = recs
    assert t100.referenced_tweets == [] and t100.mentions is None
    assert [(r.type, r.id, r.author, r.author_id) for r in t101.referenced_tweets] == [("replied_to", "100", "tweetdesk", "9")]
    assert [(r.type, r.id, r.author) for r in t102.referenced_tweets] == [("quoted", "100", "tweetdesk")]
    assert [(r.type, r.id, r.author) for r in t103.referenced_tweets] == [("quoted", "555", "tweetdesk")]
    assert t103.mentions == ["united"]
    assert isinstance(dead, DeadLetter) and "line 5" in dead.reason and "id" in dead.reason
    assert t105.in_reply_to_tweet_id == "101" and t105.referenced_tweets[0].author == "kay"
    # A second (loop) pass: references into the file follow their tweets' new ids; 555 (not in the file) stays.
    second = [r for n, r in itertools.islice(replay_records(path, loop=True), 2 * len(lines)) if n == 1]
    n100, n101, n102, n103, _, n105 = second
    assert n100.id != "100" and n101.in_reply_to_tweet_id == n100.id == n101.referenced_tweets[0].id
    assert n101.conversation_id == n100.id and n102.referenced_tweets[0].id == n100.id
    assert n103.referenced_tweets[0].id == "555" and n105.referenced_tweets[0].id == n101.id == n105.in_reply_to_tweet_id


def test_bad_sample_gives_one_dead_letter_per_line_with_its_reason():
    recs = list(read_records(SAMPLE_BAD))
    lines = [ln for ln in SAMPLE_BAD.read_text(encoding="utf-8").splitlines() if ln.strip()]
    assert len(recs) == len(lines) and all(isinstance(r, DeadLetter) for r in recs)
    reasons = [r.reason for r in recs]
    assert "Invalid JSON" in reasons[0]  # truncated object
    assert "text: Field required" in reasons[1]
    assert "text is blank" in reasons[2]
    assert "id: String should match pattern" in reasons[3]  # 5.70306E+17
    assert "id: Input should be a valid string" in reasons[4] and "(+" in reasons[4]  # several wrong types
    assert "text: String should have at most 25000 characters" in reasons[5]
    assert all(r.stage == "ingest" and r.key == f"sample_bad.jsonl:{i}" for i, r in enumerate(recs, 1))
    assert recs[5].raw_bytes > 30_000 and json.loads(recs[5].raw)["author"] == "kay_b"


def test_csv_rows_with_embedded_newlines_and_malformed_rows(tmp_path):
    path = tmp_path / "tweets.csv"
    rows = [
        ["tweet_id", "airline_sentiment", "airline", "name", "text", "tweet_created"],
        ["1001", "negative", "Virgin America", "amy", "@VirginAmerica line one\nline two, with a comma",
         "2015-02-24 11:35:52 -0800"],
        ["5.70306E+17", "negative", "United", "bob", "@united spoiled id", "2015-02-24 11:35:52 -0800"],
        ["1003", "neutral", "Delta", "cat", "   ", "2015-02-24 11:35:52 -0800"],
        ["1004", "neutral", "Delta", "dan", "@Delta fine", "not a date"],
        ["1005", "positive", "", "eve", "thanks @SouthwestAir and @united", "2015-02-25 08:00:00 +0000"],
        ["1006", "positive", "US Airways", "", "@USAirways no author", "2015-02-25 08:00:00 +0000"],
    ]
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    recs = list(read_records(path))
    assert [type(r).__name__ for r in recs] == ["Tweet", "DeadLetter", "DeadLetter", "DeadLetter", "Tweet", "DeadLetter"]
    first, fifth = recs[0], recs[4]
    assert first.id == "1001" and first.text == "@VirginAmerica line one\nline two, with a comma"
    assert first.brand == "virginamerica" and first.author == "amy" and first.conversation_id == "1001"
    assert first.created_at.isoformat() == "2015-02-24T11:35:52-08:00"
    assert fifth.brand == "southwestair"  # no airline column value: the first @mention
    assert "tweets.csv line 4: id: String should match pattern" in recs[1].reason  # row 1 spans 2 lines
    assert "text is blank" in recs[2].reason
    assert "created_at" in recs[3].reason
    assert "author" in recs[5].reason
    assert recs[1].raw.startswith("5.70306E+17,negative,United,bob")


def test_missing_file_and_wrong_csv_layout_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="replay file not found"):
        list(read_records(tmp_path / "nope.jsonl"))
    bad = tmp_path / "other.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="missing columns tweet_id, text, name, tweet_created"):
        list(read_records(bad))


def test_non_utf8_lines_are_dead_lettered_not_fatal(tmp_path):
    path = tmp_path / "mixed.jsonl"
    good = json.dumps({"id": "42", "text": "@united hi", "author": "x", "created_at": "2025-03-03T10:00:00Z"})
    path.write_bytes(b'{"id": "41", "text": "caf\xe9 \xff", "author": "x", "created_at": "2025-03-03T10:00:00Z"}\n'
                     + good.encode() + b"\n")
    recs = list(read_records(path))
    assert isinstance(recs[0], DeadLetter) and "line 1" in recs[0].reason
    assert isinstance(recs[1], Tweet) and recs[1].brand == "united"


def test_brand_from_airline_column_or_first_mention():
    assert brand_of("hello", "US Airways") == "usairways"
    assert brand_of("hello", "Some New Air") == "somenewair"
    assert brand_of("so @JetBlue and @Delta", None) == "jetblue"
    assert brand_of("email me at a@b.com", None) is None


# --- pacing and ids (pure logic, fake clock) ---------------------------------------------------------------------
class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s * 1.1  # sleeps overshoot, as real ones do


def test_pacer_follows_a_fixed_schedule_without_drift():
    fc = FakeClock()
    p = Pacer(10.0, clock=fc.clock, sleep=fc.sleep)
    sent_at = []
    for _ in range(50):
        p.wait()
        sent_at.append(fc.now)
        fc.now += 0.01  # time spent producing
    # message i never leaves before t0 + i/rate, and overshoot does not accumulate
    assert all(t >= 100.0 + i / 10.0 - 1e-9 for i, t in enumerate(sent_at))
    assert sent_at[-1] - (100.0 + 49 / 10.0) < 0.02
    assert Pacer(0.0, clock=fc.clock, sleep=lambda s: pytest.fail("rate 0 never sleeps")).wait() is None


def test_snowflakes_are_unique_increasing_and_carry_their_time():
    t = [1_741_000_000.0]
    gen = SnowflakeGenerator(worker=5, clock=lambda: t[0])
    ids = [gen() for _ in range(10_000)]  # > 4096 in one millisecond: borrows the next ones
    assert len(set(ids)) == 10_000 and [int(i) for i in ids] == sorted(int(i) for i in ids)
    assert all(len(i) == 19 for i in ids)
    assert abs(snowflake_time(ids[0]).timestamp() - t[0]) < 0.001


# --- against the broker ------------------------------------------------------------------------------------------
def test_replay_jsonl_publishes_exactly_the_file(fresh_topics):
    expected = [r for r in read_records(SAMPLE_TWEETS)]
    stats = replay(fresh_topics.kafka, SAMPLE_TWEETS, progress=False)
    assert stats.ok and stats.published == stats.delivered == len(expected) and stats.dead == 0
    msgs = read_topic(fresh_topics, fresh_topics.topic_raw, len(expected))
    got = _by_id(tweets_of(msgs))
    assert len(msgs) == len(expected) == len(got)
    # keyed by conversation: a thread's tweets share a partition, so they stay in order
    assert all(m.key().decode() == Tweet.model_validate_json(m.value()).partition_key for m in msgs)
    assert len({m.key() for m in msgs}) < len(msgs)
    partition_of: dict[bytes, set[int]] = {}
    for m in msgs:
        partition_of.setdefault(m.key(), set()).add(m.partition())
    assert all(len(ps) == 1 for ps in partition_of.values())  # a conversation never spans partitions
    for e in expected:
        g = got[e.id]
        assert g.ingested_at is not None
        assert g.model_dump(exclude={"ingested_at"}) == e.model_dump(exclude={"ingested_at"})
    # per partition, messages keep file order (one key -> one partition; the producer is idempotent)
    order = {t.id: i for i, t in enumerate(expected)}
    for p in {m.partition() for m in msgs}:
        idx = [order[Tweet.model_validate_json(m.value()).id] for m in msgs if m.partition() == p]
        assert idx == sorted(idx)
    assert read_topic(fresh_topics, fresh_topics.topic_dead, 0, timeout=1.0, linger=0.3) == []


def test_replay_csv_from_the_data_set(fresh_topics, airline_csv):
    limit = 400
    expected = []
    for r in read_records(airline_csv):
        expected.append(r)
        if len(expected) == limit:
            break
    stats = replay(fresh_topics.kafka, airline_csv, limit=limit, progress=False)
    good = [r for r in expected if isinstance(r, Tweet)]
    assert stats.read == limit and stats.published == len(good) and stats.dead == limit - len(good)
    msgs = read_topic(fresh_topics, fresh_topics.topic_raw, len(good))
    got = tweets_of(msgs)
    # the data set repeats some tweet ids: compare as multisets
    assert sorted(t.id for t in got) == sorted(t.id for t in good)
    by_id = _by_id(got)
    with open(airline_csv, newline="", encoding="utf-8") as f:
        first = next(csv.DictReader(f))
    t = by_id[first["tweet_id"]]
    assert t.text == first["text"] and t.author == first["name"] and t.brand == "virginamerica"


def test_malformed_lines_go_to_dead_letters_with_reasons(fresh_topics):
    stats = replay(fresh_topics.kafka, SAMPLE_BAD, progress=False)
    n = len([ln for ln in SAMPLE_BAD.read_text(encoding="utf-8").splitlines() if ln.strip()])
    assert stats.dead == n and stats.published == 0 and stats.delivered == n
    dead = [DeadLetter.model_validate_json(m.value()) for m in read_topic(fresh_topics, fresh_topics.topic_dead, n)]
    assert len(dead) == n
    assert {d.key for d in dead} == {f"sample_bad.jsonl:{i}" for i in range(1, n + 1)}
    assert all(d.stage == "ingest" and d.reason and d.raw_bytes > 0 for d in dead)
    assert read_topic(fresh_topics, fresh_topics.topic_raw, 0, timeout=1.0, linger=0.3) == []


def test_a_one_megabyte_tweet_is_dead_lettered_with_a_truncated_copy(fresh_topics, tmp_path):
    path = tmp_path / "big.jsonl"
    ok = {"id": "7", "text": "@united fine", "author": "a", "created_at": "2025-03-03T10:00:00Z"}
    path.write_text(json.dumps(ok | {"id": "8", "text": "@united " + "x" * (1 << 20)}) + "\n" + json.dumps(ok) + "\n")
    stats = replay(fresh_topics.kafka, path, progress=False)
    assert (stats.published, stats.dead) == (1, 1) and stats.ok
    [d] = [DeadLetter.model_validate_json(m.value()) for m in read_topic(fresh_topics, fresh_topics.topic_dead, 1)]
    assert "at most 25000 characters" in d.reason and d.raw_bytes > 1 << 20 and len(d.raw) == 64 * 1024


def test_loop_gives_fresh_unique_ids_and_keeps_threads_linked(fresh_topics):
    base = [r for r in read_records(SAMPLE_TWEETS)]
    n = len(base)
    stats = replay(fresh_topics.kafka, SAMPLE_TWEETS, loop=True, limit=3 * n, progress=False)
    assert stats.published == 3 * n and stats.extra["passes"] == 3
    got = tweets_of(read_topic(fresh_topics, fresh_topics.topic_raw, 3 * n))
    assert len(got) == 3 * n and len({t.id for t in got}) == 3 * n
    originals = {t.id for t in base}
    assert sum(t.id in originals for t in got) == n  # pass 1 keeps the file's ids, later passes mint new ones
    # thread links resolve inside the pass that carries them
    by_id = _by_id(got)
    replies = [t for t in got if t.in_reply_to_tweet_id and t.in_reply_to_tweet_id in by_id]
    n_replies = sum(1 for t in base if t.in_reply_to_tweet_id)
    assert n_replies > 0 and len(replies) == 3 * n_replies
    for t in replies:
        parent = by_id[t.in_reply_to_tweet_id]
        assert (t.id in originals) == (parent.id in originals)
        assert t.conversation_id in by_id and by_id[t.conversation_id].conversation_id == t.conversation_id
    fresh = [t for t in got if t.id not in originals]
    assert all(t.created_at == snowflake_time(t.id) for t in fresh)


def test_rate_paced_replay_keeps_order_and_counts(fresh_topics):
    stats = replay(fresh_topics.kafka, SAMPLE_TWEETS, rate=200.0, limit=40, progress=False)
    assert stats.published == 40 and stats.ok
    got = tweets_of(read_topic(fresh_topics, fresh_topics.topic_raw, 40))
    file_order = [r.id for r in read_records(SAMPLE_TWEETS)][:40]
    assert sorted(got, key=lambda t: t.ingested_at) == sorted(got, key=lambda t: file_order.index(t.id))
    assert len(got) == 40


def test_cli_ingest_replay_publishes_and_reports(fresh_topics, monkeypatch, capsys):
    monkeypatch.setenv("TWEETDESK_KAFKA_BOOTSTRAP", fresh_topics.kafka_bootstrap)
    monkeypatch.setenv("TWEETDESK_TOPIC_RAW", fresh_topics.topic_raw)
    monkeypatch.setenv("TWEETDESK_TOPIC_DEAD", fresh_topics.topic_dead)
    monkeypatch.setenv("TWEETDESK_WORK_DIR", str(fresh_topics.work_dir))
    assert main(["ingest", "replay", "--limit", "25"]) == 0
    assert "published 25 tweets, 0 dead letters, 25 acknowledged" in capsys.readouterr().err
    assert len(read_topic(fresh_topics, fresh_topics.topic_raw, 25)) == 25


def test_cli_errors_are_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("TWEETDESK_KAFKA_BOOTSTRAP", raising=False)
    assert main(["ingest", "replay", "--path", str(tmp_path / "missing.csv")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("tweetdesk: error: replay file not found") and "\n" not in err
    assert main(["ingest", "replay"]) == 1
    assert "TWEETDESK_KAFKA_BOOTSTRAP" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        from tweetdesk.config import Settings

        ingest_command(Settings(kafka_bootstrap=None), "replay", None, 0.0, None, False)
