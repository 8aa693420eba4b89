"""The store's side of the intake (mixed into ``TicketStore``): ``add_tickets`` reads what the store knows about a
batch (``_known``), lets ``intake.decide`` (pure) say what becomes of each tweet, and writes the decision, in one
transaction and a few set-based statements per batch (this is the hot path):

1. ``_fresh``: tweets the store does not hold yet (a re-delivery is a duplicate and changes nothing);
2. ``decide``;
3. ``_open_tickets``: the new tickets, insert-if-absent (a concurrent writer may have won some);
4. ``_queue_replies``: each new ticket's automatic reply, and the one reply of a listening-only ticket whose
   customer now asks us;
5. the ``tweets`` rows, then ``_join_threads``: later tweets counted on their ticket, its queued reply moved up;
6. opt-outs barred at once, reads priced.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tweetdesk.records import EnrichedTweet, ReplyStatus
from tweetdesk.tickets.ids import quoted_ticket_ids
from tweetdesk.tickets.intake import (
    CAPPED,
    OPENED,
    OWN,
    THREADED,
    Decision,
    Intake,
    Known,
    author_key,
    decide,
    known_conversation,
)
from tweetdesk.tickets.outbox import add_usage, bar, barred
from tweetdesk.tickets.policy import DM, no_template
from tweetdesk.tickets.rows import IngestResult, reply_row, ticket_row, tweet_row
from tweetdesk.tickets.schema import (
    OPT_OUT,
    ReplyKind,
    TicketStatus,
    UTCDateTime,
    insert_new,
    replies,
    rows_in,
    tickets,
    tweets_table,
)

ReplyText = Callable[[EnrichedTweet], "str | None"]
Priority = Callable[[EnrichedTweet], int]


def each(conn: Connection, col, keys, *cond, cols=None):
    """Rows of ``cols`` (default: ``col``) where ``col`` is one of ``keys`` (and ``cond``)."""
    return rows_in(conn, sa.select(*(cols or [col])).where(*cond), col, keys)


class StoreIntake:
    """The intake's part of ``TicketStore``: it uses the store's ``transaction()`` and ``clock``."""

    def add_tickets(
        self,
        tweets: Sequence[EnrichedTweet],
        reply_text: ReplyText | None = None,
        *,
        intake: Intake | None = None,
        priority: Priority | None = None,
    ) -> IngestResult:
        """Take in a batch of tweets in one transaction: open a ticket per new conversation and queue
        its automatic reply; attach later tweets of a conversation to its open ticket; record our
        own tweets and flood-guarded ones without a ticket (``intake.decide`` decides).

        Insert-if-absent on the tweet id: a tweet already held (ticketed or not) is reported in
        ``duplicates`` and changes nothing. ``reply_text(tweet)`` gives the reply to queue for a new
        ticket (None = no automatic reply); ``priority(tweet)`` its place in the reply budget's
        queue (lower first). ``intake`` defaults to ``Intake()``: threads, no own handles, no caps.
        """
        intake = intake or Intake()
        result = IngestResult()
        if not tweets:
            return result
        now = self.clock()
        with self.transaction(write=True) as conn:
            fresh = self._fresh(conn, tweets, result)
            if not fresh:
                return result
            order = sorted(fresh.values(), key=lambda t: t.created_at)  # stable: same time keeps batch order
            decision = decide(order, self._known(conn, order, intake, now), intake)
            rows = self._tweet_rows(decision, result, now)
            openers = [v.tweet for v in decision.of(OPENED)]
            no_reply = {v.tweet.id: v.no_reply for v in decision.of(OPENED)}  # None: an automatic reply is queued
            texts = {tw.id: (reply_text(tw) if reply_text and no_reply[tw.id] is None else None) for tw in openers}
            for tw in openers:  # a reply was due but none is written in the customer's language: say so
                if reply_text and no_reply[tw.id] is None and not texts[tw.id]:
                    no_reply[tw.id] = no_template(tw.lang)
            inserted, lost = self._open_tickets(conn, openers, rows, texts, no_reply, result, now)
            self._queue_replies(conn, decision, openers, inserted, lost, rows, texts, reply_text, priority, result, now)
            insert_new(conn, tweets_table, list(rows.values()), conflict=["tweet_id"])
            self._join_threads(conn, fresh, rows, result.threaded, intake, priority, now)
            if decision.opting_out:
                for akey, (tw, phrase) in decision.opting_out.items():
                    bar(conn, akey, tw.author, OPT_OUT, f"wrote {phrase!r} to us", tw.id, None, now)
                result.opted_out.extend(tw.id for tw, _ in decision.opting_out.values())
            self._count_reads(conn, fresh.values(), intake, now)
        return result

    @staticmethod
    def _fresh(conn: Connection, tweets: Sequence[EnrichedTweet], result: IngestResult) -> dict[str, EnrichedTweet]:
        """The batch's tweets the store does not hold yet, by id; the others go to ``result.duplicates``."""
        ids = list(dict.fromkeys(tw.id for tw in tweets))
        held = {r[0] for r in each(conn, tweets_table.c.tweet_id, ids)} | {r[0] for r in each(conn, tickets.c.tweet_id, ids)}
        fresh: dict[str, EnrichedTweet] = {}
        for tw in tweets:
            if tw.id in held or tw.id in fresh:
                result.duplicates.append(tw.id)
            else:
                fresh[tw.id] = tw
        return fresh

    @staticmethod
    def _tweet_rows(decision: Decision, result: IngestResult, now: datetime) -> dict[str, dict[str, Any]]:
        """Tweet id -> its ``tweets`` row, as decided; own and capped tweets reported in ``result``."""
        rows: dict[str, dict[str, Any]] = {}
        for v in decision.verdicts:
            rows[v.tweet.id] = {**tweet_row(v.tweet, v.conversation, v.author_key, now), "disposition": v.disposition,
                                "ticket_id": v.ticket_id, "reason": v.reason, "summoned_by": v.summoned_by}
            if v.disposition == OWN:
                result.own.append(v.tweet.id)
            elif v.disposition == CAPPED:
                result.capped.append((v.tweet.id, v.reason))
        return rows

    @staticmethod
    def _open_tickets(conn: Connection, openers: list[EnrichedTweet], rows: dict[str, dict[str, Any]],
                      texts: dict[str, str | None], no_reply: dict[str, str | None], result: IngestResult,
                      now: datetime) -> tuple[set[str], set[str]]:
        """Insert the new tickets; (tweet ids that opened one, ticket ids this batch could not open)."""
        inserted: set[str] = set()
        if openers:
            ticket_rows = [
                {**ticket_row(tw, now), "reply_text": texts[tw.id], "summoned_by": rows[tw.id]["summoned_by"],
                 "no_reply_reason": no_reply[tw.id]}
                for tw in openers
            ]
            # Insert-if-absent; RETURNING names the rows that went in (a concurrent writer on
            # PostgreSQL may have won some; SQLAlchemy gives no rowcount for these on psycopg).
            inserted = {tweet_id for _tid, tweet_id in insert_new(conn, tickets, ticket_rows,
                                                                  (tickets.c.ticket_id, tickets.c.tweet_id))}
        lost: set[str] = set()  # ticket ids this batch meant to open but could not
        for tw in openers:
            if tw.id in inserted:
                result.created.append(tw.ticket_id)
                continue
            del rows[tw.id]  # not ours to record: stored by another writer, or rejected
            if conn.execute(sa.select(tickets.c.ticket_id).where(tickets.c.tweet_id == tw.id)).scalar() is not None:
                result.duplicates.append(tw.id)  # a concurrent writer stored it first
            else:
                # The ticket ID is taken by another tweet: a hash collision (~1e-12). Never drop
                # it silently: the caller dead-letters it.
                lost.add(tw.ticket_id)
                result.rejected.append((tw.id, f"ticket id {tw.ticket_id} already belongs to another tweet"))
        for tid, row in list(rows.items()):
            if row["ticket_id"] in lost:  # a thread tweet of a rejected opener goes with it
                if row["disposition"] == OWN:
                    row["ticket_id"] = None
                else:
                    del rows[tid]
                    result.rejected.append((tid, f"its thread's ticket {row['ticket_id']} could not be opened"))
            elif row["disposition"] == THREADED:
                result.threaded.append(tid)
        return inserted, lost

    @staticmethod
    def _queue_replies(conn: Connection, decision: Decision, openers: list[EnrichedTweet], inserted: set[str],
                       lost: set[str], rows: dict[str, dict[str, Any]], texts: dict[str, str | None],
                       reply_text: ReplyText | None, priority: Priority | None, result: IngestResult,
                       now: datetime) -> None:
        """Each new ticket's automatic reply, and a listening-only ticket's one reply when its customer now
        asks us (mentions us in the thread)."""
        reply_rows = [
            {**reply_row(tw.ticket_id, tw.id, texts[tw.id], ReplyKind.auto, f"auto:{tw.ticket_id}", now,
                         dm_to=tw.author_id if tw.channel == DM else None),
             "priority": priority(tw) if priority else 3}
            for tw in openers
            if tw.id in inserted and texts[tw.id]
        ]
        for ticket, tw in decision.late_summons.items():
            if ticket in lost or rows.get(tw.id, {}).get("ticket_id") != ticket:
                continue
            text = reply_text(tw.model_copy(update={"ticket_id": ticket})) if reply_text else None
            if not text:
                continue
            reply_rows.append({**reply_row(ticket, tw.id, text, ReplyKind.auto, f"auto:{ticket}", now),
                               "priority": priority(tw) if priority else 3})
            conn.execute(
                tickets.update().where(tickets.c.ticket_id == ticket)
                .values(reply_text=text, summoned_by=rows[tw.id]["summoned_by"], no_reply_reason=None, updated_at=now)
            )
        if reply_rows:
            ids = insert_new(conn, replies, reply_rows, (replies.c.id,), conflict=["dedupe_key"])
            result.replies.extend(sorted(r[0] for r in ids))

    @staticmethod
    def _join_threads(conn: Connection, fresh: dict[str, EnrichedTweet], rows: dict[str, dict[str, Any]],
                      threaded: list[str], intake: Intake, priority: Priority | None, now: datetime) -> None:
        """Thread tweets: count them on their ticket; a reply still queued answers the newest tweet that
        summoned us and moves up if the thread got more urgent ("update: now it's cancelled")."""
        joined: dict[str, dict[str, Any]] = {}
        for tid in threaded:
            tw, row = fresh[tid], rows[tid]
            j = joined.setdefault(row["ticket_id"], {"tid": row["ticket_id"], "n": 0, "last": tid, "p": 99,
                                                     "at": tw.created_at, "answer": None})
            j["n"] += 1
            j["last"] = tid
            # X lets a reply answer only a tweet that summoned us; a public reply never answers a DM.
            if (row["summoned_by"] or not intake.summoned_only) and row["channel"] != DM:
                j["answer"] = tid
            j["p"] = min(j["p"], priority(tw) if priority else 99)
            j["at"] = max(j["at"], tw.created_at)
        if not joined:
            return
        # A customer who writes again *after* our reply went out is waiting on us again: the ticket
        # goes back to open (the agents' queue). No second automatic reply: an agent answers. A tweet
        # written before our reply (the rest of the first thread, or a late catch-up) changes nothing.
        follow_up = sa.and_(
            tickets.c.status == TicketStatus.replied.value,
            tickets.c.replied_at < sa.bindparam("at", type_=UTCDateTime),
        )
        conn.execute(
            tickets.update()
            .where(tickets.c.ticket_id == sa.bindparam("tid"))
            .values(
                message_count=tickets.c.message_count + sa.bindparam("n"),
                last_tweet_id=sa.bindparam("last"),
                status=sa.case((follow_up, TicketStatus.open.value), else_=tickets.c.status),
                updated_at=now,
            ),
            [{"tid": j["tid"], "n": j["n"], "last": j["last"], "at": j["at"]} for j in joined.values()],
        )
        p = sa.bindparam("p")
        answer = sa.bindparam("answer", type_=sa.String)
        conn.execute(
            replies.update()
            .where(
                replies.c.dedupe_key == sa.bindparam("key"),
                replies.c.status == ReplyStatus.queued.value,
            )
            .values(
                in_reply_to_tweet_id=sa.func.coalesce(answer, replies.c.in_reply_to_tweet_id),
                priority=sa.case((replies.c.priority > p, p), else_=replies.c.priority),
                updated_at=now,
            ),
            [{"key": f"auto:{j['tid']}", "answer": j["answer"], "p": j["p"]} for j in joined.values()],
        )

    def _known(self, conn: Connection, order: list[EnrichedTweet], intake: Intake, now: datetime) -> Known:
        """What the store holds that bears on these tweets (``intake.Known``)."""
        T = tweets_table
        k = Known()
        # Parents we hold: a customer tweet (its conversation) or one of our posted replies (its ticket).
        parents = [tw.in_reply_to_tweet_id for tw in order]
        for tid, conv, ticket in each(conn, T.c.tweet_id, parents, cols=[T.c.tweet_id, T.c.conversation_key, T.c.ticket_id]):
            k.parent_conv[tid] = conv
            if ticket:
                k.parent_ticket[tid] = ticket
        ours = (
            sa.select(replies.c.posted_id, replies.c.ticket_id, sa.func.coalesce(tickets.c.conversation_id, tickets.c.tweet_id))
            .join(tickets, tickets.c.ticket_id == replies.c.ticket_id)
        )
        for pid, ticket, conv in rows_in(conn, ours, replies.c.posted_id, parents):
            k.parent_ticket[pid] = ticket
            k.parent_conv.setdefault(pid, conv)
        # Tweets of ours these refer to (replied to or quoted): our posted replies and own tweets we saw.
        refs = parents + [r.id for tw in order for r in tw.referenced_tweets]
        k.our_ids = {r[0] for r in each(conn, replies.c.posted_id, refs)}
        k.our_ids |= {r[0] for r in each(conn, T.c.tweet_id, refs, T.c.disposition == OWN)}
        # Authors who get no automatic reply now: opted out, blocked us, or X refused us lately.
        k.barred = barred(conn, [author_key(tw.author, tw.author_id) for tw in order], now)
        # Open tickets of these conversations, per customer (the latest wins).
        convs = [known_conversation(tw, k.parent_conv) for tw in order]
        for i in range(0, len(convs), 500):
            q = (
                sa.select(T.c.conversation_key, T.c.author_key, T.c.ticket_id, tickets.c.reply_text.is_not(None))
                .join(tickets, tickets.c.ticket_id == T.c.ticket_id)
                .where(
                    T.c.conversation_key.in_(list(dict.fromkeys(convs[i : i + 500]))),
                    T.c.disposition.in_([OPENED, THREADED]),
                    tickets.c.status != TicketStatus.resolved.value,
                )
                .order_by(tickets.c.created_at, tickets.c.ticket_id)
            )
            for conv, akey, ticket, has_reply in conn.execute(q):
                k.thread[(conv, akey)] = ticket
                k.conv_ticket[conv] = ticket
                k.answered[ticket] = bool(has_reply)
        self._known_cases(conn, order, k)
        # The flood guard's counts so far, within the window before the earliest tweet.
        since = order[0].created_at - intake.window
        if intake.per_author is not None:
            akeys = [author_key(tw.author, tw.author_id) for tw in order]
            for akey, at in each(conn, T.c.author_key, akeys, T.c.disposition == OPENED, T.c.tweet_created_at > since,
                                  cols=[T.c.author_key, T.c.tweet_created_at]):
                k.flood.append(("author", akey, at))
        if intake.per_rule is not None:
            for rule, at in each(conn, T.c.rule, [tw.rule for tw in order], T.c.disposition == OPENED,
                                  T.c.tweet_created_at > since, cols=[T.c.rule, T.c.tweet_created_at]):
                k.flood.append(("rule", rule, at))
        return k

    @staticmethod
    def _known_cases(conn: Connection, order: list[EnrichedTweet], k: Known) -> None:
        """For the batch's direct messages: each author's newest open ticket, and who owns the open tickets
        their DMs quote (``Known.open_by_author``, ``Known.ticket_owner``)."""
        dms = [tw for tw in order if tw.channel == DM]
        if not dms:
            return
        T = tweets_table
        still_open = sa.and_(tickets.c.status != TicketStatus.resolved.value, tickets.c.removed_at.is_(None))
        q = (sa.select(T.c.author_key, T.c.ticket_id).join(tickets, tickets.c.ticket_id == T.c.ticket_id)
             .where(T.c.disposition.in_([OPENED, THREADED]), still_open)
             .order_by(tickets.c.created_at, tickets.c.ticket_id))
        for akey, ticket in rows_in(conn, q, T.c.author_key, [author_key(tw.author, tw.author_id) for tw in dms]):
            k.open_by_author[akey] = ticket  # the newest wins
        quoted = [t for tw in dms for t in quoted_ticket_ids(tw.text)]
        q = sa.select(tickets.c.ticket_id, tickets.c.author, tickets.c.author_id).where(still_open)
        for ticket, author, author_id in rows_in(conn, q, tickets.c.ticket_id, quoted):
            k.ticket_owner[ticket] = author_key(author, author_id)

    def _count_reads(self, conn: Connection, tweets: Iterable[EnrichedTweet], intake: Intake, now: datetime) -> None:
        if intake.prices is None:
            return
        usage: dict[str, tuple[int, float]] = {}
        for tw in tweets:
            priced = intake.prices.read(tw.source)
            if priced:
                n, usd = usage.get(priced[0], (0, 0.0))
                usage[priced[0]] = (n + 1, usd + priced[1])
        add_usage(conn, now, usage)
