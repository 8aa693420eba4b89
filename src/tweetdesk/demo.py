"""``tweetdesk demo``: the whole flow on embedded defaults, in one process, with a summary at the end.

broker (tansu) -> reply service (dry-run, dashboard) -> Spark stream job -> replay of the shipped sample (plus a
few malformed lines, to show dead letters) -> wait until every tweet is in Parquet and ticketed -> summary.

Each run resets what the demo made in ``<work_dir>/demo`` (its Parquet, checkpoints, log, and the tweets, tickets,
replies and dead letters in its SQLite store): the embedded broker keeps nothing across runs, so an old checkpoint
would point past the end of the new, empty topics. The desk accounts and the secret key stay, so the agents made
after one run can sign in after the next, and the sample's ticket IDs stay the same.
"""

from __future__ import annotations

import logging
import shutil
import signal
import socket
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tweetdesk.config import SAMPLE_OUR_HANDLES, SAMPLE_TWEETS, Settings
from tweetdesk.errors import TweetdeskError

if TYPE_CHECKING:  # pandas loads only when the summary is computed
    import pandas as pd

log = logging.getLogger(__name__)

WAIT_TIMEOUT_S = 150.0
# Unless TWEETDESK_MAX_OFFSETS_PER_TRIGGER says otherwise. Above what arrives between two micro-batches, so a
# micro-batch takes everything waiting and a busy machine's slower batches do not build a queue.
DEMO_MAX_OFFSETS_PER_TRIGGER = 500
# The sample is replayed at a steady rate (404 tweets in about 8 s), as tweets arrive: sent all at once, the
# latency figures measured how long the last tweet queued behind the others, not the pipeline.
DEMO_RATE = 50.0
# Broken records published straight to tweets.raw, to show the stream job dead-lettering with a reason.
STREAM_GARBAGE = (b'{"id": "1897000000000000999", "text": "truncated', b"\xff\xfe not even UTF-8")
# What a rerun deletes from the demo's SQLite store (children before parents); accounts, API tokens, sign-ins,
# canned replies and the audit log stay.
DEMO_TABLES = ("desk_reply_authors", "desk_corrections", "desk_notes", "desk_ticket_views", "desk_assignments",
               "replies", "tickets", "tweets", "opt_outs", "x_usage", "dead_letters")


@dataclass
class DemoResult:
    replayed: int = 0
    dead_at_ingest: int = 0
    parquet_rows: int = 0
    dead_in_stream: int = 0
    tickets: int = 0
    answered: int = 0  # tickets with an automatic reply (their customer summoned us)
    listening_only: int = 0  # tickets nobody summoned us for: X forbids an automatic reply
    unanswered: int = 0  # tickets of customers who summoned us but get no reply (they opted out)
    opted_out: int = 0  # customers who wrote "STOP"
    replies: dict[str, int] = field(default_factory=dict)
    by_sentiment: dict[str, int] = field(default_factory=dict)
    by_topic: dict[str, int] = field(default_factory=dict)
    rate: float = 0.0
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    reply_latency_p50_s: float | None = None  # tweet ingested -> its reply in the dry-run outbox
    reply_latency_p95_s: float | None = None
    seconds: float = 0.0
    dashboard: str = ""
    work_dir: Path | None = None
    parquet_dir: Path | None = None
    log_dir: Path | None = None
    example: dict | None = None


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def reset_demo_dir(work: Path) -> None:
    """Delete what a demo run made in ``work``, keeping its desk accounts and its secret key."""
    for sub in ("parquet", "checkpoints", "logs"):
        shutil.rmtree(work / sub, ignore_errors=True)
    db = work / "tickets.db"
    if not db.exists():
        return
    with sqlite3.connect(db) as conn:
        present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table in DEMO_TABLES:
            if table in present:
                conn.execute(f"DELETE FROM {table}")  # noqa: S608 (names from DEMO_TABLES only)
        if "desk_audit" in present:  # its rows about tickets name ones that are gone; the accounts' events stay
            conn.execute("DELETE FROM desk_audit WHERE ticket_id IS NOT NULL")


