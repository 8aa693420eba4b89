"""`tweetdesk evaluate`, and the evaluation that `tweetdesk train` runs on the artifact it writes.

On the test split of the manifest's seed: the shipped LSTMs (sentiment accuracy / macro-F1; topic agreement
with the mapped ``negativereason`` on the negative tweets, and with the guided LDA's labels), a TF-IDF +
logistic-regression baseline trained here on the same training split, and the teacher's figures (measured
when the version was trained: the teacher itself is not loaded outside training). Writes
``reports/metrics.json`` and the plots; neither touches ``negativereason`` except to measure.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from tweetdesk.models import labels as L
from tweetdesk.models.dataset import Split, load_dataset, split_dataset
from tweetdesk.records import SENTIMENTS, TOPICS

EARLIER_LABELS_NAME = "airline_tweets_topic_labelled.csv"
# Acceptance targets on the test split (issue 16); the model card says which hold.
TARGETS = {"sentiment_accuracy": 0.83, "sentiment_macro_f1": 0.78, "topic_macro_f1_vs_negativereason": 0.70}
BASELINE_C = (1.0, 4.0, 16.0)  # logistic regression's inverse regularisation, chosen on validation


def say(msg: str) -> None:
    """Progress for long jobs goes to stderr (figures go to stdout)."""
    print(msg, file=sys.stderr, flush=True)


def set_threads() -> int:
    """At most two torch threads, and one when the machine is already busy: with more runnable threads than
    cores, torch's worker threads spin waiting for each other (measured here at load 11 on 2 cores: a teacher
    step took 4.8 s on one thread and 23.6 s on two)."""
    import os

    import torch

    n = max(1, min(2, torch.get_num_threads()))
    if os.getloadavg()[0] > (os.cpu_count() or 1) - 1:
        n = 1
    torch.set_num_threads(n)
    return n


def clean_split(split: Split) -> dict[str, list]:
    from tqdm.auto import tqdm

    from tweetdesk.nlp.clean import clean_many

    out = {}
    for k in ("train", "val", "test"):
        texts = list(getattr(split, k)["text"])
        out[k] = []
        for i in tqdm(range(0, len(texts), 2000), desc=f"cleaning {k}", unit="chunk", file=sys.stderr, leave=False):
            out[k].extend(clean_many(texts[i : i + 2000]))
    return out


def baseline(split: Split) -> dict:
    """TF-IDF (word 1-2 grams + character 2-5 grams within words) + logistic regression on the raw training
    tweets, C chosen on validation macro-F1: the linear yardstick the LSTMs must beat."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.pipeline import make_pipeline, make_union

    say("baseline: TF-IDF + logistic regression on the training split…")
    # The features do not depend on C: made once, not once per C.
    features = make_union(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, lowercase=True),
                          TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True))
    x_train = features.fit_transform(split.train["text"])
    x_val = features.transform(split.val["text"])
    best = None
    for c in BASELINE_C:
        lr = LogisticRegression(C=c, max_iter=3000).fit(x_train, split.train["airline_sentiment"])
        f1 = f1_score(split.val["airline_sentiment"], lr.predict(x_val), average="macro")
        if best is None or f1 > best[0]:
            best = (f1, c, lr)
    f1_val, c, model = best
    pipe = make_pipeline(features, model)
    out = _cls_metrics(list(split.test["airline_sentiment"]), list(pipe.predict(split.test["text"])), list(SENTIMENTS))
    out.update(model="TF-IDF word 1-2 + char_wb 2-5, sublinear tf, min_df 2; LogisticRegression", C=c,
               val_macro_f1=float(f1_val))
    return out


def teacher_figures(split: Split, sent_test: np.ndarray, topic_test: np.ndarray, weak_test: np.ndarray,
                    reason_test: np.ndarray | None = None) -> dict:
    """The teacher's test figures from its probabilities on the test split (computed at training time), the
    weak topic targets' agreement with negativereason, and the reasons teacher's (``reason_test``)."""
    test = split.test
    neg = (test["airline_sentiment"] == "negative").to_numpy()
    sent = _cls_metrics(list(test["airline_sentiment"]), [SENTIMENTS[i] for i in sent_test.argmax(1)], list(SENTIMENTS))
    topic = L.topic_agreement(test["negativereason"][neg], [TOPICS[i] for i in topic_test[neg].argmax(1)])
    weak = L.topic_agreement(test["negativereason"][neg], [TOPICS[i] for i in weak_test[neg].argmax(1)])
    out = {"sentiment_test": sent, "topic_vs_negativereason_test": topic, "weak_targets_vs_negativereason_test": weak}
    if reason_test is not None:
        out["reasons_teacher_vs_negativereason_test"] = L.topic_agreement(
            test["negativereason"][neg], [TOPICS[i] for i in reason_test[neg].argmax(1)])
    return out


