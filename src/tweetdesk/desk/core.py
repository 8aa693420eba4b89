"""``Desk``: what agents do to tickets, on the ticket store's database.

* **Audit trail**: every change (resolve, reply, assignment, note, correction) is a row of ``desk_audit``
  with who and when: in the same transaction as the change, but for a reply (right after the store queued it).
* **Assignment**: one assignee per ticket (an enabled admin or agent); take = assign to yourself.
* **Collision**: the ticket page carries a *view stamp* (``snapshot``: last audit row, customer tweets,
  status, last update). A reply or resolve sent with a stamp that no longer matches is refused (409) with
  the list of what changed (``changes_since``), never applied over the agent's stale view. The page also
  polls ``touch_view``, which records that its agent has it open and says who else does.
* **Notes** are internal: stored and shown to staff, never posted.
* **Corrections** set a ticket's topic and sentiment and keep the tweet as a labelled example.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tweetdesk.desk import ADMIN, AGENT
from tweetdesk.desk.accounts import Accounts, DeskError, Principal
from tweetdesk.records import SENTIMENTS, TOPICS
from tweetdesk.reply.templates import ReplyTextError, check_reply_text, dm_text
from tweetdesk.tickets.policy import DM, Refusal, ReplyPolicy
from tweetdesk.tickets.schema import (
    TicketStatus,
    assignments,
    audit_log,
    corrections,
    notes,
    reply_authors,
    rows_in,
    ticket_views,
    tickets,
    users,
)
from tweetdesk.tickets.store import Ticket, TicketStore

log = logging.getLogger(__name__)

PRESENCE_SECONDS = 30  # a page that has not polled for this long is closed
MAX_NOTE = 4000


def reply_refused(store: TicketStore, ticket: Ticket, tweet_id: str) -> DeskError | None:
    """Why X's rules forbid an agent's reply to ``tweet_id`` of ``ticket`` (409), or None: the reply policy's
    answer (``tickets.policy``) as the desk's error."""
    r = ReplyPolicy.refusal(store, ticket, tweet_id)
    return None if r is None else DeskError(r.reason, status=409, kind=r.kind)


