"""The JSON API over the ticket store, one Flask blueprint of the service's app (``tweetdesk.app``).

Routes (documented in the OpenAPI document at ``/api/openapi.json``):

* ``GET  /healthz`` — liveness (``{"status"}``) for anyone; with the admin key also the store, consumer
  groups, offsets, poster state and last errors.
* ``GET  /api/tickets/<id>`` — public: status, topic and timestamps only. A mistyped ID gets a 400
  that names the check that failed (format / prefix / check character); an unknown one a 404. With
  a valid admin key the full ticket (tweet, entities, replies) is returned.
* ``GET  /api/tickets?status=&topic=&sentiment=&limit=&offset=`` — admin, paged.
* ``POST /api/tickets/<id>/resolve`` — admin.
* ``POST /api/replies`` — admin: a manual reply to a tweet we hold a ticket for.
* ``GET  /api/opt-outs``, ``DELETE /api/opt-outs/<author>``, ``GET /api/budget`` — admin.

Admin auth: ``X-API-Key: <key>`` or ``Authorization: Bearer <key>`` holding the admin key (the bootstrap admin)
or a desk account's personal token, checked by ``web.auth`` (constant time, wrong keys throttled per client
address: 429 with ``Retry-After``); viewers read, changes need an admin or agent (403); with no key and no desk
accounts the admin endpoints answer 403. Every error is JSON (never an HTML page), malformed, oversized, too deeply nested or
not-Unicode bodies included (400): ``register_errors`` installs the app-wide handlers.
"""

from __future__ import annotations

import logging
from functools import wraps
from typing import Any, Callable

from flask import Blueprint, Flask, g, jsonify, request
from werkzeug.exceptions import BadRequest, HTTPException, RequestEntityTooLarge

from tweetdesk.desk.accounts import DeskError, Principal
from tweetdesk.records import NOT_INFERRED, SENTIMENTS, TOPIC_CHOICES, UNCLASSIFIABLE
from tweetdesk.tickets.ids import TicketIdError, parse_ticket_id
from tweetdesk.tickets.store import StoreError, Ticket, TicketStatus, TicketStore
from tweetdesk.web import auth, identity
from tweetdesk.web.context import ctx

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024  # a reply is ≤ 280 characters: 16 KiB of JSON is plenty
MAX_PAGE = 200


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra


def _error(status: int, message: str, **extra):
    resp = jsonify({"error": message, "status": status, **extra})
    resp.status_code = status
    return resp


# ----------------------------------------------------------------------------------------------
# Auth
# ----------------------------------------------------------------------------------------------


def principal() -> Principal | None:
    """Who the request's header key or personal token names (``web.auth``); None without one. A wrong one raises
    401 (a wrong key never downgrades silently), 429 while the client's address must wait after wrong keys (the
    key is then not even compared). No key and no desk accounts: nobody (admin routes say 403)."""
    if auth.presented_key() is None or not auth.agent_enabled():
        return None
    try:
        p = auth.header_principal()
    except auth.Throttled as e:
        raise ApiError(429, f"too many wrong API keys from this address: retry in {e.retry_after} s", kind="throttled",
                       retry_after=e.retry_after) from None
    if p is None:
        raise ApiError(401, "invalid API key")
    return p


def is_admin() -> bool:
    """A valid key or personal token (any role reads the admin API; changes need an admin or agent)."""
    return principal() is not None


def admin_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        if not auth.agent_enabled():
            raise ApiError(403, "admin API disabled: set TWEETDESK_API_KEY")
        p = principal()
        if p is None:
            raise ApiError(401, "admin API key required (X-API-Key header or Authorization: Bearer)")
        if request.method not in ("GET", "HEAD") and not p.can_write:
            raise ApiError(403, f"{p.name} is a viewer: viewers cannot change anything", kind="forbidden")
        g.principal = p
        return view(*args, **kwargs)

    return wrapper


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 400 saying what is wrong with it."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(400, f"request body too large: limit is {MAX_BODY_BYTES} bytes", kind="too_large")
    try:
        data = request.get_json(force=True, silent=False, cache=True)
    except RequestEntityTooLarge:
        raise ApiError(400, f"request body too large: limit is {MAX_BODY_BYTES} bytes", kind="too_large") from None
    except BadRequest:
        raise ApiError(400, "request body is not valid JSON", kind="malformed_json") from None
    except RecursionError:
        raise ApiError(400, "request body is nested too deeply", kind="malformed_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object", kind="malformed_json")
    bad = _not_unicode(data)
    if bad is not None:
        raise ApiError(400, f"{bad} is not valid Unicode text (a lone surrogate escape such as \\ud800)",
                       kind="malformed_json")
    return data


