"""Agent sessions kept on the server, so that signing out ends a session for good.

Flask's session is a signed cookie: on its own, a copy of it taken before sign-out keeps working until it
expires. Each sign-in therefore gets a random session id, stored in the cookie *and* in the table
``web_sessions`` beside the ticket store (created with ``IF NOT EXISTS`` on first use, like the
dashboard's ``dead_letters``); a cookie counts only while its row is neither ended (signed out) nor past
``TWEETDESK_SESSION_LIFETIME_SECONDS``. The table lives in the database, so every process of the service
and every restart sees the same sessions.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tweetdesk.records import utcnow
from tweetdesk.tickets.store import UTCDateTime

sessions_metadata = sa.MetaData()

web_sessions = sa.Table(
    "web_sessions",
    sessions_metadata,
    sa.Column("sid", sa.String(64), primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime),
    sa.Index("ix_web_sessions_expires", "expires_at"),
)

# Ended or expired rows are deleted this long after (kept a while for an operator asking "who was in?").
KEEP_FOR = timedelta(days=7)


class SessionRegistry:
    def __init__(self, engine: Engine, lifetime_seconds: int, clock: Callable[[], datetime] = utcnow):
        self.engine = engine
        self.lifetime = timedelta(seconds=lifetime_seconds)
        self.clock = clock
        self._ready = False

    def _write(self):
        conn = self.engine.connect()
        conn.execution_options(tweetdesk_write=True)  # SQLite: BEGIN IMMEDIATE, as the store's own writes
        return conn

    def _ensure(self) -> None:
        if self._ready:
            return
        with self._write() as conn, conn.begin():
            conn.execute(sa.schema.CreateTable(web_sessions, if_not_exists=True))
            for ix in web_sessions.indexes:
                conn.execute(sa.schema.CreateIndex(ix, if_not_exists=True))
        self._ready = True

    def start(self) -> str:
        """A new session id, valid for the lifetime."""
        self._ensure()
        sid = secrets.token_urlsafe(32)
        now = self.clock()
        with self._write() as conn, conn.begin():
            conn.execute(web_sessions.delete().where(web_sessions.c.expires_at < now - KEEP_FOR))
            conn.execute(web_sessions.insert().values(sid=sid, created_at=now, expires_at=now + self.lifetime))
        return sid

    def active(self, sid: object) -> bool:
        if not isinstance(sid, str) or not sid or len(sid) > 64:
            return False
        self._ensure()
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(web_sessions.c.expires_at, web_sessions.c.ended_at).where(web_sessions.c.sid == sid)
            ).first()
        return row is not None and row.ended_at is None and row.expires_at > self.clock()

    def end(self, sid: object) -> None:
        if not isinstance(sid, str) or not sid:
            return
        self._ensure()
        with self._write() as conn, conn.begin():
            conn.execute(
                web_sessions.update()
                .where(web_sessions.c.sid == sid, web_sessions.c.ended_at.is_(None))
                .values(ended_at=self.clock())
            )
