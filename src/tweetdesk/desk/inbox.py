"""The agents' inbox (tickets not resolved, most urgent class first, then oldest) and the export of tickets
with their conversation, timers and corrections as CSV or Parquet.

The inbox reads at most ``SCAN`` unresolved tickets matching the filters, in the classes' order as far as SQL
can tell them (the class follows the sentiment, except that urgent is a negative tweet about something going
wrong now, which takes the text: negative tweets first, then neutral, then positive, oldest first in each), and
orders them exactly by the reply budget's class in Python. So a backlog of old praise never hides a new
complaint; only a desk with more than ``SCAN`` open complaints works through the oldest of them first.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from tweetdesk.desk.accounts import DeskError
from tweetdesk.tickets.schema import assignments
from tweetdesk.desk.timers import Timers
from tweetdesk.records import SENTIMENTS, TOPICS, UNCLASSIFIABLE
from tweetdesk.reply.budget import PRIORITY_CLASSES, priority_of
from tweetdesk.tickets.schema import TicketStatus, tickets
from tweetdesk.tickets.store import Ticket

SCAN = 5000
CLASSES = [c for c in PRIORITY_CLASSES.values() if c != "agent"]
STATUSES = ("open", "replied", "failed", "resolved", "unresolved", "all")


@dataclass
class InboxFilters:
    topic: str | None = None
    sentiment: str | None = None
    assignee: str | None = None  # a name, "none" (unassigned) or "me"
    listening_only: bool | None = None
    status: str = "unresolved"
    klass: str | None = None

    @classmethod
    def parse(cls, args, me: str | None = None) -> "InboxFilters":
        def choice(name, allowed):
            v = args.get(name) or None
            if v is not None and v not in allowed:
                raise DeskError(f"unknown {name} {v!r}: one of {', '.join(allowed)}", kind="bad_parameter")
            return v

        lo = choice("listening_only", ["true", "false"])
        assignee = (args.get("assignee") or "").strip().lower() or None
        if args.get("mine") in ("1", "true") or assignee == "me":
            assignee = me or "none"
        return cls(
            topic=choice("topic", [*TOPICS, UNCLASSIFIABLE]),
            sentiment=choice("sentiment", [*SENTIMENTS, UNCLASSIFIABLE]),
            assignee=assignee,
            listening_only=None if lo is None else lo == "true",
            status=choice("status", list(STATUSES)) or "unresolved",
            klass=choice("class", CLASSES),
        )

    def query_args(self) -> dict[str, str]:
        d = {"topic": self.topic, "sentiment": self.sentiment, "assignee": self.assignee, "class": self.klass,
             "listening_only": None if self.listening_only is None else str(self.listening_only).lower(),
             "status": None if self.status == "unresolved" else self.status}
        return {k: v for k, v in d.items() if v}


# priority_of's order as far as the sentiment tells it: negative (urgent or negative), neutral, positive
_SENTIMENT_CLASS = sa.case((tickets.c.sentiment == "negative", 0), (tickets.c.sentiment == "positive", 2), else_=1)


def _select(f: InboxFilters):
    q = sa.select(tickets, assignments.c.assignee).outerjoin(assignments, assignments.c.ticket_id == tickets.c.ticket_id)
    if f.status == "unresolved":
        q = q.where(tickets.c.status != TicketStatus.resolved.value)
    elif f.status != "all":
        q = q.where(tickets.c.status == f.status)
    if f.topic:
        q = q.where(tickets.c.topic == f.topic)
    if f.sentiment:
        q = q.where(tickets.c.sentiment == f.sentiment)
    if f.listening_only is not None:
        q = q.where(tickets.c.summoned_by.is_(None) if f.listening_only else tickets.c.summoned_by.is_not(None))
    if f.klass:  # the sentiment the class needs, in SQL; urgent vs negative is told apart in Python
        neg, pos = tickets.c.sentiment == "negative", tickets.c.sentiment == "positive"
        q = q.where(neg if f.klass in ("urgent", "negative") else pos if f.klass == "positive" else ~sa.or_(neg, pos))
    if f.assignee == "none":
        q = q.where(assignments.c.assignee.is_(None))
    elif f.assignee:
        q = q.where(assignments.c.assignee == f.assignee)
    return q


def inbox(desk, f: InboxFilters, *, limit: int = 100, offset: int = 0) -> dict[str, Any]:
    """{items: [{ticket, assignee, class, timer}], total, scanned}: most urgent class first, oldest first."""
    with desk.tx() as conn:
        rows = conn.execute(_select(f).order_by(_SENTIMENT_CLASS, tickets.c.created_at, tickets.c.ticket_id)
                            .limit(SCAN)).mappings().all()
    items = []
    for r in rows:
        t = Ticket.model_validate(dict(r))
        p = priority_of(t)
        if f.klass and PRIORITY_CLASSES[p] != f.klass:
            continue
        items.append((p, t, r["assignee"]))
    items.sort(key=lambda x: (x[0], x[1].created_at))
    page = items[offset : offset + limit]
    timers = Timers(desk)
    firsts = timers.first_responses([t.ticket_id for _, t, _ in page])
    now = desk.clock()
    return {
        "items": [{"ticket": t, "assignee": a, "class": PRIORITY_CLASSES[p],
                   "timer": timers.timer(t, firsts.get(t.ticket_id), now)} for p, t, a in page],
        "total": len(items),
        "scanned": len(rows),
    }


EXPORT_COLUMNS = [
    "ticket_id", "status", "class", "assignee", "author", "tweet_id", "text", "topic", "sentiment", "model_topic",
    "model_sentiment", "corrected_by", "corrected_at", "created_at", "due_at", "first_response_at",
    "first_response_by", "first_response_seconds", "breached", "resolved_at", "listening_only", "conversation",
    "notes",
]


def export_rows(desk, f: InboxFilters, *, limit: int = 100_000) -> list[dict[str, Any]]:
    """One row per ticket: the ticket, its timer, its latest correction, its conversation and notes (JSON)."""
    with desk.tx() as conn:
        rows = conn.execute(_select(f).order_by(tickets.c.created_at, tickets.c.ticket_id).limit(limit)).mappings().all()
    ts = [(Ticket.model_validate(dict(r)), r["assignee"]) for r in rows]
    if f.klass:  # urgent vs negative, which SQL cannot tell, before reading anything more about the tickets
        ts = [(t, a) for t, a in ts if PRIORITY_CLASSES[priority_of(t)] == f.klass]
    ids = [t.ticket_id for t, _ in ts]
    timers = Timers(desk)
    firsts = timers.first_responses(ids)
    latest: dict[str, dict[str, Any]] = {c["ticket_id"]: c for c in desk.corrections()}
    now = desk.clock()
    convs, all_notes = desk.store.conversations(ids), desk.notes_of(ids)
    out = []
    for t, assignee in ts:
        tm = timers.timer(t, firsts.get(t.ticket_id), now)
        c = latest.get(t.ticket_id)
        conv = [{**m, "at": _iso(m["at"])} for m in convs[t.ticket_id]]
        nts = [{"author": n["author"], "text": n["text"], "at": _iso(n["created_at"])} for n in all_notes[t.ticket_id]]
        out.append({
            "ticket_id": t.ticket_id, "status": t.status.value, "class": tm["class"], "assignee": assignee,
            "author": t.author, "tweet_id": t.tweet_id, "text": t.text, "topic": t.topic, "sentiment": t.sentiment,
            "model_topic": c["model_topic"] if c else t.topic, "model_sentiment": c["model_sentiment"] if c else t.sentiment,
            "corrected_by": c["by"] if c else None, "corrected_at": _iso(c["at"]) if c else None,
            "created_at": _iso(t.created_at), "due_at": _iso(tm["due_at"]),
            "first_response_at": _iso(tm["first_response_at"]), "first_response_by": tm["first_response_by"],
            "first_response_seconds": tm["first_response_seconds"], "breached": tm["breached"],
            "resolved_at": _iso(t.resolved_at), "listening_only": t.listening_only,
            "conversation": json.dumps(conv, ensure_ascii=False), "notes": json.dumps(nts, ensure_ascii=False),
        })
    return out


def to_csv(rows: list[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=EXPORT_COLUMNS)
    w.writeheader()
    for r in rows:
        # A cell starting with = + - @ is a formula to a spreadsheet: tweets are not to run there.
        w.writerow({k: ("'" + v if isinstance(v, str) and v[:1] in "=+-@\t\r" else v) for k, v in r.items()})
    return buf.getvalue().encode("utf-8-sig")  # the BOM makes Excel read UTF-8


def to_parquet(rows: list[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([
        (k, pa.float64() if k == "first_response_seconds" else pa.bool_() if k in ("breached", "listening_only")
         else pa.string()) for k in EXPORT_COLUMNS
    ])
    table = pa.Table.from_pylist(rows, schema=schema)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def export_file(desk, fmt: str, f: InboxFilters) -> tuple[bytes, str, str]:
    """(body, media type, file name) of the export in ``fmt`` (csv | parquet)."""
    rows = export_rows(desk, f)
    stamp = desk.clock().strftime("%Y%m%d-%H%M")
    if fmt == "csv":
        return to_csv(rows), "text/csv; charset=utf-8", f"tickets-{stamp}.csv"
    if fmt == "parquet":
        return to_parquet(rows), "application/vnd.apache.parquet", f"tickets-{stamp}.parquet"
    raise DeskError(f"unknown format {fmt!r}: csv or parquet", kind="bad_parameter")


def _iso(dt) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt else None


__all__ = ["CLASSES", "EXPORT_COLUMNS", "InboxFilters", "export_file", "export_rows", "inbox", "to_csv", "to_parquet"]
