"""The desk's pages, as one blueprint beside ``web.views``:

* ``/inbox``  open tickets, most urgent class first, then oldest; filters (topic, sentiment, assignee, mine,
  listening only, class, status); take; export CSV / Parquet of what the filters select.
* actions from the ticket page (``/tickets/<id>/…``): take, assign, reply (a canned reply picked and
  edited, through X's rules), note, correction — each audited; reply and resolve refuse a stale view (409
  with what changed). ``/desk/api/tickets/<id>/presence`` is what the page polls: who else has it open and
  whether it changed.
* ``/canned`` canned replies (admins edit), ``/users`` accounts (admins), ``/report`` response times,
  ``/password`` change your own password.

Viewers see every page without its buttons; a change they post anyway is 403.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from tweetdesk.desk import ROLES
from tweetdesk.desk.accounts import DeskError, Principal
from tweetdesk.desk.inbox import CLASSES, InboxFilters, inbox, languages
from tweetdesk.desk.timers import Timers
from tweetdesk.records import NOT_INFERRED, SENTIMENTS, TOPIC_CHOICES, TOPICS
from tweetdesk.tickets.ids import TicketIdError, parse_ticket_id
from tweetdesk.web import auth, identity
from tweetdesk.web.context import ctx
from tweetdesk.web.desk_api import export_response

desk_pages = Blueprint("desk", __name__, template_folder="templates")

POLL_SECONDS = 5.0
PAGE = 50


def _me() -> Principal:
    p = auth.current_principal()
    assert p is not None  # agent_required ran
    return p


def _poll_ms() -> int:
    return int(float(current_app.config.get("TWEETDESK_DESK_POLL_SECONDS", POLL_SECONDS)) * 1000)


def _tid(raw: str) -> str:
    try:
        return parse_ticket_id(raw)
    except TicketIdError as e:
        abort(400, description=str(e))


def _back(tid: str):
    return redirect(url_for("web.agent_ticket", raw=tid) + "#desk", code=303)


@desk_pages.context_processor
def _inject() -> dict[str, Any]:
    # What base.html needs (as web.views gives its own pages).
    return {"me": auth.current_principal(), "can_write": auth.can_write(), "agent": auth.is_agent(),
            "agent_enabled": auth.agent_enabled(), "csrf_token": auth.csrf_token}


def ticket_context(t) -> dict[str, Any]:
    """What the agent view (``web/ticket.html``) shows of the desk: the timer, the assignee, who else has it
    open, canned replies for it, notes, corrections and the audit trail, and the view stamp."""
    d = identity.desk()
    me = _me()
    return {
        "desk": {
            "me": me,
            "can_write": me.can_write,
            "assignee": d.assignees([t.ticket_id]).get(t.ticket_id),
            "agents": d.agents(),
            "timer": Timers(d).for_ticket(t),
            "others": d.touch_view(t.ticket_id, me.name),
            "canned": d.canned.for_ticket(t),
            "notes": d.notes(t.ticket_id),
            "corrections": d.corrections(t.ticket_id),
            "audit": d.audit(t.ticket_id),
            "seen": d.snapshot(t.ticket_id),
            "reply_block": d.reply_block(t),
            "dm_block": (lambda b: None if b is None else b.reason)(d.dm_block(t)),
            "privacy_policy_url": d.privacy_policy_url,
            "topics": TOPICS,
            "sentiments": SENTIMENTS,
            "poll_ms": _poll_ms(),
        }
    }


# --- inbox ----------------------------------------------------------------------------------------


@desk_pages.get("/inbox")
@auth.agent_required
def inbox_page():
    me = _me()
    try:
        f = InboxFilters.parse(request.args, me=me.name)
    except DeskError as e:
        abort(400, description=str(e))
    try:
        offset = max(0, int(request.args.get("offset") or 0))
    except ValueError:
        offset = 0
    got = inbox(identity.desk(), f, limit=PAGE, offset=offset)
    return render_template(
        "web/inbox.html", active="inbox", f=f, got=got, offset=offset, page=PAGE, classes=CLASSES,
        topics=list(TOPIC_CHOICES), sentiments=[*SENTIMENTS, "unclassifiable", NOT_INFERRED],
        agents=identity.desk().agents(), langs=languages(identity.desk()), export_args=f.query_args(),
    )


@desk_pages.get("/inbox/export.<any(csv, parquet):fmt>")
@auth.agent_required
def inbox_export(fmt: str):
    try:
        f = InboxFilters.parse(request.args, me=_me().name)
    except DeskError as e:
        abort(400, description=str(e))
    return export_response(fmt, f, _me().name, "page")  # streamed; over the cap on concurrent exports: 429 with Retry-After


# --- actions on a ticket ---------------------------------------------------------------------------


def _act(tid: str, fn, ok: str):
    auth.check_csrf()
    try:
        fn()
    except DeskError as e:
        if e.status == 409 and e.kind == "stale":
            return _stale(tid, e)
        if e.status in (403, 404):
            abort(e.status, description=str(e))
        flash(str(e), "error")
        # The top of the page, where the error is shown (not "#desk", which scrolled it out of sight).
        return redirect(url_for("web.agent_ticket", raw=tid), code=303)
    flash(ok, "success")
    return _back(tid)


class ReplyRefusedPage(Exception):
    """A reply refused (X's rules, the text's rules): ``web.views`` answers with the ticket page again, the
    reason beside the reply box and the typed text still in it, rather than a redirect that loses both."""

    def __init__(self, ticket_id: str, refused: dict[str, Any], status: int):
        super().__init__(ticket_id)
        self.ticket_id, self.refused, self.status = ticket_id, refused, status


class StalePage(Exception):
    """A reply or resolve sent from a stale view of the ticket: ``web.views`` answers it with the ticket page
    again, fresh, showing what changed and what the agent tried (409)."""

    def __init__(self, ticket_id: str, stale: dict[str, Any]):
        super().__init__(ticket_id)
        self.ticket_id, self.stale = ticket_id, stale


def _stale(tid: str, e: DeskError):
    raise StalePage(tid, {"changes": e.extra.get("changes", []), "text": request.form.get("text"),
                          "action": request.path.rsplit("/", 1)[-1]})


def resolve_from_page(tid: str):
    """The agent view's resolve button (``web.views.resolve``): audited, refused (409) on a stale view."""
    before = identity.desk().store.get_ticket(tid)
    if before is None:
        abort(404, description=f"No ticket {tid}.")
    try:
        identity.desk().resolve(tid, _me(), seen=request.form.get("seen") or None, note="resolved in the agent view")
    except DeskError as e:
        if e.kind != "stale":
            raise
        return _stale(tid, e)
    if before.status.value == "resolved":
        flash(f"Ticket {tid} was already resolved.", "info")
    else:
        flash(f"Ticket {tid} resolved.", "success")
    return redirect(url_for("web.agent_ticket", raw=tid), code=303)


