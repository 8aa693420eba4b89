"""The reply outbox's state machine, one part of ``TicketStore`` (``ReplyOutbox`` is mixed into it).

One row of table ``replies`` per reply we intend to post, unique on ``dedupe_key`` (``auto:<ticket id>`` for
the automatic reply: one per ticket, whatever is re-delivered). A reply moves::

    queued → posting → posted | dry_run | failed      (or back to queued for a retry,
                                                       or to unknown when nobody can tell whether X took it;
                                                       or queued → cancelled when its customer opts out)

``posting`` is written and committed *before* the HTTP call, so after a crash the store knows which posts
may have reached X; see ``tweetdesk.reply.poster`` for how such rows are verified instead of re-posted.
Each transition is one short write transaction, guarded by the status it leaves (two pollers never both
claim a reply). The reply budget (``tweetdesk.reply.budget``) reads the posts recorded here
(``post_times``, ``posted_since``, ``spend_since``, ``queue_stats``).

Customers barred from automatic replies (opted out, blocked us, refused by X: table ``opt_outs``) are
checked at the last moment before X (``claim``, ``record_dry_run``); ``bar`` records a bar and cancels
their queued replies; agents list and lift bars (``list_opt_outs``, ``lift_opt_out``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tweetdesk.records import ReplyStatus
from tweetdesk.tickets.intake import author_key
from tweetdesk.tickets.rows import DryRunRecord, StoredReply, bar_reason, iso, reply_dict, reply_row
from tweetdesk.tickets.schema import (
    BLOCKED,
    REFUSED,
    ReplyKind,
    TicketStatus,
    insert,
    json_rows,
    one_of,
    opt_outs,
    replies,
    tickets,
    tweets_table,
    x_usage,
)

log = logging.getLogger(__name__)


class ReplyOutbox:
    """The outbox's part of ``TicketStore``: it uses the store's ``transaction()``, ``clock`` and ``dialect``."""

    def queue_reply(
        self, tweet_id: str, text: str, *, kind: ReplyKind = ReplyKind.manual, key: str | None = None
    ) -> tuple[StoredReply, bool]:
        """Queue a reply to the ticket holding ``tweet_id``; returns (reply, created).

        ``key`` makes the call idempotent (same key → same reply, nothing new). Raises LookupError
        when no ticket holds the tweet.
        """
        with self.transaction(write=True) as conn:
            return self.queue_reply_in(conn, tweet_id, text, kind=kind, key=key)

    def queue_reply_in(
        self, conn: Connection, tweet_id: str, text: str, *, kind: ReplyKind = ReplyKind.manual, key: str | None = None,
        dm_to: str | None = None,
    ) -> tuple[StoredReply, bool]:
        """``queue_reply`` inside the caller's write transaction (the desk checks freshness in the same one).
        ``dm_to``: a direct message to that X user id, answering the DM ``tweet_id``."""
        now = self.clock()
        # Without a key every call is its own intent.
        dedupe = f"{kind.value}:{tweet_id}:{key or uuid.uuid4().hex}"
        ticket_id = conn.execute(sa.select(tickets.c.ticket_id).where(tickets.c.tweet_id == tweet_id)).scalar()
        if ticket_id is None:  # a later message of the ticket (a thread tweet, a DM)
            ticket_id = conn.execute(sa.select(tweets_table.c.ticket_id).where(tweets_table.c.tweet_id == tweet_id)).scalar()
        if ticket_id is None:
            raise LookupError(f"no ticket holds tweet {tweet_id}")
        existing = self.existing_reply_in(conn, tweet_id, kind=kind, key=key)
        if existing is not None:
            return existing, False
        row = reply_row(ticket_id, tweet_id, text, kind, dedupe, now, dm_to=dm_to)
        rid = conn.execute(replies.insert().returning(replies.c.id), row).scalar()
        got = conn.execute(sa.select(replies).where(replies.c.id == rid)).mappings().one()
        return StoredReply.model_validate(reply_dict(got)), True

    @staticmethod
    def existing_reply_in(conn: Connection, tweet_id: str, *, kind: ReplyKind = ReplyKind.manual,
                          key: str | None = None) -> StoredReply | None:
        """The reply an earlier call with the same idempotency ``key`` queued, if any (None without a key)."""
        if not key:
            return None
        got = conn.execute(sa.select(replies).where(replies.c.dedupe_key == f"{kind.value}:{tweet_id}:{key}")).mappings().first()
        return StoredReply.model_validate(reply_dict(got)) if got else None

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
        with self.transaction() as conn:
            return list(conn.execute(q).scalars())

    def next_due_at(self) -> datetime | None:
        """When the earliest queued reply becomes due (maybe already past); None when none is queued."""
        q = sa.select(sa.func.min(sa.func.coalesce(replies.c.not_before, replies.c.created_at))).where(
            replies.c.status == ReplyStatus.queued.value
        )
        with self.transaction() as conn:
            return conn.execute(q).scalar()

    def claim(self, reply_id: int) -> StoredReply | None:
        """queued → posting, and count the attempt. Committed before the caller talks to X, so a
        crash leaves a ``posting`` row: "this reply may have been posted". None if someone else
        holds it or it is no longer queued."""
        now = self.clock()
        with self.transaction(write=True) as conn:
            if cancel_barred(conn, [reply_id], now):
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
            return StoredReply.model_validate(reply_dict(row))

    def record_posted(
        self, reply_id: int, posted_id: str | None, *, dry_run: bool = False, cost_usd: float | None = None,
        cost_kind: str | None = None,
    ) -> bool:
        """posting → posted (X accepted it, ``posted_id`` is the new tweet) and the ticket → replied.
        ``cost_usd``: what X charges for this post (the reply budget's spend), of ``cost_kind``
        (``tweetdesk.x.rules.POST_KINDS``), also summed per UTC day in ``x_usage``."""
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
        with self.transaction(write=True) as conn:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                cancel_barred(conn, chunk, now)
                rows = (
                    conn.execute(
                        sa.select(
                        replies.c.id, replies.c.ticket_id, replies.c.in_reply_to_tweet_id, replies.c.text, replies.c.attempts
                    ).where(
                            one_of(conn, replies.c.id, chunk), replies.c.status == ReplyStatus.queued.value
                        )
                    )
                    .mappings()
                    .all()
                )
                if not rows:
                    continue
                conn.execute(
                    replies.update()
                    .where(one_of(conn, replies.c.id, [r["id"] for r in rows]),
                           replies.c.status == ReplyStatus.queued.value)
                    .values(
                        status=ReplyStatus.dry_run.value,
                        dry_run=True,
                        attempts=replies.c.attempts + 1,
                        error=None,
                        updated_at=now,
                        posted_at=now,
                    )
                )
                replied = {"status": TicketStatus.replied.value, "last_error": None, "replied_at": now, "updated_at": now}
                still_open = sa.or_(tickets.c.status == TicketStatus.open.value,
                                    tickets.c.status == TicketStatus.failed.value)
                if conn.dialect.name == "postgresql":  # one statement, not one per ticket (the hot path)
                    latest = {r["ticket_id"]: r for r in rows}  # as executemany would leave it: the last one
                    v = json_rows(conn, [{"tid": t, "txt": r["text"], "att": r["attempts"] + 1} for t, r in latest.items()],
                                  {"tid": sa.Text(), "txt": sa.Text(), "att": sa.Integer()})
                    conn.execute(tickets.update().where(tickets.c.ticket_id == v.c.tid, still_open)
                                 .values(reply_text=v.c.txt, attempts=v.c.att, **replied))
                else:
                    conn.execute(
                        tickets.update()
                        .where(tickets.c.ticket_id == sa.bindparam("tid"), still_open)
                        # No IN (…) here: expanding parameters do not mix with executemany.
                        .values(reply_text=sa.bindparam("txt"), attempts=sa.bindparam("att"), **replied),
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
        with self.transaction(write=True) as conn:
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
        with self.transaction(write=True) as conn:
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
                add_usage(conn, now, {cost_kind: (1, cost_usd or 0.0)})
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

    def get_reply(self, reply_id: int) -> StoredReply | None:
        with self.transaction() as conn:
            row = conn.execute(sa.select(replies).where(replies.c.id == reply_id)).mappings().first()
        return StoredReply.model_validate(reply_dict(row)) if row else None

    def replies_for(self, ticket_id: str) -> list[StoredReply]:
        with self.transaction() as conn:
            rows = conn.execute(
                sa.select(replies).where(replies.c.ticket_id == ticket_id).order_by(replies.c.id)
            ).mappings()
            return [StoredReply.model_validate(reply_dict(r)) for r in rows]

    def list_replies(self, status: ReplyStatus | str | None = None, limit: int = 100) -> list[StoredReply]:
        q = sa.select(replies).order_by(replies.c.id).limit(limit)
        if status is not None:
            q = q.where(replies.c.status == ReplyStatus(status).value)
        with self.transaction() as conn:
            return [StoredReply.model_validate(reply_dict(r)) for r in conn.execute(q).mappings()]

    def in_flight(self) -> list[StoredReply]:
        """Replies left in ``posting``: after a crash, these may or may not have reached X."""
        with self.transaction() as conn:
            rows = conn.execute(
                sa.select(replies).where(replies.c.status == ReplyStatus.posting.value).order_by(replies.c.id)
            ).mappings()
            return [StoredReply.model_validate(reply_dict(r)) for r in rows]

    def posted_since(self, since: datetime, *, dry_run: bool = False, dm: bool = False) -> int:
        """Live posts accepted by X since ``since`` (the rate limiter's window); ``dry_run=True``
        counts dry-run "posts" too. ``dm=True``: direct messages sent instead (X limits them apart)."""
        statuses = [ReplyStatus.posted.value] + ([ReplyStatus.dry_run.value] if dry_run else [])
        with self.transaction() as conn:
            return conn.execute(
                sa.select(sa.func.count())
                .select_from(replies)
                .where(replies.c.status.in_(statuses), replies.c.posted_at >= since, _of_channel(dm))
            ).scalar_one()

    def post_times(self, since: datetime, *, dry_run: bool = False, dm: bool = False) -> list[datetime]:
        """When each post since ``since`` was made, oldest first (the reply budget's window and
        pacing). ``dry_run=True`` counts dry-run "posts" too (a budget rehearsed without credentials);
        ``dm=True``: direct messages instead."""
        statuses = [ReplyStatus.posted.value] + ([ReplyStatus.dry_run.value] if dry_run else [])
        with self.transaction() as conn:
            return list(
                conn.execute(
                    sa.select(replies.c.posted_at)
                    .where(replies.c.status.in_(statuses), replies.c.posted_at >= since, _of_channel(dm))
                    .order_by(replies.c.posted_at)
                ).scalars()
            )

    def spend_since(self, since: datetime) -> float:
        """US dollars X charged for our posts since ``since`` (each post's price is stored with it)."""
        with self.transaction() as conn:
            return float(
                conn.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(replies.c.cost_usd), 0.0)).where(
                        replies.c.status == ReplyStatus.posted.value, replies.c.posted_at >= since
                    )
                ).scalar_one()
            )

    def queue_stats(self) -> dict[str, Any]:
        """The reply queue: replies waiting (queued or being posted), by priority, and the oldest."""
        with self.transaction() as conn:
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

    def record_refused(self, reply_id: int, error: str, *, blocked: bool, cooldown_seconds: float) -> bool:
        """posting → failed because X refused it (403), never retried; its customer gets no automatic reply
        again: for good when they blocked us, else for ``cooldown_seconds``. Their queued replies are cancelled."""
        now = self.clock()
        with self.transaction(write=True) as conn:
            who = conn.execute(
                sa.select(tweets_table.c.author_key, tweets_table.c.author)
                .join(replies, replies.c.in_reply_to_tweet_id == tweets_table.c.tweet_id)
                .where(replies.c.id == reply_id)
            ).first()
            if who is not None:
                until = None if blocked else now + timedelta(seconds=cooldown_seconds)
                reason = "X refused our reply" + (" (they blocked us)" if blocked else "") + f": {error}"
                bar(conn, who[0], who[1], BLOCKED if blocked else REFUSED, reason, None, until, now)
        return self.record_failed(reply_id, error)

    # --- X's rules: opt-outs ---------------------------------------------------------------------
    def list_opt_outs(self, *, active_only: bool = True) -> list[dict[str, Any]]:
        now = self.clock()
        q = sa.select(opt_outs).order_by(opt_outs.c.created_at.desc())
        if active_only:
            q = q.where(sa.or_(opt_outs.c.until.is_(None), opt_outs.c.until > now))
        with self.transaction() as conn:
            return [
                {**{k: (iso(v) if isinstance(v, datetime) else v) for k, v in r.items()}, "why": bar_reason(r)}
                for r in conn.execute(q).mappings()
            ]

    def opt_out_of(self, author: str, author_id: str | None = None) -> dict[str, Any] | None:
        """The active bar on this author's automatic replies, or None."""
        akey = author_key(author, author_id)
        with self.transaction() as conn:
            why = barred(conn, [akey], self.clock()).get(akey)
        return {"author_key": akey, "why": why} if why else None

    def lift_opt_out(self, author: str, *, audit: Callable[[Connection, Any], None] | None = None) -> "Lift":
        """Remove the bar on an author (by handle, ``@handle`` or X user id); true if one was lifted. A ``blocked``
        bar (the customer blocked us on X) is X's, never lifted by us: ``Lift.blocked`` says one was kept.
        ``audit(conn, bar)`` runs in the same transaction for each bar lifted. Replies already cancelled stay
        cancelled."""
        name = author.lstrip("@")
        match = sa.or_(
            opt_outs.c.author_key == name, opt_outs.c.author_key == "@" + name.lower(),
            sa.func.lower(opt_outs.c.author) == name.lower(),
        )
        with self.transaction(write=True) as conn:
            bars = conn.execute(sa.select(opt_outs).where(match)).mappings().all()
            liftable = [b for b in bars if b["kind"] != BLOCKED]
            for b in liftable:
                conn.execute(opt_outs.delete().where(opt_outs.c.author_key == b["author_key"], opt_outs.c.kind != BLOCKED))
                if audit is not None:
                    audit(conn, b)
        if liftable:
            log.info("opt-out of %r lifted by an admin", name)
        return Lift(len(liftable), any(b["kind"] == BLOCKED for b in bars))


