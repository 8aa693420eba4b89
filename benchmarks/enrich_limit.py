"""What the models allow: ``enrich_batch``'s rate on one core, and in one process per core at once (no Spark).
Used by benchmarks/stream.py; a module of its own because ``multiprocessing`` (spawn) must import the function each
process runs, which a script run as ``__main__`` (or through ``tweetdesk bench``) cannot offer."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tqdm import tqdm

from tweetdesk.config import Settings


def enrich_rate(data: Path, n: int, runs: int = 2, barrier=None, progress: bool = True) -> float:
    """tweets/s of ``enrich_batch`` on one core (torch one thread), best of ``runs`` runs, on ``data``'s texts
    (``barrier``: wait on it once the models are loaded, to start with other processes)."""
    from itertools import islice

    import torch

    from tweetdesk.ingest.replay import iter_tweets
    from tweetdesk.models.enrich import enrich_batch

    tweets = list(islice(iter_tweets(data), n))
    if not tweets:
        raise RuntimeError(f"no tweets in {data}")
    while len(tweets) < n:  # a small file: its tweets again
        tweets.extend(tweets[: n - len(tweets)])
    settings = Settings()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        enrich_batch(tweets[:64], settings)  # loads the models: not counted
        if barrier is not None:
            barrier.wait()
        best = 0.0
        for r in range(runs):
            t0 = time.perf_counter()
            for i in tqdm(range(0, n, 10_000), desc=f"enrich_batch one core, run {r + 1}/{runs}", unit="call",
                          leave=False, file=sys.stderr, disable=not progress):
                enrich_batch(tweets[i:i + 10_000], settings)
            best = max(best, n / (time.perf_counter() - t0))
        return best
    finally:
        torch.set_num_threads(threads)


def _enrich_in_process(data: Path, n: int, barrier, out) -> None:
    """One process of ``enrich_rate_together``: warm, wait for the others, time enrich_batch over n tweets."""
    out.put(enrich_rate(data, n, barrier=barrier, progress=False))


def enrich_rate_together(data: Path, n: int, procs: int) -> list[float]:
    """tweets/s of ``enrich_batch`` in ``procs`` processes at once (torch one thread each), one figure per process:
    what the models reach on that many cores with nothing else running (they share caches and memory)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(procs), ctx.Queue()
    ps = [ctx.Process(target=_enrich_in_process, args=(data, n, barrier, out)) for _ in range(procs)]
    for p in ps:
        p.start()
    rates = [out.get(timeout=1_800) for _ in ps]
    for p in ps:
        p.join()
    return rates
