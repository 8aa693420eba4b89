"""The typed records that stages exchange. This module owns the schema: the Spark schema, the
Parquet schema and the JSON on Kafka all derive from these classes.

Tweet ids are strings: X ids are 64-bit snowflakes, beyond JSON/JavaScript's exact integer range.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SENTIMENTS: tuple[str, ...] = ("negative", "neutral", "positive")
TOPICS: tuple[str, ...] = (
    "Baggage Issue",
    "Customer Experience",
    "Delay and Customer Service",
    "Extra Charges",
    "Online Booking",
    "Reschedule and Refund",
    "Reservation Issue",
    "Seating Preferences",
)
# Given to a tweet with no classifiable text (empty after cleaning): it still gets a ticket.
UNCLASSIFIABLE = "unclassifiable"
# Given to a tweet in a language the English models do not read (``nlp.lang``): sentiment and topic
# "not_inferred" with score 0.0 (not a guess dressed as a label); its entities are still found, and its ticket
# (prefix LNG) waits in the language queue. Readers that know only the older values see an unknown label.
NOT_INFERRED = "not_inferred"
# The topics a ticket may hold (the filters and the agents' corrections offer these).
TOPIC_CHOICES: tuple[str, ...] = (*TOPICS, UNCLASSIFIABLE)

# Hard cap on text length. X long posts go to 25,000 characters; anything longer is not a tweet.
MAX_TEXT_CHARS = 25_000

# A tweet id: ASCII digits, the whole string (\A..\z: a "$" would also match before a final newline).
_DIGITS = r"\A[0-9]+\z"


# X user names: 1–15 letters, digits or underscores (X's account rules). Always used with ``fullmatch``: a
# trailing "$" would also accept "someone\n" ("$" matches before a final newline).
HANDLE_RE = re.compile(r"[A-Za-z0-9_]{1,15}")

def is_handle(name: str) -> bool:
    """True for a valid X user name (without '@')."""
    return isinstance(name, str) and HANDLE_RE.fullmatch(name) is not None


# The data set's airline column, as the airlines' X handles (lower case, like a brand taken from an @mention).
AIRLINE_HANDLES = {
    "virgin america": "virginamerica",
    "united": "united",
    "southwest": "southwestair",
    "delta": "delta",
    "us airways": "usairways",
    "american": "americanair",
}
_MENTION = re.compile(r"(?<![\w@])@(\w{1,15})")


def brand_of(text: str, airline: str | None = None) -> str | None:
    """The brand a tweet is about: the CSV's airline column when given, else the first @mention (lower case)."""
    if airline and airline.strip():
        a = airline.strip().lower()
        return AIRLINE_HANDLES.get(a, re.sub(r"\W+", "", a)) or None
    m = _MENTION.search(text or "")
    return m.group(1).lower() if m else None


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# Pydantic error types that mean "not a JSON object at all" rather than "a record with bad fields".
_PARSE_ERRORS = {"json_invalid", "json_type", "model_type", "model_attributes_type"}


def problems(e: ValidationError) -> list[tuple[str, str]]:
    """(field path, message) of each error, without the input (a 1 MB text must not become a 1 MB reason)."""
    return [(".".join(str(p) for p in x["loc"]), x["msg"]) for x in e.errors(include_input=False, include_url=False)]


def error_reason(e: BaseException, limit: int = 3) -> str:
    """One line saying what is wrong: a ``ValidationError`` as "field: message" for its first ``limit``
    errors ("(+N more)" for the rest), any other exception its message."""
    if not isinstance(e, ValidationError):
        return str(e)
    found = problems(e)
    parts = [f"{where}: {msg}" if where else msg for where, msg in found[:limit]]
    more = len(found) - limit
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def error_stage(e: BaseException) -> str:
    """"parse" when the value was not a JSON object at all, "validate" when it was one with bad fields."""
    if isinstance(e, ValidationError) and any(x["type"] in _PARSE_ERRORS for x in e.errors(include_url=False)):
        return "parse"
    return "validate"


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=False, str_strip_whitespace=False)