def sample_agreement(clf) -> dict:
    """The shipped sample (404 tweets written for this project, every topic and sentiment, each with the label
    its writer meant): how often the models give that label. A second yardstick, with all eight topics."""
    from tweetdesk.config import SAMPLE_TWEETS
    from tweetdesk.nlp.clean import clean_many

    rows = [json.loads(line) for line in SAMPLE_TWEETS.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if r.get("expected_topic") and r.get("expected_sentiment")]
    if not rows:
        return {"n": 0}
    preds = clf.predict_cleaned(clean_many([r["text"] for r in rows]))
    topic = _cls_metrics([r["expected_topic"] for r in rows], [p.topic for p in preds], list(TOPICS))
    sent = _cls_metrics([r["expected_sentiment"] for r in rows], [p.sentiment for p in preds], list(SENTIMENTS))
    return {"n": len(rows), "file": SAMPLE_TWEETS.name, "topic": topic, "sentiment": sent}


def evaluate_command(settings, also: dict | None = None) -> dict:
    """`tweetdesk evaluate`: the shipped (or chosen) version and the baseline on the test split. ``also``: more
    figures for the same JSON document on stdout (the agreement with the agents' corrections)."""
    from tweetdesk.models.predict import get_classifier

    set_threads()
    clf = get_classifier(settings)
    metrics = evaluate_folder(clf, settings)
    keys = ("version", "sentiment_test", "topic_vs_negativereason_test", "baseline_sentiment_test", "teacher", "targets")
    print(json.dumps({**{k: _brief(metrics.get(k)) for k in keys}, **(also or {})}, indent=1))
    return metrics


def write_reports(reports: Path, metrics: dict, history: dict) -> bool:
    """metrics.json and the plots, unless ``reports`` already holds these figures: reports/ is tracked, and a
    rerun that measures the same must leave the checkout clean (same stamp, same plots). Whether it wrote."""
    from tweetdesk.models.artifact import METRICS, read_metrics

    stored = read_metrics(reports)
    if stored and _same_figures(stored, metrics) and all((reports / png).exists() for png in PLOTS):
        say(f"figures unchanged since {stored.get('evaluated')}: reports left as they were")
        return False
    reports.mkdir(parents=True, exist_ok=True)
    (reports / METRICS).write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    write_plots(reports, metrics, history)
    return True


def _same_figures(stored: dict, metrics: dict) -> bool:
    """Everything but the ``evaluated`` stamp alike, compared as JSON (tuples and lists alike)."""
    def figures(m: dict) -> str:
        return json.dumps({k: v for k, v in m.items() if k != "evaluated"}, sort_keys=True, default=str)

    return figures(stored) == figures(json.loads(json.dumps(metrics, default=str)))


def _brief(v):
    if isinstance(v, dict):
        return {k: _brief(x) for k, x in v.items() if k not in ("confusion", "labels", "per_class_f1", "how")}
    return v


def _load_earlier(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    df = pd.read_csv(path, dtype={"tweet_id": str})
    df["topic"] = df["topic_desc"].replace({"Phone and Online Booking": "Online Booking"})
    return df[["tweet_id", "topic"]].drop_duplicates("tweet_id")


def _cls_metrics(y_true: list[str], y_pred: list[str], label_set: list[str]) -> dict:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=label_set, average="macro", zero_division=0)),
        "per_class_f1": dict(zip(label_set, map(float, f1_score(y_true, y_pred, labels=label_set, average=None, zero_division=0)))),
        "labels": label_set,
        "confusion": confusion_matrix(y_true, y_pred, labels=label_set).tolist(),
    }


