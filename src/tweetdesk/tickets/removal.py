"""The one removal path (X's data rules): compliance results, erasure on request and retention all call
``remove``. A removed post loses its text and personal fields everywhere the store keeps them — the ticket it
opened, its conversation message, the replies that answer (and so address) it, dead letters that carry it,
agents' corrections — and leaves a tombstone: ticket ID, times, status, topic and sentiment stay, so counts
and reports still add up, and ``removed_reason`` / ``removed_at`` say what happened. Parquet is rewritten by
``tweetdesk.stream.rewrite`` from the tweet IDs this returns.

The compliance log records what was removed, when and why — counts and reasons, never the removed content, and
an erased handle only as a keyed digest.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tweetdesk.records import utcnow
from tweetdesk.tickets.schema import (
    audit_log,
    compliance_log,
    corrections,
    dead_letters,
    replies,
    rows_in,
    tickets,
    tweets_table,
)

REMOVED_AUTHOR = "[removed]"
REMOVED_REPLY = "[removed: the post it answered was removed]"
_DIGITS = re.compile(r"\d{5,20}")


@dataclass
class Removal:
    tweet_ids: set[str] = field(default_factory=set)  # every post removed (for Parquet)
    tickets: int = 0
    messages: int = 0
    replies: int = 0
    dead_letters: int = 0


def author_keys_of_handle(conn: Connection, handle: str) -> set[str]:
    """The store's keys for an author (``tweets.author_key``): their X user ID(s) and '@' + handle."""
    h = handle.lstrip("@").lower()
    keys = {"@" + h}
    keys |= {r[0] for r in conn.execute(sa.select(tickets.c.author_id).distinct().where(
        sa.func.lower(tickets.c.author) == h, tickets.c.author_id.is_not(None)))}
    keys |= {r[0] for r in conn.execute(sa.select(tweets_table.c.author_key).distinct().where(
        sa.func.lower(tweets_table.c.author) == h))}
    return keys


def remove(conn: Connection, *, reason: str, source: str, tweet_ids: Iterable[str] = (),
           author_keys: Iterable[str] = (), now: datetime | None = None, scrub_geo_only: bool = False,
           log_detail: dict | None = None) -> Removal:
    """Remove posts (by ID) and every post of some authors (by author key: user ID or '@handle') inside the
    caller's transaction. Idempotent: removing a removed post changes nothing."""
    now = now or utcnow()
    out = Removal()
    ids = {str(i) for i in tweet_ids if i}
    keys = {str(k) for k in author_keys if k}
    if keys:
        ids |= {r[0] for r in rows_in(conn, sa.select(tweets_table.c.tweet_id), tweets_table.c.author_key, keys)}
        ids |= {r[0] for r in rows_in(conn, sa.select(tickets.c.tweet_id), tickets.c.author_id, keys)}
        handles = {k[1:] for k in keys if k.startswith("@")}
        if handles:
            ids |= {r[0] for r in conn.execute(sa.select(tickets.c.tweet_id).where(
                sa.func.lower(tickets.c.author).in_(handles)))}
    if scrub_geo_only:
        # The author removed the location: the place names go, the post stays.
        n = sum(1 for _ in rows_in(conn, sa.select(tickets.c.ticket_id), tickets.c.tweet_id, ids))
        for i in range(0, len(ids), 500):
            chunk = list(ids)[i:i + 500]
            conn.execute(tickets.update().where(tickets.c.tweet_id.in_(chunk)).values(entities=[], updated_at=now))
        _log(conn, now, source, "scrub_geo", reason, 0, n, log_detail)
        return out
    out.tweet_ids = ids
    id_list = sorted(ids)
    ticket_ids: set[str] = set()
    replied_on: set[str] = set()  # tickets whose replies were scrubbed: the audit trail's copies go too
    for i in range(0, len(id_list), 500):
        chunk = id_list[i:i + 500]
        opened = [r[0] for r in conn.execute(sa.select(tickets.c.ticket_id).where(
            tickets.c.tweet_id.in_(chunk), tickets.c.removed_at.is_(None)))]
        ticket_ids |= set(opened)
        if opened:
            out.tickets += conn.execute(tickets.update().where(tickets.c.ticket_id.in_(opened)).values(
                text="", author=REMOVED_AUTHOR, author_id=None, entities=[], rule=None, reply_text=None,
                last_error=None, removed_reason=reason, removed_at=now)).rowcount
        out.messages += conn.execute(tweets_table.update().where(
            tweets_table.c.tweet_id.in_(chunk), tweets_table.c.author != REMOVED_AUTHOR).values(
            text="", author=REMOVED_AUTHOR, author_key="removed", rule=None)).rowcount
        answered = conn.execute(replies.update().where(
            replies.c.in_reply_to_tweet_id.in_(chunk), replies.c.text != REMOVED_REPLY).values(
            text=REMOVED_REPLY, to_user_id=None, error=None, updated_at=now).returning(replies.c.ticket_id)).scalars().all()
        out.replies += len(answered)
        replied_on.update(answered)
        conn.execute(corrections.update().where(corrections.c.tweet_id.in_(chunk)).values(text=""))
    # Replies on a tombstoned ticket address its author by handle: they go too.
    tl = sorted(ticket_ids)
    for i in range(0, len(tl), 500):
        out.replies += conn.execute(replies.update().where(
            replies.c.ticket_id.in_(tl[i:i + 500]), replies.c.text != REMOVED_REPLY).values(
            text=REMOVED_REPLY, to_user_id=None, error=None, updated_at=now)).rowcount
    _scrub_audited_replies(conn, replied_on | ticket_ids)
    out.dead_letters = _scrub_dead_letters(conn, ids, reason)
    _log(conn, now, source, "remove", reason, len(ids), out.tickets,
         {**(log_detail or {}), "messages": out.messages, "replies": out.replies, "dead_letters": out.dead_letters})
    return out


