"""The ticket store: tickets, the tweets taken in and the reply outbox, on SQLAlchemy Core.

SQLite file by default (``<work_dir>/tickets.db``), PostgreSQL by URL (``TWEETDESK_DATABASE_URL``).
The app creates and migrates the schema itself (``schema.py``: every table and the migrations).

* ``tickets`` — one row per customer conversation, unique on the tweet that opened it and on ``ticket_id``.
  Inserts are *insert-if-absent* (``ON CONFLICT DO NOTHING``): a re-delivered record changes nothing.
  ``add_tickets`` takes a batch in: it reads what the store knows about the batch, lets
  ``intake.decide`` (a pure function) say what becomes of each tweet, and writes that.
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
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

import tweetdesk.tickets.schema as schema
from tweetdesk.errors import TweetdeskError
from tweetdesk.records import DeadLetter, EnrichedTweet, ReplyStatus, utcnow
from tweetdesk.redact import encode_credentials, redact_url, scrub
from tweetdesk.tickets.intake import (
    CAPPED, OPENED, OWN, THREADED, Intake, Known, author_key, decide, known_conversation,
)
from tweetdesk.tickets.outbox import ReplyOutbox, add_usage, bar, barred
from tweetdesk.tickets.reports import StoreReports
from tweetdesk.tickets.rows import (  # noqa: F401 (re-exported: what the store returns)
    DryRunRecord, IngestResult, Page, PublicTicket, StoredReply, Ticket, reply_row, ticket_row, tweet_row,
)
from tweetdesk.tickets.schema import (  # noqa: F401 (re-exported: the tables, for SQL on the store)
    MIGRATIONS, OPT_OUT, SCHEMA_VERSION, ReplyKind, TicketStatus, UTCDateTime, dead_letters, insert, metadata,
    replies, rows_in, schema_version, tickets, tweets_table,
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


def _each(conn: Connection, col, keys, *cond, cols=None):
    """Rows of ``cols`` (default: ``col``) where ``col`` is one of ``keys`` (and ``cond``)."""
    return rows_in(conn, sa.select(*(cols or [col])).where(*cond), col, keys)


# Built once: the tracking page is the public hot path (a customer's lookup must stay fast while dashboards poll).
_PUBLIC_TICKET = sa.select(*(tickets.c[f] for f in PublicTicket.__dataclass_fields__)).where(
    tickets.c.ticket_id == sa.bindparam("ticket_id")
)


class TicketStore(ReplyOutbox, StoreReports):
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
        return cls(settings.db_url, **kw)

    # --- engine -------------------------------------------------------------------------------
    @staticmethod
    def _make_engine(url: str, pool_size: int) -> Engine:
        u = sa.engine.make_url(url)
        if u.get_backend_name() != "sqlite":
            return sa.create_engine(url, pool_size=pool_size, max_overflow=10, pool_pre_ping=True)
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

    # --- intake -------------------------------------------------------------------------------
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
        own tweets and flood-guarded ones without a ticket (``intake.decide`` decides).

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
        with self.transaction(write=True) as conn:
            ids = list(dict.fromkeys(tw.id for tw in tweets))
            held = {r[0] for r in _each(conn, T.c.tweet_id, ids)} | {r[0] for r in _each(conn, tickets.c.tweet_id, ids)}
            fresh: dict[str, EnrichedTweet] = {}
            for tw in tweets:
                if tw.id in held or tw.id in fresh:
                    result.duplicates.append(tw.id)
                else:
                    fresh[tw.id] = tw
            if not fresh:
                return result
            order = sorted(fresh.values(), key=lambda t: t.created_at)  # stable: same time keeps batch order
            decision = decide(order, self._known(conn, order, intake, now), intake)

            rows: dict[str, dict[str, Any]] = {}  # tweet id -> its tweets row
            for v in decision.verdicts:
                rows[v.tweet.id] = {**tweet_row(v.tweet, v.conversation, v.author_key, now), "disposition": v.disposition,
                                    "ticket_id": v.ticket_id, "reason": v.reason, "summoned_by": v.summoned_by}
                if v.disposition == OWN:
                    result.own.append(v.tweet.id)
                elif v.disposition == CAPPED:
                    result.capped.append((v.tweet.id, v.reason))
            openers = [v.tweet for v in decision.of(OPENED)]
            no_reply = {v.tweet.id: v.no_reply for v in decision.of(OPENED)}  # None: an automatic reply is queued

            inserted: set[str] = set()
            texts: dict[str, str | None] = {}
            if openers:
                texts = {tw.id: (reply_text(tw) if reply_text and no_reply[tw.id] is None else None) for tw in openers}
                ticket_rows = [
                    {**ticket_row(tw, now), "reply_text": texts[tw.id], "summoned_by": rows[tw.id]["summoned_by"],
                     "no_reply_reason": no_reply[tw.id]}
                    for tw in openers
                ]
                # Insert-if-absent; RETURNING names the rows that went in (a concurrent writer on
                # PostgreSQL may have won some; SQLAlchemy gives no rowcount for these on psycopg).
                ins = insert(conn, tickets).on_conflict_do_nothing().returning(tickets.c.ticket_id, tickets.c.tweet_id)
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
                {**reply_row(tw.ticket_id, tw.id, texts[tw.id], ReplyKind.auto, f"auto:{tw.ticket_id}", now),
                 "priority": priority(tw) if priority else 3}
                for tw in openers
                if tw.id in inserted and texts[tw.id]
            ]
            # A listening-only ticket whose customer now asks us (mentions us in the thread): its one reply.
            for ticket, tw in decision.late_summons.items():
                if ticket in lost or rows.get(tw.id, {}).get("ticket_id") != ticket:
                    continue
                text = reply_text(tw.model_copy(update={"ticket_id": ticket})) if reply_text else None
                if not text:
                    continue
                reply_rows.append({**reply_row(ticket, tw.id, text, ReplyKind.auto, f"auto:{ticket}", now),
                                   "priority": priority(tw) if priority else 3})
                conn.execute(
                    tickets.update().where(tickets.c.ticket_id == ticket)
                    .values(reply_text=text, summoned_by=rows[tw.id]["summoned_by"], no_reply_reason=None, updated_at=now)
                )
            if reply_rows:
                ins_reply = (
                    insert(conn, replies).on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(replies.c.id)
                )
                result.replies.extend(sorted(conn.execute(ins_reply, reply_rows).scalars()))
            if rows:
                conn.execute(insert(conn, T).on_conflict_do_nothing(index_elements=["tweet_id"]), list(rows.values()))

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
            if decision.opting_out:
                for akey, (tw, phrase) in decision.opting_out.items():
                    bar(conn, akey, tw.author, OPT_OUT, f"wrote {phrase!r} to us", tw.id, None, now)
                result.opted_out.extend(tw.id for tw, _ in decision.opting_out.values())
            self._count_reads(conn, fresh.values(), intake, now)
        return result

    def _known(self, conn: Connection, order: list[EnrichedTweet], intake: Intake, now: datetime) -> Known:
        """What the store holds that bears on these tweets (``intake.Known``)."""
        T = tweets_table
        k = Known()
        # Parents we hold: a customer tweet (its conversation) or one of our posted replies (its ticket).
        parents = [tw.in_reply_to_tweet_id for tw in order]
        for tid, conv, ticket in _each(conn, T.c.tweet_id, parents, cols=[T.c.tweet_id, T.c.conversation_key, T.c.ticket_id]):
            k.parent_conv[tid] = conv
            if ticket:
                k.parent_ticket[tid] = ticket
        ours = (
            sa.select(replies.c.posted_id, replies.c.ticket_id, sa.func.coalesce(tickets.c.conversation_id, tickets.c.tweet_id))
            .join(tickets, tickets.c.ticket_id == replies.c.ticket_id)
        )
        for pid, ticket, conv in rows_in(conn, ours, replies.c.posted_id, parents):
            k.parent_ticket[pid] = ticket
            k.parent_conv.setdefault(pid, conv)
        # Tweets of ours these refer to (replied to or quoted): our posted replies and own tweets we saw.
        refs = parents + [r.id for tw in order for r in tw.referenced_tweets]
        k.our_ids = {r[0] for r in _each(conn, replies.c.posted_id, refs)}
        k.our_ids |= {r[0] for r in _each(conn, T.c.tweet_id, refs, T.c.disposition == OWN)}
        # Authors who get no automatic reply now: opted out, blocked us, or X refused us lately.
        k.barred = barred(conn, [author_key(tw.author, tw.author_id) for tw in order], now)
        # Open tickets of these conversations, per customer (the latest wins).
        convs = [known_conversation(tw, k.parent_conv) for tw in order]
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
                k.thread[(conv, akey)] = ticket
                k.conv_ticket[conv] = ticket
                k.answered[ticket] = bool(has_reply)
        # The flood guard's counts so far, within the window before the earliest tweet.
        since = order[0].created_at - intake.window
        if intake.per_author is not None:
            akeys = [author_key(tw.author, tw.author_id) for tw in order]
            for akey, at in _each(conn, T.c.author_key, akeys, T.c.disposition == OPENED, T.c.tweet_created_at > since,
                                  cols=[T.c.author_key, T.c.tweet_created_at]):
                k.flood.append(("author", akey, at))
        if intake.per_rule is not None:
            for rule, at in _each(conn, T.c.rule, [tw.rule for tw in order], T.c.disposition == OPENED,
                                  T.c.tweet_created_at > since, cols=[T.c.rule, T.c.tweet_created_at]):
                k.flood.append(("rule", rule, at))
        return k

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

    def _count_reads(self, conn: Connection, tweets: Iterable[EnrichedTweet], intake: Intake, now: datetime) -> None:
        if intake.prices is None:
            return
        usage: dict[str, tuple[int, float]] = {}
        for tw in tweets:
            priced = intake.prices.read(tw.source)
            if priced:
                n, usd = usage.get(priced[0], (0, 0.0))
                usage[priced[0]] = (n + 1, usd + priced[1])
        add_usage(conn, now, usage)

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
