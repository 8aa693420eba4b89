"""The fast tier of entity extraction: dates, times and money by grammar, places from a gazetteer.

Why: spaCy's statistical NER costs ~1.5 ms per tweet on one core of this machine (its CNN and transition
parser run per token), which alone caps a 2-core stream near 1,000 tweets/s. On airline tweets its DATE,
TIME and MONEY spans are a small, regular language ("today", "2 hours", "last night", "Feb 25", "$200")
and its places are mostly cities, states and countries with a name anyone could list. So the extractor
(``entities.EntityExtractor``, mode "fast") finds those here, in about 0.1 ms, and asks the statistical
model only about tweets that still hold an unexplained capitalised word next to a place preposition
("stuck in Hayden"), keeping only the places it finds there. ``benchmarks/entities.py`` measures how
this agrees with the model run on every tweet.

Spans use the labels of spaCy's English models (GPE, LOC, FAC, DATE, TIME, MONEY) and offsets into the
original tweet text; mentions, URLs and HTML entities are masked first (same length, so offsets hold).
"""

from __future__ import annotations

import re
from functools import lru_cache

from tweetdesk.nlp.lexicon import DOMAIN_WORDS, MAJOR_AIRPORTS, PLACE_ABBREVIATIONS, common_words, shouted

# --- masking: offsets into the original text must survive ---------------------------------------------
_MASK = re.compile(r"(?:https?://|www\.)\S+|(?<![\w@])@\w{1,30}|&[a-zA-Z]{2,6};|&#\d{1,6};|#(?=\w)")


def masked(text: str) -> str:
    """``text`` with URLs, @mentions, HTML entities and the '#' of hashtags blanked (same length)."""
    return _MASK.sub(lambda m: " " * len(m.group(0)), text)


# --- dates, times, money ---------------------------------------------------------------------------------
_NUM_WORDS = (
    r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|"
    r"seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred"
)
_NUM = (
    r"(?:\d+(?:\s1/2|\.\d+)?(?:\s?-\s?\d+|\+)?"
    rf"|(?:{_NUM_WORDS})(?:[\s-](?:{_NUM_WORDS}))?"
    r"|a\s+few|a\s+couple(?:\s+of)?|couple(?:\s+of)?|several|few|many|a|an|another)"
)
_QUAL = (
    r"(?:(?:almost|nearly|over|about|around|more\s+than|less\s+than|under|at\s+least|only|just|another"
    r"|the\s+(?:past|last|next|first|following))\s+)?"
)
_MONTHS = (
    r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?"
    r"|nov(?:ember)?|dec(?:ember)?"
)
_WEEKDAYS = r"monday|tuesday|wednesday|thursday|friday|saturday|sunday"
_ORD = r"(?:st|nd|rd|th)"

