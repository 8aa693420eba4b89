"""Inference needs none of the training side's packages (the `train` extra: scikit-learn, gensim, matplotlib, the
MiniLM teacher), so the image and a deployment install without them; a command that does need them says so in one
readable line. Each check runs in a fresh interpreter: this test session has imported everything."""

from __future__ import annotations

import json
import subprocess
import sys

from tweetdesk.errors import TRAIN_PACKAGES


def _python(code: str, tmp_path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TWEETDESK_WORK_DIR": str(tmp_path / "work"),
           "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)


def test_classifying_serving_and_the_stream_transform_import_no_training_package(tmp_path):
    code = f"""
import json, sys
from tweetdesk.cli import main
assert main(["classify", "--json", "@united my bag never arrived on UA 328 to Denver"]) == 0
from tweetdesk.app import create_app
import tweetdesk.stream.transform, tweetdesk.stream.job, tweetdesk.ingest, tweetdesk.reply
assert create_app().test_client().get("/healthz").status_code == 200
print(json.dumps(sorted(m for m in {TRAIN_PACKAGES!r} if m in sys.modules)))
"""
    r = _python(code, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.strip().splitlines()
    assert json.loads(lines[0])["topic"] == "Baggage Issue"  # the models really ran
    assert json.loads(lines[-1]) == []


def test_a_training_command_without_the_train_extra_says_so_in_one_line(tmp_path):
    # sys.modules[name] = None is how Python spells "this package is not installed" to find_spec and import.
    code = """
import sys
sys.modules["sklearn"] = None
from tweetdesk.cli import main
sys.exit(main(["lda"]))
"""
    r = _python(code, tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0, r.stderr
    assert "tweetdesk lda needs the train extra (sklearn not installed)" in r.stderr
    assert "pip install 'tweetdesk[train]'" in r.stderr
