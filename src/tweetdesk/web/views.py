"""The web pages, as one Flask blueprint on the reply service's app.

* ``/``                    dashboard: counts, charts, newest tickets; live via ``/web/api/summary``.
* ``/web/api/summary``     the dashboard's figures as JSON (same filters: ``?topic=&sentiment=``).
* ``/t`` and ``/t/<id>``   public ticket tracking: status, topic and timestamps only.
* ``/tickets/<id>``        agent view (API key): the tweet, entities, replies, resolve button.
* ``/login``, ``/logout``  agent sign-in with the API key (signed session cookie, CSRF-protected).

The dashboard shows tweets, handles and replies, so it is an agent page too once an API key is set;
without a key (the dry-run demo on 127.0.0.1) it stays open and says so, while the agent view is off.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf.csrf import CSRFError
from markupsafe import Markup
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from tweetdesk.records import NOT_INFERRED, UNCLASSIFIABLE
from tweetdesk.reply.templates import INVITE_DM
from tweetdesk.tickets.ids import TicketIdError, parse_ticket_id
from tweetdesk.tickets.store import StoreError, TicketStore
from tweetdesk.web import auth, desk_views, queries
from tweetdesk.web.context import ctx
from tweetdesk.web.format import BUCKET_TEXT, bucket_labels, duration, highlight, money
from tweetdesk.web.summary_cache import Snapshot, SummaryBusy, SummaryCache
from tweetdesk.x.rules import DM_READ

blueprint = Blueprint(
    "web",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/web/static",
)

NEWEST = 10  # tickets in the dashboard's "newest" list
DEFAULT_REFRESH_SECONDS = 3.0

STATUS_LABELS = {"open": "Open", "replied": "Replied", "resolved": "Resolved", "failed": "Failed"}


# ----------------------------------------------------------------------------------------------
# Wiring: tweetdesk.app.create_app registers this blueprint and keeps the settings, the store and the
# reply budget in app.extensions["tweetdesk"] (a web.context.AppContext).
# ----------------------------------------------------------------------------------------------


def _settings():
    return ctx().settings


def _store() -> TicketStore:
    return ctx().store


def _refresh_ms() -> int:
    return int(float(current_app.config.get("TWEETDESK_WEB_REFRESH_SECONDS", DEFAULT_REFRESH_SECONDS)) * 1000)


# ----------------------------------------------------------------------------------------------
# Template helpers
# ----------------------------------------------------------------------------------------------


def _fmt_time(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%-d %b %Y, %H:%M UTC")


@blueprint.app_template_filter("timetag")
def timetag(dt: datetime | None) -> Markup:
    if dt is None:
        return Markup('<span class="muted">—</span>')
    iso = dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return Markup('<time datetime="{}">{}</time>').format(iso, _fmt_time(dt))


@blueprint.app_template_filter("status_label")
def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, str(status).replace("_", " ").capitalize())


@blueprint.app_template_filter("topic_label")
def topic_label(topic: str) -> str:
    return "Unclassified" if topic == UNCLASSIFIABLE else "Not inferred (language)" if topic == NOT_INFERRED else topic


def ticket_link(ticket_id: str) -> str:
    """Dashboard links go to the agent view when there is one, else to the public page."""
    if auth.agent_enabled():
        return url_for("web.agent_ticket", raw=ticket_id)
    return url_for("web.track", raw=ticket_id)


@blueprint.context_processor
def _inject() -> dict[str, Any]:
    return {
        "agent": auth.is_agent(),
        "me": auth.current_principal(),
        "can_write": auth.can_write(),
        "agent_enabled": auth.agent_enabled(),
        "csrf_token": auth.csrf_token,
        "ticket_link": ticket_link,
    }


@blueprint.app_template_global()
def server_now() -> str:
    """The service's clock, for the pages' countdowns: an agent's computer may be minutes off."""
    return ctx().desk.clock().isoformat().replace("+00:00", "Z")


# ----------------------------------------------------------------------------------------------
# Dashboard
# ----------------------------------------------------------------------------------------------


def _staff_only() -> Response | None:
    """With an API key set, the dashboard is for signed-in agents only."""
    if auth.agent_enabled() and not auth.is_agent():
        if request.path.startswith("/web/api/"):
            return jsonify(error="sign in with the API key (or send X-API-Key)"), 401
        return redirect(url_for("web.login", next=request.full_path.rstrip("?")))
    return None


