"""A ticket's reply class, which orders the reply budget's queue and sets the desk's first-response timer.

Lower goes first (oldest first within a class):

====  ==========  =====================================================================================
 0    agent       a reply an agent wrote (``POST /api/replies``)
 1    urgent      negative, and an urgent topic (Delay and Customer Service, Baggage Issue, Reschedule
                  and Refund), an urgent word (cancelled, delayed, stranded, missed connection, lost
                  bag, rebook, medical, …) or a flight number in the tweet
 2    negative    any other negative tweet
 3    neutral     neutral or unclassifiable
 4    positive    thanks and praise
====  ==========  =====================================================================================

A tweet in a language the models do not read (sentiment ``not_inferred``) gets no class from a guessed
sentiment: it is **urgent** when it says so in words of its own language that name an urgent matter (cancelado,
annulé, verspätet, perdieron mi maleta, …, ``URGENT_WORDS_OTHER``, or the English ones), else it waits in the
desk's **language** queue (``desk_class``; its own first-response timer, ``desk_due_minutes["language"]``) and
its reply is ordered with the negative ones: a message nobody has read is treated as a possible complaint.

A later tweet in a thread can raise its ticket's queued reply ("update: now it's cancelled" → urgent);
a ticket gets one reply however many tweets its customer sends while it waits.

"""

from __future__ import annotations

import re

from tweetdesk.records import NOT_INFERRED, EnrichedTweet

AGENT, URGENT, NEGATIVE, NEUTRAL, POSITIVE = 0, 1, 2, 3, 4
PRIORITY_CLASSES: dict[int, str] = {AGENT: "agent", URGENT: "urgent", NEGATIVE: "negative", NEUTRAL: "neutral", POSITIVE: "positive"}

URGENT_TOPICS = frozenset({"Delay and Customer Service", "Baggage Issue", "Reschedule and Refund"})
URGENT_WORDS = re.compile(
    r"(?i)\b(?:cancel+(?:ed|led|ation|s)?|delay(?:ed|s)?|stranded|stuck|missed\s+(?:my\s+|our\s+|the\s+)?connection|"
    r"misconnect\w*|rebook\w*|re-book\w*|lost\s+(?:my\s+|our\s+)?(?:bag|bags|luggage|suitcase)|"
    r"(?:bag|bags|luggage|suitcase)\s+(?:is\s+|are\s+|was\s+)?(?:lost|missing)|diverted|overbooked|bumped|"
    r"medical|medication|inhaler|wheelchair|tonight|overnight|sleep(?:ing)?\s+(?:at|in)\s+the\s+airport)\b"
)


# Urgent matters in the languages a US airline hears most after English (Spanish, Portuguese, French, German,
# Italian): cancelled, delayed, stranded, lost luggage, missed connection, wheelchair, urgent.
URGENT_WORDS_OTHER = re.compile(
    r"(?i)\b(?:cancelad[oa]s?|cancelamento|cancelaron|cancelaram|annul[ée]e?s?|storniert|gestrichen|annulliert|"
    r"cancellat[oi]|retrasad[oa]s?|retraso|atrasad[oa]s?|atraso|demorad[oa]s?|en\s+retard|verspätet|verspätung|"
    r"in\s+ritardo|varad[oa]s?|atrapad[oa]s?|pres[oa]s\s+no\s+aeroporto|bloqu[ée]s?|gestrandet|sitzen\s+\w*\s*fest|"
    r"bloccat[ie]|perdi(?:eron|eram|ram)|perdí|perdu|verloren|pers[oa]\b|maleta|bagagem|valise|koffer|valigia|"
    r"conexión|conexão|correspondance|anschluss|coincidenza|silla\s+de\s+ruedas|cadeira\s+de\s+rodas|"
    r"fauteuil\s+roulant|rollstuhl|sedia\s+a\s+rotelle|urgente?|urgence|dringend)\b"
)
LANGUAGE = "language"  # the desk's queue of tweets in a language the models do not read
DESK_CLASSES: tuple[str, ...] = ("urgent", "negative", LANGUAGE, "neutral", "positive")  # the inbox's order


def is_urgent(tw: EnrichedTweet) -> bool:
    """A negative tweet about something that is going wrong for the customer right now; in a language the models
    do not read, one whose words name such a thing."""
    if tw.sentiment == NOT_INFERRED:
        return URGENT_WORDS_OTHER.search(tw.text) is not None or URGENT_WORDS.search(tw.text) is not None
    if tw.sentiment != "negative":
        return False
    return (
        tw.topic in URGENT_TOPICS
        or URGENT_WORDS.search(tw.text) is not None
        or any(e.label == "FLIGHT" for e in tw.entities)
    )


def priority_of(tw: EnrichedTweet) -> int:
    """The tweet's reply class (lower goes first); see the module docstring."""
    if tw.sentiment == NOT_INFERRED:
        return URGENT if is_urgent(tw) else NEGATIVE
    if tw.sentiment == "negative":
        return URGENT if is_urgent(tw) else NEGATIVE
    if tw.sentiment == "positive":
        return POSITIVE
    return NEUTRAL


def desk_class(tw) -> str:
    """The desk's queue for a ticket (or tweet): its reply class's name, or ``language`` for one in a language the
    models do not read that is not urgent. It sets the first-response timer (``desk.timers``)."""
    p = priority_of(tw)
    if tw.sentiment == NOT_INFERRED and p != URGENT:
        return LANGUAGE
    return PRIORITY_CLASSES[p]