# One alternation per label; the first alternative that matches at a position wins, so longer forms
# come first ("tomorrow morning" is a TIME before "tomorrow" is a DATE).
_TIME = (
    r"\b(?:tomorrow|yesterday|this|last|every|all|late|early)\s+(?:morning|afternoon|evening|night)s?\b"
    rf"|\b{_QUAL}{_NUM}[\s-]?(?:hours?|hrs?|minutes?|mins?)\b(?:\s+and\s+a\s+half)?"
    r"|\bhalf\s+(?:an\s+)?hour\b|\bhours\b(?!\s+ago)"
    r"|\b\d{1,2}(?:[:.][0-5]\d)?\s?(?:am|pm|a\.m\.|p\.m\.)|\b\d{1,2}:[0-5]\d\b|\b(?:noon|midnight)\b"
    r"|\b(?:tonight|tonite|2nite|overnight)\b|\b(?:the\s+)?(?:morning|afternoon|evening|night)\b"
)
_DATE = (
    rf"\b{_QUAL}{_NUM}[\s-]?(?:days?|weeks?|wks?|months?|mths?|years?|yrs?)\b(?:[\s-]old\b|\s+ago\b)?"
    r"|\b(?:hours|days|weeks|months|years)\s+ago\b"
    rf"|\b(?:{_MONTHS})\.?\s+\d{{1,2}}{_ORD}?\b(?:,?\s+(?:19|20)\d\d\b)?"
    rf"|\b(?:{_MONTHS})\.?\s+(?:19|20)\d\d\b|\b(?:(?:this|last|next|the)\s+)?(?:summer|winter)\b"
    rf"|\b\d{{1,2}}{_ORD}?\s+(?:of\s+)?(?:{_MONTHS})\b"
    rf"|\b(?:(?:this|next|last|every)\s+)?(?:{_WEEKDAYS})s?\b"
    r"|\b(?:this|next|last|every|the|all|same|a)\s+(?:next\s+|same\s+|following\s+|previous\s+)?(?:day|week|weekend|month|year)\b"
    r"|\b(?:today|tomorrow|yesterday|tmrw|tomorow|2day|2morrow)\b"
    r"|\b(?:january|february|april|june|july|august|september|october|november|december)\b|\bMarch\b"
    r"|\b\d{1,2}/\d{1,2}(?:/(?:\d{4}|\d{2}))?\b(?!/|\s?(?:hours?|hrs?|minutes?|mins?)\b)|(?<![$£€¥\d])\b(?:19|20)\d\d\b"
    rf"|\bthe\s+\d{{1,2}}{_ORD}\b|\b(?:daily|weekly|monthly|annual)\b"
    r"|\b(?:christmas|thanksgiving|easter|new\s+year'?s(?:\s+(?:eve|day))?|valentine'?s\s+day|memorial\s+day|labor\s+day)\b"
)
_MONEY = (
    r"(?:\b(?:almost|nearly|over|about|around|under|only|just|another|an\s+extra|extra)\s+)?"
    r"(?:US|CA|C|A)?[$£€¥]\s?\d[\d,]*(?:\.\d{1,2})?(?:\s?(?:k|m|million|billion)\b)?"
    r"|\b\d[\d,]*(?:\.\d{1,2})?\s?(?:dollars?|bucks|usd|euros?|cents)\b"
)
_TEMPORAL_SRC = rf"(?P<MONEY>{_MONEY})|(?P<TIME>{_TIME})|(?P<DATE>{_DATE})"
# Matched against the lower-cased text (a case-insensitive alternation this size is ~3x slower in `re`).
# Every alternative starts at the start of a word or at a currency sign: saying so first lets `re` skip the
# other positions at once (2.5x faster, same matches).
_START = r"(?:(?<!\w)(?=\w)|(?=[$£€¥]))"
_TEMPORAL = re.compile(rf"{_START}(?:(?P<MONEY>{_MONEY.lower()})|(?P<TIME>{_TIME.lower()})|(?P<DATE>{_DATE.lower()}))")
_TEMPORAL_ANY_CASE = re.compile(rf"{_START}(?:{_TEMPORAL_SRC})", re.IGNORECASE)
# Every DATE/TIME/MONEY span holds one of these; a tweet without any is skipped at once.
_ANCHOR = re.compile(
    r"[$£€¥\d]|hour|hr|min|day|week|wk|month|mth|year|yr|ago|morning|afternoon|evening|night|nite|noon|"
    r"today|tomorrow|tomorow|tmrw|yesterday|mon|tue|wed|thu|fri|sat|sun|jan|feb|mar|apr|may|jun|jul|aug|sep|"
    r"oct|nov|dec|daily|annual|christmas|thanksgiving|easter|valentine|labor|dollar|buck|usd|euro|cent")


def temporal_money(mtext: str) -> list[tuple[int, int, str]]:
    """(start, end, label) of DATE/TIME/MONEY spans in a masked text, left to right, not overlapping."""
    low = mtext.lower()
    if not _ANCHOR.search(low):
        return []
    # str.lower() keeps offsets except for a few characters ("İ"); then match case-insensitively instead.
    pattern, subject = (_TEMPORAL, low) if len(low) == len(mtext) else (_TEMPORAL_ANY_CASE, mtext)
    out = []
    for m in pattern.finditer(subject):
        s, e = m.span()
        if m.lastgroup == "DATE" and mtext[s:e].lower() == "march" and not mtext[s].isupper():
            continue  # "march" is a verb; the month is written "March"
        out.append((s, e, m.lastgroup))
    return out


# --- places -------------------------------------------------------------------------------------------
# Regions and landmarks tweeted about that no airport's city, state or country names.
_LOCATIONS = (
    "Europe Asia Africa Antarctica Caribbean Midwest Rockies Atlantic Pacific Siberia Scandinavia "
    "Patagonia Appalachia".split()
) + ["North America", "South America", "Central America", "Latin America", "Middle East", "East Coast",
     "West Coast", "Gulf Coast", "Pacific Northwest", "New England", "Bay Area", "East Bay", "South Florida",
     "Northern California", "Southern California", "Western Hemisphere", "Great Lakes"]
