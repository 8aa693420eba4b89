"""The one sign-in check of the service, for the JSON API's admin routes (``web.api``, ``web.desk_api``) and the
agent pages (``web.views``, ``web.desk_views``): who a request acts as (``current_principal``, a
``desk.accounts.Principal``). A request names itself by a header (``X-API-Key`` / ``Authorization: Bearer``)
holding the admin API key (``settings.api_key``: the bootstrap admin) or a desk account's personal API token
(``tdk_…``), or by a signed session cookie after typing the key, or an account's name and password, into the
login form. Viewers read; changing anything needs an admin or agent (``writer_required``). Keys are compared in
constant time. Wrong keys, tokens and passwords are throttled (``throttle.KeyThrottle``) per client address and
per target account, and a right credential forgives none of them; a right key or token is never refused (no
one can guess it), a password try is reserved before it is checked (``password_matches``).
Cookie sessions need a CSRF token on every POST (Flask-WTF's signed token); header requests do not (a
browser cannot add the header cross-site).

The cookie is signed with a key derived from the deployment's secret (``tweetdesk.secret_key``), never
from the API key, and holds nothing derived from the key (the check that the key has not changed lives in the
session's row on the server): a cookie must not let its holder test key guesses offline. A
session also lives on the server (``sessions.SessionRegistry``): signing out ends it for every copy of
the cookie, and it ends by itself after ``TWEETDESK_SESSION_LIFETIME_SECONDS``.

Without an API key the agent pages refuse, like the admin API (``Settings.api_key``: unset = off).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from functools import wraps
from urllib.parse import urlsplit

from flask import Flask, abort, after_this_request, current_app, g, redirect, request, session, url_for
from flask_wtf.csrf import CSRFError, generate_csrf, validate_csrf
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.exceptions import TooManyRequests
from wtforms.validators import ValidationError

from tweetdesk.desk.accounts import BOOTSTRAP, Principal, bootstrap_admin
from tweetdesk.secret_key import session_key
from tweetdesk.web import identity
from tweetdesk.web.context import ctx
from tweetdesk.web.sessions import SessionRegistry
from tweetdesk.web.throttle import KeyThrottle, client_of

SESSION_KEY = "tweetdesk_agent"
SESSION_ID = "tweetdesk_sid"
SESSION_USER = "tweetdesk_user"  # [account id, when its password was set]: a reset signs it out


def configured_key(settings) -> str | None:
    key = settings.api_key.get_secret_value() if settings.api_key is not None else None
    return key or None


def _key_check(key: str) -> str:
    # Kept in the server-side session row, never in the cookie (a value derived from the key alone would let a
    # cookie holder test key guesses offline); keyed by the deployment's secret so the row does not either.
    # Changing the key signs out every session opened with the old one.
    secret = current_app.secret_key
    secret = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(secret, b"tweetdesk agent session\0" + key.encode(), hashlib.sha256).hexdigest()


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
    return ctx().sessions


def _throttle() -> KeyThrottle:
    return ctx().throttle


def agent_enabled() -> bool:
    """The agent pages and the admin API exist: an API key is configured or desk accounts have been created."""
    return identity.desk_enabled()


class Throttled(TooManyRequests):
    def __init__(self, retry_after: int):
        super().__init__(f"Too many wrong API keys from your address. Try again in {retry_after} s.",
                         retry_after=retry_after)


def _address() -> str:
    return client_of(request.remote_addr)


def _wrong(buckets: list[str], what: str) -> None:
    """Count a wrong unguessable credential (key, token); raises ``Throttled`` once the free tries are used up."""
    wait = _throttle().count(buckets, request.path, what)
    if wait:
        raise Throttled(wait)


def key_matches(supplied: str) -> bool:
    """Constant-time comparison with the configured key. Always compared — the key is refused at start unless it
    is long and random, so answering a guess says nothing useful, and a right key must get in even while others
    behind the same address guess wrong (``throttle``). A wrong one is counted against the address and the
    bootstrap admin, and raises ``Throttled`` (429) once over the free tries."""
    key = configured_key(_settings())
    if key is None or not supplied:
        return False
    if hmac.compare_digest(supplied.encode("utf-8", "surrogatepass"), key.encode()):
        return True
    _wrong([_address(), "account:" + BOOTSTRAP], "API key")
    return False


def header_principal() -> Principal | None:
    """Who the request's header key or personal token names; None without a header or for a wrong one (counted
    once per request). Raises ``Throttled`` for a wrong one once its address is over the free tries."""
    if "tweetdesk_header_principal" not in g:
        g.tweetdesk_header_principal = None  # stays None if Throttled is raised (the error page asks again)
        supplied = presented_key()
        if supplied is not None and agent_enabled():
            if supplied.startswith(identity.TOKEN_PREFIX):
                p = identity.desk().accounts.token_principal(supplied)  # 256 random bits: compared always
                g.tweetdesk_header_principal = p
                if p is None:
                    _wrong([_address()], "token")
            elif configured_key(_settings()) is not None:
                if key_matches(supplied):  # counts a wrong key itself
                    g.tweetdesk_header_principal = bootstrap_admin("key")
            else:
                _wrong([_address()], "API key")
    return g.tweetdesk_header_principal


def via_header() -> bool:
    """The request carries a right key or token itself (no cookie involved). Checked once per request: a wrong
    one counts once against the address however often a request asks. Raises ``Throttled`` for a wrong one
    over the free tries."""
    return header_principal() is not None


DEVICE_COOKIE = "tweetdesk_device"
DEVICE_DAYS = 90


def _device_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="tweetdesk known browser")


def _known_device(name: str) -> str | None:
    """The id of this browser if it signed in as ``name`` before (a signed cookie), else None."""
    raw = request.cookies.get(DEVICE_COOKIE)
    if not raw:
        return None
    try:
        who, device = _device_serializer().loads(raw, max_age=DEVICE_DAYS * 86400)
    except (BadSignature, ValueError, TypeError):
        return None
    return device if isinstance(device, str) and who == (name or "").strip().lower() else None


def _remember_device(name: str) -> None:
    value = _device_serializer().dumps([name, secrets.token_urlsafe(16)])

    @after_this_request
    def _set(resp):
        resp.set_cookie(DEVICE_COOKIE, value, max_age=DEVICE_DAYS * 86400, httponly=True, samesite="Lax",
                        secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")))
        return resp


def password_matches(name: str, password: str) -> Principal | None:
    """A desk account's name and password (an unknown name costs the same and gets the same answer). Passwords
    can be guessed, so a try is reserved before the check (atomically) against the client address *and* the
    account — unless this browser signed in as that account before: then only its own count applies, so guessers
    at the same address, or aimed at the same account, cannot lock the account's owner out."""
    device = _known_device(name)
    target = "account:" + (name or "").strip().lower()[:40]
    buckets = ["device:" + device] if device else [_address(), target]
    wait = _throttle().begin(buckets)
    if wait:
        raise Throttled(wait)
    p = None
    try:
        p = identity.desk().accounts.authenticate(name, password)
    finally:
        _throttle().end(buckets, p is not None, request.path, "password")
    if p is not None and device is None:
        _remember_device(p.name)
    record_sign_in(p, tried=name)
    return p


