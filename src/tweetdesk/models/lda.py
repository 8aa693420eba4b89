"""Weak topic labels from a guided (seeded) LDA over the cleaned tweets.

Plain LDA on 15k short tweets finds themes, but which topic id means what changes from run to run,
and the earlier attempt put 71% of the tweets in one topic. So the LDA here is *seeded*: the
reviewed mapping file (``topic_mapping.toml``) gives each LDA topic id a topic name and a few seed
words, and the Dirichlet prior over words (gensim's ``eta``) boosts those seeds in their own topic
and damps them elsewhere. LDA still learns every other word's place from co-occurrence; the seeds
only anchor the topics so that the mapping holds.

A tweet's weak label: sum the LDA document-topic probabilities of the LDA topics mapped to each
name, take the largest; its confidence is that sum. Topics fitted beyond the mapping (``--topics``
larger than the file) print as "unmapped" and their probability mass is left out.

The LDA is fitted on the negative tweets (complaints carry the themes; praise would form topics of
its own and pull sarcastic complaints towards them). Neutral and positive tweets then go through
the same LDA: every tweet gets one of the eight topics (a thank-you for the crew lands in "Customer
Experience"), so every tweet gets a ticket queue.
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tweetdesk.errors import ConfigError
from tweetdesk.records import TOPICS

MAPPING_FILE = Path(__file__).with_name("topic_mapping.toml")


@dataclass(frozen=True)
class MappedTopic:
    id: int
    name: str
    seeds: tuple[str, ...]


@dataclass(frozen=True)
class TopicMapping:
    version: str
    topics: tuple[MappedTopic, ...]
    seed_weight: float = 1.0
    other_weight: float = 0.001
    base_eta: float = 0.01
    alpha: float = 0.1
    seed_init: float = 1.0
    n_total: int = 0  # LDA topics to fit; ids beyond the mapped ones are unmapped catch-alls
    ignore: frozenset[str] = frozenset()
    # topic name -> reviewed one-line descriptions (the encoder's side of the weak labels, ``weak_topic_targets``)
    descriptions: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def name_of(self, lda_id: int) -> str | None:
        return next((t.name for t in self.topics if t.id == lda_id), None)

    @property
    def n_topics(self) -> int:
        return max(self.n_total, max(t.id for t in self.topics) + 1)


def load_mapping(path: Path = MAPPING_FILE) -> TopicMapping:
    """Read and check the reviewed mapping file (every name is one of the eight; ids unique)."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read topic mapping {path}: {e}") from None
    topics = []
    for t in raw.get("topic", []):
        if t.get("name") not in TOPICS:
            raise ConfigError(f"{path}: topic {t.get('id')} has name {t.get('name')!r}, not one of {', '.join(TOPICS)}")
        topics.append(MappedTopic(int(t["id"]), t["name"], tuple(str(s).lower() for s in t.get("seeds", []))))
    ids = [t.id for t in topics]
    if not topics or len(set(ids)) != len(ids) or min(ids) < 0:
        raise ConfigError(f"{path}: topic ids must be unique and non-negative")
    missing = set(TOPICS) - {t.name for t in topics}
    if missing:
        raise ConfigError(f"{path}: no LDA topic maps to {', '.join(sorted(missing))}")
    descriptions = {str(k): tuple(str(x) for x in v) for k, v in raw.get("descriptions", {}).items()}
    unknown = set(descriptions) - set(TOPICS)
    if unknown:
        raise ConfigError(f"{path}: descriptions for unknown topic(s) {', '.join(sorted(unknown))}")
    if descriptions and (set(TOPICS) - {k for k, v in descriptions.items() if v}):
        raise ConfigError(f"{path}: no description for {', '.join(sorted(set(TOPICS) - set(descriptions)))}")
    return TopicMapping(
        version=str(raw.get("version", "unversioned")),
        descriptions=descriptions,
        topics=tuple(sorted(topics, key=lambda t: t.id)),
        n_total=int(raw.get("n_topics", 0)),
        ignore=frozenset(str(w).lower() for w in raw.get("ignore", [])),
        **{k: float(raw[k]) for k in ("seed_weight", "other_weight", "base_eta", "alpha", "seed_init") if k in raw},
    )


