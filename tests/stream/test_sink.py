"""The local Parquet writer of the stream's sink: a replayed micro-batch replaces its partitions, never adds to them."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from tweetdesk.stream.sink import clean_stale_staging, read_enriched, write_local_batch


def _batch(ids: list[str], days: list[str]) -> tuple[pa.Table, pa.ChunkedArray]:
    return pa.table({"id": ids, "text": [f"tweet {i}" for i in ids]}), pa.chunked_array([days])


def test_a_replayed_batch_replaces_its_partitions_and_a_killed_write_leaves_nothing_readable(tmp_path):
    table, days = _batch(["1", "2", "3"], ["2026-12-05", "2026-12-06", "2026-12-06"])
    written = write_local_batch(tmp_path, table, days, 7)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == ["day=2026-12-05/batch_id=7", "day=2026-12-06/batch_id=7"]
    write_local_batch(tmp_path, table, days, 7)  # the same batch again, after a crash before its commit
    write_local_batch(tmp_path, *_batch(["4"], ["2026-12-06"]), 8)
    df = read_enriched(tmp_path)
    assert sorted(df["id"]) == ["1", "2", "3", "4"]
    assert sorted(zip(df["id"], df["day"].astype(str), df["batch_id"].astype(str))) == [
        ("1", "2026-12-05", "7"), ("2", "2026-12-06", "7"), ("3", "2026-12-06", "7"), ("4", "2026-12-06", "8")]
    assert not list(tmp_path.glob("day=*/.batch_id=*"))  # the earlier attempt's files were swapped out and deleted

    # A write killed before its rename leaves a hidden folder: no reader sees it, the next start removes it.
    left = tmp_path / "day=2026-12-06" / ".batch_id=9.write-0123456789ab"
    left.mkdir()
    pq.write_table(_batch(["5"], ["2026-12-06"])[0], left / "part-00000.parquet")
    assert sorted(read_enriched(tmp_path)["id"]) == ["1", "2", "3", "4"]
    clean_stale_staging(tmp_path)
    assert not left.exists()
