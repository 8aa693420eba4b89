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


def _lemmas(doc) -> list[str]:
    out: list[str] = []
    for tok in doc:
        if tok.is_space or tok.is_punct:
            continue
        lemma = LEMMA_OVERRIDES.get(tok.lower_) or (tok.lemma_.lower() if tok.lemma_ else tok.lower_)
        if tok.lower_ in ("ca", "wo") and tok.i + 1 < len(doc) and doc[tok.i + 1].lower_ == "n't":
            lemma = "can" if tok.lower_ == "ca" else "will"
        if lemma == "n't":
            lemma = "not"
        # numbers policy: drop digits; keep the letters of mixed tokens ("2hrs" -> "hrs")
        lemma = re.sub(r"\d+", " ", lemma)
        for part in lemma.split():
            m = _WORDISH.search(part)
            if m:
                out.append(m.group(0).strip("'"))
    return [w for w in out if w]


def _finish(original: str, prepared: tuple, doc) -> CleanedText:
    _, mentions, hashtags, found, urls = prepared
    all_tokens = _lemmas(doc)
    stops = _stop_words()
    tokens = [w for w in all_tokens if w not in stops and (len(w) > 1 or w in NEGATIONS)]
    return CleanedText(original, tokens, all_tokens, mentions, hashtags, found, urls)


def clean(text: str) -> CleanedText:
    """Clean one tweet. Raises TypeError for non-text input; empty text gives an empty result."""
    prepared = _prepare(text)
    return _finish(text, prepared, _nlp()(prepared[0]))


def clean_many(texts: list[str], batch_size: int = 1000) -> list[CleanedText]:
    """Clean many tweets in one spaCy pipe call (faster than calling clean() in a loop)."""
    prepared = [_prepare(t) for t in texts]
    docs = _nlp().pipe((p[0] for p in prepared), batch_size=batch_size)
    return [_finish(t, p, d) for t, p, d in zip(texts, prepared, docs)]
