"""Web pages on the reply service's Flask app: dashboard, public ticket tracking, agent view.

``reply.app.create_app`` calls ``init_app(app)``; the app keeps its ``Settings`` and ``TicketStore`` in
``app.extensions["tweetdesk"]`` (``reply.app.AppContext``).
"""

from __future__ import annotations

from flask import Flask

from tweetdesk.web import auth, security
from tweetdesk.web.views import blueprint


def init_app(app: Flask) -> None:
    """Register the pages, the session/CSRF settings they need and the security headers (on the API too)."""
    settings = app.extensions["tweetdesk"].settings
    security.init_app(app, settings)
    auth.init_app(app, settings)
    app.register_blueprint(blueprint)


__all__ = ["blueprint", "init_app"]
