"""Tweet cleaning, offline: spaCy's tokenizer and lookup lemmatiser (tables from spacy-lookups-data).

Rules, in order (each one is tested in tests/nlp/test_clean.py):
1. HTML entities are unescaped (``&amp;`` → ``&``); text is NFKC-normalised; zero-width characters go.
2. URLs are removed (counted in ``urls``).
3. @mentions are removed from the text and kept in ``mentions``; the first one is the ``brand``
   (tweets to an airline start with its handle).
4. Hashtags keep their word, split on CamelCase: ``#NeverAgain`` → ``never again``.
5. Emoji and emoticons become words (``😡`` → ``pout face``, ``:(`` → ``sad``): they carry sentiment,
   and the LSTM vocabulary learns them like any word.
6. Numbers: purely numeric tokens are dropped (flight numbers and times are kept as entities, not as
   classifier features); a number followed by a word keeps the word (``2hrs`` → ``hrs``, ``9:30am`` →
   ``am``), an ordinal goes with its number (``1st``), and any other mix of letters and digits is a code
   (flight ``UA938``, booking reference ``QDRAF5``, gate ``C26``, ``A320``) and is dropped like a number,
   where keeping its letters made words out of codes (``qdraf``). Text-speak with digits becomes its word
   (``gr8`` → ``great``, ``b4`` → ``before``).
7. Lower case, punctuation dropped, lemmatised (``bags`` → ``bag``, ``n't`` and ``n’t`` → ``not``). The lookup
   table has no part of speech and slips on some words; ``LEMMA_OVERRIDES`` keeps those whose lemma is another
   word (``does`` → ``doe``, ``number`` → ``numb``, ``united`` → ``unite``, ``first`` → ``1``).
8. Stop words (spaCy's list) are removed from ``tokens`` but negations are kept: "not", "no", "never"
   and friends flip sentiment. ``all_tokens`` keeps every word, for models that want the full sequence.
An empty result is legal (``tokens == []``); the classifier reports such a tweet as unclassifiable.

Rules 6 and 7 changed in version 2 (``CLEANING_VERSION``); a ``CleanedText`` also carries the tweet as version 1
left it, because the shipped models were trained on version 1 and read it (``for_model``).
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
# Version of the lemma rules (6 and 7). A model records the version it was trained on (model.json "cleaning";
# none recorded = 1) and reads tweets as those rules left them (``CleanedText.for_model``): fixing a rule changes
# what users see and what the next trained model learns, never the input of a model already shipped.
CLEANING_VERSION = 2
# Version 1. The lookup table has no part of speech, so some airline nouns get a verb's lemma ("crew" -> "crow") ...
LEMMA_OVERRIDES_V1 = {"crew": "crew", "flew": "fly", "lounge": "lounge", "boarding": "boarding", "luggage": "luggage"}
# ... and it maps "worst"/"worse" to "wrong" and "best"/"better" to "well": keep the sentiment's strength.
LEMMA_OVERRIDES_V1.update({"worst": "worst", "worse": "worse", "best": "best", "better": "better"})
LEMMA_OVERRIDES = dict(LEMMA_OVERRIDES_V1)
# Version 2, from running the table over every token of the airline data set and keeping the lemmas that are
# another word. Auxiliaries and function words (stop words: they now leave `tokens` instead of showing up in it
# as "doe", "good", "little"; "as" was "a"):
LEMMA_OVERRIDES.update({"does": "do", "'re": "be", "as": "as", "well": "well", "less": "less", "least": "least",
                        "regarding": "regarding", "w/": "with", "w/o": "without"})
# Words the table turns into other words ("number" -> "numb", "ground" -> "grind"), names ("united" -> "unite",
# "vegas" -> "vega"), ordinals it turns into digits (then dropped), abbreviations it strips of an "s":
LEMMA_OVERRIDES.update({w: w for w in (
    "number united airways vegas ground stuck first second third evening matter bit tired media kudos clothes "
    "clothing rent data willing canned wedding training catering marketing pending according interesting "
    "lodging bound criteria pls cs bs"
).split()})
LEMMA_OVERRIDES.update({"dying": "die", "taxes": "tax", "o'hare": "ohare"})
# Text-speak with digits, which the numbers rule would cut to a fragment ("gr8" -> "gr", "2day" -> "day").
LEMMA_OVERRIDES.update({"gr8": "great", "b4": "before", "l8r": "later", "2day": "today", "2nite": "tonight",
                        "any1": "anyone"})
# Rule 6 (version 2) works on runs of letters and digits that hold a digit.
_ALNUM_WITH_DIGIT = re.compile(r"[^\W_]*\d[^\W_]*")
_NUMBER_THEN_WORD = re.compile(r"\d+([^\W\d_]+)")
_ORDINAL_SUFFIXES = frozenset({"st", "nd", "rd", "th"})


@dataclass(frozen=True)
class CleanedText:
    original: str
    tokens: list[str]  # lemmas, stop words removed, negations kept
    all_tokens: list[str]  # lemmas, every word kept
    mentions: list[str] = field(default_factory=list)
    hashtags: list[str] = field(default_factory=list)
    emojis: list[str] = field(default_factory=list)
    urls: int = 0
    v1: CleanedText | None = field(default=None, repr=False)  # the tweet under rules 1, where they differ

    def for_model(self, cleaning: int) -> CleanedText:
        """The tweet as the rules of version ``cleaning`` left it: what a model trained on them reads."""
        return self.v1 if cleaning < CLEANING_VERSION and self.v1 is not None else self

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

    Same result as running spaCy's lookup lemmatizer and reading ``Token`` objects (tests/nlp/test_clean.py keeps
    that path to compare), at a fraction of the cost: creating a Python ``Token`` per token cost more than the tokenizer itself. The
    tokenizer's output is read as arrays (ORTH, IS_PUNCT, IS_SPACE) and every distinct token text is looked up
    once per process, under the current rules and rules 1 (the two differ for a few hundred distinct tokens)."""

    def __init__(self, nlp):
        from spacy.attrs import IS_PUNCT, IS_SPACE, ORTH

        self.nlp = nlp
        self.attrs = [ORTH, IS_PUNCT, IS_SPACE]
        self.table = nlp.get_pipe("lemmatizer").lookups.get_table("lemma_lookup", {})
        self.strings = nlp.vocab.strings
        self.cache: dict[int, tuple[str, ...]] = {}  # orth -> its words under the current rules
        self.v1: dict[int, tuple[str, ...]] = {}  # orth -> its words under rules 1, for the few that differ
        # "can't" / "won't" split as "ca"/"wo" + "n't": "can" / "will" (rules 1 knew only the ASCII apostrophe).
        add = self.strings.add
        self.heads = {add("ca"), add("wo")}
        self.contractions = {}  # (head, n't) -> (words now, words under rules 1 or None if the same)
        for head, word in (("ca", "can"), ("wo", "will")):
            for nt in ("n't", "n\u2019t"):
                v1 = (word,) if nt == "n't" else self.words(head, 1)
                self.contractions[(add(head), add(nt))] = ((word,), None if v1 == (word,) else v1)

    def words(self, text: str, version: int = CLEANING_VERSION) -> tuple[str, ...]:
        """The words of one token under the rules of ``version``."""
        overrides = LEMMA_OVERRIDES_V1
        if version >= 2:
            overrides = LEMMA_OVERRIDES
            text = text.replace("\u2019", "'")  # "n’t", "’s" (typed on phones) are "n't", "'s"
        lemma = self.table.get(text, text)
        lemma = overrides.get(text) or ((lemma if isinstance(lemma, str) else lemma[0]).lower() or text)
        return _words_of_lemma(lemma, version)

    def _learn(self, orth: int) -> tuple[str, ...]:
        if len(self.cache) >= _CACHE_MAX:  # a long-running stream meets ever new tokens
            self.cache.clear()
            self.v1.clear()
        text = self.strings[orth]
        now, v1 = self.words(text), self.words(text, 1)
        if v1 != now:
            self.v1[orth] = v1
        self.cache[orth] = now
        return now

    def __call__(self, texts, batch_size: int = 1000) -> list[tuple[list[str], list[str] | None]]:
        """Per text: its words under the current rules, and under rules 1 (None where they are the same)."""
        out = []
        cache, v1, heads, contractions = self.cache, self.v1, self.heads, self.contractions
        for doc in self.nlp.tokenizer.pipe(texts, batch_size=batch_size):
            arr = doc.to_array(self.attrs)
            words: list[str] = []
            differ: list[tuple[int, int, tuple[str, ...]]] = []  # (position in words, words now, words under 1)
            n = len(arr)
            for k in range(n):
                orth, punct, space = int(arr[k, 0]), arr[k, 1], arr[k, 2]
                if punct or space:
                    continue
                if orth in heads and k + 1 < n and (orth, int(arr[k + 1, 0])) in contractions:
                    parts, old = contractions[(orth, int(arr[k + 1, 0]))]
                    if old is not None:
                        differ.append((len(words), len(parts), old))
                    words.extend(parts)
                    continue
                parts = cache.get(orth)
                if parts is None:
                    parts = self._learn(orth)
                if orth in v1:
                    differ.append((len(words), len(parts), v1[orth]))
                words.extend(parts)
            out.append((words, _splice(words, differ) if differ else None))
        return out