def _scrub_audited_replies(conn: Connection, ticket_ids: set[str]) -> None:
    """The desk's audit trail keeps each agent's reply text: on these tickets it goes as the replies did."""
    for r in rows_in(conn, sa.select(audit_log.c.id, audit_log.c.detail).where(audit_log.c.action == "replied"),
                     audit_log.c.ticket_id, ticket_ids):
        detail = r.detail if isinstance(r.detail, dict) else {}
        if detail.get("text") != REMOVED_REPLY:
            conn.execute(audit_log.update().where(audit_log.c.id == r.id).values(
                detail={"reply": detail.get("reply"), "text": REMOVED_REPLY}))


def _scrub_dead_letters(conn: Connection, ids: set[str], reason: str) -> int:
    """A dead letter carries the raw record it could not read: drop its bytes when they hold a removed post's
    ID (its key, or any ID-like number in it — the stricter reading)."""
    if not ids:
        return 0
    hit = []
    for row in conn.execute(sa.select(dead_letters.c.id, dead_letters.c.key, dead_letters.c.raw).where(
            dead_letters.c.raw != "")):
        if (row.key and row.key in ids) or any(m in ids for m in _DIGITS.findall(row.raw or "")):
            hit.append(row.id)
    for i in range(0, len(hit), 500):
        conn.execute(dead_letters.update().where(dead_letters.c.id.in_(hit[i:i + 500])).values(
            raw="", key=None, reason=sa.func.substr(dead_letters.c.reason, 1, 400) + f" [content {reason}]"))
    return len(hit)


def _log(conn, now, source, action, reason, posts, n_tickets, detail) -> None:
    conn.execute(compliance_log.insert().values(at=now, source=source, action=action, reason=reason, posts=posts,
                                                tickets=n_tickets, detail=detail or {}))


def log(conn: Connection, *, source: str, action: str, reason: str | None = None, detail: dict | None = None,
        now: datetime | None = None) -> None:
    """A compliance log line that removed nothing (a job created, a malformed result line, …)."""
    _log(conn, now or utcnow(), source, action, reason, 0, 0, detail)


def digest(value: str, key: bytes) -> str:
    """An erased handle in the log: provable if asked ("was @x erased?"), not readable."""
    return hashlib.blake2b(value.lower().encode(), key=key[:64], digest_size=16).hexdigest()
