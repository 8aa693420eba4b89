"""The per-record work of the stream job, run inside Spark's Python workers (by the Kafka source's readers
themselves, or through ``mapInArrow`` behind Spark's native Kafka source):
parse + validate each Kafka record as a ``records.Tweet`` (``records.parse_record``: DMs as ``DirectMessage``),
enrich the valid ones in batches with the
job's ``Enricher`` (by default ``enrich.enrich_batch``: models load once per worker process, inside the
enrich module), and turn every record into exactly one output row: an enriched tweet, or a dead letter
with its reason. Nothing is dropped.

Output rows follow ``schema.TRANSFORM_SCHEMA``: each record once, as the JSON message the sink publishes
(the sink parses the enriched ones into Parquet columns with Arrow's JSON reader). Building the ~25 columns here as well
cost the Python workers, which are the stream's bottleneck, ~7% of their time (measured on 10,000 tweets).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import timezone
from typing import Protocol

from pydantic import ValidationError

from tweetdesk.models.enrich import enrich_batch
from tweetdesk.records import DeadLetter, EnrichedTweet, Tweet, error_reason, error_stage
from tweetdesk.records import parse_record as parse_tweet
from tweetdesk.stream.schema import KIND_DEAD, KIND_ENRICHED

log = logging.getLogger(__name__)



class Enricher(Protocol):
    """What the stream job enriches tweets with: one ``EnrichedTweet`` per tweet, in order. Spark ships it to
    its Python workers by pickling, so it must be a module-level function (pickled by reference) or a
    picklable object. An optional ``warm(settings)`` attribute loads what it needs; the job calls it in each
    Python worker before the first micro-batch (``stream.job.warm_up``)."""

    def __call__(self, tweets: list[Tweet], settings) -> list[EnrichedTweet]: ...


def parse_record(value: bytes | None, max_text_chars: int) -> Tweet | tuple[str, str]:
    """A valid Tweet (a ``DirectMessage`` when it says ``channel: dm``: a DM without its sender or conversation
    is refused), or (stage, reason) for a dead letter."""
    if value is None:
        return "parse", "empty Kafka record (no value)"
    try:
        tweet = parse_tweet(value)
    except ValidationError as e:
        return error_stage(e), error_reason(e)
    except Exception as e:  # noqa: BLE001 (whatever a record holds, it becomes a dead letter, never a failed job)
        return "parse", f"{type(e).__name__}: {e}"
    if len(tweet.text) > max_text_chars:
        return "validate", f"text: {len(tweet.text)} characters, longer than the limit of {max_text_chars}"
    return tweet


def _column(frame, name: str) -> list:
    col = frame[name]
    return col.to_pylist() if hasattr(col, "to_pylist") else list(col)


def _decode(b: bytes | None) -> str | None:
    return None if b is None else bytes(b).decode("utf-8", "replace")


class Transformer:
    """Picklable callable (the enriching source's readers, or ``mapInArrow``): Arrow batches of Kafka rows ->
    TRANSFORM_SCHEMA batches."""

    def __init__(self, settings, enricher: Enricher = enrich_batch, threads: int = 1):
        self.settings = settings
        self.enricher = enricher
        # Cores per Spark task (spark.task.cpus): Spark runs one task per core, so torch's own thread pool
        # (all cores by default) would only make the concurrent tasks compete for the same cores.
        self.threads = max(1, threads)
        stream = settings.stream
        self.batch_size = stream.inference_batch_size
        # The Tweet model itself caps text at records.MAX_TEXT_CHARS; settings may set a lower limit.
        self.max_text_chars = stream.max_text_chars

    def __call__(self, batches: Iterator) -> Iterator:
        import pyarrow as pa

        from tweetdesk.stream.schema import TRANSFORM_SCHEMA, arrow_schema

        _limit_threads(self.threads)
        enrich = self.enricher
        schema = arrow_schema(TRANSFORM_SCHEMA)
        for batch in batches:
            rows = self.transform(batch, enrich)
            freeze_loaded()  # a worker the warm-up missed: its models loaded during this batch
            yield pa.RecordBatch.from_pydict({c: [r[c] for r in rows] for c in schema.names}, schema=schema)

    def transform(self, frame, enrich: Enricher) -> list[dict]:
        """One TRANSFORM_SCHEMA row (a dict) per Kafka row of ``frame`` (an Arrow batch or a pandas frame)."""
        rows: list[dict] = []
        valid: list[tuple[Tweet, dict]] = []
        cols = [_column(frame, c) for c in ("key", "value", "topic", "partition", "offset")]
        for key, value, topic, part, offset in zip(*cols):
            meta = {"key": _decode(key), "source_topic": topic, "partition": int(part), "offset": int(offset)}
            try:
                parsed = parse_record(value, self.max_text_chars)
                if isinstance(parsed, Tweet):
                    valid.append((parsed, meta))
                else:
                    rows.append(_dead_row(DeadLetter.of(value, parsed[1], parsed[0], **meta)))
            except Exception as e:  # noqa: BLE001 (one record must never fail the micro-batch, and so the job)
                rows.append(_dead_row(DeadLetter.of(value, f"{type(e).__name__}: {e}", "parse", **meta)))
        for i in range(0, len(valid), self.batch_size):
            rows.extend(self._enrich(valid[i:i + self.batch_size], enrich))
        return rows

    def _enrich(self, chunk: list[tuple[Tweet, dict]], enrich: Enricher) -> list[dict]:
        tweets = [t for t, _ in chunk]
        try:
            t0 = time.perf_counter()
            done = enrich(tweets, self.settings)
            share = (time.perf_counter() - t0) / len(tweets)
            if len(done) != len(tweets):
                raise RuntimeError(f"the enricher returned {len(done)} results for {len(tweets)} tweets")
            return [_enriched_row(e, share) for e in done]
        except Exception as e:
            if len(chunk) == 1:
                t, meta = chunk[0]
                log.warning("enrichment failed for tweet %s: %r", t.id, str(e))
                raw = t.model_dump_json().encode()
                return [_dead_row(DeadLetter.from_error(raw, e, "enrich", context=type(e).__name__, **meta))]
        # One bad tweet must not sink its batch: retry one by one, dead-letter only the ones that fail.
        log.warning("enrichment failed on a batch of %d; retrying one by one", len(chunk))
        out: list[dict] = []
        for item in chunk:
            out.extend(self._enrich([item], enrich))
        return out


_frozen = False


def freeze_loaded() -> None:
    """Exempt what this Python worker holds now (the models, once loaded) from the garbage collector.

    Spark's daemon runs a full ``gc.collect()`` in a reused worker after every task; with the models loaded that
    walks ~250,000 objects, 0.12 s a task, 4 tasks a micro-batch on 2 cores (measured: the stream's workers
    burned about a core on it at 500 tweets/s). Frozen objects are skipped; whatever a batch creates after
    this is still collected as usual."""
    global _frozen
    if not _frozen:
        import gc

        gc.collect()
        gc.freeze()
        _frozen = True


def _limit_threads(n: int) -> None:
    try:
        import torch
    except ImportError:
        return
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def _enriched_row(e: EnrichedTweet, model_s: float) -> dict:
    return {"kind": KIND_ENRICHED, "out_key": e.partition_key, "payload": e.model_dump_json(),
            "day": e.created_at.astimezone(timezone.utc).strftime("%Y-%m-%d"), "model_s": model_s}


def _dead_row(d: DeadLetter) -> dict:
    return {"kind": KIND_DEAD, "out_key": d.key, "payload": d.model_dump_json(), "day": None, "model_s": None}
