"""Tweet cleaning, offline: spaCy's tokenizer and lookup lemmatiser (tables from spacy-lookups-data).

Rules, in order (each one is tested in tests/test_clean.py):
1. HTML entities are unescaped (``&amp;`` → ``&``); text is NFKC-normalised; zero-width characters go.
2. URLs are removed (counted in ``urls``).
3. @mentions are removed from the text and kept in ``mentions``; the first one is the ``brand``
   (tweets to an airline start with its handle).
4. Hashtags keep their word, split on CamelCase: ``#NeverAgain`` → ``never again``.
5. Emoji and emoticons become words (``😡`` → ``pout face``, ``:(`` → ``sad``): they carry sentiment,
   and the LSTM vocabulary learns them like any word.
6. Numbers: purely numeric tokens are dropped (flight numbers and times are kept as entities, not as
   classifier features); tokens mixing letters and digits (``2hrs``) keep their letters (``hrs``).
7. Lower case, punctuation dropped, lemmatised (``bags`` → ``bag``, ``n't`` → ``not``).
8. Stop words (spaCy's list) are removed from ``tokens`` but negations are kept: "not", "no", "never"
   and friends flip sentiment. ``all_tokens`` keeps every word, for models that want the full sequence.
An empty result is legal (``tokens == []``); the classifier reports such a tweet as unclassifiable.
"""

from __future__ import annotations

import html
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

import emoji

NEGATIONS = frozenset(
    {"no", "not", "never", "nor", "none", "nothing", "nobody", "nowhere", "neither", "cannot", "without", "n't"}
)
# Words spaCy lists as stop words that decide a complaint's meaning in this domain.
DOMAIN_KEEP = frozenset({"again", "still", "only", "too", "very", "back", "off", "down", "up", "first", "last"})

_URL = re.compile(r"(?:https?://|www\.)\S+|\b\S+\.(?:com|co|ly|net|org)/\S*", re.IGNORECASE)
_MENTION = re.compile(r"(?<![\w@])@(\w{1,30})")
_HASHTAG = re.compile(r"(?<!\w)#(\w+)")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")
# ZWJ (U+200D) is kept until the emoji pass: it glues emoji ZWJ sequences ("👨‍👩‍👧" is one emoji).
_ZERO_WIDTH = re.compile("[\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_EMOTICONS = {
    ":)": " smile ", ":-)": " smile ", ":D": " laugh ", ":-D": " laugh ", ";)": " wink ", ";-)": " wink ",
    ":(": " sad ", ":-(": " sad ", ":'(": " cry ", ":/": " annoyed ", ":-/": " annoyed ", ":P": " tongue ",
    "<3": " love ", "</3": " heartbroken ",
}
_EMOTICON = re.compile("|".join(re.escape(k) for k in sorted(_EMOTICONS, key=len, reverse=True)) + r"(?=\s|$)")
# Letters of any script ("café", "naïve"), not only ASCII; digits and "_" are not letters.
_WORDISH = re.compile(r"[^\W\d_][^\W\d_']*")
# The lookup table has no part of speech, so some airline nouns get a verb's lemma ("crew" -> "crow").
LEMMA_OVERRIDES = {"crew": "crew", "flew": "fly", "lounge": "lounge", "boarding": "boarding", "luggage": "luggage"}
# ... and it maps "worst"/"worse" to "wrong" and "best"/"better" to "well": keep the sentiment's strength.
LEMMA_OVERRIDES.update({"worst": "worst", "worse": "worse", "best": "best", "better": "better"})


@dataclass(frozen=True)
class CleanedText:
    original: str
    tokens: list[str]  # lemmas, stop words removed, negations kept
    all_tokens: list[str]  # lemmas, every word kept
    mentions: list[str] = field(default_factory=list)
    hashtags: list[str] = field(default_factory=list)
    emojis: list[str] = field(default_factory=list)
    urls: int = 0

    @property
    def text(self) -> str:
        return " ".join(self.tokens)

    @property
    def brand(self) -> str | None:
        return self.mentions[0].lower() if self.mentions else None

    @property
    def empty(self) -> bool:
        return not self.tokens


_local = threading.local()


MAX_SPACY_CHARS = 1_000_000  # spaCy's default nlp.max_length


@lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(w for w in STOP_WORDS if w not in NEGATIONS and w not in DOMAIN_KEEP)


def _nlp():
    # One blank pipeline per thread; spaCy pipelines are not documented as thread-safe.
    nlp = getattr(_local, "nlp", None)
    if nlp is None:
        import spacy

        nlp = spacy.blank("en")
        nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
        nlp.initialize()  # loads the lookup table from spacy-lookups-data: no download
        _local.nlp = nlp
    return nlp


_CACHE_MAX = 200_000


