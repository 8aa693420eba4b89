"""The desk's part of the OpenAPI document (``web.openapi`` merges ``desk_paths()`` into its paths)."""

from __future__ import annotations

from typing import Any

from tweetdesk.records import SENTIMENTS, TOPICS

_AUTH = [{"ApiKey": []}, {"Bearer": []}]
_ERR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_OBJ = {"type": "object"}


def _op(summary: str, *, body: dict | None = None, params: list | None = None, ok: str = "200", auth: bool = True,
        errors: tuple[str, ...] = ("400", "401", "403", "404", "429"), media: str = "application/json") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {ok: {"description": "done", "content": {media: {"schema": _OBJ}}}}}
    op["responses"].update({e: _ERR for e in errors})
    if auth:
        op["security"] = _AUTH
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if params:
        op["parameters"] = params
    return op


def _path(name: str, schema: dict | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"}}


def _query(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "in": "query", "required": False, "schema": {"type": "string"}} for n in names]


_TID = _path("ticket_id", {"type": "string", "maxLength": 40})
_FILTERS = ("topic", "sentiment", "assignee", "listening_only", "class", "status", "lang")


def desk_paths() -> dict[str, Any]:
    s = {"type": "string"}
    return {
        "/api/tokens": {
            "post": _op("A personal API token for an account's name and password (shown once; throttled like keys).",
                        body={"type": "object", "required": ["name", "password"],
                              "properties": {"name": s, "password": s, "label": s,
                                             "expires_days": {"type": "integer", "minimum": 1, "maximum": 3650}}},
                        ok="201", auth=False),
            "get": _op("Your tokens (an admin's: everyone's)."),
        },
        "/api/tokens/{token_id}": {"delete": _op("Revoke a token.", params=[_path("token_id", {"type": "integer"})])},
        "/api/desk/inbox": {"get": _op("Tickets not resolved, most urgent class first, then oldest.",
                                       params=_query(*_FILTERS, "limit", "offset"))},
        "/api/tickets/{ticket_id}/assign": {"post": _op(
            "Assign a ticket (\"me\", a user name, or null to unassign); audited.", params=[_TID],
            body={"type": "object", "properties": {"assignee": {"type": ["string", "null"]}}})},
        "/api/tickets/{ticket_id}/notes": {"post": _op(
            "An internal note (never posted); audited.", params=[_TID], ok="201",
            body={"type": "object", "required": ["text"], "properties": {"text": s}})},
        "/api/tickets/{ticket_id}/corrections": {"post": _op(
            "Set the ticket's right topic and/or sentiment (kept as a labelled example); audited.", params=[_TID],
            ok="201", body={"type": "object", "properties": {"topic": {"type": "string", "enum": list(TOPICS)},
                                                              "sentiment": {"type": "string", "enum": list(SENTIMENTS)}}})},
        "/api/tickets/{ticket_id}/reply": {"post": _op(
            "An agent's reply under X's rules (409 not summoned / opted out / stale view); audited. channel \"dm\": a "
            "direct message to the ticket's customer with the privacy-policy link (409 never_dmed: X allows a DM only "
            "to someone who DMed us first; no_privacy_link; opted_out).", params=[_TID],
            ok="202", errors=("400", "401", "403", "404", "409", "429"),
            body={"type": "object", "required": ["text"], "properties": {
                "text": s, "seen": s, "channel": {"type": "string", "enum": ["public", "dm"], "default": "public"}}})},
        "/api/tickets/{ticket_id}/audit": {"get": _op("The ticket's audit trail and its current view stamp.", params=[_TID])},
        "/api/canned-replies": {
            "get": _op("Canned replies."),
            "post": _op("A new canned reply (admins; checked like the reply templates).", ok="201",
                        body={"type": "object", "required": ["title", "text"],
                              "properties": {"title": s, "text": s, "topic": s, "sentiment": s}}),
        },
        "/api/canned-replies/{canned_id}": {
            "put": _op("Change a canned reply (admins).", params=[_path("canned_id", {"type": "integer"})],
                       body={"type": "object", "required": ["title", "text"],
                             "properties": {"title": s, "text": s, "topic": s, "sentiment": s}}),
            "delete": _op("Delete a canned reply (admins).", params=[_path("canned_id", {"type": "integer"})]),
        },
        "/api/users": {
            "get": _op("Accounts (admins)."),
            "post": _op("A new account (admins); answers its one-time password.", ok="201",
                        body={"type": "object", "required": ["name", "role"],
                              "properties": {"name": s, "role": {"type": "string", "enum": ["admin", "agent", "viewer"]}}}),
        },
        "/api/users/{name}/{action}": {"post": _op(
            "disable | enable | reset (a new one-time password) an account (admins).",
            params=[_path("name"), _path("action", {"type": "string", "enum": ["disable", "enable", "reset"]})])},
        "/api/desk/report": {"get": _op("First-response p50/p90 and breaches per day, by topic and by agent.",
                                        params=_query("days"))},
        "/api/export": {"get": _op("Tickets with conversation, timers and corrections as CSV or Parquet.",
                                   params=_query("format", *_FILTERS), media="application/octet-stream")},
    }


__all__ = ["desk_paths"]
