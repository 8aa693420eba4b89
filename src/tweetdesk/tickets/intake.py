"""Intake policy: which incoming tweet opens a ticket, joins one, or is only recorded.

``decide`` is the whole decision, a pure function: ``TicketStore.add_tickets`` reads what the store knows
about a batch (``Known``), calls it, and writes the ``Decision``.

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

A direct message (``channel == "dm"``, issue 29) belongs to its customer's case, not to a public conversation:
it joins the ticket whose ID it quotes (when that ticket is the same customer's and still open), else the
customer's newest open ticket, else it opens one. A DM summoned us by definition (``summoned_by`` "dm": X lets
us answer by DM whoever DMed us first); "stop" in a DM opts out as in public. A new DM ticket's automatic
answer is a DM, and needs the operator's privacy-policy link (X's guidelines): without it, none is queued
and the ticket says why.

A resolved ticket is closed: a later tweet in its conversation opens a new ticket. A ``replied`` ticket
is not: a tweet its customer writes after our reply went out joins it and puts it back to ``open``, in
the agents' queue (no second automatic reply: the customer is waiting for a person now).
"""

from __future__ import annotations

from bisect import bisect_right, insort
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tweetdesk.records import EnrichedTweet
from tweetdesk.tickets.ids import quoted_ticket_ids
from tweetdesk.tickets.policy import DM, NO_PRIVACY_LINK, ReplyPolicy
from tweetdesk.x.rules import Prices

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
    # X's rules (``policy``, a ``tickets.policy.ReplyPolicy``): only a tweet that summoned one of ``our_handles``
    # gets an automatic reply (the service always applies it; ``Intake()`` leaves it off for callers that decided
    # already); what a customer writes to us to opt out of automatic replies. And what reading a tweet cost.
    summoned_only: bool = False
    opt_out_phrases: tuple[str, ...] = ()
    prices: Prices | None = None
    privacy_policy_url: str | None = None  # X requires its link in support DMs: without it we send none

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
            privacy_policy_url=settings.privacy_policy_url,
        )

    @property
    def policy(self) -> ReplyPolicy:
        """Who may get an automatic reply: X's rules (``tickets.policy``), for our handles and phrases."""
        return ReplyPolicy(self.our_handles, self.opt_out_phrases, self.summoned_only)

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


# ----------------------------------------------------------------------------------------------
# The decision
# ----------------------------------------------------------------------------------------------


@dataclass
class Known:
    """What the store holds that bears on a batch, read by the store before it decides."""

    parent_conv: dict[str, str] = field(default_factory=dict)  # a tweet we hold -> its conversation key
    parent_ticket: dict[str, str] = field(default_factory=dict)  # a tweet we hold or our posted reply -> its ticket
    our_ids: set[str] = field(default_factory=set)  # tweets of ours the batch refers to (posted replies, own tweets)
    barred: dict[str, str] = field(default_factory=dict)  # author key -> why no automatic reply now
    # Open tickets of the batch's conversations: (conversation, author key) -> ticket (the latest wins),
    # conversation -> ticket, and ticket -> an automatic reply is (or may be) queued for it.
    thread: dict[tuple[str, str], str] = field(default_factory=dict)
    conv_ticket: dict[str, str] = field(default_factory=dict)
    answered: dict[str, bool] = field(default_factory=dict)
    # Tickets opened within the flood guard's window before the batch: ("author" | "rule", key, tweet time).
    flood: list[tuple[str, str, datetime]] = field(default_factory=list)
    # Direct messages: each DM author's newest open ticket, and the owner (author key) of each open ticket a DM
    # of the batch quotes.
    open_by_author: dict[str, str] = field(default_factory=dict)
    ticket_owner: dict[str, str] = field(default_factory=dict)


@dataclass
class Verdict:
    """What becomes of one tweet (its row of the ``tweets`` table, and a ticket when ``disposition`` is opened)."""

    tweet: EnrichedTweet
    conversation: str
    author_key: str
    disposition: str = CAPPED
    ticket_id: str | None = None
    reason: str | None = None  # own | capped: why it got no ticket
    summoned_by: str | None = None  # mention | quote | reply | dm; None = listening only
    no_reply: str | None = None  # opened: why no automatic reply is queued (None: one is)


@dataclass
class Decision:
    verdicts: list[Verdict] = field(default_factory=list)  # oldest first
    # A listening-only ticket whose customer now asks us in its thread -> that tweet (it gets the ticket's reply).
    late_summons: dict[str, EnrichedTweet] = field(default_factory=dict)
    opting_out: dict[str, tuple[EnrichedTweet, str]] = field(default_factory=dict)  # author key -> (tweet, phrase)

    def of(self, disposition: str) -> list[Verdict]:
        return [v for v in self.verdicts if v.disposition == disposition]