def _splice(words: list[str], differ: list[tuple[int, int, tuple[str, ...]]]) -> list[str]:
    """``words`` with the words at each (position, count) replaced by the other version's."""
    out: list[str] = []
    at = 0
    for pos, count, other in differ:
        out.extend(words[at:pos])
        out.extend(other)
        at = pos + count
    out.extend(words[at:])
    return out


def _lemmatiser() -> _Lemmas:
    lem = getattr(_local, "lemmas", None)
    if lem is None:
        lem = _local.lemmas = _Lemmas(_nlp())
    return lem


def _numbers(m: re.Match) -> str:
    """Rule 6 for one run of letters and digits: the word after a number ("2hrs" -> "hrs"), else nothing."""
    after_number = _NUMBER_THEN_WORD.fullmatch(m.group(0))
    if after_number and after_number.group(1) not in _ORDINAL_SUFFIXES:
        return " " + after_number.group(1)
    return " "  # a number, an ordinal, or a code (UA938, QDRAF5, C26, A320, 8UXZJ2)


def _words_of_lemma(lemma: str, version: int = CLEANING_VERSION) -> tuple[str, ...]:
    if lemma == "n't":
        lemma = "not"
    if version >= 2:
        lemma = _ALNUM_WITH_DIGIT.sub(_numbers, lemma)
    else:  # rules 1 kept the letters of every mix of letters and digits ("qdraf5" -> "qdraf")
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


