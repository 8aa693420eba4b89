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
    return TopicMapping(
        version=str(raw.get("version", "unversioned")),
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

    def doc_topics_fixed(self, docs: list[list[str]]) -> np.ndarray:
        """Like ``doc_topics`` but deterministic and thread-safe: gensim starts each document's variational
        posterior from random draws of a shared generator (so a tweet's result depends on what was inferred
        before it); here every document starts from gamma = 1 (the mean of gensim's start) and runs the same
        updates (Hoffman's online LDA E-step). For inference on live tweets; the weak labels use ``doc_topics``."""
        from scipy.special import psi

        m = self.model
        alpha = np.asarray(m.alpha, dtype=np.float64)
        exp_elog_beta = np.asarray(m.expElogbeta, dtype=np.float64)
        theta = np.zeros((len(docs), m.num_topics), dtype=np.float32)
        eps = np.finfo(np.float64).eps
        for i, doc in enumerate(docs):
            bow = self.dictionary.doc2bow([w for w in doc if w not in self.mapping.ignore])
            if not bow:
                continue
            ids = [wid for wid, _ in bow]
            cts = np.array([c for _, c in bow], dtype=np.float64)
            beta_d = exp_elog_beta[:, ids]
            gamma = np.ones(m.num_topics)
            exp_theta = np.exp(psi(gamma) - psi(gamma.sum()))
            phinorm = exp_theta @ beta_d + eps
            for _ in range(m.iterations):
                last = gamma
                gamma = alpha + exp_theta * ((cts / phinorm) @ beta_d.T)
                exp_theta = np.exp(psi(gamma) - psi(gamma.sum()))
                phinorm = exp_theta @ beta_d + eps
                if np.mean(np.abs(gamma - last)) < m.gamma_threshold:
                    break
            theta[i] = gamma / gamma.sum()
        return theta

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


def load_labeller(folder: Path) -> LdaLabeller:
    """The guided LDA saved in an artifact folder (``lda/``) with that folder's copy of the mapping."""
    from gensim.corpora import Dictionary
    from gensim.models import LdaModel

    folder = Path(folder)
    return LdaLabeller(
        LdaModel.load(str(folder / "lda" / "lda.gensim")),
        Dictionary.load(str(folder / "lda" / "dictionary.gensim")),
        load_mapping(folder / "topic_mapping.toml"),
    )


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