_ALIASES = ["Vegas", "Salt Lake", "St Thomas", "St Louis", "St Croix", "St Maarten", "Ft Lauderdale", "Ft Myers",
            "Philly", "Frisco", "Big Apple", "Windy City", "Twin Cities", "Motor City", "Hawaii", "Puerto Rico",
            "America", "United States", "England", "Scotland", "Wales"]
# Airports people call by name (FAC); "<Name> Airport" is found by pattern.
_AIRPORT_NAMES = ["O'Hare", "OHare", "LaGuardia", "La Guardia", "Heathrow", "Gatwick", "Logan", "Midway", "Dulles",
                  "Reagan National", "Love Field", "Hobby", "McCarran", "Narita", "Haneda", "Pearson", "Sky Harbor",
                  "Hartsfield", "Schiphol", "Charles de Gaulle", "Changi", "Lindbergh Field", "Bradley"]
_AIRPORT_SUFFIX = re.compile(
    r"\b(?:[A-Z][\w'.]*(?:[\s-](?=[A-Z]))?){1,3}\s(?:International\s+)?(?:Airport|Intl|Int'l)\b")
_DOTTED = re.compile(r"\b(?:U\.S\.(?:A\.)?|U\.K\.|D\.C\.?)")
# "Jackson, MS", "Aguadilla, PR": a state's postal code after a capitalised word and a comma.
_STATE_CODES = (
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK "
    "OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC PR".split())
_CITY_STATE = re.compile(rf"(?<=[a-z]), ((?:{'|'.join(_STATE_CODES)}))\b(?! [A-Z]{{2,}})")
_PLACE_CUE = re.compile(r"(?i:\b(?:in|at|to|from|into|near|via|through|thru|outside|around|leaving|visiting|"
                        r"towards?|out\s+of|fly(?:ing)?\s+to|back\s+to|home\s+to|stuck\s+in)\s+$)")
_US_AIR = re.compile(r"\s?(?i:air\b|airways\b)")  # "US Air" is the airline
_WORD = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)?")
_MAX_WORDS = 4


# Where most of these tweets' places are: their cities and states are known by a one-word name alone.
_HOME_COUNTRIES = frozenset({"US", "CA", "MX", "PR", "VI", "BS", "JM", "DO", "AW", "BB", "KY", "TC", "LC", "CR"})
# strong: counts in Title Case anywhere; weak: only after a place preposition; lower: counts in lower case too
# ("chicago", "ohio": cities of large airports, US states, countries -- not "platinum", a village in Alaska).
STRONG, WEAK, LOWER = "strong", "weak", "lower"
_RANK = {WEAK: 0, STRONG: 1, LOWER: 2}


@lru_cache(maxsize=1)
def gazetteer() -> dict[tuple[str, ...], tuple[str, str]]:
    """Lower-case word tuples of place names -> (label, strength): cities and states/provinces of every airport
    with an IATA code (``airportsdata``), country names (``pytz``), regions, aliases and airport names.
    A one-word name is "weak" when it is a city or region of a far-away airport ("Mary", "Adam", "Saga"):
    it counts only after a place preposition."""
    import airportsdata
    import pytz

    common = common_words()
    names: dict[tuple[str, ...], tuple[str, str]] = {}

    def add(name: str, label: str, strength: str) -> None:
        words = tuple(w.lower() for w in _WORD.findall(name))
        if not words or len(words) > _MAX_WORDS:
            return
        # A one-word name that is also an English or airline word ("Mobile", "Delta") is not worth its noise.
        if len(words) == 1 and (words[0] in common or words[0] in DOMAIN_WORDS or len(words[0]) < 3):
            return
        if len(words) > 1 and strength == WEAK:
            strength = STRONG  # "Santa Cruz" is a place wherever it is
        have = names.get(words)
        if have is None or _RANK[strength] > _RANK[have[1]]:
            names[words] = (have[0] if have else label, strength)

    for name in _AIRPORT_NAMES:
        add(name, "FAC", LOWER)
    for name in _LOCATIONS:
        add(name, "LOC", LOWER)
    for name in _ALIASES:
        add(name, "GPE", LOWER)
    for country in pytz.country_names.values():
        add(country.replace("&", "and"), "GPE", LOWER)
    for code, a in airportsdata.load("IATA").items():
        major, home = code in MAJOR_AIRPORTS, a["country"] in _HOME_COUNTRIES
        add(a["city"], "GPE", LOWER if major else STRONG if home else WEAK)
        add(a["subd"], "GPE", LOWER if a["country"] == "US" or major else STRONG if home else WEAK)
    return names


