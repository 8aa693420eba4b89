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
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import sqlalchemy as sa

from tweetdesk.desk.accounts import DeskError
from tweetdesk.desk.timers import Timers
from tweetdesk.records import NOT_INFERRED, SENTIMENTS, TOPIC_CHOICES, UNCLASSIFIABLE
from tweetdesk.tickets.priority import DESK_CLASSES, LANGUAGE, desk_class
from tweetdesk.tickets.schema import TicketStatus, assignments, corrections, rows_in, tickets
from tweetdesk.tickets.store import Ticket

SCAN = 5000
CLASSES = list(DESK_CLASSES)
_CLASS_ORDER = {c: i for i, c in enumerate(DESK_CLASSES)}
_LANG = re.compile(r"[a-z]{2,3}")
STATUSES = ("open", "replied", "failed", "resolved", "unresolved", "all")


@dataclass
class InboxFilters:
    topic: str | None = None
    sentiment: str | None = None
    assignee: str | None = None  # a name, "none" (unassigned) or "me"
    listening_only: bool | None = None
    status: str = "unresolved"
    klass: str | None = None
    lang: str | None = None  # a language code (X's lang or the identifier's: en, es, und, …)

    @classmethod
    def parse(cls, args, me: str | None = None) -> "InboxFilters":
        def choice(name, allowed):
            v = args.get(name) or None
            if v is not None and v not in allowed:
                raise DeskError(f"unknown {name} {v!r}: one of {', '.join(allowed)}", kind="bad_parameter")
            return v

        lo = choice("listening_only", ["true", "false"])
        lang = (args.get("lang") or "").strip().lower() or None
        if lang is not None and not _LANG.fullmatch(lang):
            raise DeskError(f"unknown lang {lang[:20]!r}: a language code such as en, es, pt, und",
                            kind="bad_parameter")
        assignee = (args.get("assignee") or "").strip().lower() or None
        if args.get("mine") in ("1", "true") or assignee == "me":
            assignee = me or "none"
        return cls(
            topic=choice("topic", list(TOPIC_CHOICES)),
            sentiment=choice("sentiment", [*SENTIMENTS, UNCLASSIFIABLE, NOT_INFERRED]),
            assignee=assignee,
            listening_only=None if lo is None else lo == "true",
            status=choice("status", list(STATUSES)) or "unresolved",
            klass=choice("class", CLASSES),
            lang=lang,
        )

    def query_args(self) -> dict[str, str]:
        d = {"topic": self.topic, "sentiment": self.sentiment, "assignee": self.assignee, "class": self.klass,
             "listening_only": None if self.listening_only is None else str(self.listening_only).lower(),
             "status": None if self.status == "unresolved" else self.status, "lang": self.lang}
        return {k: v for k, v in d.items() if v}


# desk_class's order as far as the sentiment tells it: negative and not inferred (urgent, negative or language),
# neutral, positive
_SENTIMENT_CLASS = sa.case((tickets.c.sentiment.in_(("negative", NOT_INFERRED)), 0),
                           (tickets.c.sentiment == "positive", 2), else_=1)


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
    if f.lang:
        q = q.where(tickets.c.lang == f.lang)
    if f.klass:  # the sentiment the class needs, in SQL; urgent vs negative vs language is told apart in Python
        neg, pos = tickets.c.sentiment == "negative", tickets.c.sentiment == "positive"
        other = tickets.c.sentiment == NOT_INFERRED
        q = q.where(sa.or_(neg, other) if f.klass == "urgent" else neg if f.klass == "negative" else
                    other if f.klass == LANGUAGE else pos if f.klass == "positive" else ~sa.or_(neg, pos, other))
    if f.assignee == "none":
        q = q.where(assignments.c.assignee.is_(None))
    elif f.assignee:
        q = q.where(assignments.c.assignee == f.assignee)
    return q


def languages(desk) -> list[str]:
    """The languages the store's tickets are in (the inbox's language filter offers them)."""
    with desk.tx() as conn:
        return sorted(x for (x,) in conn.execute(sa.select(tickets.c.lang).where(tickets.c.lang.is_not(None)).distinct()))


def inbox(desk, f: InboxFilters, *, limit: int = 100, offset: int = 0) -> dict[str, Any]:
    """{items: [{ticket, assignee, class, timer}], total, scanned}: most urgent class first, oldest first."""
    with desk.tx() as conn:
        rows = conn.execute(_select(f).order_by(_SENTIMENT_CLASS, tickets.c.created_at, tickets.c.ticket_id)
                            .limit(SCAN)).mappings().all()
    items = []
    for r in rows:
        t = Ticket.model_validate(dict(r))
        k = desk_class(t)
        if f.klass and k != f.klass:
            continue
        items.append((k, t, r["assignee"]))
    items.sort(key=lambda x: (_CLASS_ORDER[x[0]], x[1].created_at))
    page = items[offset : offset + limit]
    timers = Timers(desk)
    firsts = timers.first_responses([t.ticket_id for _, t, _ in page])
    now = desk.clock()
    return {
        "items": [{"ticket": t, "assignee": a, "class": k,
                   "timer": timers.timer(t, firsts.get(t.ticket_id), now)} for k, t, a in page],
        "total": len(items),
        "scanned": len(rows),
    }


