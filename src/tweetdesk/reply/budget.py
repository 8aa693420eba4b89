"""The reply budget: which queued reply goes out when, under X's posting limits.

X lets one account post ``reply_limit`` replies per ``reply_window_seconds`` (100 per 15 minutes) and
an app ``reply_daily_app_limit`` per 24 hours, and charges per post ($0.015; $0.20 with a URL). In an
outage a desk gets far more complaints than that, so the budget decides:

**Order**: a reply's class (``tickets.priority.priority_of``, stored on each reply when it is queued; lower
goes first, oldest first within a class).

**When** (``ReplyBudget.allowance``): a post may go when all three hold, computed from the posts
recorded in the store (so the budget survives a restart and is shared by every thread):

* fewer than ``reply_limit`` posts in the last ``reply_window_seconds`` (a sliding window: never more
  than the limit in *any* such span, so X's fixed windows are respected too);
* fewer than ``reply_daily_app_limit`` posts in the last 24 hours;
* pacing: at most ``reply_burst`` posts at once, then one per ``window / limit`` (9 s by default;
  the generic cell-rate algorithm over the recorded post times). Without pacing an outage's first
  arrivals would take the whole window's budget in a second; paced, each slot goes to the most
  urgent reply queued at that moment.

**Never a URL**: a reply containing one is failed, not posted (``check``); spend is recorded with
each post (``cost_of``) and summed per UTC day (``figures``).

The clock is injectable (epoch seconds, like the poster's) so tests and ``benchmarks/budget.py`` run
hours of traffic in seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from tweetdesk.reply.templates import find_urls
from tweetdesk.tickets.priority import PRIORITY_CLASSES
from tweetdesk.x.rules import READ_KINDS, Prices


@dataclass
class Allowance:
    posts: int  # how many may go now
    wait: float  # seconds until the next may go, when posts == 0
    binding: str = ""  # "window" | "daily" | "pacing" when posts == 0


class UrlInReply(ValueError):
    pass


class ReplyBudget:
    """The posting budget, read from the store's record of posts. ``enforced=False`` (dry-run without
    ``reply_budget_dry_run``) lets everything through at once, as before."""

    def __init__(
        self,
        settings,
        store,
        *,
        clock: Callable[[], float] = time.time,
        live: bool = True,
    ):
        self.store = store
        self.clock = clock
        self.limit = settings.reply_limit
        self.window = timedelta(seconds=settings.reply_window_seconds)
        self.daily = settings.reply_daily_app_limit
        self.prices = Prices.from_settings(settings)
        self.burst = max(1, min(settings.reply_burst, self.limit))
        self.interval = self.window / self.limit
        self.dm_limit = settings.reply_dm_limit
        self.dm_window = timedelta(seconds=settings.reply_dm_window_seconds)
        self.dm_daily = settings.reply_dm_daily_limit
        self.live = live
        self.enforced = live or settings.reply_budget_dry_run
        self.count_dry_run = not live  # a rehearsal counts its dry-run "posts"

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), timezone.utc)

    # --- the rules -------------------------------------------------------------------------------
    def allowance(self, now: datetime | None = None) -> Allowance:
        now = now or self.now()
        if not self.enforced:
            return Allowance(10**9, 0.0)
        times = [t for t in self.store.post_times(now - self.window, dry_run=self.count_dry_run) if t > now - self.window]
        room_window = self.limit - len(times)
        room_daily = self.daily - self.store.posted_since(now - timedelta(days=1), dry_run=self.count_dry_run)
        # Generic cell-rate algorithm: the theoretical arrival time after the recorded posts.
        tat: datetime | None = None
        for t in times:
            tat = max(tat or t, t) + self.interval
        tolerance = (self.burst - 1) * self.interval
        n, t_ = 0, tat
        while n < min(room_window, room_daily) and (t_ is None or t_ - tolerance <= now):
            t_ = max(t_ or now, now) + self.interval
            n += 1
        if n:
            return Allowance(n, 0.0)
        waits: dict[str, float] = {}
        if room_window <= 0:
            waits["window"] = (times[-room_window] + self.window - now).total_seconds()
        if room_daily <= 0:
            waits["daily"] = 60.0  # re-check; a day's budget frees one post at a time
        if tat is not None and tat - tolerance > now:
            waits["pacing"] = (tat - tolerance - now).total_seconds()
        binding = max(waits, key=waits.get) if waits else "pacing"
        return Allowance(0, max(0.001, waits.get(binding, 0.001)), binding)

    def check(self, text: str) -> None:
        """Raise ``UrlInReply`` when the text holds anything X would turn into a link."""
        urls = find_urls(text)
        if urls:
            raise UrlInReply(
                f"reply contains a URL ({urls[0]}): not posted (replies never carry links; X charges "
                f"${self.prices.url_post:.2f} for such a post)"
            )

    def price_of(self, text: str, *, dm: bool = False) -> tuple[str, float]:
        """What X charges for posting ``text``: every reply we send answers a tweet that summoned us
        (``tweetdesk.x.rules``), so a summoned reply, unless it holds a URL; a DM is priced as a DM."""
        return self.prices.post_price(has_url=bool(find_urls(text)), summoned=True, dm=dm)

    def dm_allowance(self, now: datetime | None = None) -> Allowance:
        """Direct messages X's caps leave now (``reply_dm_limit`` per ``reply_dm_window_seconds`` and
        ``reply_dm_daily_limit`` per 24 h, per user), counted from the DMs recorded in the store: a DM waits for
        a free slot instead of being refused by X."""
        now = now or self.now()
        if not self.enforced:
            return Allowance(10**9, 0.0)
        times = self.store.post_times(now - timedelta(days=1), dry_run=self.count_dry_run, dm=True)
        in_window = [t for t in times if t > now - self.dm_window]
        room_window, room_daily = self.dm_limit - len(in_window), self.dm_daily - len(times)
        if room_window > 0 and room_daily > 0:
            return Allowance(min(room_window, room_daily), 0.0)
        waits = {}
        if room_window <= 0:
            waits["window"] = (in_window[-room_window] + self.dm_window - now).total_seconds()
        if room_daily <= 0:
            waits["daily"] = (times[-room_daily] + timedelta(days=1) - now).total_seconds()
        binding = max(waits, key=waits.get)
        return Allowance(0, max(0.001, waits[binding]), binding)

    def cost_of(self, text: str) -> float:
        return self.price_of(text)[1]

    # --- figures -----------------------------------------------------------------------------------
    def figures(self, now: datetime | None = None) -> dict[str, Any]:
        """Queue length, expected wait, replies this window, spend today, flood-guard reasons (the
        dashboard's budget panel and ``GET /api/budget``)."""
        now = now or self.now()
        q = self.store.queue_stats()
        in_window = len(
            [t for t in self.store.post_times(now - self.window, dry_run=self.count_dry_run) if t > now - self.window]
        )
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        rate = self.limit / self.window.total_seconds()  # sustained posts per second
        queued = q["queued"]
        ahead = 0
        wait_by_class: dict[str, float | None] = {}
        for p in sorted(PRIORITY_CLASSES):
            ahead += q["by_priority"].get(p, 0)
            # A new reply of this class waits behind everything queued at its class or above.
            wait_by_class[PRIORITY_CLASSES[p]] = (ahead / rate) if self.enforced else 0.0
        a = self.allowance(now)
        dm = self.dm_allowance(now)
        dm_times = self.store.post_times(now - timedelta(days=1), dry_run=self.count_dry_run, dm=True)
        intake = self.store.intake_stats()
        usage = self.store.usage(now)
        reads_month = sum(usage["month"].get(k, {}).get("count", 0) for k in READ_KINDS)
        return {
            "queue_length": queued,
            "expected_wait_seconds": (queued / rate) if self.enforced else 0.0,
            "replies_this_window": in_window,
            "reply_limit": self.limit,
            "window_seconds": int(self.window.total_seconds()),
            "spend_today_usd": round(self.store.spend_since(day), 6),
            # objects, as the dashboard's template and the JSON API read them
            "flood_reasons": [{"reason": r, "count": n} for r, n in intake["flood_reasons"]],
            # extras for the API
            "queue_by_class": {PRIORITY_CLASSES.get(p, str(p)): n for p, n in sorted(q["by_priority"].items())},
            "expected_wait_by_class_seconds": wait_by_class,
            "next_post_in_seconds": 0.0 if a.posts else a.wait,
            "posts_allowed_now": min(a.posts, self.limit),
            "enforced": self.enforced,
            "intake": intake["by_disposition"],
            # Direct messages: X caps them apart from posts; a DM is held back (not refused) when a cap is reached.
            "dms": {
                "sent_this_window": len([t for t in dm_times if t > now - self.dm_window]),
                "limit": self.dm_limit,
                "window_seconds": int(self.dm_window.total_seconds()),
                "sent_24h": len(dm_times),
                "daily_limit": self.dm_daily,
                "next_dm_in_seconds": 0.0 if dm.posts else dm.wait,
                "held_by": dm.binding or None,
            },
            # What X charged (reads and posts by kind), today and this month (UTC), and the monthly read cap.
            "x_usage": usage,
            "spend_month_usd": round(sum(v["cost_usd"] for v in usage["month"].values()), 6),
            "reads_month": reads_month,
            "monthly_read_cap": self.prices.monthly_read_cap,
            "read_cap_warning": (
                f"{reads_month:,} of X's {self.prices.monthly_read_cap:,} monthly post reads used"
                if reads_month >= 0.8 * self.prices.monthly_read_cap else None
            ),
        }
