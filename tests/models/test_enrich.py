"""enrich_batch and `tweetdesk classify`, with the real shipped models and the real spaCy pipeline."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from tweetdesk.cli import main
from tweetdesk.config import Settings
from tweetdesk.errors import InputError
from tweetdesk.models.classify import read_input
from tweetdesk.models.enrich import enrich_batch
from tweetdesk.records import SENTIMENTS, TOPICS, EnrichedTweet, Tweet
from tweetdesk.tickets.ids import parse_ticket_id

SETTINGS = Settings()  # the environment's, as the CLI would read them

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
LOST_BAG = "@united you lost my bag on UA 1234 from ORD, nobody at baggage claim can tell me where it is"
THANKS = "@SouthwestAir thank you so much, the crew was wonderful and we landed early. Love it!"


def _tweet(i: int, text: str) -> Tweet:
    return Tweet(id=str(1000 + i), text=text, author="someone", created_at=NOW, brand="united")


def test_unambiguous_tweets_with_the_shipped_models():
    out = enrich_batch([_tweet(1, LOST_BAG), _tweet(2, THANKS)], SETTINGS)
    bag, thanks = out
    assert isinstance(bag, EnrichedTweet)
    assert bag.sentiment == "negative" and bag.topic == "Baggage Issue"
    assert bag.ticket_id.startswith("BAG-") and parse_ticket_id(bag.ticket_id)
    assert {"FLIGHT", "AIRPORT"} <= {e.label for e in bag.entities}
    assert thanks.sentiment == "positive"
    for r in out:
        assert 0.0 < r.sentiment_score <= 1.0 and 0.0 < r.topic_score <= 1.0
        assert r.model_version and r.clean_text and r.author == "someone" and r.brand == "united"


def test_batch_keeps_order_and_is_independent_of_batching():
    texts = [LOST_BAG, THANKS, "@delta flight delayed 3 hours and no one at the gate", "@JetBlue can I change my seat?",
             "@united refund my cancelled flight please", "@AmericanAir your website keeps crashing when I book"]
    tweets = [_tweet(i, t) for i, t in enumerate(texts)]
    together = enrich_batch(tweets, SETTINGS)
    assert [r.id for r in together] == [t.id for t in tweets]
    alone = [enrich_batch([t], SETTINGS)[0] for t in tweets]
    for a, b in zip(together, alone):
        assert (a.sentiment, a.topic, a.ticket_id) == (b.sentiment, b.topic, b.ticket_id)
        assert a.sentiment_score == pytest.approx(b.sentiment_score, abs=1e-5)
        assert a.topic_score == pytest.approx(b.topic_score, abs=1e-5)
    assert all(r.sentiment in SENTIMENTS and r.topic in TOPICS for r in together)
    assert enrich_batch([], SETTINGS) == []


def test_unclassifiable_tweets_get_a_documented_result():
    # nothing left after cleaning: only a mention, a link, numbers, punctuation
    out = enrich_batch([_tweet(1, "@united"), _tweet(2, "@united https://t.co/abc 123 !!!"), _tweet(3, LOST_BAG)],
                       SETTINGS)
    for r in out[:2]:
        assert (r.sentiment, r.sentiment_score, r.topic, r.topic_score) == ("unclassifiable", 0.0, "unclassifiable", 0.0)
        assert r.ticket_id.startswith("GEN-")
    assert out[2].topic == "Baggage Issue"  # a bad neighbour does not spoil the batch


def test_enrich_batch_pickles_by_reference():
    """Spark ships the function to its Python workers: it must pickle as a module-level reference,
    and loading it must not need the models."""
    assert pickle.loads(pickle.dumps(enrich_batch)) is enrich_batch
    code = "import sys, tweetdesk.models.enrich; print('tweetdesk.models.predict' in sys.modules or 'torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "False"  # importing the module loads nothing heavy


# ---------------------------------------------------------------------------------------- classify CLI


def test_classify_text(capsys):
    assert main(["classify", LOST_BAG]) == 0
    out = capsys.readouterr().out
    assert "sentiment: negative" in out and "topic:     Baggage Issue" in out
    assert "ticket:    BAG-" in out and "UA 1234 (FLIGHT)" in out


def test_classify_blank_text_is_unclassifiable(capsys):
    assert main(["classify", "   "]) == 0
    assert "unclassifiable" in capsys.readouterr().out


def test_classify_csv_file_json_in_input_order(tmp_path, capsys):
    f = tmp_path / "in.csv"
    f.write_text(
        "tweet_id,airline,text\n"
        f'570306133677760513,United,"{LOST_BAG}"\n'
        f'570301130888122368,Southwest,"{THANKS}"\n'
        "570301083672813571,Delta,\n"
        '570301031407624196,Delta,"@united"\n',
        encoding="utf-8",
    )
    assert main(["classify", "--file", str(f), "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["tweet_id"] for r in rows] == ["570306133677760513", "570301130888122368", "570301083672813571",
                                             "570301031407624196"]
    for r in rows:
        assert {"tweet_id", "text", "sentiment", "sentiment_score", "topic", "topic_score", "entities"} <= set(r)
    assert (rows[0]["sentiment"], rows[0]["topic"]) == ("negative", "Baggage Issue")
    assert rows[1]["sentiment"] == "positive"
    assert rows[2]["sentiment"] == rows[3]["sentiment"] == "unclassifiable"


def test_classify_jsonl_with_non_text_values(tmp_path, capsys):
    f = tmp_path / "in.jsonl"
    lines = [{"id": "1", "text": LOST_BAG}, {"id": 2, "text": 12345}, {"id": "3", "text": None},
             {"text": ["not", "text"]}, {"id": "5", "text": THANKS}]
    f.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n", encoding="utf-8")
    assert main(["classify", "--file", str(f), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["tweet_id"] for r in rows[:3]] == ["1", "2", "3"] and rows[3]["tweet_id"].isdigit()
    assert [r["sentiment"] for r in rows] == ["negative", "unclassifiable", "unclassifiable", "unclassifiable",
                                              "positive"]


def test_classify_bad_input_is_one_readable_line(tmp_path, capsys):
    cases = {
        "missing": (tmp_path / "absent.csv", "not found"),
        "no text column": (tmp_path / "cols.csv", "no 'text' column"),
        "bad json": (tmp_path / "bad.jsonl", "not valid JSON"),
        "folder": (tmp_path, "is a folder"),
    }
    (tmp_path / "cols.csv").write_text("tweet_id,body\n1,hello\n")
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{broken\n')
    for name, (path, words) in cases.items():
        assert main(["classify", "--file", str(path), "--json"]) == 1, name
        err = capsys.readouterr().err
        assert err.startswith("tweetdesk: error:") and words in err and err.count("\n") == 1, (name, err)
    assert main(["classify"]) == 1
    assert "nothing to classify" in capsys.readouterr().err


def test_read_input_reads_the_data_set_format(airline_csv):
    rows = read_input(airline_csv)
    assert len(rows) == 14640 and rows[0][0].isdigit() and isinstance(rows[0][1], str)
    with pytest.raises(InputError):
        read_input(airline_csv.parent / "no-such-file.csv")


def test_classify_cli_process_progress_on_stderr(tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_text("\n".join(json.dumps({"id": str(i), "text": t}) for i, t in enumerate([LOST_BAG, THANKS] * 5)))
    r = subprocess.run([sys.executable, "-m", "tweetdesk.cli", "classify", "--file", str(f), "--json"],
                       capture_output=True, text=True, timeout=300, env={**os.environ})
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip().splitlines()) == 10
    assert "classifying" in r.stderr and "10/10" in r.stderr
