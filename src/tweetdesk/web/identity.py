"""The desk of the running app (``desk()``) and whether sign-in exists at all (``desk_enabled``: an API key is
configured or desk accounts have been created). Who a request acts as is ``web.auth``'s: the service's one
sign-in check."""

from __future__ import annotations

import time

from flask import current_app

from tweetdesk.desk.accounts import TOKEN_PREFIX
from tweetdesk.desk.core import Desk

USERS_CACHE_SECONDS = 5.0


def desk() -> Desk:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    d = app.extensions.get("tweetdesk_desk")
    if d is None:
        c = app.extensions["tweetdesk"]
        d = app.extensions.setdefault("tweetdesk_desk", Desk(c.store, c.settings))
    return d


def configured_key() -> str | None:
    key = current_app.extensions["tweetdesk"].settings.api_key
    key = key.get_secret_value() if key is not None else None
    return key or None


def have_users() -> bool:
    """Whether any account exists (cached a few seconds: it is asked on every page)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    at, value = app.extensions.get("tweetdesk_have_users", (0.0, False))
    if value or time.monotonic() - at < USERS_CACHE_SECONDS:
        return value  # once there are accounts there stay accounts (disabling one does not remove it)
    value = desk().accounts.any()
    app.extensions["tweetdesk_have_users"] = (time.monotonic(), value)
    return value


def desk_enabled() -> bool:
    """Sign-in exists: an API key is configured or accounts have been created."""
    return configured_key() is not None or have_users()


def ctx_poster():
    """The poster of this process (to wake it for a new reply), or None."""
    return getattr(current_app.extensions["tweetdesk"], "poster", None)


__all__ = ["TOKEN_PREFIX", "configured_key", "ctx_poster", "desk", "desk_enabled", "have_users"]
