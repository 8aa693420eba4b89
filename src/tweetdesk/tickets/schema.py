"""The ticket store's schema: every table, and the migrations that bring an older database up to date.

A fresh database is created from ``metadata`` at ``SCHEMA_VERSION`` directly; an existing one runs the
missing steps of ``MIGRATIONS`` in order (``TicketStore.migrate``, in one transaction, under an advisory
lock on PostgreSQL). Every table lives here, under the migrations:

* ``tickets``, ``replies`` (the outbox), ``tweets`` (every tweet taken in), ``opt_outs``, ``x_usage`` —
  the store's (``store.py``, ``outbox.py``);
* ``dead_letters`` — the dead-letter topic's records, for the dashboard's count and for SQL
  (``TicketStore.record_dead_letters``);
* ``web_sessions`` — agents' sign-ins kept on the server (``web.sessions``);
* the index ``ix_tickets_sentiment_tweet_time``, which the dashboard's sentiment chart counts ranges of
  (``reports.py``).

Until v4 the last three were created outside the migrations, with ``IF NOT EXISTS`` on first use; v4 takes
them in (keeping what such a database holds).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timezone
from enum import Enum

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from tweetdesk.records import ReplyStatus, utcnow
from tweetdesk.tickets.coltypes import UTCDateTime

# Bump when the schema changes, and add the step that upgrades N-1 -> N to MIGRATIONS below.
SCHEMA_VERSION = 10


class TicketStatus(str, Enum):
    open = "open"  # created, reply not (yet) out
    replied = "replied"  # our reply is posted (or written to the dry-run outbox)
    resolved = "resolved"  # closed by an agent
    failed = "failed"  # the reply could not be posted; ``last_error`` says why


class ReplyKind(str, Enum):
    auto = "auto"  # the templated reply the service sends once per ticket
    manual = "manual"  # an agent's reply through POST /api/replies



# ----------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------


_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", UTCDateTime, nullable=False),
)

tickets = sa.Table(
    "tickets",
    metadata,
    sa.Column("ticket_id", sa.String(16), primary_key=True),
    sa.Column("tweet_id", sa.String(32), nullable=False, unique=True),
    sa.Column("author", sa.String(64), nullable=False),
    sa.Column("author_id", sa.String(32)),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("lang", sa.String(16)),
    sa.Column("brand", sa.String(64)),
    sa.Column("rule", sa.String(256)),
    sa.Column("tweet_created_at", UTCDateTime),
    sa.Column("sentiment", sa.String(16), nullable=False),
    sa.Column("sentiment_score", sa.Float),
    sa.Column("topic", sa.String(64), nullable=False),
    sa.Column("topic_score", sa.Float),
    sa.Column("entities", _JSON, nullable=False),
    sa.Column("model_version", sa.String(64)),
    sa.Column("status", sa.String(16), nullable=False, default=TicketStatus.open.value),
    sa.Column("reply_text", sa.Text),
    sa.Column("posted_reply_id", sa.String(32)),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text),
    # Threads (conversation grouping builds on these; see issue 7).
    sa.Column("conversation_id", sa.String(32), index=True),
    sa.Column("in_reply_to_tweet_id", sa.String(32), index=True),
    sa.Column("in_reply_to_user_id", sa.String(32)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("replied_at", UTCDateTime),
    sa.Column("resolved_at", UTCDateTime),
    # v2: customer tweets in the ticket's thread, and the newest of them (the one a reply answers).
    sa.Column("message_count", sa.Integer, nullable=False, default=1, server_default="1"),
    sa.Column("last_tweet_id", sa.String(32)),
    # v3: how the customer summoned us (mention | quote | reply; None = listening only: no automatic
    # reply, X forbids it) and, when no automatic reply is queued, why (shown to agents).
    sa.Column("summoned_by", sa.String(16)),
    sa.Column("no_reply_reason", sa.Text),
    # A tombstone (X's data rules, tickets/removal.py): the content is gone, the counts stay.
    sa.Column("removed_reason", sa.Text),
    sa.Column("removed_at", UTCDateTime),
    # v10: "dm" when a direct message opened it (its text is private: never on a public page).
    sa.Column("channel", sa.String(8)),
    sa.Index("ix_tickets_status_created", "status", "created_at"),
    sa.Index("ix_tickets_topic", "topic"),
    sa.Index("ix_tickets_sentiment", "sentiment"),
    # v10: the desk's language filter and the dashboard's count by language.
    sa.Index("ix_tickets_lang", "lang"),
    sa.Index("ix_tickets_created", "created_at"),
)

replies = sa.Table(
    "replies",
    metadata,
    sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", sa.String(16), sa.ForeignKey("tickets.ticket_id"), nullable=False, index=True),
    sa.Column("in_reply_to_tweet_id", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("dedupe_key", sa.String(200), nullable=False, unique=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False, default=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("posted_id", sa.String(32)),
    sa.Column("error", sa.Text),
    sa.Column("not_before", UTCDateTime),  # a retry or a rate-limit wait: not to be tried before this
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("posted_at", UTCDateTime),
    # v2: the reply budget's order (lower first; see tweetdesk.reply.budget) and what the post cost.
    sa.Column("priority", sa.Integer, nullable=False, default=3, server_default="3"),
    sa.Column("cost_usd", sa.Float),
    # v10: a direct message (channel "dm") goes to ``to_user_id`` (the customer who DMed us) instead of replying
    # to a post; ``in_reply_to_tweet_id`` is then the DM event it answers and ``posted_id`` our DM event's id.
    sa.Column("channel", sa.String(8)),  # None: public (rows from before v10)
    sa.Column("to_user_id", sa.String(32)),
    sa.Index("ix_replies_status_due", "status", "not_before"),
    sa.Index("ix_replies_posted_at", "posted_at"),
    sa.Index("ix_replies_status_priority", "status", "priority", "created_at"),
)

# v2: every tweet taken in, ticketed or not (see tweetdesk.tickets.intake for the dispositions).
tweets_table = sa.Table(
    "tweets",
    metadata,
    sa.Column("tweet_id", sa.String(32), primary_key=True),
    sa.Column("ticket_id", sa.String(16), sa.ForeignKey("tickets.ticket_id"), index=True),
    sa.Column("disposition", sa.String(16), nullable=False),  # opened | threaded | own | capped
    sa.Column("reason", sa.Text),
    sa.Column("conversation_key", sa.String(32), nullable=False),  # conversation_id, else the root we know
    sa.Column("in_reply_to_tweet_id", sa.String(32)),
    sa.Column("author", sa.String(64), nullable=False),
    sa.Column("author_key", sa.String(80), nullable=False),  # author_id, else '@' + lower-case handle
    sa.Column("rule", sa.String(256)),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("sentiment", sa.String(16)),
    sa.Column("topic", sa.String(64)),
    sa.Column("tweet_created_at", UTCDateTime, nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    # v3: where it was read (replay | mentions | x | api: what X charged for it) and how it summoned us.
    sa.Column("source", sa.String(16)),
    sa.Column("summoned_by", sa.String(16)),
    # v10: "dm" for a direct message to us (private: never on a public page), None/"public" for a post.
    sa.Column("channel", sa.String(8)),
    sa.Index("ix_tweets_conversation", "conversation_key", "author_key"),
    sa.Index("ix_tweets_author_time", "author_key", "disposition", "tweet_created_at"),
    sa.Index("ix_tweets_rule_time", "rule", "disposition", "tweet_created_at"),
    sa.Index("ix_tweets_disposition_received", "disposition", "received_at"),
)


# v3: customers who get no automatic reply (X's rules): they opted out ("stop"), blocked us, or X refused
# a reply to them (a cooldown until ``until``). One row per author; agents can lift it.
OPT_OUT, BLOCKED, REFUSED = "opt_out", "blocked", "refused"
opt_outs = sa.Table(
    "opt_outs",
    metadata,
    sa.Column("author_key", sa.String(80), primary_key=True),  # as tweets.author_key
    sa.Column("author", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # opt_out | blocked | refused
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("tweet_id", sa.String(32)),  # the tweet or reply that caused it
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("until", UTCDateTime),  # None = until lifted
)

# v3: what X charged, per UTC day and kind (owned_read | post_read | summoned_reply | post | url_post).
x_usage = sa.Table(
    "x_usage",
    metadata,
    sa.Column("day", sa.String(10), primary_key=True),  # YYYY-MM-DD, UTC
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False, default=0),
    sa.Column("cost_usd", sa.Float, nullable=False, default=0.0),
)


# v4 (created on first use before): the dead-letter topic's records, once each.
dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
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

# v4 (created on first use before): agents' sessions, so that signing out ends one for every copy of its cookie.
web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("sid", sa.String(64), primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime),
    # v7: a session opened with the API key holds HMAC(session key, API key) here, never in the cookie (a cookie
    # holder could test key guesses against it offline); a new API key ends such sessions.
    sa.Column("key_check", sa.String(64)),
    sa.Index("ix_web_sessions_expires", "expires_at"),
)

# v4 (created on first use before): the sentiment chart counts ranges of this index instead of reading every
# ticket row (4.6 s -> 0.3 s at a million tickets on SQLite).
# --- the agents' desk (schema v5) ---------------------------------------------------------------
# Beside ``tickets``, referring to it by ``ticket_id`` without a foreign key: the desk's rows never block the
# store's own writes. Read and written by ``tweetdesk.desk``.
_DESK_JSON = sa.JSON()

users = sa.Table(
    "desk_users",
    metadata,
    sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(32), nullable=False, unique=True),  # lower case
    sa.Column("role", sa.String(16), nullable=False),  # admin | agent | viewer
    sa.Column("password_hash", sa.Text, nullable=False),  # argon2id
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("password_set_at", UTCDateTime, nullable=False),
    sa.Column("disabled_at", UTCDateTime),
    sa.Column("signed_out_at", UTCDateTime),  # v7: disabled here; sessions started before are over for good
    # v7: the password is a one-time one (set by an admin): the pages ask for a new one before anything else
    sa.Column("must_change_password", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
)

api_tokens = sa.Table(
    "desk_api_tokens",
    metadata,
    sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("label", sa.String(64), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),  # SHA-256 of a 256-bit random token
    sa.Column("prefix", sa.String(12), nullable=False),  # shown in lists, to tell tokens apart
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_used_at", UTCDateTime),
    sa.Column("revoked_at", UTCDateTime),
    sa.Column("expires_at", UTCDateTime),  # v7: None = until revoked
)

# What was removed, when, why and by which path (compliance | erase | retention), and each compliance job:
# the record of use an X audit asks for. Never the removed content itself.
compliance_log = sa.Table(
    "compliance_log",
    metadata,
    sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("posts", sa.Integer, nullable=False, default=0),
    sa.Column("tickets", sa.Integer, nullable=False, default=0),
    sa.Column("detail", _JSON, nullable=False),
)

# Every change to a ticket (and to the desk's settings: canned replies, users), who made it and when.
audit_log = sa.Table(
    "desk_audit",
    metadata,
    sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", sa.String(16)),  # None: not about one ticket (a canned reply, a user)
    sa.Column("actor", sa.String(40), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("detail", _DESK_JSON, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_desk_audit_ticket", "ticket_id", "id"),
)

assignments = sa.Table(
    "desk_assignments",
    metadata,
    sa.Column("ticket_id", sa.String(16), primary_key=True),
    sa.Column("assignee", sa.String(32), nullable=False),
    sa.Column("assigned_by", sa.String(40), nullable=False),
    sa.Column("assigned_at", UTCDateTime, nullable=False),
    sa.Index("ix_desk_assignments_assignee", "assignee"),
)

# Who has a ticket's page open (the page polls; a row older than a few polls means gone).
ticket_views = sa.Table(
    "desk_ticket_views",
    metadata,
    sa.Column("ticket_id", sa.String(16), primary_key=True),
    sa.Column("viewer", sa.String(40), primary_key=True),
    sa.Column("seen_at", UTCDateTime, nullable=False),
)

canned_replies = sa.Table(
    "desk_canned_replies",
    metadata,
    sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
    sa.Column("title", sa.String(80), nullable=False),
    sa.Column("topic", sa.String(64)),  # None: any topic
    sa.Column("sentiment", sa.String(16)),  # None: any sentiment
    sa.Column("text", sa.Text, nullable=False),  # text with {placeholders} (Jinja before v7: desk.canned)
    sa.Column("updated_by", sa.String(40), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

notes = sa.Table(
    "desk_notes",
    metadata,
    sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", sa.String(16), nullable=False, index=True),
    sa.Column("author", sa.String(40), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# An agent's topic and sentiment for a ticket's tweet: labelled examples for training and evaluation.
corrections = sa.Table(
    "desk_corrections",
    metadata,
    sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", sa.String(16), nullable=False, index=True),
    sa.Column("tweet_id", sa.String(32), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("topic", sa.String(64), nullable=False),
    sa.Column("sentiment", sa.String(16), nullable=False),
    sa.Column("model_topic", sa.String(64)),  # what the ticket said before
    sa.Column("model_sentiment", sa.String(16)),
    sa.Column("model_version", sa.String(64)),
    sa.Column("by", sa.String(40), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
)

# Who wrote an agent's reply (the outbox row itself is the store's).
reply_authors = sa.Table(
    "desk_reply_authors",
    metadata,
    sa.Column("reply_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("ticket_id", sa.String(16), nullable=False, index=True),
    sa.Column("author", sa.String(40), nullable=False),
)

DESK_TABLES = [users, api_tokens, audit_log, assignments, ticket_views, canned_replies, notes, corrections,
               reply_authors]

CHART_INDEX = sa.Index("ix_tickets_sentiment_tweet_time", tickets.c.sentiment, tickets.c.tweet_created_at)


def _migrate_v2(conn: Connection) -> None:
    """v1 → v2: threads, flood guard and reply budget (issue 7)."""
    for table, column in (
        ("tickets", "message_count INTEGER NOT NULL DEFAULT 1"),
        ("tickets", "last_tweet_id VARCHAR(32)"),
        ("replies", "priority INTEGER NOT NULL DEFAULT 3"),
        ("replies", "cost_usd FLOAT"),
    ):
        conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column}"))
    next(i for i in replies.indexes if i.name == "ix_replies_status_priority").create(conn)
    tweets_table.create(conn)
    # Every ticket's tweet opened it; live posts so far cost the plain price.
    conn.execute(
        sa.text(
            "INSERT INTO tweets (tweet_id, ticket_id, disposition, conversation_key, in_reply_to_tweet_id, author, "
            "author_key, rule, text, sentiment, topic, tweet_created_at, received_at) "
            "SELECT tweet_id, ticket_id, 'opened', COALESCE(conversation_id, tweet_id), in_reply_to_tweet_id, author, "
            "COALESCE(author_id, '@' || LOWER(author)), rule, text, sentiment, topic, "
            "COALESCE(tweet_created_at, created_at), created_at FROM tickets"
        )
    )
    conn.execute(sa.text("UPDATE tickets SET last_tweet_id = tweet_id"))
    conn.execute(sa.text("UPDATE replies SET cost_usd = 0.015 WHERE status = 'posted'"))

def _migrate_v3(conn: Connection) -> None:
    """v2 → v3: X's rules of 2026 (issue 11): who summoned us, opt-outs, what X charged."""
    have = {t: {c["name"] for c in sa.inspect(conn).get_columns(t)} for t in ("tickets", "tweets")}
    for table, column in (
        ("tickets", "summoned_by VARCHAR(16)"),
        ("tickets", "no_reply_reason TEXT"),
        ("tweets", "source VARCHAR(16)"),
        ("tweets", "summoned_by VARCHAR(16)"),
    ):
        # A v1 database gets the tweets table in step v2 from today's metadata, these columns included.
        if column.split()[0] not in have[table]:
            conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column}"))
    opt_outs.create(conn)
    x_usage.create(conn)
    # Tickets before v3 were all answered under the old rule: say so rather than guess who summoned us.
    conn.execute(sa.text("UPDATE tickets SET summoned_by = 'mention' WHERE status IN ('replied', 'failed')"))
    conn.execute(sa.text(
        "UPDATE tickets SET no_reply_reason = 'opened before X''s reply rules were applied (schema v3): check "
        "that the customer mentioned us before replying' WHERE summoned_by IS NULL"
    ))


