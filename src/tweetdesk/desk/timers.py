"""First-response timers and the desk's response-time report.

A ticket's class is its desk class (``tickets.priority.desk_class``: urgent, negative, language, neutral, positive;
language = a tweet in a language the models do not read, not urgent);
it is due ``desk_due_minutes[class]`` after it was opened. Its first response is the first reply to it that
went out (posted to X, or written to the dry-run outbox): the automatic reply counts only where one was
sent, so a listening-only ticket waits for an agent. A ticket breaches when its first response came after
the due time, or none came and the due time is past.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa

from tweetdesk.tickets.priority import desk_class
from tweetdesk.tickets.schema import assignments, replies, reply_authors, rows_in, tickets
from tweetdesk.tickets.store import Ticket

DEFAULT_DUE_MINUTES = {"urgent": 15, "negative": 60, "language": 60, "neutral": 240, "positive": 240}
SENT = ("posted", "dry_run")
AUTOMATIC = "automatic reply"


class Timers:
    def __init__(self, desk):
        self.desk = desk
        due = dict(DEFAULT_DUE_MINUTES)
        due.update(getattr(desk.settings, "desk_due_minutes", None) or {})
        self.due_minutes = due

    def klass(self, ticket) -> str:
        return desk_class(ticket)

    def due_at(self, ticket) -> datetime:
        return ticket.created_at + timedelta(minutes=float(self.due_minutes.get(self.klass(ticket), 240)))

    def first_responses(self, ticket_ids: list[str]) -> dict[str, dict[str, Any]]:
        """ticket id → {at, by} of its first reply that went out."""
        if not ticket_ids:
            return {}
        out: dict[str, dict[str, Any]] = {}
        sent = (
            sa.select(replies.c.ticket_id, replies.c.posted_at, replies.c.kind, reply_authors.c.author)
            .outerjoin(reply_authors, reply_authors.c.reply_id == replies.c.id)
            .where(replies.c.status.in_(SENT), replies.c.posted_at.is_not(None))
        )
        with self.desk.tx() as conn:
            for tid, at, kind, author in rows_in(conn, sent, replies.c.ticket_id, ticket_ids):
                if tid not in out or at < out[tid]["at"]:
                    by = AUTOMATIC if kind == "auto" else (author or "agent (API key)")
                    out[tid] = {"at": at, "by": by}
        return out

    def for_ticket(self, ticket: Ticket, first: dict[str, Any] | None = None, now: datetime | None = None) -> dict[str, Any]:
        if first is None:
            first = self.first_responses([ticket.ticket_id]).get(ticket.ticket_id)
        return self.timer(ticket, first, now or self.desk.clock())

    def timer(self, ticket, first: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
        due = self.due_at(ticket)
        responded = first["at"] if first else None
        seconds = (responded - ticket.created_at).total_seconds() if responded else None
        breached = (responded > due) if responded else (now > due)
        return {
            "class": self.klass(ticket),
            "due_at": due,
            "first_response_at": responded,
            "first_response_by": first["by"] if first else None,
            "first_response_seconds": seconds,
            "breached": breached,
            "overdue": responded is None and now > due and ticket.status.value != "resolved",
            "remaining_seconds": None if responded else (due - now).total_seconds(),
        }

    def report(self, days: int | None = None, now: datetime | None = None) -> dict[str, Any]:
        """First-response p50/p90 and breaches per UTC day, by topic and by agent, over the last ``days``."""
        now = now or self.desk.clock()
        days = days or getattr(self.desk.settings, "desk_report_days", 14)
        since = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
        cols = [tickets.c.ticket_id, tickets.c.created_at, tickets.c.topic, tickets.c.sentiment, tickets.c.text,
                tickets.c.entities, tickets.c.status]
        with self.desk.tx() as conn:
            rows = conn.execute(sa.select(*cols).where(tickets.c.created_at >= since)).mappings().all()
            owner = dict(conn.execute(sa.select(assignments.c.ticket_id, assignments.c.assignee)).all())
        ts = [Ticket.model_validate({**r, "tweet_id": "", "author": "", "updated_at": r["created_at"]}) for r in rows]
        firsts = self.first_responses([t.ticket_id for t in ts])
        names = ("day", "topic", "agent", "day_topic", "day_agent")
        groups: dict[str, dict[Any, dict[str, list]]] = {g: defaultdict(lambda: defaultdict(list)) for g in names}
        totals: dict[str, list] = defaultdict(list)
        for t in ts:
            tm = self.timer(t, firsts.get(t.ticket_id), now)
            agent = tm["first_response_by"] or owner.get(t.ticket_id) or "unassigned"
            day = t.created_at.strftime("%Y-%m-%d")
            for g, key in (("day", day), ("topic", t.topic), ("agent", agent), ("day_topic", (day, t.topic)),
                           ("day_agent", (day, agent))):
                _add(groups[g][key], tm)
            _add(totals, tm)

        def rows(g: str) -> list[dict[str, Any]]:
            cols = g.split("_")
            return [{**dict(zip(cols, k if isinstance(k, tuple) else (k,))), **_figures(v)}
                    for k, v in sorted(groups[g].items())]

        return {"since": since, "days": days, "due_minutes": self.due_minutes, "overall": _figures(totals),
                **{f"by_{g}": rows(g) for g in names}}


def _add(acc: dict[str, list], tm: dict[str, Any]) -> None:
    acc["n"].append(1)
    if tm["first_response_seconds"] is not None:
        acc["seconds"].append(tm["first_response_seconds"])
    if tm["breached"]:
        acc["breaches"].append(1)


def _figures(acc: dict[str, list]) -> dict[str, Any]:
    secs = acc.get("seconds") or []
    return {
        "tickets": len(acc.get("n") or []),
        "responded": len(secs),
        "p50_seconds": float(np.percentile(secs, 50)) if secs else None,
        "p90_seconds": float(np.percentile(secs, 90)) if secs else None,
        "breaches": len(acc.get("breaches") or []),
    }


__all__ = ["AUTOMATIC", "DEFAULT_DUE_MINUTES", "Timers"]
