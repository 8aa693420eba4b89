"""Agent sessions kept on the server, so that signing out ends a session for good.

Flask's session is a signed cookie: on its own, a copy of it taken before sign-out keeps working until it
expires. Each sign-in therefore gets a random session id, stored in the cookie *and* in the store's table
``web_sessions`` (``tweetdesk.tickets.schema``); a cookie counts only while its row is neither ended (signed
out) nor past ``TWEETDESK_SESSION_LIFETIME_SECONDS``. The table lives in the database, so every process of
the service and every restart sees the same sessions.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa

from tweetdesk.records import utcnow
from tweetdesk.tickets.schema import web_sessions
from tweetdesk.tickets.store import TicketStore

# Ended or expired rows are deleted this long after (kept a while for an operator asking "who was in?").
KEEP_FOR = timedelta(days=7)


class SessionRegistry:
    def __init__(self, store: TicketStore, lifetime_seconds: int, clock: Callable[[], datetime] = utcnow):
        self.store = store
        self.lifetime = timedelta(seconds=lifetime_seconds)
        self.clock = clock

    def start(self, key_check: str | None = None) -> str:
        """A new session id, valid for the lifetime; ``key_check``: see ``schema.web_sessions``."""
        sid = secrets.token_urlsafe(32)
        now = self.clock()
        with self.store.transaction(write=True) as conn:
            conn.execute(web_sessions.delete().where(web_sessions.c.expires_at < now - KEEP_FOR))
            conn.execute(web_sessions.insert().values(sid=sid, created_at=now, expires_at=now + self.lifetime,
                                                             key_check=key_check))
        return sid

    def active(self, sid: object) -> bool:
        return self.lookup(sid) is not None

    def lookup(self, sid: object):
        """The session's row (``key_check``…) while it is neither ended nor expired; else None."""
        if not isinstance(sid, str) or not sid or len(sid) > 64:
            return None
        with self.store.transaction() as conn:
            row = conn.execute(
                sa.select(web_sessions.c.expires_at, web_sessions.c.ended_at, web_sessions.c.key_check)
                .where(web_sessions.c.sid == sid)
            ).first()
        return row if row is not None and row.ended_at is None and row.expires_at > self.clock() else None

    def end(self, sid: object) -> None:
        if not isinstance(sid, str) or not sid:
            return
        with self.store.transaction(write=True) as conn:
            conn.execute(
                web_sessions.update()
                .where(web_sessions.c.sid == sid, web_sessions.c.ended_at.is_(None))
                .values(ended_at=self.clock())
            )
