"""`tweetdesk bench …`: figures on stdout, progress bars on stderr, so `> figures.txt` keeps a clean table.

Each benchmark runs for real, through the CLI, on a few hundred tweets; the figures themselves are not asserted
(speed lives in benchmarks/ and is printed, never tested), only where each kind of output goes.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

# A progress bar, whatever tqdm draws it with: carriage returns, "NN%|", rates.
PROGRESS_MARKS = ("\r", "%|", "it/s", "s/it", "call/s", "tweet/s]", "batch/s", "sim s/s")


def _bench(*args: str) -> tuple[int, str, str]:
    # Bytes, decoded here: text mode would turn tqdm's carriage returns into newlines.
    r = subprocess.run([sys.executable, "-m", "tweetdesk.cli", "bench", *args], capture_output=True, timeout=600)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


@pytest.mark.parametrize(
    ("args", "figure_lines", "progress"),
    [
        (("classify", "--n", "300", "--repeat", "1"),
         ("enrich_batch (clean + LSTMs + NER + ticket ids):", "cleaning alone (clean_many):", "LSTMs alone (",
          "models (predict_cleaned"),
         "enrich_batch run 1/1"),
        (("replies", "--n", "300", "--no-postgres"),
         ("SQLite (WAL file)", "target ≥ 1,000/s end to end with SQLite:"),
         "sqlite: end-to-end"),
        (("budget", "--n", "200", "--hours", "0.5", "--dm-cases", "20"),
         ("== reply budget (priority + pacing) ==", "replies posted", "spend", "public replies only", "with DMs"),
         "budget scheduler"),
    ],
    ids=["classify", "replies", "budget"],
)
def test_bench_prints_figures_on_stdout_and_progress_on_stderr(args, figure_lines, progress):
    code, out, err = _bench(*args)
    assert code == 0, err[-2000:]
    for label in figure_lines:
        assert any(line.startswith(label) for line in out.split("\n")), (label, out)
    for mark in PROGRESS_MARKS:
        assert mark not in out, (mark, out)
    assert progress in err and "%|" in err  # the bars are there, on stderr
