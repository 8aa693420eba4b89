"""The cost of support cases finished by DM against public replies only (issue 29), through the real code.

Each case: a customer's complaint mentions us (read from our mentions timeline) and gets the automatic reply;
then the customer sends the private detail (a booking code) and an agent answers:

* **public only**: the detail comes as a public reply to ours (another mention read) and the agent answers in
  public (a summoned reply) — the booking code is then public on X;
* **with DMs**: the automatic reply invites a DM; the detail comes by DM (a DM event read) and the agent
  answers by DM with the privacy link (a DM sent).

Both run through ``ReplyConsumer.process`` (intake, templates, the store), ``Desk.send_reply`` and the
``Poster`` posting live to the X API stand-in (which enforces X's DM rule and caps), on a fake clock; the
costs are read back from the store's ``x_usage`` (X's pay-per-use prices from the settings). Also printed:
how long X's send limits make the agents' answers take to go out (posts 100 per 15 min; DMs 15 per 15 min).

    .venv/bin/python benchmarks/budget.py --dm-cases 1000     (also run by budget.py's default)
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

from tqdm import tqdm

from tests.fixtures.xapi import ACCOUNT_HANDLE, XApiStandIn
from tweetdesk.config import Settings
from tweetdesk.desk.accounts import bootstrap_admin
from tweetdesk.desk.core import Desk
from tweetdesk.records import EnrichedTweet
from tweetdesk.reply.consumer import ReplyConsumer
from tweetdesk.reply.poster import Poster
from tweetdesk.reply.templates import ReplyTemplates
from tweetdesk.tickets.ids import ticket_id_for
from tweetdesk.tickets.store import TicketStore


def _enriched(tweet_id: str, text: str, author: str, author_id: str, at, **kw) -> EnrichedTweet:
    return EnrichedTweet(id=tweet_id, text=text, author=author, author_id=author_id, created_at=at, clean_text=text,
                         sentiment="negative", sentiment_score=0.9, topic="Reservation Issue", topic_score=0.9,
                         ticket_id=ticket_id_for(tweet_id, "Reservation Issue", key=b"bench"), model_version="bench",
                         brand=ACCOUNT_HANDLE, **kw)


def run_cases(n: int, work: Path, *, with_dms: bool, clock) -> dict:
    xapi = XApiStandIn(clock=clock)
    xapi.server.RequestHandlerClass.disable_nagle_algorithm = True  # see budget.py
    xapi.start()
    settings = Settings(work_dir=work, database_url=f"sqlite:///{work / 'tickets.db'}", x_api_base=xapi.base_url,
                        x_consumer_key="ck", x_consumer_secret="cs", x_access_token="at", x_access_token_secret="ats",
                        our_handles=[ACCOUNT_HANDLE], flood_per_author=100,
                        privacy_policy_url="https://example.com/privacy" if with_dms else None)
    store = TicketStore(settings.store.db_url, clock=clock.dt)
    poster = Poster(settings, store, clock=clock)
    consumer = ReplyConsumer(settings, store, poster, ReplyTemplates.from_settings(settings))
    desk = Desk(store, settings)
    admin = bootstrap_admin()
    start = clock.t

    def drain() -> float:
        """Post until the queue is empty, moving the fake clock as the budget asks; the seconds it took."""
        t0 = clock.t
        while store.queue_stats()["queued"]:
            clock.t += max(poster.step(), 0.25)
        return clock.t - t0

    customers = [(f"cust{i}", xapi.user_id(f"cust{i}")) for i in range(n)]
    batch = []
    for i, (name, uid) in enumerate(customers):
        tid = xapi.add_tweet(f"@{ACCOUNT_HANDLE} my reservation is gone from the app", author=name)
        batch.append((_enriched(tid, f"@{ACCOUNT_HANDLE} my reservation is gone from the app", name, uid, clock.dt(),
                                source="mentions", conversation_id=tid).model_dump_json().encode(), {"offset": i}))
    consumer.process(batch)
    drain()
    follow, answers = [], []
    for i, (name, uid) in enumerate(tqdm(customers, desc="dm cases" if with_dms else "public cases", leave=False)):
        opened = store.get_ticket_by_tweet(_id_of(batch[i]))
        detail = f"about {opened.ticket_id}: my booking code is QX{i:04d}"
        if with_dms:
            eid = xapi.add_dm(detail, author=name, author_id=uid)
            follow.append((_enriched(eid, detail, name, uid, clock.dt(), source="dms", channel="dm",
                                     dm_conversation_id=f"{uid}-1", mentions=[]).model_dump_json().encode(), {}))
        else:
            posted = store.replies_for(opened.ticket_id)[0].posted_id
            text = f"@{ACCOUNT_HANDLE} {detail}"
            tid = xapi.add_tweet(text, author=name, reply_to=posted)
            follow.append((_enriched(tid, text, name, uid, clock.dt(), source="mentions",
                                     conversation_id=opened.conversation_id or opened.tweet_id,
                                     in_reply_to_tweet_id=posted).model_dump_json().encode(), {}))
        answers.append(opened.ticket_id)
    consumer.process(follow)
    for tid in answers:
        desk.send_reply(tid, "Thanks, your booking is restored." if with_dms else "@{} your booking is restored.".format(
            store.get_ticket(tid).author), admin, channel="dm" if with_dms else "public")
    took = drain()
    usage = store.usage(clock.dt())["month"]
    out = {"usage": usage, "total": sum(v["cost_usd"] for v in usage.values()), "answers_took_s": took,
           "sent_dms": len(xapi.dm_sends()), "posts": len(xapi.posts), "elapsed_s": clock.t - start}
    store.close()
    xapi.stop()
    return out


def _id_of(value) -> str:
    return EnrichedTweet.model_validate_json(value[0]).id


def report(n: int, clock) -> None:
    with tempfile.TemporaryDirectory(prefix="tweetdesk-dm-") as tmp:
        public = run_cases(n, Path(tmp) / "public", with_dms=False, clock=clock)
        clock.t += timedelta(days=2).total_seconds()
        dms = run_cases(n, Path(tmp) / "dms", with_dms=True, clock=clock)
    print(f"\n== {n:,} cases finished in public vs by DM (what X charges, from the store's x_usage) ==")
    for name, r in (("public replies only", public), ("with DMs", dms)):
        kinds = ", ".join(f"{k} {int(v['count']):,} ${v['cost_usd']:,.2f}" for k, v in sorted(r["usage"].items()))
        print(f"{name:<20} ${r['total']:,.2f} (${r['total'] / n:.4f} a case): {kinds}")
        print(f"{'':<20} the agents' {n:,} answers went out over {r['answers_took_s'] / 3600:.1f} h of X's limits")
    print(f"DMs cost ${dms['total'] - public['total']:+,.2f} more for {n:,} cases "
          f"({(dms['total'] / public['total'] - 1) if public['total'] else 0:+.0%}), and keep {n:,} booking codes off "
          "the public timeline")
