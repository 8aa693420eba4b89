"""Read-side queries for the web pages, on the ticket store's tables (``tweetdesk.tickets.store``).

The store owns tickets and replies; this module only *reads* them, with aggregate queries the pages
need (counts by status/topic/sentiment, sentiment over time, newest tickets). It also owns one small
table of its own, ``dead_letters``: the dead-letter topic's records, written by the reply service's
consumer through ``record_dead_letters`` so the dashboard can count them (and an operator can read
them with SQL), and one index on the store's ``tickets``, ``ix_tickets_sentiment_tweet_time`` (the
sentiment chart counts index ranges instead of reading every ticket row: 4.6 s -> 0.3 s at a million
tickets on SQLite). Both are created with ``IF NOT EXISTS`` on first use, beside the store's schema.

The summary reads every ticket's index entries: it is computed once for all clients every few seconds
(``tweetdesk.web.summary_cache``), never per request.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from tweetdesk.records import SENTIMENTS, TOPICS, UNCLASSIFIABLE, DeadLetter, Entity, utcnow
from tweetdesk.reply.budget import ReplyBudget
from tweetdesk.tickets.store import PublicTicket, TicketStatus, TicketStore, UTCDateTime, opt_outs, replies, tickets, tweets_table

# What the filters and charts offer: the model's classes plus the bucket for empty tweets.
SENTIMENT_CHOICES: tuple[str, ...] = (*SENTIMENTS, UNCLASSIFIABLE)
TOPIC_CHOICES: tuple[str, ...] = (*TOPICS, UNCLASSIFIABLE)

# ----------------------------------------------------------------------------------------------
# Dead letters
# ----------------------------------------------------------------------------------------------

web_metadata = sa.MetaData()

dead_letters = sa.Table(
    "dead_letters",
    web_metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    # sha256 of the record's JSON: a re-delivered dead letter is recorded once.
    sa.Column("digest", sa.String(64), nullable=False, unique=True),
    sa.Column("stage", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("raw", sa.Text, nullable=False),
    sa.Column("raw_bytes", sa.Integer, nullable=False),
    sa.Column("key", sa.String(256)),
    sa.Column("source_topic", sa.String(256)),
    sa.Column("source_partition", sa.Integer),
    sa.Column("source_offset", sa.BigInteger),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    sa.Index("ix_dead_letters_at", "at"),
)

_ensured: set[str] = set()
CHART_INDEX = "ix_tickets_sentiment_tweet_time"


def ensure_schema(engine: Engine) -> None:
    """Create this module's table if absent (safe when several processes start together)."""
    key = str(engine.url)
    if key in _ensured:
        return
    with engine.connect() as conn, conn.begin():
        conn.execute(sa.schema.CreateTable(dead_letters, if_not_exists=True))
        for ix in dead_letters.indexes:
            conn.execute(sa.schema.CreateIndex(ix, if_not_exists=True))
        # Not in the store's metadata on purpose: that would change the store's schema wherever this module
        # happens to be imported.
        conn.execute(sa.text(f"CREATE INDEX IF NOT EXISTS {CHART_INDEX} ON tickets (sentiment, tweet_created_at)"))
    _ensured.add(key)


def _digest(dl: DeadLetter) -> str:
    return hashlib.sha256(dl.model_dump_json().encode()).hexdigest()


def record_dead_letters(store: TicketStore, letters: Iterable[DeadLetter]) -> int:
    """Store dead letters read from ``settings.topic_dead``; re-deliveries change nothing.
    Returns how many were new. Call it before committing the consumer's offsets."""
    rows = []
    now = store.clock()
    for dl in letters:
        rows.append(
            {
                "digest": _digest(dl),
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
        )
    if not rows:
        return 0
    ensure_schema(store.engine)
    insert = (sqlite.insert if store.dialect == "sqlite" else postgresql.insert)(dead_letters)
    stmt = insert.on_conflict_do_nothing(index_elements=["digest"]).returning(dead_letters.c.id)
    new = 0
    with store.engine.connect() as conn, conn.begin():
        for row in rows:
            new += conn.execute(stmt, row).first() is not None
    return new


def dead_letter_count(store: TicketStore) -> int:
    ensure_schema(store.engine)
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(dead_letters)).scalar_one()


