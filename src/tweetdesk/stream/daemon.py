"""Spark's Python worker daemon, with the models loaded before it forks workers.

Spark starts one daemon per executor (``python -m <spark.python.daemon.module>``) and forks a worker from it
for each task that runs Python. A micro-batch uses several workers (the Kafka source's reader and the
enrichment run in separate ones), and any of them may be handed the enrichment next time; without this,
each new one spends seconds loading torch, the LSTMs and spaCy in the middle of a batch. Loaded here, they
are inherited by every fork (copy-on-write). Loading is best effort: a worker whose settings name another
model (or when loading fails here) loads it itself, as it would without this daemon.

Set by ``stream.spark.build_spark`` (``spark.python.daemon.module=tweetdesk.stream.daemon``).
"""

from __future__ import annotations

import sys


def preload() -> None:
    try:
        from tweetdesk.config import Settings
        from tweetdesk.models.predict import get_classifier
        from tweetdesk.nlp.clean import clean_many
        from tweetdesk.nlp.entities import get_extractor

        settings = Settings()
        get_classifier(settings)
        get_extractor(settings)
        clean_many(["warm up the cleaner's tables"])
    except Exception as e:  # the worker reports the real error, if any, when it loads the models itself
        print(f"tweetdesk daemon: models not preloaded ({type(e).__name__}: {e})", file=sys.stderr)


if __name__ == "__main__":
    preload()
    from pyspark.daemon import manager

    manager()