def _not_unicode(data: Any) -> str | None:
    """Where a JSON value holds a lone surrogate (JSON's \\uD800 escapes decode to one; no store, log or X can
    take it): the field's name ('text'), 'a field name' (a key), 'body'; None when every string is valid."""
    stack = [("body", data)]
    while stack:
        where, v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return where
        elif isinstance(v, dict):
            for k, x in v.items():
                stack.append(("a field name", k))
                stack.append((k if isinstance(k, str) and k.isidentifier() and k.isascii() else "a field", x))
        elif isinstance(v, list):
            stack.extend((where, x) for x in v)
    return None


def canonical_ticket_id(raw: str) -> str:
    try:
        return parse_ticket_id(raw)
    except TicketIdError as e:
        raise ApiError(400, str(e), kind=e.kind) from None


def _iso(dt):
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def ticket_full(t: Ticket, store: TicketStore) -> dict[str, Any]:
    d = t.model_dump(mode="json")
    d["status"] = t.status.value
    d["replies"] = [
        {
            "id": r.id,
            "kind": r.kind.value,
            "text": r.text,
            "status": r.status.value,
            "attempts": r.attempts,
            "posted_id": r.posted_id,
            "error": r.error,
            "dry_run": r.dry_run,
            "created_at": _iso(r.created_at),
            "posted_at": _iso(r.posted_at),
        }
        for r in store.replies_for(t.ticket_id)
    ]
    d["conversation"] = [
        {**m, "at": _iso(m["at"])} for m in store.conversation(t.ticket_id)
    ]
    d["listening_only"] = t.listening_only
    d["opt_out"] = store.opt_out_of(t.author, t.author_id)
    d.update(identity.desk().ticket_extras(t.ticket_id))  # assignee, timer, notes, corrections, audit trail
    return d


def _choice(name: str, allowed: list[str]) -> str | None:
    value = request.args.get(name)
    if value is None or value == "":
        return None
    if value not in allowed:
        raise ApiError(400, f"unknown {name} '{value}': one of {', '.join(allowed)}", kind="bad_parameter")
    return value


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer", kind="bad_parameter") from None
    if not lo <= v <= hi:
        raise ApiError(400, f"{name} must be between {lo} and {hi}", kind="bad_parameter")
    return v


# ----------------------------------------------------------------------------------------------
# Routes
# ----------------------------------------------------------------------------------------------

api = Blueprint("api", __name__)


@api.get("/healthz")
def healthz():
    c = ctx()
    db_ok = c.store.ping()
    status = 200 if db_ok else 503
    if not is_admin():
        # Consumer groups, offsets and error texts are for the operators (the admin key), not the world.
        return jsonify({"status": "ok" if db_ok else "degraded"}), status
    body: dict[str, Any] = {"status": "ok" if db_ok else "degraded", "store": {"ok": db_ok, "backend": c.store.dialect}}
    if c.poster is not None:
        body["poster"] = {"mode": c.poster.mode, **c.poster.counts}
    for name, fn in c.health.items():
        try:
            body[name] = fn()
        except Exception as e:  # a health probe must never take /healthz down
            body[name] = {"error": str(e)}
    return jsonify(body), status


@api.get("/api/tickets/<ticket_id>")
def get_ticket(ticket_id: str):
    tid = canonical_ticket_id(ticket_id)
    t = ctx().store.get_ticket(tid)
    if t is None:
        raise ApiError(404, f"no ticket {tid}", kind="unknown")
    if is_admin():
        return jsonify(ticket_full(t, ctx().store))
    return jsonify(t.public().to_json())


@api.get("/api/tickets")
@admin_required
def list_tickets():
    status = _choice("status", [s.value for s in TicketStatus])
    topic = _choice("topic", list(TOPIC_CHOICES))
    sentiment = _choice("sentiment", [*SENTIMENTS, UNCLASSIFIABLE, NOT_INFERRED])
    limit = _int_arg("limit", 50, 1, MAX_PAGE)
    offset = _int_arg("offset", 0, 0, 10**9)
    listening = _choice("listening_only", ["true", "false"])
    page = ctx().store.list_tickets(
        status=status, topic=topic, sentiment=sentiment, limit=limit, offset=offset,
        listening_only=None if listening is None else listening == "true",
    )
    nxt = offset + limit if offset + limit < page.total else None
    return jsonify(
        {
            "items": [{**t.model_dump(mode="json"), "listening_only": t.listening_only} for t in page.items],
            "total": page.total,
            "limit": limit,
            "offset": offset,
            "next_offset": nxt,
        }
    )