class _Lemmas:
    """Token text -> its words after lemmatising and the numbers policy, cached per distinct token.

    Same result as running spaCy's lookup lemmatizer and reading ``Token`` objects (tests/test_clean.py keeps
    that path to compare), at a fraction of the cost: creating a Python ``Token`` per token cost more than the tokenizer itself. The
    tokenizer's output is read as arrays (ORTH, IS_PUNCT, IS_SPACE) and every distinct token text is looked up
    once per process."""

    def __init__(self, nlp):
        from spacy.attrs import IS_PUNCT, IS_SPACE, ORTH

        self.nlp = nlp
        self.attrs = [ORTH, IS_PUNCT, IS_SPACE]
        self.table = nlp.get_pipe("lemmatizer").lookups.get_table("lemma_lookup", {})
        self.strings = nlp.vocab.strings
        self.cache: dict[int, tuple[str, ...]] = {}
        self.ca_wo = {self.strings.add("ca"): "can", self.strings.add("wo"): "will"}
        self.nt = self.strings.add("n't")

    def words(self, text: str) -> tuple[str, ...]:
        lemma = self.table.get(text, text)
        lemma = LEMMA_OVERRIDES.get(text) or ((lemma if isinstance(lemma, str) else lemma[0]).lower() or text)
        return _words_of_lemma(lemma)

    def __call__(self, texts, batch_size: int = 1000) -> list[list[str]]:
        out = []
        cache = self.cache
        for doc in self.nlp.tokenizer.pipe(texts, batch_size=batch_size):
            arr = doc.to_array(self.attrs)
            words: list[str] = []
            n = len(arr)
            for k in range(n):
                orth, punct, space = int(arr[k, 0]), arr[k, 1], arr[k, 2]
                if punct or space:
                    continue
                if orth in self.ca_wo and k + 1 < n and int(arr[k + 1, 0]) == self.nt:
                    words.append(self.ca_wo[orth])
                    continue
                parts = cache.get(orth)
                if parts is None:
                    if len(cache) >= _CACHE_MAX:  # a long-running stream meets ever new tokens
                        cache.clear()
                    parts = cache[orth] = self.words(self.strings[orth])
                words.extend(parts)
            out.append(words)
        return out


def _lemmatiser() -> _Lemmas:
    lem = getattr(_local, "lemmas", None)
    if lem is None:
        lem = _local.lemmas = _Lemmas(_nlp())
    return lem


def _words_of_lemma(lemma: str) -> tuple[str, ...]:
    if lemma == "n't":
        lemma = "not"
    # numbers policy: drop digits; keep the letters of mixed tokens ("2hrs" -> "hrs")
    lemma = re.sub(r"\d+", " ", lemma)
    out = []
    for part in lemma.split():
        m = _WORDISH.search(part)
        if m:
            w = m.group(0).strip("'")
            if w:
                out.append(w)
    return tuple(out)


def _emoji_words(ch: str, data: dict) -> str:
    name = data["en"].strip(":").replace("_", " ")
    return f" {name} "


def _prepare(text: str) -> tuple[str, list[str], list[str], list[str], int]:
    if not isinstance(text, str):
        raise TypeError(f"tweet text must be str, not {type(text).__name__}")
    # A lone surrogate (possible from JSON "\\ud800") cannot be encoded and would crash the tokenizer.
    text = _SURROGATE.sub("\ufffd", text)
    text = unicodedata.normalize("NFKC", html.unescape(text))
    text = _ZERO_WIDTH.sub("", text)
    urls = len(_URL.findall(text))
    text = _URL.sub(" ", text)
    mentions = _MENTION.findall(text)
    text = _MENTION.sub(" ", text)
    hashtags = _HASHTAG.findall(text)
    text = _HASHTAG.sub(lambda m: " " + _CAMEL.sub(" ", m.group(1)) + " ", text)
    found: list[str] = []
    if not text.isascii():  # every emoji is non-ASCII; the emoji scan is a third of the cleaning time
        found = [e["emoji"] for e in emoji.emoji_list(text)]
        text = emoji.replace_emoji(text, replace=_emoji_words).replace("\u200d", "")
    text = _EMOTICON.sub(lambda m: _EMOTICONS[m.group(0)], text)
    # Lower case before the lookup lemmatiser: its table is case-sensitive ("Bags" would stay "bags").
    # spaCy refuses a text longer than its max_length (1,000,000 characters, ValueError E088): only the
    # classify CLI can pass one (a Tweet holds at most 25,000), and the models read the first words anyway.
    return text.lower()[:MAX_SPACY_CHARS], mentions, hashtags, found, urls


def _finish(original: str, prepared: tuple, all_tokens: list[str]) -> CleanedText:
    _, mentions, hashtags, found, urls = prepared
    stops = _stop_words()
    tokens = [w for w in all_tokens if w not in stops and (len(w) > 1 or w in NEGATIONS)]
    return CleanedText(original, tokens, all_tokens, mentions, hashtags, found, urls)


def clean(text: str) -> CleanedText:
    """Clean one tweet. Raises TypeError for non-text input; empty text gives an empty result."""
    return clean_many([text])[0]


def clean_many(texts: list[str], batch_size: int = 1000) -> list[CleanedText]:
    """Clean many tweets (one tokenizer pass; lemmas looked up once per distinct token)."""
    prepared = [_prepare(t) for t in texts]
    words = _lemmatiser()((p[0] for p in prepared), batch_size=batch_size)
    return [_finish(t, p, w) for t, p, w in zip(texts, prepared, words)]