def record_sign_in(p: Principal | None, *, tried: str | None = None) -> None:
    """Sign-ins and failed sign-ins go to the desk's audit trail (the name tried, never the secret); throttled
    tries are not recorded (the throttle logs those, bounded)."""
    where = {"address": _address()}
    if p is not None:
        identity.desk().record(p.name, "signed_in", {**where, "via": "password" if p.user_id else "API key"})
    else:
        identity.desk().record("anonymous", "sign_in_failed", {**where, "user": (tried or BOOTSTRAP)[:40]})


def current_principal() -> Principal | None:
    """Who this request acts as: the header's key or token, else the signed-in session; None = nobody."""
    if not agent_enabled():
        return None
    if "tweetdesk_principal" not in g:
        p = header_principal() if presented_key() is not None else None
        row = _sessions().lookup(session.get(SESSION_ID)) if p is None else None
        if row is not None:
            key = configured_key(_settings())
            if (key is not None and session.get(SESSION_KEY) is True and row.key_check
                    and hmac.compare_digest(row.key_check, _key_check(key))):
                p = bootstrap_admin("session")
            else:
                user = session.get(SESSION_USER)
                if isinstance(user, list) and len(user) == 2:
                    p = identity.desk().accounts.session_principal(user[0], user[1])
        g.tweetdesk_principal = p
    return g.tweetdesk_principal


def is_agent() -> bool:
    """Signed in, any role (viewers read the agent pages, without their buttons)."""
    return current_principal() is not None


def can_write() -> bool:
    p = current_principal()
    return p is not None and p.can_write


def sign_in(principal: Principal | None = None) -> None:
    """Start a session for a desk account, or (None) for the bootstrap admin who typed the API key."""
    session.clear()  # a fresh session on privilege change (no fixation)
    check = None
    if principal is None:
        session[SESSION_KEY] = True
        check = _key_check(configured_key(_settings()))
    else:
        session[SESSION_USER] = [principal.user_id, identity.desk().accounts.session_stamp(principal)]
    session[SESSION_ID] = _sessions().start(check)
    session.permanent = True  # the cookie expires with the server-side session
    g.pop("tweetdesk_principal", None)


def sign_out() -> None:
    _sessions().end(session.get(SESSION_ID))
    session.clear()
    g.pop("tweetdesk_principal", None)


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
    if not target or len(target) > 2000 or any(ord(c) < 32 or ord(c) == 127 for c in target):
        return None  # CR/LF would split the Location header: never a target
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


def writer_required(view):
    """Actions that change something: signed in as an admin or agent (a viewer gets 403)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if not can_write():
            abort(403, description="Viewer accounts can read tickets but not change them.")
        return view(*args, **kwargs)

    return agent_required(wrapper)


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
        p = current_principal()
        if p.must_change_password and p.via == "session" and request.endpoint != "desk.password":
            if request.method == "GET":
                return redirect(url_for("desk.password"))
            abort(403, description="Change your one-time password first (Password page).")
        return view(*args, **kwargs)

    return wrapper
