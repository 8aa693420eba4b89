"""``tweetdesk serve``: the reply service process.

``ReplyService`` runs the app (``app.create_app``) under waitress (``web.http_server``, a production WSGI server)
beside the Kafka consumer of ``tweets.enriched`` (``reply.consumer``), the dead-letter consumer
(``reply.dead_letters``) and the poster (``reply.poster``), each on its own thread, restarted if it fails. It is
what ``tweetdesk serve`` runs and what the demo (or a test) embeds::

    with ReplyService(settings, port=0) as svc:   # port 0 = any free port
        print(svc.url)                            # http://127.0.0.1:<chosen port>
        ...

``serve_command(settings)`` runs it in the foreground until Ctrl-C / SIGTERM, starting the embedded broker only
when ``settings.kafka_bootstrap`` is unset.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from tweetdesk.app import create_app
from tweetdesk.redact import redact_url
from tweetdesk.reply.consumer import DEFAULT_GROUP, ReplyConsumer
from tweetdesk.reply.dead_letters import DeadLetterConsumer
from tweetdesk.reply.poster import Poster
from tweetdesk.reply.templates import ReplyTemplates
from tweetdesk.tickets.store import TicketStore
from tweetdesk.web.http_server import HttpServer
from tweetdesk.web.security import check_startup

log = logging.getLogger(__name__)


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
        self.http: HttpServer | None = None

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
            # channel timeout, connection limit, body limits from the settings (web.http_server says why)
            self.http = HttpServer(self.app, self.settings.web, host=self.host, port=self.port,
                                   threads=self.http_threads)
            self.port = self.http.port  # the chosen one when port was 0
            self._spawn("tweetdesk-http", self.http.run)
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
        if self.http is not None:
            http, self.http = self.http, None
            http.stop(timeout)
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()
        webhook = self.app.extensions["tweetdesk"].x_webhook
        if webhook is not None:
            webhook.close()  # its producer: flushed and let go now, not when the garbage collector runs
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