@desk_pages.post("/tickets/<path:raw>/take")
@auth.writer_required
def take(raw: str):
    tid = _tid(raw)
    me = _me()
    if me.user_id is None:
        flash("The API key is not an account: sign in with your name to take tickets, or assign them.", "error")
        return _back(tid)
    return _act(tid, lambda: identity.desk().assign(tid, me.name, me), f"You took {tid}.")


@desk_pages.post("/tickets/<path:raw>/assign")
@auth.writer_required
def assign(raw: str):
    tid = _tid(raw)
    who = (request.form.get("assignee") or "").strip() or None
    msg = f"{tid} assigned to {who}." if who else f"{tid} unassigned."
    return _act(tid, lambda: identity.desk().assign(tid, who, _me()), msg)


@desk_pages.post("/tickets/<path:raw>/reply")
@auth.writer_required
def reply(raw: str):
    tid = _tid(raw)

    def send():
        text = request.form.get("text", "")
        channel = request.form.get("channel") or "public"
        try:
            identity.desk().send_reply(tid, text, _me(), seen=request.form.get("seen") or None, channel=channel)
        except DeskError as e:
            if e.kind == "stale" or e.status in (403, 404):
                raise
            raise ReplyRefusedPage(tid, {"reason": str(e), "text": text}, e.status) from None
        poster = identity.ctx_poster()
        if poster is not None:
            poster.wake()

    return _act(tid, send, "Reply queued: it goes out under the reply budget.")


@desk_pages.post("/tickets/<path:raw>/notes")
@auth.writer_required
def note(raw: str):
    tid = _tid(raw)
    return _act(tid, lambda: identity.desk().add_note(tid, request.form.get("text", ""), _me()), "Note added.")


@desk_pages.post("/tickets/<path:raw>/correct")
@auth.writer_required
def correct(raw: str):
    tid = _tid(raw)
    f = request.form
    return _act(tid, lambda: identity.desk().correct(tid, _me(), topic=f.get("topic") or None,
                                                     sentiment=f.get("sentiment") or None),
                "Correction saved: the ticket's labels changed, and the tweet is kept as a labelled example.")


@desk_pages.get("/desk/api/tickets/<path:raw>/presence")
@auth.agent_required
def presence(raw: str):
    tid = _tid(raw)
    d = identity.desk()
    try:
        d.ticket(tid)
        others = d.touch_view(tid, _me().name)
        changes = d.changes_since(tid, request.args.get("seen") or None)
    except DeskError as e:
        return jsonify(error=str(e)), e.status
    return jsonify({"others": others, "changed": bool(changes), "changes": changes})


# --- canned replies, users, report -----------------------------------------------------------------------