def _dm_text(dms: dict[str, Any]) -> str:
    """The DM card's caption: X's caps, and the wait when a cap holds DMs back."""
    if not dms:
        return ""
    text = f"per {dms['window_seconds'] // 60} min; {dms['sent_24h']:,} / {dms['daily_limit']:,} in 24 h"
    if dms.get("next_dm_in_seconds"):
        text += f"; next DM in {duration(dms['next_dm_in_seconds'])} ({dms.get('held_by')} cap)"
    return text


def summary_payload(s: queries.Summary) -> dict[str, Any]:
    """The figures in the shape dashboard.js and the template use."""
    sot = s.over_time
    budget = None
    if s.budget is not None:
        b = s.budget
        budget = {
            "queue_length": b.queue_length,
            "expected_wait_seconds": b.expected_wait_seconds,
            "expected_wait": duration(b.expected_wait_seconds),
            "replies_this_window": f"{b.replies_this_window} / {b.reply_limit}",
            "window_text": f"limit per {b.window_seconds // 60} min",
            "spend_today_usd": b.spend_today_usd,
            "spend_today": money(b.spend_today_usd),
            "spend_month": money(b.spend_month_usd),
            # The cap in the caption: "0 / 3,000,000" as one figure wrapped mid-number on narrow cards.
            "reads_month": f"{b.reads_month:,}",
            "reads_cap_text": f"of X's monthly cap, {b.monthly_read_cap:,}",
            "read_cap_warning": b.read_cap_warning,
            "enforced": b.enforced,
            "flood_reasons": [{"reason": r.reason, "count": r.count} for r in b.flood_reasons],
            "dms_window": f"{b.dms.get('sent_this_window', 0)} / {b.dms.get('limit', '?')}",
            "dms_text": _dm_text(b.dms),
            "dm_month": ", ".join(f"{int(v['count']):,} {'reads' if k == DM_READ else 'sent'} ({money(v['cost_usd'])})"
                                  for k, v in sorted(b.dm_month.items())) or "none",
        }
        if not b.enforced:  # dry-run: nothing is posted, so X's limits do not apply (and are not counted against)
            budget["replies_this_window"] = f"{b.replies_this_window}"
            budget["window_text"] = "dry-run: X's limits not applied"
    payload = {
        "filters": {"topic": s.filters.topic, "sentiment": s.filters.sentiment, "lang": s.filters.lang},
        "totals": {
            "tweets": s.tweets,
            "tickets": s.tickets,
            "tickets_note": "matching filters" if s.filters.active else "all time",
            "dead_letters": s.dead_letters,
            "listening_only": s.listening_only,
            "opted_out": s.opted_out,
        },
        "by_status": [{"status": k, "count": v} for k, v in s.by_status.items()],
        "by_topic": [{"topic": k, "count": v} for k, v in s.by_topic.items()],
        "by_sentiment": [{"sentiment": k, "count": v} for k, v in s.by_sentiment.items()],
        "by_lang": [{"lang": k, "count": v} for k, v in s.by_lang.items()],
        "sentiment_over_time": {
            "bucket_seconds": sot.bucket_seconds,
            "bucket_text": f"(UTC, {BUCKET_TEXT.get(sot.bucket_seconds, f'per {sot.bucket_seconds} s')})",
            "labels": bucket_labels(sot.starts, sot.bucket_seconds),
            "starts": queries.as_jsonable(sot.starts),
            "series": sot.series,
        },
        "newest": queries.as_jsonable(s.newest),
        "budget": budget,
        "labels": {
            "status": {k: status_label(k) for k in s.by_status},
            "topic": {k: topic_label(k) for k in s.by_topic},
        },
    }
    # Changes whenever a figure does: the page skips redrawing when nothing moved.
    payload["version"] = hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
    payload["generated_at"] = queries.as_jsonable(s.generated_at)
    return payload


def _filters() -> queries.Filters:
    return queries.Filters.parse(request.args.get("topic") or None, request.args.get("sentiment") or None,
                                 request.args.get("lang") or None)