def evaluate_folder(clf, settings, split: Split | None = None, cleaned: dict | None = None,
                    teacher: dict | None = None) -> dict:
    """Metrics for one artifact folder, beside the baseline and the teacher; writes reports/metrics.json and
    the PNGs; returns the metrics. ``teacher``: its figures (``teacher_figures``) when training has them, else
    they are taken from the folder's own metrics.json (measured when it was trained)."""
    seed = int(clf.manifest.get("split_seed", 42))
    data_path = Path(settings.data_path)
    split = split or split_dataset(load_dataset(data_path), seed=seed)
    cleaned = cleaned or clean_split(split)
    # The tweets as the models' cleaning rules left them (the LDA weak labels below read them too).
    cleaned = {k: [c.for_model(clf.cleaning) for c in v] for k, v in cleaned.items()}
    say("evaluating on the test split…")
    test = split.test
    preds = clf.predict_cleaned(cleaned["test"])
    # A test tweet with no words left is counted as wrong (its label is never "unclassifiable").
    sent = _cls_metrics(list(test["airline_sentiment"]), [p.sentiment for p in preds], list(SENTIMENTS))
    from tweetdesk.models.artifact import load_labeller, read_metrics

    labeller = load_labeller(clf.folder)
    weak_test, _ = labeller.weak_labels([c.tokens for c in cleaned["test"]])
    has_weak = [i for i, w in enumerate(weak_test) if w]
    topic_weak = _cls_metrics([weak_test[i] for i in has_weak], [preds[i].topic for i in has_weak], list(TOPICS))
    neg = (test["airline_sentiment"] == "negative").to_numpy()
    topic_gold = L.topic_agreement(test["negativereason"][neg], [p.topic for p, m in zip(preds, neg) if m])
    gold_rows = [i for i in np.flatnonzero(neg) if L.map_negativereason(test["negativereason"].iloc[i])]
    topic_gold["confusion"] = _cls_metrics(
        [L.eval_label(L.map_negativereason(test["negativereason"].iloc[i])) for i in gold_rows],
        [L.eval_label(preds[i].topic) for i in gold_rows], list(L.EVAL_LABELS),
    )["confusion"]
    topic_gold["labels"] = list(L.EVAL_LABELS)
    topic_gold["how"] = (
        "test-split negative tweets whose negativereason maps to a topic (Can't Tell and empty excluded); "
        "both sides collapsed with EVAL_COLLAPSE (Online Booking and Reservation Issue -> 'Online Booking / "
        "Reservation'); macro-F1 = unweighted mean F1 over the 5 EVAL_LABELS; predictions outside them are misses"
    )
    comparison = compare_with_earlier(clf, labeller, split, cleaned, data_path.parent / EARLIER_LABELS_NAME)
    if teacher is None:  # measured when the version was trained: the manifest, else its metrics.json
        teacher = (clf.manifest.get("teacher") or {}).get("figures") or (read_metrics(clf.folder) or {}).get("teacher")
    base = baseline(split)
    metrics = {
        "version": clf.version,
        "evaluated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": {"file": data_path.name, "split_seed": seed, **split.dedup, "split": split.sizes(),
                 "dedup_rule": "first row per tweet_id, then first row per normalised text (lower case, URLs removed, "
                               "whitespace collapsed), before splitting"},
        "sentiment_test": sent,
        "baseline_sentiment_test": base,
        "teacher": teacher,
        "topic_vs_weak_labels_test": topic_weak,
        "topic_vs_negativereason_test": topic_gold,
        "sample_agreement": sample_agreement(clf),
        "negativereason_mapping": L.NEGATIVEREASON_TO_TOPIC,
        "label_comparison": comparison,
        "unclassifiable_in_test": sum(p.sentiment == "unclassifiable" for p in preds),
        "targets": {
            f"sentiment_accuracy>={TARGETS['sentiment_accuracy']}": sent["accuracy"] >= TARGETS["sentiment_accuracy"],
            f"sentiment_macro_f1>={TARGETS['sentiment_macro_f1']}": sent["macro_f1"] >= TARGETS["sentiment_macro_f1"],
            f"topic_macro_f1_vs_negativereason>={TARGETS['topic_macro_f1_vs_negativereason']}":
                (topic_gold["macro_f1"] or 0) >= TARGETS["topic_macro_f1_vs_negativereason"],
        },
    }
    reports = Path(settings.reports_dir)
    write_reports(reports, metrics, clf.manifest.get("history", {}))
    say(
        f"sentiment test: accuracy {sent['accuracy']:.4f}, macro-F1 {sent['macro_f1']:.4f} (baseline "
        f"{base['accuracy']:.4f} / {base['macro_f1']:.4f}) | topic vs LDA labels: macro-F1 {topic_weak['macro_f1']:.4f} "
        f"| topic vs negativereason: macro-F1 {topic_gold['macro_f1']:.4f} (n={topic_gold['n']}) | wrote "
        f"{reports / 'metrics.json'}"
    )
    return metrics