@desk_pages.route("/canned", methods=["GET", "POST"])
@auth.agent_required
def canned():
    d = identity.desk()
    me = _me()
    status, form = 200, {}
    if request.method == "POST":
        auth.check_csrf()
        if not me.is_admin:
            abort(403, description="Only admins edit canned replies.")
        form = {k: request.form.get(k, "") for k in ("title", "topic", "sentiment", "text")}
        raw_id = request.form.get("id") or None
        try:
            if request.form.get("delete"):
                d.canned.delete(int(raw_id), me)
                flash("Canned reply deleted.", "success")
            else:
                d.canned.save(form, me, int(raw_id) if raw_id else None)
                flash(f"Canned reply “{form['title'].strip()}” saved.", "success")
            return redirect(url_for("desk.canned"), code=303)
        except (DeskError, ValueError) as e:
            status = getattr(e, "status", 400)
            flash(str(e), "error")
    return render_template("web/canned.html", active="canned", items=d.canned.list(), form=form, topics=TOPICS,
                           sentiments=SENTIMENTS), status


@desk_pages.route("/users", methods=["GET", "POST"])
@auth.agent_required
def users():
    me = _me()
    if not me.is_admin:
        abort(403, description="Only admins manage accounts.")
    accounts = identity.desk().accounts
    shown, status = None, 200
    if request.method == "POST":
        auth.check_csrf()
        action, name = request.form.get("action"), request.form.get("name", "")
        try:
            if action == "add":
                user, pw = accounts.add(name, request.form.get("role", ""), actor=me.name)
                shown = {"name": user["name"], "password": pw}
            elif action == "reset":
                shown = {"name": name.lower(), "password": accounts.reset(name, actor=me.name)}
            elif action in ("disable", "enable"):
                accounts.disable(name, actor=me.name, enable=action == "enable")
                flash(f"{name} {action}d.", "success")
            else:
                abort(400, description="unknown action")
        except DeskError as e:
            status = e.status
            flash(str(e), "error")
    return render_template("web/users.html", active="users", items=accounts.list(), roles=ROLES, shown=shown), status


@desk_pages.route("/password", methods=["GET", "POST"])
@auth.agent_required
def password():
    """Change your own password (the current one is asked again: a session left open is not enough)."""
    me = _me()
    status = 200
    if request.method == "POST":
        auth.check_csrf()
        try:
            identity.desk().accounts.change_password(me, request.form.get("current", ""), request.form.get("new", ""),
                                                     request.form.get("confirm", ""))
        except DeskError as e:
            status = e.status
            flash(str(e), "error")
        else:
            auth.sign_in(me)  # a fresh session for this browser; the others carry the old password date and end
            flash("Password changed. Your other sessions are signed out.", "success")
            return redirect(url_for("desk.password"), code=303)
    return render_template("web/password.html", active="password"), status


@desk_pages.get("/report")
@auth.agent_required
def report():
    rep = Timers(identity.desk()).report()
    return render_template("web/report.html", active="report", rep=rep)


TODAY_SECONDS = 30.0


@desk_pages.app_template_global("desk_today")
def desk_today() -> dict[str, Any]:
    """Today's first-response figures for the dashboard, shared by every request for ``TODAY_SECONDS``."""
    shared = ctx().shared
    at, value = shared.get("desk_today", (0.0, None))
    if value is None or time.monotonic() - at > TODAY_SECONDS:
        value = Timers(identity.desk()).report(days=1)["overall"]
        shared["desk_today"] = (time.monotonic(), value)
    return value


@desk_pages.app_template_filter("minutes")
def minutes(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    m = seconds / 60
    return f"{m:.0f} min" if m < 120 else f"{m / 60:.1f} h"


def _page(status: int, title: str, message: str):
    return render_template("web/error.html", title=title, message=message, status=status, active=None), status


@desk_pages.errorhandler(DeskError)
def _desk_error(e: DeskError):
    if request.path.startswith("/desk/api/"):
        return jsonify(error=str(e), kind=e.kind), e.status
    return _page(e.status, "Not done", str(e))


@desk_pages.errorhandler(HTTPException)
def _http_error(e: HTTPException):
    if request.path.startswith("/desk/api/"):
        return jsonify(error=e.description or e.name), e.code
    if e.code == 429:
        resp = current_app.make_response(_page(429, "Too many wrong keys", e.description or ""))
        if getattr(e, "retry_after", None) is not None:
            resp.headers["Retry-After"] = str(e.retry_after)
        return resp
    if e.code == 400 and isinstance(e, CSRFError):
        return _page(400, "This form has expired", "Please go back, reload the page and try again.")
    titles = {400: "Bad request", 401: "Sign-in needed", 403: "Not allowed", 404: "Not found"}
    return _page(e.code or 500, titles.get(e.code, e.name), e.description or "")