EXPORT_COLUMNS = [
    "ticket_id", "status", "class", "assignee", "author", "tweet_id", "text", "lang", "topic", "sentiment", "model_topic",
    "model_sentiment", "corrected_by", "corrected_at", "created_at", "due_at", "first_response_at",
    "first_response_by", "first_response_seconds", "breached", "resolved_at", "listening_only", "conversation",
    "notes",
]


# Tickets read, and rows built and written, at a time: an export's memory is a page's, whatever its length.
EXPORT_PAGE = 250
EXPORT_LIMIT = 100_000

EXPORT_SCHEMA = None  # built on first use (pyarrow is imported only by exports)


def export_pages(desk, f: InboxFilters, *, limit: int = EXPORT_LIMIT) -> Iterator[list[dict[str, Any]]]:
    """The export's rows (one per ticket: the ticket, its timer, its latest correction, its conversation and notes
    as JSON), oldest first, a page at a time: each page is one short transaction keyed on (created_at, ticket_id),
    so neither the process nor a database connection holds the whole export."""
    timers = Timers(desk)
    now = desk.clock()
    order = (tickets.c.created_at, tickets.c.ticket_id)
    after = None
    left = limit
    while left > 0:
        q = _select(f).order_by(*order).limit(min(EXPORT_PAGE, left))
        if after is not None:
            # created_at >= the last one's first: an index range, not a scan from the oldest ticket on every page
            q = q.where(order[0] >= after[0], sa.or_(order[0] > after[0], order[1] > after[1]))
        with desk.tx() as conn:
            rows = conn.execute(q).mappings().all()
        if not rows:
            return
        left -= len(rows)
        after = (rows[-1]["created_at"], rows[-1]["ticket_id"])
        ts = [(Ticket.model_validate(dict(r)), r["assignee"]) for r in rows]
        if f.klass:  # urgent vs negative, which SQL cannot tell, before reading anything more about the tickets
            ts = [(t, a) for t, a in ts if desk_class(t) == f.klass]
        if ts:
            yield _export_page(desk, timers, ts, now)
        if len(rows) < EXPORT_PAGE:
            return


def _export_page(desk, timers: Timers, ts: list[tuple[Ticket, str | None]], now) -> list[dict[str, Any]]:
    ids = [t.ticket_id for t, _ in ts]
    firsts = timers.first_responses(ids)
    latest: dict[str, dict[str, Any]] = {}
    with desk.tx() as conn:  # the page's corrections only, oldest first: the last one of a ticket wins
        for c in rows_in(conn, sa.select(corrections).order_by(corrections.c.id), corrections.c.ticket_id, ids):
            latest[c.ticket_id] = dict(c._mapping)
    convs, all_notes = desk.store.conversations(ids), desk.notes_of(ids)
    out = []
    for t, assignee in ts:
        tm = timers.timer(t, firsts.get(t.ticket_id), now)
        c = latest.get(t.ticket_id)
        conv = [{**m, "at": _iso(m["at"])} for m in convs[t.ticket_id]]
        nts = [{"author": n["author"], "text": n["text"], "at": _iso(n["created_at"])} for n in all_notes[t.ticket_id]]
        out.append({
            "ticket_id": t.ticket_id, "status": t.status.value, "class": tm["class"], "assignee": assignee,
            "author": t.author, "tweet_id": t.tweet_id, "text": t.text, "lang": t.lang, "topic": t.topic,
            "sentiment": t.sentiment,
            "model_topic": c["model_topic"] if c else t.topic, "model_sentiment": c["model_sentiment"] if c else t.sentiment,
            "corrected_by": c["by"] if c else None, "corrected_at": _iso(c["at"]) if c else None,
            "created_at": _iso(t.created_at), "due_at": _iso(tm["due_at"]),
            "first_response_at": _iso(tm["first_response_at"]), "first_response_by": tm["first_response_by"],
            "first_response_seconds": tm["first_response_seconds"], "breached": tm["breached"],
            "resolved_at": _iso(t.resolved_at), "listening_only": t.listening_only,
            "conversation": json.dumps(conv, ensure_ascii=False), "notes": json.dumps(nts, ensure_ascii=False),
        })
    return out


