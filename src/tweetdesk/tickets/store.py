"""The ticket store: tickets and the reply outbox, on SQLAlchemy Core.

SQLite file by default (``<work_dir>/tickets.db``), PostgreSQL by URL (``TWEETDESK_DATABASE_URL``).
The app creates and migrates the schema itself (table ``schema_version``; see ``migrate``).

Two tables carry the guarantees:

* ``tickets`` — one row per customer tweet, unique on ``tweet_id`` and on ``ticket_id``. Inserts are
  *insert-if-absent* (``ON CONFLICT DO NOTHING``): a re-delivered record changes nothing.
* ``replies`` — the outbox. One row per reply we intend to post, unique on ``dedupe_key``
  (``auto:<ticket id>`` for the automatic reply: one per ticket, whatever is re-delivered). A reply
  moves ``queued → posting → posted | dry_run | failed`` (or back to ``queued`` for a retry, or to
  ``unknown`` when nobody can tell whether X accepted it). ``posting`` is written and committed
  *before* the HTTP call, so after a crash the store knows which posts may have reached X; see
  ``tweetdesk.reply.poster`` for how such rows are verified instead of re-posted.

Every write runs in its own short transaction (SQLite: ``BEGIN IMMEDIATE`` in WAL mode, so writers
queue on the busy timeout instead of failing on a lock upgrade).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from tweetdesk.errors import TweetdeskError
from tweetdesk.records import EnrichedTweet, Entity, Reply, ReplyStatus, utcnow
from tweetdesk.redact import encode_credentials, redact_url, scrub
from tweetdesk.tickets.intake import CAPPED, OPENED, OWN, THREADED, FloodCounter, Intake, author_key
from tweetdesk.xrules import opt_out_phrase, summoned_by

log = logging.getLogger(__name__)

# Bump when the schema changes, and add the step that upgrades N-1 -> N to MIGRATIONS below.
SCHEMA_VERSION = 3


class StoreError(TweetdeskError):
    """The ticket store cannot be opened or used (bad URL, server down, newer schema)."""


# Why a ticket gets no automatic reply when nobody summoned us (shown to agents, in the API and on the dashboard).
LISTENING_ONLY = "listening only (not summoned): X allows automatic replies only to posts that mention or quote us"


class TicketStatus(str, Enum):
    open = "open"  # created, reply not (yet) out
    replied = "replied"  # our reply is posted (or written to the dry-run outbox)
    resolved = "resolved"  # closed by an agent
    failed = "failed"  # the reply could not be posted; ``last_error`` says why


class ReplyKind(str, Enum):
    auto = "auto"  # the templated reply the service sends once per ticket
    manual = "manual"  # an agent's reply through POST /api/replies


# ----------------------------------------------------------------------------------------------
# Schema
# ----------------------------------------------------------------------------------------------


class UTCDateTime(sa.types.TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite has no time zones: store naive UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", UTCDateTime, nullable=False),
)

tickets = sa.Table(
    "tickets",
    metadata,
    sa.Column("ticket_id", sa.String(16), primary_key=True),
    sa.Column("tweet_id", sa.String(32), nullable=False, unique=True),
    sa.Column("author", sa.String(64), nullable=False),
    sa.Column("author_id", sa.String(32)),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("lang", sa.String(16)),
    sa.Column("brand", sa.String(64)),
    sa.Column("rule", sa.String(256)),
    sa.Column("tweet_created_at", UTCDateTime),
    sa.Column("sentiment", sa.String(16), nullable=False),
    sa.Column("sentiment_score", sa.Float),
    sa.Column("topic", sa.String(64), nullable=False),
    sa.Column("topic_score", sa.Float),
    sa.Column("entities", _JSON, nullable=False),
    sa.Column("model_version", sa.String(64)),
    sa.Column("status", sa.String(16), nullable=False, default=TicketStatus.open.value),
    sa.Column("reply_text", sa.Text),
    sa.Column("posted_reply_id", sa.String(32)),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text),
    # Threads (conversation grouping builds on these; see issue 7).
    sa.Column("conversation_id", sa.String(32), index=True),
    sa.Column("in_reply_to_tweet_id", sa.String(32), index=True),
    sa.Column("in_reply_to_user_id", sa.String(32)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("replied_at", UTCDateTime),
    sa.Column("resolved_at", UTCDateTime),
    # v2: customer tweets in the ticket's thread, and the newest of them (the one a reply answers).
    sa.Column("message_count", sa.Integer, nullable=False, default=1, server_default="1"),
    sa.Column("last_tweet_id", sa.String(32)),
    # v3: how the customer summoned us (mention | quote | reply; None = listening only: no automatic
    # reply, X forbids it) and, when no automatic reply is queued, why (shown to agents).
    sa.Column("summoned_by", sa.String(16)),
    sa.Column("no_reply_reason", sa.Text),
    sa.Index("ix_tickets_status_created", "status", "created_at"),
    sa.Index("ix_tickets_topic", "topic"),
    sa.Index("ix_tickets_sentiment", "sentiment"),
    sa.Index("ix_tickets_created", "created_at"),
)

replies = sa.Table(
    "replies",
    metadata,
    sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", sa.String(16), sa.ForeignKey("tickets.ticket_id"), nullable=False, index=True),
    sa.Column("in_reply_to_tweet_id", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("dedupe_key", sa.String(200), nullable=False, unique=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False, default=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("posted_id", sa.String(32)),
    sa.Column("error", sa.Text),
    sa.Column("not_before", UTCDateTime),  # a retry or a rate-limit wait: not to be tried before this
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("posted_at", UTCDateTime),
    # v2: the reply budget's order (lower first; see tweetdesk.reply.budget) and what the post cost.
    sa.Column("priority", sa.Integer, nullable=False, default=3, server_default="3"),
    sa.Column("cost_usd", sa.Float),
    sa.Index("ix_replies_status_due", "status", "not_before"),
    sa.Index("ix_replies_posted_at", "posted_at"),
    sa.Index("ix_replies_status_priority", "status", "priority", "created_at"),
)

# v2: every tweet taken in, ticketed or not (see tweetdesk.tickets.intake for the dispositions).
tweets_table = sa.Table(
    "tweets",
    metadata,
    sa.Column("tweet_id", sa.String(32), primary_key=True),
    sa.Column("ticket_id", sa.String(16), sa.ForeignKey("tickets.ticket_id"), index=True),
    sa.Column("disposition", sa.String(16), nullable=False),  # opened | threaded | own | capped
    sa.Column("reason", sa.Text),
    sa.Column("conversation_key", sa.String(32), nullable=False),  # conversation_id, else the root we know
    sa.Column("in_reply_to_tweet_id", sa.String(32)),
    sa.Column("author", sa.String(64), nullable=False),
    sa.Column("author_key", sa.String(80), nullable=False),  # author_id, else '@' + lower-case handle
    sa.Column("rule", sa.String(256)),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("sentiment", sa.String(16)),
    sa.Column("topic", sa.String(64)),
    sa.Column("tweet_created_at", UTCDateTime, nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    # v3: where it was read (replay | mentions | x | api: what X charged for it) and how it summoned us.
    sa.Column("source", sa.String(16)),
    sa.Column("summoned_by", sa.String(16)),
    sa.Index("ix_tweets_conversation", "conversation_key", "author_key"),
    sa.Index("ix_tweets_author_time", "author_key", "disposition", "tweet_created_at"),
    sa.Index("ix_tweets_rule_time", "rule", "disposition", "tweet_created_at"),
    sa.Index("ix_tweets_disposition_received", "disposition", "received_at"),
)


# v3: customers who get no automatic reply (X's rules): they opted out ("stop"), blocked us, or X refused
# a reply to them (a cooldown until ``until``). One row per author; agents can lift it.
OPT_OUT, BLOCKED, REFUSED = "opt_out", "blocked", "refused"
opt_outs = sa.Table(
    "opt_outs",
    metadata,
    sa.Column("author_key", sa.String(80), primary_key=True),  # as tweets.author_key
    sa.Column("author", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # opt_out | blocked | refused
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("tweet_id", sa.String(32)),  # the tweet or reply that caused it
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("until", UTCDateTime),  # None = until lifted
)

# v3: what X charged, per UTC day and kind (owned_read | post_read | summoned_reply | post | url_post).
x_usage = sa.Table(
    "x_usage",
    metadata,
    sa.Column("day", sa.String(10), primary_key=True),  # YYYY-MM-DD, UTC
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False, default=0),
    sa.Column("cost_usd", sa.Float, nullable=False, default=0.0),
)


def _migrate_v2(conn: Connection) -> None:
    """v1 → v2: threads, flood guard and reply budget (issue 7)."""
    for table, column in (
        ("tickets", "message_count INTEGER NOT NULL DEFAULT 1"),
        ("tickets", "last_tweet_id VARCHAR(32)"),
        ("replies", "priority INTEGER NOT NULL DEFAULT 3"),
        ("replies", "cost_usd FLOAT"),
    ):
        conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column}"))
    next(i for i in replies.indexes if i.name == "ix_replies_status_priority").create(conn)
    tweets_table.create(conn)
    # Every ticket's tweet opened it; live posts so far cost the plain price.
    conn.execute(
        sa.text(
            "INSERT INTO tweets (tweet_id, ticket_id, disposition, conversation_key, in_reply_to_tweet_id, author, "
            "author_key, rule, text, sentiment, topic, tweet_created_at, received_at) "
            "SELECT tweet_id, ticket_id, 'opened', COALESCE(conversation_id, tweet_id), in_reply_to_tweet_id, author, "
            "COALESCE(author_id, '@' || LOWER(author)), rule, text, sentiment, topic, "
            "COALESCE(tweet_created_at, created_at), created_at FROM tickets"
        )
    )
    conn.execute(sa.text("UPDATE tickets SET last_tweet_id = tweet_id"))
    conn.execute(sa.text("UPDATE replies SET cost_usd = 0.015 WHERE status = 'posted'"))

def _migrate_v3(conn: Connection) -> None:
    """v2 → v3: X's rules of 2026 (issue 11): who summoned us, opt-outs, what X charged."""
    have = {t: {c["name"] for c in sa.inspect(conn).get_columns(t)} for t in ("tickets", "tweets")}
    for table, column in (
        ("tickets", "summoned_by VARCHAR(16)"),
        ("tickets", "no_reply_reason TEXT"),
        ("tweets", "source VARCHAR(16)"),
        ("tweets", "summoned_by VARCHAR(16)"),
    ):
        # A v1 database gets the tweets table in step v2 from today's metadata, these columns included.
        if column.split()[0] not in have[table]:
            conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column}"))
    opt_outs.create(conn)
    x_usage.create(conn)
    # Tickets before v3 were all answered under the old rule: say so rather than guess who summoned us.
    conn.execute(sa.text("UPDATE tickets SET summoned_by = 'mention' WHERE status IN ('replied', 'failed')"))
    conn.execute(sa.text(
        "UPDATE tickets SET no_reply_reason = 'opened before X''s reply rules were applied (schema v3): check "
        "that the customer mentioned us before replying' WHERE summoned_by IS NULL"
    ))


