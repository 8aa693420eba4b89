"""What every request of the service's app can reach: ``app.extensions["tweetdesk"]``, an ``AppContext``, the
app's one piece of state (nothing else is kept in ``app.extensions``).

``tweetdesk.app.create_app`` builds it, every part at once (nothing is made lazily inside a request); the JSON
API (``web.api``), the pages (``web.views``) and the sign-in check (``web.auth``) read it through ``ctx()``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import current_app

if TYPE_CHECKING:
    from tweetdesk.desk.core import Desk
    from tweetdesk.ingest.activity import ActivityReceiver
    from tweetdesk.reply.budget import ReplyBudget
    from tweetdesk.reply.poster import Poster
    from tweetdesk.reply.templates import ReplyTemplates
    from tweetdesk.tickets.store import TicketStore
    from tweetdesk.web.sessions import SessionRegistry
    from tweetdesk.web.summary_cache import SummaryCache
    from tweetdesk.web.throttle import KeyThrottle


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
    desk: "Desk | None" = None  # what agents do to tickets
    throttle: "KeyThrottle | None" = None  # wrong keys and passwords, API and pages alike
    sessions: "SessionRegistry | None" = None  # agents' sign-ins, ended by a reset or a disable
    # Exports built at once (web.desk_api.export_response): each streams in bounded memory, but holds a thread
    # and the database for its length.
    export_slots: threading.BoundedSemaphore | None = None
    summary: "SummaryCache | None" = None  # the dashboard's figures, shared by every client
    summary_gate: threading.BoundedSemaphore | None = None  # dashboard requests served at once
    # Figures asked on every page and shared for a few seconds: name -> (monotonic time, value).
    shared: dict[str, tuple[float, Any]] = field(default_factory=dict)
    x_webhook: "ActivityReceiver | None" = None  # the Activity API's DM deliveries, when a webhook secret is set


def ctx() -> AppContext:
    return current_app.extensions["tweetdesk"]
