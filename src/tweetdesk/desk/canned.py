"""Canned replies: texts an agent picks, edits and sends, per topic and sentiment (None = any), kept in the
store and edited by admins.

They are written like the reply templates (Jinja: ``{{ mention }}``, ``{{ ticket_id }}``, ``{{ flight }}``,
``{{ topic }}``, ``{{ sentiment }}``) and checked by the same code when saved (``reply.templates``: at most
280 characters as X counts them for the longest handle and ticket ID, no URL, no @mention but the
customer's, the ticket ID present). What the agent finally sends is checked again and goes through the
reply rules (``Desk.send_reply``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tweetdesk.desk.accounts import DeskError, Principal
from tweetdesk.tickets.schema import canned_replies
from tweetdesk.records import SENTIMENTS, TOPICS, EnrichedTweet
from tweetdesk.reply.templates import ReplyTemplates, TemplateError
from tweetdesk.tickets.store import Ticket

MAX_TITLE = 80
_ORIGIN = "canned reply"


def _templates(text: str) -> ReplyTemplates:
    try:
        return ReplyTemplates({"default": {"default": text}}, origin=_ORIGIN)
    except TemplateError as e:
        why = str(e).split("default / default: ", 1)[-1]
        raise DeskError(f"this canned reply breaks a reply rule: {why}", kind="bad_canned_reply") from None


def _as_tweet(t: Ticket) -> EnrichedTweet:
    # Only what a template may use; the ticket was validated when it was stored.
    return EnrichedTweet.model_construct(
        id=t.tweet_id, text=t.text, author=t.author, created_at=t.tweet_created_at or t.created_at, clean_text="",
        sentiment=t.sentiment, sentiment_score=t.sentiment_score or 0.0, topic=t.topic, topic_score=t.topic_score or 0.0,
        entities=t.entities, ticket_id=t.ticket_id, model_version=t.model_version or "",
    )


class CannedReplies:
    def __init__(self, desk):
        self.desk = desk

    def check(self, body: dict[str, Any]) -> dict[str, Any]:
        title, text = body.get("title"), body.get("text")
        topic, sentiment = body.get("topic") or None, body.get("sentiment") or None
        if not isinstance(title, str) or not title.strip() or len(title.strip()) > MAX_TITLE:
            raise DeskError(f"title: 1-{MAX_TITLE} characters", kind="bad_field")
        if not isinstance(text, str) or not text.strip():
            raise DeskError("text: the reply's text (a template) is required", kind="bad_field")
        if topic is not None and topic not in TOPICS:
            raise DeskError(f"unknown topic {topic!r}: one of {', '.join(TOPICS)} (or none: any topic)", kind="bad_topic")
        if sentiment is not None and sentiment not in SENTIMENTS:
            raise DeskError(f"unknown sentiment {sentiment!r}: one of {', '.join(SENTIMENTS)} (or none: any)",
                            kind="bad_sentiment")
        text = " ".join(text.split())
        _templates(text)
        return {"title": title.strip(), "text": text, "topic": topic, "sentiment": sentiment}

    def save(self, body: dict[str, Any], actor: Principal, canned_id: int | None = None) -> dict[str, Any]:
        if not actor.is_admin:
            raise DeskError("only admins edit canned replies", status=403, kind="forbidden")
        row = self.check(body)
        now = self.desk.clock()
        with self.desk.tx(write=True) as conn:
            if canned_id is None:
                canned_id = conn.execute(canned_replies.insert().returning(canned_replies.c.id)
                                         .values(**row, updated_by=actor.name, updated_at=now)).scalar()
            elif conn.execute(canned_replies.update().where(canned_replies.c.id == canned_id)
                              .values(**row, updated_by=actor.name, updated_at=now)).rowcount == 0:
                raise DeskError(f"no canned reply {canned_id}", status=404, kind="unknown")
            self.desk.audit_in(conn, None, actor.name, "canned_saved", {"id": canned_id, "title": row["title"]})
        return self.get(canned_id)

    def delete(self, canned_id: int, actor: Principal) -> None:
        if not actor.is_admin:
            raise DeskError("only admins edit canned replies", status=403, kind="forbidden")
        got = self.get(canned_id)
        with self.desk.tx(write=True) as conn:
            conn.execute(canned_replies.delete().where(canned_replies.c.id == canned_id))
            self.desk.audit_in(conn, None, actor.name, "canned_deleted", {"id": canned_id, "title": got["title"]})

    def get(self, canned_id: int) -> dict[str, Any]:
        with self.desk.tx() as conn:
            row = conn.execute(sa.select(canned_replies).where(canned_replies.c.id == canned_id)).mappings().first()
        if row is None:
            raise DeskError(f"no canned reply {canned_id}", status=404, kind="unknown")
        return dict(row)

    def list(self) -> list[dict[str, Any]]:
        with self.desk.tx() as conn:
            q = sa.select(canned_replies).order_by(canned_replies.c.topic, canned_replies.c.sentiment, canned_replies.c.title)
            return [dict(r) for r in conn.execute(q).mappings()]

    def for_ticket(self, t: Ticket) -> list[dict[str, Any]]:
        """The canned replies that fit the ticket's topic and sentiment, rendered for it (most specific first)."""
        out = []
        tweet = _as_tweet(t)
        for c in self.list():
            if c["topic"] not in (None, t.topic) or c["sentiment"] not in (None, t.sentiment):
                continue
            out.append({**c, "rendered": _templates(c["text"]).render(tweet),
                        "fit": (c["topic"] is not None) + (c["sentiment"] is not None)})
        return sorted(out, key=lambda c: -c["fit"])


__all__ = ["CannedReplies"]