# ----------------------------------------------------------------------------------------------
# Dashboard summary
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    topic: str | None = None
    sentiment: str | None = None

    @classmethod
    def parse(cls, topic: str | None, sentiment: str | None) -> "Filters":
        """Unknown values are ignored (a stale bookmark shows everything rather than an error)."""
        return cls(
            topic=topic if topic in TOPIC_CHOICES else None,
            sentiment=sentiment if sentiment in SENTIMENT_CHOICES else None,
        )

    def where(self) -> sa.ColumnElement[bool]:
        cond = [sa.true()]
        if self.topic:
            cond.append(tickets.c.topic == self.topic)
        if self.sentiment:
            cond.append(tickets.c.sentiment == self.sentiment)
        return sa.and_(*cond)

    @property
    def active(self) -> bool:
        return bool(self.topic or self.sentiment)


@dataclass
class NewestTicket:
    ticket_id: str
    status: str
    topic: str
    sentiment: str
    author: str
    text: str
    created_at: datetime
    entities: list[Entity]
    reply_text: str | None
    reply_status: str | None  # the latest reply's outbox status (queued, dry_run, posted, failed, …)
    no_reply_reason: str | None = None  # listening only, opted out, …: why no automatic reply


@dataclass
class SentimentSeries:
    bucket_seconds: int
    starts: list[datetime]
    series: dict[str, list[int]]  # sentiment -> count per bucket, aligned with ``starts``


@dataclass(frozen=True)
class FloodReason:
    reason: str  # the flood guard's reason, as stored with each tweet it held back
    count: int  # tweets held back for it


@dataclass
class BudgetFigures:
    """Reply queue and budget (issue 7), from ``ReplyBudget.figures()`` (``panel_figures``); the dashboard
    shows the panel only when figures exist."""

    queue_length: int
    expected_wait_seconds: float | None
    replies_this_window: int
    reply_limit: int
    window_seconds: int
    spend_today_usd: float
    flood_reasons: list[FloodReason] = field(default_factory=list)  # most tweets held back first
    # X's rules of 2026 (issue 11): whether X's limits apply (live), what X charged this month, the read cap.
    enforced: bool = True
    spend_month_usd: float = 0.0
    reads_month: int = 0
    monthly_read_cap: int = 3_000_000
    read_cap_warning: str | None = None


@dataclass
class Summary:
    filters: Filters
    tweets: int
    tickets: int
    dead_letters: int
    listening_only: int  # tickets nobody summoned us for: no automatic reply (X's rules)
    opted_out: int  # customers who get no automatic reply now
    by_status: dict[str, int]
    by_topic: dict[str, int]
    by_sentiment: dict[str, int]
    over_time: SentimentSeries
    newest: list[NewestTicket]
    budget: BudgetFigures | None
    generated_at: datetime


# Bucket widths the sentiment chart may use: the smallest that gives at most MAX_BUCKETS bars.
BUCKET_LADDER = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400)
MAX_BUCKETS = 36


def _when():
    """The time a ticket belongs to on the chart: when the customer tweeted, else when we took it in."""
    return sa.func.coalesce(tickets.c.tweet_created_at, tickets.c.created_at)


def _epoch(conn: Connection, col) -> sa.ColumnElement[int]:
    # Whole seconds since 1970 (UTC) on both backends; the store keeps UTC (naive UTC on SQLite).
    if conn.dialect.name == "sqlite":
        return sa.cast(sa.func.strftime("%s", col), sa.BigInteger)
    return sa.cast(sa.func.floor(sa.extract("epoch", col)), sa.BigInteger)


def _as_utc(v: Any) -> datetime | None:
    if v is None:
        return None
    if isinstance(v, str):  # SQLite returns the raw text for an expression such as MIN(COALESCE(…))
        v = datetime.fromisoformat(v)
    return v.replace(tzinfo=timezone.utc) if v.tzinfo is None else v.astimezone(timezone.utc)


def _width(lo: datetime, hi: datetime) -> int:
    span = (hi - lo).total_seconds()
    return next((w for w in BUCKET_LADDER if span / w < MAX_BUCKETS), BUCKET_LADDER[-1])


