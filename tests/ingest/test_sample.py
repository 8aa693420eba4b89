"""The shipped demo sample: valid, varied, threaded, ours (not copied from the CC BY-NC-SA data set)."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
from collections import Counter

import emoji

from tweetdesk.config import REPO_ROOT, SAMPLE_TWEETS, Settings
from tweetdesk.records import SENTIMENTS, TOPICS, Tweet

ROWS = [json.loads(line) for line in SAMPLE_TWEETS.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_size_and_validity():
    assert 300 <= len(ROWS) <= 500
    tweets = [Tweet.model_validate(r) for r in ROWS]
    assert len({t.id for t in tweets}) == len(tweets)
    assert all(re.fullmatch(r"\d{19}", t.id) for t in tweets)
    assert [t.created_at for t in tweets] == sorted(t.created_at for t in tweets)
    assert all(t.brand and len(t.text) <= 280 for t in tweets)


def test_every_topic_and_sentiment_is_covered():
    by_topic = Counter(r["expected_topic"] for r in ROWS)
    by_sent = Counter(r["expected_sentiment"] for r in ROWS)
    assert set(by_topic) == set(TOPICS) and min(by_topic.values()) >= 20
    assert set(by_sent) == set(SENTIMENTS) and min(by_sent.values()) >= 40
    pairs = Counter((r["expected_topic"], r["expected_sentiment"]) for r in ROWS)
    assert all(pairs[(t, s)] >= 3 for t in TOPICS for s in SENTIMENTS)


def test_realistic_entities_and_a_handful_of_emoji():
    texts = [r["text"] for r in ROWS]
    assert sum(bool(re.search(r"\b(UA|AA|DL|WN|B6|AS|NK|F9) ?\d{3,4}\b", t)) for t in texts) >= 40
    assert sum(bool(re.search(r"\$\d+", t)) for t in texts) >= 20
    assert sum(bool(re.search(r"\b[A-Z]{3}\b", t)) for t in texts) >= 60  # airport codes
    assert sum(bool(re.search(r"\b(?=[A-Z0-9]*[A-Z])(?=[A-Z0-9]*\d)[A-Z0-9]{6}\b", t)) for t in texts) >= 10  # PNRs
    assert 5 <= sum(emoji.emoji_count(t) > 0 for t in texts) <= 40
    assert len(set(texts)) == len(texts)
    assert any(r["lang"] != "en" for r in ROWS)


def test_threads_are_consistent_and_include_our_replies():
    by_id = {r["id"]: r for r in ROWS}
    replies = [r for r in ROWS if r.get("in_reply_to_tweet_id")]
    assert len(replies) >= 8
    for r in replies:
        parent = by_id[r["in_reply_to_tweet_id"]]  # every reply points at a tweet in the sample
        assert parent["created_at"] <= r["created_at"]
        assert r["in_reply_to_user_id"] == parent["author_id"]
        assert r["conversation_id"] == parent["conversation_id"] != r["id"]
    roots = [r for r in ROWS if not r.get("in_reply_to_tweet_id")]
    assert all(r["conversation_id"] == r["id"] for r in roots)
    ours = [r for r in ROWS if r["author"] in Settings().our_handles]
    assert 1 <= len(ours) <= 3 and all(r.get("in_reply_to_tweet_id") for r in ours)
    assert all("http" not in r["text"] for r in ours)  # replies never carry a URL (X charges $0.20 for those)
    # a customer who replies to themselves
    assert any(by_id[r["in_reply_to_tweet_id"]]["author"] == r["author"] for r in replies)


def test_the_generator_reproduces_the_shipped_file():
    spec = importlib.util.spec_from_file_location("make_sample", REPO_ROOT / "scripts" / "make_sample.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    built = [{k: v for k, v in r.items() if v is not None} for r in mod.build()]
    assert built == ROWS


def _shingles(text: str, n: int = 8) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z']+", re.sub(r"@\w+|https?://\S+", "", text.lower()))
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def test_no_text_is_copied_from_the_data_set(airline_csv):
    with open(airline_csv, newline="", encoding="utf-8") as f:
        theirs = [row["text"] for row in csv.DictReader(f)]
    ours = [r["text"] for r in ROWS]
    assert not set(ours) & set(theirs)
    seen = set().union(*(_shingles(t) for t in theirs))
    assert not [t for t in ours if _shingles(t) & seen]  # no run of 8 words in common
