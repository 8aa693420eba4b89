"""The guided LDA's deterministic E-step (``LdaLabeller.doc_topics_fixed``), vectorised over a batch of
documents, against the per-document loop it replaced (kept here as the reference), on real cleaned tweets
with the shipped LDA."""

from __future__ import annotations

import csv
import random

import numpy as np
import pytest

from tweetdesk.config import ARTIFACTS_DIR
from tweetdesk.models.artifact import load_labeller
from tweetdesk.models.predict import resolve_version
from tweetdesk.nlp.clean import clean_many


def reference_doc_topics_fixed(labeller, docs: list[list[str]]) -> np.ndarray:
    """The per-document loop as it was before vectorising (commit 4e2d8ba), verbatim."""
    from scipy.special import psi

    m = labeller.model
    alpha = np.asarray(m.alpha, dtype=np.float64)
    exp_elog_beta = np.asarray(m.expElogbeta, dtype=np.float64)
    theta = np.zeros((len(docs), m.num_topics), dtype=np.float32)
    eps = np.finfo(np.float64).eps
    for i, doc in enumerate(docs):
        bow = labeller.dictionary.doc2bow([w for w in doc if w not in labeller.mapping.ignore])
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


@pytest.fixture(scope="module")
def labeller():
    return load_labeller(resolve_version(ARTIFACTS_DIR))


@pytest.fixture(scope="module")
def docs(airline_csv, labeller):
    """400 real tweets, cleaned (the topic path's tokens), plus edge cases: empty, only ignored or unknown
    words, one word, a word repeated, and the longest tweets of the data set."""
    with airline_csv.open(newline="", encoding="utf-8") as fh:
        texts = [row["text"] for row in csv.DictReader(fh)]
    random.Random(3).shuffle(texts)
    cleaned = clean_many(texts[:400] + sorted(texts, key=len)[-20:])
    ignored = sorted(labeller.mapping.ignore)[:2]
    known = [w for w in ("bag", "refund", "delay", "seat") if w in labeller.dictionary.token2id]
    assert known, "the shipped LDA knows none of the probe words"
    edge = [[], ignored, ["zzzunknownzzz", "qqqq"], known[:1], known[:1] * 5 + ignored, known * 3]
    return [c.tokens for c in cleaned] + edge


def test_vectorised_e_step_equals_the_per_document_loop(labeller, docs):
    ref = reference_doc_topics_fixed(labeller, docs)
    new = labeller.doc_topics_fixed(docs)
    assert new.shape == ref.shape and new.dtype == np.float32
    assert np.allclose(new, ref, atol=1e-6, rtol=0), np.abs(new - ref).max()
    assert (new.argmax(axis=1) == ref.argmax(axis=1)).all()
    empty = ref.sum(axis=1) == 0
    assert empty.any() and (new[empty] == 0).all()  # no known word: zeros, as before
    assert np.allclose(new[~empty].sum(axis=1), 1.0, atol=1e-5)


def test_bow_matrix_matches_doc2bow(labeller, docs):
    ids, cts = labeller.bow_matrix(docs)
    for i, doc in enumerate(docs):
        bow = labeller.dictionary.doc2bow([w for w in doc if w not in labeller.mapping.ignore])
        n = len(bow)
        assert [(int(a), int(b)) for a, b in zip(ids[i, :n], cts[i, :n])] == bow
        assert (cts[i, n:] == 0).all()


def test_a_documents_result_does_not_depend_on_its_batch(labeller, docs):
    together = labeller.doc_topics_fixed(docs)
    alone = np.vstack([labeller.doc_topics_fixed([d]) for d in docs[:120]] + [labeller.doc_topics_fixed(docs[-6:])])
    assert np.array_equal(alone, np.vstack([together[:120], together[-6:]]))
    # another order, other neighbours, other chunk sizes (so other padding widths): bit for bit the same
    perm = np.random.default_rng(0).permutation(len(docs))
    for chunk in (1, 7, 64, 10_000):
        shuffled = labeller.doc_topics_fixed([docs[i] for i in perm], chunk=chunk)
        assert np.array_equal(shuffled, together[perm]), chunk
    assert labeller.doc_topics_fixed([]).shape == (0, labeller.model.num_topics)