@dataclass
class LdaLabeller:
    """A fitted guided LDA plus its mapping: turns token lists into weak topic labels."""

    model: object  # gensim LdaModel
    dictionary: object  # gensim Dictionary
    mapping: TopicMapping
    seeds_missing: list[str] = field(default_factory=list)

    def top_words(self, n: int = 12) -> list[tuple[int, str | None, list[str]]]:
        out = []
        for k in range(self.model.num_topics):
            words = [self.dictionary[i] for i, _ in self.model.get_topic_terms(k, topn=n)]
            out.append((k, self.mapping.name_of(k), words))
        return out

    def doc_topics(self, docs: list[list[str]]) -> np.ndarray:
        """(n_docs, n_lda_topics) document-topic probabilities; an all-unknown doc gets zeros."""
        theta = np.zeros((len(docs), self.model.num_topics), dtype=np.float32)
        for i, doc in enumerate(docs):
            bow = self.dictionary.doc2bow([w for w in doc if w not in self.mapping.ignore])
            if not bow:
                continue
            for k, p in self.model.get_document_topics(bow, minimum_probability=0.0):
                theta[i, k] = p
        return theta

    def bow_matrix(self, docs: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Each doc's bag of words as padded rows: ``ids`` (n_docs, width) int64 and ``counts`` (n_docs, width)
        float64. Row i holds doc i's distinct known words (ignored words left out) in ascending id order, as
        gensim's ``doc2bow`` gives them; the padding after them has id 0 and count 0, and an empty doc is all
        padding. ``width`` is the longest row (0 when every doc is empty)."""
        t2i, ignore = self.dictionary.token2id, self.mapping.ignore
        per_doc = [[t2i[w] for w in doc if w in t2i and w not in ignore] for doc in docs]
        n_vocab = max(len(t2i), 1)
        lens = np.fromiter((len(r) for r in per_doc), dtype=np.int64, count=len(per_doc))
        doc_of = np.repeat(np.arange(len(per_doc), dtype=np.int64), lens)
        flat = np.fromiter((w for r in per_doc for w in r), dtype=np.int64, count=int(lens.sum()))
        keys, counts = np.unique(doc_of * n_vocab + flat, return_counts=True)  # sorted: by doc, then word id
        row, wid = np.divmod(keys, n_vocab)
        n_words = np.bincount(row, minlength=len(per_doc))
        starts = np.concatenate(([0], np.cumsum(n_words)[:-1]))
        col = np.arange(len(keys)) - starts[row]
        width = int(n_words.max()) if len(per_doc) else 0
        ids = np.zeros((len(per_doc), width), dtype=np.int64)
        cts = np.zeros((len(per_doc), width), dtype=np.float64)
        ids[row, col] = wid
        cts[row, col] = counts
        return ids, cts

    def doc_topics_fixed(self, docs: list[list[str]], chunk: int = 512) -> np.ndarray:
        """Like ``doc_topics`` but deterministic and thread-safe: gensim starts each document's variational
        posterior from random draws of a shared generator (so a tweet's result depends on what was inferred
        before it); here every document starts from gamma = 1 (the mean of gensim's start) and runs the same
        updates (Hoffman's online LDA E-step). For inference on live tweets; the weak labels use ``doc_topics``.

        Vectorised over documents: docs of similar length are updated together, ``chunk`` at a time, as
        (docs, words, topics) arrays, and each doc leaves the update the iteration its own change falls below
        ``gamma_threshold`` -- exactly when a loop over single docs would stop it. The sums over a doc's words
        run in word order along a non-contiguous axis (numpy adds those one word after the other), so the
        zero-count padding adds exact zeros: a doc's result does not depend on its batch or padding width."""
        from scipy.special import psi

        m = self.model
        k = m.num_topics
        theta = np.zeros((len(docs), k), dtype=np.float32)
        ids, cts = self.bow_matrix(docs)
        n_words = (cts > 0).sum(axis=1)
        todo = np.flatnonzero(n_words)
        if not len(todo):
            return theta
        alpha = np.asarray(m.alpha, dtype=np.float64)
        beta_t = self._exp_elog_beta_t()  # (vocab, topics)
        eps = np.finfo(np.float64).eps
        thr, iterations = m.gamma_threshold, m.iterations
        start_theta = np.exp(psi(np.ones(k)) - psi(np.float64(k)))  # gamma = 1 for every doc
        todo = todo[np.argsort(n_words[todo], kind="stable")]  # similar lengths together: little padding
        for s in range(0, len(todo), chunk):
            rows = todo[s : s + chunk]
            width = int(n_words[rows].max())
            c = cts[rows, :width]  # (n, w)
            b = beta_t[ids[rows, :width]]  # (n, w, k); padding reads word 0 with count 0
            gamma = np.ones((len(rows), k))
            exp_theta = np.broadcast_to(start_theta, gamma.shape)
            phinorm = (b * exp_theta[:, None, :]).sum(axis=2) + eps  # (n, w)
            live = np.arange(len(rows))  # positions (in rows) still updating
            for _ in range(iterations):
                new = alpha + exp_theta * ((c / phinorm)[:, :, None] * b).sum(axis=1)
                done = np.abs(new - gamma).mean(axis=1) < thr
                gamma = new
                theta[rows[live[done]]] = gamma[done] / gamma[done].sum(axis=1, keepdims=True)
                if done.all():
                    break
                if done.any():
                    keep = ~done
                    live, gamma, c, b = live[keep], gamma[keep], c[keep], b[keep]
                exp_theta = np.exp(psi(gamma) - psi(gamma.sum(axis=1))[:, None])
                phinorm = (b * exp_theta[:, None, :]).sum(axis=2) + eps
            else:
                theta[rows[live]] = gamma / gamma.sum(axis=1, keepdims=True)
        return theta

    def _exp_elog_beta_t(self) -> np.ndarray:
        cached = getattr(self, "_beta_t", None)
        if cached is None:
            cached = self._beta_t = np.ascontiguousarray(np.asarray(self.model.expElogbeta, dtype=np.float64).T)
        return cached

    def name_probs(self, docs: list[list[str]], fixed: bool = False) -> np.ndarray:
        """(n_docs, 8) probability per topic name (columns in records.TOPICS order). Rows sum to at
        most 1: the mass of unmapped catch-all topics is left out, so a generic tweet scores low.
        ``fixed``: deterministic inference (``doc_topics_fixed``)."""
        theta = self.doc_topics_fixed(docs) if fixed else self.doc_topics(docs)
        out = np.zeros((len(docs), len(TOPICS)), dtype=np.float32)
        for t in self.mapping.topics:
            if t.id < theta.shape[1]:
                out[:, TOPICS.index(t.name)] += theta[:, t.id]
        return out

    def weak_labels(self, docs: list[list[str]]) -> tuple[list[str | None], np.ndarray]:
        """Weak label (None for a doc with no known word) and its confidence, per doc."""
        probs = self.name_probs(docs)
        idx = probs.argmax(axis=1)
        conf = probs.max(axis=1)
        labels = [TOPICS[i] if c > 0 else None for i, c in zip(idx, conf)]
        return labels, conf


def fit_lda(
    docs: list[list[str]],
    mapping: TopicMapping | None = None,
    n_topics: int | None = None,
    seed: int = 42,
    passes: int = 10,
    no_below: int = 3,
    no_above: float = 0.1,
) -> LdaLabeller:
    """Fit the guided LDA on token lists (cleaned tweets, stop words removed)."""
    from gensim.corpora import Dictionary
    from gensim.models import LdaModel

    mapping = mapping or load_mapping()
    k = max(n_topics or mapping.n_topics, mapping.n_topics)
    if mapping.ignore:
        docs = [[w for w in d if w not in mapping.ignore] for d in docs]
    dictionary = Dictionary(docs)
    seeds = {w for t in mapping.topics for w in t.seeds}
    # Very common words ("flight", "not") say nothing about the theme; seeds are always kept.
    dictionary.filter_extremes(no_below=no_below, no_above=no_above, keep_n=None, keep_tokens=sorted(seeds))
    corpus = [dictionary.doc2bow(d) for d in docs]
    eta = np.full((k, len(dictionary)), mapping.base_eta, dtype=np.float64)
    missing = []
    for t in mapping.topics:
        for w in t.seeds:
            wid = dictionary.token2id.get(w)
            if wid is None:
                missing.append(w)
                continue
            eta[:, wid] = mapping.other_weight
    for t in mapping.topics:
        for w in t.seeds:
            wid = dictionary.token2id.get(w)
            if wid is not None:
                eta[t.id, wid] = mapping.seed_weight
    model = LdaModel(
        id2word=dictionary,
        num_topics=k,
        alpha=np.full(k, mapping.alpha),
        eta=eta,
        iterations=100,
        random_state=seed,
        minimum_probability=0.0,
    )
    # gensim starts from random topic-word weights, so the first E-step would ignore the seeds and
    # the topics drift to whatever the data favours. Start instead from the seeds: each seed word's
    # corpus count goes to its own topic (guided-LDA style initialisation), plus gensim's own noise.
    counts = np.zeros(len(dictionary))
    for bow in corpus:
        for wid, c in bow:
            counts[wid] += c
    for t in mapping.topics:
        for w in t.seeds:
            wid = dictionary.token2id.get(w)
            if wid is not None:
                model.state.sstats[:, wid] = 1e-3
                model.state.sstats[t.id, wid] = mapping.seed_init * max(counts[wid], 1.0)
    model.sync_state()
    nonempty = [c for c in corpus if c]
    model.update(nonempty, passes=passes, chunksize=len(nonempty), update_every=1)
    return LdaLabeller(model, dictionary, mapping, sorted(set(missing)))


def lda_command(settings, n_topics: int = 12) -> None:
    """`tweetdesk lda`: fit on the training split and print each topic's top words for review."""
    from tweetdesk.models.dataset import load_dataset, split_dataset
    from tweetdesk.models.labels import balance, topic_agreement
    from tweetdesk.nlp.clean import clean_many

    mapping = load_mapping()
    split = split_dataset(load_dataset(settings.data_path))
    print(f"cleaning {len(split.train)} training tweets…", file=sys.stderr)
    docs = [c.tokens for c in clean_many(list(split.train["text"]))]
    neg = split.train["airline_sentiment"].to_numpy() == "negative"
    # as in training: fitted on the complaints (negative tweets), then applied to every tweet
    labeller = fit_lda([d for d, m in zip(docs, neg) if m], mapping, n_topics=n_topics)
    print(f"guided LDA, {labeller.model.num_topics} topics, fitted on {int(neg.sum())} negative training tweets, "
          f"mapping {MAPPING_FILE.name} version {mapping.version}")
    if labeller.seeds_missing:
        print(f"seed words not in the vocabulary: {', '.join(labeller.seeds_missing)}")
    for k, name, words in labeller.top_words():
        print(f"{k:>3}  {name or '(unmapped: add it to topic_mapping.toml)':<28} {' '.join(words)}")
    labels, _ = labeller.weak_labels(docs)
    b = balance([x for x in labels if x])
    print("\nweak labels on the training split:")
    for t, c in b["counts"].items():
        print(f"  {t:<28} {c:>6}  ({c / b['n']:.1%})")
    agree = topic_agreement(split.train["negativereason"][neg], [x or "" for x, m in zip(labels, neg) if m])
    print(f"agreement with mapped negativereason (training negatives, n={agree['n']}): "
          f"macro-F1 {agree['macro_f1']:.3f}, accuracy {agree['accuracy']:.3f}")


def weak_topic_targets(lda_probs: np.ndarray, similarity: np.ndarray | None, encoder_weight: float,
                       temperature: float) -> np.ndarray:
    """The weak topic distribution per tweet, (n, 8) rows summing to 1: ``encoder_weight`` x a softmax of the
    encoder's similarity to each topic's descriptions (``similarity``, (n, 8) cosines, best description per
    topic; divided by ``temperature``) + the rest x the guided LDA's posterior over the eight names
    (``lda_probs`` from ``name_probs``, renormalised). A tweet with no word the LDA knows takes the encoder's
    alone; without ``similarity`` (no encoder) the LDA's alone (uniform where it knows no word)."""
    mass = lda_probs.sum(axis=1, keepdims=True)
    p_lda = np.divide(lda_probs, mass, out=np.full_like(lda_probs, 1.0 / lda_probs.shape[1]), where=mass > 0)
    if similarity is None:
        return p_lda.astype(np.float32)
    z = similarity / temperature
    p_enc = np.exp(z - z.max(axis=1, keepdims=True))
    p_enc /= p_enc.sum(axis=1, keepdims=True)
    w = np.where(mass > 0, encoder_weight, 1.0)
    return (w * p_enc + (1 - w) * p_lda).astype(np.float32)
