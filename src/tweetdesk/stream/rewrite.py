"""Parquet rewritten for X's data rules: a Spark batch job blanks removed posts in the partitions that hold them
and swaps each rewritten partition in atomically.

Which partitions: the sink writes ``<parquet>/day=D/batch_id=N/``; one pass over the ``id`` column (joined to
the removed IDs, broadcast) names the ``(day, batch_id)`` folders that hold a removed post. Only those are
rewritten.

How a row is removed: it stays (counts per day, topic and sentiment still add up) with every content and
personal column set to null — text, clean text, author, author ID, entities, mentions, who it replied to, the
rule — keeping ``KEPT`` (IDs, times, topic, sentiment, scores, model version).

The swap, and why a reader sees the old or the new partition, never both and never neither:
1. the IDs to remove are written first to ``<parquet>/_rewrite/pending-<digest>.json`` (``_`` names: every
   Parquet reader skips them), so a killed run leaves its intent behind;
2. Spark writes the new partition beside the old one, under a hidden name ``day=D/.batch_id=N.rewrite``
   (``.`` names are skipped too), finishing with ``_SUCCESS``;
3. ``renameat2(RENAME_EXCHANGE)`` swaps the two folders in one atomic step of the file system (Linux ≥ 3.15):
   the visible name holds the old files until the instant it holds the new ones;
4. the hidden folder (now the old files) is deleted, then the pending file.
A run killed anywhere resumes on the next run (``resume``, also called by ``rewrite``): hidden leftovers are
deleted (they are never read) and each pending file's IDs are removed again — a partition already swapped holds
none of them any more and is not touched again. Object stores (S3) have no rename: there the rewrite must go
through a table format (Delta/Iceberg); this module refuses a non-local path rather than half-do it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path

from tweetdesk.stream.schema import BATCH_COLUMN, DAY_COLUMN

log = logging.getLogger(__name__)

KEPT = ("id", "created_at", "lang", "brand", "conversation_id", "source", "ingested_at", "sentiment",
        "sentiment_score", "topic", "topic_score", "ticket_id", "model_version", "processed_at",
        DAY_COLUMN, BATCH_COLUMN)
PENDING_DIR = "_rewrite"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


class RewriteError(RuntimeError):
    pass


@dataclass
class RewriteResult:
    partitions: list[str] = field(default_factory=list)
    rows_blanked: int = 0


def exchange(a: Path, b: Path) -> None:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        raise RewriteError("this C library has no renameat2: an atomic partition swap needs Linux (glibc >= 2.28)")
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise RewriteError(f"cannot swap {a} and {b}: {os.strerror(err)}")


def _local(root: str | Path) -> Path:
    s = str(root)
    if "://" in s and not s.startswith("file://"):
        raise RewriteError(f"{s}: rewriting Parquet in place needs a local or mounted file system, not an object "
                           "store (no atomic rename there)")
    return Path(s.removeprefix("file://"))


def _hidden(partition: Path) -> Path:
    return partition.parent / f".{partition.name}.rewrite"


def rewrite(spark, root: str | Path, removed_ids: Iterable[str],
            on_step: Callable[[str, Path], None] | None = None) -> RewriteResult:
    """Blank ``removed_ids`` in the Parquet under ``root``; finishes any earlier interrupted rewrite first."""
    root = _local(root)
    ids = sorted({str(i) for i in removed_ids})
    result = resume(spark, root, on_step)
    if not ids or not root.exists():
        return result
    pending = root / PENDING_DIR / f"pending-{hashlib.sha256(' '.join(ids).encode()).hexdigest()[:16]}.json"
    pending.parent.mkdir(parents=True, exist_ok=True)
    tmp = pending.with_suffix(".tmp")
    tmp.write_text(json.dumps(ids))
    os.replace(tmp, pending)  # the intent, whole or not at all
    r = _apply(spark, root, ids, on_step)
    pending.unlink(missing_ok=True)
    result.partitions += r.partitions
    result.rows_blanked += r.rows_blanked
    return result


def resume(spark, root: str | Path, on_step=None) -> RewriteResult:
    """Finish what a killed run left: drop hidden leftovers, apply pending ID lists again."""
    root = _local(root)
    out = RewriteResult()
    if not root.exists():
        return out
    for day in root.glob(f"{DAY_COLUMN}=*"):
        for left in day.glob(f".{BATCH_COLUMN}=*.rewrite"):
            shutil.rmtree(left, ignore_errors=True)
    for pending in sorted((root / PENDING_DIR).glob("pending-*.json")):
        r = _apply(spark, root, json.loads(pending.read_text()), on_step)
        pending.unlink(missing_ok=True)
        out.partitions += r.partitions
        out.rows_blanked += r.rows_blanked
    for tmp in (root / PENDING_DIR).glob("*.tmp"):
        tmp.unlink(missing_ok=True)
    return out


def _apply(spark, root: Path, ids: list[str], on_step) -> RewriteResult:
    from pyspark.sql import functions as F

    out = RewriteResult()
    if not any(root.glob(f"{DAY_COLUMN}=*/{BATCH_COLUMN}=*")):
        return out
    removed = spark.createDataFrame([(i,) for i in ids], "id string")
    table = spark.read.option("basePath", str(root)).parquet(str(root))
    # A row already blanked (a tombstone) is not a hit: a rerun rewrites only what still holds content.
    content = [F.col(c).isNotNull() for c in table.columns if c not in KEPT]
    held = table.where(reduce(lambda a, b: a | b, content)) if content else table.limit(0)
    hits = (held.select("id", DAY_COLUMN, BATCH_COLUMN).join(F.broadcast(removed), "id")
            .groupBy(DAY_COLUMN, BATCH_COLUMN).count().collect())
    for row in sorted(hits, key=lambda r: (str(r[DAY_COLUMN]), int(r[BATCH_COLUMN]))):
        part = root / f"{DAY_COLUMN}={row[DAY_COLUMN]}" / f"{BATCH_COLUMN}={row[BATCH_COLUMN]}"
        _rewrite_partition(spark, part, removed, on_step)
        out.rows_blanked += int(row["count"])
        out.partitions.append(str(part.relative_to(root)))
    return out


def _rewrite_partition(spark, part: Path, removed, on_step) -> None:
    from pyspark.sql import functions as F

    hidden = _hidden(part)
    shutil.rmtree(hidden, ignore_errors=True)
    df = spark.read.parquet(str(part))
    marked = df.join(F.broadcast(removed.withColumn("_gone", F.lit(True))), "id", "left")
    cols = [F.col(c) if c in KEPT else F.when(F.col("_gone"), F.lit(None).cast(df.schema[c].dataType))
            .otherwise(F.col(c)).alias(c) for c in df.columns]
    new = marked.select(*cols)
    # Written fully, then read by nobody until the swap: the hidden name keeps every reader out.
    new.coalesce(1).write.mode("overwrite").parquet(str(hidden))
    if on_step:
        on_step("staged", part)
    exchange(part, hidden)
    if on_step:
        on_step("swapped", part)
    shutil.rmtree(hidden, ignore_errors=True)
