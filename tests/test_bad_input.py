"""Bad input, property-based (hypothesis): random bytes, huge texts, wrong types and unicode edge cases (RTL,
zero-width characters, emoji ZWJ sequences, combining marks, lone surrogates) into the cleaner, the classifier
(``enrich_batch``, real models), the stream job's record handling, the API — and a few through the real Spark
job. No crash anywhere; every record comes out enriched or dead-lettered with a reason.

Example counts are kept modest (the suite runs on 2 cores); the hand-picked edge cases always run.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tweetdesk.nlp.clean import clean, clean_many
from tweetdesk.records import NOT_INFERRED, SENTIMENTS, TOPICS, UNCLASSIFIABLE, DeadLetter, EnrichedTweet, Tweet
from tweetdesk.stream.transform import parse_record

FAST = hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                         HealthCheck.function_scoped_fixture])

EDGE_TEXTS = [
    "\u202e@united مرحبا، رحلتي تأخرت ثلاث ساعات",  # right-to-left override + Arabic
    "\u200fשלום, המזוודה שלי אבדה \u200e@united",  # RLM/LRM + Hebrew
    "lost\u200bmy\u200cbag\u200d\ufeff again",  # zero-width space / non-joiner / joiner, BOM
    "👨\u200d👩\u200d👧\u200d👦 stuck at ORD 🏳️\u200d🌈 👩🏽\u200d✈️ 🇺🇸🇺🏽",  # ZWJ families, flags, lone modifiers
    "Z̷̢͈a̸l̵g̶o̴ e\u0301 cafe\u0301 ﷽ ﬁ ㎏",  # combining marks, NFKC-expanding ligatures
    "\x00\x01\x1b[31m\r\n\t\x7f",  # control characters
    "\ud800 lost bag \udfff",  # lone surrogates (JSON "\\ud800" decodes to one)
    "\U0010ffff\uffff\ufffe",  # non-characters
    "😡" * 2000,
    "@a " * 3000,
    "http://t.co/x " * 1500,
    "#" * 5000 + "#DelayedAgain",
    "a" * 25_000,  # the longest text a Tweet may carry
    " \u3000\u00a0\u2028\u2029 ",  # only (unicode) whitespace
]

edge_pieces = st.sampled_from([
    "\u202e", "\u202d", "\u200f", "\u200e", "\u200b", "\u200c", "\u200d", "\ufeff", "\u0301", "\u0300",
    "👨\u200d👩\u200d👧", "🏳️\u200d🌈", "👩🏽\u200d✈️", "🇺🇸", "🇺", "🏽", "️", "\ud800", "\x00", "\n",
    "مرحبا", "שלום", "航班延误", "@united", "#LostBag", "UA 1234", "http://t.co/abc", "&amp;", "&lt;3", ":(",
])
texts = st.lists(st.one_of(edge_pieces, st.text(max_size=30)), max_size=25).map("".join)


def no_surrogates(text: str) -> str:
    """What a Tweet can hold: a lone surrogate is not text (the Tweet record refuses it: a dead letter)."""
    return text.encode("utf-8", "replace").decode("utf-8")


tweet_texts = texts.map(no_surrogates).filter(lambda t: t.strip())


# --- the cleaner ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", EDGE_TEXTS, ids=range(len(EDGE_TEXTS)))
def test_cleaner_takes_edge_cases(text):
    c = clean(text)
    assert isinstance(c.tokens, list) and all(isinstance(t, str) and t and " " not in t for t in c.tokens)
    assert not any(z in c.text for z in ("\u200b", "\u200c", "\ufeff", "\x00"))


@FAST
@given(st.lists(texts, min_size=1, max_size=8))
def test_cleaner_never_crashes_and_agrees_with_itself(batch):
    many = clean_many(batch)
    assert len(many) == len(batch)
    for text, c in zip(batch, many):
        assert c.original == text
        assert clean(text).tokens == c.tokens  # batch and single cleaning give the same answer


def test_cleaner_takes_a_text_longer_than_spacys_limit():
    c = clean("delayed again " * 80_000)  # 1.1 million characters
    assert c.tokens[:2] == ["delay", "again"]


@pytest.mark.parametrize("value", [None, 42, b"bytes", ["a"], {"text": "x"}])
def test_cleaner_refuses_non_text_with_a_type_error(value):
    with pytest.raises(TypeError):
        clean(value)


# --- the classifier (real models) ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_settings():
    from tweetdesk.config import Settings
    from tweetdesk.errors import TweetdeskError
    from tweetdesk.models.predict import resolve_version

    s = Settings()
    try:
        resolve_version(s.artifacts_dir, s.model_version)
    except TweetdeskError as e:
        pytest.skip(f"no trained model: {e}")
    return s


def as_tweets(batch: list[str]) -> list[Tweet]:
    now = datetime(2025, 3, 3, 12, tzinfo=timezone.utc)
    return [Tweet(id=str(1_895_000_000_000_000_000 + i), text=t, author="someone", created_at=now)
            for i, t in enumerate(batch)]


def check_enriched(tweets: list[Tweet], out: list[EnrichedTweet]) -> None:
    assert [e.id for e in out] == [t.id for t in tweets]
    for e in out:
        # NOT_INFERRED: a language the English models do not read (Arabic, Chinese, …), never a guessed label.
        assert e.sentiment in (*SENTIMENTS, UNCLASSIFIABLE, NOT_INFERRED)
        assert e.topic in (*TOPICS, UNCLASSIFIABLE, NOT_INFERRED)
        assert 0.0 <= e.sentiment_score <= 1.0 and 0.0 <= e.topic_score <= 1.0
        assert e.ticket_id and (e.sentiment == UNCLASSIFIABLE) == (e.topic == UNCLASSIFIABLE)
        assert (e.sentiment == NOT_INFERRED) == (e.topic == NOT_INFERRED) == (e.lang not in ("en", "und"))
        EnrichedTweet.model_validate_json(e.model_dump_json())  # survives the trip through Kafka


def test_a_lone_surrogate_is_not_a_tweet():
    with pytest.raises(ValueError):
        as_tweets(["\ud800 lost bag"])
    stage, reason = parse_record(b'{"id": "1", "text": "\\ud800 lost bag", "author": "a", '
                                 b'"created_at": "2025-03-03T12:00:00Z"}', 25_000)
    assert stage in ("parse", "validate") and reason


def test_classifier_takes_every_edge_case(model_settings):
    from tweetdesk.models.enrich import enrich_batch

    batch = [no_surrogates(t) for t in EDGE_TEXTS if t.strip()]
    tweets = as_tweets(batch)
    check_enriched(tweets, enrich_batch(tweets, model_settings))


@hsettings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(tweet_texts, min_size=1, max_size=6))
def test_classifier_never_crashes(model_settings, batch):
    from tweetdesk.models.enrich import enrich_batch

    tweets = as_tweets(batch)
    check_enriched(tweets, enrich_batch(tweets, model_settings))


def test_classify_cli_takes_huge_and_wrong_typed_rows(model_settings, tmp_path):
    """`classify --file`: a 1.1 MB text is classified (on its first million characters); a number, null and a
    list come back unclassifiable; never a crash."""
    from tweetdesk.cli import main

    rows = [{"id": "1", "text": "delayed again " * 80_000}, {"id": "2", "text": 12345}, {"id": "3", "text": None},
            {"id": "4", "text": ["lost", "bag"]}, {"id": "5", "text": "my bag is lost @united"}]
    jsonl = tmp_path / "odd.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    csv = tmp_path / "odd.csv"
    csv.write_text('tweet_id,text\n1,"' + "delayed again " * 80_000 + '"\n5,my bag is lost @united\n')
    for path, n in ((jsonl, 5), (csv, 2)):
        import contextlib
        import io

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["classify", "--file", str(path), "--json"]) == 0
        got = [json.loads(line) for line in out.getvalue().splitlines()]
        assert len(got) == n
        assert got[0]["sentiment"] in SENTIMENTS and got[-1]["sentiment"] in SENTIMENTS
        for odd in got[1:-1]:
            assert odd["sentiment"] == UNCLASSIFIABLE and odd["ticket_id"].startswith("GEN-")


# --- the stream job's record handling -------------------------------------------------------------------------

tweet_fields = st.fixed_dictionaries({}, optional={
    "id": st.one_of(st.text(max_size=40), st.integers(), st.none(), st.just("1895000000000000001")),
    "text": st.one_of(texts, st.integers(), st.none(), st.lists(st.text(max_size=5), max_size=3), st.booleans()),
    "author": st.one_of(st.text(max_size=70), st.integers(), st.just("someone")),
    "created_at": st.one_of(st.text(max_size=30), st.integers(), st.just("2025-03-03T12:00:00Z")),
    "lang": st.one_of(st.none(), st.text(max_size=5), st.integers()),
    "source": st.one_of(st.sampled_from(["replay", "x", "api", "fax"]), st.integers()),
})
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                         max_size=4), max_leaves=12)
raw_records = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    tweet_fields.map(lambda d: json.dumps(d).encode()),
    tweet_fields.map(lambda d: json.dumps(d, ensure_ascii=False).encode("utf-8", "surrogatepass")),
)


@hsettings(max_examples=300, deadline=None)
@given(raw_records)
def test_any_bytes_parse_to_a_tweet_or_a_reason(value):
    got = parse_record(value, max_text_chars=25_000)
    if isinstance(got, Tweet):
        assert got.text.strip()
    else:
        stage, reason = got
        assert stage in ("parse", "validate") and reason and len(reason) < 5000
        d = DeadLetter.of(value, reason, stage)  # and it makes a valid dead letter
        DeadLetter.model_validate_json(d.model_dump_json())


def _kafka_frame(values: list[bytes]) -> pd.DataFrame:
    return pd.DataFrame({"key": [None] * len(values), "value": values, "topic": ["raw"] * len(values),
                         "partition": [0] * len(values), "offset": list(range(len(values)))})


@hsettings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(raw_records, min_size=1, max_size=10), st.lists(tweet_texts, max_size=4))
def test_every_record_is_enriched_or_dead_lettered_with_a_reason(model_settings, bad, good_texts):
    """The stream job's per-record step (``Transformer.transform``), with the real enricher: one output row per
    input record, nothing dropped, nothing raised."""
    from tweetdesk.models.enrich import enrich_batch
    from tweetdesk.stream.schema import KIND_DEAD, KIND_ENRICHED
    from tweetdesk.stream.transform import Transformer

    good = [t.model_dump_json().encode() for t in as_tweets(good_texts)]
    values = good + bad
    rows = Transformer(model_settings).transform(_kafka_frame(values), enrich_batch)
    assert len(rows) == len(values)
    assert {r["kind"] for r in rows} <= {KIND_ENRICHED, KIND_DEAD}
    for r in rows:
        if r["kind"] == KIND_DEAD:
            d = DeadLetter.model_validate_json(r["payload"])
            assert d.reason and d.stage in ("parse", "validate", "enrich") and d.offset is not None
        else:
            EnrichedTweet.model_validate_json(r["payload"])
    enriched_ids = [json.loads(r["payload"])["id"] for r in rows if r["kind"] == KIND_ENRICHED]
    assert set(enriched_ids) >= {json.loads(g)["id"] for g in good}


def test_bad_records_through_the_real_stream_job(spark, fresh_topics, tmp_path, model_settings):
    """A handful of the nastiest records through Kafka and the real Spark job."""
    from tests.fixtures.broker import publish
    from tweetdesk.kafka.client import read_topic
    from tweetdesk.stream.job import run_available_now
    from tweetdesk.stream.sink import read_enriched

    settings = fresh_topics.model_copy(update={"work_dir": tmp_path / "work", "artifacts_dir": model_settings.artifacts_dir,
                                               "model_version": model_settings.model_version})
    good = as_tweets([no_surrogates(t) for t in EDGE_TEXTS if t.strip()])
    template = json.loads(good[0].model_dump_json())
    bad = [
        b"", b"\x00" * 50, bytes(range(256)), b"null", b"[]", b'"just a string"', b"{" * 10_000,
        json.dumps(template | {"id": 18950000000000000001234567890123456}).encode(),  # a number, and too long
        json.dumps(template | {"text": {"nested": "object"}}).encode(),
        json.dumps(template | {"text": "x" * 26_000}).encode(),
        json.dumps(template | {"created_at": "yesterday"}).encode(),
        json.dumps(template | {"text": "\ud800"}).encode(),  # a lone surrogate, escaped: valid JSON
        (json.dumps(template | {"text": "ok"})[:-1] + ', "text": 5}').encode(),  # duplicate key, last one wrong
    ]
    publish(settings, good, raw=bad)

    totals = run_available_now(spark, settings)

    df = read_enriched(settings.stream.parquet_dir, columns=["id", "sentiment", "topic"])
    letters = [DeadLetter.model_validate_json(m.value()) for m in read_topic(settings.kafka, settings.topic_dead)]
    enriched = read_topic(settings.kafka, settings.topic_enriched)
    assert totals.enriched + totals.dead == len(good) + len(bad)  # every record out, once
    assert len(df) + len(letters) == len(good) + len(bad)
    assert {t.id for t in good} <= set(df["id"])
    assert all(d.reason and d.stage in ("parse", "validate", "enrich") for d in letters)
    assert len(enriched) == len(df)


# --- the API ----------------------------------------------------------------------------------------------

API_KEY = "bad-input-admin-key-long-enough-for-rules"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """The real Flask app (API + web pages) over a real SQLite store holding one ticket."""
    from pydantic import SecretStr

    from tests.fixtures.store import enriched_tweet
    from tweetdesk.app import create_app
    from tweetdesk.config import Settings
    from tweetdesk.reply.templates import ReplyTemplates
    from tweetdesk.tickets.store import TicketStore

    work = tmp_path_factory.mktemp("api")
    settings = Settings(work_dir=work, api_key=SecretStr(API_KEY))
    store = TicketStore(settings.store.db_url)
    templates = ReplyTemplates.from_settings(settings)
    tw = enriched_tweet("1895000000000000777")
    store.add_tickets([tw], templates.render)
    app = create_app(settings, store, templates=templates)
    yield app.test_client(), tw
    store.close()


def _no_server_error(resp, what) -> None:
    assert resp.status_code < 500, (what, resp.status_code, resp.get_data(as_text=True)[:500])


@FAST
@given(st.one_of(texts, st.text(alphabet=st.characters(codec="utf-8"), max_size=60),
                 st.sampled_from(["BAG-7KQ4M2XZ-H", "bag 7kq4m2xz h", "GEN-00000000-0", "../../etc/passwd", "%00",
                                  "x" * 5000])))
@example("/0")  # quoted as %2F0: the path gains a double slash, which Flask once answered with a 308
def test_api_ticket_lookup_takes_any_id(api, raw):
    from urllib.parse import quote

    client, _ = api
    path = quote(no_surrogates(raw), safe="")
    for url in (f"/api/tickets/{path}", f"/t/{path}", f"/t?id={path}", f"/tickets/{path}"):
        r = client.get(url, headers={"X-API-Key": API_KEY})
        _no_server_error(r, url)
    r = client.get(f"/api/tickets/{path}")
    assert r.status_code in (200, 400, 404, 405) and (r.status_code == 405 or "error" in r.get_json() or
                                                     r.status_code == 200)


body_values = st.one_of(json_values, tweet_fields, st.fixed_dictionaries({
    "tweet_id": st.one_of(st.text(max_size=40), st.integers(), st.none(), st.just("1895000000000000777"),
                          st.just("١٢٣"), st.just("²³")),
    "text": st.one_of(texts.map(no_surrogates), st.integers(), st.none(), st.lists(st.integers(), max_size=2)),
}, optional={"idempotency_key": st.one_of(st.text(max_size=120), st.integers(), st.none())}))


@FAST
@given(st.one_of(body_values.map(lambda v: json.dumps(v).encode()), st.binary(max_size=200)),
       st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", None]))
def test_api_post_reply_takes_any_body(api, body, content_type):
    client, _ = api
    headers = {"X-API-Key": API_KEY}
    if content_type:
        headers["Content-Type"] = content_type
    r = client.post("/api/replies", data=body, headers=headers)
    _no_server_error(r, body[:200])
    assert r.is_json and ("error" in r.get_json() or r.status_code in (200, 202))


@FAST
@given(st.dictionaries(st.sampled_from(["status", "topic", "sentiment", "limit", "offset", "page"]),
                       st.one_of(st.text(max_size=20), st.integers(min_value=-10**20, max_value=10**20).map(str)),
                       max_size=5))
def test_api_ticket_list_takes_any_query(api, query):
    client, _ = api
    r = client.get("/api/tickets", query_string=query, headers={"X-API-Key": API_KEY})
    assert r.status_code in (200, 400), (query, r.get_data(as_text=True)[:300])


@FAST
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=300))
def test_api_key_header_takes_anything(api, key):
    client, _ = api
    for headers, can_pass in (({"X-API-Key": key}, True), ({"Authorization": f"Bearer {key}"}, True),
                              ({"Authorization": key}, False)):
        r = client.get("/api/tickets", headers=headers)
        # 429 once the wrong keys pass the guessing limit (nothing forgives them); JSON either way
        assert r.status_code in (200, 401, 403, 429) and r.is_json
        assert (r.status_code == 200) == (can_pass and key.strip() == API_KEY)
    # the throttle holds back guesses, never the right key
    assert client.get("/api/tickets", headers={"X-API-Key": API_KEY}).status_code == 200


def test_api_refuses_an_oversized_body_with_json(api):
    client, tw = api
    r = client.post("/api/replies", json={"tweet_id": tw.id, "text": "x" * 50_000}, headers={"X-API-Key": API_KEY})
    assert r.status_code == 400 and r.is_json and "too large" in r.get_json()["error"]
