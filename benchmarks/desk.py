"""Benchmark: the agents' desk — inbox, response-time report and export — on a store of N tickets.

A fresh store (SQLite in a temporary directory, or ``--database-url``) is seeded through the real code paths:
``TicketStore.add_tickets`` takes batches of enriched tweets (a mix of topics and sentiments, one in ten not
mentioning us: listening only) spread over ``--days`` days; most automatic replies go out after a few minutes
to a few hours (some late: breaches), some stay queued; the desk (``Desk``) assigns a quarter of the tickets
to three agents, answers a few itself and resolves most older tickets. Then an agent account and a personal
API token are made with ``desk.accounts`` (as ``tweetdesk users add`` / ``users token`` do), the app is built
with ``create_app`` and Flask's test client (no network) times, each ``--repeat`` times after one warm-up:

  * inbox API   ``GET /api/desk/inbox`` unfiltered, ``?topic=Baggage Issue``, ``?assignee=me`` (Mine)
  * inbox page  ``GET /inbox``
  * report      ``GET /api/desk/report`` (``TWEETDESK_DESK_REPORT_DAYS``, 14 days)
  * export      ``GET /api/export?format=csv|parquet`` (every ticket; also per ticket)

Printed: seeding tickets/s (``add_tickets`` alone) and desk actions/s, then median and p95 ms per request
(with 5 repeats the p95 is about the slowest). Measured with the defaults (20,000 tickets over 14 days, SQLite:
2,257 open, 3,203 replied, 14,540 resolved, 5,000 assigned) on this 2-core machine, idle, seven runs (with and
without the inbox's class-ordered scan: no difference beyond the spread): seeding 4,293 tickets/s and 889 desk
actions/s; median per request: inbox API 158-215 ms unfiltered, 33-49 ms by topic, 10-34 ms Mine; ``/inbox``
207-296 ms; report 0.97-1.51 s; export 0.13-0.18 ms per ticket, CSV or Parquet (2.6-3.5 s for 20,000; it was
0.56 ms while the export read each ticket's conversation and notes on its own).

PostgreSQL: ``--database-url postgresql://…`` (an empty database you own; the tables are created).

    .venv/bin/python benchmarks/desk.py [--tickets 20000] [--days 14] [--repeat 5] [--database-url URL]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from tqdm import tqdm

from tweetdesk.app import create_app
from tweetdesk.config import Settings
from tweetdesk.desk.core import Desk
from tweetdesk.desk.inbox import InboxFilters, inbox
from tweetdesk.records import TOPICS, EnrichedTweet
from tweetdesk.reply.templates import ReplyTemplates
from tweetdesk.tickets.ids import ticket_id_for
from tweetdesk.tickets.intake import Intake
from tweetdesk.tickets.priority import priority_of
from tweetdesk.tickets.schema import replies
from tweetdesk.tickets.store import TicketStore

BATCH = 200  # tickets per add_tickets call (one consumer batch)
FIRST_ID = 1_800_000_000_000_000_000
SENTIMENTS = ("negative", "negative", "negative", "neutral", "positive")  # complaints dominate
TEXTS = {
    "Baggage Issue": "@united my bag never made it to {to}, flight UA{fl}",
    "Customer Experience": "@united the crew on UA{fl} was something else today",
    "Delay and Customer Service": "@united UA{fl} delayed 3 hours at {to} and nobody tells us anything",
    "Extra Charges": "@united charged me twice for a checked bag on UA{fl}",
    "Online Booking": "@united the app will not let me check in for tomorrow",
    "Reschedule and Refund": "@united UA{fl} cancelled, I need a refund or a rebooking",
    "Reservation Issue": "@united my reservation to {to} disappeared",
    "Seating Preferences": "@united paid for an aisle seat on UA{fl}, got a middle one",
}
AIRPORTS = ("ORD", "DEN", "SFO", "EWR", "IAH", "LAX")
AGENTS = ("ann", "bob", "cho")
REPLY_DELAYS_MIN = (2, 5, 12, 25, 50, 90, 200, 400)  # when the automatic reply went out (some breach)


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Clock:
    """The store's clock: a fixed instant while seeding (tickets get their age), real time after."""

    at: datetime | None = None

    def __call__(self) -> datetime:
        return self.at or datetime.now(timezone.utc)


