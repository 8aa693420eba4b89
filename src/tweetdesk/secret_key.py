"""The deployment's secret: signs agent sessions and keys ticket IDs.

It comes from ``TWEETDESK_SECRET_KEY`` (at least 32 characters), else from ``<work_dir>/secret_key``, a
random key written once with mode 600 and read by every later process. Every process of a deployment (the
stream job, the reply service, ``tweetdesk classify``) must see the same secret: put it in the environment
(or a secrets manager) when they do not share a work dir. On a Spark cluster the driver reads it and ships
it to the workers inside the settings (``with_secret_key``), so workers never need the file.

Each use gets its own key derived from the secret (HMAC-SHA256 over a purpose label): the session cookie's
signature says nothing about the ticket key, and neither says anything about the admin API key, which is
no longer involved in signing anything.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import secrets
import stat
import threading
from collections import Counter
from pathlib import Path

from tweetdesk.errors import ConfigError

SECRET_FILE = "secret_key"
MIN_LENGTH = 32
HOW_TO_MAKE = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"

# A key must look random enough that guessing it is hopeless: ``key_strength_bits`` estimates the bits by the
# character frequencies (Shannon) and a repeated pattern counts once. 32 random hex digits score ~112; "a"*32,
# 32 spaces and "password"*4 score 0, 0 and 22.
MIN_KEY_BITS = 96

_cache: dict[str, bytes] = {}
_lock = threading.Lock()


def key_strength_bits(key: str) -> float:
    """A rough estimate of how many bits of guessing ``key`` takes: per-character Shannon entropy times the length
    of its shortest repeating unit (``"password"*4`` is as strong as ``"password"``)."""
    n = len(key)
    unit = next((p for p in range(1, n // 2 + 1) if n % p == 0 and key == key[:p] * (n // p)), n)
    counts = Counter(key[:unit])
    return max(0.0, -sum(c / unit * math.log2(c / unit) for c in counts.values()) * unit) if unit else 0.0


def weak_key_problem(name: str, key: str) -> str | None:
    """One readable line saying why ``key`` (the setting ``name``) is too weak, with the recipe; None if it is fine.
    Never quotes the key."""
    if len(key) < MIN_LENGTH:
        return f"{name} is {len(key)} characters; use at least {MIN_LENGTH}, e.g. {HOW_TO_MAKE}"
    if key_strength_bits(key) < MIN_KEY_BITS:
        return (f"{name} is too predictable (repeated or few distinct characters: about "
                f"{key_strength_bits(key):.0f} bits, {MIN_KEY_BITS} needed); make a random one: {HOW_TO_MAKE}")
    return None


def _from_file(path: Path) -> bytes:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"{path} (the secret key) is readable by other users (mode {mode:04o}): run `chmod 600 {path}`"
        )
    value = path.read_text(encoding="ascii").strip()
    if len(value) < MIN_LENGTH:
        raise ConfigError(f"{path} holds no usable secret key: delete it to have a new one made")
    return value.encode()


def _create(path: Path) -> bytes:
    """Write a new random key; two processes starting together end up with the same one (link is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # the work dir: owner only
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_urlsafe(48) + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # fails if another process made the key first: then theirs is the key
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    return _from_file(path)


def secret_key(settings) -> bytes:
    """The secret as bytes: ``settings.secret_key``, else the work dir's key file (made on first use)."""
    configured = settings.secret_key.get_secret_value() if settings.secret_key is not None else ""
    if configured:
        if len(configured) < MIN_LENGTH:
            raise ConfigError(
                f"TWEETDESK_SECRET_KEY is {len(configured)} characters; use at least {MIN_LENGTH}, e.g. {HOW_TO_MAKE}"
            )
        return configured.encode()
    path = (Path(settings.work_dir) / SECRET_FILE).resolve()
    with _lock:
        if str(path) not in _cache:
            _cache[str(path)] = _from_file(path) if path.exists() else _create(path)
        return _cache[str(path)]


def derive(secret: bytes, purpose: str) -> bytes:
    return hmac.new(secret, f"tweetdesk {purpose}".encode(), hashlib.sha256).digest()


def ticket_key(settings) -> bytes:
    """The key of ticket IDs (``tickets.ids.ticket_id_for``)."""
    return derive(secret_key(settings), "ticket id")


def session_key(settings) -> bytes:
    """The Flask signing key (session cookie, CSRF tokens)."""
    return derive(secret_key(settings), "flask session")


def with_secret_key(settings):
    """``settings`` carrying the resolved secret itself, for processes that cannot read the work dir
    (Spark workers on other machines)."""
    from pydantic import SecretStr

    if settings.secret_key is not None and settings.secret_key.get_secret_value():
        secret_key(settings)  # validates it
        return settings
    return settings.model_copy(update={"secret_key": SecretStr(secret_key(settings).decode())})