def compute_summary(c, filters: queries.Filters) -> tuple[queries.Summary, dict[str, Any]]:
    """The dashboard's figures for ``filters`` from the app's context ``c`` (what ``c.summary`` shares)."""
    # The budget panel reads the app's one reply budget, as GET /api/budget does.
    s = queries.summary(c.store, filters, budget=c.budget, newest=NEWEST)
    return s, summary_payload(s)


def summary_cache() -> SummaryCache:
    """The app's shared summaries (``summary_cache.SummaryCache``)."""
    return ctx().summary


# Dashboard requests served at once. A crowd of dashboards polling back to back would otherwise fill every
# worker thread and the server's queue, and a customer's tracking page (or an API call) would wait behind all
# of them; gated, the extra dashboard requests wait here, off the CPU, while other pages go straight through
# (the service runs more worker threads than this, see tweetdesk.serve.ReplyService).
SUMMARY_REQUESTS_AT_ONCE = 2
_GATED = ("web.dashboard", "web.api_summary")


def _summary_gate() -> threading.BoundedSemaphore:
    return ctx().summary_gate


@blueprint.before_request
def _enter_gate() -> None:
    if request.endpoint in _GATED:
        _summary_gate().acquire()
        g.tweetdesk_gate = True


def _leave_gate() -> None:
    if g.pop("tweetdesk_gate", False):
        _summary_gate().release()


@blueprint.teardown_request
def _teardown_gate(_exc) -> None:
    _leave_gate()


def _gated_summary() -> Snapshot:
    """The shared summary for this request's filters: at most ``web_summary_seconds`` old, or the last one while a
    newer one is computed. The gate is let go while a filter's first summary is computed (that can take
    seconds), so other dashboards are not held up."""
    cache, key = summary_cache(), _filters()
    if not cache.ready(key):
        _leave_gate()
    return cache.get(key)


@blueprint.get("/")
def dashboard():
    if (r := _staff_only()) is not None:
        return r
    s, payload = _gated_summary().value
    return render_template(
        "web/dashboard.html",
        active="dashboard",
        s=payload,
        newest=s.newest,
        filtered=s.filters.active,
        newest_limit=NEWEST,
        topics=queries.TOPIC_CHOICES,
        sentiments=queries.SENTIMENT_CHOICES,
        refresh_ms=_refresh_ms(),
        generated_at=s.generated_at,
    )


@blueprint.get("/web/api/summary")
def api_summary():
    if (r := _staff_only()) is not None:
        return r
    snap = _gated_summary()
    body = snap.memo.get("json")
    if body is None:
        # Rendered once per summary (links depend only on whether the agent view is on, an app setting).
        s, payload = snap.value
        html = render_template("web/_newest.html", newest=s.newest, filtered=s.filters.active)
        body = snap.memo.setdefault("json", current_app.json.dumps({**payload, "newest_html": html}))
    return Response(body, mimetype="application/json", headers={"Cache-Control": "no-store"})


# ----------------------------------------------------------------------------------------------
# Public tracking page
# ----------------------------------------------------------------------------------------------

_ID_ERRORS = {
    "check": (
        "This ticket ID has a typo",
        "Its last character is a check character, and it does not match the rest: a character was "
        "probably mistyped, or two were swapped. Please compare it with the ID in our reply on X.",
    ),
    "prefix": (
        "This is not one of our ticket IDs",
        "Ticket IDs start with a three-letter topic code such as BAG, DLY or RFD. Please check the first "
        "three letters against our reply on X.",
    ),
    "format": (
        "This is not a ticket ID",
        "Ticket IDs look like BAG-7KQ4M2XZ-H: three letters, eight letters or digits, and one check "
        "character. They never contain 0, 1, I or O.",
    ),
}


@blueprint.get("/t")
@blueprint.get("/t/")
def track_form():
    raw = (request.args.get("id") or "").strip()
    if raw:
        return redirect(url_for("web.track", raw=raw))
    return render_template("web/track.html", active="track", ticket=None, error=None, query="")


