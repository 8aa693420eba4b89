"""What the web pages read, all through the ticket store (``tweetdesk.tickets``): the dashboard's summary
(the store's ticket figures from ``tickets.reports`` and the reply budget's panel), the tracking page's
public ticket, and the JSON forms of both.

The summary reads every ticket's index entries: it is computed once for all clients every few seconds
(``tweetdesk.web.summary_cache``), never per request. The budget panel is the share of
``ReplyBudget.figures()`` the dashboard shows: the same read as ``GET /api/budget``, on the app's one budget.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from tweetdesk.records import DeadLetter, Entity, utcnow
from tweetdesk.reply.budget import ReplyBudget
from tweetdesk.tickets.reports import (  # noqa: F401 (the pages' names for them)
    MAX_BUCKETS,
    SENTIMENT_CHOICES,
    TOPIC_CHOICES,
    Filters,
    NewestTicket,
    SentimentSeries,
    TicketFigures,
    dead_letter_count,
    ticket_figures,
)
from tweetdesk.tickets.store import PublicTicket, TicketStore
from tweetdesk.x.rules import DM_READ, DM_SEND


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
    # Direct messages (issue 29): X's DM send caps (``ReplyBudget.figures()["dms"]``) and this month's DM reads
    # and sends with what X charged for them.
    dms: dict[str, Any] = field(default_factory=dict)
    dm_month: dict[str, dict[str, float]] = field(default_factory=dict)


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
    "dms",
)


def panel_figures(budget: ReplyBudget) -> dict[str, Any]:
    """The budget panel's figures, from the same read as ``GET /api/budget``."""
    f = budget.figures()
    return {k: f[k] for k in PANEL_KEYS}


def dashboard_figures(store: TicketStore, settings: Any, *, live: bool | None = None,
                      clock: Callable[[], float] | None = None) -> dict[str, Any]:
    """The panel's figures from a budget made from the settings (live when X credentials are set) on the wall
    clock, or on ``clock`` (epoch seconds)."""
    live = settings.x.user_credentials if live is None else live
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
        dms=dict(f.get("dms") or {}),
        dm_month={k: v for k, v in (f.get("x_usage") or {}).get("month", {}).items() if k in (DM_READ, DM_SEND)},
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


@dataclass
class Summary(TicketFigures):
    """The store's figures (``TicketFigures``), for these filters, with the budget panel."""

    filters: Filters
    budget: BudgetFigures | None
    generated_at: datetime


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
    """The dashboard's figures. ``budget``: the app's one reply budget (the poster's when it posts); without
    one, a budget made from ``settings`` (with ``live``/``clock``), or no panel when there are none."""
    figures = ticket_figures(store, filters, newest)
    generated_at = utcnow()
    panel = _panel(panel_figures(budget)) if budget is not None else budget_figures(store, settings, live=live, clock=clock)
    return Summary(filters=filters, **vars(figures), budget=panel, generated_at=generated_at)


def record_dead_letters(store: TicketStore, letters: Iterable[DeadLetter]) -> int:
    """``TicketStore.record_dead_letters``, under the name the pages' tests and scripts used."""
    return store.record_dead_letters(letters)


def public_status(store: TicketStore, ticket_id: str) -> PublicTicket | None:
    """The tracking page's read: the ticket's public shape only (``TicketStore.public_ticket``)."""
    return store.public_ticket(ticket_id)


@dataclass
class ReplyState:
    """What the tracking page may promise about a reply: whether the customer summoned us (X forbids replying
    otherwise) and whether our reply was posted or only written in dry-run."""

    summoned: bool
    replies: int
    posted: bool
    dry_run: bool


def reply_state(store: TicketStore, ticket_id: str) -> ReplyState | None:
    import sqlalchemy as sa

    from tweetdesk.tickets.schema import replies, tickets

    def count(*status: str):
        where = [replies.c.ticket_id == ticket_id, *([replies.c.status.in_(status)] if status else [])]
        return sa.select(sa.func.count()).select_from(replies).where(*where).scalar_subquery()

    q = sa.select(tickets.c.summoned_by, count().label("replies"), count("posted").label("posted"),
                  count("dry_run").label("dry_run")).where(tickets.c.ticket_id == ticket_id)
    with store.engine.connect() as conn:
        row = conn.execute(q).mappings().first()
    if row is None:
        return None
    return ReplyState(summoned=bool(row["summoned_by"]), replies=row["replies"], posted=row["posted"] > 0,
                      dry_run=row["dry_run"] > 0)


# What a customer reads on the tracking page.
PUBLIC_STATUS = {
    "open": ("Received", "We have your message; our reply is on its way."),
    "replied": ("Answered", "We replied to you on X. An agent follows up if anything is left to do."),
    "resolved": ("Resolved", "This ticket is closed. Tweet us again if you need more help."),
    "failed": ("Delayed", "We could not post our reply on X yet. An agent will follow up."),
}
# X lets us reply only to tweets that mention, quote or reply to our account: no reply is on its way.
NOT_SUMMONED_STATUS = ("Received", "We have your message. It did not mention our account, and X does not let us "
                                   "reply to such posts: to get an answer on X, mention us in a new tweet.")
# Without X credentials replies go to a dry-run outbox: nothing was posted, so the page must not say it was.
DRY_RUN_STATUS = ("Answered (test mode)", "Our reply was written but not posted on X: this service runs in "
                                          "test mode (dry run), so nothing was published.")


def public_explanation(st: PublicTicket, rs: ReplyState | None) -> tuple[str, str, str | None]:
    """What the tracking page says of a ticket: its status label ("" = the agents' label), the sentence under
    it, and the timeline's reply step when "Reply on X (pending)" or "Replied on X" would not be true."""
    label, explanation = PUBLIC_STATUS.get(st.status, ("", ""))
    if rs is not None and not rs.summoned and not rs.replies and st.status == "open":
        return (*NOT_SUMMONED_STATUS, "No reply on X: your tweet did not mention us")
    if rs is not None and rs.dry_run and not rs.posted and st.replied_at is not None:
        return (*DRY_RUN_STATUS, "Reply written, not posted (test mode)")
    return label, explanation, None


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


__all__ = [
    "MAX_BUCKETS",
    "SENTIMENT_CHOICES",
    "TOPIC_CHOICES",
    "BudgetFigures",
    "Filters",
    "FloodReason",
    "NewestTicket",
    "SentimentSeries",
    "Summary",
    "as_jsonable",
    "budget_figures",
    "dashboard_figures",
    "dead_letter_count",
    "panel_figures",
    "public_explanation",
    "public_status",
    "reply_state",
    "record_dead_letters",
    "summary",
]
