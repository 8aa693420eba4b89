"""Canned replies: texts an agent picks, edits and sends, per topic and sentiment (None = any), kept in the
store and edited by admins.

A canned reply is plain text with named placeholders — ``{mention}``, ``{author}``, ``{ticket_id}``,
``{flight}``, ``{topic}``, ``{sentiment}`` — and nothing else: no expressions, no loops, no format specs (a
Jinja canned reply could compute ``9 ** (9 ** 8)`` on every ticket view). It is checked when saved (an
unknown placeholder, a ``{{`` or ``{%``, a stray brace: 400 with the reason; then the reply rules of
``reply.templates`` for the longest handle and ticket ID: at most 280 characters as X counts them, no URL, no
@mention but the customer's, the ticket ID present) and rendered by plain substitution, in time linear in
its length. What the agent finally sends is checked again (``Desk.send_reply``). Canned replies saved as
Jinja before schema v7 are converted by its migration (``tickets.schema.from_jinja``).
"""

from __future__ import annotations

from string import Formatter
from typing import Any

import sqlalchemy as sa

from tweetdesk.desk.accounts import DeskError, Principal
from tweetdesk.records import SENTIMENTS, TOPICS
from tweetdesk.reply.templates import ReplyTextError, check_reply_text, flight_of, valid_handle
from tweetdesk.tickets.schema import canned_replies
from tweetdesk.tickets.store import Ticket

MAX_TITLE = 80
MAX_TEXT = 1000  # characters as written; the rendered reply is held to X's 280 anyway
PLACEHOLDERS = ("mention", "author", "ticket_id", "flight", "topic", "sentiment")
_WORST = {"mention": "@" + "W" * 15, "author": "W" * 15, "ticket_id": "BAG-WWWWWWWW-W", "flight": "UA9999",
          "topic": max(TOPICS, key=len), "sentiment": max(SENTIMENTS, key=len)}


def _bad(why: str) -> DeskError:
    return DeskError(f"this canned reply is not valid: {why}", kind="bad_canned_reply")


def parse(text: str) -> list[tuple[str, str | None]]:
    """``text`` as (literal, placeholder name or None) pieces; DeskError (400) naming what is not allowed."""
    if len(text) > MAX_TEXT:
        raise _bad(f"{len(text)} characters, the limit is {MAX_TEXT}")
    for token in ("{{", "{%", "{#"):
        if token in text:
            raise _bad(f"{token!r} is template code; write placeholders as {{mention}}, {{ticket_id}}, … "
                       f"({', '.join(PLACEHOLDERS)})")
    try:
        pieces = list(Formatter().parse(text))
    except ValueError as e:  # a single '{' or '}'
        raise _bad(f"{e} (a brace only ever opens or closes a placeholder)") from None
    out: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in pieces:
        if "}" in literal:
            raise _bad("a '}' that closes no placeholder")
        if name is not None and (name not in PLACEHOLDERS or spec or conversion):
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise _bad(f"unknown placeholder {shown}: use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
        out.append((literal, name))
    return out


def render(text: str, values: dict[str, str]) -> str:
    """Plain substitution of the placeholders (no evaluation of any kind), spaces collapsed."""
    return " ".join("".join(lit + (values.get(name, "") if name else "") for lit, name in parse(text)).split())


def check(text: str) -> str:
    """``text`` if it is a valid canned reply (placeholders only, the reply rules hold for the worst case)."""
    for flight in (_WORST["flight"], ""):
        values = {**_WORST, "flight": flight}
        out = render(text, values)
        try:
            if values["ticket_id"] not in out:
                raise ReplyTextError("it must include {ticket_id}")
            check_reply_text(out, author=values["author"])
        except ReplyTextError as e:
            raise DeskError(f"this canned reply breaks a reply rule: {e}", kind="bad_canned_reply") from None
    return text


def values_for(t: Ticket) -> dict[str, str]:
    handle = valid_handle(t.author)
    return {"mention": f"@{handle}" if handle else "", "author": handle or "", "ticket_id": t.ticket_id,
            "flight": flight_of(t), "topic": t.topic or "", "sentiment": t.sentiment or ""}


class CannedReplies:
    def __init__(self, desk):
        self.desk = desk

    def check(self, body: dict[str, Any]) -> dict[str, Any]:
        title, text = body.get("title"), body.get("text")
        topic, sentiment = body.get("topic") or None, body.get("sentiment") or None
        if not isinstance(title, str) or not title.strip() or len(title.strip()) > MAX_TITLE:
            raise DeskError(f"title: 1-{MAX_TITLE} characters", kind="bad_field")
        if not isinstance(text, str) or not text.strip():
            raise DeskError("text: the reply's text (with placeholders such as {mention}, {ticket_id}) is required",
                            kind="bad_field")
        if topic is not None and topic not in TOPICS:
            raise DeskError(f"unknown topic {topic!r}: one of {', '.join(TOPICS)} (or none: any topic)", kind="bad_topic")
        if sentiment is not None and sentiment not in SENTIMENTS:
            raise DeskError(f"unknown sentiment {sentiment!r}: one of {', '.join(SENTIMENTS)} (or none: any)",
                            kind="bad_sentiment")
        text = check(" ".join(text.split()))
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
        """The canned replies that fit the ticket's topic and sentiment, rendered for it (most specific first).
        One that is no longer valid (an unconverted Jinja text) is left out, not an error for the agent."""
        out = []
        values = values_for(t)
        for c in self.list():
            if c["topic"] not in (None, t.topic) or c["sentiment"] not in (None, t.sentiment):
                continue
            try:
                rendered = check_reply_text(render(c["text"], values), author=values["author"])
            except (DeskError, ReplyTextError):
                continue
            out.append({**c, "rendered": rendered, "fit": (c["topic"] is not None) + (c["sentiment"] is not None)})
        return sorted(out, key=lambda c: -c["fit"])


__all__ = ["CannedReplies"]