@dataclass(frozen=True)
class Lift:
    """What ``lift_opt_out`` did: bars lifted, and whether a ``blocked`` bar was kept."""

    lifted: int
    blocked: bool

    def __bool__(self) -> bool:
        return self.lifted > 0


# ----------------------------------------------------------------------------------------------
# Bars on automatic replies, and what X charged (shared with the intake in store.add_tickets)
# ----------------------------------------------------------------------------------------------


def _of_channel(dm: bool):
    """Replies that are direct messages (``dm``) or posts (rows from before v10 have no channel: posts)."""
    return replies.c.channel == "dm" if dm else sa.or_(replies.c.channel.is_(None), replies.c.channel != "dm")


def barred(conn: Connection, akeys: Iterable[str], now: datetime) -> dict[str, str]:
    """Author key -> why they get no automatic reply now (opted out, blocked us, refused lately)."""
    keys = list(dict.fromkeys(akeys))
    out: dict[str, str] = {}
    for i in range(0, len(keys), 500):
        q = sa.select(opt_outs).where(
            one_of(conn, opt_outs.c.author_key, keys[i : i + 500]), sa.or_(opt_outs.c.until.is_(None), opt_outs.c.until > now)
        )
        for r in conn.execute(q).mappings():
            out[r["author_key"]] = bar_reason(r)
    return out


