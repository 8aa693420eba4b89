"""What the service refuses at start, and the HTTP hardening every answer gets.

At start (``check_startup``, called by ``tweetdesk.app.create_app``):

* an admin API key shorter than 32 characters: it is the only thing between the internet and the agent
  view, and nothing rate-limits an attacker who has copied a response offline;
* a dashboard without an API key on a non-loopback address (it shows customers' tweets and handles), unless
  ``TWEETDESK_PUBLIC_DASHBOARD=true`` says so on purpose.

On every answer (``init_app``): flask-talisman's headers (a CSP with no inline script and
``frame-ancestors 'none'``, ``X-Frame-Options: DENY``, ``X-Content-Type-Options: nosniff``,
``Referrer-Policy: same-origin``, HSTS over HTTPS), ``Cache-Control: no-store`` on everything but static
files (agent pages, the admin API and the dashboard hold customers' data), and the session cookie's
``Secure`` flag (``TWEETDESK_SECURE_COOKIE``; on by default unless the service listens on loopback).
Behind ``TWEETDESK_TRUSTED_PROXIES`` reverse proxies, werkzeug's ProxyFix takes the client address and
scheme from their ``X-Forwarded-*`` headers.
"""

from __future__ import annotations

import ipaddress

from flask import Flask, request
from flask_talisman import Talisman
from werkzeug.middleware.proxy_fix import ProxyFix

from tweetdesk.errors import ConfigError
from tweetdesk.secret_key import weak_key_problem

CSP = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_startup(settings, host: str | None = None) -> None:
    """Raise ConfigError (one readable line) for a configuration the service must not run with."""
    host = host or settings.host
    key = settings.api_key.get_secret_value() if settings.api_key is not None else ""
    problem = weak_key_problem("TWEETDESK_API_KEY", key) if key else None
    if problem:
        raise ConfigError(problem)
    if not key and not is_loopback(host) and not settings.public_dashboard:
        raise ConfigError(
            f"no TWEETDESK_API_KEY and host {host} is not loopback: the dashboard would show customers' tweets to "
            "anyone who can reach it; set TWEETDESK_API_KEY, or TWEETDESK_PUBLIC_DASHBOARD=true if that is intended"
        )


def secure_cookie(settings) -> bool:
    return settings.secure_cookie if settings.secure_cookie is not None else not is_loopback(settings.host)


def init_app(app: Flask, settings) -> None:
    if settings.trusted_proxies:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)  # type: ignore[method-assign]
    Talisman(
        app,
        force_https=False,  # TLS ends at the proxy or load balancer in front of the service
        frame_options="DENY",
        content_security_policy=CSP,
        referrer_policy="same-origin",
        session_cookie_secure=secure_cookie(settings),
        session_cookie_http_only=True,
        session_cookie_samesite="Lax",
        permissions_policy={"browsing-topics": "()", "camera": "()", "microphone": "()", "geolocation": "()"},
    )
    if not secure_cookie(settings):
        app.config["SESSION_COOKIE_SECURE"] = False

    @app.after_request
    def _no_store(resp):
        # Static files (CSS, JS, Chart.js) may be cached; nothing else: agent pages, the admin API and the
        # dashboard hold customers' tweets, and a shared or back-button cache must not keep them.
        if not (request.endpoint or "").endswith("static"):
            resp.headers["Cache-Control"] = "no-store"
        return resp
