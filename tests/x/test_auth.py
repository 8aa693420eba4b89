"""OAuth 2.0 user context (tweetdesk.x.auth, `tweetdesk x-login`) against the X API stand-in's OAuth 2.0 endpoints."""

from __future__ import annotations

import io
import json
import logging
import stat
import sys
import time

import pytest
from pydantic import SecretStr

from tests.fixtures.broker import read_topic
from tests.fixtures.clock import FakeClock
from tests.fixtures.xapi import ACCOUNT_HANDLE, ACCOUNT_ID, CLIENT_ID, REFRESH_REFUSED
from tweetdesk.cli import main
from tweetdesk.config import Settings
from tweetdesk.ingest.mentions import STATE_FILE
from tweetdesk.reply.poster import XTransport, make_x_client
from tweetdesk.x.auth import (
    OAuth2UserClient,
    TokenFile,
    XAuthError,
    finish_login,
    pending_login_path,
    read_private,
    start_login,
    user_client,
    write_private,
)

REDIRECT = "http://127.0.0.1:8765/callback"


@pytest.fixture
def clock():
    return FakeClock(time.time())


@pytest.fixture
def x(clocked_xapi):
    return clocked_xapi


@pytest.fixture
def s(tmp_path, x) -> Settings:
    return Settings(work_dir=tmp_path / "work", x_api_base=x.base_url, x_client_id=CLIENT_ID, x_redirect_uri=REDIRECT)


def login(s, x, clock) -> dict:
    finish_login(s, x.authorize(start_login(s)), clock=clock)
    return json.loads(s.x.oauth2_token_path.read_text())


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def token_requests(x) -> list[dict]:
    return [r.body for r in x.requests if r.path == "/2/oauth2/token"]


def env_for(monkeypatch, s: Settings, **extra) -> None:
    for k, v in {"WORK_DIR": str(s.work_dir), "X_API_BASE": s.x_api_base, "X_CLIENT_ID": CLIENT_ID,
                 "X_REDIRECT_URI": REDIRECT, **extra}.items():
        monkeypatch.setenv(f"TWEETDESK_{k}", v)


# --- x-login ------------------------------------------------------------------------------------------------------
def test_x_login_prints_the_url_takes_the_redirect_back_and_stores_private_tokens(s, x, monkeypatch, capsys):
    env_for(monkeypatch, s)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # nothing typed: the login waits for --redirect-url
    assert main(["x-login"]) == 0
    out = capsys.readouterr()
    url = out.out.strip()
    assert url.startswith("https://x.com/i/oauth2/authorize?") and "code_challenge_method=S256" in url
    assert "offline.access" in url and f"client_id={CLIENT_ID}" in url and "state=" in url
    assert "x-login --redirect-url" in out.err
    assert mode(pending_login_path(s)) == 0o600  # the PKCE verifier waits where only we can read it
    redirect = x.authorize(url)  # the account owner allows the app in the browser
    assert main(["x-login", "--redirect-url", redirect]) == 0
    assert f"signed in to X as @{ACCOUNT_HANDLE} (id {ACCOUNT_ID})" in capsys.readouterr().err
    path = s.x.oauth2_token_path
    assert mode(path) == 0o600 and not pending_login_path(s).exists()
    tok = json.loads(path.read_text())
    assert tok["access_token"] in x.access_tokens and x.refresh_tokens[tok["refresh_token"]] == "active"
    [grant] = token_requests(x)
    assert grant["grant_type"] == "authorization_code" and grant["redirect_uri"] == REDIRECT
    assert grant["client_id"] == CLIENT_ID and len(grant["code_verifier"]) >= 43
    assert Settings(work_dir=s.work_dir).x.user_credentials  # the reply service now posts live


def test_the_login_prompt_reads_the_redirect_url(s, x, monkeypatch, capsys):
    """Interactive: the URL is printed, then the redirect URL is read from the same terminal."""
    env_for(monkeypatch, s)

    class Owner(io.StringIO):  # types the redirect URL once the authorisation URL has been printed
        def readline(self, *a):
            return x.authorize(capsys.readouterr().out.strip()) + "\n"

    monkeypatch.setattr(sys, "stdin", Owner())
    assert main(["x-login"]) == 0
    assert mode(s.x.oauth2_token_path) == 0o600


