"""The models: label mapping, vocabulary, save/load round trip, batching, the shipped artifacts and
their evaluation. The default run uses the shipped artifacts; training from scratch is marked slow."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tweetdesk.config import ARTIFACTS_DIR, REPO_ROOT, Settings
from tweetdesk.errors import ModelNotFoundError
from tweetdesk.models import labels as L
from tweetdesk.models.artifact import LATEST, MANIFEST
from tweetdesk.models.lstm import LSTMClassifier, LSTMConfig, Vocab, load_model, predict_proba, save_model, train_model
from tweetdesk.models.predict import Classifier, resolve_version
from tweetdesk.records import SENTIMENTS, TOPICS

# ------------------------------------------------------------------------------------------ label mapping


def test_negativereason_mapping_table():
    assert L.map_negativereason("Lost Luggage") == "Baggage Issue"
    assert L.map_negativereason("Damaged Luggage") == "Baggage Issue"
    assert L.map_negativereason("Late Flight") == "Delay and Customer Service"
    assert L.map_negativereason("Cancelled Flight") == "Reschedule and Refund"
    assert L.map_negativereason("Flight Booking Problems") == "Online Booking"
    assert L.map_negativereason("Bad Flight") == "Customer Experience"
    # no topic: excluded, empty, missing, unknown
    for reason in ("Can't Tell", "", None, float("nan"), "Something New"):
        assert L.map_negativereason(reason) is None
    assert set(L.NEGATIVEREASON_TO_TOPIC.values()) <= set(TOPICS)


def test_topic_agreement_collapses_booking_and_reservation():
    reasons = ["Flight Booking Problems", "Flight Booking Problems", "Lost Luggage", "Can't Tell", None]
    predicted = ["Reservation Issue", "Online Booking", "Baggage Issue", "Extra Charges", "Baggage Issue"]
    a = L.topic_agreement(reasons, predicted)
    assert a["n"] == 3  # Can't Tell and missing reasons are not gold
    assert a["accuracy"] == 1.0
    assert a["per_class_f1"]["Online Booking / Reservation"] == 1.0
    # a prediction with no human counterpart is a miss
    miss = L.topic_agreement(["Lost Luggage"], ["Seating Preferences"])
    assert miss["accuracy"] == 0.0 and miss["macro_f1"] == 0.0
    assert L.topic_agreement(["Can't Tell"], ["Baggage Issue"])["n"] == 0


def test_reason_f1_scores_topic_indices_as_topic_agreement_does():
    reasons = ["Flight Booking Problems", "Lost Luggage", "Late Flight", "Bad Flight", "Cancelled Flight"]
    predicted = ["Reservation Issue", "Baggage Issue", "Customer Experience", "Customer Experience", "Extra Charges"]
    gold_idx = [L.TOPIC_INDEX[L.map_negativereason(r)] for r in reasons]
    pred_idx = [L.TOPIC_INDEX[p] for p in predicted]
    f1 = L.reason_f1(gold_idx, pred_idx)
    assert f1 == pytest.approx(L.topic_agreement(reasons, predicted)["macro_f1"])
    assert 0.0 < f1 < 1.0
    # what early stopping on held-out reasons rewards: Reservation Issue for a booking problem is as good a hit as
    # Online Booking, and a fee or seat topic is a miss
    booking = [L.TOPIC_INDEX["Online Booking"]] * 2 + [L.TOPIC_INDEX["Baggage Issue"]]
    hit = L.reason_f1(booking, booking)
    assert hit == L.reason_f1(booking, [L.TOPIC_INDEX["Reservation Issue"]] * 2 + booking[2:])
    assert L.reason_f1(booking, [L.TOPIC_INDEX["Seating Preferences"]] * 2 + booking[2:]) < hit


def test_decide_topics_picks_the_family_first_then_its_member():
    labels = ["Delay", "Online Booking", "Reservation Issue", "Baggage"]
    probs = np.array([
        [0.40, 0.30, 0.28, 0.02],  # booking as a whole beats the delay: the likelier booking topic
        [0.40, 0.10, 0.28, 0.22],  # booking 0.38 < 0.40: the delay
        [0.10, 0.20, 0.60, 0.10],  # a clear member wins as by the argmax
    ])
    assert list(L.decide_topics(probs, labels)) == [0, 0, 2]  # no families: the argmax
    fam = L.decide_topics(probs, labels, [("Online Booking", "Reservation Issue")])
    assert list(fam) == [1, 0, 2]
    # families naming topics a model lacks are ignored; an empty batch is fine
    assert list(L.decide_topics(probs, labels, [("Online Booking", "Seating")])) == [0, 0, 2]
    assert L.decide_topics(np.zeros((0, 4)), labels, L.TOPIC_FAMILIES).shape == (0,)


def test_balance_measures_a_degenerate_labelling():
    even = L.balance([t for t in TOPICS for _ in range(10)])
    assert even["largest_share"] == pytest.approx(1 / 8) and even["normalised_entropy"] == pytest.approx(1.0)
    skewed = L.balance(["Reschedule and Refund"] * 71 + ["Baggage Issue"] * 29)
    assert skewed["largest_share"] == pytest.approx(0.71)
    assert skewed["smallest_count"] == 0 and skewed["normalised_entropy"] < 0.4


# -------------------------------------------------------------------------------- vocabulary, round trip


def test_vocab_encodes_unknown_empty_and_keeps_the_tail():
    v = Vocab.build([["bag", "lost"], ["bag", "late"], ["lost"]], min_freq=2)
    assert v.itos[:2] == ["<pad>", "<unk>"] and set(v.itos[2:]) == {"bag", "lost"}
    ids, lengths = v.encode([["bag", "zzz"], [], ["a", "b", "lost"]], max_len=2)
    assert ids[0] == [v.stoi["bag"], 1]
    assert ids[1] == [1]  # empty doc: one <unk> so the LSTM has a step
    assert ids[2] == [1, v.stoi["lost"]]  # the last max_len tokens
    assert lengths.tolist() == [2, 1, 2]


def _tiny_data(n: int = 240):
    rng = np.random.default_rng(0)
    words = {0: ["lost", "bag", "luggage"], 1: ["late", "delay", "hour"], 2: ["thank", "great", "crew"]}
    docs, y = [], []
    for i in range(n):
        k = i % 3
        docs.append(list(rng.choice(words[k], size=rng.integers(2, 6))) + list(rng.choice(["the", "flight", "my"], 2)))
        y.append(k)
    return docs, np.array(y)


def test_save_load_round_trip_and_batch_independence(tmp_path):
    docs, y = _tiny_data()
    vocab = Vocab.build(docs, min_freq=1)
    cfg = LSTMConfig(name="tiny", labels=["a", "b", "c"], vocab_size=len(vocab), max_len=8, embed_dim=16, hidden=8)
    model, hist = train_model(cfg, vocab, docs[:180], y[:180], docs[180:], y[180:], epochs=4, patience=2, lr=1e-2)
    assert 1 <= hist.best_epoch <= 4 and len(hist.train_loss) >= hist.best_epoch
    before = predict_proba(model, vocab, docs[180:])
    assert (before.argmax(1) == y[180:]).mean() > 0.8  # it learnt the three word groups

    save_model(model, vocab, tmp_path)
    assert (tmp_path / "tiny.pt").exists() and (tmp_path / "tiny.json").exists()
    loaded, lvocab = load_model(tmp_path, "tiny")
    assert lvocab.itos == vocab.itos and loaded.cfg == model.cfg
    after = predict_proba(loaded, lvocab, docs[180:])
    # weights are stored as float16: probabilities agree closely, decisions exactly
    assert np.abs(after - before).max() < 0.02
    assert (after.argmax(1) == before.argmax(1)).all()
    # one at a time, or all together: the same probabilities
    single = np.vstack([predict_proba(loaded, lvocab, [d]) for d in docs[180:200]])
    assert np.abs(single - after[:20]).max() < 1e-5
    assert predict_proba(loaded, lvocab, []).shape == (0, 3)

    with pytest.raises(ModelNotFoundError, match="not found"):
        load_model(tmp_path, "missing")


def test_fast_inference_follows_the_weights_and_matches_nn_lstm():
    """predict_proba's gate-table path computes what nn.LSTM computes, and rebuilds its tables when the
    weights change in place (as they do between training epochs)."""
    import torch

    torch.manual_seed(0)
    docs, _ = _tiny_data(60)
    vocab = Vocab.build(docs, min_freq=1)
    cfg = LSTMConfig(name="tiny", labels=["a", "b", "c"], vocab_size=len(vocab), max_len=5, embed_dim=12, hidden=6)
    model = LSTMClassifier(cfg)
    docs = docs + [[], ["zzz"], ["lost"] * 9]  # empty (one <unk>), unknown, truncated to max_len
    for _ in range(2):
        fast, plain = predict_proba(model, vocab, docs), predict_proba(model, vocab, docs, fast=False)
        assert np.abs(fast - plain).max() < 1e-5 and (fast.argmax(1) == plain.argmax(1)).all()
        with torch.no_grad():
            model.lstm.weight_hh_l0_reverse.mul_(-3.0)
            model.embed.weight.add_(0.5)


def test_fast_inference_matches_nn_lstm_on_the_shipped_models(airline_csv):
    """The shipped LSTMs on 500 data-set tweets: the gate-table path, nn.LSTM over equal-length rows, and the
    packed training forward agree to 1e-5, with the same decisions."""
    import csv
    import random

    import torch

    from tweetdesk.models.features import model_tokens
    from tweetdesk.models.lstm import _pad
    from tweetdesk.nlp.clean import clean_many

    with airline_csv.open(newline="", encoding="utf-8") as fh:
        texts = [row["text"] for row in csv.DictReader(fh)]
    random.Random(1).shuffle(texts)
    cleaned = [c for c in clean_many(texts[:500]) if c.all_tokens]
    clf = Classifier(_shipped())
    for model, vocab in [*clf.sentiment, *clf.topic]:
        docs = [model_tokens(c, model.cfg.tokens) for c in cleaned]
        fast = predict_proba(model, vocab, docs, batch_size=64)
        plain = predict_proba(model, vocab, docs, fast=False)
        ids, lengths = vocab.encode(docs, model.cfg.max_len)
        with torch.inference_mode():
            packed = torch.softmax(model(_pad(ids), torch.from_numpy(lengths)), dim=1).numpy()
        for other in (plain, packed):
            assert np.abs(fast - other).max() < 1e-5, model.cfg.name
            assert (fast.argmax(1) == other.argmax(1)).all(), model.cfg.name


def test_resolve_version(tmp_path):
    with pytest.raises(ModelNotFoundError, match="tweetdesk train"):
        resolve_version(tmp_path)
    for name in ("2026-01-01-0000", "2026-02-01-0000"):
        (tmp_path / name).mkdir()
        (tmp_path / name / MANIFEST).write_text("{}")
    assert resolve_version(tmp_path).name == "2026-02-01-0000"  # newest without a LATEST pointer
    (tmp_path / LATEST).write_text("2026-01-01-0000\n")
    assert resolve_version(tmp_path).name == "2026-01-01-0000"
    with pytest.raises(ModelNotFoundError, match="available: 2026-01-01-0000, 2026-02-01-0000"):
        resolve_version(tmp_path, "nope")


# ---------------------------------------------------------------------------------- shipped artifacts


def _shipped():
    return resolve_version(ARTIFACTS_DIR)


def test_shipped_artifacts_are_complete_and_small():
    folder = _shipped()
    manifest = json.loads((folder / MANIFEST).read_text())
    for name in manifest["sentiment"] + manifest["topic"]:
        assert (folder / f"{name}.pt").exists() and (folder / f"{name}.json").exists()
    for f in ("MODEL_CARD.md", "metrics.json", "topic_mapping.toml", "lda/lda.gensim", "lda/dictionary.gensim"):
        assert (folder / f).exists(), f
    assert manifest["labels"] == {"sentiment": list(SENTIMENTS), "topic": list(TOPICS)}
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size <= 20 * 1024 * 1024
    card = (folder / "MODEL_CARD.md").read_text()
    for words in ("## Data", "Split", "accuracy", "macro-F1", "negativereason", manifest["version"]):
        assert words in card


def test_shipped_classifier_loads_once_and_handles_empty_text():
    from tweetdesk.models.predict import get_classifier
    from tweetdesk.nlp.clean import clean_many

    settings = Settings()
    clf = get_classifier(settings)
    assert get_classifier(settings) is clf  # cached per process
    preds = clf.predict_cleaned(clean_many(["@united lost my bag at the carousel", "@united https://t.co/x", ""]))
    assert preds[0].sentiment == "negative" and preds[0].topic == "Baggage Issue"
    for p in preds[1:]:
        assert (p.sentiment, p.sentiment_score, p.topic, p.topic_score) == ("unclassifiable", 0.0, "unclassifiable", 0.0)


def test_shipped_classifier_decides_topics_as_its_manifest_says():
    from tweetdesk.models.predict import Classifier
    from tweetdesk.nlp.clean import clean_many

    clf = Classifier(_shipped())
    assert clf.topic_families == [list(f) for f in L.TOPIC_FAMILIES]
    texts = ["@united cant change my reservation online, the site keeps failing", "@delta booked the wrong date",
             "@united delayed 3 hours and nobody at the desk helps", "@jetblue my seat was broken"]
    cleaned = clean_many(texts)
    _, pt = clf.proba(cleaned)
    expected = L.decide_topics(pt, clf.topic_labels, clf.topic_families)
    preds = clf.predict_cleaned(cleaned)
    assert [p.topic for p in preds] == [clf.topic_labels[i] for i in expected]
    assert [p.topic_score for p in preds] == pytest.approx([float(pt[k, i]) for k, i in enumerate(expected)])


def test_evaluate_reproduces_the_shipped_metrics(airline_csv, tmp_path):
    """`tweetdesk evaluate` on the shipped models gives the figures written at training time, and
    writes metrics.json plus the plots."""
    from tweetdesk.models.evaluate import TARGETS, evaluate_command

    settings = Settings(data_path=airline_csv, reports_dir=tmp_path)
    metrics = evaluate_command(settings)
    shipped = json.loads((_shipped() / "metrics.json").read_text())
    for key in ("accuracy", "macro_f1"):
        assert metrics["sentiment_test"][key] == pytest.approx(shipped["sentiment_test"][key], abs=2e-3)
    assert metrics["topic_vs_negativereason_test"]["macro_f1"] == pytest.approx(
        shipped["topic_vs_negativereason_test"]["macro_f1"], abs=5e-3
    )
    assert metrics["sentiment_test"]["n"] == metrics["data"]["split"]["test"]
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert set(written["targets"]) == {f"{k}>={v}" for k, v in TARGETS.items()}
    # the linear baseline, trained on the same training split, is measured beside the LSTMs
    base = written["baseline_sentiment_test"]
    assert base["n"] == metrics["sentiment_test"]["n"] and 0.7 < base["accuracy"] < 0.9
    for png in ("confusion_sentiment.png", "confusion_topic_negativereason.png", "training_curves.png",
                "comparison_sentiment.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the LDA comparison: ours far better balanced than the earlier file, on the same tweets
    cmp = written["label_comparison"]
    if "all" in cmp:
        earlier, ours = cmp["all"]["earlier_lda_file"], cmp["all"]["ours_lda_weak_labels"]
        assert ours["balance"]["largest_share"] < earlier["balance"]["largest_share"]
        assert ours["agreement"]["macro_f1"] > earlier["agreement"]["macro_f1"]


def test_reports_are_rewritten_only_when_their_figures_change(tmp_path):
    """reports/ is tracked: evaluating again with the same figures (only the stamp differs) leaves every file as
    it was, so `tweetdesk evaluate` twice leaves `git status` clean; a changed figure rewrites them."""
    from tweetdesk.models.evaluate import write_reports

    metrics = json.loads((REPO_ROOT / "reports" / "metrics.json").read_text())
    history = {}
    assert write_reports(tmp_path, metrics, history)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    assert write_reports(tmp_path, {**metrics, "evaluated": "2031-01-01T00:00:00+00:00"}, history) is False
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()} == before
    changed = json.loads(json.dumps(metrics))
    changed["sentiment_test"]["accuracy"] += 0.01
    assert write_reports(tmp_path, changed, history)
    assert json.loads((tmp_path / "metrics.json").read_text())["sentiment_test"] == changed["sentiment_test"]


def test_train_reports_missing_data_in_one_line(tmp_path, capsys):
    from tweetdesk.cli import main

    rc = main(["train", "--data", str(tmp_path / "absent.csv")])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("tweetdesk: error: data file") and err.count("\n") == 1


@pytest.mark.slow
def test_lda_command_prints_top_words_per_topic(airline_csv, capsys):
    from tweetdesk.models.lda import lda_command, load_mapping

    lda_command(Settings(data_path=airline_csv))
    out = capsys.readouterr().out
    mapping = load_mapping()
    for t in mapping.topics:
        assert f"{t.id:>3}  {t.name}" in out
    assert "macro-F1" in out and "weak labels on the training split" in out


def test_models_read_tweets_as_the_cleaning_rules_they_were_trained_on_left_them(tmp_path):
    """Cleaning rules 2 fixed lemma slips ("does" -> "doe", booking codes -> "qdraf"). A version reads tweets as
    the rules it learned left them (model.json "cleaning", absent = 1): the shipped one learned rules 2; the same
    weights recorded as a rules-1 version read what rules 1 left."""
    import dataclasses
    import shutil

    from tweetdesk.models.predict import get_classifier
    from tweetdesk.nlp.clean import CLEANING_VERSION, clean_many

    clf = get_classifier(Settings())
    assert clf.cleaning == CLEANING_VERSION == 2 and clf.manifest["cleaning"] == 2
    c = clean_many(["@united why does my booking QDRAF5 show UA938 as cancelled? number please"])[0]
    assert c.v1 is not None and "doe" in c.v1.all_tokens and "doe" not in c.all_tokens
    for got, want in zip(clf.proba([c]), clf.proba([dataclasses.replace(c, v1=None)])):
        np.testing.assert_array_equal(got, want)  # the shipped version reads rules 2

    old = tmp_path / "rules1"
    shutil.copytree(clf.folder, old)
    manifest = json.loads((old / MANIFEST).read_text())
    del manifest["cleaning"]
    (old / MANIFEST).write_text(json.dumps(manifest))
    clf1 = Classifier(old)
    assert clf1.cleaning == 1
    for got, want, other in zip(clf1.proba([c]), clf.proba([c.v1]), clf.proba([c])):
        np.testing.assert_array_equal(got, want)
        assert not np.allclose(got, other)  # the difference is real: reading rules 1 changes the output
