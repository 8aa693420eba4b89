"""The language of a tweet: X's own ``lang`` where the record has one, else py3langid's.

X labels every post with a BCP 47 code, or ``und`` (undetermined) and a few pseudo-codes (``qme`` media only,
``qht`` hashtags only, ``qam`` mentions only, ``zxx`` no text, …); a replay file and DMs may carry none. For
those the identifier reads the text without mentions, links and hashtag signs. It picks among
``models.lang_candidates`` (languages a US airline's desk plausibly receives: with all 97 of its languages it
calls informal English tweets Nigerian Pidgin or Xhosa) and answers ``und`` below ``models.lang_min_confidence``
(short tweets: "thanks!!"), and is run over whole batches (``LanguageIdentifier``). docs/models.md has the
comparison that chose py3langid and the figures.

What the stream does with the answer (``models.enrich``): English and ``und`` go through the English models (an
undetermined tweet is nearly always a short English one, as the data set shows); any other language gets
sentiment and topic ``records.NOT_INFERRED`` and keeps only the entities that do not depend on the language.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Sequence

import numpy as np

# The language the sentiment and topic models read.
MODEL_LANGUAGE = "en"
UNDETERMINED = "und"
# Entities found by rules that read no words (flight numbers, booking codes, airport codes, amounts of money).
LANGUAGE_FREE_LABELS = frozenset({"FLIGHT", "BOOKING_REF", "AIRPORT", "MONEY"})
# X's codes that name no language: undetermined, no linguistic content, artificial, and its q* pseudo-codes.
_X_NO_LANGUAGE = frozenset({"und", "zxx", "art", "mis", "mul"})
# Old codes X still sends for some languages.
_X_ALIASES = {"in": "id", "iw": "he", "ji": "yi"}
_NOT_WORDS = re.compile(r"https?://\S+|www\.\S+|(?<![\w@])[@＠]\w+|[#＃]")
_CODE = re.compile(r"[a-z]{2,3}")


def x_language(value: object) -> str | None:
    """The language X (or the source) gave, as a lower-case primary subtag ("pt-BR" → "pt"), or None when it
    gave none or one that names no language (``und``, ``zxx``, ``qme``, …): the identifier decides then."""
    if not isinstance(value, str):
        return None
    base = value.strip().lower().replace("_", "-").split("-")[0]
    code = _X_ALIASES.get(base, base)
    if not _CODE.fullmatch(code) or code in _X_NO_LANGUAGE or (len(code) == 3 and code.startswith("q")):
        return None
    return code


def is_model_language(lang: str | None) -> bool:
    """True when the English models may label a tweet in ``lang`` (English, or undetermined)."""
    return lang in (None, MODEL_LANGUAGE, UNDETERMINED)


class LanguageIdentifier:
    """py3langid's naive Bayes model (shipped inside its wheel), limited to ``candidates``, run over a whole
    batch at once: its byte automaton advances every text of the batch one byte per numpy step, and the
    feature counts meet the model in one sparse product. py3langid's own ``classify`` walks each text byte by
    byte in Python (~150 µs a tweet, a third of ``enrich_batch``'s budget); this gives its answers (the tests
    compare them) at a few µs a tweet. Texts are read up to ``MAX_BYTES`` (a tweet's opening says its
    language)."""

    MAX_BYTES = 512
    CHUNK = 2048  # texts per automaton run (a byte matrix of CHUNK x longest text)

    def __init__(self, candidates: Sequence[str], min_confidence: float):
        from py3langid.langid import MODEL_FILE
        from py3langid.langid import LanguageIdentifier as _Model

        model = _Model.from_model_file(MODEL_FILE, norm_probs=True)
        unknown = sorted(set(candidates) - set(model.nb_classes))
        if unknown:
            from tweetdesk.errors import TweetdeskError

            raise TweetdeskError(f"lang_candidates: py3langid does not know {', '.join(unknown)}")
        model.set_languages(sorted(set(candidates)))
        self.model = model  # py3langid's own, for comparison
        self.labels: list[str] = list(model.nb_classes)
        self.min_confidence = min_confidence
        self._next = np.asarray(model.tk_nextmove, dtype=np.int64)
        self._rowbase = np.asarray(model.tk_row, dtype=np.int64) << 8
        self._output = np.asarray(model.tk_output, dtype=np.int64)
        self._ptc = np.asarray(model.nb_ptc, dtype=np.float32)
        self._pc = np.asarray(model.nb_pc, dtype=np.float32)

    @staticmethod
    def _encode(text: str) -> bytes:
        # py3langid's own preparation: all-caps lowered, NFC, UTF-8.
        if text.isupper():
            text = text.lower()
        return unicodedata.normalize("NFC", text).encode("utf-8", "surrogatepass")

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), len(labels)) probabilities, as py3langid's ``norm_probs`` (uniform for a text with no
        feature of any language)."""
        from scipy.sparse import csr_matrix

        data = [self._encode(t)[: self.MAX_BYTES] for t in texts]
        probs = np.zeros((len(data), len(self.labels)), dtype=np.float32)
        order = sorted(range(len(data)), key=lambda i: -len(data[i]))  # longest first: the live texts are a prefix
        for c in range(0, len(order), self.CHUNK):
            idx = order[c : c + self.CHUNK]
            lens = np.array([len(data[i]) for i in idx])
            width = int(lens[0]) if len(idx) else 0
            if width == 0:
                continue
            buf = np.zeros((len(idx), width), dtype=np.int64)
            for r, i in enumerate(idx):
                buf[r, : lens[r]] = np.frombuffer(data[i], dtype=np.uint8)
            state = np.zeros(len(idx), dtype=np.int64)
            live = np.searchsorted(-lens, -np.arange(1, width + 1), side="right")  # texts longer than j, per j
            rows, cols = [], []
            for j in range(width):
                k = int(live[j])
                state[:k] = self._next[self._rowbase[state[:k]] + buf[:k, j]]
                f = self._output[state[:k]]
                hit = np.flatnonzero(f >= 0)
                rows.append(hit)
                cols.append(f[hit])
            r, f = np.concatenate(rows), np.concatenate(cols)
            counts = csr_matrix((np.ones(len(r), dtype=np.float32), (r, f)), shape=(len(idx), self._ptc.shape[0]))
            counts.sum_duplicates()
            has = np.diff(counts.indptr) > 0
            counts.data = np.log1p(counts.data)
            scores = np.asarray(counts @ self._ptc) + self._pc
            scores *= (1.0 / np.sqrt(np.maximum(lens, 1)))[:, None]
            scores = np.exp(scores - scores.max(axis=1, keepdims=True))
            scores /= scores.sum(axis=1, keepdims=True)
            scores[~has] = 1.0 / len(self.labels)
            probs[idx] = scores
        return probs

    def identify_many(self, texts: Sequence[str]) -> list[str]:
        """Each text's language, ``und`` when unsure or when no words are left."""
        words = [" ".join(_NOT_WORDS.sub(" ", t).split()) for t in texts]
        todo = [k for k, w in enumerate(words) if any(c.isalpha() for c in w)]
        out = [UNDETERMINED] * len(texts)
        if todo:
            probs = self.probabilities([words[k] for k in todo])
            best = probs.argmax(axis=1)
            for k, b, p in zip(todo, best, probs[np.arange(len(todo)), best], strict=True):
                if p >= self.min_confidence:
                    out[k] = self.labels[b]
        return out

    def identify(self, text: str) -> str:
        return self.identify_many([text])[0]


_cache: dict[tuple, LanguageIdentifier] = {}
_cache_lock = threading.Lock()


def get_identifier(models) -> LanguageIdentifier:
    """The identifier for these model settings (loaded once per process: ~0.4 s)."""
    key = (tuple(models.lang_candidates), models.lang_min_confidence)
    with _cache_lock:
        if key not in _cache:
            _cache[key] = LanguageIdentifier(models.lang_candidates, models.lang_min_confidence)
        return _cache[key]


def languages_of(texts: Sequence[str], given: Sequence[object], models) -> list[str]:
    """Each text's language: the given one (X's ``lang``) when it names a language, else the identifier's."""
    out: list[str | None] = [x_language(g) for g in given]
    missing = [k for k, lang in enumerate(out) if lang is None]
    if missing:
        ident = get_identifier(models)
        found = ident.identify_many([texts[k] if isinstance(texts[k], str) else "" for k in missing])
        for k, lang in zip(missing, found, strict=True):
            out[k] = lang
    return out  # type: ignore[return-value]


__all__ = ["LANGUAGE_FREE_LABELS", "MODEL_LANGUAGE", "UNDETERMINED", "LanguageIdentifier", "get_identifier",
           "is_model_language", "languages_of", "x_language"]