def _series(lo: datetime, hi: datetime, width: int, counts: Iterable[tuple[int, str, int]]) -> SentimentSeries:
    """``counts``: (bucket number = epoch seconds // width, sentiment, tickets)."""
    first = int(lo.timestamp()) // width
    last = int(hi.timestamp()) // width
    # Cap the number of buckets (the widest step can still leave many for a years-long store).
    first = max(first, last - 4 * MAX_BUCKETS)
    n = last - first + 1
    series = {s: [0] * n for s in SENTIMENT_CHOICES}
    for b, sentiment, count in counts:
        i = int(b) - first
        if 0 <= i < n:
            series.setdefault(sentiment, [0] * n)[i] += count
    starts = [datetime.fromtimestamp((first + i) * width, tz=timezone.utc) for i in range(n)]
    # Drop sentiment series that are empty throughout (e.g. no unclassifiable tweets).
    series = {k: v for k, v in series.items() if any(v) or k in SENTIMENTS}
    return SentimentSeries(bucket_seconds=width, starts=starts, series=series)


def _empty_series() -> SentimentSeries:
    return SentimentSeries(bucket_seconds=BUCKET_LADDER[0], starts=[], series={s: [] for s in SENTIMENT_CHOICES})


def sentiment_over_time(conn: Connection, filters: Filters, sentiments: Iterable[str] | None = None) -> SentimentSeries:
    """Tickets per sentiment per time bucket, by when the customer tweeted (else when we took the tweet in).

    Without a topic filter, from ``CHART_INDEX`` alone: per sentiment the first and last tweet time (an index
    seek each) and a count per bucket (an index range each); a few hundred small queries instead of reading
    and grouping every ticket. ``sentiments``: the sentiments present, when the caller counted them already."""
    if filters.topic:
        return _sentiment_over_time_grouped(conn, filters)
    T = tickets.c
    if sentiments is None:
        sentiments = [s for (s,) in conn.execute(sa.select(T.sentiment).where(filters.where()).distinct())]
    sentiments = [s for s in sentiments if not filters.sentiment or s == filters.sentiment]
    span: dict[str, tuple[datetime, datetime]] = {}
    undated = False
    for s in sentiments:
        lo, hi = conn.execute(sa.select(sa.func.min(T.tweet_created_at)).where(T.sentiment == s)).scalar(), \
            conn.execute(sa.select(sa.func.max(T.tweet_created_at)).where(T.sentiment == s)).scalar()
        if lo is not None:
            span[s] = (_as_utc(lo), _as_utc(hi))
        undated = undated or conn.execute(
            sa.select(T.ticket_id).where(T.sentiment == s, T.tweet_created_at.is_(None)).limit(1)).first() is not None
    if undated:  # tickets without the tweet's time (none since v1): the general path, by intake time for those
        return _sentiment_over_time_grouped(conn, filters)
    if not span:
        return _empty_series()
    lo = min(a for a, _ in span.values())
    hi = max(b for _, b in span.values())
    width = _width(lo, hi)
    first = max(int(lo.timestamp()) // width, int(hi.timestamp()) // width - 4 * MAX_BUCKETS)
    counts = []
    for s, (a, b) in span.items():
        for bucket in range(max(first, int(a.timestamp()) // width), int(b.timestamp()) // width + 1):
            start = datetime.fromtimestamp(bucket * width, tz=timezone.utc)
            n = conn.execute(
                sa.select(sa.func.count()).select_from(tickets).where(
                    T.sentiment == s, T.tweet_created_at >= start, T.tweet_created_at < start + timedelta(seconds=width)
                )
            ).scalar_one()
            if n:
                counts.append((bucket, s, n))
    return _series(lo, hi, width, counts)


def _sentiment_over_time_grouped(conn: Connection, filters: Filters) -> SentimentSeries:
    """The general path: one GROUP BY over the matching tickets (a topic's share of them, with a filter)."""
    when = _when()
    lo, hi = conn.execute(sa.select(sa.func.min(when), sa.func.max(when)).where(filters.where())).one()
    lo, hi = _as_utc(lo), _as_utc(hi)
    if lo is None:
        return _empty_series()
    width = _width(lo, hi)
    bucket = (_epoch(conn, when) // width).label("bucket")
    rows = conn.execute(
        sa.select(bucket, tickets.c.sentiment, sa.func.count())
        .where(filters.where())
        .group_by(bucket, tickets.c.sentiment)
    ).all()
    return _series(lo, hi, width, rows)


def _counts(conn: Connection, col, filters: Filters) -> dict[str, int]:
    rows = conn.execute(sa.select(col, sa.func.count()).where(filters.where()).group_by(col)).all()
    return {k: n for k, n in rows}


def _count_where(conn: Connection, cond, filters: Filters) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(tickets).where(filters.where(), cond)).scalar_one()


def _all_counts(conn: Connection, filters: Filters) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Tickets by status, by topic and by sentiment. PostgreSQL counts all three in one pass over the table
    (GROUPING SETS); SQLite answers each from its own covering index."""
    T = tickets.c
    if conn.dialect.name != "postgresql":
        return _counts(conn, T.status, filters), _counts(conn, T.topic, filters), _counts(conn, T.sentiment, filters)
    rows = conn.execute(
        sa.select(T.status, T.topic, T.sentiment, sa.func.grouping(T.status, T.topic), sa.func.count())
        .where(filters.where())
        .group_by(sa.func.grouping_sets(sa.tuple_(T.status), sa.tuple_(T.topic), sa.tuple_(T.sentiment)))
    ).all()
    out: tuple[dict[str, int], dict[str, int], dict[str, int]] = ({}, {}, {})
    for status, topic, sentiment, grouping, n in rows:
        # GROUPING(status, topic): 1 = grouped by status (topic rolled up), 2 = by topic, 3 = by sentiment.
        if grouping == 1:
            out[0][status] = n
        elif grouping == 2:
            out[1][topic] = n
        else:
            out[2][sentiment] = n
    return out


def newest_tickets(conn: Connection, filters: Filters, limit: int) -> list[NewestTicket]:
    rows = conn.execute(
        sa.select(
            tickets.c.ticket_id,
            tickets.c.status,
            tickets.c.topic,
            tickets.c.sentiment,
            tickets.c.author,
            tickets.c.text,
            tickets.c.entities,
            tickets.c.reply_text,
            tickets.c.no_reply_reason,
            tickets.c.created_at,
        )
        .where(filters.where())
        .order_by(tickets.c.created_at.desc(), tickets.c.ticket_id.desc())
        .limit(limit)
    ).mappings().all()
    ids = [r["ticket_id"] for r in rows]
    reply_status: dict[str, str] = {}
    if ids:
        # The latest outbox row per ticket says whether its reply is queued, posted or a dry run.
        for tid, status in conn.execute(
            sa.select(replies.c.ticket_id, replies.c.status).where(replies.c.ticket_id.in_(ids)).order_by(replies.c.id)
        ):
            reply_status[tid] = status
    out = []
    for r in rows:
        ents = r["entities"]
        if isinstance(ents, str):
            ents = json.loads(ents)
        out.append(
            NewestTicket(
                ticket_id=r["ticket_id"],
                status=r["status"],
                topic=r["topic"],
                sentiment=r["sentiment"],
                author=r["author"],
                text=r["text"],
                created_at=r["created_at"],
                entities=[Entity.model_validate(e) for e in ents or []],
                reply_text=r["reply_text"],
                reply_status=reply_status.get(r["ticket_id"]),
                no_reply_reason=r["no_reply_reason"],
            )
        )
    return out


# The budget panel's share of ``ReplyBudget.figures()`` (the read GET /api/budget answers with).
PANEL_KEYS = (
    "queue_length",
    "expected_wait_seconds",
    "replies_this_window",
    "reply_limit",
    "window_seconds",
    "spend_today_usd",
    "flood_reasons",
    "enforced",
    "spend_month_usd",
    "reads_month",
    "monthly_read_cap",
    "read_cap_warning",
    "x_usage",
)


def panel_figures(budget: ReplyBudget) -> dict[str, Any]:
    """The budget panel's figures, from the same read as ``GET /api/budget``."""
    f = budget.figures()
    return {k: f[k] for k in PANEL_KEYS}


def dashboard_figures(store: TicketStore, settings: Any, *, live: bool | None = None,
                      clock: Callable[[], float] | None = None) -> dict[str, Any]:
    """The panel's figures from a budget made from the settings (live when X credentials are set) on the wall
    clock, or on ``clock`` (epoch seconds)."""
    live = settings.x_user_credentials if live is None else live
    return panel_figures(ReplyBudget(settings, store, live=live, **({"clock": clock} if clock is not None else {})))


def _panel(f: dict[str, Any]) -> BudgetFigures:
    return BudgetFigures(
        queue_length=int(f["queue_length"]),
        expected_wait_seconds=None if f["expected_wait_seconds"] is None else float(f["expected_wait_seconds"]),
        replies_this_window=int(f["replies_this_window"]),
        reply_limit=int(f["reply_limit"]),
        window_seconds=int(f["window_seconds"]),
        spend_today_usd=float(f["spend_today_usd"]),
        flood_reasons=[FloodReason(reason=str(r["reason"]), count=int(r["count"])) for r in f["flood_reasons"]],
        enforced=bool(f["enforced"]),
        spend_month_usd=float(f["spend_month_usd"]),
        reads_month=int(f["reads_month"]),
        monthly_read_cap=int(f["monthly_read_cap"]),
        read_cap_warning=f["read_cap_warning"],
    )


def budget_figures(
    store: TicketStore,
    settings: Any,
    *,
    live: bool | None = None,
    clock: Callable[[], float] | None = None,
) -> BudgetFigures | None:
    """The budget panel from a budget made from the settings (see ``dashboard_figures``). Without settings (no
    limits to measure against) there are no figures and the panel stays hidden."""
    if settings is None:
        return None
    return _panel(dashboard_figures(store, settings, live=live, clock=clock))


def summary(
    store: TicketStore,
    filters: Filters,
    *,
    budget: ReplyBudget | None = None,
    settings: Any = None,
    newest: int = 10,
    live: bool | None = None,
    clock: Callable[[], float] | None = None,
) -> Summary:
    ensure_schema(store.engine)
    with store.engine.connect() as conn:
        by_status, by_topic, by_sentiment = _all_counts(conn, filters)
        tickets_n = sum(by_status.values())
        # The intake, unfiltered: every tweet taken in, ticketed or not (a thread's later tweets,
        # our own tweets, the flood-capped ones; see tweetdesk.tickets.intake).
        tweets_n = conn.execute(sa.select(sa.func.count()).select_from(tweets_table)).scalar_one()
        result = Summary(
            filters=filters,
            tweets=tweets_n,
            tickets=tickets_n,
            dead_letters=conn.execute(sa.select(sa.func.count()).select_from(dead_letters)).scalar_one(),
            listening_only=_count_where(conn, tickets.c.summoned_by.is_(None), filters),
            opted_out=conn.execute(
                sa.select(sa.func.count()).select_from(opt_outs)
                .where(sa.or_(opt_outs.c.until.is_(None), opt_outs.c.until > utcnow()))
            ).scalar_one(),
            by_status={s.value: by_status.get(s.value, 0) for s in TicketStatus}
            | {k: v for k, v in by_status.items() if k not in TicketStatus.__members__},
            by_topic=dict(sorted(by_topic.items(), key=lambda kv: (-kv[1], kv[0]))),
            by_sentiment=by_sentiment,
            over_time=sentiment_over_time(conn, filters, sentiments=list(by_sentiment)),
            newest=newest_tickets(conn, filters, newest),
            budget=None,
            generated_at=utcnow(),
        )
    # The app passes its one reply budget (the poster's when it posts); without one, a budget from the settings.
    result.budget = _panel(panel_figures(budget)) if budget is not None else budget_figures(
        store, settings, live=live, clock=clock)
    return result


# ----------------------------------------------------------------------------------------------
# Tracking page (public: status, topic and timestamps only)
# ----------------------------------------------------------------------------------------------


def public_status(store: TicketStore, ticket_id: str) -> PublicTicket | None:
    """The tracking page's read: the ticket's public shape only (``TicketStore.public_ticket``)."""
    return store.public_ticket(ticket_id)


def as_jsonable(obj: Any) -> Any:
    """dataclasses → dicts with ISO times (for the JSON endpoint and the page's embedded data)."""
    if hasattr(obj, "__dataclass_fields__"):
        return as_jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {k: as_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [as_jsonable(v) for v in obj]
    if isinstance(obj, datetime):
        return obj.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(obj, Entity):
        return obj.model_dump()
    if isinstance(obj, timedelta):
        return obj.total_seconds()
    return obj
