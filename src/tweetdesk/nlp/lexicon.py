"""The word lists and codes both entity tiers read (``entities`` and ``fast_entities``): airline designators,
airport codes and the words that look like them, place abbreviations, the domain's non-place words, and the
common-English-word and place-word tables (built once per process from offline packages)."""

from __future__ import annotations

import re
from functools import lru_cache

# For telling a shouted tweet: mentions and URLs do not count as words.
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_MENTION = re.compile(r"(?<![\w@])@(\w{1,30})")
_LETTER_WORD = re.compile(r"[A-Za-z]{2,}")


# IATA airline designators of the carriers customers tweet at (US majors/regionals and large foreign ones).
# A closed list: "A3"/"B7" are also seats and gates, so an unknown two-character prefix is not a flight.
DESIGNATORS = frozenset(
    "UA AA DL WN US VX B6 AS NK F9 HA G4 SY OO YX 9E MQ OH EV QX ZW CO NW VA "
    "AC WS PD BA VS AF KL LH LX OS SN IB AZ EI TK EK QR EY CX SQ NH JL QF NZ AM CM AV LA KE OZ "
    "CA MU CZ BR CI AI SA ET FI SK AY TP".split()
)
# The airline a tweet is addressed to tells whose "flight 1234" it is.
HANDLE_DESIGNATOR = {
    "united": "UA", "americanair": "AA", "delta": "DL", "southwestair": "WN", "usairways": "US",
    "virginamerica": "VX", "jetblue": "B6", "alaskaair": "AS", "spiritairlines": "NK", "flyfrontier": "F9",
    "hawaiianair": "HA", "allegiant": "G4", "suncountryair": "SY", "aircanada": "AC", "westjet": "WS",
    "british_airways": "BA", "virginatlantic": "VS", "airfrance": "AF", "klm": "KL", "lufthansa": "LH",
}

# Busiest airports (FAA large and medium hubs, Canada's and the world's largest): a bare upper-case mention of
# one of these is taken as the airport. Any other IATA code needs route/airport context (see entities._is_airport).
MAJOR_AIRPORTS = frozenset(
    # US large hubs
    "ATL DFW DEN ORD LAX JFK LAS MCO MIA CLT SEA PHX EWR SFO IAH BOS FLL MSP LGA DTW PHL SLC BWI DCA SAN IAD "
    "TPA BNA AUS MDW HNL "
    # US medium hubs
    "DAL PDX STL HOU SMF MSY RDU SJC SNA MCI OAK SAT RSW CLE IND PIT CVG CMH PBI JAX BDL ONT OGG ABQ BUR OMA "
    "CHS ANC MKE BUF SJU RIC BOI ORF OKC MEM SDF TUS ELP GEG RNO GRR PVD TUL DSM SAV BHM ALB LGB KOA LIH "
    "PSP SRQ MYR PWM HPN ISP BTV CHO "
    # Canada, Mexico, Caribbean, Latin America
    "YYZ YVR YUL YYC YOW YEG YWG YHZ MEX CUN GDL SJD PVR NAS MBJ PUJ SDQ STT SXM AUA BDA GCM BGI "
    "PTY SJO LIR BOG MDE LIM SCL GRU GIG EZE "
    # Europe, Middle East, Asia, Oceania
    "LHR LGW MAN EDI DUB CDG ORY FRA MUC AMS BRU ZRH GVA VIE CPH ARN OSL HEL MAD BCN LIS FCO MXP ATH IST "
    "DXB DOH AUH TLV HKG NRT HND KIX ICN PEK PVG CAN TPE SIN BKK KUL MNL DEL BOM SYD MEL AKL".split()
)
# Major codes that are words people write in capitals for emphasis ("you CAN fix it"): need context.
EMPHASIS_WORDS = frozenset({"CAN", "MAD", "MAN", "SAT", "SIN", "GIG"})

# Upper-case abbreviations of the airline world and of tweets that are also IATA codes.
NOT_AIRPORTS = frozenset(
    "CEO TSA FAA SWA UAL LUV USA FLT EST PST CST EDT CDT MST PDT ATC IVR CTL POS SOP MVP BFF GMA NYT PNR "
    "ABC CBS NBC CNN ESP FYI OMG LOL BTW IMO DEF RES VIP TBA TBD ETA USD SMH WOW YAY LMK IDK TIA DIA FFL "
    "CXL GSA CSM MCE KTN AAL AWE LAN SYS FUK WTF".split()
)

@lru_cache(maxsize=1)
def common_words() -> frozenset[str]:
    """Lower-case English words more frequent than about the 8,000th (spaCy's lexeme probabilities from
    spacy-lookups-data, offline). Used to tell "THE"/"BAG" from codes and common words from names."""
    import gzip
    import json
    from importlib.resources import files

    from spacy.lang.en.stop_words import STOP_WORDS

    path = files("spacy_lookups_data") / "data" / "en_lexeme_prob.json.gz"
    with path.open("rb") as fh:
        probs = json.load(gzip.open(fh))
    words = {w for w, p in probs.items() if p > -12.0 and w.isalpha() and w.islower()}
    return frozenset(words | set(STOP_WORDS))



def shouted(text: str) -> bool:
    """More than half of the tweet's words (mentions and URLs aside) are in capitals."""
    words = _LETTER_WORD.findall(_URL.sub(" ", _MENTION.sub(" ", text)))
    return sum(w.isupper() for w in words) * 2 > len(words)



# Capitalised words of this domain that are not places: airline names, tweet jargon, and the data set's
# "Cancelled Flight"/"Late Flight" substitution artefacts ("Flightled", "Flightr").
DOMAIN_WORDS = frozenset(
    "united southwest delta jetblue american americanair virgin america airways usairways usair airlines airline "
    "air aa ua sw swa dm dms rt thx ty tia pls plz kudos ugh im fa fas fo ceo tsa faa wifi flyfi ok omg lol wtf "
    "fyi btw smh imo idk hi hey flightled flightr flighted flightlation flightlations flighting "
    "ipad iphone app mileageplus aadvantage trueblue".split()
)
# Upper-case place abbreviations that are (also) common words or too short for the common-word test.
PLACE_ABBREVIATIONS = frozenset(
    "US USA UK UAE EU LA SF DC NY NYC NJ KC NC SC CA TX FL AZ NV CT VA MD MI WI MN IL TN KY PR VT NH RI UT NM "
    "NE KS SD ND WY AK NOLA".split()
)

@lru_cache(maxsize=1)
def place_words() -> frozenset[str]:
    """Lower-case words of the names of cities and regions with an airport (airportsdata) that are not common
    English words: "chicago", "vegas", "lauderdale". Tweets often write places in lower case."""
    import airportsdata

    common = common_words()
    words = set()
    for a in airportsdata.load("IATA").values():
        for name in (a["city"], a["subd"]):
            for w in re.findall(r"[a-z]{3,}", name.lower()):
                if w not in common and w not in DOMAIN_WORDS:
                    words.add(w)
    return frozenset(words)
