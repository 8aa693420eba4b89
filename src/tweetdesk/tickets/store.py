"""The ticket store: tickets, the tweets taken in and the reply outbox, on SQLAlchemy Core.

SQLite file by default (``<work_dir>/tickets.db``), PostgreSQL by URL (``TWEETDESK_DATABASE_URL``).
The app creates and migrates the schema itself (``schema.py``: every table and the migrations).

* ``tickets`` — one row per customer conversation, unique on the tweet that opened it and on ``ticket_id``.
  Inserts are *insert-if-absent* (``ON CONFLICT DO NOTHING``): a re-delivered record changes nothing.
  ``add_tickets`` (``intake_store.py``, mixed in: ``StoreIntake``) takes a batch in: it reads what the store
  knows about the batch, lets ``intake.decide`` (a pure function) say what becomes of each tweet, and writes that.
* ``replies`` — the outbox (``outbox.py``, mixed in: ``ReplyOutbox``), one automatic reply per ticket.
* read-only figures (``reports.py``, mixed in: ``StoreReports``): counts, the intake, X's usage.

Every write runs in its own short transaction (SQLite: ``BEGIN IMMEDIATE`` in WAL mode, so writers
queue on the busy timeout instead of failing on a lock upgrade); ``transaction()`` maps a lost server
or a locked file to ``StoreError``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

import tweetdesk.tickets.schema as schema
from tweetdesk.errors import TweetdeskError
from tweetdesk.records import DeadLetter, utcnow
from tweetdesk.redact import encode_credentials, redact_url, scrub
from tweetdesk.tickets.intake_store import StoreIntake
from tweetdesk.tickets.outbox import ReplyOutbox
from tweetdesk.tickets.reports import StoreReports
from tweetdesk.tickets.rows import (  # noqa: F401 (re-exported: what the store returns)
    DryRunRecord,
    IngestResult,
    Page,
    PublicTicket,
    StoredReply,
    Ticket,
    reply_row,
    ticket_row,
    tweet_row,
)
from tweetdesk.tickets.schema import (  # noqa: F401 (re-exported: the tables, for SQL on the store)
    MIGRATIONS,
    OPT_OUT,
    SCHEMA_VERSION,
    ReplyKind,
    TicketStatus,
    UTCDateTime,
    dead_letters,
    insert,
    metadata,
    replies,
    rows_in,
    schema_version,
    tickets,
    tweets_table,
)

log = logging.getLogger(__name__)


class StoreError(TweetdeskError):
    """The ticket store cannot be opened or used (bad URL, server down, newer schema)."""


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) readable by its owner only (0700); an existing one is left as is."""
    if not path.exists():
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path, 0o700)  # mkdir's mode is masked by the umask
    return path


