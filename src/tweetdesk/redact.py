"""Secrets out of anything we print: database URLs, Kafka client settings, error messages built from them.

* ``redact_url`` renders a database URL with SQLAlchemy's own ``render_as_string(hide_password=True)``, after
  two repairs SQLAlchemy does not make: credentials holding an unencoded ``@`` (``user:p@ss@host``, which
  SQLAlchemy splits at the first ``@`` and would print half the password as the host) are re-read up to
  the last ``@`` before the host, and password-like query parameters (``?password=``, ``?sslpassword=``,
  ``?token=``…) are masked. An empty user name (``postgresql://:pw@host``) is handled by the same path.
* ``redact_kafka_config`` masks the values of confluent-kafka settings that hold secrets.
* ``scrub`` removes known secret values (and the raw URL) from a message, e.g. a driver's error text.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

MASK = "***"

# Query parameters and Kafka settings whose values are secrets (or hold them, like sasl.oauthbearer.config's
# "clientSecret=…", or a PEM private key).
_SECRET_NAME = re.compile(r"pass|pwd|secret|token|credential|api[_.-]?key|jaas|oauthbearer\.config|key\.pem", re.I)
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<rest>.*)$", re.S)
# What may follow the credentials' '@': a host (name, IPv4, [IPv6]) and port, then the path, query or the end.
_HOST_AFTER_AT = re.compile(r"[A-Za-z0-9.\-_%:\[\]]*(?=[/?#]|$)")
# key=value pairs inside a free-form string (a libpq DSN, an OAUTHBEARER config, an error message).
_INLINE_SECRET = re.compile(
    r"(?P<k>\b[\w.-]*(?:pass|pwd|secret|token|credential)[\w.-]*)(?P<sep>\s*[=:]\s*)(?P<q>['\"]?)(?P<v>[^\s'\"&;,]+)",
    re.I,
)


def _split_credentials(url: str) -> tuple[str, str | None, str | None, str] | None:
    """(scheme, user, password, rest after '@') with user/password decoded; None when the URL holds none."""
    m = _SCHEME.match(url)
    if not m:
        return None
    rest = m["rest"]
    # The credentials end at the first '@' followed by a host and then a path, query or the end of the URL
    # (so an unencoded '@' inside the password is skipped, and one in the query string is never reached).
    for at in (i for i, c in enumerate(rest) if c == "@"):
        if _HOST_AFTER_AT.match(rest, at + 1):
            userinfo, after = rest[:at], rest[at + 1 :]
            if "/" in userinfo or "?" in userinfo:
                return None  # an '@' in the path or query, not credentials
            user, sep, password = userinfo.partition(":")
            return m["scheme"], unquote(user), (unquote(password) if sep else None), after
    return None


def encode_credentials(url: str) -> str:
    """The same URL with user and password percent-encoded: what SQLAlchemy (and libpq) need to read a
    password holding '@', '/' or ':' as the password rather than as part of the host."""
    parts = _split_credentials(url)
    if parts is None:
        return url
    scheme, user, password, after = parts
    cred = quote(user, safe="") + ("" if password is None else ":" + quote(password, safe=""))
    return f"{scheme}{cred}@{after}"


def url_secrets(url: str) -> list[str]:
    """The secret values a URL holds: its password and the values of password-like query parameters."""
    import sqlalchemy as sa

    found: list[str] = []
    try:
        u = sa.engine.make_url(encode_credentials(url))
    except Exception:  # not a URL SQLAlchemy reads: fall back to what the text shows
        parts = _split_credentials(url)
        if parts and parts[2]:
            found.append(parts[2])
        found += [m["v"] for m in _INLINE_SECRET.finditer(url)]
        return found
    if u.password:
        found.append(str(u.password))
    for k, v in u.query.items():
        if _SECRET_NAME.search(k):
            found += [x for x in (v if isinstance(v, tuple) else (v,)) if x]
    return found


def redact_url(url: str) -> str:
    """``postgresql://user:pw@host/db?sslpassword=x`` -> ``postgresql://user:***@host/db?sslpassword=***``."""
    import sqlalchemy as sa

    if not url or not url_secrets(url):
        return url  # nothing to hide: shown exactly as configured
    try:
        u = sa.engine.make_url(encode_credentials(url))
    except Exception:
        parts = _split_credentials(url)
        text = url
        if parts and parts[2]:
            scheme, user, _pw, after = parts
            text = f"{scheme}{quote(user, safe='')}:{MASK}@{after}"
        return _INLINE_SECRET.sub(lambda m: f"{m['k']}{m['sep']}{m['q']}{MASK}", text)
    masked = {k: MASK for k in u.query if _SECRET_NAME.search(k)}
    if masked:
        u = u.update_query_dict(masked)
    return u.render_as_string(hide_password=True)


def has_secret(url: str | None) -> bool:
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
