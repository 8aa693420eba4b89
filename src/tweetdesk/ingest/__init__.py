"""Tweet sources: they publish ``records.Tweet`` JSON, keyed by tweet id, to ``settings.kafka.topic_raw``, and
malformed input as ``records.DeadLetter`` (stage "ingest") to ``settings.kafka.topic_dead``.

* ``replay.replay(settings.kafka, path, rate=, limit=, loop=)`` — a CSV in the airline data set's format or a JSONL of
  tweets (default: the shipped sample, ``config.SAMPLE_TWEETS``; ``data/sample_bad.jsonl`` holds malformed lines
  for showing dead letters).
* ``xstream.run_x_stream(settings, limit=)`` — the X API v2 filtered stream (tweepy ``StreamingClient``): listening.
* ``mentions.run_mentions(settings, pub, interval=, once=)`` — our account's mentions timeline (user context): the
  customers who asked us, the live source for replying.
* ``dms.run_dms(settings, pub, interval=, once=)`` — our account's direct messages (``GET /2/dm_events``, user
  context): the customers who DMed us, as ``DirectMessage`` records keyed by conversation.
* ``xpoll`` — what the two polled X sources share: rate limits, the saved position, the loop.
* ``xpayload`` — X's tweet objects -> ``Tweet``, for both X sources.
* ``common`` — what the sources share (``brand_of``, ``check_file``, the bearer-token hint).
* ``publisher.Publisher`` — the producer both use (idempotent, acks=all, delivery reports counted).
"""

from __future__ import annotations

from pathlib import Path

import click

from tweetdesk.config import SAMPLE_TWEETS, Settings
from tweetdesk.errors import ConfigError, InputError
from tweetdesk.ingest.common import check_file
from tweetdesk.ingest.publisher import IngestStats, Publisher, PublishError

SAMPLE_BAD = SAMPLE_TWEETS.parent / "sample_bad.jsonl"

__all__ = ["IngestStats", "Publisher", "PublishError", "SAMPLE_BAD", "ingest_command"]


def _ready(settings: Settings, timeout: float = 10.0) -> Settings:
    """Check the cluster answers and our two topics exist (created if not): a one-line error otherwise."""
    from confluent_kafka import KafkaException

    from tweetdesk.kafka.client import ensure_topics

    kafka = settings.kafka
    try:
        ensure_topics(kafka, [kafka.topic_raw, kafka.topic_dead], timeout=timeout)
    except KafkaException as e:
        raise ConfigError(f"cannot reach Kafka at {kafka.bootstrap}: {e.args[0].str()}") from None
    return settings


def ingest_command(
    settings: Settings,
    source: str = "replay",
    path: Path | None = None,
    rate: float = 0.0,
    limit: int | None = None,
    loop: bool = False,
    interval: float | None = None,
    once: bool = False,
    backfill_hours: float | None = None,
) -> IngestStats:
    """``tweetdesk ingest [replay|x|mentions|dms]``: publish to the Kafka cluster in TWEETDESK_KAFKA_BOOTSTRAP, print
    counts.

    An embedded broker started here would vanish with this process (and the tweets with it), so ingest insists
    on a running one: ``tweetdesk broker`` in another shell, or ``tweetdesk demo``, which runs everything.
    """
    polled = source in ("mentions", "dms")
    if not polled and (interval is not None or once or backfill_hours is not None):
        raise InputError("--interval, --once and --backfill-hours apply to `ingest mentions` and `ingest dms` only")
    if source != "replay" and (path is not None or loop or rate):
        raise InputError("--path, --rate and --loop apply to `ingest replay` only")
    if source == "replay":
        check_file(path or SAMPLE_TWEETS)  # a missing file is reported before Kafka is touched
    elif polled:
        if not settings.x.user_credentials:
            from tweetdesk.x.auth import XAuthError, user_context_hint

            what = "mentions" if source == "mentions" else "DM events"
            raise XAuthError(f"no X user credentials to read our {what}: {user_context_hint()}")
    elif source == "x":
        token = settings.x.bearer_token
        if token is None or not token.get_secret_value().strip():
            from tweetdesk.ingest.xstream import XStreamError
            from tweetdesk.x.auth import bearer_token_hint

            raise XStreamError(f"no X bearer token: {bearer_token_hint()}")
    else:
        raise InputError(f"unknown ingest source {source!r} (replay | x | mentions | dms)")
    if not settings.kafka.bootstrap:
        raise ConfigError(
            "no Kafka to publish to: run `tweetdesk broker` in another shell and export the "
            "TWEETDESK_KAFKA_BOOTSTRAP it prints (or run `tweetdesk demo`, which starts everything)"
        )

    bound = _ready(settings)
    desc = {"replay": f"replay {(path or SAMPLE_TWEETS).name}", "x": "X stream", "mentions": "X mentions",
            "dms": "X DMs"}[source]
    pub = Publisher(bound.kafka, total=limit, desc=desc)
    try:
        if source == "replay":
            from tweetdesk.ingest.replay import replay

            replay(bound.kafka, path, rate=rate, limit=limit, loop=loop, publisher=pub)
        elif source == "mentions":
            from tweetdesk.ingest.mentions import run_mentions

            run_mentions(bound, pub, interval=30.0 if interval is None else interval, once=once, limit=limit,
                         backfill_hours=24.0 if backfill_hours is None else backfill_hours)
        elif source == "dms":
            from tweetdesk.ingest.dms import POLL_SECONDS, run_dms

            run_dms(bound, pub, interval=POLL_SECONDS if interval is None else interval, once=once, limit=limit,
                    backfill_hours=24.0 if backfill_hours is None else backfill_hours)
        else:
            from tweetdesk.ingest.xstream import run_x_stream

            run_x_stream(bound, limit=limit, publisher=pub)
    finally:
        stats = pub.close()
        click.echo(f"{source}: {stats.summary()} -> {bound.kafka.topic_raw} / {bound.kafka.topic_dead}", err=True)
    pub.raise_for_failures()
    return stats
