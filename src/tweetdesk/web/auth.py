"""The one key check of the service: the admin API key (``settings.api_key``) for the JSON API's admin routes
(``web.api``) and the agent pages (``web.views``). It is sent with each request as ``X-API-Key`` /
``Authorization: Bearer`` (scripts, the API), or typed once into the pages' login form (then a signed
session cookie). Keys are compared in constant time, and wrong ones are throttled per client address
(``throttle.KeyThrottle``): while an address must wait, ``Throttled`` (429) is raised without comparing.
Cookie sessions need a CSRF token on every POST (Flask-WTF's signed token); header requests do not (a
browser cannot add the header cross-site).

The cookie is signed with a key derived from the deployment's secret (``tweetdesk.secret_key``), never
from the API key: a cookie anyone can get from ``/login`` must not let them test key guesses offline. A
session also lives on the server (``sessions.SessionRegistry``): signing out ends it for every copy of
the cookie, and it ends by itself after ``TWEETDESK_SESSION_LIFETIME_SECONDS``.

Without an API key the agent pages refuse, like the admin API (``Settings.api_key``: unset = off).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from functools import wraps
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, g, redirect, request, session, url_for
from flask_wtf.csrf import CSRFError, generate_csrf, validate_csrf
from werkzeug.exceptions import TooManyRequests
from wtforms.validators import ValidationError

from tweetdesk.secret_key import session_key
from tweetdesk.web.context import ctx
from tweetdesk.web.sessions import SessionRegistry
from tweetdesk.web.throttle import KeyThrottle

SESSION_KEY = "tweetdesk_agent"
SESSION_ID = "tweetdesk_sid"


def configured_key(settings) -> str | None:
    key = settings.api_key.get_secret_value() if settings.api_key is not None else None
    return key or None


def _fingerprint(key: str) -> str:
    # Stored in the session instead of the key: changing the key signs every agent out.
    return hmac.new(key.encode(), b"tweetdesk agent session", hashlib.sha256).hexdigest()


def init_app(app: Flask, settings) -> None:
    """Session and CSRF settings the agent pages rely on; leaves anything the app set alone."""
    if not app.secret_key:
        app.secret_key = session_key(settings)
    if app.config.get("SESSION_COOKIE_SAMESITE") is None:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(seconds=settings.session_lifetime_seconds)
    # A tab left open over lunch can still resolve a ticket; the token is tied to the session anyway.
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", min(12 * 3600, settings.session_lifetime_seconds))
    store = app.extensions["tweetdesk"].store
    app.extensions["tweetdesk_sessions"] = SessionRegistry(store, settings.session_lifetime_seconds)
    app.extensions.setdefault("tweetdesk_throttle", KeyThrottle.from_settings(settings))


def presented_key() -> str | None:
    """The key this request carries in a header (``X-API-Key``, else ``Authorization: Bearer``), if any."""
    key = request.headers.get("X-API-Key")
    if key:
        return key
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return None


def _settings():
    return ctx().settings


def _sessions() -> SessionRegistry:
    return current_app.extensions["tweetdesk_sessions"]


def _throttle() -> KeyThrottle:
    return current_app.extensions["tweetdesk_throttle"]


def agent_enabled() -> bool:
    return configured_key(_settings()) is not None


class Throttled(TooManyRequests):
    def __init__(self, retry_after: int):
        super().__init__(f"Too many wrong API keys from your address. Try again in {retry_after} s.",
                         retry_after=retry_after)


def key_matches(supplied: str) -> bool:
    """Constant-time comparison with the configured key, throttled per client address: while the address
    must wait, raises ``Throttled`` (429) without comparing."""
    key = configured_key(_settings())
    if key is None or not supplied:
        return False
    wait = _throttle().retry_after(request.remote_addr)
    if wait:
        raise Throttled(wait)
    ok = hmac.compare_digest(supplied.encode("utf-8", "surrogatepass"), key.encode())
    if ok:
        _throttle().succeeded(request.remote_addr)
    else:
        _throttle().failed(request.remote_addr, request.path)
    return ok


def via_header() -> bool:
    """The request carries the right key itself (no cookie involved). Checked once per request: a wrong key
    counts once against the address however often a request asks. Raises ``Throttled`` while the address
    must wait."""
    if "tweetdesk_via_header" not in g:
        g.tweetdesk_via_header = False  # stays False if key_matches raises Throttled (the error page asks again)
        supplied = presented_key()
        if supplied is not None:
            g.tweetdesk_via_header = key_matches(supplied)
    return g.tweetdesk_via_header


def is_agent() -> bool:
    key = configured_key(_settings())
    if key is None:
        return False
    if via_header():
        return True
    if "tweetdesk_cookie_agent" not in g:
        fp = session.get(SESSION_KEY)
        g.tweetdesk_cookie_agent = (
            isinstance(fp, str) and hmac.compare_digest(fp, _fingerprint(key)) and _sessions().active(session.get(SESSION_ID))
        )
    return g.tweetdesk_cookie_agent


def sign_in() -> None:
    session.clear()  # a fresh session on privilege change (no fixation)
    session[SESSION_KEY] = _fingerprint(configured_key(_settings()))
    session[SESSION_ID] = _sessions().start()
    session.permanent = True  # the cookie expires with the server-side session
    g.pop("tweetdesk_cookie_agent", None)


def sign_out() -> None:
    _sessions().end(session.get(SESSION_ID))
    session.clear()
    g.pop("tweetdesk_cookie_agent", None)


def csrf_token() -> str:
    return generate_csrf()


def check_csrf() -> None:
    """Abort 400 unless a cookie-session POST carries a valid token (header-key requests are exempt)."""
    if via_header():
        return
    try:
        validate_csrf(request.form.get("csrf_token"))
    except ValidationError as e:
        raise CSRFError(str(e)) from None


def safe_next(target: str | None) -> str | None:
    """Only same-site paths may be a redirect target after sign-in (no open redirect)."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


def agent_required(view):
    """Agent pages: 403 when no key is configured, sign-in redirect (or 401 for non-GET) otherwise."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if not agent_enabled():
            abort(403, description="agent-disabled")
        if not is_agent():
            if request.method == "GET" and presented_key() is None:
                return redirect(url_for("web.login", next=request.full_path.rstrip("?")))
            abort(401)
        return view(*args, **kwargs)

    return wrapper