# version -> function upgrading a database from version-1 to version. A fresh database is created
# from ``metadata`` at SCHEMA_VERSION directly; existing ones run the missing steps in order.
# Append only; never edit a step that has shipped.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _migrate_v2, 3: _migrate_v3}


# ----------------------------------------------------------------------------------------------
# Records the store returns
# ----------------------------------------------------------------------------------------------


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

    def to_json(self) -> dict[str, Any]:
        times = ("created_at", "updated_at", "replied_at", "resolved_at")
        return {**asdict(self), **{k: _iso(getattr(self, k)) for k in times}}


class StoredReply(Reply):
    """A row of the outbox: ``tweet_id`` is the tweet replied to."""

    id: int
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


# Built once: the tracking page is the public hot path (a customer's lookup must stay fast while dashboards poll).
_PUBLIC_TICKET = sa.select(*(tickets.c[f] for f in PublicTicket.__dataclass_fields__)).where(
    tickets.c.ticket_id == sa.bindparam("ticket_id")
)


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def _redact(url: str) -> str:
    return redact_url(url)


def normalise_url(url: str) -> str:
    """Plain ``postgresql://`` / ``postgres://`` URLs use psycopg 3 (the driver we install); credentials
    are percent-encoded (a password may hold an unencoded '@')."""
    url = encode_credentials(url)
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


# ----------------------------------------------------------------------------------------------
# The store
# ----------------------------------------------------------------------------------------------