@pytest.mark.parametrize("spoil, says", [
    ("verifier", "X refused the login (invalid_request: Value passed for the authorization code was invalid.)"),
    ("state", "state does not match"),
    ("deny", "X did not authorise the app (access_denied"),
    ("code", "holds no code"),
])
def test_a_login_x_refuses_or_a_wrong_redirect_is_one_clear_line(s, x, monkeypatch, capsys, spoil, says):
    env_for(monkeypatch, s)
    url = start_login(s)
    redirect = x.authorize(url, allow=spoil != "deny")
    if spoil == "verifier":  # PKCE: a code is worth nothing without the verifier it was asked with
        pending = read_private(pending_login_path(s), "pending login")
        write_private(pending_login_path(s), {**pending, "code_verifier": "A" * 64})
    elif spoil == "state":
        redirect = redirect.replace("state=", "state=forged")
    elif spoil == "code":
        redirect = redirect.split("&code=")[0]
    assert main(["x-login", "--redirect-url", redirect]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tweetdesk: error: ") and says in err[0], err
    assert not s.x.oauth2_token_path.exists()


def test_x_login_needs_the_app_settings(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TWEETDESK_WORK_DIR", str(tmp_path))
    monkeypatch.delenv("TWEETDESK_X_CLIENT_ID", raising=False)
    assert main(["x-login"]) == 1
    assert capsys.readouterr().err.startswith("tweetdesk: error: set TWEETDESK_X_CLIENT_ID")


# --- the token file -----------------------------------------------------------------------------------------------
def test_a_token_file_others_can_read_is_refused(s, x, clock):
    login(s, x, clock)
    assert isinstance(user_client(s), OAuth2UserClient)
    s.x.oauth2_token_path.chmod(0o644)
    with pytest.raises(XAuthError, match="chmod 600"):
        user_client(s)


def test_access_token_refreshes_before_expiry_and_the_rotated_refresh_token_is_saved_before_use(s, x, clock, caplog):
    caplog.set_level(logging.DEBUG)  # tweepy and requests-oauthlib would log tokens at DEBUG
    tok0 = login(s, x, clock)
    path = s.x.oauth2_token_path
    seen = []  # (path, access token used, the token file at that moment)
    x.on_user_request = lambda p, token: seen.append((p, token, json.loads(path.read_text())))
    client = user_client(s, clock=clock)
    client.get_me(user_auth=True)
    assert seen[-1][1] == tok0["access_token"] and len(token_requests(x)) == 1  # the login's only
    clock.t += 7200 - 60  # within the refresh margin of X's two hours
    assert client.get_me(user_auth=True)["data"]["username"] == ACCOUNT_HANDLE
    _, used, on_disk = seen[-1]
    assert used != tok0["access_token"] and used == on_disk["access_token"]
    assert on_disk["refresh_token"] != tok0["refresh_token"]  # rotated, and on disk when the new token was first used
    assert x.refresh_tokens[on_disk["refresh_token"]] == "active" and x.refresh_tokens[tok0["refresh_token"]] == "used"
    refresh = token_requests(x)[-1]
    assert refresh["grant_type"] == "refresh_token" and refresh["refresh_token"] == tok0["refresh_token"]
    assert refresh["client_id"] == CLIENT_ID and mode(path) == 0o600
    secrets = {tok0["access_token"], tok0["refresh_token"], on_disk["access_token"], on_disk["refresh_token"]}
    assert caplog.records and not any(t in r.getMessage() for r in caplog.records for t in secrets)


def test_an_access_token_x_rejects_is_refreshed_once_and_the_call_repeated(s, x, clock):
    login(s, x, clock)
    client = user_client(s, clock=clock)
    x.expire_access_tokens()  # X stops taking it before its time
    assert client.get_me(user_auth=True)["data"]["id"] == ACCOUNT_ID
    assert [r["grant_type"] for r in token_requests(x)] == ["authorization_code", "refresh_token"]


def test_two_processes_sharing_the_token_file_spend_the_refresh_token_once(s, x, clock):
    login(s, x, clock)
    a = TokenFile(s.x.oauth2_token_path, s, clock=clock)
    b = TokenFile(s.x.oauth2_token_path, s, clock=clock)
    old = a.access_token()
    assert b.access_token() == old
    clock.t += 7200
    new = a.access_token()  # refreshes
    assert new != old and b.access_token() == new  # takes a's fresh token from the file instead of refreshing
    assert a.refreshes == 1 and b.refreshes == 0
    assert [r["grant_type"] for r in token_requests(x)].count("refresh_token") == 1


def test_a_refresh_token_x_refuses_stops_the_mentions_source_with_one_line_and_nothing_lost(
        fresh_topics, tmp_path, x, clock, monkeypatch, capsys):
    s = fresh_topics.model_copy(update={"work_dir": tmp_path / "work", "x_api_base": x.base_url,
                                        "x_client_id": CLIENT_ID, "x_redirect_uri": REDIRECT})
    login(s, x, clock)
    env_for(monkeypatch, s, KAFKA_BOOTSTRAP=s.kafka_bootstrap, TOPIC_RAW=s.topic_raw, TOPIC_DEAD=s.topic_dead)
    first = [x.add_tweet(f"@{ACCOUNT_HANDLE} lost bag {i}", author="kay_b") for i in range(3)]
    assert main(["ingest", "mentions", "--once"]) == 0
    state = json.loads((s.work_dir / STATE_FILE).read_text())
    assert state["since_id"] == first[-1]
    x.revoke_refresh_tokens()  # the owner revoked the app
    x.expire_access_tokens()
    later = [x.add_tweet(f"@{ACCOUNT_HANDLE} still lost {i}", author="kay_b") for i in range(2)]
    capsys.readouterr()
    assert main(["ingest", "mentions", "--once"]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("tweetdesk: error:")]
    assert errors == [f"tweetdesk: error: X refused the stored refresh token (invalid_request: {REFRESH_REFUSED}): "
                      "run `tweetdesk x-login` again"], err
    assert "Traceback" not in err
    assert json.loads((s.work_dir / STATE_FILE).read_text()) == state  # since_id not advanced: nothing lost
    assert [m.key().decode() for m in read_topic(s, s.topic_raw, 3)] == first  # and nothing new published
    assert later  # still on X, for the next run after `tweetdesk x-login`


# --- the poster acts with the same credentials -------------------------------------------------------------------
def test_the_poster_posts_with_the_oauth2_user_token(s, x, clock):
    login(s, x, clock)
    assert isinstance(make_x_client(s), OAuth2UserClient)
    tid = x.add_tweet(f"@{ACCOUNT_HANDLE} where is my bag", author="kay_b")
    posted = XTransport.from_settings(s).post("@kay_b Sorry! Ticket BAG-7KQ4M2XZ-H is open.", tid)
    [req] = x.post_requests()
    assert req.headers["Authorization"].startswith("Bearer ") and x.posts[0]["id"] == posted


def test_without_a_token_file_oauth1_is_used(tmp_path, x):
    s = Settings(work_dir=tmp_path, x_api_base=x.base_url, x_consumer_key=SecretStr("ck"),
                 x_consumer_secret=SecretStr("cs"), x_access_token=SecretStr("at"), x_access_token_secret=SecretStr("ats"))
    client = user_client(s)
    assert not isinstance(client, OAuth2UserClient) and client.session.base == x.base_url
    client.get_me(user_auth=True)
    assert x.requests[-1].headers["Authorization"].startswith("OAuth ")


def test_a_refresh_token_x_refuses_pauses_the_poster_with_one_line_and_the_reply_waits(s, x, clock, caplog, tmp_path):
    from tests.fixtures.store import enriched_tweet
    from tweetdesk.records import ReplyStatus
    from tweetdesk.reply.poster import Poster
    from tweetdesk.reply.templates import ReplyTemplates
    from tweetdesk.tickets.intake import Intake
    from tweetdesk.tickets.store import TicketStore

    login(s, x, clock)
    clock.t += 3 * 3600  # the access token expired: the next call must refresh
    x.revoke_refresh_tokens()
    store = TicketStore(f"sqlite:///{tmp_path / 'tickets.db'}", clock=clock.dt)
    try:
        tw = enriched_tweet("5001", text=f"@{ACCOUNT_HANDLE} where is my bag")
        rid = store.add_tickets([tw], ReplyTemplates.load().render, intake=Intake.from_settings(
            s.model_copy(update={"our_handles": [ACCOUNT_HANDLE]}))).replies[0]
        poster = Poster(s, store, clock=clock)
        with caplog.at_level(logging.ERROR, logger="tweetdesk.reply.poster"):
            out = poster.attempt(rid)
        assert out.kind == "retry" and not x.posts  # nothing was posted
        r = store.get_reply(rid)
        assert r.status == ReplyStatus.queued and r.attempts == 0 and "refused the stored refresh token" in r.error
        assert poster.budget_wait() == 0 and poster.outage["next_probe_at"] is not None  # all posting paused
        assert [rec.getMessage() for rec in caplog.records if rec.levelno >= logging.ERROR][0].startswith("posting paused")
    finally:
        store.close()
