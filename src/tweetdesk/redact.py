"""Secrets out of anything we print: database URLs, Kafka client settings, error messages built from them.

* ``redact_url`` rebuilds a database URL from its parts with the password and password-like query parameters
  (``?password=``, ``?sslpassword=``, ``?token=``…) masked. The URL is taken apart by its structure, not by
  a pattern over the whole text: the credentials end at the last ``@`` followed by a host list, so a
  password holding an unencoded ``@``, ``/`` or ``:`` and libpq's multi-host form
  (``postgresql://u:pw@h1:5432,h2:5433/db``) are both read right; an empty user name too.
* ``redact_kafka_config`` masks the values of confluent-kafka settings that hold secrets.
* ``scrub`` removes known secret values (and the raw URL) from a message, e.g. a driver's error text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

MASK = "***"

# Query parameters and Kafka settings whose values are secrets (or hold them, like sasl.oauthbearer.config's
# "clientSecret=…", or a PEM private key).
_SECRET_NAME = re.compile(r"pass|pwd|secret|token|credential|api[_.-]?key|jaas|oauthbearer\.config|key\.pem", re.I)
# key=value pairs inside a free-form string (a libpq DSN, an OAUTHBEARER config, an error message).
_INLINE_SECRET = re.compile(
    r"(?P<k>\b[\w.-]*(?:pass|pwd|secret|token|credential)[\w.-]*)(?P<sep>\s*[=:]\s*)(?P<q>['\"]?)(?P<v>[^\s'\"&;,]+)",
    re.I,
)


@dataclass(frozen=True)
class _Parsed:
    """A URL taken apart by its structure: scheme://[user[:password]@]host[:port][,host[:port]…][/path][?query]."""

    scheme: str  # with "://"
    user: str | None
    password: str | None
    hosts: str  # as written: "h1:5432,h2:5433", "[::1]:5432", "" (a socket)
    tail: str  # path and query, as written
    query: list[tuple[str, str]]


def _is_host_list(text: str) -> bool:
    """True when ``text`` is a host list: host[:port] items (name, IPv4 or [IPv6]), comma separated, as
    libpq's multi-host URLs write them; empty (a Unix socket) too."""
    if text == "":
        return True
    for item in text.split(","):
        try:
            part = urlsplit("//" + item)
            part.port  # noqa: B018 (raises ValueError on a port that is not a number in range)
        except ValueError:
            return False
        host = part.hostname or ""
        if not host or part.username is not None or part.path or part.query or part.fragment:
            return False
        if not (item.startswith("[") or all(c.isascii() and (c.isalnum() or c in ".-_%") for c in host)):
            return False
    return True


def _host_part(text: str) -> str:
    """What precedes the path, query or fragment."""
    return text[: min((i for i in (text.find("/"), text.find("?"), text.find("#")) if i >= 0), default=len(text))]


def _parse(url: str) -> _Parsed | None:
    """``url`` taken apart, user and password decoded; None when it is not a scheme://… URL. The credentials
    end at the last '@' followed by a host list (a password may hold '@', '/', ':' or '?', unencoded)."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme or not (scheme[0].isalpha() and all(c.isalnum() or c in "+.-" for c in scheme)):
        return None
    user = password = None
    ats = [i for i, c in enumerate(rest) if c == "@"] if not rest.startswith("/") else []  # "/…": no host part
    split = next((at for at in reversed(ats) if _is_host_list(_host_part(rest[at + 1 :]))), None)
    if split is None and ats:
        split = ats[-1]  # no readable host after any '@' ("db:notaport"): still, never show the password
    if split is not None:
        userinfo, rest = rest[:split], rest[split + 1 :]
        u, colon, pw = userinfo.partition(":")
        user, password = unquote(u), (unquote(pw) if colon else None)
    hosts = _host_part(rest)
    tail = rest[len(hosts):]
    query = parse_qsl(tail.partition("?")[2].partition("#")[0], keep_blank_values=True)
    return _Parsed(f"{scheme}://", user, password, hosts, tail, query)


def encode_credentials(url: str) -> str:
    """The same URL with user and password percent-encoded: what SQLAlchemy (and libpq) need to read a
    password holding '@', '/' or ':' as the password rather than as part of the host."""
    p = _parse(url)
    if p is None or p.user is None:
        return url
    cred = quote(p.user, safe="") + ("" if p.password is None else ":" + quote(p.password, safe=""))
    return f"{p.scheme}{cred}@{p.hosts}{p.tail}"


def url_secrets(url: str) -> list[str]:
    """The secret values a URL holds: its password and the values of password-like query parameters."""
    p = _parse(url)
    if p is None:  # not a URL: what a free-form string (a libpq DSN) shows as key=value
        return [m["v"] for m in _INLINE_SECRET.finditer(url)]
    found = [p.password] if p.password else []
    return found + [v for k, v in p.query if v and _SECRET_NAME.search(k)]


def redact_url(url: str) -> str:
    """``postgresql://user:pw@h1,h2/db?sslpassword=x`` -> ``postgresql://user:***@h1,h2/db?sslpassword=***``:
    rebuilt from the parsed URL (never by pattern), so a multi-host URL or a password holding '@' or '/'
    never shows a piece of the password."""
    if not url or not url_secrets(url):
        return url  # nothing to hide: shown exactly as configured
    p = _parse(url)
    if p is None:
        return _INLINE_SECRET.sub(lambda m: f"{m['k']}{m['sep']}{m['q']}{MASK}", url)
    cred = ""
    if p.user is not None:
        cred = quote(p.user, safe="") + ("" if p.password is None else f":{MASK}") + "@"
    path, _, rest = p.tail.partition("?")
    tail = path
    if _ or rest:
        query = [(k, MASK if _SECRET_NAME.search(k) else v) for k, v in p.query]
        tail += "?" + urlencode(query, safe="*@:,/")
    return f"{p.scheme}{cred}{p.hosts}{tail}"


def has_secret(url: str | None) -> bool:
    """True when ``url`` holds a password or a password-like query parameter (a secret setting)."""
    return bool(url) and bool(url_secrets(url))


def redact_kafka_config(config: dict) -> dict:
    """confluent-kafka settings with every secret value masked (``sasl.password``, ``ssl.key.password``,
    ``sasl.oauthbearer.client.secret``, ``sasl.oauthbearer.config``, ``ssl.key.pem``…)."""
    return {k: (MASK if _SECRET_NAME.search(str(k)) else v) for k, v in config.items()}


def kafka_secret_names(config: dict) -> list[str]:
    return [str(k) for k in config if _SECRET_NAME.search(str(k))]


def scrub(text: str, *, url: str | None = None, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with ``url`` shown redacted and every secret value it or ``secrets`` hold masked, for error
    messages built by a driver from a URL we passed it."""
    values = [s for s in (*secrets, *(url_secrets(url) if url else ())) if s]
    if url:
        text = text.replace(url, redact_url(url))
    # A driver that split a password at an unencoded '@' echoes the pieces (as a host name, say).
    values += [p for v in values if "@" in v for p in v.split("@") if len(p) > 2]
    for s in sorted(set(values), key=len, reverse=True):
        text = text.replace(s, MASK)
        enc = quote(s, safe="")
        if enc != s:
            text = text.replace(enc, MASK)
    return text
