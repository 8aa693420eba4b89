"""The service's app and the process that runs it.

``create_app`` builds the one Flask app of ``tweetdesk serve``: the JSON API (``web.api``) and the pages
(``web.views``) as blueprints, registered here explicitly, with the security headers and the agent sign-in
(``web.security``, ``web.auth``). ``app.extensions["tweetdesk"]`` is its ``web.context.AppContext``.

``ReplyService`` is the ``serve`` process: the app under waitress (a production WSGI server), the Kafka
consumer of ``tweets.enriched`` (``reply.consumer``), the dead-letter consumer (``reply.dead_letters``) and
the poster (``reply.poster``), each on its own thread. It is what ``tweetdesk serve`` runs and what the
demo (or a test) embeds::

    with ReplyService(settings, port=0) as svc:   # port 0 = any free port
        print(svc.url)                            # http://127.0.0.1:<chosen port>
        ...

``serve_command(settings)`` runs it in the foreground until Ctrl-C / SIGTERM, starting the embedded
broker only when ``settings.kafka_bootstrap`` is unset.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any, Callable

from flask import Flask

from tweetdesk.redact import redact_url
from tweetdesk.reply.budget import ReplyBudget
from tweetdesk.reply.consumer import DEFAULT_GROUP, ReplyConsumer
from tweetdesk.reply.dead_letters import DeadLetterConsumer
from tweetdesk.reply.poster import Poster
from tweetdesk.reply.templates import ReplyTemplates
from tweetdesk.tickets.store import TicketStore
from tweetdesk.web import api, auth, desk_api, desk_views, security, views
from tweetdesk.web.context import AppContext
from tweetdesk.web.security import check_startup
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
    budget = poster.budget if poster is not None else ReplyBudget(settings, store, live=settings.x_user_credentials)
    app = Flask("tweetdesk")
    # A ticket ID typed as "/0" arrives as /api/tickets//0: answer it as an unknown ticket (404 JSON), not with a
    # 308 redirect to a merged path that names a different resource.
    app.url_map.merge_slashes = False
    app.config.update(MAX_CONTENT_LENGTH=api.MAX_BODY_BYTES, JSON_SORT_KEYS=False)
    app.json.sort_keys = False
    app.extensions["tweetdesk"] = AppContext(settings, store, budget, templates, poster, dict(health or {}))
    app.extensions["tweetdesk_throttle"] = KeyThrottle.from_settings(settings)  # wrong keys, API and pages alike
    # Exports built at once (web.desk_api.export_response): each streams in bounded memory, but holds a thread
    app.extensions["tweetdesk_exports"] = threading.BoundedSemaphore(settings.desk_export_concurrency)
    security.init_app(app, settings)  # headers on every answer, the API's too
    auth.init_app(app, settings)
    api.register_errors(app, page_for_unrouted=views.page_for_unrouted)
    app.register_blueprint(api.api)
    app.register_blueprint(views.blueprint)
    app.register_blueprint(desk_views.desk_pages)  # the agents' desk: inbox, canned replies, users, report
    app.register_blueprint(desk_api.desk_api)
    from tweetdesk.web.compliance_api import compliance_api  # X's data rules: erasure on request

    app.register_blueprint(compliance_api)
    return app


class ReplyService:
    def __init__(
        self,
        settings,
        *,
        store: TicketStore | None = None,
        templates: ReplyTemplates | None = None,
        poster: Poster | None = None,
        consume: bool = True,
        serve_http: bool = True,
        host: str | None = None,
        port: int | None = None,
        group_id: str = DEFAULT_GROUP,
        # More threads than busy clients: dashboards beyond two at a time wait inside the app (web.views), and
        # the threads left serve the tracking page and the API at once instead of queueing behind them.
        http_threads: int = 32,
        poster_kwargs: dict[str, Any] | None = None,
    ):
        if host and host != settings.host:
            settings = settings.model_copy(update={"host": host})  # the address checked at start is the real one
        self.settings = settings
        # Fail fast (one readable line from the CLI) on bad templates or an unreachable store.
        self.templates = templates or ReplyTemplates.from_settings(settings)
        self._own_store = store is None
        self.store = store or TicketStore.from_settings(settings)
        self.poster = poster or Poster(settings, self.store, **(poster_kwargs or {}))
        self.consumer = (
            ReplyConsumer(settings, self.store, self.poster, self.templates, group_id=group_id) if consume else None
        )
        # Dead letters of every stage (topic_dead) into the store, for the dashboard's count.
        self.dead_letters = DeadLetterConsumer(settings, self.store, group_id=f"{group_id}-dead") if consume else None
        self.host = host or settings.host
        self.port = settings.port if port is None else port
        self.serve_http = serve_http
        self.http_threads = http_threads
        self.app = create_app(
            settings,
            self.store,
            poster=self.poster,
            templates=self.templates,
            health={"consumer": self._consumer_health, "dead_letters": lambda: dict(self.dead_letters.stats)}
            if self.consumer
            else {},
        )
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.restarts: dict[str, int] = {}  # worker thread name -> times it failed and was restarted
        self._server = None

    def _consumer_health(self) -> dict[str, Any]:
        c = self.consumer
        return {"group": c.group_id, "topic": self.settings.topic_enriched, "ready": c.ready.is_set(), **c.stats}

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "ReplyService":
        # Settle replies a previous process left mid-post *before* any thread can claim one.
        self.poster.recover()
        self._spawn("tweetdesk-poster", lambda stop: self.poster.run(stop, recover=False), self.stopping)
        if self.consumer is not None:
            self._spawn("tweetdesk-consumer", self.consumer.run, self.stopping)
        if self.dead_letters is not None:
            self._spawn("tweetdesk-dead-letters", self.dead_letters.run, self.stopping)
        if self.serve_http:
            from tweetdesk.web.http_server import create_server

            # channel timeout, connection limit, body limits from the settings (web.http_server says why)
            self._server = create_server(self.app, self.settings.web, host=self.host, port=self.port,
                                         threads=self.http_threads)
            self.port = int(self._server.effective_port)  # the chosen one when port was 0
            self._spawn("tweetdesk-http", self._server.run)
        log.info("reply service up: %s, poster %s", self.url if self.serve_http else "no HTTP", self.poster.mode)
        return self

    def _spawn(self, name: str, target, *args) -> None:
        t = threading.Thread(target=self._guard, args=(name, target, *args), name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _guard(self, name, target, *args) -> None:
        # A worker that raises is restarted (after a pause that grows to a minute), never allowed to stop the
        # process: a consumer resumes from its committed offsets, the poster from the store.
        failures = 0
        while not self.stopping.is_set():
            try:
                target(*args)
                return
            except Exception:  # noqa: BLE001
                failures += 1
                self.restarts[name] = self.restarts.get(name, 0) + 1
                pause = min(60.0, 2.0 ** min(failures, 6))
                log.exception("%s thread failed (%d times); restarting it in %.0f s", name, failures, pause)
                if self.stopping.wait(pause):
                    return

    def wait(self, timeout: float | None = None) -> bool:
        """Block until ``stop()`` is called; True if stopping."""
        return self.stopping.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        self.poster.wake()
        if self._server is not None:
            server, self._server = self._server, None

            def close_all():
                # Runs inside waitress's loop thread: closing every channel ends its loop.
                for d in list(server._map.values()):
                    try:
                        d.close()
                    except OSError:
                        pass

            try:
                server.trigger.pull_trigger(close_all)
            except OSError:
                pass
            server.task_dispatcher.shutdown(timeout=timeout)
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()
        if self._own_store:
            self.store.close()

    def __enter__(self) -> "ReplyService":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_command(settings) -> None:
    """``tweetdesk serve``: the reply service in the foreground until Ctrl-C or SIGTERM."""
    from tweetdesk.kafka.broker import kafka_settings

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Settings, templates and store first: a mistake there should fail in a second, before any broker starts.
    from tweetdesk.secret_key import secret_key

    check_startup(settings)
    secret_key(settings)
    templates = ReplyTemplates.from_settings(settings)
    store = TicketStore.from_settings(settings)
    with kafka_settings(settings) as bound:
        svc = ReplyService(bound, store=store, templates=templates).start()
        print(
            f"tweetdesk reply service on {svc.url} (replies: {svc.poster.mode}; Kafka {bound.kafka_bootstrap}; "
            f"store {redact_url(svc.store.url)})",
            flush=True,
        )
        previous = signal.signal(signal.SIGTERM, lambda *_: svc.stopping.set())
        try:
            while not svc.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            svc.stop()
            store.close()