class _NoNul(_Record):
    """A record whose names, ids and labels may not hold NUL: X's never do, and PostgreSQL cannot store one.
    The tweet's text may (the classifier takes any text); a store that refuses it dead-letters the record."""

    @field_validator("*")
    @classmethod
    def _no_nul(cls, v, info):
        if isinstance(v, str) and "\x00" in v and info.field_name not in ("text", "clean_text"):
            raise ValueError("holds a NUL character")
        return v


class ReferencedTweet(_NoNul):
    """A tweet this one replies to, quotes or retweets (X's ``referenced_tweets``, with the referenced
    tweet's author when X's expansions or the replay file say who wrote it)."""

    type: Literal["replied_to", "quoted", "retweeted"]
    id: str = Field(min_length=1, max_length=32, pattern=_DIGITS)
    author_id: str | None = None
    author: str | None = Field(None, max_length=64, description="Handle without '@', when known.")


class Tweet(_NoNul):
    """A customer tweet as it enters the system (from replay, the mentions timeline or the filtered stream)."""

    id: str = Field(min_length=1, max_length=32, pattern=_DIGITS)
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    author: str = Field(min_length=1, max_length=64, description="Handle without '@'.")
    author_id: str | None = None
    created_at: datetime
    # X's language code (BCP 47, "und" when X could not tell); None = the source did not say (a replay file, a
    # DM). The stream job fills it in (``nlp.lang``): an enriched tweet always has one.
    lang: str | None = Field(None, max_length=16)
    brand: str | None = Field(None, description="The brand/airline the tweet is about (e.g. 'united').")
    rule: str | None = Field(None, description="Tag of the filtered-stream rule that matched, if any.")
    in_reply_to_tweet_id: str | None = None
    in_reply_to_user_id: str | None = None
    conversation_id: str | None = None
    # Who the tweet @mentions (handles without '@', X's ``entities.mentions``). None = not given by the
    # source: ``tweetdesk.x.rules.mentions_of`` derives them from the text with X's mention rule.
    mentions: list[str] | None = None
    referenced_tweets: list[ReferencedTweet] = Field(default_factory=list)
    # replay = a file; mentions = our account's mentions timeline (an owned read on X); x = the filtered
    # stream (a post read); api = posted to us directly; dms = our account's DM events (``ingest dms``);
    # activity = a DM event X's Activity API pushed to the webhook.
    source: Literal["replay", "mentions", "x", "api", "dms", "activity"] = "replay"
    # public = a post anyone can read; dm = a direct message to our account: private, personal data (never on
    # a public page), answered only by DM. Both travel the same topics and stream (see ``DirectMessage``).
    channel: Literal["public", "dm"] = "public"
    dm_conversation_id: str | None = Field(None, max_length=64, description="X's dm_conversation_id (DMs only).")
    ingested_at: datetime | None = Field(None, description="When ingest published it to Kafka (latency).")

    @property
    def partition_key(self) -> str:
        """Its Kafka key on ``tweets.raw`` and ``tweets.enriched``: a conversation's records share one partition,
        so the reply service sees them in order (a thread's root before its replies) however many partitions the
        topics have. X's conversation id (a DM's ``dm_conversation_id``), else the record's own id."""
        return self.dm_conversation_id or self.conversation_id or self.id

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("text is blank")
        return v

    @field_validator("author")
    @classmethod
    def _x_handle(cls, v: str) -> str:
        # X's rule, at ingest: a look-alike of a real handle (full-width letters, a zero-width or RTL-override
        # character) or a line break (a forged log line) never becomes a ticket; it is dead-lettered.
        v = v.removeprefix("@")
        if not is_handle(v):
            raise ValueError(f"not an X user name (1-15 letters A-Z, digits or _): {ascii(v[:20])}")
        return v

    @field_validator("created_at", "ingested_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            return v.replace(tzinfo=timezone.utc)
        return v


class DirectMessage(Tweet):
    """A direct message a customer sent our account (an X DM event of type ``MessageCreate``). It travels as a
    ``Tweet`` with ``channel="dm"`` through ``tweets.raw``, the stream job (cleaned, classified, entities) and
    Parquet, so every stage handles it; this class is the stricter contract a DM source must meet: the sender's
    id (the participant a DM answer goes to) and the conversation are known. ``id`` is the DM event id."""

    channel: Literal["dm"] = "dm"
    author_id: str = Field(min_length=1, max_length=32, pattern=_DIGITS)
    dm_conversation_id: str = Field(min_length=1, max_length=64)
    source: Literal["dms", "activity", "replay", "api"] = "dms"


def parse_record(raw: str | bytes) -> Tweet:
    """A record from ``tweets.raw``: a ``DirectMessage`` when it says ``channel: dm``, else a ``Tweet``
    (raises ``ValidationError`` like ``model_validate_json``)."""
    t = Tweet.model_validate_json(raw)
    return DirectMessage.model_validate(t.model_dump()) if t.channel == "dm" else t


class Entity(_NoNul):
    text: str
    label: str = Field(description="spaCy label (GPE, DATE, MONEY, …) or FLIGHT, BOOKING_REF, AIRPORT.")
    start: int = Field(ge=0, description="Character offset in the original text.")
    end: int = Field(ge=0)
    norm: str | None = Field(None, description="Normalised value of a rule entity: FLIGHT 'UA1234', AIRPORT 'LAX'.")


class EnrichedTweet(Tweet):
    """A tweet after cleaning, classification and entity extraction: one row in Parquet."""

    clean_text: str
    sentiment: str = Field(description="negative | neutral | positive | unclassifiable | not_inferred")
    sentiment_score: float = Field(ge=0.0, le=1.0)
    topic: str = Field(description="one of TOPICS, unclassifiable or not_inferred")
    topic_score: float = Field(ge=0.0, le=1.0)
    entities: list[Entity] = Field(default_factory=list)
    ticket_id: str
    model_version: str
    processed_at: datetime = Field(default_factory=utcnow)


class ReplyStatus(str, Enum):
    queued = "queued"
    posted = "posted"  # live post accepted by X
    dry_run = "dry_run"  # written to the outbox only
    failed = "failed"
    skipped = "skipped"  # flood guard / own tweet / thread already answered
    posting = "posting"  # intent recorded, the call to X is under way (after a crash: verify, never re-post)
    unknown = "unknown"  # X may or may not hold the post and it could not be verified: an agent decides
    cancelled = "cancelled"  # never sent: its customer opted out, or X refused us their replies (``error`` says)


class Reply(_Record):
    ticket_id: str
    tweet_id: str
    text: str = Field(max_length=10_000)  # a post: 280 as X weighs it (reply.templates checks); a DM: 10,000
    status: ReplyStatus = ReplyStatus.queued
    attempts: int = 0
    posted_id: str | None = None
    error: str | None = None


class DeadLetter(_Record):
    """A record we could not process, with the reason and the original bytes (nothing is dropped)."""

    reason: str
    stage: str = Field(description="ingest | parse | validate | enrich | …")
    raw: str = Field(description="The original value, decoded as UTF-8 with replacement, truncated to 64 KiB.")
    raw_bytes: int = Field(ge=0, description="Length of the original value in bytes.")
    key: str | None = None
    source_topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    at: datetime = Field(default_factory=utcnow)

    @field_validator("reason", "stage", "raw", "key", "source_topic")
    @classmethod
    def _storable(cls, v: str | None) -> str | None:
        # Kept, not refused (nothing is dropped): a NUL as U+FFFD, which every store can hold.
        return v.replace("\x00", "\ufffd") if v else v

    @classmethod
    def of(cls, raw: bytes | str | None, reason: str, stage: str, **kw) -> "DeadLetter":
        if raw is None:
            data = b""
        elif isinstance(raw, str):
            data = raw.encode("utf-8", "surrogatepass")
        else:
            data = bytes(raw)
        return cls(
            reason=reason[:2000],
            stage=stage,
            raw=data[: 64 * 1024].decode("utf-8", "replace"),
            raw_bytes=len(data),
            **kw,
        )

    @classmethod
    def from_error(cls, raw: bytes | str | None, error: BaseException, stage: str | None = None, *,
                   context: str | None = None, **kw) -> "DeadLetter":
        """The dead letter of ``raw``, whose reason says what ``error`` found (``error_reason``), after
        ``context`` (where it was: "file.csv line 4", "not an enriched tweet"). ``stage`` None: "parse" or
        "validate" (``error_stage``)."""
        reason = error_reason(error)
        return cls.of(raw, f"{context}: {reason}" if context else reason, stage or error_stage(error), **kw)