def _migrate_v4(conn: Connection) -> None:
    """v3 → v4: the tables and the index made outside the migrations until now (issue 13). A v3 database
    that ran the service has them already (made with IF NOT EXISTS on first use), rows and all: kept."""
    for table in (dead_letters, web_sessions):
        table.create(conn, checkfirst=True)
        for ix in table.indexes:
            ix.create(conn, checkfirst=True)
    CHART_INDEX.create(conn, checkfirst=True)


# version -> function upgrading a database from version-1 to version. A fresh database is created
# from ``metadata`` at SCHEMA_VERSION directly; existing ones run the missing steps in order.
# Append only; never edit a step that has shipped.
def _migrate_v5(conn: Connection) -> None:
    """v4 → v5: the agents' desk (issue 15): its tables (only what is missing)."""
    metadata.create_all(conn, tables=DESK_TABLES, checkfirst=True)


def _migrate_v6(conn: Connection) -> None:
    """v5 → v6: the automatic replies still queued for tickets opened before X's reply rules are cancelled. v3
    flagged those tickets (``no_reply_reason``: nobody checked that their customer summoned us) but left their
    replies in the queue, and X suspends an account that auto-replies to tweets that did not summon it. An
    agent can still answer them from the desk."""
    before_rules = sa.select(tickets.c.ticket_id).where(
        tickets.c.summoned_by.is_(None), tickets.c.no_reply_reason.like("opened before X's reply rules%")
    )
    conn.execute(
        replies.update()
        .where(replies.c.status == ReplyStatus.queued.value, replies.c.kind == ReplyKind.auto.value,
               replies.c.ticket_id.in_(before_rules))
        .values(status=ReplyStatus.cancelled.value, updated_at=utcnow(),
                error="cancelled: the ticket was opened before X's reply rules (schema v3), so nobody checked that "
                      "the customer summoned us")
    )


