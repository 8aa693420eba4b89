"""Named accounts (admin, agent, viewer), their passwords and their personal API tokens.

* Passwords are hashed with argon2id (argon2-cffi's defaults); a new account or a reset gets a random
  one-time password, shown once, which the pages make its holder change at first sign-in. Checking an unknown name costs the same as a wrong password (a dummy hash
  is verified), so timing does not tell which names exist.
* API tokens are 256-bit random strings (``tdk_…``); only their SHA-256 is stored (a token is not a
  password: it cannot be guessed, so a slow hash buys nothing). Revocable; a disabled account's tokens stop
  working at once.
* ``Principal`` is who a request acts as: an account, or the bootstrap admin (``TWEETDESK_API_KEY``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from tweetdesk.desk import ADMIN, AGENT, ROLES, VIEWER
from tweetdesk.errors import TweetdeskError
from tweetdesk.tickets.schema import api_tokens, users

NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{1,31}")  # fullmatch: "$" would accept a final newline
TOKEN_PREFIX = "tdk_"
MIN_PASSWORD = 12
BOOTSTRAP = "admin (API key)"  # how the shared key appears in the audit trail

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class DeskError(TweetdeskError):
    """Bad input to the desk (unknown user, bad name, rule broken); ``status`` is the HTTP answer."""

    def __init__(self, message: str, *, status: int = 400, kind: str = "bad_request", **extra: Any):
        super().__init__(message)
        self.status, self.kind, self.extra = status, kind, extra


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    user_id: int | None = None  # None: the bootstrap admin (the API key)
    via: str = "session"  # session | key | token
    must_change_password: bool = False  # signed in with a one-time password: the pages ask for a new one first

    @property
    def can_write(self) -> bool:
        return self.role in (ADMIN, AGENT)

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


def bootstrap_admin(via: str = "key") -> Principal:
    return Principal(BOOTSTRAP, ADMIN, None, via)


def check_name(name: str) -> str:
    n = (name or "").strip().lower()
    if not NAME_RE.fullmatch(n):
        raise DeskError(
            f"bad user name {name!r}: 2-32 characters, letters, digits, '.', '_' or '-', starting with a letter or digit",
            kind="bad_name",
        )
    return n


def check_role(role: str) -> str:
    if role not in ROLES:
        raise DeskError(f"unknown role {role!r}: one of {', '.join(ROLES)}", kind="bad_role")
    return role


def one_time_password() -> str:
    return secrets.token_urlsafe(15)  # 20 characters, 120 bits


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class Accounts:
    """The account tables, through the store's engine (``desk.Desk`` makes one)."""

    def __init__(self, desk):
        self.desk = desk

    # --- users -----------------------------------------------------------------------------------
    def add(self, name: str, role: str, *, actor: str) -> tuple[dict[str, Any], str]:
        """A new account; returns (user, its one-time password)."""
        name, role = check_name(name), check_role(role)
        password = one_time_password()
        now = self.desk.clock()
        with self.desk.tx(write=True) as conn:
            if conn.execute(sa.select(users.c.id).where(users.c.name == name)).first():
                raise DeskError(f"user {name!r} exists already", status=409, kind="exists")
            conn.execute(users.insert().values(name=name, role=role, password_hash=_hasher.hash(password),
                                               created_at=now, password_set_at=now, must_change_password=True))
            self.desk.audit_in(conn, None, actor, "user_added", {"user": name, "role": role})
        return self.get(name), password

    def get(self, name: str) -> dict[str, Any] | None:
        with self.desk.tx() as conn:
            row = conn.execute(sa.select(users).where(users.c.name == (name or "").strip().lower())).mappings().first()
        return _public(row) if row else None

    def list(self) -> list[dict[str, Any]]:
        with self.desk.tx() as conn:
            return [_public(r) for r in conn.execute(sa.select(users).order_by(users.c.name)).mappings()]

    def any(self) -> bool:
        with self.desk.tx() as conn:
            return conn.execute(sa.select(users.c.id).limit(1)).first() is not None

    def _require(self, conn, name: str):
        row = conn.execute(sa.select(users).where(users.c.name == (name or "").strip().lower())).mappings().first()
        if row is None:
            raise DeskError(f"no user {name!r}", status=404, kind="unknown_user")
        return row

    def disable(self, name: str, *, actor: str, enable: bool = False) -> dict[str, Any]:
        now = self.desk.clock()
        with self.desk.tx(write=True) as conn:
            row = self._require(conn, name)
            if enable:  # its old sessions and tokens stay ended: the account starts afresh
                conn.execute(users.update().where(users.c.id == row["id"]).values(disabled_at=None))
            else:
                conn.execute(users.update().where(users.c.id == row["id"]).values(disabled_at=now, signed_out_at=now))
                self._end_tokens_in(conn, row["id"], now)
            self.desk.audit_in(conn, None, actor, "user_enabled" if enable else "user_disabled", {"user": row["name"]})
            if not enable:  # an account taken away takes its assignments with it
                self.desk.unassign_all_in(conn, row["name"], actor)
        return self.get(name)

    def reset(self, name: str, *, actor: str) -> str:
        """A new one-time password; signs the account out everywhere (sessions check the password's date) and
        revokes its API tokens: a reset is what one does about a leaked credential."""
        password = one_time_password()
        now = self.desk.clock()
        with self.desk.tx(write=True) as conn:
            row = self._require(conn, name)
            conn.execute(users.update().where(users.c.id == row["id"])
                         .values(password_hash=_hasher.hash(password), password_set_at=now, must_change_password=True))
            self._end_tokens_in(conn, row["id"], now)
            self.desk.audit_in(conn, None, actor, "password_reset", {"user": row["name"]})
        return password

    @staticmethod
    def _end_tokens_in(conn, user_id: int, now: datetime) -> None:
        conn.execute(api_tokens.update().where(api_tokens.c.user_id == user_id, api_tokens.c.revoked_at.is_(None))
                     .values(revoked_at=now))

    def change_password(self, principal: Principal, current: str, new: str, confirm: str) -> None:
        """An account changes its own password: the current one must match, the new one be long and not the old.
        Every other session of the account ends (they check the password's date); its tokens keep working."""
        if principal.user_id is None:
            raise DeskError("the bootstrap admin has the API key, not a password", status=403, kind="forbidden")
        if new != confirm:
            raise DeskError("the new password and its confirmation differ", kind="bad_password")
        if len(new) < MIN_PASSWORD or len(set(new)) < 5 or principal.name in new.lower():
            raise DeskError(f"choose a password of at least {MIN_PASSWORD} characters, not built on your name, with "
                            "more than a few different characters (a passphrase of four words works)",
                            kind="bad_password")
        if self.authenticate(principal.name, current) is None:
            raise DeskError("your current password is not right", status=403, kind="bad_credentials")
        if new == current:
            raise DeskError("the new password is the current one", kind="bad_password")
        now = self.desk.clock()
        with self.desk.tx(write=True) as conn:
            conn.execute(users.update().where(users.c.id == principal.user_id)
                         .values(password_hash=_hasher.hash(new), password_set_at=now, must_change_password=False))
            self.desk.audit_in(conn, None, principal.name, "password_changed", {"user": principal.name})

    def authenticate(self, name: str, password: str) -> Principal | None:
        """The account if the name and password match and it is enabled; None otherwise (same cost either way)."""
        try:
            n = check_name(name)
        except DeskError:
            n = None
        row = None
        if n is not None:
            with self.desk.tx() as conn:
                row = conn.execute(sa.select(users).where(users.c.name == n)).mappings().first()
        stored = row["password_hash"] if row is not None else _DUMMY_HASH
        try:
            _hasher.verify(stored, password or "")
            ok = row is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        if not ok or row["disabled_at"] is not None:
            return None
        if _hasher.check_needs_rehash(stored):
            with self.desk.tx(write=True) as conn:
                conn.execute(users.update().where(users.c.id == row["id"]).values(password_hash=_hasher.hash(password)))
        return Principal(row["name"], row["role"], row["id"], "session", bool(row["must_change_password"]))

    def session_principal(self, user_id: object, password_set_at: object) -> Principal | None:
        """The account a signed-in session names, while it is enabled and its password unchanged."""
        if not isinstance(user_id, int):
            return None
        with self.desk.tx() as conn:
            row = conn.execute(sa.select(users).where(users.c.id == user_id)).mappings().first()
        if row is None or row["disabled_at"] is not None or _session_stamp(row) != password_set_at:
            return None
        return Principal(row["name"], row["role"], row["id"], "session", bool(row["must_change_password"]))

    def session_stamp(self, principal: Principal) -> str | None:
        with self.desk.tx() as conn:
            row = conn.execute(sa.select(users).where(users.c.id == principal.user_id)).mappings().first()
        return _session_stamp(row) if row is not None else None

    # --- API tokens ----------------------------------------------------------------------------------
    def create_token(self, name: str, label: str = "api", *, actor: str,
                     expires_days: int | None = None) -> tuple[dict[str, Any], str]:
        """A new personal token (shown once); ``expires_days``: it stops working after that many days (None: not)."""
        label = (label or "api").strip()[:64] or "api"
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self.desk.clock()
        expires = now + timedelta(days=expires_days) if expires_days else None
        with self.desk.tx(write=True) as conn:
            row = self._require(conn, name)
            if row["disabled_at"] is not None:
                raise DeskError(f"user {row['name']!r} is disabled", status=409, kind="disabled")
            tid = conn.execute(api_tokens.insert().returning(api_tokens.c.id).values(
                user_id=row["id"], label=label, token_hash=token_hash(token), prefix=token[:10], created_at=now,
                expires_at=expires)).scalar()
            self.desk.audit_in(conn, None, actor, "token_created", {"user": row["name"], "token": tid, "label": label})
        return {"id": tid, "user": row["name"], "label": label, "prefix": token[:10], "created_at": now,
                "expires_at": expires}, token

    def tokens(self, name: str | None = None) -> list[dict[str, Any]]:
        q = (sa.select(api_tokens.c.id, api_tokens.c.label, api_tokens.c.prefix, api_tokens.c.created_at,
                       api_tokens.c.last_used_at, api_tokens.c.revoked_at, api_tokens.c.expires_at,
                       users.c.name.label("user"))
             .join(users, users.c.id == api_tokens.c.user_id).order_by(api_tokens.c.id))
        if name is not None:
            q = q.where(users.c.name == name)
        with self.desk.tx() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def revoke_token(self, token_id: int, *, actor: Principal) -> dict[str, Any]:
        now = self.desk.clock()
        with self.desk.tx(write=True) as conn:
            row = conn.execute(sa.select(api_tokens, users.c.name.label("user")).join(users, users.c.id == api_tokens.c.user_id)
                               .where(api_tokens.c.id == token_id)).mappings().first()
            if row is None or (not actor.is_admin and row["user"] != actor.name):
                raise DeskError(f"no token {token_id}", status=404, kind="unknown_token")
            conn.execute(api_tokens.update().where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                         .values(revoked_at=now))
            self.desk.audit_in(conn, None, actor.name, "token_revoked", {"user": row["user"], "token": token_id})
        return {"id": token_id, "revoked": True}

    def token_principal(self, token: str) -> Principal | None:
        if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
            return None
        h = token_hash(token)
        with self.desk.tx() as conn:
            row = conn.execute(
                sa.select(api_tokens.c.id, api_tokens.c.revoked_at, api_tokens.c.expires_at, users.c.id.label("uid"),
                          users.c.name, users.c.role, users.c.disabled_at)
                .join(users, users.c.id == api_tokens.c.user_id).where(api_tokens.c.token_hash == h)
            ).mappings().first()
        if row is None or row["revoked_at"] is not None or row["disabled_at"] is not None:
            return None
        if row["expires_at"] is not None and row["expires_at"] <= self.desk.clock():
            return None
        with self.desk.tx(write=True) as conn:
            conn.execute(api_tokens.update().where(api_tokens.c.id == row["id"]).values(last_used_at=self.desk.clock()))
        return Principal(row["name"], row["role"], row["uid"], "token")


def _stamp(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _session_stamp(row) -> str | None:
    """What a session of this account must carry to count: the password's date, and the last disable after it."""
    out = row["signed_out_at"]
    if out is not None and out > row["password_set_at"]:
        return f"{_stamp(row['password_set_at'])}/{_stamp(out)}"
    return _stamp(row["password_set_at"])


def _public(row) -> dict[str, Any]:
    return {
        "name": row["name"],
        "role": row["role"],
        "created_at": row["created_at"],
        "disabled": row["disabled_at"] is not None,
        "disabled_at": row["disabled_at"],
    }


__all__ = ["ADMIN", "AGENT", "Accounts", "BOOTSTRAP", "DeskError", "Principal", "VIEWER", "bootstrap_admin"]