@api.post("/api/tickets/<ticket_id>/resolve")
@admin_required
def resolve_ticket(ticket_id: str):
    tid = canonical_ticket_id(ticket_id)
    note = seen = None
    if request.content_length:
        body = json_body()
        note, seen = body.get("note"), body.get("seen")
        if note is not None and not isinstance(note, str):
            raise ApiError(400, "note must be a string", kind="bad_field")
        if seen is not None and not isinstance(seen, str):
            raise ApiError(400, "seen must be the view stamp (a string) of GET /api/tickets/<id>", kind="bad_field")
    t = identity.desk().resolve(tid, g.principal, seen=seen, note=note)  # audited; 409 on a stale view
    return jsonify(t.public().to_json())


@api.post("/api/replies")
@admin_required
def post_reply():
    body = json_body()
    tweet_id, text = body.get("tweet_id"), body.get("text")
    if not isinstance(tweet_id, str) or not tweet_id.isdigit() or len(tweet_id) > 32:
        raise ApiError(400, "tweet_id must be a string of digits (X ids exceed JSON's safe integers)", kind="bad_field")
    if not isinstance(text, str):
        raise ApiError(400, "text must be a string", kind="bad_field")
    key = request.headers.get("Idempotency-Key") or body.get("idempotency_key")
    if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= 100):
        raise ApiError(400, "idempotency key must be a string of 1-100 characters", kind="bad_field")
    seen = body.get("seen")
    if seen is not None and not isinstance(seen, str):
        raise ApiError(400, "seen must be the string the ticket's view gave", kind="bad_field")
    ticket = ctx().store.get_ticket_by_tweet(tweet_id)
    if ticket is None:
        raise ApiError(404, f"no ticket holds tweet {tweet_id}", kind="unknown")
    # The desk's one path: X's rules (409 not summoned / opted out), the text's rules (400), the stale-view check
    # when ``seen`` is given (409), and who wrote it in the audit trail, in one transaction.
    reply, created = identity.desk().send_reply(ticket.ticket_id, text, g.principal, seen=seen, key=key,
                                                tweet_id=tweet_id)
    if ctx().poster is not None:
        ctx().poster.wake()
    out = {
        "id": reply.id,
        "ticket_id": reply.ticket_id,
        "tweet_id": reply.tweet_id,
        "text": reply.text,
        "status": reply.status.value,
        "created": created,
    }
    return jsonify(out), (202 if created else 200)


@api.get("/api/opt-outs")
@admin_required
def list_opt_outs():
    """Customers who get no automatic reply now: they opted out, blocked us, or X refused a reply lately."""
    return jsonify({"items": ctx().store.list_opt_outs()})


@api.delete("/api/opt-outs/<author>")
@admin_required
def lift_opt_out(author: str):
    """Admins only, audited: a customer said STOP, and sending again is X's rule broken on our word."""
    if not g.principal.is_admin:
        raise ApiError(403, f"{g.principal.name} is not an admin: only an admin may lift an opt-out", kind="forbidden")
    desk = identity.desk()

    def audit(conn, bar):
        desk.audit_in(conn, None, g.principal.name, "opt_out_lifted",
                      {"author": bar["author"], "author_key": bar["author_key"], "kind": bar["kind"]})

    done = ctx().store.lift_opt_out(author, audit=audit)
    if not done and done.blocked:
        raise ApiError(409, f"{author!r} blocked us on X: only they can lift that, by unblocking", kind="blocked")
    if not done:
        raise ApiError(404, f"no opt-out for {author!r}", kind="unknown")
    return jsonify({"author": author, "lifted": True})


@api.get("/api/budget")
@admin_required
def budget():
    """The reply budget and the intake: queue, expected wait, posts this window, spend today, the
    flood guard's reasons and the tweets it held back most recently."""
    c = ctx()
    f = c.budget.figures()
    f["held_back"] = [
        {**h, "tweet_created_at": _iso(h["tweet_created_at"]), "received_at": _iso(h["received_at"])}
        for h in c.store.held_back(_int_arg("held_back", 20, 0, 200))
    ]
    return jsonify(f)