# The v7 placeholders, fixed here: a migration must convert as it did when written, whatever desk.canned becomes.
_V7_PLACEHOLDERS = ("mention", "author", "ticket_id", "flight", "topic", "sentiment")
_JINJA_VAR = re.compile(r"\{\{-?\s*(%s)\s*-?\}\}" % "|".join(_V7_PLACEHOLDERS))
_JINJA_IF = re.compile(r"\{%-?\s*if\s+\w+\s*-?%\}.*?\{%-?\s*endif\s*-?%\}", re.S)


def from_jinja(text: str) -> str:
    """A canned reply written as Jinja (before schema v7) in placeholders: ``{{ mention }}`` -> ``{mention}``;
    an ``{% if … %}…{% endif %}`` block (an optional phrase) is dropped. What cannot be converted is left as it
    was: the desk leaves it out of its suggestions and an admin rewrites it."""
    return _JINJA_VAR.sub(lambda m: "{" + m[1] + "}", _JINJA_IF.sub("", text))


def _migrate_v7(conn: Connection) -> None:
    """v6 → v7: canned replies are text with named placeholders, no longer Jinja (issue 25: a Jinja one could
    freeze the service): ``{{ mention }}`` becomes ``{mention}`` (``from_jinja``)."""
    for row in conn.execute(sa.select(canned_replies.c.id, canned_replies.c.text)).all():
        text = from_jinja(row.text)
        if text != row.text:
            conn.execute(canned_replies.update().where(canned_replies.c.id == row.id).values(text=text))