def bar(conn: Connection, akey: str, author: str, kind: str, reason: str, tweet_id: str | None,
        until: datetime | None, now: datetime) -> int:
    """Record (or renew) a bar on an author's automatic replies and cancel their queued ones; returns
    how many were cancelled."""
    row = {"author_key": akey, "author": author, "kind": kind, "reason": reason[:2000], "tweet_id": tweet_id,
           "created_at": now, "until": until}
    ins = insert(conn, opt_outs).values(**row)
    conn.execute(ins.on_conflict_do_update(
        index_elements=["author_key"],
        set_={k: ins.excluded[k] for k in ("author", "kind", "reason", "tweet_id", "created_at", "until")},
        where=opt_outs.c.kind != BLOCKED,  # a block is X's and for good: a later refusal's cooldown must not end it
    ))
    why = bar_reason(row)
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


def cancel_barred(conn: Connection, reply_ids: Sequence[int], now: datetime) -> int:
    """Cancel those of these queued replies whose customer is barred now (the last guard before X)."""
    q = (
        sa.select(replies.c.id, tweets_table.c.author_key)
        .join(tweets_table, tweets_table.c.tweet_id == replies.c.in_reply_to_tweet_id)
        .where(one_of(conn, replies.c.id, list(reply_ids)), replies.c.status == ReplyStatus.queued.value)
    )
    authors = {rid: akey for rid, akey in conn.execute(q)}
    why_barred = barred(conn, authors.values(), now) if authors else {}
    gone = [(rid, why_barred[akey]) for rid, akey in authors.items() if akey in why_barred]
    for rid, why in gone:
        conn.execute(
            replies.update().where(replies.c.id == rid, replies.c.status == ReplyStatus.queued.value)
            .values(status=ReplyStatus.cancelled.value, error=f"cancelled: {why}", updated_at=now)
        )
    return len(gone)


def add_usage(conn: Connection, now: datetime, usage: dict[str, tuple[int, float]]) -> None:
    """Add posts or reads (kind -> (count, US dollars)) to today's (UTC) row of ``x_usage``."""
    if not usage:
        return
    day = now.astimezone(timezone.utc).strftime("%Y-%m-%d")
    ins = insert(conn, x_usage).values([{"day": day, "kind": k, "count": n, "cost_usd": usd} for k, (n, usd) in usage.items()])
    conn.execute(ins.on_conflict_do_update(
        index_elements=["day", "kind"],
        set_={"count": x_usage.c.count + ins.excluded["count"], "cost_usd": x_usage.c.cost_usd + ins.excluded["cost_usd"]},
    ))