@blueprint.get("/t/<path:raw>")
def track(raw: str):
    try:
        ticket_id = parse_ticket_id(raw)
    except TicketIdError as e:
        title, message = _ID_ERRORS.get(e.kind, ("This is not a ticket ID", str(e)))
        error = {"kind": e.kind, "title": title, "message": message}
        return render_template("web/track.html", active="track", ticket=None, error=error, query=raw[:40]), 400
    if ticket_id != raw:
        return redirect(url_for("web.track", raw=ticket_id))
    st = queries.public_status(_store(), ticket_id)
    if st is None:
        error = {
            "kind": "not_found",
            "title": "No ticket with this ID",
            "message": f"{ticket_id} is a well-formed ticket ID, but we hold no ticket with it. If you "
            "tweeted us in the last few minutes it may still be on its way; otherwise please check the "
            "ID in our reply on X.",
        }
        return render_template("web/track.html", active="track", ticket=None, error=error, query=ticket_id), 404
    label, explanation, reply_note = queries.public_explanation(st, queries.reply_state(_store(), ticket_id))
    view = {
        **asdict(st),
        "status_label": label or status_label(st.status),
        "status_explanation": explanation,
        "reply_note": reply_note,
        "topic_label": topic_label(st.topic),
    }
    return render_template("web/track.html", active="track", ticket=view, error=None, query=ticket_id)


# ----------------------------------------------------------------------------------------------
# Agent view
# ----------------------------------------------------------------------------------------------


def _agent_ticket_id(raw: str) -> str:
    try:
        return parse_ticket_id(raw)
    except TicketIdError as e:
        abort(400, description=str(e))


@blueprint.get("/tickets/<path:raw>")
@auth.agent_required
def agent_ticket(raw: str):
    ticket_id = _agent_ticket_id(raw)
    if ticket_id != raw:
        return redirect(url_for("web.agent_ticket", raw=ticket_id))
    return agent_ticket_page(ticket_id)


def agent_ticket_page(ticket_id: str, *, stale: dict | None = None, refused: dict | None = None, status: int = 200):
    """The agent view; ``stale``: a reply or resolve refused because the ticket changed under it (409)."""
    store = _store()
    ticket = store.get_ticket(ticket_id)
    if ticket is None:
        abort(404, description=f"No ticket {ticket_id}.")
    replies = store.replies_for(ticket_id)
    conversation = store.conversation(ticket_id)
    return render_template(
        "web/ticket.html",
        active="ticket",
        t=ticket,
        replies=replies,
        dm_state={"dmed": any(m["kind"] == "customer" and m["channel"] == "dm" for m in conversation),
                  "invited": any(r.channel != "dm" and INVITE_DM.search(r.text) for r in replies)},
        opt_out=store.opt_out_of(ticket.author, ticket.author_id),
        text_html=highlight(ticket.text, ticket.entities),
        # The whole thread, oldest first: the customer's tweets (the first is the one above), our own tweets
        # and our replies, as GET /api/tickets/<id> gives it.
        conversation=conversation,
        stale=stale,
        refused=refused,
        **desk_views.ticket_context(ticket),  # the desk: timer, assignee, others viewing, notes, history
    ), status


@blueprint.errorhandler(desk_views.ReplyRefusedPage)
@blueprint.app_errorhandler(desk_views.ReplyRefusedPage)
def _reply_refused_page(e: desk_views.ReplyRefusedPage):
    return agent_ticket_page(e.ticket_id, refused=e.refused, status=e.status)


@blueprint.errorhandler(desk_views.StalePage)  # before this blueprint's catch-all below
@blueprint.app_errorhandler(desk_views.StalePage)  # the desk's page routes too
def _stale_page(e: desk_views.StalePage):
    return agent_ticket_page(e.ticket_id, stale=e.stale, status=409)


@blueprint.post("/tickets/<path:raw>/resolve")
@auth.writer_required
def resolve(raw: str):
    auth.check_csrf()
    return desk_views.resolve_from_page(_agent_ticket_id(raw))  # audited; 409 when the page was stale


# ----------------------------------------------------------------------------------------------
# Sign in / out
# ----------------------------------------------------------------------------------------------


