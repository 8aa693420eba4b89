"""Intake policy: which incoming tweet opens a ticket, joins one, or is only recorded.

Every tweet the reply service takes in gets one row in the store's ``tweets`` table (unique tweet id,
so a re-delivery changes nothing) with a *disposition*:

* ``opened``   — it opened a ticket (and the ticket's one automatic reply is queued);
* ``threaded`` — it belongs to a conversation the same customer already has an open ticket for
  (same ``conversation_id``, or a reply to a tweet we hold): it joins that ticket, no new reply;
* ``own``      — written by one of our own accounts (``settings.our_handles``), e.g. our reply
  coming back through the filtered stream: never ticketed, shown in the conversation;
* ``capped``   — held back by the flood guard: more than ``flood_per_author`` new tickets from one
  author, or ``flood_per_rule`` from one stream rule, within ``flood_window_seconds``. Stored and
  counted with the reason, neither ticketed nor answered.

Windows are measured on the tweets' own ``created_at`` (X's timestamps), not on when we process
them: replaying a batch, or catching up after an outage, decides exactly as live ingest did.

A resolved ticket is closed: a later tweet in its conversation opens a new ticket. A ``replied`` ticket
is not: a tweet its customer writes after our reply went out joins it and puts it back to ``open``, in
the agents' queue (no second automatic reply: the customer is waiting for a person now).
"""

from __future__ import annotations

from bisect import bisect_right, insort
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tweetdesk.xrules import Prices

OPENED, THREADED, OWN, CAPPED = "opened", "threaded", "own", "capped"
DISPOSITIONS = (OPENED, THREADED, OWN, CAPPED)


def author_key(author: str, author_id: str | None) -> str:
    """Who a tweet is from, for threads and the flood guard: X's user id when known (handles
    change), else the handle, case-folded."""
    return author_id if author_id else "@" + author.lstrip("@").lower()


def _span(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


@dataclass(frozen=True)
class Intake:
    """Settings of the intake; ``Intake()`` groups threads and applies no flood limits."""

    our_handles: frozenset[str] = field(default_factory=frozenset)  # lower-case, without '@'
    per_author: int | None = None
    per_rule: int | None = None
    window_seconds: int = 3600
    # X's rules: only a tweet that summoned one of ``our_handles`` gets an automatic reply (the service always
    # applies it; ``Intake()`` leaves it off for callers that decided already); what a customer writes to us
    # to opt out of automatic replies; what reading a tweet cost.
    summoned_only: bool = False
    opt_out_phrases: tuple[str, ...] = ()
    prices: Prices | None = None

    @classmethod
    def from_settings(cls, settings) -> "Intake":
        return cls(
            our_handles=frozenset(h.lstrip("@").lower() for h in settings.our_handles),
            per_author=settings.flood_per_author,
            per_rule=settings.flood_per_rule,
            window_seconds=settings.flood_window_seconds,
            summoned_only=True,
            opt_out_phrases=tuple(settings.opt_out_phrases),
            prices=Prices.from_settings(settings),
        )

    def is_ours(self, author: str) -> bool:
        return author.lstrip("@").lower() in self.our_handles

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.window_seconds)


class FloodCounter:
    """Ticket-opening times per author and per rule, within the window; seeded from the store, then
    updated as a batch is decided (so a flood inside one batch is capped too)."""

    def __init__(self, intake: Intake):
        self.intake = intake
        self.by_author: dict[str, list[datetime]] = {}
        self.by_rule: dict[str, list[datetime]] = {}

    def seed(self, kind: str, key: str, at: datetime) -> None:
        insort((self.by_author if kind == "author" else self.by_rule).setdefault(key, []), at)

    @staticmethod
    def _count(times: list[datetime], at: datetime, window: timedelta) -> int:
        return bisect_right(times, at) - bisect_right(times, at - window)

    def reason(self, author: str, akey: str, rule: str | None, at: datetime) -> str | None:
        """Why a new ticket from this author/rule at ``at`` is refused, or None if it may open."""
        i, w = self.intake, self.intake.window
        if i.per_author is not None:
            n = self._count(self.by_author.get(akey, []), at, w)
            if n >= i.per_author:
                return f"flood guard: @{author} opened {i.per_author} tickets within {_span(i.window_seconds)} (limit {i.per_author})"
        if i.per_rule is not None and rule:
            n = self._count(self.by_rule.get(rule, []), at, w)
            if n >= i.per_rule:
                return f"flood guard: rule '{rule}' opened {i.per_rule} tickets within {_span(i.window_seconds)} (limit {i.per_rule})"
        return None

    def opened(self, akey: str, rule: str | None, at: datetime) -> None:
        insort(self.by_author.setdefault(akey, []), at)
        if rule:
            insort(self.by_rule.setdefault(rule, []), at)