def export_rows(desk, f: InboxFilters, *, limit: int = EXPORT_LIMIT) -> list[dict[str, Any]]:
    """All of the export's rows in one list (tests, small exports); the service streams ``export_pages``."""
    return [r for page in export_pages(desk, f, limit=limit) for r in page]


def csv_chunks(pages: Iterable[list[dict[str, Any]]]) -> Iterator[bytes]:
    """The CSV, a page at a time: the BOM and the header first (the BOM makes Excel read UTF-8)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=EXPORT_COLUMNS)
    w.writeheader()
    yield buf.getvalue().encode("utf-8-sig")
    for rows in pages:
        buf.seek(0)
        buf.truncate()
        for r in rows:
            # A cell starting with = + - @ is a formula to a spreadsheet: tweets are not to run there.
            w.writerow({k: ("'" + v if isinstance(v, str) and v[:1] in "=+-@\t\r" else v) for k, v in r.items()})
        yield buf.getvalue().encode("utf-8")


def to_csv(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(csv_chunks([rows]))


def _parquet_schema():
    import pyarrow as pa

    global EXPORT_SCHEMA
    if EXPORT_SCHEMA is None:
        EXPORT_SCHEMA = pa.schema([
            (k, pa.float64() if k == "first_response_seconds" else pa.bool_() if k in ("breached", "listening_only")
             else pa.string()) for k in EXPORT_COLUMNS
        ])
    return EXPORT_SCHEMA


class _Drain:
    """A write-only file for ParquetWriter whose bytes are taken away as they come (its position keeps counting,
    for the offsets in the footer)."""

    closed = False

    def __init__(self):
        self._chunks: list[bytes] = []
        self._pos = 0

    def write(self, b) -> int:
        b = bytes(b)
        self._chunks.append(b)
        self._pos += len(b)
        return len(b)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


def _arrow_page(rows: list[dict[str, Any]]):
    """A page of rows as an Arrow table of the export's schema, read from JSON lines by Arrow's own reader.

    ``pa.Table.from_pylist`` would do the same, but building arrays from Python values makes pyarrow import pandas
    (about 50 MB of the service's memory, for good); the JSON reader does not. One thread: an export's memory is
    a page's."""
    import pyarrow.json as pj

    data = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode()
    return pj.read_json(io.BytesIO(data), read_options=pj.ReadOptions(use_threads=False, block_size=len(data) + 1),
                        parse_options=pj.ParseOptions(explicit_schema=_parquet_schema(),
                                                      unexpected_field_behavior="error"))


def _system_allocator() -> None:
    """Arrow's buffers from the C library's allocator: the default (mimalloc) keeps freed pages per thread, which
    added ~40 MB to six concurrent exports; malloc hands them back to the next page. Setting it again is a no-op."""
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())


def parquet_chunks(pages: Iterable[list[dict[str, Any]]]) -> Iterator[bytes]:
    """The Parquet file, a row group per page, its bytes given out as each row group is written."""
    import pyarrow.parquet as pq

    _system_allocator()
    sink = _Drain()
    with pq.ParquetWriter(sink, _parquet_schema()) as writer:
        for rows in pages:
            writer.write_table(_arrow_page(rows))
            yield sink.take()
    yield sink.take()  # the footer


def to_parquet(rows: list[dict[str, Any]]) -> bytes:
    """The Parquet file of ``rows`` in one row group (what exports wrote before they streamed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=_parquet_schema()), buf)
    return buf.getvalue()


EXPORT_FORMATS = {"csv": ("text/csv; charset=utf-8", csv_chunks), "parquet": ("application/vnd.apache.parquet", parquet_chunks)}


def export_stream(desk, fmt: str, f: InboxFilters) -> tuple[Iterator[bytes], str, str]:
    """(chunks, media type, file name) of the export in ``fmt`` (csv | parquet); nothing is read before the
    first chunk is asked for."""
    if fmt not in EXPORT_FORMATS:
        raise DeskError(f"unknown format {fmt!r}: csv or parquet", kind="bad_parameter")
    mime, chunks = EXPORT_FORMATS[fmt]
    stamp = desk.clock().strftime("%Y%m%d-%H%M")
    return chunks(export_pages(desk, f)), mime, f"tickets-{stamp}.{fmt}"


def export_file(desk, fmt: str, f: InboxFilters) -> tuple[bytes, str, str]:
    """(body, media type, file name) of the export in ``fmt`` (csv | parquet), whole."""
    chunks, mime, name = export_stream(desk, fmt, f)
    return b"".join(chunks), mime, name


def _iso(dt) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt else None


__all__ = ["CLASSES", "EXPORT_COLUMNS", "InboxFilters", "csv_chunks", "export_file", "export_pages", "export_rows",
           "export_stream", "inbox", "parquet_chunks", "to_csv", "to_parquet"]
