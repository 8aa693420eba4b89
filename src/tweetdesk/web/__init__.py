"""Web pages on the reply service's Flask app: dashboard, public ticket tracking, agent view.

Register with ``app.register_blueprint(tweetdesk.web.blueprint)``; the app keeps its ``Settings`` in
``app.config["TWEETDESK_SETTINGS"]`` and its ``TicketStore`` in ``app.config["TWEETDESK_STORE"]``.
"""

from tweetdesk.web.views import blueprint

__all__ = ["blueprint"]