@blueprint.route("/login", methods=["GET", "POST"])
def login():
    nxt = auth.safe_next(request.values.get("next")) or url_for("web.dashboard")
    if not auth.agent_enabled():
        abort(403, description="agent-disabled")
    error = None
    if request.method == "POST":
        auth.check_csrf()
        key, name = request.form.get("api_key", ""), request.form.get("name", "").strip()
        if key:
            ok = auth.key_matches(key)
            auth.record_sign_in(auth.bootstrap_admin("session") if ok else None)
            if ok:
                auth.sign_in()
                flash("Signed in.", "success")
                return redirect(nxt, code=303)
            error = "That API key is not right."  # logged (rate-limited) by the throttle
        elif name:
            p = auth.password_matches(name, request.form.get("password", ""))
            if p is not None:
                auth.sign_in(p)
                flash(f"Signed in as {p.name} ({p.role}).", "success")
                return redirect(nxt, code=303)
            error = "That name and password do not match an active account."
        else:
            error = "Give your name and password (or the API key)."
    elif auth.is_agent():
        return redirect(nxt)
    status = 401 if error else 200
    return render_template("web/login.html", active="login", error=error, next=nxt), status


@blueprint.post("/logout")
def logout():
    auth.check_csrf()
    auth.sign_out()
    flash("Signed out.", "info")
    return redirect(url_for("web.track_form"), code=303)


# ----------------------------------------------------------------------------------------------
# Errors on these pages: readable HTML, never a traceback
# ----------------------------------------------------------------------------------------------


def _error_page(status: int, title: str, message: str, **context: Any):
    return render_template("web/error.html", title=title, message=message, status=status, active=None, **context), status


def page_for_unrouted(status: int) -> Any:
    """The error page for a path no route matches (no blueprint's request: this one's context is passed here)."""
    title, message = {404: ("Not found", "There is nothing at this address.")}.get(status, ("Not done", ""))
    return _error_page(status, title, message, **_inject())


@blueprint.errorhandler(CSRFError)
def _csrf_error(e):
    return _error_page(400, "This form has expired", "Please go back, reload the page and try again.")


@blueprint.errorhandler(400)
def _bad_request(e):
    return _error_page(400, "Bad request", e.description or "The request could not be understood.")


@blueprint.errorhandler(401)
def _unauthorised(e):
    return _error_page(401, "Sign-in needed", "This action needs the agent API key.")


@blueprint.errorhandler(403)
def _forbidden(e):
    if e.description == "agent-disabled":
        return _error_page(
            403,
            "The agent view is off",
            "No API key is configured and no desk account exists. Set TWEETDESK_API_KEY and restart the service, "
            "or create an account (tweetdesk users add NAME --role admin).",
        )
    return _error_page(403, "Not allowed", e.description or "")


@blueprint.errorhandler(429)
def _too_many(e):
    message = e.description or "Please wait a moment and try again."
    if request.path.startswith("/web/api/"):
        resp = jsonify(error=message)
        resp.status_code = 429
    else:
        resp = current_app.make_response(_error_page(429, "Too many wrong keys", message))
    if getattr(e, "retry_after", None) is not None:
        resp.headers["Retry-After"] = str(e.retry_after)
    return resp


@blueprint.errorhandler(404)
def _not_found(e):
    return _error_page(404, "Not found", e.description or "There is nothing at this address.")


@blueprint.errorhandler(StoreError)
@blueprint.errorhandler(SQLAlchemyError)
def _store_down(e):
    current_app.logger.error("web: ticket store error: %s", e)
    if request.path.startswith("/web/api/"):
        return jsonify(error="ticket store unavailable"), 503
    return _error_page(503, "Ticket store unavailable", "Please try again in a moment.")


@blueprint.errorhandler(SummaryBusy)
def _summary_busy(e):
    current_app.logger.warning("web: %s", e)
    if request.path.startswith("/web/api/"):
        resp = jsonify(error="dashboard figures are being computed, retry shortly")
    else:
        resp = current_app.make_response(_error_page(503, "Figures on their way", "Please try again in a moment."))
    resp.status_code = 503
    resp.headers["Retry-After"] = "5"
    return resp


@blueprint.errorhandler(Exception)
def _unexpected(e):
    # The app's own handlers answer JSON (it is an API); these pages answer HTML.
    if isinstance(e, HTTPException):
        return _error_page(e.code or 500, e.name, e.description or "")
    current_app.logger.exception("web: unhandled error on %s %r", request.method, request.path)
    if request.path.startswith("/web/api/"):
        return jsonify(error="internal error"), 500
    return _error_page(500, "Something went wrong", "The error is logged. Please try again in a moment.")
