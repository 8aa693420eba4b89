"""Parquet rewritten for X's data rules (tweetdesk.stream.rewrite): only the affected partitions, swapped in
atomically, and a run killed with SIGKILL midway completes on the next run with no partition doubled or missing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from tweetdesk.stream.rewrite import PENDING_DIR, rewrite

SECRET = "jane's secret complaint about UA 1234"


def _write(root: Path) -> dict[str, list[str]]:
    """Three partitions of the sink's layout (day=/batch_id=); returns partition -> ids."""
    layout = {"day=2026-01-01/batch_id=0": ["1", "2"], "day=2026-01-01/batch_id=1": ["3", "4"],
              "day=2026-01-02/batch_id=2": ["5", "6"]}
    for part, ids in layout.items():
        (root / part).mkdir(parents=True)
        pq.write_table(pa.table({
            "id": ids, "text": [SECRET if i in ("1", "3") else f"tweet {i} text" for i in ids],
            "clean_text": [f"clean {i}" for i in ids], "author": [f"author_{i}" for i in ids],
            "author_id": [f"50{i}" for i in ids], "topic": ["Baggage Issue"] * len(ids),
            "sentiment": ["negative"] * len(ids), "ticket_id": [f"T{i}" for i in ids],
        }), root / part / "part-0.parquet")
    return layout


def _read(root: Path) -> pa.Table:
    return ds.dataset(root, format="parquet", partitioning="hive").to_table()


def test_rewrite_blanks_removed_posts_in_the_affected_partitions_only(spark, tmp_path):
    root = tmp_path / "parquet"
    _write(root)
    untouched = root / "day=2026-01-02/batch_id=2/part-0.parquet"
    before = untouched.stat().st_ino
    r = rewrite(spark, root, ["1", "3"])
    assert sorted(r.partitions) == ["day=2026-01-01/batch_id=0", "day=2026-01-01/batch_id=1"]
    assert r.rows_blanked == 2
    t = _read(root).to_pylist()
    assert sorted(row["id"] for row in t) == ["1", "2", "3", "4", "5", "6"]  # tombstone rows: counts add up
    gone = {row["id"]: row for row in t if row["id"] in ("1", "3")}
    assert all(g["text"] is None and g["author"] is None and g["author_id"] is None for g in gone.values())
    assert all(g["topic"] == "Baggage Issue" and g["ticket_id"] for g in gone.values())
    assert not any(SECRET in (row["text"] or "") for row in t)
    assert untouched.stat().st_ino == before  # not rewritten
    assert not list(root.rglob(".batch_id=*")) and not list((root / PENDING_DIR).iterdir())
    assert rewrite(spark, root, ["1", "3"]).partitions == []  # again: nothing left to do


_KILLED_RUN = textwrap.dedent("""
    import os, sys, time
    from tweetdesk.config import Settings
    from tweetdesk.stream.spark import build_spark
    from tweetdesk.stream.rewrite import rewrite

    spark = build_spark(Settings(spark_master="local[1]"), app_name="rewrite-killed",
                        conf={"spark.driver.memory": "512m", "spark.sql.shuffle.partitions": "1"})

    def on_step(step, part):
        if step == "swapped":  # the first partition swapped, its old files not yet deleted, the second not done
            print("SWAPPED", part, flush=True)
            time.sleep(600)

    rewrite(spark, sys.argv[1], ["1", "3"], on_step=on_step)
""")


def test_a_rewrite_killed_midway_completes_on_the_next_run(spark, tmp_path):
    root = tmp_path / "parquet"
    _write(root)
    script = tmp_path / "killed.py"
    script.write_text(_KILLED_RUN)
    proc = subprocess.Popen([sys.executable, str(script), str(root)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ}, start_new_session=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("SWAPPED"), line
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    # Killed between two partitions: a reader sees each row once, the first partition new, the second old.
    ids = Counter(row["id"] for row in _read(root).to_pylist())
    assert ids == Counter({str(i): 1 for i in range(1, 7)})
    assert list(root.rglob(".batch_id=*")) and list((root / PENDING_DIR).glob("pending-*.json"))
    rows = {row["id"]: row for row in _read(root).to_pylist()}
    assert rows["1"]["text"] is None and rows["3"]["text"] == SECRET
    # The next run (any run: here one with nothing new to remove) finishes it.
    rewrite(spark, root, [])
    rows = _read(root).to_pylist()
    assert Counter(row["id"] for row in rows) == Counter({str(i): 1 for i in range(1, 7)})
    assert not any(SECRET in (row["text"] or "") for row in rows)
    assert not list(root.rglob(".batch_id=*")) and not list((root / PENDING_DIR).glob("pending-*"))


def test_one_compliance_run_removes_a_deleted_post_from_store_and_parquet(spark, sqlite_store, xapi, tmp_path,
                                                                           monkeypatch, capsys):
    """The acceptance case end to end: a stored tweet later deleted on X -> after one `tweetdesk compliance`
    its text is in no table and no Parquet file (read with pyarrow); its tombstone is there; counts unchanged."""
    from tests.fixtures.store import enriched_tweet, everything_stored
    from tweetdesk.cli import main

    work = tmp_path / "work"
    root = work / "parquet"
    (root / "day=2026-01-01/batch_id=0").mkdir(parents=True)
    pq.write_table(pa.table({"id": ["1001", "1002"], "text": [f"@united {SECRET}", "@united fine thanks"],
                             "author": ["jane_doe", "bob_b"], "author_id": ["501", "502"],
                             "topic": ["Baggage Issue"] * 2, "sentiment": ["negative", "positive"]}),
                   root / "day=2026-01-01/batch_id=0/part-0.parquet")
    a = enriched_tweet("1001", author="jane_doe", author_id="501", text=f"@united {SECRET}")
    b = enriched_tweet("1002", author="bob_b", author_id="502", text="@united fine thanks")
    sqlite_store.add_tickets([a, b], lambda t: f"@{t.author} on it: {t.ticket_id}")
    before = sqlite_store.stats()
    xapi.compliance.mark_tweet("1001", "deleted")
    for k, v in {"DATABASE_URL": sqlite_store.url, "WORK_DIR": str(work), "X_API_BASE": xapi.base_url,
                 "X_BEARER_TOKEN": "app"}.items():
        monkeypatch.setenv(f"TWEETDESK_{k}", v)
    assert main(["compliance"]) == 0
    out = capsys.readouterr().out
    assert "1 posts removed" in out and "parquet: 1 rows blanked in 1 partitions" in out
    assert SECRET not in everything_stored(sqlite_store) and sqlite_store.stats() == before
    assert sqlite_store.get_ticket(a.ticket_id).topic == "Baggage Issue"
    rows = _read(root).to_pylist()
    assert len(rows) == 2 and not any(SECRET in (r["text"] or "") for r in rows)
    assert not any(SECRET.encode() in f.read_bytes() for f in root.rglob("*.parquet"))
