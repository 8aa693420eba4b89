"""Benchmark: an outage burst through the reply budget — 10,000 tweets in 15 minutes, 100 posts per 15 min.

The burst is drawn from the airline data set (``../shared/data/airline_tweets.csv``; its real texts, authors,
sentiment labels and ``negativereason`` → topic), so the mix is the real one: ~63 % negative, many of them
delays, cancellations and lost bags, some customers tweeting again and again (their later tweets become
threads half the time, the rest meet the flood guard). Arrivals follow an outage curve (Beta(1.5, 3) over
the 15 minutes: a steep rise, a long tail).

Everything runs through the real code: ``ReplyConsumer.process`` (templates, intake — threads, flood guard —
and the store transaction, then the poster's immediate drain), ``Poster.step`` with the ``ReplyBudget``, on a
real SQLite ticket store, posting with tweepy to the X API v2 stand-in (``tests/fixtures/xapi.py``, over
HTTP). Only the clock is fake: a day of traffic takes a minute or two.

Printed: tweets, tickets, threaded and capped tweets; replies posted in the first 15 minutes and the most in
any 15-minute window (both ≤ the limit); the share of urgent negative tickets answered within 15 minutes of
the tweet (and the most any scheduler could reach with that many posts); median and p95 wait per priority
class; spend. Asserts no reply contains a URL and the limit held. ``--baseline`` runs the same burst with
FIFO order and no pacing, for comparison. Then what X charges for it by source (prices from the settings,
``TWEETDESK_X_PRICE_*``): the tweets read through our mentions timeline (owned reads, $0.001) or the filtered
stream (post reads, $0.005), and the replies as summoned replies ($0.01) or other posts ($0.015).

    .venv/bin/python benchmarks/budget.py [--n 10000] [--burst-minutes 15] [--hours 30] [--seed 7] [--baseline]

Measured here (2 cores, SQLite, seed 7; 136 s wall for 20 simulated hours): 10,000 tweets → 7,981 tickets,
1,905 thread tweets, 113 held back by the flood guard (38 authors); 100 replies in the first 15 minutes and
never more than 100 in any 15-minute window; 108 of 3,858 urgent tickets (2.8 %) answered within 15 minutes
(FIFO: 2.6 %) — with 100 posts per 15 minutes the first half hour can answer ~200, and 98 % of those posts
went to urgent tickets (FIFO: 50 %); median / p95 wait: urgent 4.7 h / 9.0 h, negative 11.1 h / 12.4 h,
neutral 14.7 h / 16.4 h, positive 18.3 h / 19.6 h (FIFO: every class ≈ 9–11 h / 18–19 h); spend $79.78 for
7,978 posts, each a summoned reply ($0.01), none with a URL. What X charges (2026-11-28, same run): reading the
10,000 tweets $10.00 through the mentions timeline vs $50.00 through the filtered stream (0.33 % of the 3M
monthly read cap); the 7,978 replies $79.78 as summoned replies vs $119.67 as other posts ($1,595.60 had they
carried a URL); in all $89.78 with the mentions source vs $169.67 with the filtered stream. (Between issue 11
and 2026-11-28 this benchmark's account handled none of these tweets and posted nothing: ``our_handles``.)
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.fixtures.xapi: the X API stand-in

import sqlalchemy as sa  # noqa: E402

from tests.fixtures.xapi import XApiStandIn  # noqa: E402
from tweetdesk.config import DEFAULT_DATA, Settings  # noqa: E402
from tweetdesk.models.labels import map_negativereason  # noqa: E402
from tweetdesk.nlp.entities import flight_numbers  # noqa: E402  (the flight-number rule, regex only)
from tweetdesk.records import EnrichedTweet  # noqa: E402
from tweetdesk.reply.consumer import ReplyConsumer  # noqa: E402
from tweetdesk.reply.poster import Poster  # noqa: E402
from tweetdesk.reply.templates import ReplyTemplates, find_urls  # noqa: E402
from tweetdesk.tickets.ids import ticket_id_for  # noqa: E402
from tweetdesk.tickets.priority import PRIORITY_CLASSES, URGENT  # noqa: E402
from tweetdesk.tickets.store import TicketStore, replies, tickets, tweets_table  # noqa: E402

T0 = datetime(2026, 11, 24, 18, 0, tzinfo=timezone.utc)


class FakeClock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def dt(self) -> datetime:
        return datetime.fromtimestamp(self.t, timezone.utc)


def burst(csv_path: Path, n: int, seconds: float, seed: int) -> list[EnrichedTweet]:
    rng = random.Random(seed)
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    rows = rng.sample(rows, min(n, len(rows))) if n <= len(rows) else [rng.choice(rows) for _ in range(n)]
    offsets = sorted(rng.betavariate(1.5, 3.0) * seconds for _ in rows)
    out: list[EnrichedTweet] = []
    first: dict[str, str] = {}  # author -> their first tweet id in the burst
    last: dict[str, str] = {}
    for i, (row, off) in enumerate(zip(rows, offsets)):
        tid = str(1_993_000_000_000_000_000 + i * 1000)
        # a few 2015 names are not X user names any more ("simuLate Flightthis"): the same author, made one
        author = re.sub(r"[^A-Za-z0-9_]", "_", row["name"])[:15] or f"user{i}"
        sentiment = row["airline_sentiment"]
        topic = (map_negativereason(row["negativereason"]) if sentiment == "negative" else None) or "Customer Experience"
        conv = parent = None
        if author in first and rng.random() < 0.5:  # a follow-up in the customer's thread
            conv, parent = first[author], last[author]
        first.setdefault(author, tid)
        last[author] = tid
        text = row["text"]
        out.append(
            EnrichedTweet(
                id=tid,
                text=text,
                author=author,
                created_at=T0 + timedelta(seconds=off),
                brand=row["airline"].lower().replace(" ", ""),
                conversation_id=conv,
                in_reply_to_tweet_id=parent,
                clean_text=text.lower(),
                sentiment=sentiment,
                sentiment_score=float(row["airline_sentiment_confidence"] or 1.0),
                topic=topic,
                topic_score=1.0,
                entities=flight_numbers(text),
                ticket_id=ticket_id_for(tid, topic, key=b"bench"),
                model_version="gold-labels",
            )
        )
    return out


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def run(tweets: list[EnrichedTweet], hours: float, work: Path, *, fifo: bool, desc: str) -> dict:
    xapi = XApiStandIn()
    # http.server writes headers and body separately: with Nagle on, each post waits out a delayed ACK
    # (~40 ms). Real X does not; switch it off so the benchmark measures the scheduler, not TCP.
    xapi.server.RequestHandlerClass.disable_nagle_algorithm = True
    xapi.start()
    clock = FakeClock(T0.timestamp())
    settings = Settings(
        work_dir=work,
        database_url=f"sqlite:///{work / 'tickets.db'}",
        x_api_base=xapi.base_url,
        x_consumer_key="ck",
        x_consumer_secret="cs",
        x_access_token="at",
        x_access_token_secret="ats",
        # the data set's tweets write to these six accounts: the burst is every one of them summoning "us" (X lets
        # an automated account reply only to a tweet that mentioned it)
        our_handles=["united", "AmericanAir", "USAirways", "SouthwestAir", "JetBlue", "VirginAmerica"],
        **({"reply_burst": 100} if fifo else {}),
    )
    store = TicketStore(settings.store.db_url, clock=clock.dt)
    poster = Poster(settings, store, clock=clock)
    consumer = ReplyConsumer(settings, store, poster, ReplyTemplates.load())
    if fifo:
        consumer.priority = lambda tw: 3  # everyone in one class: oldest first
    values = [(tw.model_dump_json().encode(), {"partition": 0, "offset": i}) for i, tw in enumerate(tweets)]
    arrivals = [tw.created_at.timestamp() for tw in tweets]
    end = clock.t + hours * 3600
    i, wall = 0, time.perf_counter()
    with tqdm(total=int(hours * 3600), desc=desc, unit="sim s", leave=False) as bar:
        while clock.t < end:
            # The consumer reads what arrived, in batches of at most one simulated second.
            j = i
            while j < len(values) and arrivals[j] <= clock.t:
                j += 1
            if j > i:
                for k in range(i, j, 500):
                    consumer.process(values[k : min(j, k + 500)])
                i = j
            wait = poster.step()
            # One-second ticks while tweets arrive; afterwards, straight to when the budget frees a slot.
            step = 1.0 if i < len(values) else max(wait, 0.25)
            bar.update(int(clock.t + step) - int(clock.t))
            clock.t += step
            if i >= len(values) and store.queue_stats()["queued"] == 0:
                break
    wall = time.perf_counter() - wall

    # --- figures from the store --------------------------------------------------------------
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(tickets.c.ticket_id, tickets.c.tweet_created_at, tickets.c.sentiment, replies.c.priority,
                      replies.c.status, replies.c.posted_at, replies.c.text)
            .join(replies, replies.c.ticket_id == tickets.c.ticket_id)
            .where(replies.c.kind == "auto")
        ).all()
        thread_rows = conn.execute(
            sa.select(tweets_table.c.tweet_id, tweets_table.c.ticket_id, tweets_table.c.tweet_created_at).where(
                tweets_table.c.disposition.in_(["opened", "threaded"])
            )
        ).all()
    # A ticket's class: the most urgent of its customer's tweets that came before its reply went out (what
    # the scheduler acts on; the same rule for the FIFO run, which stores no classes).
    posted_at = {r.ticket_id: r.posted_at for r in rows}
    ticket_class: dict[str, int] = {}
    for tid, ticket, at in thread_rows:
        if posted_at.get(ticket) is None or at <= posted_at[ticket]:
            ticket_class[ticket] = min(ticket_class.get(ticket, 9), _class_of[tid])
    intake = store.intake_stats()
    spend = store.spend_since(T0 - timedelta(days=1))
    posted = sorted(r.posted_at for r in rows if r.status == "posted")
    window = timedelta(seconds=settings.reply_window_seconds)
    max_window = 0
    lo = 0
    for hi in range(len(posted)):
        while posted[hi] - posted[lo] >= window:
            lo += 1
        max_window = max(max_window, hi - lo + 1)
    first_15 = sum(1 for t in posted if t < T0 + window)
    waits: dict[int, list[float]] = defaultdict(list)
    unanswered: Counter = Counter()
    urgent_total = urgent_fast = 0
    classes: Counter = Counter()
    for r in rows:
        cls = ticket_class[r.ticket_id]
        classes[cls] += 1
        if r.status == "posted":
            w = (r.posted_at - r.tweet_created_at).total_seconds()
            waits[cls].append(w)
        else:
            unanswered[cls] += 1
        if cls == URGENT:
            urgent_total += 1
            urgent_fast += r.status == "posted" and (r.posted_at - r.tweet_created_at).total_seconds() <= 900
    texts = [p["text"] for p in xapi.posts]
    assert not any(find_urls(t) for t in texts), "a reply contained a URL"
    assert len(texts) == len(posted), (len(texts), len(posted))
    assert max_window <= settings.reply_limit, f"{max_window} posts in one window"
    posts_first_30 = [r for r in rows if r.status == "posted" and r.posted_at < T0 + 2 * window]
    store.close()
    xapi.stop()
    return {
        "wall_s": wall,
        "sim_hours": (clock.t - T0.timestamp()) / 3600,
        "tweets": len(tweets),
        "intake": intake["by_disposition"],
        "flood_reasons": len(intake["flood_reasons"]),
        "tickets": len(rows),
        "classes": classes,
        "posted": len(posted),
        "first_15": first_15,
        "max_window": max_window,
        "limit": settings.reply_limit,
        "urgent_total": urgent_total,
        "urgent_fast": urgent_fast,
        "urgent_share_first_30": (
            sum(1 for r in posts_first_30 if ticket_class[r.ticket_id] == URGENT) / len(posts_first_30)
            if posts_first_30 else 0.0
        ),
        "waits": waits,
        "unanswered": unanswered,
        "spend": spend,
        "url_posts": 0,
    }


_class_of: dict[str, int] = {}  # tweet id -> priority class


def fmt_dur(s: float | None) -> str:
    if s is None:
        return "—"
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def report(name: str, r: dict) -> None:
    it = r["intake"]
    print(f"\n== {name} ==  ({r['wall_s']:.0f} s wall for {r['sim_hours']:.1f} simulated hours)")
    print(f"tweets in the burst       {r['tweets']:,}  → tickets {it['opened']:,}, joined a thread {it['threaded']:,}, "
          f"flood guard held back {it['capped']:,} ({r['flood_reasons']} authors), own 0")
    print("tickets by class          " + ", ".join(f"{PRIORITY_CLASSES[c]} {n:,}" for c, n in sorted(r["classes"].items())))
    print(f"replies posted            {r['posted']:,} (first 15 min: {r['first_15']}; most in any 15-min window: "
          f"{r['max_window']} ≤ limit {r['limit']})")
    share = r["urgent_fast"] / r["urgent_total"] if r["urgent_total"] else 0.0
    print(f"urgent negative answered  within 15 min of the tweet: {r['urgent_fast']} of {r['urgent_total']:,} "
          f"({share:.1%}); posts in the first 30 min that went to urgent tickets: {r['urgent_share_first_30']:.0%}")
    print(f"{'class':<10} {'tickets':>8} {'answered':>9} {'median wait':>12} {'p95 wait':>10} {'unanswered':>11}")
    for c in sorted(r["classes"]):
        w = r["waits"].get(c, [])
        print(f"{PRIORITY_CLASSES[c]:<10} {r['classes'][c]:>8,} {len(w):>9,} {fmt_dur(statistics.median(w) if w else None):>12} "
              f"{fmt_dur(pct(w, 0.95)):>10} {r['unanswered'][c]:>11,}")
    each = r["spend"] / r["posted"] if r["posted"] else 0.0  # summoned replies: X's price for answering a mention
    print(f"spend                     ${r['spend']:,.2f} ({r['posted']:,} posts × ${each:.3f}; posts with a URL: 0)")


def x_costs(settings: Settings, tweets: int, posted: int) -> None:
    """What X charges for the burst by source (pay-per-use prices from the settings): reading the customers'
    tweets through our mentions timeline (owned reads) or the filtered stream (post reads), and the replies
    sent as summoned replies (every tweet read from our mentions summoned us) or as other posts."""
    owned, stream = tweets * settings.x_price_owned_read, tweets * settings.x_price_post_read
    cap = settings.x_monthly_read_cap
    print(f"\n== what X charges ({tweets:,} customer tweets, {posted:,} replies) ==")
    print(f"read via mentions         ${owned:,.2f} ({tweets:,} owned reads × ${settings.x_price_owned_read:g})")
    print(f"read via filtered stream  ${stream:,.2f} ({tweets:,} post reads × ${settings.x_price_post_read:g}; "
          f"{stream / owned if owned else 0:.0f}× the mentions timeline)")
    print(f"monthly read cap          {tweets / cap:.2%} of {cap:,} posts")
    print(f"replies as summoned       ${posted * settings.x_price_summoned_reply:,.2f} "
          f"({posted:,} × ${settings.x_price_summoned_reply:g}: each answers a tweet that mentioned or quoted us)")
    print(f"replies as other posts    ${posted * settings.x_price_post:,.2f} ({posted:,} × ${settings.x_price_post:g}); "
          f"with a URL it would be ${posted * settings.x_price_url_post:,.2f} (none has one)")
    print(f"total, mentions source    ${owned + posted * settings.x_price_summoned_reply:,.2f}   "
          f"filtered stream + other posts ${stream + posted * settings.x_price_post:,.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--n", type=int, default=10_000, help="tweets in the burst")
    ap.add_argument("--burst-minutes", type=float, default=15.0)
    ap.add_argument("--hours", type=float, default=30.0, help="simulated time to run (the queue drains by then)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--baseline", action="store_true", help="also run FIFO order without pacing, for comparison")
    ap.add_argument("--dm-cases", type=int, default=1000, help="cases to finish in public vs by DM (0: skip)")
    ap.add_argument("--dm-only", action="store_true", help="only the DM comparison (benchmarks/dm_cases.py)")
    args = ap.parse_args()
    if args.dm_only:
        from benchmarks.dm_cases import report as dm_report

        return dm_report(args.dm_cases, FakeClock(T0.timestamp()))
    if not args.data.exists():
        sys.exit(f"budget: error: data set not found at {args.data} (--data PATH)")
    tweets = burst(args.data, args.n, args.burst_minutes * 60, args.seed)
    from tweetdesk.tickets.priority import priority_of

    _class_of.update({tw.id: priority_of(tw) for tw in tweets})
    with tempfile.TemporaryDirectory(prefix="tweetdesk-budget-") as tmp:
        res = run(tweets, args.hours, Path(tmp) / "budget", fifo=False, desc="budget scheduler")
        report("reply budget (priority + pacing)", res)
        x_costs(Settings(), res["tweets"], res["posted"])
        if args.baseline:
            base = run(tweets, args.hours, Path(tmp) / "fifo", fifo=True, desc="FIFO baseline")
            report("baseline: FIFO, no pacing (same limit)", base)
    if args.dm_cases:
        from benchmarks.dm_cases import report as dm_report

        dm_report(args.dm_cases, FakeClock(T0.timestamp() + 7 * 86400))


if __name__ == "__main__":
    main()
