"""Shared fixtures: one broker and one SparkSession for the whole session (they are slow to start).

Fixtures that belong to one stage live in tests/fixtures/<stage>.py and are registered below.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tweetdesk.config import DEFAULT_DATA

# Spark's Python workers must run the interpreter that runs the tests.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
# The tests' desk answers for @united, the brand their tweets write to (X's rules: only a tweet that mentions,
# quotes or replies to one of our accounts gets an automatic reply), and for the sample's @tweetdesk.
os.environ.setdefault("TWEETDESK_OUR_HANDLES", '["tweetdesk", "united"]')

# Every tests/fixtures/<stage>.py is a plugin: a stage adds its fixtures without editing this file.
pytest_plugins = sorted(
    f"tests.fixtures.{f.stem}" for f in (Path(__file__).parent / "fixtures").glob("*.py") if f.stem != "__init__"
)


def pytest_collection_modifyitems(config, items):
    # Slow tests (training from scratch) and the image build only run when asked for with -m.
    if config.getoption("-m"):
        return
    skip_slow = pytest.mark.skip(reason="slow: run with `pytest -m slow` or `make test-all`")
    skip_image = pytest.mark.skip(reason="image: builds the container image; run with `make test-image` (.ci/run does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)
        elif "image" in item.keywords:
            item.add_marker(skip_image)


@pytest.fixture(scope="session")
def airline_csv() -> Path:
    """The shared data set; tests that need it skip with a clear message where it is absent."""
    path = Path(os.environ.get("TWEETDESK_DATA_PATH", DEFAULT_DATA))
    if not path.exists():
        pytest.skip(f"data set not found at {path} (expected ../shared/data/airline_tweets.csv beside the repo)")
    return path
