"""What the ticket store returns and writes: the records read from its tables (``Ticket``, its public shape
``PublicTicket``, ``StoredReply``, …) and the rows built from incoming tweets and replies."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict

from tweetdesk.records import EnrichedTweet, Entity, Reply, ReplyStatus
from tweetdesk.tickets.intake import CAPPED
from tweetdesk.tickets.schema import BLOCKED, OPT_OUT, ReplyKind, TicketStatus


class Ticket(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ticket_id: str
    tweet_id: str
    author: str
    author_id: str | None = None
    text: str
    lang: str | None = None
    brand: str | None = None
    rule: str | None = None
    tweet_created_at: datetime | None = None
    sentiment: str
    sentiment_score: float | None = None
    topic: str
    topic_score: float | None = None
    entities: list[Entity] = []
    model_version: str | None = None
    status: TicketStatus
    reply_text: str | None = None
    posted_reply_id: str | None = None
    attempts: int = 0
    last_error: str | None = None
    conversation_id: str | None = None
    in_reply_to_tweet_id: str | None = None
    in_reply_to_user_id: str | None = None
    created_at: datetime
    updated_at: datetime
    replied_at: datetime | None = None
    resolved_at: datetime | None = None
    message_count: int = 1
    last_tweet_id: str | None = None
    summoned_by: str | None = None
    no_reply_reason: str | None = None
    removed_reason: str | None = None  # a tombstone (X's data rules): the content is gone
    removed_at: datetime | None = None
    channel: str | None = None  # "dm": a direct message opened it (its text is private)

    @property
    def private(self) -> bool:
        return self.channel == "dm"

    @property
    def listening_only(self) -> bool:
        """Matched a listening rule without summoning us: X forbids an automatic reply."""
        return self.summoned_by is None

    def public(self) -> "PublicTicket":
        """What anyone holding the ticket ID may see: no handle, no tweet text, no reply."""
        return PublicTicket(**{f: getattr(self, f) for f in PublicTicket.__dataclass_fields__} | {"status": self.status.value})


@dataclass(frozen=True)
class PublicTicket:
    """The one public shape of a ticket (the tracking page, ``GET /api/tickets/<id>`` without the admin key):
    status, topic and timestamps; no handle, no tweet text, no reply."""

    ticket_id: str
    status: str
    topic: str
    created_at: datetime
    updated_at: datetime | None
    replied_at: datetime | None
    resolved_at: datetime | None
    removed_reason: str | None = None  # "removed: deleted on X", …: the page says the content is gone
    removed_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        times = ("created_at", "updated_at", "replied_at", "resolved_at", "removed_at")
        return {**asdict(self), **{k: iso(getattr(self, k)) for k in times}}


class StoredReply(Reply):
    """A row of the outbox: ``tweet_id`` is the tweet replied to (for a DM: the customer's DM it answers)."""

    id: int
    channel: str | None = "public"  # "dm": a direct message to ``to_user_id``
    to_user_id: str | None = None
    kind: ReplyKind = ReplyKind.auto
    dry_run: bool = False
    not_before: datetime | None = None
    created_at: datetime
    updated_at: datetime
    posted_at: datetime | None = None
    priority: int = 3
    cost_usd: float | None = None


class DryRunRecord(NamedTuple):
    id: int
    ticket_id: str
    tweet_id: str
    text: str


@dataclass
class IngestResult:
    created: list[str] = field(default_factory=list)  # ticket ids opened by this call
    duplicates: list[str] = field(default_factory=list)  # tweet ids already held (re-deliveries)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (tweet id, reason)
    replies: list[int] = field(default_factory=list)  # reply ids queued by this call
    threaded: list[str] = field(default_factory=list)  # tweet ids that joined an open ticket
    own: list[str] = field(default_factory=list)  # tweet ids from our own accounts (not ticketed)
    capped: list[tuple[str, str]] = field(default_factory=list)  # (tweet id, flood-guard reason)
    opted_out: list[str] = field(default_factory=list)  # tweet ids whose authors opted out by them


@dataclass
class Page:
    items: list[Ticket]
    total: int
    limit: int
    offset: int


def iso(dt: datetime | None) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt else None



def bar_reason(r) -> str:
    who = f"@{r['author']}"
    if r["kind"] == OPT_OUT:
        return f"{who} opted out ({r['reason']})"
    if r["kind"] == BLOCKED:
        return f"{who} blocked us ({r['reason']})"
    until = r["until"]
    return f"{who}: {r['reason']}" + (f" — no automatic reply until {iso(until)}" if until else "")


def ticket_row(tw: EnrichedTweet, now: datetime) -> dict[str, Any]:
    return {
        "ticket_id": tw.ticket_id,
        "tweet_id": tw.id,
        "author": tw.author,
        "author_id": tw.author_id,
        "text": tw.text,
        "lang": tw.lang,
        "brand": tw.brand,
        "rule": tw.rule,
        "tweet_created_at": tw.created_at,
        "sentiment": tw.sentiment,
        "sentiment_score": tw.sentiment_score,
        "topic": tw.topic,
        "topic_score": tw.topic_score,
        "entities": [e.model_dump() for e in tw.entities],
        "model_version": tw.model_version,
        "status": TicketStatus.open.value,
        "reply_text": None,
        "posted_reply_id": None,
        "attempts": 0,
        "last_error": None,
        "conversation_id": tw.conversation_id,
        "in_reply_to_tweet_id": tw.in_reply_to_tweet_id,
        "in_reply_to_user_id": tw.in_reply_to_user_id,
        "created_at": now,
        "updated_at": now,
        "replied_at": None,
        "resolved_at": None,
        "message_count": 1,
        "last_tweet_id": tw.id,
        "channel": tw.channel,
    }


def tweet_row(tw: EnrichedTweet, conversation_key: str, akey: str, now: datetime) -> dict[str, Any]:
    return {
        "tweet_id": tw.id,
        "ticket_id": None,
        "disposition": CAPPED,
        "reason": None,
        "conversation_key": conversation_key,
        "in_reply_to_tweet_id": tw.in_reply_to_tweet_id,
        "author": tw.author,
        "author_key": akey,
        "rule": tw.rule,
        "text": tw.text,
        "sentiment": tw.sentiment,
        "topic": tw.topic,
        "tweet_created_at": tw.created_at,
        "received_at": now,
        "source": tw.source,
        "summoned_by": None,
        "channel": tw.channel,
    }


def reply_row(ticket_id: str, tweet_id: str, text: str, kind: ReplyKind, key: str, now: datetime, *,
              dm_to: str | None = None) -> dict[str, Any]:
    """An outbox row; ``dm_to``: a direct message to that X user id (``tweet_id`` is then the DM it answers)."""
    return {
        "ticket_id": ticket_id,
        "in_reply_to_tweet_id": tweet_id,
        "kind": kind.value,
        "dedupe_key": key,
        "text": text,
        "status": ReplyStatus.queued.value,
        "dry_run": False,
        "attempts": 0,
        "posted_id": None,
        "error": None,
        "not_before": None,
        "created_at": now,
        "updated_at": now,
        "posted_at": None,
        "priority": 0 if kind is ReplyKind.manual else 3,
        "cost_usd": None,
        "channel": "dm" if dm_to else "public",
        "to_user_id": dm_to,
    }


def reply_dict(row) -> dict[str, Any]:
    d = dict(row)
    d["tweet_id"] = d.pop("in_reply_to_tweet_id")
    return d
