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


class HttpServer:
    """waitress serving ``app`` on host:port with the limits of ``web``: ``run()`` serves until ``stop()``.

    The server's socket map is ours (waitress's ``map`` argument): ``stop`` closes every connection from inside
    waitress's loop, which ends ``run``, then waits for the requests in flight."""

    def __init__(self, app, web, *, host: str, port: int, threads: int, ident: str = "tweetdesk"):
        import waitress

        self.sockets: dict[int, Any] = {}
        self.server = waitress.create_server(app, map=self.sockets, host=host, port=port, threads=threads,
                                             ident=ident, **waitress_options(web))
        self.server.channel_class = _Channel  # one address and port: a single server (not a MultiSocketServer)

    @property
    def port(self) -> int:
        return int(self.server.effective_port)

    @property
    def adjustments(self):
        """waitress's settings in force (timeouts, limits)."""
        return self.server.adj

    def run(self) -> None:
        self.server.run()

    def stop(self, timeout: float = 10.0) -> None:
        def close_all():
            for d in list(self.sockets.values()):
                try:
                    d.close()
                except OSError:
                    pass

        try:
            self.server.trigger.pull_trigger(close_all)
        except OSError:
            pass
        self.server.task_dispatcher.shutdown(timeout=timeout)


__all__ = ["HttpServer", "waitress_options"]