def compare_with_earlier(clf, labeller, split: Split, cleaned: dict, earlier_path: Path) -> dict:
    """Balance and agreement with negativereason: our LDA weak labels, our topic LSTM and the earlier
    LDA file, all on the same tweets (the negative tweets present in both)."""
    earlier = _load_earlier(earlier_path)
    if earlier is None:
        return {"note": f"{earlier_path} not found: no comparison"}
    frames = []
    for k in ("train", "val", "test"):
        df = getattr(split, k)[["tweet_id", "airline_sentiment", "negativereason"]].copy()
        df["split"] = k
        df["tokens"] = [c.tokens for c in cleaned[k]]
        df["cleaned"] = cleaned[k]
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    df = df[df["airline_sentiment"] == "negative"].merge(earlier, on="tweet_id", how="inner")
    weak, _ = labeller.weak_labels(list(df["tokens"]))
    df["ours_lda"] = [w or "unclassifiable" for w in weak]
    df["ours_lstm"] = [p.topic for p in clf.predict_cleaned(list(df["cleaned"]))]

    def block(sub: pd.DataFrame) -> dict:
        return {
            name: {"balance": L.balance(sub[col]), "agreement": L.topic_agreement(sub["negativereason"], list(sub[col]))}
            for name, col in (("earlier_lda_file", "topic"), ("ours_lda_weak_labels", "ours_lda"), ("ours_topic_lstm", "ours_lstm"))
        }

    return {
        "tweets": "negative tweets in both our deduplicated data and the earlier file, joined on tweet_id",
        "all": {"n": len(df), **block(df)},
        "test_split": {"n": int((df["split"] == "test").sum()), **block(df[df["split"] == "test"])},
    }





# The plots write_plots always draws (training_curves.png too, where the manifest has a history).
PLOTS = ("confusion_sentiment.png", "confusion_topic_negativereason.png", "confusion_topic_weak_labels.png",
         "comparison_sentiment.png")


def write_plots(reports: Path, metrics: dict, history: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def confusion(m: dict, title: str, path: Path) -> None:
        cm = np.array(m["confusion"])
        labels = m["labels"]
        fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 2.5, 1.0 * len(labels) + 2))
        ax.imshow(cm, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right", fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > cm.max() / 2 else "black")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title, fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)

    s = metrics["sentiment_test"]
    confusion(s, f"Sentiment, test split (acc {s['accuracy']:.3f}, macro-F1 {s['macro_f1']:.3f})",
              reports / "confusion_sentiment.png")
    t = metrics["topic_vs_negativereason_test"]
    confusion(t, f"Topic vs mapped negativereason, test negatives (macro-F1 {t['macro_f1']:.3f})",
              reports / "confusion_topic_negativereason.png")
    w = metrics["topic_vs_weak_labels_test"]
    confusion(w, f"Topic vs LDA weak labels, test split (macro-F1 {w['macro_f1']:.3f})",
              reports / "confusion_topic_weak_labels.png")
    rows = [("shipped LSTMs", s), ("teacher (MiniLM)", (metrics.get("teacher") or {}).get("sentiment_test")),
            ("TF-IDF + LR baseline", metrics.get("baseline_sentiment_test"))]
    rows = [(name, m) for name, m in rows if m]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for j, key in enumerate(("accuracy", "macro_f1")):
        vals = [m[key] for _, m in rows]
        bars = ax.bar(np.arange(len(rows)) + (j - 0.5) * 0.38, vals, 0.38, label=key.replace("_", "-"))
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(range(len(rows)), [name for name, _ in rows], fontsize=8)
    ax.set_ylim(max(0.0, min(m[k] for _, m in rows for k in ("accuracy", "macro_f1")) - 0.1), 1.0)
    ax.set_title("Sentiment on the test split, same train/test split", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(reports / "comparison_sentiment.png", dpi=90)
    plt.close(fig)
    if history:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for name, h in history.items():
            epochs = range(1, len(h["train_loss"]) + 1)
            axes[0].plot(epochs, h["train_loss"], label=f"{name} train")
            axes[0].plot(epochs, h["val_loss"], "--", label=f"{name} val")
            axes[1].plot(epochs, h["val_macro_f1"], label=f"{name} val macro-F1")
        axes[0].set_title("loss")
        axes[1].set_title("validation macro-F1 (topic: vs weak labels)")
        for ax in axes:
            ax.set_xlabel("epoch")
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(reports / "training_curves.png", dpi=90)
        plt.close(fig)