class Desk:
    def __init__(self, store: TicketStore, settings=None, *, clock: Callable[[], datetime] | None = None):
        self.store = store
        self.settings = settings
        self._clock = clock
        self.accounts = Accounts(self)
        from tweetdesk.desk.canned import CannedReplies

        self.canned = CannedReplies(self)

    def clock(self) -> datetime:
        return (self._clock or self.store.clock)()

    @contextmanager
    def tx(self, write: bool = False) -> Iterator[Connection]:
        """One transaction on the store's database (its error mapping; SQLite writes: BEGIN IMMEDIATE)."""
        with self.store.transaction(write=write) as conn:
            yield conn

    # --- audit -------------------------------------------------------------------------------------
    def audit_in(self, conn: Connection, ticket_id: str | None, actor: str, action: str, detail: dict[str, Any]) -> None:
        conn.execute(audit_log.insert().values(ticket_id=ticket_id, actor=actor, action=action, detail=detail,
                                               at=self.clock()))

    def record(self, actor: str, action: str, detail: dict[str, Any]) -> None:
        """An audit entry not about one ticket (sign-ins, exports), in a transaction of its own."""
        with self.tx(write=True) as conn:
            self.audit_in(conn, None, actor[:40], action, detail)

    def audit(self, ticket_id: str | None = None, *, after: int = 0, limit: int = 500) -> list[dict[str, Any]]:
        q = sa.select(audit_log).where(audit_log.c.id > after).order_by(audit_log.c.id).limit(limit)
        q = q.where(audit_log.c.ticket_id == ticket_id) if ticket_id else q
        with self.tx() as conn:
            return [{**r, "text": describe(r)} for r in conn.execute(q).mappings()]

    # --- tickets ------------------------------------------------------------------------------------
    def ticket(self, ticket_id: str) -> Ticket:
        t = self.store.get_ticket(ticket_id)
        if t is None:
            raise DeskError(f"no ticket {ticket_id}", status=404, kind="unknown")
        return t

    def snapshot(self, ticket_id: str) -> str:
        """The view stamp of a ticket as it stands now (see the module docstring)."""
        with self.tx() as conn:
            return self._stamp_in(conn, ticket_id)

    def _stamp_in(self, conn: Connection, ticket_id: str, *, lock: bool = False) -> str:
        q = sa.select(tickets.c.message_count, tickets.c.status, tickets.c.updated_at).where(tickets.c.ticket_id == ticket_id)
        if lock and conn.dialect.name == "postgresql":
            q = q.with_for_update()  # (SQLite: the write transaction is BEGIN IMMEDIATE, writers queue already)
        row = conn.execute(q).first()
        if row is None:
            raise DeskError(f"no ticket {ticket_id}", status=404, kind="unknown")
        last = conn.execute(sa.select(sa.func.max(audit_log.c.id)).where(audit_log.c.ticket_id == ticket_id)).scalar()
        return f"{last or 0}.{row.message_count}.{row.status}.{int(row.updated_at.timestamp() * 1_000_000)}"

    def changes_since(self, ticket_id: str, seen: str | None) -> list[str]:
        """What changed since the view stamp ``seen`` was taken ([] = nothing; None/'' = not checked)."""
        if not seen:
            return []
        now = self.snapshot(ticket_id)
        if seen == now:
            return []
        try:
            if len(seen) > 100:  # a stamp is ~40 characters; int() of a huge one is slow, the SQL overflows
                raise ValueError(seen[:20])
            a, m, s, _u = seen.split(".", 3)
            a, m = int(a), int(m)
            if not (0 <= a < 2**63 and 0 <= m < 2**31):
                raise ValueError(seen[:20])
        except ValueError:
            raise DeskError("seen: not a view stamp from this ticket's page", kind="bad_field") from None
        t = self.ticket(ticket_id)
        out = [f"{e['actor']} {e['text']} at {e['at']:%H:%M:%S} UTC" for e in self.audit(ticket_id, after=a)]
        if t.message_count > m:
            n = t.message_count - m
            out.append(f"the customer wrote {n} more tweet{'s' if n > 1 else ''}")
        if t.status.value != s and not any("resolved" in c for c in out):
            out.append(f"its status changed from {s} to {t.status.value}")
        return out or [f"the ticket was updated at {t.updated_at:%H:%M:%S} UTC (a reply's state changed)"]

    def resolve(self, ticket_id: str, actor: Principal, *, seen: str | None = None, note: str | None = None) -> Ticket:
        """Close the ticket (resolving twice changes nothing). With ``seen``, the check and the change happen in one
        write transaction with the ticket's row locked: a change in between cannot slip through."""
        _writer(actor)
        resolved = TicketStatus.resolved.value
        with self.tx(write=True) as conn:
            stamp = self._stamp_in(conn, ticket_id, lock=True)
            stale = bool(seen) and seen != stamp
            before = stamp.split(".")[2]
            if not stale and before != resolved:
                now = self.clock()
                conn.execute(tickets.update().where(tickets.c.ticket_id == ticket_id, tickets.c.status != resolved)
                             .values(status=resolved, resolved_at=now, updated_at=now))
                self.audit_in(conn, ticket_id, actor.name, "resolved", {"from": before, "note": note})
        if not stale and note:
            log.info("ticket %s resolved by %r: %r", ticket_id, actor.name, note)  # %r: user text on one line
        if stale:
            changed = self.changes_since(ticket_id, seen) or ["the ticket changed"]
            raise DeskError("the ticket changed since you opened it: " + "; ".join(changed), status=409, kind="stale",
                            changes=changed, seen=self.snapshot(ticket_id))
        return self.ticket(ticket_id)

    def send_reply(self, ticket_id: str, text: str, actor: Principal, *, seen: str | None = None,
                   key: str | None = None, tweet_id: str | None = None, channel: str = "public") -> tuple[Any, bool]:
        """Queue an agent's reply under X's rules (409 not summoned / opted out / never DMed us, 400 a rule of
        the text), to ``tweet_id`` of the ticket or else the tweet the desk answers (``_reply_target``); with
        ``channel="dm"`` a direct message to the ticket's customer, answering their newest DM and carrying the
        privacy-policy link. With ``seen``, the freshness check, the queueing and its audit entry are one write
        transaction with the ticket's row locked: of two agents answering from the same view, one gets the reply
        queued and the other a 409 (X allows one reply per interaction). ``key`` makes a retry return the reply
        it queued."""
        _writer(actor)
        t = self.ticket(ticket_id)
        dm_to = None
        if channel == DM:
            refused = self.dm_block(t)
            if refused is not None:
                raise DeskError(str(refused), status=409, kind=refused.kind)
            target, dm_to = self.store.last_dm(t.ticket_id, t.author, t.author_id), t.author_id
            try:
                text = dm_text(text, self.privacy_policy_url)
            except ReplyTextError as e:
                raise DeskError(str(e), kind="bad_reply") from None
        elif channel != "public":
            raise DeskError(f"unknown channel {channel!r}: public or dm", kind="bad_channel")
        else:
            target = tweet_id or self._reply_target(t)
            refused = reply_refused(self.store, t, target)
            if refused is not None:
                raise refused
            try:
                text = check_reply_text(text, author=t.author)
            except ReplyTextError as e:
                raise DeskError(str(e), kind="bad_reply") from None
        with self.tx(write=True) as conn:
            again = self.store.existing_reply_in(conn, target, key=key)
            if again is not None:
                return again, False  # a retry of a reply already queued: its own audit entry made the view stale
            stale = bool(seen) and seen != self._stamp_in(conn, ticket_id, lock=True)
            if not stale:
                reply, created = self.store.queue_reply_in(conn, target, text, key=key, dm_to=dm_to)
                if created:
                    self._record_reply_in(conn, reply.id, ticket_id, actor, text)
        if stale:
            changed = self.changes_since(ticket_id, seen) or ["the ticket changed"]
            raise DeskError("the ticket changed since you opened it: " + "; ".join(changed), status=409, kind="stale",
                            changes=changed, seen=self.snapshot(ticket_id))
        return reply, created

    def _reply_target(self, t) -> str:
        # Answer the newest tweet if it summoned us in public, else the one that opened the ticket.
        target = t.last_tweet_id or t.tweet_id
        if target == t.tweet_id:
            return target
        seen = self.store.tweet_disposition(target) or {}
        if not seen.get("summoned_by") or seen.get("channel") == DM:
            return self.store.last_public_summons(t.ticket_id) or t.tweet_id
        return target

    @property
    def privacy_policy_url(self) -> str | None:
        return getattr(self.settings, "privacy_policy_url", None)

    def reply_block(self, t) -> str | None:
        """Why X's rules forbid an agent's public reply to ticket ``t`` now (the page says so instead of offering
        a form), or None."""
        refused = reply_refused(self.store, t, self._reply_target(t))
        return None if refused is None else str(refused)

    def dm_block(self, t) -> Refusal | None:
        """Why an agent may not answer ticket ``t``'s customer by DM now (``ReplyPolicy.dm_refusal``), or None."""
        return ReplyPolicy.dm_refusal(self.store, t, self.privacy_policy_url)

    def record_reply(self, reply_id: int, ticket_id: str, actor: Principal, text: str) -> None:
        with self.tx(write=True) as conn:
            self._record_reply_in(conn, reply_id, ticket_id, actor, text)

    def _record_reply_in(self, conn: Connection, reply_id: int, ticket_id: str, actor: Principal, text: str) -> None:
        conn.execute(reply_authors.insert().values(reply_id=reply_id, ticket_id=ticket_id, author=actor.name))
        self.audit_in(conn, ticket_id, actor.name, "replied", {"reply": reply_id, "text": text})

    # --- assignment ---------------------------------------------------------------------------------
    def assign(self, ticket_id: str, assignee: str | None, actor: Principal) -> str | None:
        """Assign (None/'' = unassign); returns the new assignee."""
        _writer(actor)
        self.ticket(ticket_id)
        name = (assignee or "").strip().lower() or None
        now = self.clock()
        with self.tx(write=True) as conn:
            if name is not None:
                row = conn.execute(sa.select(users.c.role, users.c.disabled_at).where(users.c.name == name)).first()
                if row is None:
                    raise DeskError(f"no user {assignee!r}", status=404, kind="unknown_user")
                if row.disabled_at is not None or row.role not in (ADMIN, AGENT):
                    raise DeskError(f"{name} cannot take tickets (disabled, or a viewer)", kind="bad_assignee")
            before = conn.execute(sa.select(assignments.c.assignee).where(assignments.c.ticket_id == ticket_id)).scalar()
            if before == name:
                return name
            conn.execute(assignments.delete().where(assignments.c.ticket_id == ticket_id))
            if name is not None:
                conn.execute(assignments.insert().values(ticket_id=ticket_id, assignee=name, assigned_by=actor.name,
                                                         assigned_at=now))
            self.audit_in(conn, ticket_id, actor.name, "assigned" if name else "unassigned", {"from": before, "to": name})
        return name

    def unassign_all_in(self, conn: Connection, name: str, actor: str) -> None:
        for tid in conn.execute(sa.select(assignments.c.ticket_id).where(assignments.c.assignee == name)).scalars().all():
            conn.execute(assignments.delete().where(assignments.c.ticket_id == tid))
            self.audit_in(conn, tid, actor, "unassigned", {"from": name, "to": None})

    def assignees(self, ticket_ids: list[str] | None = None) -> dict[str, str]:
        q = sa.select(assignments.c.ticket_id, assignments.c.assignee)
        if ticket_ids is not None:
            q = q.where(assignments.c.ticket_id.in_(ticket_ids))
        with self.tx() as conn:
            return dict(conn.execute(q).all())

    def agents(self) -> list[str]:
        """Who can be assigned tickets."""
        with self.tx() as conn:
            return list(conn.execute(sa.select(users.c.name).where(users.c.role.in_((ADMIN, AGENT)),
                                                                  users.c.disabled_at.is_(None)).order_by(users.c.name)).scalars())

    # --- presence -----------------------------------------------------------------------------------
    def touch_view(self, ticket_id: str, viewer: str) -> list[str]:
        """Record that ``viewer`` has the ticket open; returns the others who have it open."""
        now = self.clock()
        with self.tx(write=True) as conn:
            conn.execute(ticket_views.delete().where(ticket_views.c.ticket_id == ticket_id, ticket_views.c.viewer == viewer))
            conn.execute(ticket_views.insert().values(ticket_id=ticket_id, viewer=viewer, seen_at=now))
            conn.execute(ticket_views.delete().where(ticket_views.c.seen_at < now - timedelta(hours=1)))
        return self.viewers(ticket_id, besides=viewer)

    def viewers(self, ticket_id: str, *, besides: str | None = None) -> list[str]:
        since = self.clock() - timedelta(seconds=PRESENCE_SECONDS)
        q = sa.select(ticket_views.c.viewer).where(ticket_views.c.ticket_id == ticket_id, ticket_views.c.seen_at >= since)
        with self.tx() as conn:
            return sorted(v for v in conn.execute(q).scalars() if v != besides)

    def leave(self, ticket_id: str, viewer: str) -> None:
        with self.tx(write=True) as conn:
            conn.execute(ticket_views.delete().where(ticket_views.c.ticket_id == ticket_id, ticket_views.c.viewer == viewer))

    # --- notes --------------------------------------------------------------------------------------
    def add_note(self, ticket_id: str, text: str, actor: Principal) -> dict[str, Any]:
        _writer(actor)
        self.ticket(ticket_id)
        text = (text or "").strip() if isinstance(text, str) else ""
        if not text:
            raise DeskError("a note needs some text", kind="bad_note")
        if len(text) > MAX_NOTE:
            raise DeskError(f"a note is at most {MAX_NOTE} characters (this one has {len(text)})", kind="bad_note")
        now = self.clock()
        with self.tx(write=True) as conn:
            nid = conn.execute(notes.insert().returning(notes.c.id).values(ticket_id=ticket_id, author=actor.name,
                                                                            text=text, created_at=now)).scalar()
            self.audit_in(conn, ticket_id, actor.name, "noted", {"note": nid})
        return {"id": nid, "ticket_id": ticket_id, "author": actor.name, "text": text, "created_at": now}

    def notes(self, ticket_id: str) -> list[dict[str, Any]]:
        return self.notes_of([ticket_id])[ticket_id]

    def notes_of(self, ticket_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The notes of many tickets in a few queries (an export reads thousands), oldest first, by ticket ID."""
        out: dict[str, list[dict[str, Any]]] = {tid: [] for tid in ticket_ids}
        with self.tx() as conn:
            for r in rows_in(conn, sa.select(notes).order_by(notes.c.id), notes.c.ticket_id, ticket_ids):
                out[r.ticket_id].append(dict(r._mapping))
        return out

    # --- corrections --------------------------------------------------------------------------------
    def correct(self, ticket_id: str, actor: Principal, *, topic: str | None = None, sentiment: str | None = None) -> dict[str, Any]:
        """Set the ticket's topic and/or sentiment; the tweet becomes a labelled example."""
        _writer(actor)
        t = self.ticket(ticket_id)
        topic, sentiment = topic or t.topic, sentiment or t.sentiment
        if topic not in TOPICS:
            raise DeskError(f"unknown topic {topic!r}: one of {', '.join(TOPICS)}", kind="bad_topic")
        if sentiment not in SENTIMENTS:
            raise DeskError(f"unknown sentiment {sentiment!r}: one of {', '.join(SENTIMENTS)}", kind="bad_sentiment")
        now = self.clock()
        row = {"ticket_id": ticket_id, "tweet_id": t.tweet_id, "text": t.text, "topic": topic, "sentiment": sentiment,
               "model_topic": t.topic, "model_sentiment": t.sentiment, "model_version": t.model_version,
               "by": actor.name, "at": now}
        with self.tx(write=True) as conn:
            first = conn.execute(sa.select(corrections.c.model_topic, corrections.c.model_sentiment)
                                 .where(corrections.c.ticket_id == ticket_id).order_by(corrections.c.id).limit(1)).first()
            if first is not None:  # what the models said, not what an earlier correction said
                row["model_topic"], row["model_sentiment"] = first
            cid = conn.execute(corrections.insert().returning(corrections.c.id).values(**row)).scalar()
            conn.execute(tickets.update().where(tickets.c.ticket_id == ticket_id)
                         .values(topic=topic, sentiment=sentiment, updated_at=now))
            self.audit_in(conn, ticket_id, actor.name, "corrected",
                          {"topic": [t.topic, topic], "sentiment": [t.sentiment, sentiment]})
        return {"id": cid, **row}

    def corrections(self, ticket_id: str | None = None) -> list[dict[str, Any]]:
        q = sa.select(corrections).order_by(corrections.c.id)
        if ticket_id is not None:
            q = q.where(corrections.c.ticket_id == ticket_id)
        with self.tx() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    # --- for the API and the ticket page ---------------------------------------------------------
    def ticket_extras(self, ticket_id: str) -> dict[str, Any]:
        from tweetdesk.desk.timers import Timers

        return {
            "assignee": self.assignees([ticket_id]).get(ticket_id),
            "timer": Timers(self).for_ticket(self.ticket(ticket_id)),
            "notes": self.notes(ticket_id),
            "corrections": self.corrections(ticket_id),
            "audit": self.audit(ticket_id),
            "seen": self.snapshot(ticket_id),
        }


def _writer(p: Principal) -> None:
    if not p.can_write:
        raise DeskError(f"{p.name} is a viewer: viewers cannot change anything", status=403, kind="forbidden")


_ACTIONS = {
    "resolved": "resolved the ticket",
    "replied": "queued a reply",
    "noted": "added a note",
    "user_added": "added user {user} ({role})",
    "user_disabled": "disabled user {user}",
    "user_enabled": "enabled user {user}",
    "password_reset": "reset the password of {user}",
    "password_changed": "changed their password",
    "token_created": "created an API token for {user}",
    "token_revoked": "revoked an API token of {user}",
    "canned_saved": "saved canned reply “{title}”",
    "canned_deleted": "deleted canned reply “{title}”",
    "opt_out_lifted": "lifted the opt-out of @{author}",
    "signed_in": "signed in ({via}, from {address})",
    "sign_in_failed": "failed to sign in as {user} (from {address})",
    "exported": "exported the inbox ({format})",
}


def describe(e) -> str:
    """One line for an audit entry (without the actor and time)."""
    d = e["detail"] or {}
    action = e["action"]
    if action == "assigned":
        return f"assigned the ticket to {d.get('to')}" + (f" (was {d['from']})" if d.get("from") else "")
    if action == "unassigned":
        return f"unassigned the ticket from {d.get('from')}"
    if action == "corrected":
        parts = [f"{k} {v[0]} → {v[1]}" for k in ("topic", "sentiment") if (v := d.get(k)) and v[0] != v[1]]
        return "corrected " + (", ".join(parts) or "the labels (unchanged)")
    try:
        return _ACTIONS.get(action, action.replace("_", " ")).format(**d)
    except (KeyError, IndexError):
        return action.replace("_", " ")


__all__ = ["Desk", "DeskError", "PRESENCE_SECONDS", "describe", "reply_refused"]
