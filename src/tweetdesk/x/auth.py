"""Acting as our X account: OAuth 2.0 user context (Authorization Code with PKCE) beside OAuth 1.0a.

``user_client(settings)`` is the one way in: a tweepy ``Client`` for user-context calls (post a reply, read
our mentions, look ourselves up), pointed at ``settings.x_api_base`` with a timeout on every call.

* **OAuth 2.0** (X's current recommendation) when a token file exists (``settings.x.oauth2_token_path``,
  written by ``tweetdesk x-login``): the access token is refreshed before it expires (X's last two hours)
  and X *rotates* the refresh token on every refresh, so the new pair is written to the file (atomically,
  mode 600) **before** the new access token is used: a crash can never leave us holding only a spent refresh
  token. Processes sharing the file (the reply service and ``ingest mentions``) take a file lock to refresh,
  and one that finds a fresh token in the file takes it instead of spending the refresh token a second time.
  A refresh token X refuses ends in ``XAuthError``: "run tweetdesk x-login again".
* **OAuth 1.0a** otherwise: the four ``TWEETDESK_X_CONSUMER_*`` / ``TWEETDESK_X_ACCESS_TOKEN*`` secrets.

``tweetdesk x-login`` prints X's authorisation URL (PKCE S256, a random ``state``), takes back the URL X
redirected the browser to (prompted, or ``--redirect-url`` in a second run: the pending login is kept in
the work dir, mode 600), checks its ``state``, and exchanges the code through tweepy's ``OAuth2UserHandler``.

Tokens and secrets never reach a log: tweepy, oauthlib and requests-oauthlib print them at DEBUG, so those
loggers are held at INFO or above.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
import tweepy
from oauthlib.oauth2 import OAuth2Error, WebApplicationClient
from requests_oauthlib import OAuth2Session

from tweetdesk.errors import TweetdeskError

log = logging.getLogger(__name__)

# tweepy builds every URL from one of these hosts.
TWEEPY_HOSTS = ("https://api.twitter.com", "https://api.x.com")
AUTHORIZE_URL = "https://x.com/i/oauth2/authorize"
TOKEN_URL = "https://api.x.com/2/oauth2/token"
# offline.access: X gives a refresh token only with it; without one, a login lasts two hours.
SCOPES = ["tweet.read", "tweet.write", "users.read", "offline.access"]
REFRESH_MARGIN_SECONDS = 120.0  # refresh this long before X says the access token expires
PENDING_LOGIN_FILE = "x_oauth2_login.json"
RELOGIN = "run `tweetdesk x-login` again"

# oauthlib and requests-oauthlib log the tokens (and the signed Authorization header), tweepy the request
# headers, at DEBUG: never let them below INFO, whatever level the application turns on.
_CREDENTIAL_LOGGERS = ("oauthlib", "requests_oauthlib", "tweepy.client")


class XAuthError(TweetdeskError):
    """We cannot act as the account (no or refused credentials): the user has to do something."""


def quiet_credential_loggers() -> None:
    for name in _CREDENTIAL_LOGGERS:
        lg = logging.getLogger(name)
        if lg.level < logging.INFO:  # NOTSET (inherits) or DEBUG
            lg.setLevel(logging.INFO)


class RebasedSession(requests.Session):
    """A requests Session that sends tweepy's calls to ``base`` (e.g. a local stand-in) and gives
    every call a timeout (tweepy sets none: a hung connection would hang the caller). The URL is
    rewritten before the request is prepared, so OAuth 1.0a signs the URL actually called."""

    def __init__(self, base: str | None = None, timeout: float | tuple[float, float] = (5.0, 30.0)):
        super().__init__()
        self.base = base.rstrip("/") if base else None
        self.timeout = timeout

    def request(self, method, url, *args, **kwargs):
        if self.base and isinstance(url, str):
            for host in TWEEPY_HOSTS:
                if url.startswith(host + "/"):
                    url = self.base + url[len(host):]
                    break
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


class XOAuth2Handler(tweepy.OAuth2UserHandler, RebasedSession):
    """tweepy's OAuth 2.0 PKCE handler, its token calls rebased onto ``base``. requests-oauthlib insists on
    https URLs; it checks the X URL, and the rebasing happens below it (``RebasedSession.request``)."""

    def __init__(self, *, client_id: str, redirect_uri: str | None, client_secret: str | None,
                 base: str, timeout: float | tuple[float, float] = (5.0, 30.0)):
        quiet_credential_loggers()  # requests-oauthlib logs X's token answers at DEBUG
        super().__init__(client_id=client_id, redirect_uri=redirect_uri, scope=SCOPES, client_secret=client_secret)
        self.base, self.timeout = base.rstrip("/"), timeout
        self.register_compliance_hook("access_token_response", _raise_for_outage)
        self.register_compliance_hook("refresh_token_response", _raise_for_outage)

    def exchange(self, code: str, code_verifier: str) -> dict:
        """The authorisation code (+ the PKCE verifier it was asked with) -> X's tokens."""
        return OAuth2Session.fetch_token(self, TOKEN_URL, code=code, code_verifier=code_verifier, auth=self.auth,
                                         include_client_id=True, timeout=self.timeout)

    def refresh(self, refresh_token: str) -> dict:
        return self.refresh_token(TOKEN_URL, refresh_token=refresh_token, auth=self.auth, timeout=self.timeout,
                                  client_id=self.client_id)


