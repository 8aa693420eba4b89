"""The LSTM text classifier (plain PyTorch) used for both sentiment and topic, with its vocabulary.

Architecture: embedding -> bidirectional LSTM over the packed sequence -> [max-pool ; mean-pool] of
the hidden states -> dropout -> linear. Training packs padded batches; inference groups tweets of
equal token count (no padding at all). Either way no padding leaks into the backward direction, so
each tweet's output is independent of what else is in its batch: batching never changes a result.
Inference runs the BiLSTM from per-word gate tables (embedding times input weights, precomputed) rather
than through ``nn.LSTM``: the same probabilities to float32 rounding, about a third less CPU per tweet.

Saved as one folder per model: ``<name>.pt`` (state dict, float16 to halve the size) and
``<name>.json`` (config, label names, vocabulary).
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from tweetdesk.errors import ModelNotFoundError

PAD, UNK = "<pad>", "<unk>"


class Vocab:
    """Token -> id. Id 0 is padding, 1 is unknown; the rest by training-set frequency."""

    def __init__(self, tokens: list[str]):
        self.itos = tokens
        self.stoi = {t: i for i, t in enumerate(tokens)}

    @classmethod
    def build(cls, docs: list[list[str]], min_freq: int = 2, max_size: int = 20_000) -> "Vocab":
        counts = Counter(w for d in docs for w in d)
        words = [w for w, c in sorted(counts.items(), key=lambda x: (-x[1], x[0])) if c >= min_freq]
        return cls([PAD, UNK] + words[: max_size - 2])

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, docs: list[list[str]], max_len: int) -> tuple[list[list[int]], np.ndarray]:
        """Ids per doc (the *last* max_len tokens: complaints tend to end on their point) and lengths.
        An empty doc becomes one <unk> so the LSTM always has a step to read."""
        ids = []
        for d in docs:
            row = [self.stoi.get(w, 1) for w in d][-max_len:] or [1]
            ids.append(row)
        return ids, np.array([len(r) for r in ids], dtype=np.int64)


@dataclass
class LSTMConfig:
    name: str
    labels: list[str]
    vocab_size: int
    max_len: int = 40
    embed_dim: int = 128
    hidden: int = 96
    dropout: float = 0.4
    embed_dropout: float = 0.2
    tokens: str = "all_tokens"  # which CleanedText field feeds the model: all_tokens | tokens
    extra: dict = field(default_factory=dict)


class LSTMClassifier(nn.Module):
    def __init__(self, cfg: LSTMConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=0)
        self.embed_drop = nn.Dropout(cfg.embed_dropout)
        self.lstm = nn.LSTM(cfg.embed_dim, cfg.hidden, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(4 * cfg.hidden, len(cfg.labels))

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.embed_drop(self.embed(ids))
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        h, _ = self.lstm(packed)
        h, _ = pad_packed_sequence(h, batch_first=True, total_length=ids.shape[1])
        mask = (torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None]).unsqueeze(-1)
        maxed = h.masked_fill(~mask, -1e4).max(dim=1).values
        mean = (h * mask).sum(dim=1) / lengths[:, None].clamp(min=1)
        return self.out(self.drop(torch.cat([maxed, mean], dim=1)))


def _pad(rows: list[list[int]]) -> torch.Tensor:
    width = max(len(r) for r in rows)
    out = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


class _GateTables:
    """Inference weights for the fast path of ``predict_proba``, derived from the model's current weights.

    An embedding followed by the LSTM's input projection is linear in a one-hot word, so each word's input
    contribution to the four gates, ``embed(w) @ W_ih.T + b_ih + b_hh``, is looked up from a per-word table
    (computed once, in float64) instead of multiplied out at every step: that is 60% of the LSTM's
    multiply-adds at these sizes. Columns are reordered to (input, forget, output, cell) so one sigmoid covers
    the three gates, and the cell gate's columns are doubled so that the same sigmoid gives tanh through
    tanh(x) = 2 sigmoid(2x) - 1 (torch's CPU tanh is several times slower than its sigmoid). Same maths as
    ``nn.LSTM``: the probabilities agree to float32 rounding (about 1e-6).
    """

    def __init__(self, model: "LSTMClassifier"):
        lstm, h = model.lstm, model.lstm.hidden_size
        self.key = _weights_key(model)
        order = torch.cat([torch.arange(0, 2 * h), torch.arange(3 * h, 4 * h), torch.arange(2 * h, 3 * h)])
        scale = torch.ones(4 * h, dtype=torch.float64)
        scale[3 * h :] = 2.0
        embed = model.embed.weight.detach().double()
        tables, w_hh = [], []
        for sfx in ("_l0", "_l0_reverse"):
            w_ih = getattr(lstm, f"weight_ih{sfx}").detach().double()
            bias = (getattr(lstm, f"bias_ih{sfx}").detach().double() + getattr(lstm, f"bias_hh{sfx}").detach().double())
            tables.append(((embed @ w_ih.T + bias)[:, order] * scale).float())
            whh = getattr(lstm, f"weight_hh{sfx}").detach().double()[order] * scale[:, None]
            w_hh.append(whh.T.float().contiguous())
        self.n_words = embed.shape[0]
        self.table = torch.cat(tables).contiguous()  # (2 * vocab, 4h): forward direction's rows, then backward's
        self.w_hh = torch.stack(w_hh)  # (2, h, 4h)


def _weights_key(model: "LSTMClassifier") -> tuple:
    # in-place updates (optimizer steps, load_state_dict) bump a tensor's version: the tables then are stale
    params = [model.embed.weight, *model.lstm.parameters()]
    return tuple((p.data_ptr(), p._version) for p in params)


def _gate_tables(model: "LSTMClassifier") -> "_GateTables | None":
    lstm = model.lstm
    if not (lstm.bidirectional and lstm.num_layers == 1 and lstm.bias and lstm.batch_first and not lstm.proj_size):
        return None  # not the architecture above: nn.LSTM's own path
    tables = getattr(model, "_gate_tables", None)
    if tables is None or tables.key != _weights_key(model):
        tables = _GateTables(model)
        object.__setattr__(model, "_gate_tables", tables)  # a plain attribute, not a registered submodule/buffer
    return tables


def _pooled_fast(t: _GateTables, x: torch.Tensor) -> torch.Tensor:
    """[max-pool ; mean-pool] of the BiLSTM's hidden states for ``x`` (n, length) word ids, all rows of one
    length: the forward direction reads word s at step s, the backward direction word length-1-s, both in one
    batched matmul per step."""
    n, length = x.shape
    h4 = t.table.shape[1]
    hid = h4 // 4
    steps = torch.cat([x.T, x.T.flip(0) + t.n_words], dim=1)  # (length, 2n) table rows per step
    gates = torch.index_select(t.table, 0, steps[0]).view(2, n, h4)
    sig = torch.sigmoid_(gates)
    c = sig[..., :hid] * torch.sub(sig[..., 3 * hid :], 0.5).mul_(2.0)
    h = sig[..., 2 * hid : 3 * hid] * torch.sigmoid(c * 2.0).sub_(0.5).mul_(2.0)
    hmax, hsum = h, h.clone()
    for s in range(1, length):
        gates = torch.baddbmm(torch.index_select(t.table, 0, steps[s]).view(2, n, h4), h, t.w_hh)
        sig = torch.sigmoid_(gates)
        c = torch.addcmul(sig[..., hid : 2 * hid] * c, sig[..., :hid], torch.sub(sig[..., 3 * hid :], 0.5).mul_(2.0))
        h = sig[..., 2 * hid : 3 * hid] * torch.sigmoid(c * 2.0).sub_(0.5).mul_(2.0)
        hmax = torch.maximum(hmax, h)
        hsum += h
    return torch.cat([hmax[0], hmax[1], hsum[0] / length, hsum[1] / length], dim=1)


def _pooled_plain(model: "LSTMClassifier", x: torch.Tensor) -> torch.Tensor:
    h, _ = model.lstm(model.embed(x))
    return torch.cat([h.amax(dim=1), h.mean(dim=1)], dim=1)


@torch.inference_mode()
def predict_proba(
    model: LSTMClassifier, vocab: Vocab, docs: list[list[str]], batch_size: int = 512, fast: bool = True
) -> np.ndarray:
    """Class probabilities, (n_docs, n_labels), rows in input order.

    Inference groups the docs by exact token count, so a batch has no padding at all and needs no
    packing: the plain LSTM over equal-length rows computes exactly what the packed training path
    computes (same pooling, no mask needed). A result therefore never depends on which other tweets
    share its batch (beyond float32 rounding in the matrix products).

    ``fast`` (default): the BiLSTM runs from per-word gate tables (``_GateTables``), about 35% less CPU per
    tweet than ``nn.LSTM`` (oneDNN) on one thread; ``fast=False`` runs ``nn.LSTM`` itself. Both give the same
    probabilities up to float32 rounding (tests/models/test_models.py checks 1e-5 on the shipped models).
    """
    model.eval()
    n_labels = len(model.cfg.labels)
    if not docs:
        return np.zeros((0, n_labels), dtype=np.float32)
    tables = _gate_tables(model) if fast else None
    ids, lengths = vocab.encode(docs, model.cfg.max_len)
    order = np.argsort(lengths, kind="stable")
    bounds = np.flatnonzero(np.diff(lengths[order])) + 1
    out = np.empty((len(docs), n_labels), dtype=np.float32)
    for group in np.split(order, bounds):
        for start in range(0, len(group), batch_size):
            idx = group[start : start + batch_size]
            x = torch.tensor([ids[i] for i in idx], dtype=torch.long)
            pooled = _pooled_fast(tables, x) if tables is not None else _pooled_plain(model, x)
            out[idx] = torch.softmax(model.out(pooled).float(), dim=1).numpy()
    return out


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    val_macro_f1: list[float] = field(default_factory=list)
    best_epoch: int = 0


def train_model(
    cfg: LSTMConfig,
    vocab: Vocab,
    train_docs: list[list[str]],
    train_y: np.ndarray,
    val_docs: list[list[str]],
    val_y: np.ndarray,
    sample_weight: np.ndarray | None = None,
    val_weight: np.ndarray | None = None,
    epochs: int = 15,
    patience: int = 3,
    seed: int = 42,
    batch_size: int = 64,
    lr: float = 2e-3,
    class_weight_power: float = 0.5,
    soft_targets: np.ndarray | None = None,
    soft_weight: float = 1.0,
    temperature: float = 1.0,
    soft_loss: str = "ce",
    init_embeddings: np.ndarray | None = None,
    select: Callable[[np.ndarray], float] | None = None,
    desc: str = "",
) -> tuple[LSTMClassifier, History]:
    """Train with early stopping on validation accuracy + macro-F1, or on ``select(probabilities)`` where the
    validation labels call for another measure; returns the best epoch's model.

    Class imbalance: the loss weights each class by (n / n_class) ** class_weight_power (0.5 = the
    square root of inverse frequency: lifts minority classes without wrecking accuracy).

    Distillation: ``soft_targets`` (n, classes), a teacher's probabilities per training doc. A doc's loss is
    then ``soft_weight`` x the cross-entropy against its soft target + (1 - ``soft_weight``) x the usual one
    against its label; a doc without a label (``train_y`` -1, e.g. an augmented copy) learns from the soft
    target alone. A soft target's class weight is its expected class weight. ``temperature`` T > 1 softens
    both sides (Hinton et al.: teacher probabilities ** (1/T), renormalised, against the student's
    logits / T, times T squared so the gradients keep their scale). ``soft_loss="mse"``: instead of that
    cross-entropy, the mean squared error between the student's and the teacher's logits (Tang et al. 2019;
    the teacher's logits recovered from its probabilities as centred log-probabilities, the student's centred
    too, since a softmax ignores a shift). ``init_embeddings``
    (vocab_size, embed_dim) starts the word embeddings from given vectors instead of random ones.
    """
    from sklearn.metrics import accuracy_score, f1_score
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n_cls = len(cfg.labels)
    train_y = np.asarray(train_y, dtype=np.int64)
    soft = None if soft_targets is None else np.asarray(soft_targets, dtype=np.float64)
    if soft is not None and temperature != 1.0:
        soft = np.power(np.clip(soft, 1e-12, None), 1.0 / temperature)
        soft /= soft.sum(axis=1, keepdims=True)
    soft = None if soft is None else soft.astype(np.float32)
    if soft_loss not in ("ce", "mse"):
        raise ValueError(f"train_model: soft_loss must be 'ce' or 'mse', not {soft_loss!r}")
    soft_logits = None
    if soft is not None and soft_loss == "mse":
        lq = np.log(np.clip(soft.astype(np.float64), 1e-6, None))
        soft_logits = (lq - lq.mean(axis=1, keepdims=True)).astype(np.float32)
    if soft is None and (train_y < 0).any():
        raise ValueError("train_model: unlabelled docs (train_y -1) need soft_targets")
    counted = train_y if soft is None else np.where(train_y >= 0, train_y, soft.argmax(1))
    counts = np.bincount(counted, minlength=n_cls).astype(np.float64)
    cw = (counts.sum() / np.maximum(counts, 1) / n_cls) ** class_weight_power
    class_w = torch.tensor(cw / cw.mean(), dtype=torch.float32)
    sw = np.ones(len(train_docs), dtype=np.float32) if sample_weight is None else sample_weight.astype(np.float32)

    model = LSTMClassifier(cfg)
    if init_embeddings is not None:
        with torch.no_grad():
            model.embed.weight.copy_(torch.as_tensor(init_embeddings, dtype=torch.float32))
            model.embed.weight[0].zero_()  # padding
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss(weight=class_w, reduction="none")

    def batch_loss(logits: torch.Tensor, idx: np.ndarray) -> torch.Tensor:
        y = torch.from_numpy(train_y[idx])
        has = y >= 0
        hard = loss_fn(logits, y.clamp(min=0)) * has
        if soft is None:
            return hard
        q = torch.from_numpy(soft[idx])
        if soft_logits is not None:
            z = logits - logits.mean(dim=1, keepdim=True)
            s_loss = ((z - torch.from_numpy(soft_logits[idx])) ** 2).mean(1) * (q @ class_w)
        else:
            s_loss = -(q * torch.log_softmax(logits / temperature, dim=1)).sum(1) * (q @ class_w) * temperature**2
        a = torch.where(has, torch.tensor(soft_weight), torch.tensor(1.0))
        return a * s_loss + (1 - a) * hard
    ids, lengths = vocab.encode(train_docs, cfg.max_len)
    hist = History()
    best_score, best_state, bad = -math.inf, None, 0
    for epoch in range(1, epochs + 1):
        model.train()
        perm = rng.permutation(len(ids))
        total, seen = 0.0, 0
        bar = tqdm(range(0, len(perm), batch_size), desc=f"{desc} epoch {epoch}/{epochs}", unit="batch", leave=False, mininterval=1.0)
        for start in bar:
            idx = perm[start : start + batch_size]
            logits = model(_pad([ids[i] for i in idx]), torch.from_numpy(lengths[idx]))
            w = torch.from_numpy(sw[idx])
            loss = (batch_loss(logits, idx) * w).sum() / w.sum()
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total += loss.item() * len(idx)
            seen += len(idx)
            bar.set_postfix(loss=f"{total / seen:.3f}")
        probs = predict_proba(model, vocab, val_docs)
        pred = probs.argmax(1)
        vw = np.ones(len(val_y)) if val_weight is None else val_weight
        val_loss = float(-(np.log(probs[np.arange(len(val_y)), val_y] + 1e-9) * vw).sum() / vw.sum())
        acc = accuracy_score(val_y, pred, sample_weight=vw)
        f1 = f1_score(val_y, pred, average="macro", sample_weight=vw)
        hist.train_loss.append(total / max(seen, 1))
        hist.val_loss.append(val_loss)
        hist.val_accuracy.append(float(acc))
        hist.val_macro_f1.append(float(f1))
        score = f1 + acc if select is None else select(probs)
        tqdm.write(f"{desc} epoch {epoch}: train loss {total / max(seen, 1):.4f}  val loss {val_loss:.4f}  "
                   f"val acc {acc:.4f}  val macro-F1 {f1:.4f}" + ("" if select is None else f"  stopping score {score:.4f}"),
                   file=sys.stderr)
        if score > best_score:
            best_score, bad, hist.best_epoch = score, 0, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= patience:
                tqdm.write(f"{desc}: early stop (no val improvement for {patience} epochs), best epoch {hist.best_epoch}",
                           file=sys.stderr)
                break
    model.load_state_dict(best_state)
    model.eval()
    return model, hist


def save_model(model: LSTMClassifier, vocab: Vocab, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    name = model.cfg.name
    # float16 halves the artifact; the weights are cast back to float32 on load (no accuracy change
    # worth measuring for an embedding + LSTM of this size; the round-trip test checks agreement).
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}, folder / f"{name}.pt")
    meta = {"config": asdict(model.cfg), "vocab": vocab.itos}
    (folder / f"{name}.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")


def load_model(folder: Path, name: str) -> tuple[LSTMClassifier, Vocab]:
    weights, meta_path = folder / f"{name}.pt", folder / f"{name}.json"
    if not weights.exists() or not meta_path.exists():
        raise ModelNotFoundError(f"model '{name}' not found in {folder} (run `tweetdesk train`)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    model = LSTMClassifier(LSTMConfig(**meta["config"]))
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    model.eval()
    return model, Vocab(meta["vocab"])