class TicketStore:
    """Thread-safe: one instance serves the consumer, the poster and the web threads."""

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], datetime] = utcnow,
        migrate: bool = True,
        pool_size: int = 5,
    ):
        self.url = normalise_url(url)
        self.clock = clock
        try:
            self.engine = self._make_engine(self.url, pool_size)
        except (SQLAlchemyError, ValueError, ImportError) as e:
            raise StoreError(f"cannot open ticket store {_redact(self.url)}: {scrub(str(e), url=self.url)}") from None
        self.dialect = self.engine.dialect.name
        if self.dialect not in ("sqlite", "postgresql"):
            raise StoreError(f"ticket store supports SQLite and PostgreSQL, not {self.dialect}")
        self._insert = sqlite.insert if self.dialect == "sqlite" else postgresql.insert
        if migrate:
            self.migrate()

    @classmethod
    def from_settings(cls, settings, **kw) -> "TicketStore":
        if not settings.database_url:
            Path(settings.work_dir).mkdir(parents=True, exist_ok=True)
        return cls(settings.db_url, **kw)

    # --- engine -------------------------------------------------------------------------------
    @staticmethod
    def _make_engine(url: str, pool_size: int) -> Engine:
        u = sa.engine.make_url(url)
        if u.get_backend_name() != "sqlite":
            return sa.create_engine(url, pool_size=pool_size, max_overflow=10, pool_pre_ping=True)
        memory = u.database in (None, "", ":memory:")
        if not memory:
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            # One shared connection for an in-memory database (each new one would be empty).
            poolclass=sa.pool.StaticPool if memory else sa.pool.QueuePool,
            **({} if memory else {"pool_size": pool_size, "max_overflow": 10}),
        )

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):
            # Take over BEGIN from the sqlite3 module so writes can say BEGIN IMMEDIATE.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            if not memory:
                # WAL: readers never block the writer. synchronous=NORMAL in WAL mode survives a
                # process crash (SIGKILL) without losing a commit; only an OS crash/power loss can
                # drop the last transactions, which the Kafka offset (not yet committed) replays.
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn):
            write = conn.get_execution_options().get("tweetdesk_write")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """A lost server or a locked file becomes a ``StoreError`` (one line, no password)."""
        try:
            yield
        except DBAPIError as e:
            if e.connection_invalidated or isinstance(e, sa.exc.OperationalError):
                raise StoreError(f"ticket store {_redact(self.url)} unavailable: {scrub(str(e.orig), url=self.url)}") from e
            raise

    @contextmanager
    def _tx(self, write: bool = False) -> Iterator[Connection]:
        with self._errors(), self.engine.connect() as conn:
            if write:
                conn.execution_options(tweetdesk_write=True)
            with conn.begin():
                yield conn

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> bool:
        try:
            with self._tx() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        except (StoreError, SQLAlchemyError):
            return False

    # --- schema -------------------------------------------------------------------------------
    def migrate(self) -> int:
        """Create the schema on a fresh database or upgrade an older one; returns the version."""
        with self._tx(write=True) as conn:
            if self.dialect == "postgresql":
                # Two services starting together must not both create the tables.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(7413201)"))
            schema_version.create(conn, checkfirst=True)
            current = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()
            now = self.clock()
            if current is None:
                metadata.create_all(conn, checkfirst=True)
                conn.execute(schema_version.insert().values(version=SCHEMA_VERSION, applied_at=now))
                log.info("ticket store %s: created schema v%d", _redact(self.url), SCHEMA_VERSION)
                return SCHEMA_VERSION
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"ticket store schema is v{current}, newer than this tweetdesk understands "
                    f"(v{SCHEMA_VERSION}): upgrade tweetdesk"
                )
            for v in range(current + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[v](conn)
                conn.execute(schema_version.insert().values(version=v, applied_at=now))
                log.info("ticket store %s: migrated to schema v%d", _redact(self.url), v)
            return SCHEMA_VERSION

    def schema_version(self) -> int | None:
        with self._tx() as conn:
            return conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()

    # --- ingest -------------------------------------------------------------------------------
    def add_tickets(
        self,
        tweets: Sequence[EnrichedTweet],
        reply_text: Callable[[EnrichedTweet], str | None] | None = None,
        *,
        intake: Intake | None = None,
        priority: Callable[[EnrichedTweet], int] | None = None,
    ) -> IngestResult:
        """Take in a batch of tweets in one transaction: open a ticket per new conversation and queue
        its automatic reply; attach later tweets of a conversation to its open ticket; record our
        own tweets and flood-guarded ones without a ticket (see ``tweetdesk.tickets.intake``).

        Insert-if-absent on the tweet id: a tweet already held (ticketed or not) is reported in
        ``duplicates`` and changes nothing. ``reply_text(tweet)`` gives the reply to queue for a new
        ticket (None = no automatic reply); ``priority(tweet)`` its place in the reply budget's
        queue (lower first). ``intake`` defaults to ``Intake()``: threads, no own handles, no caps.
        """
        intake = intake or Intake()
        result = IngestResult()
        if not tweets:
            return result
        now = self.clock()
        T = tweets_table
        # A few set-based statements per batch, not several per record: this is the hot path.
        with self._tx(write=True) as conn:

            def each(col, keys, *cond, cols=None):
                keys = list(dict.fromkeys(k for k in keys if k))
                for i in range(0, len(keys), 500):
                    yield from conn.execute(sa.select(*(cols or [col])).where(col.in_(keys[i : i + 500]), *cond))

            ids = list(dict.fromkeys(tw.id for tw in tweets))
            held = {r[0] for r in each(T.c.tweet_id, ids)} | {r[0] for r in each(tickets.c.tweet_id, ids)}
            fresh: dict[str, EnrichedTweet] = {}
            for tw in tweets:
                if tw.id in held or tw.id in fresh:
                    result.duplicates.append(tw.id)
                else:
                    fresh[tw.id] = tw
            if not fresh:
                return result
            order = sorted(fresh.values(), key=lambda t: t.created_at)  # stable: same time keeps batch order

            # Parents we hold: a customer tweet (its conversation) or one of our posted replies (its ticket).
            parents = [tw.in_reply_to_tweet_id for tw in order]
            parent_conv: dict[str, str] = {}
            parent_ticket: dict[str, str] = {}
            for tid, conv, ticket in each(T.c.tweet_id, parents, cols=[T.c.tweet_id, T.c.conversation_key, T.c.ticket_id]):
                parent_conv[tid] = conv
                if ticket:
                    parent_ticket[tid] = ticket
            keys = [p for p in parents if p]
            for i in range(0, len(keys), 500):
                q = (
                    sa.select(replies.c.posted_id, replies.c.ticket_id, sa.func.coalesce(tickets.c.conversation_id, tickets.c.tweet_id))
                    .join(tickets, tickets.c.ticket_id == replies.c.ticket_id)
                    .where(replies.c.posted_id.in_(keys[i : i + 500]))
                )
                for pid, ticket, conv in conn.execute(q):
                    parent_ticket[pid] = ticket
                    parent_conv.setdefault(pid, conv)

            # Tweets of ours these refer to (replied to or quoted): our posted replies and own tweets we saw.
            refs = parents + [r.id for tw in order for r in tw.referenced_tweets]
            our_ids = {r[0] for r in each(replies.c.posted_id, refs)}
            our_ids |= {r[0] for r in each(T.c.tweet_id, refs, T.c.disposition == OWN)}
            # Authors who get no automatic reply now: opted out, blocked us, or X refused us lately.
            barred = self._barred(conn, [author_key(tw.author, tw.author_id) for tw in order], now)
            opting_out: dict[str, tuple[EnrichedTweet, str]] = {}  # author key -> (tweet, phrase)

            conv_of: dict[str, str] = {}

            def conversation(tw: EnrichedTweet) -> str:
                p = tw.in_reply_to_tweet_id
                return tw.conversation_id or parent_conv.get(p) or conv_of.get(p) or tw.id

            # Open tickets of these conversations, per customer (the latest wins).
            convs = [conversation(tw) for tw in order]
            thread: dict[tuple[str, str], str] = {}
            conv_ticket: dict[str, str] = {}
            answered: dict[str, bool] = {}  # ticket id -> an automatic reply is (or may be) queued for it
            for i in range(0, len(convs), 500):
                q = (
                    sa.select(T.c.conversation_key, T.c.author_key, T.c.ticket_id, tickets.c.reply_text.is_not(None))
                    .join(tickets, tickets.c.ticket_id == T.c.ticket_id)
                    .where(
                        T.c.conversation_key.in_(list(dict.fromkeys(convs[i : i + 500]))),
                        T.c.disposition.in_([OPENED, THREADED]),
                        tickets.c.status != TicketStatus.resolved.value,
                    )
                    .order_by(tickets.c.created_at, tickets.c.ticket_id)
                )
                for conv, akey, ticket, has_reply in conn.execute(q):
                    thread[(conv, akey)] = ticket
                    conv_ticket[conv] = ticket
                    answered[ticket] = bool(has_reply)

            # The flood guard's counts so far, within the window before the earliest tweet.
            flood = FloodCounter(intake)
            since = order[0].created_at - intake.window
            if intake.per_author is not None:
                akeys = [author_key(tw.author, tw.author_id) for tw in order]
                for akey, at in each(
                    T.c.author_key, akeys, T.c.disposition == OPENED, T.c.tweet_created_at > since,
                    cols=[T.c.author_key, T.c.tweet_created_at],
                ):
                    flood.seed("author", akey, at)
            if intake.per_rule is not None:
                for rule, at in each(
                    T.c.rule, [tw.rule for tw in order], T.c.disposition == OPENED, T.c.tweet_created_at > since,
                    cols=[T.c.rule, T.c.tweet_created_at],
                ):
                    flood.seed("rule", rule, at)

            # Decide, oldest first.
            openers: list[EnrichedTweet] = []
            no_reply: dict[str, str | None] = {}  # opener tweet id -> why no automatic reply (None: one is queued)
            late_summons: dict[str, EnrichedTweet] = {}  # listening-only ticket -> the thread tweet that summoned us
            rows: dict[str, dict[str, Any]] = {}  # tweet id -> its tweets row
            for tw in order:
                conv = conversation(tw)
                conv_of[tw.id] = conv
                akey = author_key(tw.author, tw.author_id)
                row = _tweet_row(tw, conv, akey, now)
                rows[tw.id] = row
                if intake.is_ours(tw.author):
                    row.update(disposition=OWN, reason="our own account",
                               ticket_id=parent_ticket.get(tw.in_reply_to_tweet_id) or conv_ticket.get(conv))
                    result.own.append(tw.id)
                    our_ids.add(tw.id)
                    continue
                how = summoned_by(tw, intake.our_handles, our_ids)
                row["summoned_by"] = how
                phrase = opt_out_phrase(tw.text, intake.opt_out_phrases) if how else None
                if phrase:  # written to us: honoured at once, from this tweet on
                    opting_out[akey] = (tw, phrase)
                    barred[akey] = f"@{tw.author} opted out (wrote {phrase!r} to us)"
                ticket = thread.get((conv, akey))
                if ticket:
                    row.update(disposition=THREADED, ticket_id=ticket)
                    if (how or not intake.summoned_only) and not answered.get(ticket, True) and akey not in barred:
                        late_summons.setdefault(ticket, tw)  # the customer asked us in an ongoing thread
                        answered[ticket] = True
                    continue
                reason = flood.reason(tw.author, akey, tw.rule, tw.created_at)
                if reason:
                    row.update(disposition=CAPPED, reason=reason)
                    result.capped.append((tw.id, reason))
                    continue
                row.update(disposition=OPENED, ticket_id=tw.ticket_id)
                flood.opened(akey, tw.rule, tw.created_at)
                thread[(conv, akey)] = tw.ticket_id
                conv_ticket.setdefault(conv, tw.ticket_id)
                openers.append(tw)
                no_reply[tw.id] = (
                    LISTENING_ONLY if how is None and intake.summoned_only else
                    f"no automatic reply: {barred[akey]}" if akey in barred else None
                )
                answered[tw.ticket_id] = no_reply[tw.id] is None

            inserted: set[str] = set()
            texts: dict[str, str | None] = {}
            if openers:
                texts = {tw.id: (reply_text(tw) if reply_text and no_reply[tw.id] is None else None) for tw in openers}
                ticket_rows = [
                    {**_ticket_row(tw, now), "reply_text": texts[tw.id], "summoned_by": rows[tw.id]["summoned_by"],
                     "no_reply_reason": no_reply[tw.id]}
                    for tw in openers
                ]
                # Insert-if-absent; RETURNING names the rows that went in (a concurrent writer on
                # PostgreSQL may have won some; SQLAlchemy gives no rowcount for these on psycopg).
                ins = self._insert(tickets).on_conflict_do_nothing().returning(tickets.c.ticket_id, tickets.c.tweet_id)
                inserted = {tweet_id for _tid, tweet_id in conn.execute(ins, ticket_rows)}
            lost: set[str] = set()  # ticket ids this batch meant to open but could not
            for tw in openers:
                if tw.id in inserted:
                    result.created.append(tw.ticket_id)
                    continue
                del rows[tw.id]  # not ours to record: stored by another writer, or rejected
                if conn.execute(sa.select(tickets.c.ticket_id).where(tickets.c.tweet_id == tw.id)).scalar() is not None:
                    result.duplicates.append(tw.id)  # a concurrent writer stored it first
                else:
                    # The ticket ID is taken by another tweet: a hash collision (~1e-12). Never drop
                    # it silently: the caller dead-letters it.
                    lost.add(tw.ticket_id)
                    result.rejected.append((tw.id, f"ticket id {tw.ticket_id} already belongs to another tweet"))
            for tid, row in list(rows.items()):
                if row["ticket_id"] in lost:  # a thread tweet of a rejected opener goes with it
                    if row["disposition"] == OWN:
                        row["ticket_id"] = None
                    else:
                        del rows[tid]
                        result.rejected.append((tid, f"its thread's ticket {row['ticket_id']} could not be opened"))
                elif row["disposition"] == THREADED:
                    result.threaded.append(tid)

            reply_rows = [
                {**_reply_row(tw.ticket_id, tw.id, texts[tw.id], ReplyKind.auto, f"auto:{tw.ticket_id}", now),
                 "priority": priority(tw) if priority else 3}
                for tw in openers
                if tw.id in inserted and texts[tw.id]
            ]
            # A listening-only ticket whose customer now asks us (mentions us in the thread): its one reply.
            for ticket, tw in late_summons.items():
                if ticket in lost or rows.get(tw.id, {}).get("ticket_id") != ticket:
                    continue
                text = reply_text(tw.model_copy(update={"ticket_id": ticket})) if reply_text else None
                if not text:
                    continue
                reply_rows.append({**_reply_row(ticket, tw.id, text, ReplyKind.auto, f"auto:{ticket}", now),
                                   "priority": priority(tw) if priority else 3})
                conn.execute(
                    tickets.update().where(tickets.c.ticket_id == ticket)
                    .values(reply_text=text, summoned_by=rows[tw.id]["summoned_by"], no_reply_reason=None, updated_at=now)
                )
            if reply_rows:
                ins_reply = (
                    self._insert(replies).on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(replies.c.id)
                )
                result.replies.extend(sorted(conn.execute(ins_reply, reply_rows).scalars()))
            if rows:
                conn.execute(self._insert(T).on_conflict_do_nothing(index_elements=["tweet_id"]), list(rows.values()))

            # Thread tweets: count them on their ticket; a reply still queued answers the newest
            # tweet and moves up if the thread got more urgent ("update: now it's cancelled").
            joined: dict[str, dict[str, Any]] = {}
            for tid in result.threaded:
                tw, row = fresh[tid], rows[tid]
                j = joined.setdefault(row["ticket_id"], {"tid": row["ticket_id"], "n": 0, "last": tid, "p": 99,
                                                         "at": tw.created_at, "answer": None})
                j["n"] += 1
                j["last"] = tid
                if row["summoned_by"] or not intake.summoned_only:  # X lets a reply answer only a tweet that summoned us
                    j["answer"] = tid
                j["p"] = min(j["p"], priority(tw) if priority else 99)
                j["at"] = max(j["at"], tw.created_at)
            if joined:
                # A customer who writes again *after* our reply went out is waiting on us again: the ticket
                # goes back to open (the agents' queue). No second automatic reply: an agent answers. A tweet
                # written before our reply (the rest of the first thread, or a late catch-up) changes nothing.
                follow_up = sa.and_(
                    tickets.c.status == TicketStatus.replied.value,
                    tickets.c.replied_at < sa.bindparam("at", type_=UTCDateTime),
                )
                conn.execute(
                    tickets.update()
                    .where(tickets.c.ticket_id == sa.bindparam("tid"))
                    .values(
                        message_count=tickets.c.message_count + sa.bindparam("n"),
                        last_tweet_id=sa.bindparam("last"),
                        status=sa.case((follow_up, TicketStatus.open.value), else_=tickets.c.status),
                        updated_at=now,
                    ),
                    [{"tid": j["tid"], "n": j["n"], "last": j["last"], "at": j["at"]} for j in joined.values()],
                )
                # The queued reply moves up if the thread got more urgent, and answers the newest tweet that
                # summoned us (X lets a reply answer only such a tweet).
                p = sa.bindparam("p")
                answer = sa.bindparam("answer", type_=sa.String)
                conn.execute(
                    replies.update()
                    .where(
                        replies.c.dedupe_key == sa.bindparam("key"),
                        replies.c.status == ReplyStatus.queued.value,
                    )
                    .values(
                        in_reply_to_tweet_id=sa.func.coalesce(answer, replies.c.in_reply_to_tweet_id),
                        priority=sa.case((replies.c.priority > p, p), else_=replies.c.priority),
                        updated_at=now,
                    ),
                    [{"key": f"auto:{j['tid']}", "answer": j["answer"], "p": j["p"]} for j in joined.values()],
                )
            if opting_out:
                for akey, (tw, phrase) in opting_out.items():
                    self._bar(conn, akey, tw.author, OPT_OUT, f"wrote {phrase!r} to us", tw.id, None, now)
                result.opted_out.extend(tw.id for tw, _ in opting_out.values())
            self._count_reads(conn, fresh.values(), intake, now)
        return result

    def queue_reply(
        self, tweet_id: str, text: str, *, kind: ReplyKind = ReplyKind.manual, key: str | None = None
    ) -> tuple[StoredReply, bool]:
        """Queue a reply to the ticket holding ``tweet_id``; returns (reply, created).

        ``key`` makes the call idempotent (same key → same reply, nothing new). Raises LookupError
        when no ticket holds the tweet.
        """
        now = self.clock()
        # Without a key every call is its own intent.
        dedupe = f"{kind.value}:{tweet_id}:{key or uuid.uuid4().hex}"
        with self._tx(write=True) as conn:
            ticket_id = conn.execute(sa.select(tickets.c.ticket_id).where(tickets.c.tweet_id == tweet_id)).scalar()
            if ticket_id is None:
                raise LookupError(f"no ticket holds tweet {tweet_id}")
            existing = conn.execute(sa.select(replies).where(replies.c.dedupe_key == dedupe)).mappings().first()
            if existing:
                return StoredReply.model_validate(_reply_dict(existing)), False
            row = _reply_row(ticket_id, tweet_id, text, kind, dedupe, now)
            rid = conn.execute(replies.insert().returning(replies.c.id), row).scalar()
            got = conn.execute(sa.select(replies).where(replies.c.id == rid)).mappings().one()
            return StoredReply.model_validate(_reply_dict(got)), True

    # --- the outbox state machine --------------------------------------------------------------
    def due_replies(self, limit: int = 100, *, now: datetime | None = None) -> list[int]:
        """Queued replies whose wait is over: by priority (lower first; agents' replies are 0), then
        oldest first."""
        now = now or self.clock()
        q = (
            sa.select(replies.c.id)
            .where(replies.c.status == ReplyStatus.queued.value)
            .where(sa.or_(replies.c.not_before.is_(None), replies.c.not_before <= now))
            .order_by(replies.c.priority, replies.c.created_at, replies.c.id)
            .limit(limit)
        )
        with self._tx() as conn:
            return list(conn.execute(q).scalars())

    def next_due_at(self) -> datetime | None:
        """When the earliest queued reply becomes due (maybe already past); None when none is queued."""
        q = sa.select(sa.func.min(sa.func.coalesce(replies.c.not_before, replies.c.created_at))).where(
            replies.c.status == ReplyStatus.queued.value
        )
        with self._tx() as conn:
            return conn.execute(q).scalar()

    def claim(self, reply_id: int) -> StoredReply | None:
        """queued → posting, and count the attempt. Committed before the caller talks to X, so a
        crash leaves a ``posting`` row: "this reply may have been posted". None if someone else
        holds it or it is no longer queued."""
        now = self.clock()
        with self._tx(write=True) as conn:
            if self._cancel_barred(conn, [reply_id], now):
                return None  # its customer opted out since it was queued: it never goes
            n = conn.execute(
                replies.update()
                .where(replies.c.id == reply_id, replies.c.status == ReplyStatus.queued.value)
                .values(status=ReplyStatus.posting.value, attempts=replies.c.attempts + 1, updated_at=now)
            ).rowcount
            if n != 1:
                return None
            row = conn.execute(sa.select(replies).where(replies.c.id == reply_id)).mappings().one()
            conn.execute(
                tickets.update().where(tickets.c.ticket_id == row["ticket_id"]).values(
                    attempts=row["attempts"], updated_at=now
                )
            )
            return StoredReply.model_validate(_reply_dict(row))

    def record_posted(
        self, reply_id: int, posted_id: str | None, *, dry_run: bool = False, cost_usd: float | None = None,
        cost_kind: str | None = None,
    ) -> bool:
        """posting → posted (X accepted it, ``posted_id`` is the new tweet) and the ticket → replied.
        ``cost_usd``: what X charges for this post (the reply budget's spend), of ``cost_kind``
        (``tweetdesk.xrules.POST_KINDS``), also summed per UTC day in ``x_usage``."""
        status = ReplyStatus.dry_run if dry_run else ReplyStatus.posted
        return self._finish(reply_id, status, posted_id=posted_id, error=None, dry_run=dry_run, cost_usd=cost_usd,
                            cost_kind=cost_kind)

    def record_dry_run(self, reply_ids: Iterable[int]) -> list[DryRunRecord]:
        """queued → dry_run for many replies in one transaction (nothing leaves the building, so no
        separate intent is needed). Returns the replies recorded (those still queued)."""
        ids = list(reply_ids)
        if not ids:
            return []
        now = self.clock()
        done: list[DryRunRecord] = []
        with self._tx(write=True) as conn:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                self._cancel_barred(conn, chunk, now)
                rows = (
                    conn.execute(
                        sa.select(
                        replies.c.id, replies.c.ticket_id, replies.c.in_reply_to_tweet_id, replies.c.text, replies.c.attempts
                    ).where(
                            replies.c.id.in_(chunk), replies.c.status == ReplyStatus.queued.value
                        )
                    )
                    .mappings()
                    .all()
                )
                if not rows:
                    continue
                conn.execute(
                    replies.update()
                    .where(replies.c.id.in_([r["id"] for r in rows]), replies.c.status == ReplyStatus.queued.value)
                    .values(
                        status=ReplyStatus.dry_run.value,
                        dry_run=True,
                        attempts=replies.c.attempts + 1,
                        error=None,
                        updated_at=now,
                        posted_at=now,
                    )
                )
                conn.execute(
                    tickets.update()
                    .where(tickets.c.ticket_id == sa.bindparam("tid"))
                    # No IN (…) here: expanding parameters do not mix with executemany.
                    .where(sa.or_(tickets.c.status == TicketStatus.open.value, tickets.c.status == TicketStatus.failed.value))
                    .values(
                        status=TicketStatus.replied.value,
                        reply_text=sa.bindparam("txt"),
                        attempts=sa.bindparam("att"),
                        last_error=None,
                        replied_at=now,
                        updated_at=now,
                    ),
                    [{"tid": r["ticket_id"], "txt": r["text"], "att": r["attempts"] + 1} for r in rows],
                )
                done.extend(
                    DryRunRecord(r["id"], r["ticket_id"], r["in_reply_to_tweet_id"], r["text"]) for r in rows
                )
        return done

    def record_retry(self, reply_id: int, error: str, not_before: datetime, *, count_attempt: bool = True) -> bool:
        """posting → queued again, not to be tried before ``not_before`` (backoff or rate-limit reset).
        ``count_attempt=False`` gives the attempt back (a 429 is X's budget, not a failed try)."""
        now = self.clock()
        attempts = replies.c.attempts if count_attempt else sa.func.max(replies.c.attempts - 1, 0)
        if not count_attempt and self.dialect == "postgresql":
            attempts = sa.func.greatest(replies.c.attempts - 1, 0)
        with self._tx(write=True) as conn:
            n = conn.execute(
                replies.update()
                .where(replies.c.id == reply_id, replies.c.status == ReplyStatus.posting.value)
                .values(
                    status=ReplyStatus.queued.value,
                    error=error[:2000],
                    not_before=not_before,
                    attempts=attempts,
                    updated_at=now,
                )
            ).rowcount
            if n == 1:
                conn.execute(
                    tickets.update()
                    .where(tickets.c.ticket_id == sa.select(replies.c.ticket_id).where(replies.c.id == reply_id).scalar_subquery())
                    .values(last_error=error[:2000], updated_at=now)
                )
            return n == 1

    def record_failed(self, reply_id: int, error: str) -> bool:
        """posting → failed; an automatic reply's ticket becomes ``failed`` with the reason."""
        return self._finish(reply_id, ReplyStatus.failed, posted_id=None, error=error)

    def record_unknown(self, reply_id: int, error: str) -> bool:
        """posting → unknown: X may or may not have the post and we could not verify. Never
        re-posted automatically; an agent checks and resolves."""
        return self._finish(reply_id, ReplyStatus.unknown, posted_id=None, error=error)

    def requeue(self, reply_id: int, reason: str) -> bool:
        """posting → queued, due now (a post verified as *not* made, or a dry-run cut short)."""
        return self.record_retry(reply_id, reason, self.clock())

    def _finish(
        self,
        reply_id: int,
        status: ReplyStatus,
        *,
        posted_id: str | None,
        error: str | None,
        dry_run: bool = False,
        cost_usd: float | None = None,
        cost_kind: str | None = None,
    ) -> bool:
        now = self.clock()
        err = error[:2000] if error else None
        with self._tx(write=True) as conn:
            n = conn.execute(
                replies.update()
                .where(replies.c.id == reply_id, replies.c.status == ReplyStatus.posting.value)
                .values(
                    status=status.value,
                    posted_id=posted_id,
                    error=err,
                    dry_run=dry_run,
                    cost_usd=cost_usd,
                    updated_at=now,
                    posted_at=now if status in (ReplyStatus.posted, ReplyStatus.dry_run) else None,
                )
            ).rowcount
            if n != 1:
                return False
            r = conn.execute(sa.select(replies).where(replies.c.id == reply_id)).mappings().one()
            if cost_kind and status is ReplyStatus.posted:
                self._add_usage(conn, now, {cost_kind: (1, cost_usd or 0.0)})
            t = tickets.update().where(tickets.c.ticket_id == r["ticket_id"])
            if status in (ReplyStatus.posted, ReplyStatus.dry_run):
                conn.execute(
                    t.where(tickets.c.status.in_([TicketStatus.open.value, TicketStatus.failed.value])).values(
                        status=TicketStatus.replied.value,
                        reply_text=r["text"],
                        posted_reply_id=posted_id,
                        attempts=r["attempts"],
                        last_error=None,
                        replied_at=now,
                        updated_at=now,
                    )
                )
            elif status is ReplyStatus.failed and r["kind"] == ReplyKind.auto.value:
                conn.execute(
                    t.where(tickets.c.status == TicketStatus.open.value).values(
                        status=TicketStatus.failed.value, last_error=err, attempts=r["attempts"], updated_at=now
                    )
                )
            else:
                conn.execute(t.values(last_error=err, updated_at=now))
            return True

    # --- X's rules: opt-outs, refusals, what X charged ---------------------------------------------
    @staticmethod
    def _barred(conn: Connection, akeys: Iterable[str], now: datetime) -> dict[str, str]:
        """Author key -> why they get no automatic reply now (opted out, blocked us, refused lately)."""
        keys = list(dict.fromkeys(akeys))
        out: dict[str, str] = {}
        for i in range(0, len(keys), 500):
            q = sa.select(opt_outs).where(
                opt_outs.c.author_key.in_(keys[i : i + 500]), sa.or_(opt_outs.c.until.is_(None), opt_outs.c.until > now)
            )
            for r in conn.execute(q).mappings():
                out[r["author_key"]] = _bar_reason(r)
        return out

    def _bar(self, conn: Connection, akey: str, author: str, kind: str, reason: str, tweet_id: str | None,
             until: datetime | None, now: datetime) -> int:
        """Record (or renew) a bar on an author's automatic replies and cancel their queued ones; returns
        how many were cancelled."""
        row = {"author_key": akey, "author": author, "kind": kind, "reason": reason[:2000], "tweet_id": tweet_id,
               "created_at": now, "until": until}
        ins = self._insert(opt_outs).values(**row)
        conn.execute(ins.on_conflict_do_update(
            index_elements=["author_key"],
            set_={k: ins.excluded[k] for k in ("author", "kind", "reason", "tweet_id", "created_at", "until")},
        ))
        why = _bar_reason(row)
        theirs = sa.select(tweets_table.c.tweet_id).where(tweets_table.c.author_key == akey).scalar_subquery()
        cancelled = conn.execute(
            replies.update()
            .where(replies.c.status == ReplyStatus.queued.value, replies.c.in_reply_to_tweet_id.in_(theirs))
            .values(status=ReplyStatus.cancelled.value, error=f"cancelled: {why}", updated_at=now)
            .returning(replies.c.ticket_id)
        ).scalars().all()
        if cancelled:
            conn.execute(
                tickets.update().where(tickets.c.ticket_id.in_(set(cancelled)))
                .values(no_reply_reason=f"no automatic reply: {why}", updated_at=now)
            )
            log.info("cancelled %d queued replies to %r: %s", len(cancelled), author, why)
        return len(cancelled)

    def _cancel_barred(self, conn: Connection, reply_ids: Sequence[int], now: datetime) -> int:
        """Cancel those of these queued replies whose customer is barred now (the last guard before X)."""
        q = (
            sa.select(replies.c.id, tweets_table.c.author_key)
            .join(tweets_table, tweets_table.c.tweet_id == replies.c.in_reply_to_tweet_id)
            .where(replies.c.id.in_(list(reply_ids)), replies.c.status == ReplyStatus.queued.value)
        )
        authors = {rid: akey for rid, akey in conn.execute(q)}
        barred = self._barred(conn, authors.values(), now) if authors else {}
        gone = [(rid, barred[akey]) for rid, akey in authors.items() if akey in barred]
        for rid, why in gone:
            conn.execute(
                replies.update().where(replies.c.id == rid, replies.c.status == ReplyStatus.queued.value)
                .values(status=ReplyStatus.cancelled.value, error=f"cancelled: {why}", updated_at=now)
            )
        return len(gone)

    def record_refused(self, reply_id: int, error: str, *, blocked: bool, cooldown_seconds: float) -> bool:
        """posting → failed because X refused it (403), never retried; its customer gets no automatic reply
        again: for good when they blocked us, else for ``cooldown_seconds``. Their queued replies are cancelled."""
        now = self.clock()
        with self._tx(write=True) as conn:
            who = conn.execute(
                sa.select(tweets_table.c.author_key, tweets_table.c.author)
                .join(replies, replies.c.in_reply_to_tweet_id == tweets_table.c.tweet_id)
                .where(replies.c.id == reply_id)
            ).first()
            if who is not None:
                until = None if blocked else now + timedelta(seconds=cooldown_seconds)
                reason = "X refused our reply" + (" (they blocked us)" if blocked else "") + f": {error}"
                self._bar(conn, who[0], who[1], BLOCKED if blocked else REFUSED, reason, None, until, now)
        return self.record_failed(reply_id, error)

    def list_opt_outs(self, *, active_only: bool = True) -> list[dict[str, Any]]:
        now = self.clock()
        q = sa.select(opt_outs).order_by(opt_outs.c.created_at.desc())
        if active_only:
            q = q.where(sa.or_(opt_outs.c.until.is_(None), opt_outs.c.until > now))
        with self._tx() as conn:
            return [
                {**{k: (_iso(v) if isinstance(v, datetime) else v) for k, v in r.items()}, "why": _bar_reason(r)}
                for r in conn.execute(q).mappings()
            ]

    def opt_out_of(self, author: str, author_id: str | None = None) -> dict[str, Any] | None:
        """The active bar on this author's automatic replies, or None."""
        akey = author_key(author, author_id)
        with self._tx() as conn:
            why = self._barred(conn, [akey], self.clock()).get(akey)
        return {"author_key": akey, "why": why} if why else None

    def lift_opt_out(self, author: str) -> bool:
        """Remove the bar on an author (by handle, ``@handle`` or X user id); True if there was one.
        Replies already cancelled stay cancelled."""
        name = author.lstrip("@")
        with self._tx(write=True) as conn:
            n = conn.execute(
                opt_outs.delete().where(sa.or_(
                    opt_outs.c.author_key == name, opt_outs.c.author_key == "@" + name.lower(),
                    sa.func.lower(opt_outs.c.author) == name.lower(),
                ))
            ).rowcount
        if n:
            log.info("opt-out of %r lifted by an admin", name)
        return bool(n)

    def _count_reads(self, conn: Connection, tweets: Iterable[EnrichedTweet], intake: Intake, now: datetime) -> None:
        if intake.prices is None:
            return
        usage: dict[str, tuple[int, float]] = {}
        for tw in tweets:
            priced = intake.prices.read(tw.source)
            if priced:
                n, usd = usage.get(priced[0], (0, 0.0))
                usage[priced[0]] = (n + 1, usd + priced[1])
        self._add_usage(conn, now, usage)

    def _add_usage(self, conn: Connection, now: datetime, usage: dict[str, tuple[int, float]]) -> None:
        if not usage:
            return
        day = now.astimezone(timezone.utc).strftime("%Y-%m-%d")
        ins = self._insert(x_usage).values([{"day": day, "kind": k, "count": n, "cost_usd": usd} for k, (n, usd) in usage.items()])
        conn.execute(ins.on_conflict_do_update(
            index_elements=["day", "kind"],
            set_={"count": x_usage.c.count + ins.excluded["count"], "cost_usd": x_usage.c.cost_usd + ins.excluded["cost_usd"]},
        ))

    def usage(self, now: datetime | None = None) -> dict[str, Any]:
        """What X charged today and this month (UTC), by kind: {"today": {kind: {count, cost_usd}}, "month": …}."""
        now = (now or self.clock()).astimezone(timezone.utc)
        today, month = now.strftime("%Y-%m-%d"), now.strftime("%Y-%m")
        out: dict[str, dict[str, dict[str, float]]] = {"today": {}, "month": {}}
        q = (
            sa.select(x_usage.c.day, x_usage.c.kind, x_usage.c.count, x_usage.c.cost_usd)
            .where(x_usage.c.day >= month + "-01", x_usage.c.day <= month + "-31")
        )
        with self._tx() as conn:
            for day, kind, n, usd in conn.execute(q):
                for period in ("month",) + (("today",) if day == today else ()):
                    cur = out[period].setdefault(kind, {"count": 0, "cost_usd": 0.0})
                    cur["count"] += n
                    cur["cost_usd"] = round(cur["cost_usd"] + usd, 6)
        return out

    def in_flight(self) -> list[StoredReply]:
        """Replies left in ``posting``: after a crash, these may or may not have reached X."""
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(replies).where(replies.c.status == ReplyStatus.posting.value).order_by(replies.c.id)
            ).mappings()
            return [StoredReply.model_validate(_reply_dict(r)) for r in rows]

    def posted_since(self, since: datetime, *, dry_run: bool = False) -> int:
        """Live posts accepted by X since ``since`` (the rate limiter's window); ``dry_run=True``
        counts dry-run "posts" too."""
        statuses = [ReplyStatus.posted.value] + ([ReplyStatus.dry_run.value] if dry_run else [])
        with self._tx() as conn:
            return conn.execute(
                sa.select(sa.func.count())
                .select_from(replies)
                .where(replies.c.status.in_(statuses), replies.c.posted_at >= since)
            ).scalar_one()

    def post_times(self, since: datetime, *, dry_run: bool = False) -> list[datetime]:
        """When each post since ``since`` was made, oldest first (the reply budget's window and
        pacing). ``dry_run=True`` counts dry-run "posts" too (a budget rehearsed without credentials)."""
        statuses = [ReplyStatus.posted.value] + ([ReplyStatus.dry_run.value] if dry_run else [])
        with self._tx() as conn:
            return list(
                conn.execute(
                    sa.select(replies.c.posted_at)
                    .where(replies.c.status.in_(statuses), replies.c.posted_at >= since)
                    .order_by(replies.c.posted_at)
                ).scalars()
            )

    def spend_since(self, since: datetime) -> float:
        """US dollars X charged for our posts since ``since`` (each post's price is stored with it)."""
        with self._tx() as conn:
            return float(
                conn.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(replies.c.cost_usd), 0.0)).where(
                        replies.c.status == ReplyStatus.posted.value, replies.c.posted_at >= since
                    )
                ).scalar_one()
            )

    def queue_stats(self) -> dict[str, Any]:
        """The reply queue: replies waiting (queued or being posted), by priority, and the oldest."""
        with self._tx() as conn:
            by_priority = {
                p: n
                for p, n in conn.execute(
                    sa.select(replies.c.priority, sa.func.count())
                    .where(replies.c.status == ReplyStatus.queued.value)
                    .group_by(replies.c.priority)
                )
            }
            oldest = conn.execute(
                sa.select(sa.func.min(replies.c.created_at)).where(replies.c.status == ReplyStatus.queued.value)
            ).scalar()
            posting = conn.execute(
                sa.select(sa.func.count()).select_from(replies).where(replies.c.status == ReplyStatus.posting.value)
            ).scalar_one()
        return {"queued": sum(by_priority.values()), "posting": posting, "by_priority": by_priority, "oldest": oldest}

    def intake_stats(self, since: datetime | None = None) -> dict[str, Any]:
        """Tweets taken in by disposition (opened, threaded, own, capped) and the flood guard's
        reasons with how many tweets each held back, most first (for the dashboard and the API)."""
        T = tweets_table
        cond = [T.c.received_at >= since] if since is not None else []
        with self._tx() as conn:
            by = {d: n for d, n in conn.execute(sa.select(T.c.disposition, sa.func.count()).where(*cond).group_by(T.c.disposition))}
            reasons = conn.execute(
                sa.select(T.c.reason, sa.func.count().label("n"))
                .where(T.c.disposition == CAPPED, *cond)
                .group_by(T.c.reason)
                .order_by(sa.desc("n"), T.c.reason)
            ).all()
        return {
            "tweets": sum(by.values()),
            "by_disposition": {d: by.get(d, 0) for d in (OPENED, THREADED, OWN, CAPPED)},
            "flood_reasons": [(r, n) for r, n in reasons],
        }

    def held_back(self, limit: int = 100) -> list[dict[str, Any]]:
        """Tweets the flood guard held back, newest first, with the reason."""
        T = tweets_table
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(T.c.tweet_id, T.c.author, T.c.rule, T.c.reason, T.c.tweet_created_at, T.c.received_at)
                .where(T.c.disposition == CAPPED)
                .order_by(T.c.received_at.desc(), T.c.tweet_id.desc())
                .limit(limit)
            ).mappings()
            return [dict(r) for r in rows]

    def tweet_disposition(self, tweet_id: str) -> dict[str, Any] | None:
        """What became of one tweet: its disposition, ticket and reason; None if never taken in."""
        with self._tx() as conn:
            row = conn.execute(sa.select(tweets_table).where(tweets_table.c.tweet_id == tweet_id)).mappings().first()
        return dict(row) if row else None

    def conversation(self, ticket_id: str) -> list[dict[str, Any]]:
        """The ticket's whole conversation in order: the customer's tweets, our own tweets that came
        back through the stream, and our replies (with their outbox status)."""
        T = tweets_table
        with self._tx() as conn:
            tw = conn.execute(
                sa.select(T.c.tweet_id, T.c.author, T.c.text, T.c.disposition, T.c.tweet_created_at, T.c.in_reply_to_tweet_id)
                .where(T.c.ticket_id == ticket_id)
            ).mappings().all()
            rs = conn.execute(sa.select(replies).where(replies.c.ticket_id == ticket_id)).mappings().all()
        seen = {r["tweet_id"] for r in tw}
        items = [
            {
                "kind": "own" if r["disposition"] == OWN else "customer",
                "tweet_id": r["tweet_id"],
                "author": r["author"],
                "text": r["text"],
                "at": r["tweet_created_at"],
                "in_reply_to_tweet_id": r["in_reply_to_tweet_id"],
                "status": None,
            }
            for r in tw
        ]
        for r in rs:
            if r["posted_id"] and r["posted_id"] in seen:
                continue  # our reply, already shown as it came back through the stream
            items.append(
                {
                    "kind": "reply",
                    "tweet_id": r["posted_id"],
                    "author": None,
                    "text": r["text"],
                    "at": r["posted_at"] or r["created_at"],
                    "in_reply_to_tweet_id": r["in_reply_to_tweet_id"],
                    "status": r["status"],
                }
            )
        items.sort(key=lambda i: (i["at"], i["tweet_id"] or ""))
        return items

    # --- queries ------------------------------------------------------------------------------
    def public_ticket(self, ticket_id: str) -> PublicTicket | None:
        """The public columns only, so no personal data can leak into a public page by accident. The tracking
        page's hot path: one statement, and on PostgreSQL no transaction (no BEGIN/ROLLBACK round trips)."""
        with self._errors(), self.engine.connect() as conn:
            if self.dialect == "postgresql":
                conn.execution_options(isolation_level="AUTOCOMMIT")
            row = conn.execute(_PUBLIC_TICKET, {"ticket_id": ticket_id}).mappings().first()
        return PublicTicket(**row) if row else None

    def get_ticket(self, ticket_id: str) -> Ticket | None:
        with self._tx() as conn:
            row = conn.execute(sa.select(tickets).where(tickets.c.ticket_id == ticket_id)).mappings().first()
        return Ticket.model_validate(dict(row)) if row else None

    def get_ticket_by_tweet(self, tweet_id: str) -> Ticket | None:
        with self._tx() as conn:
            row = conn.execute(sa.select(tickets).where(tickets.c.tweet_id == tweet_id)).mappings().first()
        return Ticket.model_validate(dict(row)) if row else None

    def get_reply(self, reply_id: int) -> StoredReply | None:
        with self._tx() as conn:
            row = conn.execute(sa.select(replies).where(replies.c.id == reply_id)).mappings().first()
        return StoredReply.model_validate(_reply_dict(row)) if row else None

    def replies_for(self, ticket_id: str) -> list[StoredReply]:
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(replies).where(replies.c.ticket_id == ticket_id).order_by(replies.c.id)
            ).mappings()
            return [StoredReply.model_validate(_reply_dict(r)) for r in rows]

    def list_replies(self, status: ReplyStatus | str | None = None, limit: int = 100) -> list[StoredReply]:
        q = sa.select(replies).order_by(replies.c.id).limit(limit)
        if status is not None:
            q = q.where(replies.c.status == ReplyStatus(status).value)
        with self._tx() as conn:
            return [StoredReply.model_validate(_reply_dict(r)) for r in conn.execute(q).mappings()]

    def list_tickets(
        self,
        *,
        status: TicketStatus | str | None = None,
        topic: str | None = None,
        sentiment: str | None = None,
        listening_only: bool | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page:
        """Newest first, filtered; ``total`` counts every match (for paging). ``listening_only``: True =
        only tickets nobody summoned us for (no automatic reply), False = only the others."""
        cond = []
        if listening_only is not None:
            cond.append(tickets.c.summoned_by.is_(None) if listening_only else tickets.c.summoned_by.is_not(None))
        if status is not None:
            cond.append(tickets.c.status == TicketStatus(status).value)
        if topic is not None:
            cond.append(tickets.c.topic == topic)
        if sentiment is not None:
            cond.append(tickets.c.sentiment == sentiment)
        where = sa.and_(sa.true(), *cond)
        with self._tx() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(tickets).where(where)).scalar_one()
            rows = conn.execute(
                sa.select(tickets)
                .where(where)
                .order_by(tickets.c.created_at.desc(), tickets.c.ticket_id)
                .limit(limit)
                .offset(offset)
            ).mappings()
            items = [Ticket.model_validate(dict(r)) for r in rows]
        return Page(items=items, total=total, limit=limit, offset=offset)

    def resolve(self, ticket_id: str, *, note: str | None = None) -> Ticket | None:
        """Close a ticket (any status); resolving twice changes nothing. None if unknown."""
        now = self.clock()
        with self._tx(write=True) as conn:
            conn.execute(
                tickets.update()
                .where(tickets.c.ticket_id == ticket_id, tickets.c.status != TicketStatus.resolved.value)
                .values(status=TicketStatus.resolved.value, resolved_at=now, updated_at=now)
            )
        if note:
            log.info("ticket %s resolved: %r", ticket_id, note)
        return self.get_ticket(ticket_id)

    def stats(self) -> dict[str, Any]:
        """Counts for dashboards and /healthz: tickets by status, sentiment and topic; replies by status."""
        with self._tx() as conn:

            def by(table, col):
                return {k: n for k, n in conn.execute(sa.select(col, sa.func.count()).select_from(table).group_by(col))}

            t_status = by(tickets, tickets.c.status)
            return {
                "tickets": sum(t_status.values()),
                "tickets_by_status": {s.value: t_status.get(s.value, 0) for s in TicketStatus},
                "tickets_by_sentiment": by(tickets, tickets.c.sentiment),
                "tickets_by_topic": by(tickets, tickets.c.topic),
                "replies_by_status": by(replies, replies.c.status),
            }


