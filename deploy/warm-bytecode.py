"""Image build step: write the bytecode (.pyc) of what tweetdesk imports at run time, and of nothing else.

The dependencies are installed with ``pip install --no-compile``: compiling every module of every package (pip's
default) put ~230 MB of bytecode in the image, most of it for modules no role ever imports. At run time the image's
user cannot write into /opt/tweetdesk, so a module without its .pyc would be compiled again at every start: this
step imports what the roles import (every tweetdesk module, Spark's Python worker, the models through one
classification, the web app) once, as root at build time, and Python writes their .pyc files as it goes.

    python deploy/warm-bytecode.py     (inside the image build, after the tweetdesk wheel is installed)
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import tempfile


def import_tree(package: str) -> tuple[int, list[str]]:
    """Import ``package`` and every module under it; modules that cannot import here (an optional extra that is
    not installed, a platform-only module) are listed, not fatal."""
    root = importlib.import_module(package)
    done, skipped = 1, []
    for info in pkgutil.walk_packages(getattr(root, "__path__", []), package + ".", onerror=lambda name: None):
        try:
            importlib.import_module(info.name)
            done += 1
        except Exception as e:  # noqa: BLE001 (ImportError and whatever a module raises when its extra is absent)
            skipped.append(f"{info.name} ({type(e).__name__})")
    return done, skipped


def main() -> int:
    if sys.dont_write_bytecode:
        print("warm-bytecode: PYTHONDONTWRITEBYTECODE is set: nothing would be written", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="tweetdesk-warm-") as work:
        return warm(work)


def warm(work: str) -> int:
    """Import and run what the roles do, with ``work`` as the work dir (settings, store, logs land there)."""
    os.environ["TWEETDESK_WORK_DIR"] = work
    os.environ["TWEETDESK_HOST"] = "127.0.0.1"  # the image's default host (0.0.0.0) needs an API key to start
    total, skipped = 0, []
    # tweetdesk itself, and the parts of pyspark that Spark's Python workers import (not reached from the driver).
    for package in ("tweetdesk", "pyspark.sql.worker", "pyspark.sql.pandas", "pyspark.sql.streaming"):
        n, s = import_tree(package)
        total, skipped = total + n, skipped + s
    # Loaded lazily on the way to PostgreSQL, AWS (Secrets Manager, MSK IAM) and Parquet.
    for name in ("pyspark.daemon", "pyspark.worker", "pyarrow.parquet", "pyarrow.dataset", "pyarrow.json",
                 "sqlalchemy.dialects.sqlite", "sqlalchemy.dialects.postgresql", "psycopg", "boto3"):
        importlib.import_module(name)
        total += 1
    # The models, spaCy's pipeline and torch's inference paths load lazily: one classification reaches them.
    from tweetdesk.cli import main as cli

    if cli(["--work-dir", work, "classify", "--json", "@united my bag never arrived on UA 328 to Denver"]) != 0:
        print("warm-bytecode: `tweetdesk classify` failed", file=sys.stderr)
        return 1
    from tweetdesk.app import create_app

    create_app().test_client().get("/healthz")
    print(f"warm-bytecode: imported {total} modules (+ a classification and the web app); "
          f"{len(skipped)} skipped: {', '.join(skipped) or 'none'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
