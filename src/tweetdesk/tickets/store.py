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
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
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

log = logging.getLogger(__name__)

# Bump when the schema changes, and add the step that upgrades N-1 -> N to MIGRATIONS below.
SCHEMA_VERSION = 1


class StoreError(TweetdeskError):
    """The ticket store cannot be opened or used (bad URL, server down, newer schema)."""


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
    sa.Index("ix_replies_status_due", "status", "not_before"),
    sa.Index("ix_replies_posted_at", "posted_at"),
)

# version -> function upgrading a database from version-1 to version. A fresh database is created
# from ``metadata`` at SCHEMA_VERSION directly; existing ones run the missing steps in order.
# Append only; never edit a step that has shipped.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {}


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

    def public(self) -> dict[str, Any]:
        """What anyone holding the ticket ID may see: no handle, no tweet text, no reply."""
        return {
            "ticket_id": self.ticket_id,
            "status": self.status.value,
            "topic": self.topic,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "replied_at": _iso(self.replied_at),
            "resolved_at": _iso(self.resolved_at),
        }


class StoredReply(Reply):
    """A row of the outbox: ``tweet_id`` is the tweet replied to."""

    id: int
    kind: ReplyKind = ReplyKind.auto
    dry_run: bool = False
    not_before: datetime | None = None
    created_at: datetime
    updated_at: datetime
    posted_at: datetime | None = None


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


@dataclass
class Page:
    items: list[Ticket]
    total: int
    limit: int
    offset: int


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def _redact(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def normalise_url(url: str) -> str:
    """Plain ``postgresql://`` / ``postgres://`` URLs use psycopg 3 (the driver we install)."""
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
            raise StoreError(f"cannot open ticket store {_redact(self.url)}: {e}") from None
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
    def _tx(self, write: bool = False) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                if write:
                    conn.execution_options(tweetdesk_write=True)
                with conn.begin():
                    yield conn
        except DBAPIError as e:
            if e.connection_invalidated or isinstance(e, sa.exc.OperationalError):
                raise StoreError(f"ticket store {_redact(self.url)} unavailable: {e.orig}") from e
            raise

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
    ) -> IngestResult:
        """Open a ticket per new tweet and queue its automatic reply, in one transaction.

        Insert-if-absent on the tweet id: a tweet already held is reported in ``duplicates`` and
        changes nothing (not its ticket, not its reply). ``reply_text(tweet)`` gives the reply to
        queue for a new ticket (None = no automatic reply).
        """
        result = IngestResult()
        if not tweets:
            return result
        now = self.clock()
        # A few set-based statements per batch, not several per record: this is the hot path.
        with self._tx(write=True) as conn:
            ids = list(dict.fromkeys(tw.id for tw in tweets))
            held: set[str] = set()
            for i in range(0, len(ids), 500):
                held.update(conn.execute(sa.select(tickets.c.tweet_id).where(tickets.c.tweet_id.in_(ids[i : i + 500]))).scalars())
            fresh: dict[str, EnrichedTweet] = {}
            for tw in tweets:
                if tw.id in held or tw.id in fresh:
                    result.duplicates.append(tw.id)
                else:
                    fresh[tw.id] = tw
            if not fresh:
                return result
            texts = {tid: (reply_text(tw) if reply_text else None) for tid, tw in fresh.items()}
            rows = [{**_ticket_row(tw, now), "reply_text": texts[tw.id]} for tw in fresh.values()]
            # Insert-if-absent; RETURNING names the rows that went in (a concurrent writer on
            # PostgreSQL may have won some; SQLAlchemy gives no rowcount for these on psycopg).
            ins = self._insert(tickets).on_conflict_do_nothing().returning(tickets.c.ticket_id, tickets.c.tweet_id)
            inserted = {tweet_id for _tid, tweet_id in conn.execute(ins, rows)}
            for tw in fresh.values():
                if tw.id in inserted:
                    result.created.append(tw.ticket_id)
                elif conn.execute(sa.select(tickets.c.ticket_id).where(tickets.c.tweet_id == tw.id)).scalar() is not None:
                    result.duplicates.append(tw.id)  # a concurrent writer stored it first
                else:
                    # The ticket ID is taken by another tweet: a hash collision (~1e-12). Never drop
                    # it silently: the caller dead-letters it.
                    result.rejected.append((tw.id, f"ticket id {tw.ticket_id} already belongs to another tweet"))
            reply_rows = [
                _reply_row(tw.ticket_id, tw.id, texts[tw.id], ReplyKind.auto, f"auto:{tw.ticket_id}", now)
                for tw in fresh.values()
                if tw.id in inserted and texts[tw.id]
            ]
            if reply_rows:
                ins_reply = (
                    self._insert(replies).on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(replies.c.id)
                )
                result.replies.extend(sorted(conn.execute(ins_reply, reply_rows).scalars()))
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
        """Queued replies whose wait is over, oldest first."""
        now = now or self.clock()
        q = (
            sa.select(replies.c.id)
            .where(replies.c.status == ReplyStatus.queued.value)
            .where(sa.or_(replies.c.not_before.is_(None), replies.c.not_before <= now))
            .order_by(replies.c.created_at, replies.c.id)
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

    def record_posted(self, reply_id: int, posted_id: str | None, *, dry_run: bool = False) -> bool:
        """posting → posted (X accepted it, ``posted_id`` is the new tweet) and the ticket → replied."""
        status = ReplyStatus.dry_run if dry_run else ReplyStatus.posted
        return self._finish(reply_id, status, posted_id=posted_id, error=None, dry_run=dry_run)

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
        self, reply_id: int, status: ReplyStatus, *, posted_id: str | None, error: str | None, dry_run: bool = False
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
                    updated_at=now,
                    posted_at=now if status in (ReplyStatus.posted, ReplyStatus.dry_run) else None,
                )
            ).rowcount
            if n != 1:
                return False
            r = conn.execute(sa.select(replies).where(replies.c.id == reply_id)).mappings().one()
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

    def in_flight(self) -> list[StoredReply]:
        """Replies left in ``posting``: after a crash, these may or may not have reached X."""
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(replies).where(replies.c.status == ReplyStatus.posting.value).order_by(replies.c.id)
            ).mappings()
            return [StoredReply.model_validate(_reply_dict(r)) for r in rows]

    def posted_since(self, since: datetime) -> int:
        """Live posts accepted by X since ``since`` (the rate limiter's window)."""
        with self._tx() as conn:
            return conn.execute(
                sa.select(sa.func.count())
                .select_from(replies)
                .where(replies.c.status == ReplyStatus.posted.value, replies.c.posted_at >= since)
            ).scalar_one()

    # --- queries ------------------------------------------------------------------------------
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
        limit: int = 50,
        offset: int = 0,
    ) -> Page:
        """Newest first, filtered; ``total`` counts every match (for paging)."""
        cond = []
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
            log.info("ticket %s resolved: %s", ticket_id, note)
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
]
