"""`tweetdesk train`: a MiniLM teacher, and the LSTMs distilled from it.

1. load + deduplicate + split the data set (seeded) -> clean;
2. guided LDA on the training split's complaints (the reviewed seed words) -> the LDA's topic posterior;
3. the teacher (``distil.teach``, training only): weak topic targets = the LDA posterior + the pretrained
   encoder's similarity to the reviewed topic descriptions; MiniLM fine-tuned on the human sentiment labels
   and those targets (epochs chosen on validation); it then labels the training tweets, augmented copies of
   them (Tang et al. 2019) and the earlier labelling file's other tweets;
4. the students: sentiment BiLSTMs (an ensemble of seeds) on the teacher's soft labels together with the
   human labels; the topic BiLSTM on the teacher's topic probabilities together with the weak targets;
   early stopping on the validation split (human sentiment labels; for topics the teacher's + weak targets,
   never ``negativereason``);
5. artifact folder (LSTMs as float16, the LDA, the mapping, manifest, metrics, model card) -> LATEST; the
   evaluation (``evaluate.py``: LSTMs, teacher and a TF-IDF baseline on the same test split) -> reports/.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from tweetdesk.errors import TweetdeskError
from tweetdesk.models import labels as L
from tweetdesk.models.augment import AugmentConfig
from tweetdesk.models.dataset import load_dataset, split_dataset
from tweetdesk.models.evaluate import EARLIER_LABELS_NAME, clean_split, evaluate_folder, say, set_threads, teacher_figures
from tweetdesk.models.features import model_tokens
from tweetdesk.models.teacher import TeacherConfig
from tweetdesk.records import SENTIMENTS, TOPICS

# Students. Sizes keep the three LSTMs >= 10,000 tweets/s on one thread (benchmarks/classify.py).
SENTIMENT_CFG = dict(max_len=40, embed_dim=100, hidden=64, dropout=0.5, embed_dropout=0.3, tokens="all_tokens")
TOPIC_CFG = dict(max_len=30, embed_dim=100, hidden=64, dropout=0.5, embed_dropout=0.3, tokens="tokens")
SENTIMENT_SEEDS = 1  # ensemble members (different seeds), probabilities averaged. Distilled, two scored as one on
# validation (0.825 / 0.780 vs 0.826 / 0.779 and 0.826 / 0.784): one keeps enrich_batch above 3,000 tweets/s
SENTIMENT_CLASS_WEIGHT_POWER = 0.3  # loss weight per class = (inverse frequency) ** this
SOFT_WEIGHT = 0.5  # a labelled training tweet's loss: this x cross-entropy vs the teacher + the rest x vs its label
TOPIC_TEACHER_SHARE = 0.5  # a training tweet's topic target: this x the teacher's + the rest x the weak target
TOPIC_LDA_WEIGHT = 0.0  # inference: topic probabilities = (1 - w) x LSTM + w x the LDA posterior (renormalised).
# Validation macro-F1 vs negativereason of the distilled topic LSTM: 0.649 (w 0), 0.647 (0.3), 0.627 (0.5): the
# LSTM learnt the LDA's half of its targets already, so the LDA is no longer run at inference
EMBED_FROM_ENCODER = True  # start the LSTMs' word embeddings from the fine-tuned teacher's word vectors. Validation
# accuracy / macro-F1 of one sentiment LSTM: distilled, 0.828 / 0.784 (these) vs 0.826 / 0.779 (the pretrained
# encoder's); on the human labels alone, 0.828 / 0.775 (the pretrained encoder's) vs 0.80 / 0.75 (random)
LR = 1e-3
STUDENT_BATCH = 128  # four times the training split per epoch with the copies: larger steps, fewer of them
STUDENT_PATIENCE = 2  # epochs without a better validation score before stopping
TEACHER = TeacherConfig()
AUGMENT = AugmentConfig()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def train_command(
    settings, epochs: int = 20, seed: int = 42, version: str | None = None, teacher_epochs: int | None = None,
    copies: int | None = None, reuse_teacher: str | None = None, teacher_max_train: int | None = None,
) -> Path:
    """Train and write a new artifact version; returns its folder. ``reuse_teacher`` names an earlier
    version whose teacher lessons (in ``<work_dir>/teacher/``) are reused instead of fine-tuning again
    (same data and seed required). ``teacher_epochs``/``copies``/``teacher_max_train`` shrink the teacher's
    work (tests)."""
    import torch

    from tweetdesk.models.distil import Lessons, teach, teacher_folder
    from tweetdesk.models.lda import MAPPING_FILE, fit_lda, load_mapping
    from tweetdesk.models.lstm import LSTMConfig, Vocab, save_model, train_model
    from tweetdesk.models.predict import LATEST, MANIFEST, Classifier

    threads = set_threads()
    load_start = round(os.getloadavg()[0], 1)
    started = time.monotonic()
    data_path = Path(settings.data_path)
    split = split_dataset(load_dataset(data_path), seed=seed)
    from tweetdesk.models.teacher import encoder_path

    encoder_path()  # without the train extra: one readable line now, not after the LDA
    sha = _sha256(data_path)
    version = version or datetime.now(timezone.utc).strftime("%Y-%m-%d-%H%M")
    folder = Path(settings.artifacts_dir) / version
    if (folder / MANIFEST).exists():
        raise TweetdeskError(f"model version '{version}' already exists in {folder.parent}: pick another --version")
    lessons = None
    if reuse_teacher:
        lessons = Lessons.load(teacher_folder(settings, reuse_teacher))
        if lessons.info.get("seed") != seed or lessons.info.get("data_sha256") != sha:
            raise TweetdeskError(f"--reuse-teacher {reuse_teacher}: its lessons were made from other data or another "
                                 f"seed (seed {lessons.info.get('seed')}, not {seed})")
    say(f"torch threads: {threads} (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    say(f"data {data_path}: {split.dedup['rows']} rows, {split.dedup['unique']} after dedup; split {split.sizes()}")
    cleaned = clean_split(split)

    # 1. guided LDA on the training split's complaints (the human sentiment label, not negativereason): praise
    # and chit-chat would otherwise form themes of their own and pull complaints ("thanks for nothing") in.
    mapping = load_mapping()
    lda_docs = [c.tokens for c, s in zip(cleaned["train"], split.train["airline_sentiment"]) if s == "negative"]
    say(f"fitting guided LDA ({mapping.n_topics} topics, mapping version {mapping.version}) on {len(lda_docs)} "
        f"negative training tweets…")
    labeller = fit_lda(lda_docs, mapping, seed=seed)
    for k, name, words in labeller.top_words(10):
        say(f"  LDA {k:>2} {name or '(unmapped)':<28} {' '.join(words)}")

    # 2. the teacher and its lessons
    if lessons is None:
        lda_probs = {k: labeller.name_probs([c.tokens for c in cleaned[k]], fixed=True) for k in ("train", "val", "test")}
        t_cfg = TeacherConfig(**{**TEACHER.__dict__, **({"max_epochs": teacher_epochs} if teacher_epochs else {}),
                                 **({"max_train": teacher_max_train} if teacher_max_train else {})})
        a_cfg = AugmentConfig(**{**AUGMENT.__dict__, **({"copies": copies} if copies is not None else {})})
        lessons, teacher = teach(settings, split, labeller, seed, t_cfg, a_cfg, data_path.parent / EARLIER_LABELS_NAME,
                                 lda_probs)
        lessons.info.update(data_sha256=sha, version=version)
        tdir = teacher_folder(settings, version)
        teacher.save(tdir)
        lessons.save(tdir)
        say(f"teacher and its lessons saved in {tdir} ({lessons.info['seconds']:.0f} s)")
    else:
        from tweetdesk.models.teacher import Teacher

        teacher = Teacher.load(teacher_folder(settings, reuse_teacher)) if EMBED_FROM_ENCODER else None
    teacher_from = lessons.info.get("version", version)

    # 3. the students
    student_started = time.monotonic()
    aug_clean = _clean_texts(lessons.aug_texts, "augmented copies")
    extra_clean = _clean_texts(lessons.extra_texts, "earlier file's tweets")
    folder.mkdir(parents=True, exist_ok=True)
    histories: dict[str, dict] = {}

    def docs_of(items, field: str) -> tuple[list[list[str]], np.ndarray]:
        docs = [model_tokens(c, field) for c in items]
        keep = np.array([bool(d) for d in docs], dtype=bool)
        return [d for d in docs if d], keep

    def pool(field: str) -> tuple[list[list[str]], np.ndarray, np.ndarray]:
        """Training docs (the training split's, with <unk> for an empty one, then the augmented and the
        earlier file's, empty ones dropped) and the keep masks of the last two."""
        train_docs = [model_tokens(c, field) or ["<unk>"] for c in cleaned["train"]]
        aug_docs, keep_aug = docs_of(aug_clean, field)
        extra_docs, keep_extra = docs_of(extra_clean, field)
        return train_docs + aug_docs + extra_docs, keep_aug, keep_extra

    # sentiment: human label + teacher's soft label on the training split; the teacher's alone elsewhere
    s_docs, keep_aug, keep_extra = pool("all_tokens")
    n_tr = len(split.train)
    y_train = split.train["airline_sentiment"].map(L.SENTIMENT_INDEX).to_numpy()
    y_val = split.val["airline_sentiment"].map(L.SENTIMENT_INDEX).to_numpy()
    n_more = int(keep_aug.sum() + keep_extra.sum())
    s_y = np.concatenate([y_train, np.full(n_more, -1)])
    s_soft = np.concatenate([lessons["sent_train"], lessons["sent_aug"][keep_aug], lessons["sent_extra"][keep_extra]])
    # crowd agreement as a sample weight: tweets the annotators disagreed on teach less
    conf = split.train["airline_sentiment_confidence"].astype(float).fillna(1.0).to_numpy()
    s_w = np.concatenate([conf, np.ones(n_more)])
    s_val = [model_tokens(c, "all_tokens") or ["<unk>"] for c in cleaned["val"]]
    vocab = Vocab.build(s_docs[:n_tr] + s_docs[n_tr + int(keep_aug.sum()):])  # not the copies' swapped-in words
    say(f"students learn from {n_tr} training tweets + {int(keep_aug.sum())} augmented copies + "
        f"{int(keep_extra.sum())} tweets of the earlier file")
    s_init = _word_vectors(vocab, SENTIMENT_CFG["embed_dim"], teacher)
    sentiment_members = []
    for i in range(SENTIMENT_SEEDS):
        name = f"sentiment_{i}"
        cfg = LSTMConfig(name=name, labels=list(SENTIMENTS), vocab_size=len(vocab), **SENTIMENT_CFG)
        model, hist = train_model(cfg, vocab, s_docs, s_y, s_val, y_val, sample_weight=s_w, epochs=epochs,
                                  seed=seed + i, lr=LR, class_weight_power=SENTIMENT_CLASS_WEIGHT_POWER,
                                  soft_targets=s_soft, soft_weight=SOFT_WEIGHT, init_embeddings=s_init,
                                  batch_size=STUDENT_BATCH, patience=STUDENT_PATIENCE, desc=name)
        save_model(model, vocab, folder)
        sentiment_members.append(name)
        histories[name] = hist.__dict__

    # topic: the teacher's topic probabilities mixed with the weak targets (soft targets only)
    t_docs, keep_aug_t, keep_extra_t = pool("tokens")
    share = TOPIC_TEACHER_SHARE
    t_soft = np.concatenate([share * lessons["topic_train"] + (1 - share) * lessons["weak_train"],
                             lessons["topic_aug"][keep_aug_t], lessons["topic_extra"][keep_extra_t]])
    t_val_docs = [model_tokens(c, "tokens") or ["<unk>"] for c in cleaned["val"]]
    t_val_y = (share * lessons["topic_val"] + (1 - share) * lessons["weak_val"]).argmax(1)
    t_vocab = Vocab.build(t_docs[:n_tr] + t_docs[n_tr + int(keep_aug_t.sum()):])
    cfg_t = LSTMConfig(name="topic_0", labels=list(TOPICS), vocab_size=len(t_vocab), **TOPIC_CFG)
    tmodel, thist = train_model(cfg_t, t_vocab, t_docs, np.full(len(t_docs), -1), t_val_docs, t_val_y,
                                epochs=epochs, seed=seed, lr=LR, soft_targets=t_soft, batch_size=STUDENT_BATCH,
                                patience=STUDENT_PATIENCE,
                                # the pretrained encoder's vectors: validation macro-F1 vs negativereason 0.649,
                                # the fine-tuned teacher's 0.631 (its encoder also learnt the noisy weak targets)
                                init_embeddings=_word_vectors(t_vocab, TOPIC_CFG["embed_dim"], None), desc="topic_0")
    save_model(tmodel, t_vocab, folder)
    histories["topic_0"] = thist.__dict__
    student_seconds = round(time.monotonic() - student_started, 1)

    # 4. the LDA and its mapping travel with the models (inference blends the LDA in; evaluate re-labels)
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
        "data": {"file": data_path.name, "sha256": sha, **split.dedup, "split": split.sizes()},
        "topic_mapping_version": mapping.version,
        "teacher": {**{k: v for k, v in lessons.info.items() if k not in ("data_sha256",)}, "from_version": teacher_from},
        "distillation": {
            "training_tweets": n_tr, "augmented_copies": int(keep_aug.sum()),
            "earlier_file_tweets": int(keep_extra.sum()), "soft_weight": SOFT_WEIGHT,
            "topic_teacher_share": TOPIC_TEACHER_SHARE,
        },
        "lda_topics": [{"id": k, "name": n, "top_words": w} for k, n, w in labeller.top_words(12)],
        "hyperparameters": {"sentiment": SENTIMENT_CFG, "topic": TOPIC_CFG, "lr": LR, "max_epochs": epochs,
                            "batch_size": STUDENT_BATCH, "patience": STUDENT_PATIENCE,
                            "sentiment_members": len(sentiment_members),
                            "sentiment_class_weight_power": SENTIMENT_CLASS_WEIGHT_POWER,
                            "embeddings_from_encoder": EMBED_FROM_ENCODER},
        "lda_fitted_on": f"{len(lda_docs)} negative training tweets",
        "student_seconds": student_seconds,
        "training_seconds": round(time.monotonic() - started, 1),
        "history": histories,
        "torch": torch.__version__,
        "torch_threads": threads,
        "load_average": {"start": load_start, "end": round(os.getloadavg()[0], 1)},
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")

    from tweetdesk.models.card import write_model_card

    figures = teacher_figures(split, lessons["sent_test"], lessons["topic_test"], lessons["weak_test"])
    figures["history"] = lessons.info.get("history")
    metrics = evaluate_folder(Classifier(folder), settings, split=split, cleaned=cleaned, teacher=figures)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    write_model_card(folder, manifest, metrics)
    (Path(settings.artifacts_dir) / LATEST).write_text(version + "\n", encoding="utf-8")
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    say(f"saved {folder} ({size / 1e6:.1f} MB) after {time.monotonic() - started:.0f} s; LATEST -> {version}")
    return folder


def _clean_texts(texts: list[str], desc: str) -> list:
    from tqdm.auto import tqdm

    from tweetdesk.nlp.clean import clean_many

    import sys

    out = []
    for i in tqdm(range(0, len(texts), 2000), desc=f"cleaning {desc}", unit="chunk", file=sys.stderr, leave=False):
        out.extend(clean_many(texts[i : i + 2000]))
    return out


def _word_vectors(vocab, dim: int, teacher) -> np.ndarray | None:
    if not EMBED_FROM_ENCODER:
        return None
    from tweetdesk.models.teacher import word_vectors

    return word_vectors(vocab.itos, dim, teacher)
