"""Read-only figures from the ticket store: what the dashboard, the budget and ``/healthz`` show.

``StoreReports`` (mixed into ``TicketStore``) holds the counts other parts ask the store for (``stats``,
``intake_stats``, ``held_back``, ``usage``, a ticket's ``conversation``). ``ticket_figures`` computes the
dashboard's ticket figures (counts by status, topic and sentiment, the sentiment chart, the newest tickets)
in one read transaction of the store; the web layer (``tweetdesk.web.queries``) adds the reply budget and
shares the result between clients (``web.summary_cache``): it reads every ticket's index entries, so it is
computed every few seconds for everyone, never per request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tweetdesk.records import NOT_INFERRED, SENTIMENTS, TOPIC_CHOICES, UNCLASSIFIABLE, Entity, utcnow
from tweetdesk.tickets.intake import CAPPED, OPENED, OWN, THREADED, author_key
from tweetdesk.tickets.schema import (
    TicketStatus,
    dead_letters,
    opt_outs,
    replies,
    rows_in,
    tickets,
    tweets_table,
    x_usage,
)

# What the filters and charts offer: the model's classes plus the bucket for empty tweets and the one for tweets
# in a language the models do not read (counted apart, never folded into a sentiment).
SENTIMENT_CHOICES: tuple[str, ...] = (*SENTIMENTS, UNCLASSIFIABLE, NOT_INFERRED)


class StoreReports:
    """The read-only counts of ``TicketStore``: they use its ``transaction()`` and ``clock``."""

    def intake_stats(self, since: datetime | None = None) -> dict[str, Any]:
        """Tweets taken in by disposition (opened, threaded, own, capped) and the flood guard's
        reasons with how many tweets each held back, most first (for the dashboard and the API)."""
        T = tweets_table
        cond = [T.c.received_at >= since] if since is not None else []
        with self.transaction() as conn:
            by = {d: n for d, n in conn.execute(sa.select(T.c.disposition, sa.func.count()).where(*cond).group_by(T.c.disposition))}
            reasons = conn.execute(
                sa.select(T.c.reason, sa.func.count().label("n"))
                .where(T.c.disposition == CAPPED, *cond)
                .group_by(T.c.reason)
                .order_by(sa.desc("n"), T.c.reason)
            ).all()
        return {
            "tweets": sum(by.values()),
            "by_disposition": {d: by.get(d, 0) for d in (OPENED, THREADED, OWN, CAPPED)},
            "flood_reasons": [(r, n) for r, n in reasons],
        }

    def held_back(self, limit: int = 100) -> list[dict[str, Any]]:
        """Tweets the flood guard held back, newest first, with the reason."""
        T = tweets_table
        with self.transaction() as conn:
            rows = conn.execute(
                sa.select(T.c.tweet_id, T.c.author, T.c.rule, T.c.reason, T.c.tweet_created_at, T.c.received_at)
                .where(T.c.disposition == CAPPED)
                .order_by(T.c.received_at.desc(), T.c.tweet_id.desc())
                .limit(limit)
            ).mappings()
            return [dict(r) for r in rows]

    def tweet_disposition(self, tweet_id: str) -> dict[str, Any] | None:
        """What became of one tweet: its disposition, ticket and reason; None if never taken in."""
        with self.transaction() as conn:
            row = conn.execute(sa.select(tweets_table).where(tweets_table.c.tweet_id == tweet_id)).mappings().first()
        return dict(row) if row else None

    def last_dm(self, ticket_id: str, author: str, author_id: str | None) -> str | None:
        """The customer's newest direct message to us: in this ticket, else any (X lets us DM whoever DMed us
        first); None if they never DMed us. The DM an agent's DM answers."""
        T = tweets_table
        akey = author_key(author, author_id)
        q = (sa.select(T.c.tweet_id).where(T.c.author_key == akey, T.c.channel == "dm")
             .order_by((T.c.ticket_id == ticket_id).desc(), T.c.tweet_created_at.desc(), T.c.tweet_id.desc()).limit(1))
        with self.transaction() as conn:
            return conn.execute(q).scalar()

    def last_public_summons(self, ticket_id: str) -> str | None:
        """The ticket's newest public tweet that summoned us (what a public reply may answer), or None."""
        T = tweets_table
        q = (sa.select(T.c.tweet_id).where(T.c.ticket_id == ticket_id, T.c.summoned_by.is_not(None),
                                           sa.or_(T.c.channel.is_(None), T.c.channel != "dm"))
             .order_by(T.c.tweet_created_at.desc(), T.c.tweet_id.desc()).limit(1))
        with self.transaction() as conn:
            return conn.execute(q).scalar()

    def conversation(self, ticket_id: str) -> list[dict[str, Any]]:
        """The ticket's whole conversation in order: the customer's tweets, our own tweets that came
        back through the stream, and our replies (with their outbox status)."""
        return self.conversations([ticket_id])[ticket_id]

    def conversations(self, ticket_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """``conversation`` of many tickets in a few queries (an export reads thousands), by ticket ID."""
        T = tweets_table
        tw: dict[str, list] = {tid: [] for tid in ticket_ids}
        rs: dict[str, list] = {tid: [] for tid in ticket_ids}
        cols = (T.c.ticket_id, T.c.tweet_id, T.c.author, T.c.text, T.c.disposition, T.c.tweet_created_at,
                T.c.in_reply_to_tweet_id, T.c.channel)
        with self.transaction() as conn:
            for r in rows_in(conn, sa.select(*cols), T.c.ticket_id, ticket_ids):
                tw[r.ticket_id].append(r._mapping)
            for r in rows_in(conn, sa.select(replies), replies.c.ticket_id, ticket_ids):
                rs[r.ticket_id].append(r._mapping)
        return {tid: _conversation(tw[tid], rs[tid]) for tid in ticket_ids}

    def usage(self, now: datetime | None = None) -> dict[str, Any]:
        """What X charged today and this month (UTC), by kind: {"today": {kind: {count, cost_usd}}, "month": …}."""
        now = (now or self.clock()).astimezone(timezone.utc)
        today, month = now.strftime("%Y-%m-%d"), now.strftime("%Y-%m")
        out: dict[str, dict[str, dict[str, float]]] = {"today": {}, "month": {}}
        q = (
            sa.select(x_usage.c.day, x_usage.c.kind, x_usage.c.count, x_usage.c.cost_usd)
            .where(x_usage.c.day >= month + "-01", x_usage.c.day <= month + "-31")
        )
        with self.transaction() as conn:
            for day, kind, n, usd in conn.execute(q):
                for period in ("month",) + (("today",) if day == today else ()):
                    cur = out[period].setdefault(kind, {"count": 0, "cost_usd": 0.0})
                    cur["count"] += n
                    cur["cost_usd"] = round(cur["cost_usd"] + usd, 6)
        return out

    def stats(self) -> dict[str, Any]:
        """Counts for dashboards and /healthz: tickets by status, sentiment and topic; replies by status."""
        with self.transaction() as conn:

            def by(table, col):
                return {k: n for k, n in conn.execute(sa.select(col, sa.func.count()).select_from(table).group_by(col))}

            t_status = by(tickets, tickets.c.status)
            return {
                "tickets": sum(t_status.values()),
                "tickets_by_status": {s.value: t_status.get(s.value, 0) for s in TicketStatus},
                "tickets_by_sentiment": by(tickets, tickets.c.sentiment),
                "tickets_by_topic": by(tickets, tickets.c.topic),
                "tickets_by_lang": by(tickets, tickets.c.lang),
                "replies_by_status": by(replies, replies.c.status),
            }


# ----------------------------------------------------------------------------------------------
# The dashboard's ticket figures
# ----------------------------------------------------------------------------------------------


_LANG = re.compile(r"[a-z]{2,3}")


@dataclass(frozen=True)
class Filters:
    topic: str | None = None
    sentiment: str | None = None
    lang: str | None = None

    @classmethod
    def parse(cls, topic: str | None, sentiment: str | None, lang: str | None = None) -> "Filters":
        """Unknown values are ignored (a stale bookmark shows everything rather than an error)."""
        lang = (lang or "").strip().lower()
        return cls(
            topic=topic if topic in TOPIC_CHOICES else None,
            sentiment=sentiment if sentiment in SENTIMENT_CHOICES else None,
            lang=lang if _LANG.fullmatch(lang) else None,
        )

    def where(self) -> sa.ColumnElement[bool]:
        cond = [sa.true()]
        if self.topic:
            cond.append(tickets.c.topic == self.topic)
        if self.sentiment:
            cond.append(tickets.c.sentiment == self.sentiment)
        if self.lang:
            cond.append(tickets.c.lang == self.lang)
        return sa.and_(*cond)

    @property
    def active(self) -> bool:
        return bool(self.topic or self.sentiment or self.lang)


# What the dashboard shows of a ticket a direct message opened (its text is on the agents' ticket page only).
PRIVATE_TEXT = "(a direct message: private, read it on the ticket's page)"
PRIVATE_REPLY = "(answered by direct message)"


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
    tweeted_at: datetime | None = None  # the customer's tweet (a replay opens many tickets at one moment)
    sentiment_score: float | None = None  # how sure the model was: shown beside the reply it chose
    topic_score: float | None = None


@dataclass
class SentimentSeries:
    bucket_seconds: int
    starts: list[datetime]
    series: dict[str, list[int]]  # sentiment -> count per bucket, aligned with ``starts``


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

    Without a topic filter, from the chart index (``schema.CHART_INDEX``) alone: per sentiment the first and last tweet time (an index
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


def _by_lang(counts: dict[str | None, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for k, n in counts.items():
        out[k or "und"] = out.get(k or "und", 0) + n
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


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
            tickets.c.tweet_created_at,
            tickets.c.sentiment_score,
            tickets.c.topic_score,
            tickets.c.channel,
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
        if r["channel"] == "dm":  # a DM is personal data: the dashboard (public without an API key) never shows it
            r = {**r, "text": PRIVATE_TEXT, "reply_text": PRIVATE_REPLY if r["reply_text"] else None}
            ents = []
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
                tweeted_at=r["tweet_created_at"],
                sentiment_score=r["sentiment_score"],
                topic_score=r["topic_score"],
                no_reply_reason=r["no_reply_reason"],
            )
        )
    return out


@dataclass
class TicketFigures:
    """The dashboard's figures from the ticket store (the budget panel comes from the reply budget)."""

    tweets: int  # every tweet taken in, unfiltered (the intake)
    tickets: int
    dead_letters: int
    listening_only: int  # tickets nobody summoned us for: no automatic reply (X's rules)
    opted_out: int  # customers who get no automatic reply now
    by_status: dict[str, int]
    by_topic: dict[str, int]
    by_sentiment: dict[str, int]
    by_lang: dict[str, int]  # tickets per language (a tweet with none recorded counts as "und")
    over_time: SentimentSeries
    newest: list[NewestTicket]


def ticket_figures(store, filters: Filters, newest: int = 10) -> TicketFigures:
    """Every ticket figure of the dashboard, in one read transaction of ``store``."""
    with store.transaction() as conn:
        by_status, by_topic, by_sentiment = _all_counts(conn, filters)
        return TicketFigures(
            # The intake, unfiltered: every tweet taken in, ticketed or not (a thread's later tweets,
            # our own tweets, the flood-capped ones; see tweetdesk.tickets.intake).
            tweets=conn.execute(sa.select(sa.func.count()).select_from(tweets_table)).scalar_one(),
            tickets=sum(by_status.values()),
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
            by_lang=_by_lang(_counts(conn, tickets.c.lang, filters)),
            over_time=sentiment_over_time(conn, filters, sentiments=list(by_sentiment)),
            newest=newest_tickets(conn, filters, newest),
        )


def dead_letter_count(store) -> int:
    with store.transaction() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(dead_letters)).scalar_one()


def _conversation(tw: list, rs: list) -> list[dict[str, Any]]:
    """One ticket's tweets and replies as one ordered list."""
    seen = {r["tweet_id"] for r in tw}
    items = [
        {
            "kind": "own" if r["disposition"] == OWN else "customer",
            "tweet_id": r["tweet_id"],
            "author": r["author"],
            "text": r["text"],
            "at": r["tweet_created_at"],
            "in_reply_to_tweet_id": r["in_reply_to_tweet_id"],
            "status": None,
            "channel": r["channel"] or "public",  # dm: private, shown to agents only
        }
        for r in tw
    ]
    for r in rs:
        if r["posted_id"] and r["posted_id"] in seen:
            continue  # our reply, already shown as it came back through the stream
        items.append(
            {
                "kind": "reply",
                "tweet_id": r["posted_id"],
                "author": None,
                "text": r["text"],
                "at": r["posted_at"] or r["created_at"],
                "in_reply_to_tweet_id": r["in_reply_to_tweet_id"],
                "status": r["status"],
                "channel": r["channel"] or "public",
            }
        )
    items.sort(key=lambda i: (i["at"], i["tweet_id"] or ""))
    return items
