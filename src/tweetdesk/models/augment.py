"""Augmented copies of the training tweets, for the teacher to label (Tang et al. 2019, "Distilling
Task-Specific Knowledge from BERT into Simple Neural Networks", section 3.3).

Each copy walks the tweet's words once: with probability ``p_mask`` a word is masked, else with
probability ``p_pos`` it is swapped for a word of the same part of speech (drawn by frequency from the
training tweets' words with that fine-grained tag); then, with probability ``p_ngram``, only a random
n-gram (n = 1..5) of the words is kept. Mentions, hashtags and links are never touched, and the tweet's
first mention (the brand) stays in front of a sampled n-gram. The teacher reads a masked word as its
``[MASK]`` token; the LSTM, which never sees a mask at inference, reads the copy without it. Copies equal
to their original, or to one another, are dropped.

Parts of speech come from spaCy's tagger (the English pipeline that the entity stage uses, with only
``tok2vec`` and ``tagger`` running).
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

MASK = "[MASK]"


@dataclass(frozen=True)
class Augmented:
    source: int  # index of the original tweet
    teacher_text: str  # with MASK where a word was masked
    student_text: str  # the same without the masked words


@dataclass(frozen=True)
class AugmentConfig:
    copies: int = 3  # per training tweet (before dropping repeats); each costs the teacher a pass over the split
    p_mask: float = 0.1
    p_pos: float = 0.1
    p_ngram: float = 0.25
    max_ngram: int = 5


def _tagged(texts: list[str], spacy_model: str) -> list[list[tuple[str, str, str, bool]]]:
    """Per text: (word, trailing whitespace, tag, may change) per spaCy token."""
    import spacy
    from tqdm.auto import tqdm

    nlp = spacy.load(spacy_model, exclude=["parser", "attribute_ruler", "lemmatizer", "ner", "senter"])
    out = []
    for doc in tqdm(nlp.pipe(texts, batch_size=256), total=len(texts), desc="tagging for augmentation",
                    unit="tweet", file=sys.stderr, mininterval=5.0, leave=False):
        rows = []
        for i, t in enumerate(doc):
            fixed = (not t.is_alpha or t.text.startswith("@") or t.like_url or (i > 0 and doc[i - 1].text == "#"))
            rows.append((t.text, t.whitespace_, t.tag_, not fixed))
        out.append(rows)
    return out


def augment(texts: list[str], spacy_model: str, cfg: AugmentConfig = AugmentConfig(), seed: int = 42) -> list[Augmented]:
    """``cfg.copies`` augmented copies per text (fewer where copies repeat), seeded; ``spacy_model`` names the
    spaCy pipeline whose tagger gives the parts of speech."""
    rng = np.random.default_rng(seed)
    tagged = _tagged(texts, spacy_model)
    by_tag: dict[str, Counter] = defaultdict(Counter)
    for rows in tagged:
        for word, _, tag, free in rows:
            if free:
                by_tag[tag][word.lower()] += 1
    pools = {}
    for tag, counts in by_tag.items():
        words = list(counts)
        p = np.array([counts[w] for w in words], dtype=np.float64)
        pools[tag] = (words, p / p.sum())

    out: list[Augmented] = []
    for src, rows in enumerate(tagged):
        seen = {texts[src].strip()}
        for _ in range(cfg.copies):
            t_words, s_words = [], []  # (text, whitespace) for the teacher and the student
            for word, ws, tag, free in rows:
                x = rng.random()
                if free and x < cfg.p_mask:
                    t_words.append((MASK, ws))
                    continue
                if free and x < cfg.p_mask + cfg.p_pos and tag in pools:
                    words, p = pools[tag]
                    other = words[rng.choice(len(words), p=p)]
                    word = word if other == word.lower() else other
                t_words.append((word, ws))
                s_words.append((word, ws))
            if rng.random() < cfg.p_ngram:
                t_words, s_words = _ngram(rows, t_words, rng, cfg.max_ngram)
            teacher = "".join(w + s for w, s in t_words).strip()
            student = "".join(w + s for w, s in s_words).strip() if s_words is not None else teacher.replace(MASK, "")
            if teacher and teacher not in seen:
                seen.add(teacher)
                out.append(Augmented(src, teacher, " ".join(student.split())))
    return out


def _ngram(rows, t_words, rng, max_n):
    """Keep a random n-gram of the (already masked/swapped) words; the brand mention stays in front."""
    brand = [(w, " ") for w, _, _, _ in rows[:1] if w.startswith("@")]
    body = t_words[len(brand):]
    if not body:
        return t_words, None
    n = int(rng.integers(1, max_n + 1))
    start = int(rng.integers(0, max(1, len(body) - n + 1)))
    kept = brand + [(w, " ") for w, _ in body[start : start + n]]
    return kept, [(w, s) for w, s in kept if w != MASK]