def known_conversation(tw: EnrichedTweet, parent_conv: dict[str, str]) -> str:
    """The conversation a tweet belongs to as far as the store knows (before the batch is decided)."""
    return tw.conversation_id or parent_conv.get(tw.in_reply_to_tweet_id) or tw.id


def decide(tweets: list[EnrichedTweet], known: Known, intake: Intake) -> Decision:
    """Decide a batch of new tweets, oldest first (``tweets`` sorted by ``created_at``): own, threaded into an
    open ticket, held back by the flood guard, or opening a ticket — with or without an automatic reply
    (listening only, opted out, barred). Pure: reads ``known``, changes nothing, touches no store."""
    out = Decision()
    policy = intake.policy
    our_ids = set(known.our_ids)
    barred = dict(known.barred)
    thread = dict(known.thread)
    conv_ticket = dict(known.conv_ticket)
    answered = dict(known.answered)
    flood = FloodCounter(intake)
    for kind, key, at in known.flood:
        flood.seed(kind, key, at)
    conv_of: dict[str, str] = {}
    by_author = dict(known.open_by_author)
    for tw in tweets:
        if tw.channel == DM:
            _decide_dm(tw, out, known, intake, policy, flood, barred, by_author, answered)
            continue
        p = tw.in_reply_to_tweet_id
        conv = tw.conversation_id or known.parent_conv.get(p) or conv_of.get(p) or tw.id
        conv_of[tw.id] = conv
        akey = author_key(tw.author, tw.author_id)
        v = Verdict(tw, conv, akey)
        out.verdicts.append(v)
        if policy.is_ours(tw.author):
            v.disposition, v.reason = OWN, "our own account"
            v.ticket_id = known.parent_ticket.get(p) or conv_ticket.get(conv)
            our_ids.add(tw.id)
            continue
        how = policy.summoned(tw, our_ids)
        v.summoned_by = how
        phrase = policy.opt_out(tw.text, how)
        if phrase:  # written to us: honoured at once, from this tweet on
            out.opting_out[akey] = (tw, phrase)
            barred[akey] = f"@{tw.author} opted out (wrote {phrase!r} to us)"
        ticket = thread.get((conv, akey))
        if ticket:
            v.disposition, v.ticket_id = THREADED, ticket
            if policy.answers_late_summons(how, akey in barred) and not answered.get(ticket, True):
                out.late_summons.setdefault(ticket, tw)  # the customer asked us in an ongoing thread
                answered[ticket] = True
            continue
        reason = flood.reason(tw.author, akey, tw.rule, tw.created_at)
        if reason:
            v.reason = reason  # stays capped
            continue
        v.disposition, v.ticket_id = OPENED, tw.ticket_id
        flood.opened(akey, tw.rule, tw.created_at)
        thread[(conv, akey)] = tw.ticket_id
        conv_ticket.setdefault(conv, tw.ticket_id)
        v.no_reply = policy.automatic(how, barred[akey] if akey in barred else None)
        answered[tw.ticket_id] = v.no_reply is None
    return out


def _decide_dm(tw: EnrichedTweet, out: Decision, known: Known, intake: Intake, policy: ReplyPolicy,
               flood: FloodCounter, barred: dict[str, str], by_author: dict[str, str], answered: dict[str, bool]) -> None:
    """A direct message: it joins its customer's case (the open ticket it quotes, else their newest open one)
    or opens a ticket whose automatic answer is a DM (see the module docstring)."""
    akey = author_key(tw.author, tw.author_id)
    v = Verdict(tw, tw.id, akey, summoned_by=DM)  # a DM's own id as its conversation key: cases join by author
    out.verdicts.append(v)
    if policy.is_ours(tw.author):  # our own DM, echoed back by a source: shown, never ticketed
        v.disposition, v.reason = OWN, "our own account"
        v.ticket_id = by_author.get(akey)
        return
    phrase = policy.opt_out(tw.text, DM)
    if phrase:
        out.opting_out[akey] = (tw, phrase)
        barred[akey] = f"@{tw.author} opted out (wrote {phrase!r} to us)"
    quoted = next((t for t in quoted_ticket_ids(tw.text) if known.ticket_owner.get(t) == akey), None)
    ticket = quoted or by_author.get(akey)
    if ticket:
        v.disposition, v.ticket_id = THREADED, ticket
        return
    reason = flood.reason(tw.author, akey, None, tw.created_at)
    if reason:
        v.reason = reason
        return
    v.disposition, v.ticket_id = OPENED, tw.ticket_id
    flood.opened(akey, None, tw.created_at)
    by_author[akey] = tw.ticket_id
    v.no_reply = policy.automatic(DM, barred.get(akey))
    if v.no_reply is None and not intake.privacy_policy_url:
        v.no_reply = NO_PRIVACY_LINK
    answered[tw.ticket_id] = v.no_reply is None
