"""The HTTP server of ``tweetdesk serve``: waitress, with the limits that keep one client from shutting others out
(issue 25).

* ``http_channel_timeout``: a connection with no request in progress and no traffic for this long is closed, so
  connections left half-open (slowloris) or idle do not pile up; the sweep runs often enough to honour it.
* ``http_connection_limit``: how many connections are held at once, far above what the half-open ones a client
  can keep within the timeout; poll() rather than select(), which fails past 1,024 file descriptors.
* ``http_max_request_body_size``: a larger ``Content-Length`` is answered 413 from the headers alone, before any
  of the body is read (a chunked body as soon as it passes the limit). The app's own limits are smaller still.
* ``http_inbuf_overflow``: a body beyond this is buffered in a temporary file, not in memory, while it arrives.

waitress's own refusals (413, 400, 431) are JSON like the API's errors (``{"error", "status", "kind"}``), not
its plain-text page.
"""

from __future__ import annotations

import json
from typing import Any

from waitress.channel import HTTPChannel
from waitress.task import ErrorTask

_KINDS = {400: "bad_request", 413: "too_large", 431: "headers_too_large", 501: "not_implemented"}


def waitress_options(web) -> dict[str, Any]:
    """The waitress adjustments from the web settings (``Settings.web`` or ``Settings``)."""
    timeout = float(web.http_channel_timeout)
    return {
        "channel_timeout": timeout,
        # waitress closes idle connections on a sweep every cleanup_interval (default 30 s): sweep at least twice
        # per timeout so that a connection lives at most 1.5 x the timeout.
        "cleanup_interval": max(1.0, min(30.0, timeout / 2)),
        "connection_limit": int(web.http_connection_limit),
        "asyncore_use_poll": True,
        "max_request_body_size": int(web.http_max_request_body_size),
        "inbuf_overflow": int(web.http_inbuf_overflow),
    }


class _JsonErrorTask(ErrorTask):
    def execute(self):
        e = self.request.error
        body = json.dumps({"error": f"{e.reason}: {e.body}", "status": e.code,
                           "kind": _KINDS.get(e.code, "bad_request")}).encode()
        self.status = f"{e.code} {e.reason}"
        self.response_headers.extend([("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff")])
        self.set_close_on_finish()  # what is left of a refused request is never read as the next one
        self.content_length = len(body)
        self.write(body)


class _Channel(HTTPChannel):
    error_task_class = _JsonErrorTask


def create_server(app, web, *, host: str, port: int, threads: int, ident: str = "tweetdesk"):
    """A waitress server for ``app`` on host:port with the limits of ``web`` (not yet running: ``.run()``)."""
    import waitress

    server = waitress.create_server(app, host=host, port=port, threads=threads, ident=ident, **waitress_options(web))
    server.channel_class = _Channel  # one address and port: a single server (not a MultiSocketServer)
    return server


__all__ = ["create_server", "waitress_options"]