def _migrate_v8(conn: Connection) -> None:
    """v7 → v8 (issue 25): disabling an account ends its sessions for good (``desk_users.signed_out_at``); the
    API key's check lives with the session on the server (``web_sessions.key_check``); personal tokens may
    expire (``desk_api_tokens.expires_at``); a one-time password must be changed (``must_change_password``). Sessions opened with the
    key before carry it in their cookie, so they end here: their holders sign in again."""
    if "signed_out_at" not in {c["name"] for c in sa.inspect(conn).get_columns("desk_users")}:
        kind = sa.DateTime(timezone=True).compile(dialect=conn.dialect)
        conn.execute(sa.text(f"ALTER TABLE desk_users ADD COLUMN signed_out_at {kind}"))
    if "must_change_password" not in {c["name"] for c in sa.inspect(conn).get_columns("desk_users")}:
        conn.execute(sa.text("ALTER TABLE desk_users ADD COLUMN must_change_password BOOLEAN NOT NULL DEFAULT FALSE"))
    if "expires_at" not in {c["name"] for c in sa.inspect(conn).get_columns("desk_api_tokens")}:
        kind = sa.DateTime(timezone=True).compile(dialect=conn.dialect)
        conn.execute(sa.text(f"ALTER TABLE desk_api_tokens ADD COLUMN expires_at {kind}"))
    if "key_check" not in {c["name"] for c in sa.inspect(conn).get_columns("web_sessions")}:
        conn.execute(sa.text("ALTER TABLE web_sessions ADD COLUMN key_check VARCHAR(64)"))


