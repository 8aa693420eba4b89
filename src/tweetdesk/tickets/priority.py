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

A later tweet in a thread can raise its ticket's queued reply ("update: now it's cancelled" → urgent);
a ticket gets one reply however many tweets its customer sends while it waits.

"""

from __future__ import annotations

import re

from tweetdesk.records import EnrichedTweet

AGENT, URGENT, NEGATIVE, NEUTRAL, POSITIVE = 0, 1, 2, 3, 4
PRIORITY_CLASSES: dict[int, str] = {AGENT: "agent", URGENT: "urgent", NEGATIVE: "negative", NEUTRAL: "neutral", POSITIVE: "positive"}

URGENT_TOPICS = frozenset({"Delay and Customer Service", "Baggage Issue", "Reschedule and Refund"})
URGENT_WORDS = re.compile(
    r"(?i)\b(?:cancel+(?:ed|led|ation|s)?|delay(?:ed|s)?|stranded|stuck|missed\s+(?:my\s+|our\s+|the\s+)?connection|"
    r"misconnect\w*|rebook\w*|re-book\w*|lost\s+(?:my\s+|our\s+)?(?:bag|bags|luggage|suitcase)|"
    r"(?:bag|bags|luggage|suitcase)\s+(?:is\s+|are\s+|was\s+)?(?:lost|missing)|diverted|overbooked|bumped|"
    r"medical|medication|inhaler|wheelchair|tonight|overnight|sleep(?:ing)?\s+(?:at|in)\s+the\s+airport)\b"
)


def is_urgent(tw: EnrichedTweet) -> bool:
    """A negative tweet about something that is going wrong for the customer right now."""
    if tw.sentiment != "negative":
        return False
    return (
        tw.topic in URGENT_TOPICS
        or URGENT_WORDS.search(tw.text) is not None
        or any(e.label == "FLIGHT" for e in tw.entities)
    )


def priority_of(tw: EnrichedTweet) -> int:
    """The tweet's reply class (lower goes first); see the module docstring."""
    if tw.sentiment == "negative":
        return URGENT if is_urgent(tw) else NEGATIVE
    if tw.sentiment == "positive":
        return POSITIVE
    return NEUTRAL
