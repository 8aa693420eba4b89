"""The desk's JSON API (same keys and tokens as the admin API; see ``web.auth``):

* ``POST /api/tokens`` — a personal API token for ``{"name", "password", "label"}`` (throttled like keys);
  ``GET /api/tokens`` (yours; an admin's: all), ``DELETE /api/tokens/<id>`` (revoke).
* ``GET /api/desk/inbox?topic=&sentiment=&assignee=&listening_only=&class=&status=&limit=&offset=``
* ``POST /api/tickets/<id>/assign`` ``{"assignee": NAME | "me" | null}``, ``…/notes`` ``{"text"}``,
  ``…/corrections`` ``{"topic", "sentiment"}``, ``…/reply`` ``{"text", "seen"}``; ``GET …/audit``.
* ``GET|POST /api/canned-replies``, ``PUT|DELETE /api/canned-replies/<id>`` (changes: admins).
* ``GET|POST /api/users``, ``POST /api/users/<name>/disable|enable|reset`` (admins).
* ``GET /api/desk/report`` (first-response p50/p90 and breaches), ``GET /api/export?format=csv|parquet``.

Viewers read; a change by a viewer is 403. Errors are JSON (``{"error", "status", "kind"}``).
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from tweetdesk.desk.inbox import InboxFilters, export_stream, inbox
from tweetdesk.desk.timers import Timers
from tweetdesk.web import auth, identity
from tweetdesk.web.api import ApiError, admin_required, canonical_ticket_id, json_body
from tweetdesk.web.context import ctx

desk_api = Blueprint("desk_api", __name__)


def _jsonable(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat().replace("+00:00", "Z")
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def _admin() -> None:
    if not g.principal.is_admin:
        raise ApiError(403, f"{g.principal.name} is not an admin", kind="forbidden")


def _str_field(body: dict, name: str, *, required: bool = True) -> str | None:
    v = body.get(name)
    if v is None and not required:
        return None
    if not isinstance(v, str):
        raise ApiError(400, f"{name} must be a string", kind="bad_field")
    return v


# --- tokens ----------------------------------------------------------------------------------------


@desk_api.post("/api/tokens")
def create_token():
    body = json_body()
    name, password = _str_field(body, "name"), _str_field(body, "password")
    label = _str_field(body, "label", required=False) or "api"
    days = body.get("expires_days")
    if days is not None and (isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3650):
        raise ApiError(400, "expires_days: a whole number of days from 1 to 3650 (or leave it out: no expiry)",
                       kind="bad_field")
    try:
        p = auth.password_matches(name, password)
    except auth.Throttled as e:
        raise ApiError(429, f"too many wrong keys or passwords from this address: retry in {e.retry_after} s",
                       kind="throttled", retry_after=e.retry_after) from None
    if p is None:
        raise ApiError(401, "unknown user or wrong password", kind="bad_credentials")
    info, token = identity.desk().accounts.create_token(p.name, label, actor=p.name, expires_days=days)
    return jsonify(_jsonable({**info, "token": token, "note": "shown once: keep it secret"})), 201


@desk_api.get("/api/tokens")
@admin_required
def list_tokens():
    p = g.principal
    return jsonify({"items": _jsonable(identity.desk().accounts.tokens(None if p.is_admin else p.name))})


@desk_api.delete("/api/tokens/<int:token_id>")
@admin_required
def revoke_token(token_id: int):
    return jsonify(identity.desk().accounts.revoke_token(token_id, actor=g.principal))


# --- inbox and ticket actions ------------------------------------------------------------------------


def _int(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    try:
        v = default if raw in (None, "") else int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer", kind="bad_parameter") from None
    if not lo <= v <= hi:
        raise ApiError(400, f"{name} must be between {lo} and {hi}", kind="bad_parameter")
    return v


@desk_api.get("/api/desk/inbox")
@admin_required
def api_inbox():
    f = InboxFilters.parse(request.args, me=g.principal.name if g.principal.user_id else None)
    got = inbox(identity.desk(), f, limit=_int("limit", 50, 1, 200), offset=_int("offset", 0, 0, 10**6))
    items = [{**i["ticket"].public().to_json(), "author": i["ticket"].author, "text": i["ticket"].text,
              "sentiment": i["ticket"].sentiment, "lang": i["ticket"].lang, "listening_only": i["ticket"].listening_only,
              "assignee": i["assignee"], "class": i["class"], "timer": i["timer"]} for i in got["items"]]
    return jsonify(_jsonable({"items": items, "total": got["total"]}))


@desk_api.post("/api/tickets/<ticket_id>/assign")
@admin_required
def assign(ticket_id: str):
    tid = canonical_ticket_id(ticket_id)
    body = json_body()
    who = body.get("assignee")
    if who is not None and not isinstance(who, str):
        raise ApiError(400, "assignee must be a user name, \"me\" or null", kind="bad_field")
    if who == "me":
        if g.principal.user_id is None:
            raise ApiError(400, "the API key is not an account: name the assignee", kind="bad_field")
        who = g.principal.name
    return jsonify({"ticket_id": tid, "assignee": identity.desk().assign(tid, who, g.principal)})


@desk_api.post("/api/tickets/<ticket_id>/notes")
@admin_required
def add_note(ticket_id: str):
    tid = canonical_ticket_id(ticket_id)
    note = identity.desk().add_note(tid, _str_field(json_body(), "text"), g.principal)
    return jsonify(_jsonable(note)), 201


@desk_api.post("/api/tickets/<ticket_id>/corrections")
@admin_required
def correct(ticket_id: str):
    tid = canonical_ticket_id(ticket_id)
    body = json_body()
    topic, sentiment = _str_field(body, "topic", required=False), _str_field(body, "sentiment", required=False)
    if topic is None and sentiment is None:
        raise ApiError(400, "give a topic, a sentiment or both", kind="bad_field")
    return jsonify(_jsonable(identity.desk().correct(tid, g.principal, topic=topic, sentiment=sentiment))), 201


@desk_api.post("/api/tickets/<ticket_id>/reply")
@admin_required
def reply(ticket_id: str):
    tid = canonical_ticket_id(ticket_id)
    body = json_body()
    text, seen = _str_field(body, "text"), _str_field(body, "seen", required=False)
    channel = _str_field(body, "channel", required=False) or "public"
    if channel not in ("public", "dm"):
        raise ApiError(400, "channel must be 'public' or 'dm'", kind="bad_field")
    key = request.headers.get("Idempotency-Key")
    r, created = identity.desk().send_reply(tid, text, g.principal, seen=seen, key=key, channel=channel)
    c = identity.ctx_poster()
    if c is not None:
        c.wake()
    return jsonify({"id": r.id, "ticket_id": r.ticket_id, "tweet_id": r.tweet_id, "text": r.text,
                    "status": r.status.value, "channel": r.channel or "public", "created": created}), \
        (202 if created else 200)


@desk_api.get("/api/tickets/<ticket_id>/audit")
@admin_required
def audit(ticket_id: str):
    tid = canonical_ticket_id(ticket_id)
    d = identity.desk()
    d.ticket(tid)
    return jsonify(_jsonable({"items": d.audit(tid), "seen": d.snapshot(tid)}))


# --- canned replies ------------------------------------------------------------------------------------


@desk_api.get("/api/canned-replies")
@admin_required
def list_canned():
    return jsonify({"items": _jsonable(identity.desk().canned.list())})


@desk_api.post("/api/canned-replies")
@admin_required
def add_canned():
    return jsonify(_jsonable(identity.desk().canned.save(json_body(), g.principal))), 201


@desk_api.put("/api/canned-replies/<int:canned_id>")
@admin_required
def edit_canned(canned_id: int):
    return jsonify(_jsonable(identity.desk().canned.save(json_body(), g.principal, canned_id)))


@desk_api.delete("/api/canned-replies/<int:canned_id>")
@admin_required
def delete_canned(canned_id: int):
    identity.desk().canned.delete(canned_id, g.principal)
    return jsonify({"id": canned_id, "deleted": True})


# --- users ---------------------------------------------------------------------------------------------


@desk_api.get("/api/users")
@admin_required
def list_users():
    _admin()
    return jsonify({"items": _jsonable(identity.desk().accounts.list())})


@desk_api.post("/api/users")
@admin_required
def add_user():
    _admin()
    body = json_body()
    user, password = identity.desk().accounts.add(_str_field(body, "name"), _str_field(body, "role"),
                                                   actor=g.principal.name)
    return jsonify(_jsonable({**user, "password": password, "note": "one-time password: shown once"})), 201


@desk_api.post("/api/users/<name>/<any(disable, enable, reset):action>")
@admin_required
def change_user(name: str, action: str):
    _admin()
    accounts = identity.desk().accounts
    if action == "reset":
        return jsonify({"name": name.lower(), "password": accounts.reset(name, actor=g.principal.name)})
    return jsonify(_jsonable(accounts.disable(name, actor=g.principal.name, enable=action == "enable")))


# --- figures and export ----------------------------------------------------------------------------------


@desk_api.get("/api/desk/report")
@admin_required
def report():
    days = _int("days", 0, 0, 366) or None
    return jsonify(_jsonable(Timers(identity.desk()).report(days)))


EXPORT_RETRY_SECONDS = 30


def export_response(fmt: str, f: InboxFilters, actor: str, via: str) -> Response:
    """The export streamed as it is built (bounded memory), while one of ``desk_export_concurrency`` slots is free:
    the slot is held until the export is sent or the response closed (the client gone); none free: 429 with
    Retry-After."""
    chunks, mime, name = export_stream(identity.desk(), fmt, f)  # an unknown format: 400 before any slot
    slots = ctx().export_slots
    if not slots.acquire(blocking=False):
        raise ApiError(429, f"as many exports as allowed are being built: retry in {EXPORT_RETRY_SECONDS} s",
                       kind="busy", retry_after=EXPORT_RETRY_SECONDS)
    identity.desk().record(actor, "exported", {"format": fmt, "via": via})
    once = threading.Lock()

    def release() -> None:
        if once.acquire(blocking=False):
            slots.release()

    def body():
        try:
            yield from chunks
        finally:
            release()

    resp = Response(body(), mimetype=mime, headers={"Content-Disposition": f'attachment; filename="{name}"'})
    resp.call_on_close(release)  # closed before the first chunk was asked for (the generator's finally never runs)
    return resp


@desk_api.get("/api/export")
@admin_required
def export():
    f = InboxFilters.parse(request.args, me=g.principal.name if g.principal.user_id else None)
    if "status" not in request.args:
        f.status = "all"
    return export_response(request.args.get("format", "csv"), f, g.principal.name, "api")