# ----------------------------------------------------------------------------------------------
# Row helpers
# ----------------------------------------------------------------------------------------------


def _bar_reason(r) -> str:
    who = f"@{r['author']}"
    if r["kind"] == OPT_OUT:
        return f"{who} opted out ({r['reason']})"
    if r["kind"] == BLOCKED:
        return f"{who} blocked us ({r['reason']})"
    until = r["until"]
    return f"{who}: {r['reason']}" + (f" — no automatic reply until {_iso(until)}" if until else "")


def _ticket_row(tw: EnrichedTweet, now: datetime) -> dict[str, Any]:
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
    }


def _tweet_row(tw: EnrichedTweet, conversation_key: str, akey: str, now: datetime) -> dict[str, Any]:
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
    }


def _reply_row(ticket_id: str, tweet_id: str, text: str, kind: ReplyKind, key: str, now: datetime) -> dict[str, Any]:
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
    }


def _reply_dict(row) -> dict[str, Any]:
    d = dict(row)
    d["tweet_id"] = d.pop("in_reply_to_tweet_id")
    return d


__all__ = [
    "DryRunRecord",
    "IngestResult",
    "MIGRATIONS",
    "Page",
    "ReplyKind",
    "SCHEMA_VERSION",
    "StoreError",
    "StoredReply",
    "Ticket",
    "TicketStatus",
    "TicketStore",
    "metadata",
    "normalise_url",
    "replies",
    "schema_version",
    "tickets",
    "tweets_table",
]
