"""The desk's tables, created by the ticket store's schema migration 5 (``create_desk_tables``).

They sit beside ``tickets`` and refer to it by ``ticket_id`` without a foreign key, so that this module owns
its tables and the store's own schema is untouched: one self-contained step that creates them (and a fresh
database gets them in the same transaction as the rest of the schema).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tweetdesk.tickets.coltypes import UTCDateTime

_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON()

desk_metadata = sa.MetaData()

users = sa.Table(
    "desk_users",
    desk_metadata,
    sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(32), nullable=False, unique=True),  # lower case
    sa.Column("role", sa.String(16), nullable=False),  # admin | agent | viewer
    sa.Column("password_hash", sa.Text, nullable=False),  # argon2id
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("password_set_at", UTCDateTime, nullable=False),
    sa.Column("disabled_at", UTCDateTime),
)

api_tokens = sa.Table(
    "desk_api_tokens",
    desk_metadata,
    sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("label", sa.String(64), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),  # SHA-256 of a 256-bit random token
    sa.Column("prefix", sa.String(12), nullable=False),  # shown in lists, to tell tokens apart
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_used_at", UTCDateTime),
    sa.Column("revoked_at", UTCDateTime),
)

# Every change to a ticket (and to the desk's settings: canned replies, users), who made it and when.
audit_log = sa.Table(
    "desk_audit",
    desk_metadata,
    sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", sa.String(16)),  # None: not about one ticket (a canned reply, a user)
    sa.Column("actor", sa.String(40), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("detail", _JSON, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_desk_audit_ticket", "ticket_id", "id"),
)

assignments = sa.Table(
    "desk_assignments",
    desk_metadata,
    sa.Column("ticket_id", sa.String(16), primary_key=True),
    sa.Column("assignee", sa.String(32), nullable=False),
    sa.Column("assigned_by", sa.String(40), nullable=False),
    sa.Column("assigned_at", UTCDateTime, nullable=False),
    sa.Index("ix_desk_assignments_assignee", "assignee"),
)

# Who has a ticket's page open (the page polls; a row older than a few polls means gone).
ticket_views = sa.Table(
    "desk_ticket_views",
    desk_metadata,
    sa.Column("ticket_id", sa.String(16), primary_key=True),
    sa.Column("viewer", sa.String(40), primary_key=True),
    sa.Column("seen_at", UTCDateTime, nullable=False),
)

canned_replies = sa.Table(
    "desk_canned_replies",
    desk_metadata,
    sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
    sa.Column("title", sa.String(80), nullable=False),
    sa.Column("topic", sa.String(64)),  # None: any topic
    sa.Column("sentiment", sa.String(16)),  # None: any sentiment
    sa.Column("text", sa.Text, nullable=False),  # Jinja, like the reply templates
    sa.Column("updated_by", sa.String(40), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

notes = sa.Table(
    "desk_notes",
    desk_metadata,
    sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", sa.String(16), nullable=False, index=True),
    sa.Column("author", sa.String(40), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# An agent's topic and sentiment for a ticket's tweet: labelled examples for training and evaluation.
corrections = sa.Table(
    "desk_corrections",
    desk_metadata,
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
    desk_metadata,
    sa.Column("reply_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("ticket_id", sa.String(16), nullable=False, index=True),
    sa.Column("author", sa.String(40), nullable=False),
)


def create_desk_tables(conn: Connection) -> None:
    """Schema migration 5 (issue 15): the desk's tables. Creating only what is missing makes it safe on a
    database that already has some of them."""
    desk_metadata.create_all(conn, checkfirst=True)


__all__ = [
    "api_tokens",
    "assignments",
    "audit_log",
    "canned_replies",
    "corrections",
    "create_desk_tables",
    "desk_metadata",
    "notes",
    "reply_authors",
    "ticket_views",
    "users",
]
