"""Agent sign-in for the web pages: the admin API key (``settings.api_key``), either typed once into a
login form (then a signed session cookie) or sent with each request as ``X-API-Key`` / ``Authorization:
Bearer`` (scripts). Keys are compared in constant time. Cookie sessions need a CSRF token on every
POST (Flask-WTF's signed token); header requests do not (a browser cannot add the header cross-site).

Without an API key the agent pages refuse, like the admin API (``Settings.api_key``: unset = off).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from functools import wraps
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, redirect, request, session, url_for
from flask_wtf.csrf import CSRFError, generate_csrf, validate_csrf
from wtforms.validators import ValidationError

SESSION_KEY = "tweetdesk_agent"


def configured_key(settings) -> str | None:
    key = settings.api_key.get_secret_value() if settings.api_key is not None else None
    return key or None


def _fingerprint(key: str) -> str:
    # Stored in the session instead of the key: changing the key signs every agent out.
    return hmac.new(key.encode(), b"tweetdesk agent session", hashlib.sha256).hexdigest()


def init_app(app: Flask, settings) -> None:
    """Session and CSRF settings the agent pages rely on; leaves anything the app set alone."""
    if not app.secret_key:
        key = configured_key(settings)
        # Derived from the API key so sessions survive a restart; random when there is no key
        # (then nobody can sign in and the secret only signs CSRF tokens on public forms).
        app.secret_key = (
            hmac.new(key.encode(), b"tweetdesk flask secret", hashlib.sha256).digest() if key else os.urandom(32)
        )
    if app.config.get("SESSION_COOKIE_SAMESITE") is None:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    # A tab left open over lunch can still resolve a ticket; the token is tied to the session anyway.
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", 12 * 3600)


def _header_key() -> str | None:
    key = request.headers.get("X-API-Key")
    if key:
        return key
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return None


def _settings():
    return current_app.extensions["tweetdesk"].settings


def agent_enabled() -> bool:
    return configured_key(_settings()) is not None


def key_matches(supplied: str) -> bool:
    key = configured_key(_settings())
    if key is None or not supplied:
        return False
    return hmac.compare_digest(supplied.encode("utf-8", "surrogatepass"), key.encode())


def via_header() -> bool:
    """The request carries the right key itself (no cookie involved)."""
    supplied = _header_key()
    return supplied is not None and key_matches(supplied)


def is_agent() -> bool:
    key = configured_key(_settings())
    if key is None:
        return False
    if via_header():
        return True
    fp = session.get(SESSION_KEY)
    return isinstance(fp, str) and hmac.compare_digest(fp, _fingerprint(key))


def sign_in() -> None:
    session.clear()  # a fresh session on privilege change (no fixation)
    session[SESSION_KEY] = _fingerprint(configured_key(_settings()))
    session.permanent = False


def sign_out() -> None:
    session.clear()


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
            if request.method == "GET" and _header_key() is None:
                return redirect(url_for("web.login", next=request.full_path.rstrip("?")))
            abort(401)
        return view(*args, **kwargs)

    return wrapper
