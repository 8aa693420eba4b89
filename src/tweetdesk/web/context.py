"""What every request of the service's app can reach: ``app.extensions["tweetdesk"]``, an ``AppContext``.

``tweetdesk.app.create_app`` builds it; the JSON API (``web.api``), the pages (``web.views``) and the
auth module read it through ``ctx()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import current_app

if TYPE_CHECKING:
    from tweetdesk.reply.budget import ReplyBudget
    from tweetdesk.reply.poster import Poster
    from tweetdesk.reply.templates import ReplyTemplates
    from tweetdesk.tickets.store import TicketStore


@dataclass
class AppContext:
    settings: Any
    store: "TicketStore"
    # The reply budget both GET /api/budget and the dashboard's panel read: the poster's when this process
    # posts (same clock, same live/dry-run rules), else one made from the settings.
    budget: "ReplyBudget"
    templates: "ReplyTemplates | None" = None
    poster: "Poster | None" = None  # when this process posts: woken by a manual reply, counted in /healthz
    health: dict[str, Callable[[], dict]] = field(default_factory=dict)  # name -> state, for /healthz


def ctx() -> AppContext:
    return current_app.extensions["tweetdesk"]