@api.get("/api/openapi.json")
def openapi():
    from tweetdesk.web.openapi import openapi_document

    return jsonify(openapi_document())


# ----------------------------------------------------------------------------------------------
# Errors: JSON for the whole app (the pages' blueprint answers HTML for its own routes)
# ----------------------------------------------------------------------------------------------


API_PREFIXES = ("/api/", "/web/api/", "/desk/api/")


def _browser_lost(page_for_unrouted) -> bool:
    """A browser asked for a path no route matches (outside the APIs): it gets a page, not JSON."""
    return (page_for_unrouted is not None and request.url_rule is None and not request.path.startswith(API_PREFIXES)
            and request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html")


# C0 control characters but tab, LF and CR, and lone surrogates: no field of ours takes them, PostgreSQL cannot
# store a NUL, and a CR/LF-free field (a handle, a redirect target) is checked where it is read.
_CONTROL = {c for c in range(32) if chr(c) not in "\t\n\r"}


def bad_character(value: Any) -> str | None:
    """A description of the first control character or lone surrogate in ``value`` (strings inside lists and
    dicts, keys too, however deep: walked without recursion), or None."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            for i, ch in enumerate(v):
                if ord(ch) in _CONTROL:
                    return f"a control character, U+{ord(ch):04X} at position {i}"
                if 0xD800 <= ord(ch) <= 0xDFFF:
                    return f"a lone surrogate, U+{ord(ch):04X} at position {i}, which is not valid Unicode text"
        elif isinstance(v, dict):
            stack.extend(x for kv in v.items() for x in kv)
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
    return None


def refuse_control_characters() -> None:
    """Before every request: a NUL or other control character (or a lone surrogate) in the path, the query, a
    form or a JSON body is a 400 with the reason (input layer, once), instead of a 500 from the store later."""
    where = [("path", request.path), ("query", list(request.args.items(multi=True)))]
    # A route that takes a signed body as sent (X's webhook, ``web.x_webhook``) checks it itself: altering or
    # refusing it here would break the signature, and X would send it again and again.
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and not g.get("raw_body"):
        if request.mimetype == "application/json":
            try:
                where.append(("body", request.get_json(silent=True)))
            except RecursionError:
                pass  # too deeply nested: the route's own parsing answers 400 with its reason
        elif request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            where.append(("form", list(request.form.items(multi=True))))
    for name, value in where:
        found = bad_character(value)
        if found:
            raise BadCharacter(f"the request's {name} holds {found}; remove it")


class BadCharacter(BadRequest):
    """A 400 the pages show as their error page (a 400 handler) and the API as JSON with ``kind``."""


def register_errors(app: Flask, page_for_unrouted: Callable[[int], Any] | None = None) -> None:
    """JSON errors for the whole app. ``page_for_unrouted(status)``: the HTML answer for a browser that asked for
    a path no route matches (the pages' blueprints answer HTML for their own routes)."""
    app.before_request(refuse_control_characters)

    @app.errorhandler(BadCharacter)
    def _bad_character(e: BadCharacter):
        return _error(400, e.description, kind="bad_character")
    @app.errorhandler(ApiError)
    def _api_error(e: ApiError):
        resp = _error(e.status, e.message, **e.extra)
        if "retry_after" in e.extra:
            resp.headers["Retry-After"] = str(e.extra["retry_after"])
        return resp

    @app.errorhandler(DeskError)
    def _desk_error(e: DeskError):
        return _error(e.status, str(e), kind=e.kind, **e.extra)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(e):
        return _error(400, f"request body too large: limit is {MAX_BODY_BYTES} bytes", kind="too_large")

    @app.errorhandler(HTTPException)
    def _http_error(e: HTTPException):
        if _browser_lost(page_for_unrouted):
            return page_for_unrouted(e.code or 500)
        return _error(e.code or 500, e.description or e.name)

    @app.errorhandler(StoreError)
    def _store_error(e: StoreError):
        log.error("store error: %s", e)
        return _error(503, "ticket store unavailable, try again shortly")

    @app.errorhandler(Exception)
    def _unexpected(e: Exception):
        log.exception("unhandled error on %s %r", request.method, request.path)
        return _error(500, "internal error")
