"""The service as an attacker and a careless operator would meet it (issue 12): what the session cookie is
signed with, guessing keys, what /healthz tells strangers, HTTP headers, sign-out, bodies that used to
crash the API, and configurations refused at start. Real app, real SQLite store, Flask's test client
(one test through ``tweetdesk serve`` itself)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import BadSignature

from tests.fixtures.browser import seed_store
from tests.fixtures.clock import FakeClock
from tests.fixtures.store import enriched_tweet
from tweetdesk.app import create_app
from tweetdesk.config import Settings
from tweetdesk.errors import ConfigError
from tweetdesk.secret_key import secret_key, session_key
from tweetdesk.web.throttle import KeyThrottle

KEY = "agent-key-for-the-security-tests-0123456789"
VENV_BIN = Path(sys.executable).parent


def _app(tmp_path, store, **over):
    app = create_app(Settings(work_dir=tmp_path, **{"api_key": KEY, **over}), store)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def seeded(sqlite_store):
    return seed_store(sqlite_store, n=6)


@pytest.fixture
def app(tmp_path, sqlite_store, seeded):
    return _app(tmp_path, sqlite_store)


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _login(client, key=KEY, **kw):
    html = client.get("/login", **kw).get_data(as_text=True)
    return client.post("/login", data={"api_key": key, "csrf_token": _csrf(html), "next": "/"}, **kw)


def _env(tmp_path, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWEETDESK_")}
    env.update(TWEETDESK_CONFIG=str(tmp_path / "absent.toml"), TWEETDESK_WORK_DIR=str(tmp_path / "work"), **extra)
    return env


# --- 1. the session cookie is signed with the deployment's secret, not the API key ---------------------------

def _cookie_loads(app, secret: bytes, value: str):
    si = SecureCookieSessionInterface()
    app_copy = type("A", (), {"secret_key": secret, "config": app.config})()
    return si.get_signing_serializer(app_copy).loads(value)


def test_the_login_cookie_cannot_be_used_to_test_api_key_guesses(app):
    c = app.test_client()
    c.get("/login")
    cookie = c.get_cookie("session").value
    # What the cookie used to be signed with: a key derived from the API key, so a guess could be checked
    # offline against any cookie /login hands out.
    derived_from_api_key = hmac.new(KEY.encode(), b"tweetdesk flask secret", hashlib.sha256).digest()
    with pytest.raises(BadSignature):
        _cookie_loads(app, derived_from_api_key, cookie)
    settings = app.extensions["tweetdesk"].settings
    assert "csrf_token" in _cookie_loads(app, session_key(settings), cookie)


def test_the_secret_is_made_once_in_the_work_dir_with_mode_600(tmp_path):
    s = Settings(work_dir=tmp_path / "w")
    k = secret_key(s)
    path = tmp_path / "w" / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(k) >= 32
    # Another process (another Settings, a fresh import) reads the same key.
    out = subprocess.run(
        [sys.executable, "-c", "from tweetdesk.config import Settings; from tweetdesk.secret_key import secret_key;"
         f"print(secret_key(Settings(work_dir={str(tmp_path / 'w')!r})).decode())"],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    ).stdout.strip()
    assert out.encode() == k
    assert secret_key(Settings(work_dir=tmp_path / "other")) != k


def test_the_secret_from_the_environment_wins_and_must_be_long(tmp_path, monkeypatch):
    monkeypatch.setenv("TWEETDESK_SECRET_KEY", "e" * 40)
    assert secret_key(Settings(work_dir=tmp_path)) == b"e" * 40
    assert not (tmp_path / "secret_key").exists()
    monkeypatch.setenv("TWEETDESK_SECRET_KEY", "short")
    with pytest.raises(ConfigError, match="at least 32"):
        secret_key(Settings(work_dir=tmp_path))


def test_a_secret_file_others_can_read_is_refused(tmp_path):
    (tmp_path / "secret_key").write_text("s" * 48)
    (tmp_path / "secret_key").chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        secret_key(Settings(work_dir=tmp_path))


def test_a_short_api_key_is_refused_at_start(tmp_path, sqlite_store):
    with pytest.raises(ConfigError) as e:
        create_app(Settings(work_dir=tmp_path, api_key="x" * 31), sqlite_store)
    assert "at least 32" in str(e.value) and "secrets.token_urlsafe" in str(e.value)
    assert "x" * 31 not in str(e.value)
    create_app(Settings(work_dir=tmp_path, api_key=KEY), sqlite_store)


@pytest.mark.parametrize("weak", ["a" * 32, " " * 32, "password" * 4, "0123456789abcdef" * 2, "x" * 64])
def test_a_long_but_predictable_api_key_is_refused_with_the_recipe(tmp_path, sqlite_store, weak):
    with pytest.raises(ConfigError) as e:
        create_app(Settings(work_dir=tmp_path, api_key=weak), sqlite_store)
    line = str(e.value)
    assert "too predictable" in line and "secrets.token_urlsafe(32)" in line and "\n" not in line
    assert weak.strip() not in line if weak.strip() else True


def test_the_session_cookie_holds_nothing_derived_from_the_api_key(tmp_path, sqlite_store):
    """Two deployments with the same secret and different API keys hand out the same cookie contents (random
    session id and CSRF token aside): a cookie cannot be used to test key guesses offline."""
    contents = []
    for key in (KEY, "another-agent-key-for-the-security-tests-9876543210"):
        app = create_app(Settings(work_dir=tmp_path, api_key=key), sqlite_store)
        c = app.test_client()
        assert _login(c, key).status_code == 303
        got = _cookie_loads(app, session_key(app.extensions["tweetdesk"].settings), c.get_cookie("session").value)
        assert c.get("/inbox").status_code == 200  # signed in
        contents.append({k: v for k, v in got.items() if k not in ("tweetdesk_sid", "csrf_token", "_flashes")})
    assert contents[0] == contents[1]
    assert not any(isinstance(v, str) and len(v) >= 32 for v in contents[0].values())


def test_serve_refuses_a_short_key_in_one_line(tmp_path):
    r = subprocess.run([str(VENV_BIN / "tweetdesk"), "serve", "--port", "0"], capture_output=True, text=True,
                       timeout=60, env=_env(tmp_path, TWEETDESK_API_KEY="guessable"), cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("tweetdesk: error: TWEETDESK_API_KEY is 9 characters; use at least 32")
    assert "guessable" not in r.stderr


# --- 2. wrong keys: growing delays per address, 429 with Retry-After, the right key keeps working elsewhere ---

@pytest.fixture
def clock():
    return FakeClock(1000.0)


@pytest.fixture
def throttled(app, clock):
    app.extensions["tweetdesk"].throttle = KeyThrottle(free_failures=5, max_delay=900, clock=clock)
    return app


ATTACKER = {"REMOTE_ADDR": "198.51.100.7"}
AGENT = {"REMOTE_ADDR": "203.0.113.9"}


def test_wrong_api_keys_meet_doubling_waits_and_a_429(throttled, clock):
    c = throttled.test_client()
    for _ in range(5):  # the free ones
        assert c.get("/api/tickets", headers={"X-API-Key": "guess"}, environ_base=ATTACKER).status_code == 401
    waits = []
    for _ in range(5):
        r = c.get("/api/tickets", headers={"X-API-Key": "guess"}, environ_base=ATTACKER)
        assert r.status_code == 429 and r.is_json and r.get_json()["kind"] == "throttled"
        waits.append(int(r.headers["Retry-After"]))
        # The right key is never refused, from this address (one proxy, one office) or another.
        assert c.get("/api/tickets", headers={"X-API-Key": KEY}, environ_base=ATTACKER).status_code == 200
        assert c.get("/api/tickets", headers={"X-API-Key": KEY}, environ_base=AGENT).status_code == 200
        clock.t += waits[-1]
    assert waits == [1, 2, 4, 8, 16]


def test_a_right_credential_forgives_no_failures(throttled, clock):
    """5 wrong keys + the right one, repeated, must not give unlimited guesses."""
    c = throttled.test_client()
    codes = []
    for _ in range(4):
        for _ in range(5):
            codes.append(c.get("/api/tickets", headers={"X-API-Key": "guess"}, environ_base=ATTACKER).status_code)
        assert c.get("/api/tickets", headers={"X-API-Key": KEY}, environ_base=ATTACKER).status_code == 200
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}


def test_the_wait_is_capped(throttled, clock):
    t = throttled.extensions["tweetdesk"].throttle
    for _ in range(40):
        t.failed("198.51.100.7", "/login")
        clock.t += 1
    assert 890 <= t.retry_after("198.51.100.7") <= 900


def test_the_sign_in_form_and_header_keys_share_the_throttle(throttled, clock):
    c = throttled.test_client()
    for _ in range(4):
        assert _login(c, key="guess", environ_base=ATTACKER).status_code == 401
    assert c.get("/", headers={"X-API-Key": "guess"}, environ_base=ATTACKER).status_code == 302  # to sign-in
    r = _login(c, key="guess", environ_base=ATTACKER)  # the sixth wrong key: this address must wait a second
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    assert "Too many wrong keys" in r.get_data(as_text=True)
    assert _login(c, environ_base=ATTACKER).status_code == 303  # the right key gets in all the same


def test_ipv6_clients_are_counted_per_64(throttled):
    c = throttled.test_client()
    for i in range(6):
        c.get("/api/tickets", headers={"X-API-Key": "guess"}, environ_base={"REMOTE_ADDR": f"2001:db8:1:2::{i + 1}"})
    r = c.get("/api/tickets", headers={"X-API-Key": "guess"}, environ_base={"REMOTE_ADDR": "2001:db8:1:2:ffff::9"})
    assert r.status_code == 429
    t = throttled.extensions["tweetdesk"].throttle
    assert t.retry_after("2001:db8:1:2:abcd::1") > 0 and t.retry_after("2001:db8:1:3::1") == 0


def test_failures_are_logged_with_the_address_and_the_log_is_rate_limited(throttled, clock, caplog):
    caplog.set_level(logging.WARNING, logger="tweetdesk.auth")
    c = throttled.test_client()
    for i in range(30):
        c.get("/api/tickets", headers={"X-API-Key": "guess"}, environ_base={"REMOTE_ADDR": f"192.0.2.{i}"})
    lines = [r.getMessage() for r in caplog.records if r.name == "tweetdesk.auth"]
    assert len(lines) == 10 and all("wrong API key from '192.0.2." in m for m in lines)
    assert all("guess" not in m for m in lines)
    clock.t += 61
    c.get("/api/tickets", headers={"X-API-Key": "guess"}, environ_base=ATTACKER)
    assert "(20 more wrong keys not logged)" in caplog.records[-1].getMessage()


def test_a_client_behind_trusted_proxies_is_its_forwarded_address(tmp_path, sqlite_store, seeded, clock):
    app = _app(tmp_path, sqlite_store, trusted_proxies=1)
    app.extensions["tweetdesk"].throttle = KeyThrottle(free_failures=1, clock=clock)
    c = app.test_client()
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    for _ in range(2):
        c.get("/api/tickets", headers={"X-API-Key": "guess", "X-Forwarded-For": "198.51.100.7"}, environ_base=proxy)
    assert c.get("/api/tickets", headers={"X-API-Key": "guess", "X-Forwarded-For": "198.51.100.7"},
                 environ_base=proxy).status_code == 429
    t = app.extensions["tweetdesk"].throttle
    assert t.retry_after("198.51.100.7") > 0 and t.retry_after("203.0.113.9") == 0 and t.retry_after("10.0.0.2") == 0
    assert c.get("/api/tickets", headers={"X-API-Key": KEY, "X-Forwarded-For": "198.51.100.7"},
                 environ_base=proxy).status_code == 200


# --- 6. headers ---------------------------------------------------------------------------------------------

def test_security_headers_on_every_answer(app, seeded):
    tw = seeded["tweets"][0]
    c = app.test_client()
    _login(c)
    for path in ["/", "/login", f"/tickets/{tw.ticket_id}", f"/t/{tw.ticket_id}", "/t", "/web/api/summary",
                 "/api/tickets", f"/api/tickets/{tw.ticket_id}", "/healthz", "/nope"]:
        r = c.get(path, headers={"X-API-Key": KEY} if path.startswith("/api/") else {})
        h = r.headers
        assert h["X-Frame-Options"] == "DENY", path
        csp = h["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp, path
        assert h["X-Content-Type-Options"] == "nosniff" and h["Referrer-Policy"] == "same-origin", path
        assert h["Cache-Control"] == "no-store", path
    static = c.get("/web/static/css/app.css")
    assert static.status_code == 200 and static.headers.get("Cache-Control") != "no-store"


def test_pages_have_no_inline_script_or_style(app, seeded):
    c = app.test_client()
    _login(c)
    tw = seeded["tweets"][0]
    for path in ["/", "/login", f"/tickets/{tw.ticket_id}", f"/t/{tw.ticket_id}", "/t", "/t/nonsense"]:
        html = c.get(path).get_data(as_text=True)
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag or 'type="application/json"' in tag, (path, tag)
        assert not re.search(r"\sstyle=|\son[a-z]+=", html), path


@pytest.mark.parametrize("host,setting,secure", [("127.0.0.1", None, False), ("0.0.0.0", None, True),
                                                 ("::1", None, False), ("127.0.0.1", True, True),
                                                 ("0.0.0.0", False, False)])
def test_the_session_cookie_is_secure_off_loopback(tmp_path, sqlite_store, seeded, host, setting, secure):
    app = _app(tmp_path, sqlite_store, host=host, secure_cookie=setting)
    r = app.test_client().get("/login")
    cookie = r.headers["Set-Cookie"]
    assert ("Secure" in cookie) == secure and "HttpOnly" in cookie and "SameSite=Lax" in cookie


# --- 7. sign-out ends the session; sessions end by themselves -----------------------------------------------

def test_a_cookie_copied_before_sign_out_no_longer_works(app):
    agent = app.test_client()
    assert _login(agent).status_code == 303
    stolen = agent.get_cookie("session").value
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    assert thief.get("/").status_code == 200  # a copy works while the session lives...
    html = agent.get("/").get_data(as_text=True)
    assert agent.post("/logout", data={"csrf_token": _csrf(html)}).status_code == 303
    assert thief.get("/").status_code == 302  # ... and not after sign-out
    assert thief.get("/web/api/summary").status_code == 401


def test_sessions_end_after_their_lifetime(tmp_path, sqlite_store, seeded):
    app = _app(tmp_path, sqlite_store, session_lifetime_seconds=600)
    c = app.test_client()
    r = _login(c)
    assert "Expires=" in r.headers["Set-Cookie"]  # the cookie ends with the session, not with the browser
    assert c.get("/").status_code == 200
    registry = app.extensions["tweetdesk"].sessions
    real = registry.clock
    registry.clock = lambda: real() + timedelta(seconds=601)
    assert c.get("/").status_code == 302


# --- 9. bodies that used to answer 500 --------------------------------------------------------------------

def test_a_lone_surrogate_in_a_reply_is_a_400(tmp_path, sqlite_store):
    tw = enriched_tweet("4242")
    sqlite_store.add_tickets([tw], lambda t: None)
    c = _app(tmp_path, sqlite_store).test_client()
    for body in (b'{"tweet_id": "4242", "text": "@jane_doe sorry \\ud800 about that"}',
                 b'{"tweet_id": "4242", "text": "@jane_doe ok", "\\udfff": 1}'):
        r = c.post("/api/replies", data=body, headers={"X-API-Key": KEY, "Content-Type": "application/json"})
        assert r.status_code == 400 and r.is_json and "Unicode" in r.get_json()["error"], r.get_data()
    assert sqlite_store.replies_for(tw.ticket_id) == []


@pytest.mark.parametrize("body", [b"[" * 5000 + b"]" * 5000, b'{"a":' * 2000 + b"1" + b"}" * 2000])
def test_a_deeply_nested_body_is_a_400(app, body):
    r = app.test_client().post("/api/replies", data=body, headers={"X-API-Key": KEY,
                                                                 "Content-Type": "application/json"})
    assert r.status_code == 400 and r.is_json and "nested" in r.get_json()["error"]


# --- 12. no keyless dashboard on a public address ----------------------------------------------------------

def test_a_keyless_dashboard_on_a_public_address_is_refused(tmp_path, sqlite_store):
    with pytest.raises(ConfigError, match="TWEETDESK_PUBLIC_DASHBOARD"):
        create_app(Settings(work_dir=tmp_path, host="0.0.0.0"), sqlite_store)
    create_app(Settings(work_dir=tmp_path, host="0.0.0.0", public_dashboard=True), sqlite_store)
    create_app(Settings(work_dir=tmp_path, host="0.0.0.0", api_key=KEY), sqlite_store)
    create_app(Settings(work_dir=tmp_path, host="localhost"), sqlite_store)


def test_the_reply_service_checks_the_address_it_binds(tmp_path, sqlite_store):
    from tweetdesk.serve import ReplyService

    with pytest.raises(ConfigError, match="not loopback"):
        ReplyService(Settings(work_dir=tmp_path), store=sqlite_store, consume=False, host="192.0.2.1")


def test_serve_refuses_a_keyless_public_dashboard_in_one_line(tmp_path):
    r = subprocess.run([str(VENV_BIN / "tweetdesk"), "serve", "--host", "0.0.0.0", "--port", "0"],
                       capture_output=True, text=True, timeout=60, env=_env(tmp_path), cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "TWEETDESK_PUBLIC_DASHBOARD=true" in r.stderr, r.stderr


# --- 13. /healthz: a short body for the public, the details for the admin key ------------------------------

def test_healthz_details_only_for_the_admin_key(tmp_path, sqlite_store):
    health = {"consumer": lambda: {"group": "tweetdesk-replies", "offsets": {"0": 1234}, "last_error": "boom at x"}}
    app = create_app(Settings(work_dir=tmp_path, api_key=KEY), sqlite_store, health=health)
    c = app.test_client()
    r = c.get("/healthz")
    assert r.status_code == 200 and r.get_json() == {"status": "ok"}
    assert "tweetdesk-replies" not in r.get_data(as_text=True) and "boom" not in r.get_data(as_text=True)
    full = c.get("/healthz", headers={"X-API-Key": KEY}).get_json()
    assert full["consumer"]["group"] == "tweetdesk-replies" and full["store"]["ok"]
    assert c.get("/healthz", headers={"X-API-Key": "wrong"}).status_code == 401