def tweet(i: int, at: datetime) -> EnrichedTweet:
    topic = TOPICS[(i * 7) % len(TOPICS)]
    fl, to = 100 + (i * 31) % 1900, AIRPORTS[i % len(AIRPORTS)]
    text = TEXTS.get(topic, "@united {to}?").format(fl=fl, to=to)
    if i % 10 == 9:  # listening only: about us, not to us (no automatic reply; an agent may not answer either)
        text = text.replace("@united", "united")
    tid = str(FIRST_ID + i)
    return EnrichedTweet(
        id=tid, text=text, author=f"flyer_{i % 9973}", created_at=at - timedelta(seconds=3), clean_text=text.lower(),
        sentiment=SENTIMENTS[(i * 3) % len(SENTIMENTS)], sentiment_score=0.9, topic=topic, topic_score=0.8,
        ticket_id=ticket_id_for(tid, topic, key=b"bench"), model_version="bench",
    )


def seed(store: TicketStore, desk: Desk, clock: Clock, n: int, days: float) -> dict[str, float]:
    """Open ``n`` tickets over ``days`` days and work them as a desk would; returns the seeding rates."""
    render = ReplyTemplates.load().render
    intake = Intake.from_settings(desk.settings)
    agents = {a: desk.accounts.authenticate(a, desk.accounts.add(a, "agent", actor="bench")[1]) for a in AGENTS}
    now = datetime.now(timezone.utc)
    start, batches = now - timedelta(days=days), max(1, -(-n // BATCH))
    intake_s = desk_s = 0.0
    actions = 0
    for b in tqdm(range(batches), desc="seeding", unit="batch", file=sys.stderr):
        at = clock.at = start + (now - start) * (b / batches)
        tweets = [tweet(i, at) for i in range(b * BATCH, min(n, (b + 1) * BATCH))]
        t0 = time.perf_counter()
        opened = store.add_tickets(tweets, render, intake=intake, priority=priority_of).created
        intake_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        with store.transaction() as conn:  # the automatic replies this batch queued
            auto = conn.execute(sa.select(replies.c.id).where(replies.c.ticket_id.in_(opened))).scalars().all()
        for k, delay in enumerate(REPLY_DELAYS_MIN):  # one in nine stays queued (unanswered)
            clock.at = at + timedelta(minutes=delay)
            store.record_dry_run(auto[k::len(REPLY_DELAYS_MIN) + 1])
        age_h = (now - at).total_seconds() / 3600
        for j, tid in enumerate(opened):
            i = b * BATCH + j
            if i % 4 == 0:
                clock.at = at + timedelta(minutes=3)
                desk.assign(tid, AGENTS[i % 3], agents[AGENTS[i % 3]])
                actions += 1
            if i % 20 == 8:  # an agent writes to the customer too
                clock.at = at + timedelta(minutes=30)
                agent = agents[AGENTS[i % 3]]
                reply, _ = desk.send_reply(tid, f"@{tweets[j].author} looking into it now. {tid}", agent)
                clock.at = at + timedelta(minutes=31)
                store.record_dry_run([reply.id])
                actions += 2
            if (age_h > 48 and i % 10 < 8) or (age_h > 6 and i % 10 < 3):  # most older tickets are closed
                clock.at = at + timedelta(hours=5)
                desk.resolve(tid, agents[AGENTS[i % 3]])
                actions += 1
        desk_s += time.perf_counter() - t0
    clock.at = None
    return {"tickets/s": n / intake_s, "desk actions/s": actions / desk_s}


def timed(client, path: str, headers: dict[str, str], repeat: int) -> list[float]:
    """Seconds per request (after one warm-up); every answer must be 200."""
    out = []
    for k in range(repeat + 1):
        t0 = time.perf_counter()
        r = client.get(path, headers=headers)
        dt = time.perf_counter() - t0
        if r.status_code != 200:
            raise SystemExit(f"desk benchmark: GET {path} answered {r.status_code}: {r.get_data(as_text=True)[:300]}")
        if k:
            out.append(dt)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tickets", type=int, default=20_000, help="tickets to seed (default 20,000)")
    ap.add_argument("--days", type=float, default=14, help="days the tickets are spread over (default 14)")
    ap.add_argument("--repeat", type=int, default=5, help="timed requests per figure, after one warm-up")
    ap.add_argument("--database-url", help="an empty PostgreSQL (or SQLite) database to use instead of a temp SQLite")
    args = ap.parse_args()
    if args.tickets < 1 or args.repeat < 1 or args.days <= 0:
        ap.error("--tickets and --repeat must be at least 1, --days above 0")

    with tempfile.TemporaryDirectory(prefix="tweetdesk-bench-desk-") as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'tickets.db'}"
        settings = Settings(work_dir=Path(tmp), database_url=url, our_handles=["united"])
        clock = Clock()
        store = TicketStore(url, clock=clock)
        if store.stats()["tickets"]:
            raise SystemExit("desk benchmark: the store at --database-url is not empty")
        desk = Desk(store, settings)
        backend = "PostgreSQL" if store.dialect == "postgresql" else "SQLite"
        say(f"desk benchmark: seeding {args.tickets:,} tickets over {args.days:g} days into {backend}")
        rates = seed(store, desk, clock, args.tickets, args.days)
        stats = store.stats()
        held, assigned = stats["tickets"], len(desk.assignees())

        # The agent whose token times the requests, as `tweetdesk users add bench` and `users token bench` make it.
        me = desk.accounts.authenticate("bench", desk.accounts.add("bench", "agent", actor="bench")[1])
        _, token = desk.accounts.create_token("bench", "benchmark", actor="bench")
        for item in inbox(desk, InboxFilters(), limit=60)["items"][::2]:  # "Mine": 30 of the most urgent
            desk.assign(item["ticket"].ticket_id, "bench", me)
        auth = {"Authorization": f"Bearer {token}"}
        client = create_app(settings, store).test_client()

        cases = [
            ("inbox API (no filter)", "/api/desk/inbox", 1),
            ("inbox API (topic)", "/api/desk/inbox?topic=Baggage+Issue", 1),
            ("inbox API (mine)", "/api/desk/inbox?assignee=me", 1),
            ("inbox page /inbox", "/inbox", 1),
            ("report API (default days)", "/api/desk/report", 1),
            ("export CSV (every ticket)", "/api/export?format=csv", held),
            ("export Parquet (every ticket)", "/api/export?format=parquet", held),
        ]
        results = []
        for name, path, per in tqdm(cases, desc="requests", unit="figure", file=sys.stderr):
            secs = np.array(timed(client, path, auth, args.repeat)) * 1000
            results.append((name, np.median(secs), np.percentile(secs, 95), per))
        store.close()

    print(f"desk benchmark: {held:,} tickets over {args.days:g} days, {backend}, {args.repeat} requests per figure")
    mix = ", ".join(f"{k} {v:,}" for k, v in stats["tickets_by_status"].items())
    print(f"store: {mix}; {assigned:,} assigned (before the benchmark agent's 30)")
    print(f"seeding: {rates['tickets/s']:,.0f} tickets/s (add_tickets), {rates['desk actions/s']:,.0f} desk actions/s")
    print(f"\n{'request':<32}{'median ms':>12}{'p95 ms':>12}{'ms/ticket':>12}")
    for name, med, p95, per in results:
        print(f"{name:<32}{med:>12,.1f}{p95:>12,.1f}" + (f"{med / per:>12.3f}" if per > 1 else f"{'':>12}"))


if __name__ == "__main__":
    main()