class XUnavailable(requests.ConnectionError):
    """X's token endpoint is down or unreachable: try again later (not a reason to log in again)."""


def _raise_for_outage(resp: requests.Response) -> requests.Response:
    if resp.status_code >= 500 or resp.status_code == 429:
        raise XUnavailable(f"X token endpoint answered HTTP {resp.status_code}")
    return resp


# --- the token file --------------------------------------------------------------------------------------------
def write_private(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to ``path`` atomically (temp file, fsync, rename), readable by its owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # the work dir: owner only
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # also when the file was left behind with other bits
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # the rename itself survives a power cut
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def read_private(path: Path, what: str) -> dict[str, Any]:
    """JSON from a file only its owner may read; ``XAuthError`` for a missing, shared or unreadable file."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        raise XAuthError(f"no {what} at {path}: {RELOGIN}") from None
    if mode & 0o077:
        raise XAuthError(f"{path} holds X tokens but other users can read it (mode {mode:04o}): run `chmod 600 {path}`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise XAuthError(f"cannot read the {what} {path} ({type(e).__name__}): {RELOGIN}") from None
    if not isinstance(data, dict):
        raise XAuthError(f"the {what} {path} is not a JSON object: {RELOGIN}")
    return data


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # the work dir: owner only
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _secret(s) -> str | None:
    return s.get_secret_value() if s is not None else None


class TokenFile:
    """OAuth 2.0 user tokens in ``path``: the current access token, refreshed (and the rotated refresh token
    saved) before it expires. Thread- and process-safe."""

    def __init__(self, path: Path, settings, *, clock: Callable[[], float] = time.time,
                 timeout: float | tuple[float, float] = (5.0, 30.0), margin: float = REFRESH_MARGIN_SECONDS):
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.settings = settings
        self.clock, self.timeout, self.margin = clock, timeout, margin
        self._lock = threading.Lock()
        self._token: dict[str, Any] | None = None
        self.refreshes = 0

    def __repr__(self) -> str:  # never show a token
        return f"TokenFile({str(self.path)!r})"

    def read(self) -> dict[str, Any]:
        tok = read_private(self.path, "OAuth 2.0 token file")
        if not isinstance(tok.get("access_token"), str) or not tok["access_token"]:
            raise XAuthError(f"the OAuth 2.0 token file {self.path} holds no access token: {RELOGIN}")
        return tok

    def save(self, tok: dict[str, Any]) -> None:
        write_private(self.path, tok)

    def _fresh(self, tok: dict[str, Any]) -> bool:
        exp = tok.get("expires_at")
        return exp is None or float(exp) - self.clock() > self.margin

    def access_token(self) -> str:
        """An access token valid for at least ``margin`` seconds more (refreshing it if need be)."""
        with self._lock:
            tok = self._token
        if tok is None:
            tok = self.read()
            with self._lock:
                self._token = tok
        if self._fresh(tok):
            return tok["access_token"]
        return self.refresh(stale=tok["access_token"])

    def refresh(self, stale: str | None = None) -> str:
        """Swap the refresh token for a new pair, save it, then hand out the new access token. ``stale``: the
        access token the caller found wanting; if the file already holds another fresh one (a sibling process
        or thread refreshed first), that one is used and the refresh token is not spent twice."""
        with self._lock, _file_lock(self.lock_path):
            tok = self.read()
            if tok["access_token"] != stale and self._fresh(tok):
                self._token = tok
                return tok["access_token"]
            refresh_token = tok.get("refresh_token")
            if not refresh_token:
                raise XAuthError("the X access token expired and there is no refresh token (was the offline.access "
                                 f"scope granted?): {RELOGIN}")
            client_id = self.settings.x_client_id or tok.get("client_id")
            if not client_id:
                raise XAuthError(f"TWEETDESK_X_CLIENT_ID is not set and {self.path} names no client: {RELOGIN}")
            handler = XOAuth2Handler(client_id=client_id, redirect_uri=self.settings.x_redirect_uri,
                                     client_secret=_secret(self.settings.x_client_secret),
                                     base=self.settings.x_api_base, timeout=self.timeout)
            try:
                new = handler.refresh(refresh_token)
            except OAuth2Error as e:
                # X answers 400 invalid_request for a spent or revoked refresh token: only a new login helps.
                raise XAuthError(f"X refused the stored refresh token ({e.error}: {e.description or 'no reason given'}): "
                                 f"{RELOGIN}") from None
            except (requests.RequestException, ValueError) as e:
                if tok["access_token"] != stale and float(tok.get("expires_at") or 0) > self.clock():
                    log.warning("cannot refresh the X access token yet (%s); the current one still works", e)
                    return tok["access_token"]
                raise XUnavailable(f"cannot refresh the X access token: {e}") from e
            finally:
                handler.close()
            saved = _token_record(new, client_id, self.clock(), previous=tok)
            self.save(saved)  # the rotated refresh token is on disk before its access token is used
            self._token = saved
            self.refreshes += 1
            log.info("X access token refreshed (valid until %s)", time.strftime(
                "%Y-%m-%d %H:%M:%S UTC", time.gmtime(saved["expires_at"])) if saved.get("expires_at") else "?")
            return saved["access_token"]


def _token_record(token: dict, client_id: str, now: float, previous: dict | None = None) -> dict[str, Any]:
    """What the token file keeps of X's token answer (our own clock for the expiry, so tests can move it)."""
    expires_in = token.get("expires_in")
    scope = token.get("scope")
    return {
        "client_id": client_id,
        "token_type": token.get("token_type", "bearer"),
        "access_token": token["access_token"],
        # X rotates it; should an answer lack one, the old one is the one that still counts.
        "refresh_token": token.get("refresh_token") or (previous or {}).get("refresh_token"),
        "expires_at": now + float(expires_in) if expires_in is not None else None,
        "scope": " ".join(scope) if isinstance(scope, list) else scope,
        "obtained_at": now,
    }


# --- the clients -----------------------------------------------------------------------------------------------
class OAuth2UserClient(tweepy.Client):
    """A tweepy Client whose user-context calls carry our OAuth 2.0 user access token (tweepy's ``user_auth=True``
    means OAuth 1.0a; with OAuth 2.0 the user token goes as the bearer token), fresh on every call."""

    def __init__(self, tokens: TokenFile, *, return_type=dict):
        super().__init__(return_type=return_type, wait_on_rate_limit=False)
        self.tokens = tokens

    def __repr__(self) -> str:
        return f"OAuth2UserClient({self.tokens!r})"

    def request(self, method, route, params=None, json=None, user_auth=False):
        token = self.tokens.access_token()
        self.bearer_token = token
        try:
            return super().request(method, route, params=params, json=json, user_auth=False)
        except tweepy.Unauthorized:
            # X no longer takes this access token (revoked, or expired before its time): refresh once. A 401
            # means X did nothing, so the call is safe to repeat.
            self.bearer_token = self.tokens.refresh(stale=token)
            return super().request(method, route, params=params, json=json, user_auth=False)


def user_client(settings, *, timeout: float | tuple[float, float] = (5.0, 30.0), return_type=dict,
                clock: Callable[[], float] = time.time) -> tweepy.Client:
    """A tweepy Client acting as our account, pointed at ``settings.x_api_base``: OAuth 2.0 when the token file
    exists, else OAuth 1.0a from the four secrets. ``return_type=requests.Response`` keeps X's headers (the
    mentions source reads the rate-limit headers of every page)."""
    quiet_credential_loggers()
    path = settings.x.oauth2_token_path
    if path.is_file():
        tokens = TokenFile(path, settings, clock=clock, timeout=timeout)
        tokens.read()  # a shared or broken file is one clear error now, not at the first call
        client: tweepy.Client = OAuth2UserClient(tokens, return_type=return_type)
    else:
        client = tweepy.Client(
            consumer_key=_secret(settings.x_consumer_key),
            consumer_secret=_secret(settings.x_consumer_secret),
            access_token=_secret(settings.x_access_token),
            access_token_secret=_secret(settings.x_access_token_secret),
            return_type=return_type,  # dict: plain JSON, ids stay strings
            wait_on_rate_limit=False,  # callers wait their own way (outbox, interruptible sleeps)
        )
    client.session = RebasedSession(settings.x_api_base, timeout=timeout)
    return client


def user_context_hint() -> str:
    return ("run `tweetdesk x-login` (OAuth 2.0: set TWEETDESK_X_CLIENT_ID and TWEETDESK_X_REDIRECT_URI first) or set "
            "TWEETDESK_X_CONSUMER_KEY/_SECRET and TWEETDESK_X_ACCESS_TOKEN/_SECRET (OAuth 1.0a)")


# --- x-login ---------------------------------------------------------------------------------------------------
def _login_settings(settings) -> tuple[str, str]:
    if not settings.x_client_id:
        raise XAuthError("set TWEETDESK_X_CLIENT_ID to the app's OAuth 2.0 client id (developer portal: Keys and tokens)")
    if not settings.x_redirect_uri:
        raise XAuthError("set TWEETDESK_X_REDIRECT_URI to a callback URL registered for the app (developer portal: "
                         "User authentication settings)")
    return settings.x_client_id, settings.x_redirect_uri


def pending_login_path(settings) -> Path:
    return settings.work_dir / PENDING_LOGIN_FILE


def start_login(settings) -> str:
    """X's authorisation URL for a new login (PKCE S256); the verifier and state wait in the work dir."""
    client_id, redirect_uri = _login_settings(settings)
    pkce = WebApplicationClient(client_id)
    verifier = pkce.create_code_verifier(128)
    handler = XOAuth2Handler(client_id=client_id, redirect_uri=redirect_uri,
                             client_secret=_secret(settings.x_client_secret), base=settings.x_api_base)
    try:
        url, state = handler.authorization_url(
            AUTHORIZE_URL, code_challenge=pkce.create_code_challenge(verifier, "S256"), code_challenge_method="S256")
    finally:
        handler.close()
    write_private(pending_login_path(settings), {
        "client_id": client_id, "redirect_uri": redirect_uri, "state": state, "code_verifier": verifier,
        "started_at": time.time(),
    })
    return url


def finish_login(settings, redirect_url: str, *, clock: Callable[[], float] = time.time) -> dict[str, Any]:
    """Check the redirect URL against the pending login, exchange its code, save the tokens (mode 600) and
    return who we are now (``GET /2/users/me``)."""
    pending_path = pending_login_path(settings)
    if not pending_path.exists():
        raise XAuthError("no login in progress: run `tweetdesk x-login` first (it prints the URL to open)")
    pending = read_private(pending_path, "pending login")
    query = parse_qs(urlsplit(redirect_url.strip()).query)
    if "error" in query:
        why = query.get("error_description", query["error"])[0]
        raise XAuthError(f"X did not authorise the app ({query['error'][0]}: {why}): {RELOGIN}")
    if query.get("state", [None])[0] != pending.get("state"):
        raise XAuthError("the redirect URL's state does not match the login started here (an old or foreign URL?): "
                         f"{RELOGIN}")
    code = query.get("code", [None])[0]
    if not code:
        raise XAuthError("the redirect URL holds no code: paste the whole address the browser was sent to")
    handler = XOAuth2Handler(client_id=pending["client_id"], redirect_uri=pending["redirect_uri"],
                             client_secret=_secret(settings.x_client_secret), base=settings.x_api_base)
    try:
        token = handler.exchange(code, pending["code_verifier"])
    except OAuth2Error as e:
        raise XAuthError(f"X refused the login ({e.error}: {e.description or 'no reason given'}): {RELOGIN}") from None
    except Warning as e:  # oauthlib: the scopes granted are not the scopes asked for
        raise XAuthError(f"X granted other scopes than tweetdesk needs ({e}); allow all of {' '.join(SCOPES)}") from None
    except requests.RequestException as e:
        raise XAuthError(f"cannot reach X's token endpoint at {settings.x_api_base}: {e}") from None
    finally:
        handler.close()
    if not token.get("refresh_token"):
        log.warning("X gave no refresh token (offline.access not granted?): the login lasts until the access token "
                    "expires")
    path = settings.x.oauth2_token_path
    write_private(path, _token_record(token, pending["client_id"], clock()))
    pending_path.unlink(missing_ok=True)
    me = user_client(settings, clock=clock).get_me(user_auth=True)["data"]
    return {"id": str(me["id"]), "username": me.get("username"), "token_file": str(path)}


def login_command(settings, redirect_url: str | None = None, *, stdin=None, echo=print) -> dict[str, Any] | None:
    """``tweetdesk x-login [--redirect-url URL]``."""
    import click

    if redirect_url is None:
        url = start_login(settings)
        click.echo("Open this address in a browser signed in as the brand's X account, allow tweetdesk, then paste "
                   "the address the browser was sent to:", err=True)
        click.echo(url)
        line = (stdin or click.get_text_stream("stdin")).readline().strip()
        if not line:
            click.echo("tweetdesk: no redirect URL read; finish with: tweetdesk x-login --redirect-url 'URL'", err=True)
            return None
        redirect_url = line
    who = finish_login(settings, redirect_url)
    click.echo(f"signed in to X as @{who['username']} (id {who['id']}); tokens saved to {who['token_file']} (mode 600)",
               err=True)
    return who


def bearer_token_hint() -> str:
    return "set TWEETDESK_X_BEARER_TOKEN to the app's bearer token (developer portal: Keys and tokens)"
