"""The desk of the running app (``desk()``) and whether sign-in exists at all (``desk_enabled``: an API key is
configured or desk accounts have been created). Who a request acts as is ``web.auth``'s: the service's one
sign-in check."""

from __future__ import annotations

import time

from tweetdesk.desk.accounts import TOKEN_PREFIX
from tweetdesk.desk.core import Desk
from tweetdesk.web.context import ctx

USERS_CACHE_SECONDS = 5.0


def desk() -> Desk:
    return ctx().desk


def configured_key() -> str | None:
    key = ctx().settings.api_key
    key = key.get_secret_value() if key is not None else None
    return key or None


def have_users() -> bool:
    """Whether any account exists (cached a few seconds: it is asked on every page)."""
    shared = ctx().shared
    at, value = shared.get("have_users", (0.0, False))
    if value or time.monotonic() - at < USERS_CACHE_SECONDS:
        return value  # once there are accounts there stay accounts (disabling one does not remove it)
    value = desk().accounts.any()
    shared["have_users"] = (time.monotonic(), value)
    return value


def desk_enabled() -> bool:
    """Sign-in exists: an API key is configured or accounts have been created."""
    return configured_key() is not None or have_users()


def ctx_poster():
    """The poster of this process (to wake it for a new reply), or None."""
    return ctx().poster


__all__ = ["TOKEN_PREFIX", "configured_key", "ctx_poster", "desk", "desk_enabled", "have_users"]