def private_file(path: Path) -> None:
    """Make the SQLite file owner-only (0600) before SQLite opens it: it holds password and token hashes and
    customers' tweets. SQLite gives its -wal and -shm files the database file's mode."""
    private_dir(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    if path.stat().st_mode & 0o077 and path.stat().st_uid == os.getuid():
        os.chmod(path, 0o600)  # a file made before this rule (0644): tightened


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


# Built once: the tracking page is the public hot path (a customer's lookup must stay fast while dashboards poll).
_PUBLIC_TICKET = sa.select(*(tickets.c[f] for f in PublicTicket.__dataclass_fields__)).where(
    tickets.c.ticket_id == sa.bindparam("ticket_id")
)


class TicketStore(StoreIntake, ReplyOutbox, StoreReports):
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
        if migrate:
            self.migrate()

    @classmethod
    def from_settings(cls, settings, **kw) -> "TicketStore":
        if not settings.database_url:
            private_dir(Path(settings.work_dir))
        return cls(settings.store.db_url, **kw)

    # --- engine -------------------------------------------------------------------------------
    @staticmethod
    def _make_engine(url: str, pool_size: int) -> Engine:
        u = sa.engine.make_url(url)
        if u.get_backend_name() != "sqlite":
            engine = sa.create_engine(url, pool_size=pool_size, max_overflow=10, pool_pre_ping=True)

            @sa.event.listens_for(engine, "connect")
            def _custom_plans(dbapi_conn, _record):
                # psycopg prepares a statement it has run 5 times, and PostgreSQL then settles on a generic plan:
                # `col = ANY($1)` with the 500 keys of a batch (schema.one_of) loses the hash lookup a plan for the
                # actual array gets, and tests every row against every key (bench replies: 125 ms instead of 3 ms a
                # batch on 10,000 tweets). A plan per execution costs ~0.5 ms.
                with dbapi_conn.cursor() as cur:
                    cur.execute("SET plan_cache_mode = force_custom_plan")
                dbapi_conn.commit()

            return engine
        memory = u.database in (None, "", ":memory:")
        if not memory:
            private_file(Path(u.database))
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
    def transaction(self, write: bool = False) -> Iterator[Connection]:
        with self._errors(), self.engine.connect() as conn:
            if write:
                conn.execution_options(tweetdesk_write=True)
            with conn.begin():
                yield conn

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> bool:
        try:
            with self.transaction() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        except (StoreError, SQLAlchemyError):
            return False

    # --- schema -------------------------------------------------------------------------------
    def migrate(self) -> int:
        """Create the schema on a fresh database or upgrade an older one (``schema.MIGRATIONS``); returns the
        version."""
        target = schema.SCHEMA_VERSION
        with self.transaction(write=True) as conn:
            if self.dialect == "postgresql":
                # Two services starting together must not both create the tables.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(7413201)"))
            current = schema.current_version(conn)
            now = self.clock()
            if current is None:
                schema.metadata.create_all(conn, checkfirst=True)
                conn.execute(schema_version.insert().values(version=target, applied_at=now))
                log.info("ticket store %s: created schema v%d", _redact(self.url), target)
                return target
            if current > target:
                raise StoreError(
                    f"ticket store schema is v{current}, newer than this tweetdesk understands "
                    f"(v{target}): upgrade tweetdesk"
                )
            for v in range(current + 1, target + 1):
                schema.MIGRATIONS[v](conn)
                conn.execute(schema_version.insert().values(version=v, applied_at=now))
                log.info("ticket store %s: migrated to schema v%d", _redact(self.url), v)
            return target

    def schema_version(self) -> int | None:
        with self.transaction() as conn:
            return conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()

    # --- dead letters ---------------------------------------------------------------------------
    def record_dead_letters(self, letters: Iterable[DeadLetter]) -> int:
        """Store dead letters read from ``settings.topic_dead``; re-deliveries change nothing (a digest of
        the record is unique). Returns how many were new. Call it before committing the consumer's offsets."""
        now = self.clock()
        rows = [
            {
                "digest": hashlib.sha256(dl.model_dump_json().encode()).hexdigest(),
                "stage": dl.stage[:32],
                "reason": dl.reason,
                "raw": dl.raw,
                "raw_bytes": dl.raw_bytes,
                "key": dl.key[:256] if dl.key else None,
                "source_topic": dl.source_topic,
                "source_partition": dl.partition,
                "source_offset": dl.offset,
                "at": dl.at,
                "recorded_at": now,
            }
            for dl in letters
        ]
        if not rows:
            return 0
        new = 0
        with self.transaction(write=True) as conn:
            stmt = insert(conn, dead_letters).on_conflict_do_nothing(index_elements=["digest"]).returning(dead_letters.c.id)
            for row in rows:
                new += conn.execute(stmt, row).first() is not None
        return new

    # --- reads ------------------------------------------------------------------------------
    def public_ticket(self, ticket_id: str) -> PublicTicket | None:
        """The public columns only, so no personal data can leak into a public page by accident. The tracking
        page's hot path: one statement, and on PostgreSQL no transaction (no BEGIN/ROLLBACK round trips)."""
        with self._errors(), self.engine.connect() as conn:
            if self.dialect == "postgresql":
                conn.execution_options(isolation_level="AUTOCOMMIT")
            row = conn.execute(_PUBLIC_TICKET, {"ticket_id": ticket_id}).mappings().first()
        return PublicTicket(**row) if row else None

    def get_ticket(self, ticket_id: str) -> Ticket | None:
        with self.transaction() as conn:
            row = conn.execute(sa.select(tickets).where(tickets.c.ticket_id == ticket_id)).mappings().first()
        return Ticket.model_validate(dict(row)) if row else None

    def get_ticket_by_tweet(self, tweet_id: str) -> Ticket | None:
        with self.transaction() as conn:
            row = conn.execute(sa.select(tickets).where(tickets.c.tweet_id == tweet_id)).mappings().first()
        return Ticket.model_validate(dict(row)) if row else None

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
        with self.transaction() as conn:
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
        with self.transaction(write=True) as conn:
            conn.execute(
                tickets.update()
                .where(tickets.c.ticket_id == ticket_id, tickets.c.status != TicketStatus.resolved.value)
                .values(status=TicketStatus.resolved.value, resolved_at=now, updated_at=now)
            )
        if note:
            log.info("ticket %s resolved: %r", ticket_id, note)
        return self.get_ticket(ticket_id)


__all__ = [
    "DryRunRecord",
    "IngestResult",
    "MIGRATIONS",
    "Page",
    "PublicTicket",
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