def _migrate_v9(conn: Connection) -> None:
    """v8 → v9: X's data rules (issue 26): ticket tombstones and the compliance log."""
    have = {c["name"] for c in sa.inspect(conn).get_columns("tickets")}
    for column in ("removed_reason TEXT", "removed_at " + ("TIMESTAMP WITH TIME ZONE" if conn.dialect.name == "postgresql"
                                                           else "DATETIME")):
        if column.split()[0] not in have:
            conn.execute(sa.text(f"ALTER TABLE tickets ADD COLUMN {column}"))
    compliance_log.create(conn, checkfirst=True)


def _migrate_v10(conn: Connection) -> None:
    """v9 → v10: direct messages (issue 29): a ticket's, a tweet's and a reply's channel and a DM's recipient;
    and (issue 30) tickets filtered and counted by language (``tickets.lang``, held since v1): its index. Tickets
    opened before keep the language their record had (the replay file's "en", or X's)."""
    for table, column in (("tickets", "channel VARCHAR(8)"), ("tweets", "channel VARCHAR(8)"), ("replies", "channel VARCHAR(8)"),
                          ("replies", "to_user_id VARCHAR(32)")):
        if column.split()[0] not in {c["name"] for c in sa.inspect(conn).get_columns(table)}:
            conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column}"))
    next(i for i in tickets.indexes if i.name == "ix_tickets_lang").create(conn, checkfirst=True)


MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    2: _migrate_v2, 3: _migrate_v3, 4: _migrate_v4, 5: _migrate_v5, 6: _migrate_v6, 7: _migrate_v7,
    8: _migrate_v8, 9: _migrate_v9, 10: _migrate_v10,
}


def current_version(conn: Connection) -> int | None:
    """The database's schema version; None for an empty database (``schema_version`` is made if absent)."""
    schema_version.create(conn, checkfirst=True)
    return conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()


def insert(conn: Connection, table: sa.Table):
    """An INSERT on the connection's dialect, which offers ``on_conflict_do_nothing`` / ``_do_update``."""
    return (sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert)(table)


def insert_new(conn: Connection, table: sa.Table, rows: list[dict], returning: tuple = (),
               conflict: list[str] | None = None) -> list:
    """INSERT ``rows`` (dicts with the same keys), skipping any that conflict (``conflict``: the unique columns, default
    any); the ``returning`` columns of those that went in.

    On PostgreSQL the rows go as one JSON document in one short statement (``INSERT … SELECT FROM ``
    ``json_rows``), the fastest way psycopg offers short of COPY, which cannot skip conflicts."""
    if not rows:
        return []
    stmt, params = insert(conn, table), rows
    if conn.dialect.name == "postgresql":
        cols = list(rows[0])
        src = json_rows(conn, rows, {c: table.c[c].type for c in cols})
        stmt, params = stmt.from_select(cols, sa.select(*(src.c[c] for c in cols))), None
    stmt = stmt.on_conflict_do_nothing(index_elements=conflict)
    if returning:
        return list(conn.execute(stmt.returning(*returning), params))
    conn.execute(stmt, params)
    return []


def json_rows(conn: Connection, rows: list[dict], types: dict[str, sa.types.TypeEngine]) -> sa.Subquery:
    """PostgreSQL: ``rows`` (dicts with the keys of ``types``) as a subquery ``v`` with those typed columns, sent as
    one JSON parameter (``json_to_recordset``). A multi-row VALUES list has a placeholder per value, which psycopg
    parses anew on every call (a batch of 500 tickets: ~10,000), and an array parameter per column is dumped
    element by element in Python (~1 ms per 500 values); ``json.dumps`` writes the whole batch in C."""
    quote = conn.dialect.identifier_preparer.quote
    spec = ", ".join(f"{quote(c)} {t.compile(dialect=conn.dialect)}" for c, t in types.items())
    payload = json.dumps(rows, default=_json_default, separators=(",", ":"))
    return (
        sa.text(f"SELECT * FROM json_to_recordset(CAST(:rows AS json)) AS r({spec})")
        .bindparams(rows=payload)
        .columns(*(sa.column(c, t) for c, t in types.items()))
        .subquery("v")
    )


def _json_default(v):
    """A row value json.dumps cannot write: a datetime as ISO 8601 with its offset (naive = UTC, as ``UTCDateTime``
    stores it), so the session's time zone never shifts it."""
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=timezone.utc)).isoformat()
    raise TypeError(f"cannot store {type(v).__name__} in a batch insert")


def one_of(conn: Connection, col, keys: list):
    """``col IN (keys)``; on PostgreSQL ``col = ANY(%s)`` with the keys as one array parameter: psycopg parses a
    statement's placeholders anew on every call once it has more than a few dozen, and for 500 keys that cost more
    than the query itself."""
    if conn.dialect.name == "postgresql":
        return col == sa.any_(sa.bindparam(None, list(keys), type_=postgresql.ARRAY(col.type)))
    return col.in_(keys)


def rows_in(conn: Connection, query, col, keys):
    """Rows of ``query`` where ``col`` is one of ``keys`` (empty and repeated keys dropped), 500 keys a statement:
    SQLite bounds a statement's variables, and an export or a batch can name thousands."""
    keys = list(dict.fromkeys(k for k in keys if k))
    for i in range(0, len(keys), 500):
        yield from conn.execute(query.where(one_of(conn, col, keys[i : i + 500])))
