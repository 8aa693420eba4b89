"""The app factory: ``create_app`` builds the one Flask app of ``tweetdesk serve``: the JSON API (``web.api``) and
the pages (``web.views``) as blueprints, registered here explicitly, with the security headers and the agent
sign-in (``web.security``, ``web.auth``). ``app.extensions["tweetdesk"]`` is its ``web.context.AppContext``,
every part built here. The process that runs it is ``serve.ReplyService``."""

from __future__ import annotations

import logging
import threading
from functools import partial
from typing import Callable

from flask import Flask

from tweetdesk.desk.core import Desk
from tweetdesk.reply.budget import ReplyBudget
from tweetdesk.reply.poster import Poster
from tweetdesk.reply.templates import ReplyTemplates
from tweetdesk.tickets.store import TicketStore
from tweetdesk.web import api, auth, desk_api, desk_views, security, views
from tweetdesk.web.context import AppContext
from tweetdesk.web.security import check_startup
from tweetdesk.web.sessions import SessionRegistry
from tweetdesk.web.summary_cache import SummaryCache
from tweetdesk.web.throttle import KeyThrottle

log = logging.getLogger(__name__)


def create_app(
    settings=None,
    store: TicketStore | None = None,
    *,
    poster: Poster | None = None,
    templates: ReplyTemplates | None = None,
    health: dict[str, Callable[[], dict]] | None = None,
) -> Flask:
    """Build the app. ``store`` defaults to one opened from ``settings`` (schema created/migrated);
    ``poster``: this process's, when it posts (its budget is the one the API and the dashboard report)."""
    if settings is None:
        from tweetdesk.config import get_settings

        settings = get_settings()
    check_startup(settings)  # a short API key, a keyless dashboard on a public address: refused
    store = store or TicketStore.from_settings(settings)
    budget = poster.budget if poster is not None else ReplyBudget(settings, store, live=settings.x.user_credentials)
    app = Flask("tweetdesk")
    # A ticket ID typed as "/0" arrives as /api/tickets//0: answer it as an unknown ticket (404 JSON), not with a
    # 308 redirect to a merged path that names a different resource.
    app.url_map.merge_slashes = False
    app.config.update(MAX_CONTENT_LENGTH=api.MAX_BODY_BYTES, JSON_SORT_KEYS=False)
    app.json.sort_keys = False
    c = AppContext(settings, store, budget, templates, poster, dict(health or {}), desk=Desk(store, settings),
                   throttle=KeyThrottle.from_settings(settings),
                   sessions=SessionRegistry(store, settings.session_lifetime_seconds),
                   export_slots=threading.BoundedSemaphore(settings.desk_export_concurrency),
                   summary_gate=threading.BoundedSemaphore(views.SUMMARY_REQUESTS_AT_ONCE))
    c.summary = SummaryCache(partial(views.compute_summary, c), settings.web_summary_seconds)
    if settings.x.webhook_secret is not None and settings.x.webhook_secret.get_secret_value():
        from tweetdesk.ingest.activity import ActivityReceiver

        c.x_webhook = ActivityReceiver(settings)  # X's DM deliveries -> tweets.raw (web.x_webhook)
    app.extensions["tweetdesk"] = c
    security.init_app(app, settings)  # headers on every answer, the API's too
    auth.init_app(app, settings)
    api.register_errors(app, page_for_unrouted=views.page_for_unrouted)
    app.register_blueprint(api.api)
    app.register_blueprint(views.blueprint)
    app.register_blueprint(desk_views.desk_pages)  # the agents' desk: inbox, canned replies, users, report
    app.register_blueprint(desk_api.desk_api)
    from tweetdesk.web.compliance_api import compliance_api  # X's data rules: erasure on request

    app.register_blueprint(compliance_api)
    from tweetdesk.web.x_webhook import x_webhook  # the X Activity API's dm.received deliveries

    app.register_blueprint(x_webhook)
    return app
