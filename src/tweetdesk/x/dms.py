"""X's Direct Message events -> ``records.DirectMessage``, for both DM sources: the DM lookup we poll
(``ingest dms``) and the Activity API's push to our webhook (``web.x_webhook``).

Two shapes, as X documents them (docs.x.com):

* **v2 DM events** (``GET /2/dm_events``, x-api/direct-messages/get-dm-events and lookup/integrate): ``data``
  is a list of ``{"id", "event_type": "MessageCreate" | "ParticipantsJoin" | "ParticipantsLeave", "text",
  "sender_id", "dm_conversation_id", "created_at", …}``, newest first, plus ``includes.users`` (expansion
  ``sender_id``, ``user.fields=username``) and ``meta.next_token``.
* **Activity API ``dm.received``** (x-api/activity/event-payloads, "Legacy DM events"): ``{"data":
  {"event_type": "dm.received", "filter": {"user_id"}, "payload": {"direct_message_events": [{"type":
  "message_create", "id", "created_timestamp" (epoch ms), "message_create": {"target": {"recipient_id"},
  "sender_id", "message_data": {"text"}}}], "users": {id: {"data": {"username", …}}}}}}``. The Account
  Activity API's delivery (``{"for_user_id", "direct_message_events", "users": {id: {…}}}``) carries the same
  events and is read too. These events hold no ``dm_conversation_id``: a one-to-one conversation's id is the
  two user ids, smaller first, joined by ``-`` (X's documented form, e.g. ``123123123-456456456``).

Only a message a customer sent us becomes a record: our own sent DMs and the other event types
(ParticipantsJoin/Leave, ``dm.sent``, ``dm.read``, ``dm.indicate_typing``) are *skipped*, not errors. A message
that cannot make a valid ``DirectMessage`` (no sender, blank text, no handle for the sender, a shape X does not
send) is *bad*: (raw event JSON, reason) for a dead letter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError

from tweetdesk.records import DirectMessage, error_reason
from tweetdesk.x.payload import Includes, PayloadError

DM_EVENT_FIELDS = ["id", "text", "event_type", "created_at", "dm_conversation_id", "sender_id", "participant_ids",
                   "referenced_tweets", "attachments"]
DM_EXPANSIONS = ["sender_id"]
DM_USER_FIELDS = ["username"]
DM_EVENT_TYPES = ["MessageCreate"]  # asked for on the lookup: X bills each event read ($0.010), joins are no use


def one_to_one_conversation(a: str, b: str) -> str:
    lo, hi = sorted((str(a), str(b)), key=lambda s: (len(s), s))  # numeric order of digit strings
    return f"{lo}-{hi}"


@dataclass
class DmBatch:
    """What one page / one delivery gave: records, bad events (raw JSON, reason, event id or None), the ids of
    events skipped as not a customer's message, and every event id X sent (for the poll position)."""

    messages: list[DirectMessage] = field(default_factory=list)
    bad: list[tuple[str, str, str | None]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    oldest: datetime | None = None  # created_at of the oldest event on a lookup page


def _record(fields: dict[str, Any], raw: Any, batch: DmBatch) -> None:
    try:
        batch.messages.append(DirectMessage.model_validate(fields))
    except ValidationError as e:
        batch.bad.append((json.dumps(raw, ensure_ascii=False), f"X DM event: {error_reason(e)}", fields.get("id")))


def _event_id(ev: Any) -> str | None:
    i = ev.get("id") if isinstance(ev, dict) else None
    return i if isinstance(i, str) and i.isdigit() else None


def _load(body: bytes | str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise PayloadError(f"not JSON: {e}") from None


# --- the v2 lookup ----------------------------------------------------------------------------------------------
def parse_dm_page(body: bytes | str, *, account_id: str, brand: str | None, source: str = "dms") -> DmBatch:
    """A ``GET /2/dm_events`` answer -> ``DmBatch``. Raises ``PayloadError`` when the page as a whole cannot be
    read (not JSON, ``data`` / ``includes`` / ``meta`` malformed)."""
    doc = _load(body)
    if not isinstance(doc, dict):
        raise PayloadError(f"page is not a JSON object but {type(doc).__name__}")
    meta, data = doc.get("meta", {}), doc.get("data", [])
    if not isinstance(meta, dict):
        raise PayloadError("page meta is not an object")
    if not isinstance(data, list):
        raise PayloadError(f"page data is not a list but {type(data).__name__}")
    includes = Includes.of(doc.get("includes"))
    batch = DmBatch(meta=meta)
    for ev in data:
        eid = _event_id(ev)
        if eid:
            batch.ids.append(eid)
        if isinstance(ev, dict) and isinstance(ev.get("created_at"), str):
            try:
                at = datetime.fromisoformat(ev["created_at"].replace("Z", "+00:00"))
                batch.oldest = at if batch.oldest is None else min(batch.oldest, at)
            except ValueError:
                pass
        if not isinstance(ev, dict):
            batch.bad.append((json.dumps(ev, ensure_ascii=False), "X DM event is not an object", None))
            continue
        kind = ev.get("event_type")
        if not isinstance(kind, str):
            batch.bad.append((json.dumps(ev, ensure_ascii=False), "X DM event has no event_type", eid))
            continue
        sender = ev.get("sender_id")
        if kind != "MessageCreate" or (sender is not None and str(sender) == account_id):
            if eid:
                batch.skipped.append(eid)
            continue
        handle = includes.username(sender)
        if sender is not None and not handle:
            batch.bad.append((json.dumps(ev, ensure_ascii=False), f"X DM event: sender {sender!r} has no username in "
                              "includes.users (expansions=sender_id missing?)", eid))
            continue
        _record({"id": ev.get("id"), "text": ev.get("text"), "author": handle or "unknown",
                 "author_id": None if sender is None else str(sender), "created_at": ev.get("created_at"),
                 "dm_conversation_id": ev.get("dm_conversation_id"), "brand": brand, "lang": ev.get("lang"),
                 "source": source}, ev, batch)
    return batch


# --- the Activity API's push ------------------------------------------------------------------------------------
def parse_delivery(body: bytes | str, *, brand: str | None = None) -> DmBatch:
    """One webhook delivery (X Activity API envelope, or the Account Activity API's) -> ``DmBatch``. Raises
    ``PayloadError`` when the delivery as a whole is not one X sends."""
    doc = _load(body)
    if not isinstance(doc, dict):
        raise PayloadError(f"delivery is not a JSON object but {type(doc).__name__}")
    if isinstance(doc.get("data"), dict):  # X Activity API
        d = doc["data"]
        kind, payload = d.get("event_type"), d.get("payload")
        us = d["filter"].get("user_id") if isinstance(d.get("filter"), dict) else None  # our account
        if not isinstance(kind, str):
            raise PayloadError("delivery has no data.event_type")
        if kind != "dm.received":
            return DmBatch()  # another event we subscribed to (dm.sent, dm.read, …): nothing for the desk
        if not isinstance(payload, dict):
            raise PayloadError("dm.received delivery has no payload object")
        events, users = payload.get("direct_message_events"), payload.get("users", {})
    elif "direct_message_events" in doc or "for_user_id" in doc:  # Account Activity API
        us, events, users = doc.get("for_user_id"), doc.get("direct_message_events", []), doc.get("users", {})
    else:
        raise PayloadError("delivery is neither an X Activity API event (data.event_type) nor an Account Activity "
                           "event (direct_message_events)")
    if not isinstance(events, list):
        raise PayloadError("direct_message_events is not a list")
    if not isinstance(users, dict):
        raise PayloadError("users is not an object")
    us = None if us is None else str(us)
    batch = DmBatch()
    for ev in events:
        eid = _event_id(ev)
        if eid:
            batch.ids.append(eid)
        if not isinstance(ev, dict):
            batch.bad.append((json.dumps(ev, ensure_ascii=False), "X DM event is not an object", None))
            continue
        if ev.get("type") != "message_create":
            if eid:
                batch.skipped.append(eid)
            continue
        mc = ev.get("message_create")
        if not isinstance(mc, dict):
            batch.bad.append((json.dumps(ev, ensure_ascii=False), "X DM event has no message_create object", eid))
            continue
        sender = mc.get("sender_id")
        target = mc.get("target")
        recipient = target.get("recipient_id") if isinstance(target, dict) else None
        ours = us or (None if recipient is None else str(recipient))
        if sender is not None and ours is not None and str(sender) == ours:
            if eid:
                batch.skipped.append(eid)  # our own DM, echoed
            continue
        data = mc.get("message_data")
        text = data.get("text") if isinstance(data, dict) else None
        handle = _username(users, sender)
        if sender is not None and not handle:
            batch.bad.append((json.dumps(ev, ensure_ascii=False), f"X DM event: sender {sender!r} has no username in "
                              "the delivery's users", eid))
            continue
        our_handle = _username(users, ours)
        conversation = one_to_one_conversation(str(sender), ours) if sender is not None and ours else None
        _record({"id": ev.get("id"), "text": text, "author": handle or "unknown",
                 "author_id": None if sender is None else str(sender), "created_at": _millis(ev.get("created_timestamp")),
                 "dm_conversation_id": conversation, "brand": (our_handle.lower() if our_handle else brand),
                 "lang": None, "source": "activity"}, ev, batch)
    return batch


def _username(users: dict, user_id: Any) -> str | None:
    u = users.get(str(user_id)) if user_id is not None else None
    if isinstance(u, dict) and isinstance(u.get("data"), dict):
        u = u["data"]  # the Activity API wraps each user in {"data": …}
    name = (u.get("username") or u.get("screen_name")) if isinstance(u, dict) else None
    return name if isinstance(name, str) and name else None


def _millis(v: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(v) / 1000, timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None