@lru_cache(maxsize=1)
def _emoji_chars() -> frozenset[str]:
    """The non-ASCII characters of every emoji the ``emoji`` package knows: a text with none holds no emoji."""
    return frozenset(ch for e in emoji.EMOJI_DATA for ch in e if not ch.isascii())


def _prepare(text: str) -> tuple[str, list[str], list[str], list[str], int]:
    if not isinstance(text, str):
        raise TypeError(f"tweet text must be str, not {type(text).__name__}")
    # A lone surrogate (possible from JSON "\\ud800") cannot be encoded and would crash the tokenizer.
    text = _SURROGATE.sub("\ufffd", text)
    text = unicodedata.normalize("NFKC", html.unescape(text))
    text = _ZERO_WIDTH.sub("", text)
    # Each pattern runs only on texts holding the character it needs: the same result, less work (most tweets
    # have no "#", many no link)
    urls = 0
    if "." in text or "://" in text:
        text, urls = _URL.subn(" ", text)
    mentions = _MENTION.findall(text) if "@" in text else []
    if mentions:
        text = _MENTION.sub(" ", text)
    hashtags = _HASHTAG.findall(text) if "#" in text else []
    if hashtags:
        text = _HASHTAG.sub(lambda m: " " + _CAMEL.sub(" ", m.group(1)) + " ", text)
    found: list[str] = []
    # The emoji scan is pure Python and half the cost of this function: only texts holding a character that
    # occurs in some emoji pay it (no emoji is all ASCII; curly quotes and accents are not emoji characters)
    if not text.isascii() and not _emoji_chars().isdisjoint(text):
        found = [e["emoji"] for e in emoji.emoji_list(text)]
        text = emoji.replace_emoji(text, replace=_emoji_words).replace("\u200d", "")
    text = _EMOTICON.sub(lambda m: _EMOTICONS[m.group(0)], text)
    # Lower case before the lookup lemmatiser: its table is case-sensitive ("Bags" would stay "bags").
    # spaCy refuses a text longer than its max_length (1,000,000 characters, ValueError E088): only the
    # classify CLI can pass one (a Tweet holds at most 25,000), and the models read the first words anyway.
    return text.lower()[:MAX_SPACY_CHARS], mentions, hashtags, found, urls


def _content_words(all_tokens: list[str]) -> list[str]:
    stops = _stop_words()
    return [w for w in all_tokens if w not in stops and (len(w) > 1 or w in NEGATIONS)]


def _finish(original: str, prepared: tuple, all_tokens: list[str], v1_tokens: list[str] | None) -> CleanedText:
    _, mentions, hashtags, found, urls = prepared
    v1 = None
    if v1_tokens is not None:
        v1 = CleanedText(original, _content_words(v1_tokens), v1_tokens, mentions, hashtags, found, urls)
    return CleanedText(original, _content_words(all_tokens), all_tokens, mentions, hashtags, found, urls, v1)


def clean(text: str) -> CleanedText:
    """Clean one tweet. Raises TypeError for non-text input; empty text gives an empty result."""
    return clean_many([text])[0]


def clean_many(texts: list[str], batch_size: int = 1000) -> list[CleanedText]:
    """Clean many tweets (one tokenizer pass; lemmas looked up once per distinct token)."""
    prepared = [_prepare(t) for t in texts]
    words = _lemmatiser()((p[0] for p in prepared), batch_size=batch_size)
    return [_finish(t, p, now, v1) for t, p, (now, v1) in zip(texts, prepared, words)]