def _setup_logging(log_dir: Path, verbose: bool = False) -> None:
    # The terminal shows the progress and the summary; everything else goes to the log file (and, with --verbose,
    # warnings to the terminal too).
    log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_dir / "demo.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    if verbose:
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(logging.WARNING)
        console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.handlers.append(console)
    root.setLevel(logging.INFO)
    for noisy in ("py4j", "werkzeug", "waitress"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _wait(what: str, done, total: int, timeout: float, failed=lambda: None) -> None:
    """Poll ``done()`` (a count) until it reaches ``total``, with a progress bar on a terminal (one line when it
    is done otherwise: a log or CI would keep every frame); raise on timeout or failure."""
    from tqdm import tqdm

    started = time.monotonic()
    deadline = started + timeout
    # disable=None: tqdm draws only when stderr is a terminal.
    with tqdm(total=total, desc=what, unit=" tweets", dynamic_ncols=True, leave=True, disable=None) as bar:
        while True:
            n = done()
            bar.update(max(0, min(n, total) - bar.n))
            if n >= total:
                if bar.disable:
                    click.echo(f"{what}: {total} in {time.monotonic() - started:.1f} s", err=True)
                return
            err = failed()
            if err:
                raise TweetdeskError(f"{what}: {err}")
            if time.monotonic() > deadline:
                raise TweetdeskError(f"{what}: only {n} of {total} after {timeout:.0f} s; see the logs")
            time.sleep(0.25)


def reply_latency(df, outbox) -> "pd.Series":
    """Seconds from a tweet's ingest (``ingested_at`` in ``df``, read from Parquet) to its reply being recorded in the
    outbox (``posted_at`` of the replies in ``outbox`` that answer it), one value per answered tweet."""
    import pandas as pd

    ingested = pd.to_datetime(df.drop_duplicates("id").set_index("id")["ingested_at"], utc=True)
    done = pd.Series({r.tweet_id: r.posted_at for r in outbox if r.posted_at is not None}, dtype="object")
    done = pd.to_datetime(done, utc=True)
    both = done.index.intersection(ingested.index)
    return (done[both] - ingested[both]).dt.total_seconds()


def run_demo(settings: Settings, *, limit: int | None = None, keep_running: bool = False,
             stop: threading.Event | None = None, rate: float = DEMO_RATE, verbose: bool = False) -> DemoResult:
    from tweetdesk.ingest import SAMPLE_BAD, Publisher
    from tweetdesk.ingest.replay import replay
    from tweetdesk.kafka.broker import kafka_settings
    from tweetdesk.serve import ReplyService
    from tweetdesk.stream.job import StreamJob
    from tweetdesk.stream.sink import parquet_latency, read_enriched
    from tweetdesk.stream.spark import build_spark

    stop = stop or threading.Event()
    started = time.monotonic()
    work = Path(settings.work_dir) / "demo"
    reset_demo_dir(work)
    s = settings.model_copy(update={"work_dir": work})
    if "our_handles" not in settings.model_fields_set:
        # The sample's desk answers for the airlines its customers write to (X's rule: only those who
        # mention, quote or reply to one of them get an automatic reply).
        s = s.model_copy(update={"our_handles": list(SAMPLE_OUR_HANDLES)})
    if "max_offsets_per_trigger" not in settings.model_fields_set:
        # Micro-batches of what arrived since the last one: the dashboard fills while the demo runs.
        s = s.model_copy(update={"max_offsets_per_trigger": DEMO_MAX_OFFSETS_PER_TRIGGER})
    _setup_logging(s.log_dir, verbose)
    res = DemoResult(work_dir=work, parquet_dir=s.stream.parquet_dir.resolve(), log_dir=s.log_dir.resolve(), rate=rate)

    click.echo("tweetdesk demo: starting the embedded broker, the reply service (dry-run) and Spark (local[2]) …")
    with kafka_settings(s) as bound:
        port = bound.port if _port_free(bound.host, bound.port) else 0
        # Always dry-run, even with X credentials in the environment: the sample's tweets are not ours to answer.
        service = ReplyService(bound, port=port, poster_kwargs={"live": False}).start()
        spark = handle = None
        try:
            res.dashboard = service.url + "/"
            click.echo(f"dashboard: {res.dashboard}")
            spark = build_spark(bound, app_name="tweetdesk-demo", quiet=not verbose,
                                jvm_log=s.log_dir / "spark-jvm.log")
            handle = StreamJob(bound).start(spark)

            def query_error():
                return None if handle.active else "the stream query stopped; see " + str(s.log_dir / "demo.log")

            # Malformed lines: the replay source dead-letters them itself (stage "ingest") …
            bad = replay(bound.kafka, SAMPLE_BAD, stop=stop, progress=False)
            # … and records that reach tweets.raw broken (another producer's bug) are the stream job's to catch.
            # Sent first, they take the query's cold first micro-batch, which would otherwise add seconds to the
            # latency of the first sample tweets.
            raw_pub = Publisher(bound.kafka, progress=False)
            for value in STREAM_GARBAGE:
                raw_pub.publish_raw(value)
            raw_pub.close()
            expected_dead_in_stream = len(STREAM_GARBAGE)
            _wait("dead letters", lambda: handle.totals.dead, expected_dead_in_stream, 60, query_error)
            good = replay(bound.kafka, SAMPLE_TWEETS, limit=limit, stop=stop, rate=rate)
            res.replayed = good.published
            res.dead_at_ingest = good.dead + bad.dead
            if stop.is_set():
                return res

            _wait("stream → Parquet", lambda: handle.totals.enriched, res.replayed, WAIT_TIMEOUT_S, query_error)
            consumer = service.consumer
            _wait("tickets + replies", lambda: consumer.stats["records"], handle.totals.enriched, 60)
            deadline = time.monotonic() + 30  # the poster moves queued replies to the outbox on its own beat
            while sum(service.store.queue_stats()[k] for k in ("queued", "posting")) and time.monotonic() < deadline:
                time.sleep(0.1)

            df = read_enriched(bound.stream.parquet_dir)
            res.parquet_rows = len(df)
            res.dead_in_stream = handle.totals.dead
            res.by_sentiment = df["sentiment"].value_counts().to_dict()
            res.by_topic = df["topic"].value_counts().to_dict()
            # From the producer's ingested_at stamp to the moment the tweet's Parquet file was in place.
            lat = parquet_latency(df, handle.totals).dropna()
            if len(lat):
                res.latency_p50_s = float(lat.quantile(0.5))
                res.latency_p95_s = float(lat.quantile(0.95))
            lat = reply_latency(df, service.store.list_replies("dry_run", limit=1_000_000)).dropna()
            if len(lat):
                res.reply_latency_p50_s = float(lat.quantile(0.5))
                res.reply_latency_p95_s = float(lat.quantile(0.95))
            st = service.store.stats()
            res.tickets = st["tickets"]
            res.replies = st["replies_by_status"]
            res.listening_only = service.store.list_tickets(listening_only=True, limit=1).total
            res.answered = len({r.ticket_id for r in service.store.list_replies(limit=10**6)
                                if r.status.value not in ("cancelled", "failed")})
            res.opted_out = len(service.store.list_opt_outs())
            # Every ticket falls in one group: answered, listening only, or summoned us but its customer opted out.
            res.unanswered = res.tickets - res.answered - res.listening_only
            outbox = service.store.list_replies(limit=1)
            if outbox:
                r = outbox[0]
                t = service.store.get_ticket(r.ticket_id)
                res.example = {"ticket_id": r.ticket_id, "tweet_id": r.tweet_id, "text": r.text,
                               "sentiment": t.sentiment if t else None,
                               "sentiment_score": t.sentiment_score if t else None,
                               "topic": t.topic if t else None, "topic_score": t.topic_score if t else None}
            res.seconds = time.monotonic() - started
            print_summary(res)
            print_next_steps(res, keep_running)
            if keep_running and not stop.is_set():
                click.echo(f"\nservices keep running; dashboard at {res.dashboard} — Ctrl-C stops everything.")
                stop.wait()
            return res
        finally:
            click.echo("stopping …", err=True)
            if spark is not None:
                # Stopping the query cancels its job group; Spark warns when no job of it is running (the
                # usual case between micro-batches), which reads like a failure at the end of a good run.
                spark.sparkContext.setLogLevel("ERROR")
            if handle is not None:
                handle.stop()
            service.stop()
            if spark is not None:
                spark.stop()


def _fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _fmt_latency(p50: float | None, p95: float | None) -> str:
    return f"p50 {p50:.2f} s, p95 {p95:.2f} s" if p50 is not None else "n/a"


def _cli() -> str:
    """How to run ``tweetdesk`` from here: the console script beside this interpreter (the venv's), relative to
    the current folder when it is inside it."""
    exe = Path(sys.executable).parent / "tweetdesk"
    if not exe.exists():
        return "tweetdesk"
    try:
        return str(exe.relative_to(Path.cwd()))
    except ValueError:
        return str(exe)


def _here(path: Path | None) -> str:
    if path is None:
        return "."
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def print_summary(r: DemoResult) -> None:
    lat = _fmt_latency(r.latency_p50_s, r.latency_p95_s)
    reply_lat = _fmt_latency(r.reply_latency_p50_s, r.reply_latency_p95_s)
    tickets = f"{r.tickets}: {r.answered} answered, {r.listening_only} listening only (no mention of our accounts: " \
              "X allows no automatic reply)"
    if r.unanswered:
        tickets += f", {r.unanswered} not answered ({r.opted_out} customer(s) opted out with STOP)"
    lines = [
        "",
        "── tweetdesk demo summary " + "─" * 50,
        f"tweets replayed        {r.replayed}" + (f" at {r.rate:.0f} tweets/s" if r.rate else " at once"),
        f"rows in Parquet        {r.parquet_rows}",
        f"dead letters           {r.dead_at_ingest + r.dead_in_stream}: the sample's deliberately bad records "
        f"({r.dead_at_ingest} at ingest, {r.dead_in_stream} in the stream job; topic tweets.dead)",
        f"by sentiment           {_fmt_counts(r.by_sentiment)}",
        f"by topic               {_fmt_counts(r.by_topic)}",
        f"tickets                {tickets}; a customer's follow-up tweets join their ticket",
        f"replies                {_fmt_counts(r.replies) or 'none'} (dry-run outbox: the demo never posts)",
        f"latency ingest→Parquet {lat}",
        f"latency tweet→reply    {reply_lat} (dry-run outbox)",
        f"Parquet, logs          {_here(r.parquet_dir)}, {_here(r.log_dir)}",
        f"took                   {r.seconds:.1f} s",
    ]
    if r.example:
        e = r.example
        lines.append(f"example reply          [{e['ticket_id']}] {e['text']}")
        if e.get("sentiment_score") is not None:
            lines.append(f"  read by the model as  {e['sentiment']} ({e['sentiment_score']:.2f}), "
                         f"{e['topic']} ({e['topic_score']:.2f})")
    click.echo("\n".join(lines))


def print_next_steps(r: DemoResult, keep_running: bool) -> None:
    cli, work = _cli(), _here(r.work_dir)
    lines = [
        "",
        "── next " + "─" * 68,
        f"the CLI                {cli} …  (or `source .venv/bin/activate` once, then `tweetdesk …`)",
        f"an agent account       {cli} --work-dir {work} users add NAME --role agent  (prints a one-time password)",
        f"look around            {cli} --work-dir {work} serve, then sign in at "
        f"{r.dashboard}login" + (" (or here, while this runs)" if keep_running else ""),
        "a rerun                resets the demo's tweets, tickets, replies and Parquet; keeps its accounts and "
        "secret key (same ticket IDs)",
    ]
    click.echo("\n".join(lines))


def demo_command(settings: Settings, limit: int | None = None, keep_running: bool = False,
                 verbose: bool = False) -> None:
    stop = threading.Event()

    def on_signal(signum, _frame):
        click.echo("\ninterrupted: stopping cleanly …", err=True)
        stop.set()

    previous = signal.signal(signal.SIGINT, on_signal)
    try:
        run_demo(settings, limit=limit, keep_running=keep_running, stop=stop, verbose=verbose)
    finally:
        signal.signal(signal.SIGINT, previous)