@lru_cache(maxsize=1)
def _first_words() -> dict[str, int]:
    """First word of each gazetteer name -> the most words a name starting with it has."""
    out: dict[str, int] = {}
    for words in gazetteer():
        out[words[0]] = max(out.get(words[0], 0), len(words))
    return out


def _capitalised(word: str) -> bool:
    return word[:1].isupper()


def places(text: str, mtext: str, taken: list[tuple[int, int]]) -> list[tuple[int, int, str]]:
    """(start, end, label) of place names in ``mtext`` (masked ``text``) that do not overlap ``taken``.

    A name matches in Title Case or capitals ("New York", "DENVER"); in lower case only when one of its words
    is not a common English word ("chicago", "fort lauderdale"), and a one-word name then needs 4+ letters.
    Upper-case abbreviations ("NYC", "US") count unless the whole tweet is shouted.
    """
    gaz, longest = gazetteer(), _first_words()
    common = common_words()
    words = [(m.start(), m.end(), m.group(0)) for m in _WORD.finditer(mtext)]
    lows = [w.lower() for _, _, w in words]
    # Only words that can start a name or are an abbreviation need a look (most words are neither).
    candidates = [k for k, w in enumerate(lows) if w in longest or words[k][2] in PLACE_ABBREVIATIONS]
    out: list[tuple[int, int, str]] = []

    def free(s: int, e: int) -> bool:
        return not overlaps(s, e, taken) and not overlaps(s, e, [(os_, oe) for os_, oe, _ in out])

    for m in _AIRPORT_SUFFIX.finditer(mtext):
        if free(m.start(), m.end()):
            out.append((m.start(), m.end(), "FAC"))
    for m in _DOTTED.finditer(mtext):
        if free(m.start(), m.end()):
            out.append((m.start(), m.end(), "GPE"))
    for m in _CITY_STATE.finditer(mtext):
        if free(m.start(1), m.end(1)):
            out.append((m.start(1), m.end(1), "GPE"))
    loud = None
    after = 0  # the first word not yet part of a name found
    for i in candidates:
        if i < after:
            continue
        hit = None
        for n in range(min(longest.get(lows[i], 0), len(words) - i), 0, -1):
            # the gazetteer first: most word runs are no name, and the lookup is cheaper than the gap check
            key = tuple(lows[i : i + n])
            entry = gaz.get(key)
            if entry is None:
                continue
            chunk = words[i : i + n]
            # words of one name are separated by a space or a hyphen only ("Fort Lauderdale", "Wilkes-Barre")
            if n > 1 and any(mtext[a[1] : b[0]] not in (" ", "-") for a, b in zip(chunk, chunk[1:])):
                continue
            label, strength = entry
            raw = [w for _, _, w in chunk]
            if all(_capitalised(w) for w in raw):
                ok = strength != WEAK or bool(_PLACE_CUE.search(mtext[max(0, chunk[0][0] - 20) : chunk[0][0]]))
            elif all(w.islower() for w in raw):
                ok = (strength == LOWER or n > 1) and any(k not in common for k in key) and (n > 1 or len(key[0]) >= 4)
            else:
                ok = False
            if ok:
                hit = (chunk[0][0], chunk[-1][0] + len(raw[-1]), label, n)
                break
        if hit is None:
            s, e, w = words[i]
            if w in PLACE_ABBREVIATIONS and not (w == "US" and _US_AIR.match(mtext, e)):
                if loud is None:
                    loud = shouted(text)
                if not loud:
                    hit = (s, e, "GPE", 1)
        if hit is not None:
            s, e, label, n = hit
            if free(s, e):
                out.append((s, e, label))
            after = i + n
    return out


# --- what is left for the statistical model -------------------------------------------------------------
_CAP = re.compile(r"(?<![\w'’])[A-Z][a-z][A-Za-z'’-]*")


def needs_model(mtext: str, taken: list[tuple[int, int]]) -> bool:
    """True when, outside every span already found, a capitalised word that is neither a common English word
    nor an airline word follows a place preposition ("stuck in Hayden"): a place the gazetteer may not know."""
    common = common_words()
    for m in _CAP.finditer(mtext):
        s, e = m.span()
        if overlaps(s, e, taken):
            continue
        low = m.group(0).lower().rstrip("'’s")
        if low in common or low in DOMAIN_WORDS:
            continue
        if _PLACE_CUE.search(mtext[max(0, s - 20) : s]):
            return True
    return False


def overlaps(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    """Whether [start, end) overlaps any of ``spans``."""
    return any(start < e and s < end for s, e in spans)
