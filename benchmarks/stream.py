"""Benchmark: the stream end to end (replay -> Kafka -> Spark job with the real models -> Parquet), and the
broker alone (the same replay producer -> Kafka -> a plain consumer), so the ratio shows where the time goes.

Phases (each prints its figures; progress bars on stderr):
  0. the limit: ``enrich_batch`` on one core (torch one thread, this process, the data set's texts), before the
     stream phases and after them (the machine may be shared: the mean of the two); the models allow at most
     cores x that rate, and the flat-out phase prints its rate as a share of it. Beside it, ``enrich_batch`` in one
     process per core at once (no Spark): what the cores give when they share caches and memory.
  1. broker alone, flat out: N tweets replayed (the shared data set, looped with fresh ids) while a consumer
     reads them back; sustained tweets/s and p50/p95 produce->consume latency.
  2. broker alone, paced at --rate tweets/s for --seconds: p50/p95 latency.
  3. stream, warm-up: a few hundred tweets through a started job (Python workers load the models once;
     the cold start is reported separately, it is not a steady-state figure).
  4. stream + producer: N tweets replayed as fast as the producer goes while the job runs (both share the
     cores); sustained tweets/s = N / (last batch's Parquet in place - first tweet ingested), p50/p95 ingest->Parquet.
  5. stream, paced at --rate tweets/s for --seconds: p50/p95 ingest->Parquet latency.
  6. stream flat out: the query stopped, N tweets put in Kafka, the query started again on its checkpoint (Python
     workers warm); sustained tweets/s = N / (last batch's Parquet in place - query started): the stream's own
     rate, which the flat-out target compares with what the models allow.

Latency ingest->Parquet of a tweet = when its micro-batch's Parquet files were in place (driver clock,
``BatchResult.written_at``) minus ``ingested_at`` (stamped by the producer just before sending).
Where a micro-batch's time goes (medians per phase): planning (the source finding the Kafka ends), read + models
(the Spark job that reads Kafka and runs the transform, wall clock), of which the enricher's own seconds summed
over the Python workers, the Parquet write, the publish to tweets.enriched / tweets.dead, and the checkpoint
(offset log + commit log).
Targets: stream flat out (phase 6) >= 75% of cores x the one-core enrich_batch rate of the same run; p95 ingest->Parquet <= 1.0 s
at 500 tweets/s. The load average is printed with each figure.

    .venv/bin/python benchmarks/stream.py [--n 50000] [--rate 500] [--seconds 30] [--data CSV]
        [--max-offsets 20000] [--trigger 0.25] [--batch 2048] [--skip-broker] [--skip-stream]

Uses TWEETDESK_KAFKA_BOOTSTRAP when set (topics of its own, named bench-*), else starts the embedded broker.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
# Spark's Python workers import --enricher modules kept beside this file.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(__file__).resolve().parent),
                                                       os.environ.get("PYTHONPATH")) if p)

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from tweetdesk.config import DEFAULT_DATA, SAMPLE_TWEETS, Settings  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # enrich_limit, beside this file
from enrich_limit import enrich_rate, enrich_rate_together  # noqa: E402


def pct(xs, q: float) -> float:
    return float(np.percentile(np.asarray(xs, dtype=float), q)) if len(xs) else float("nan")


def fresh(settings: Settings, tag: str) -> Settings:
    from tweetdesk.kafka.client import ensure_topics

    t = f"bench-{tag}-{uuid.uuid4().hex[:6]}"
    s = settings.model_copy(update={"topic_raw": f"{t}-raw", "topic_enriched": f"{t}-enriched",
                                    "topic_dead": f"{t}-dead"})
    ensure_topics(s.kafka)
    return s


def replay_in_thread(settings: Settings, data: Path, n: int, rate: float, desc: str):
    """Start a looping replay of ``data`` (fresh ids after the first pass) in a thread; returns (thread, box)."""
    from tweetdesk.ingest import Publisher
    from tweetdesk.ingest.replay import replay

    box: dict = {}

    def run():
        try:
            pub = Publisher(settings.kafka, total=n, progress=True, desc=desc)
            box["stats"] = replay(settings.kafka, data, rate=rate, limit=n, loop=True, publisher=pub)
            pub.flush()
            pub.raise_for_failures()
        except BaseException as e:  # reported by the caller
            box["error"] = e

    th = threading.Thread(target=run, name="replay", daemon=True)
    th.start()
    return th, box


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


# --- broker alone --------------------------------------------------------------------------------------
def broker_alone(settings: Settings, data: Path, n: int, rate: float) -> dict:
    """Replay n tweets (paced at ``rate``, 0 = flat out) while a consumer reads them; Kafka timestamps
    (set by the producer at send time) give the produce->consume latency."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    from tweetdesk.kafka.client import make_consumer, topic_partitions

    s = fresh(settings, "broker")
    c = make_consumer(s.kafka, "bench-broker", **{"fetch.wait.max.ms": 10})
    c.assign([TopicPartition(s.topic_raw, p, OFFSET_BEGINNING) for p in topic_partitions(s.kafka, s.topic_raw)])
    lat: list[float] = []
    first_sent = last_seen = None
    th, box = replay_in_thread(s, data, n, rate, f"broker {'flat out' if not rate else f'{rate:.0f}/s'}")
    deadline = time.monotonic() + max(120.0, 4 * n / (rate or 5_000))
    try:
        while len(lat) < n and time.monotonic() < deadline and "error" not in box:
            for m in c.consume(num_messages=5_000, timeout=0.2):
                if m.error() is not None:
                    continue
                now = time.time()
                ts = m.timestamp()[1] / 1000.0
                first_sent = ts if first_sent is None else min(first_sent, ts)
                last_seen = now
                lat.append(now - ts)
        th.join()
    finally:
        c.close()
    if "error" in box:
        raise box["error"]
    st = box["stats"]
    return {"n": len(lat), "produce_rate": st.rate, "sustained": len(lat) / (last_seen - first_sent),
            "p50": pct(lat, 50), "p95": pct(lat, 95), "dead_at_ingest": st.dead}


# --- stream ---------------------------------------------------------------------------------------------
def load_function(ref: str):
    """'module:function' -> the function, for --enricher (modules kept beside this file, e.g. noop_enrich).
    The stream job takes the function itself; Spark's workers import its module by name when they unpickle it."""
    import importlib

    mod, _, fn = ref.partition(":")
    return getattr(importlib.import_module(mod), fn)


class Stream:
    def __init__(self, settings: Settings, work: Path, enricher=None):
        from tweetdesk.stream.job import StreamJob
        from tweetdesk.stream.spark import build_spark

        self.s = fresh(settings, "stream").model_copy(update={"work_dir": work})
        self.enricher = enricher
        t0 = time.monotonic()
        self.spark = build_spark(self.s, app_name="tweetdesk-bench-stream")
        job = StreamJob(self.s) if enricher is None else StreamJob(self.s, enricher=enricher)
        self.handle = job.start(self.spark)
        self.spark_start_s = time.monotonic() - t0

    def processed(self) -> int:
        t = self.handle.totals
        return t.enriched + t.dead

    def wait_for(self, total: int, desc: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with tqdm(total=total, desc=desc, unit=" tweets", dynamic_ncols=True) as bar:
            while True:
                n = self.processed()
                bar.update(max(0, min(n, total) - bar.n))
                if n >= total:
                    return
                if not self.handle.active:
                    self.handle.process_all_available()  # raises with the query's error
                    raise RuntimeError("the stream query stopped")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{desc}: only {n} of {total} after {timeout:.0f} s")
                time.sleep(0.2)

    def run(self, data: Path, n: int, rate: float, desc: str, timeout: float) -> dict:
        from tweetdesk.stream.sink import parquet_latency, read_enriched

        before = self.processed()
        batches_before = {r.batch_id for r in self.handle.totals.history}
        th, box = replay_in_thread(self.s, data, n, rate, f"replay {desc}")
        th.join()
        if "error" in box:
            raise box["error"]
        self.wait_for(before + box["stats"].published, f"stream {desc}", timeout)
        df = read_enriched(self.s.stream.parquet_dir, columns=["id", "ingested_at", "batch_id"])
        df = df[~df["batch_id"].isin(batches_before)]
        lat = parquet_latency(df, self.handle.totals).dropna()
        new = [r for r in self.handle.totals.history if r.batch_id not in batches_before and (r.enriched or r.dead)]
        first_in = df["ingested_at"].min().timestamp()
        last_out = max(r.written_at for r in new)
        ids = {r.batch_id for r in new}
        # Spark's own timings of each micro-batch (ms): the source's planning and the checkpoint's two logs.
        progress = {p.batchId: p.durationMs for p in self.handle.query.recentProgress if p.batchId in ids}
        return {"n": len(df), "dead": sum(r.dead for r in new), "batches": len(new),
                "produce_rate": box["stats"].rate, "sustained": len(df) / (last_out - first_in),
                "p50": pct(lat, 50), "p95": pct(lat, 95), "max": float(lat.max()), **_breakdown(new, progress),
                "load": os.getloadavg()[0]}

    def drain(self, data: Path, n: int, timeout: float) -> dict:
        """Stop the query, put n tweets in Kafka with nothing reading them, start the query again (same checkpoint,
        warm Python workers) and time it through them: the stream's own rate, the producer not sharing the cores."""
        from tweetdesk.stream.job import StreamJob

        self.handle.stop()
        th, box = replay_in_thread(self.s, data, n, 0.0, "fill Kafka (stream stopped)")
        th.join()
        if "error" in box:
            raise box["error"]
        job = StreamJob(self.s) if self.enricher is None else StreamJob(self.s, enricher=self.enricher)
        self.handle = job.start(self.spark)
        started = time.time()
        self.wait_for(box["stats"].published, "stream drain", timeout)
        new = [r for r in self.handle.totals.history if r.enriched or r.dead]
        ids = {r.batch_id for r in new}
        progress = {p.batchId: p.durationMs for p in self.handle.query.recentProgress if p.batchId in ids}
        return {"n": sum(r.enriched + r.dead for r in new), "dead": sum(r.dead for r in new), "batches": len(new),
                "produce_rate": box["stats"].rate,
                "sustained": sum(r.enriched + r.dead for r in new) / (max(r.written_at for r in new) - started),
                # Where the wall clock went: from the query's start to its first micro-batch, then each one.
                "lead_s": min(r.written_at - r.transform_s - r.parquet_s for r in new) - started,
                "each": [(r.enriched + r.dead, r.seconds) for r in sorted(new, key=lambda r: r.batch_id)],
                "within": sum(r.enriched + r.dead for r in new) / sum(r.seconds for r in new),
                "p50": float("nan"), "p95": float("nan"), "max": float("nan"), **_breakdown(new, progress),
                "load": os.getloadavg()[0]}

    def stop(self) -> None:
        self.handle.stop()
        self.spark.stop()


def _breakdown(new: list, progress: dict) -> dict:
    """Medians of where the micro-batches' time went (s): from the sink's BatchResults and Spark's durationMs."""

    def ms(keys: tuple[str, ...]) -> float:
        return pct([sum(d.get(k, 0) for k in keys) / 1000 for d in progress.values()], 50)

    return {"batch_rows_p50": pct([r.enriched + r.dead for r in new], 50),
            "batch_s_p50": pct([r.seconds for r in new], 50),
            "plan_s": ms(("latestOffset", "getBatch", "queryPlanning")),
            "transform_s": pct([r.transform_s for r in new], 50),
            "model_s": pct([r.model_s for r in new], 50),
            "parquet_s": pct([r.parquet_s for r in new], 50), "publish_s": pct([r.publish_s for r in new], 50),
            "checkpoint_s": ms(("walCommit", "commitOffsets"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=50_000, help="tweets in each flat-out phase")
    ap.add_argument("--rate", type=float, default=500.0, help="paced phase: tweets/s")
    ap.add_argument("--seconds", type=float, default=30.0, help="paced phase: duration")
    ap.add_argument("--data", type=Path, default=None, help="replay file (default: the shared data set, else the sample)")
    ap.add_argument("--max-offsets", type=int, default=None, help="maxOffsetsPerTrigger (default: settings)")
    ap.add_argument("--trigger", type=float, default=None, help="seconds between micro-batches (default: settings)")
    ap.add_argument("--batch", type=int, default=None, help="model inference batch size (default: settings)")
    ap.add_argument("--enricher", default=None,
                    help="module:function instead of the real models (e.g. noop_enrich:enrich_batch, from benchmarks/)")
    ap.add_argument("--limit-n", type=int, default=10_000, help="tweets for the one-core enrich_batch rate")
    ap.add_argument("--skip-broker", action="store_true")
    ap.add_argument("--skip-stream", action="store_true")
    args = ap.parse_args()

    data = args.data or (DEFAULT_DATA if DEFAULT_DATA.exists() else SAMPLE_TWEETS)
    over = {k: v for k, v in {"max_offsets_per_trigger": args.max_offsets, "trigger_seconds": args.trigger,
                               "inference_batch_size": args.batch}.items() if v is not None}
    base = Settings(**over)
    paced_n = int(args.rate * args.seconds)
    print(f"stream benchmark: {args.n:,} tweets flat out, then {args.rate:.0f} tweets/s for {args.seconds:.0f} s; "
          f"data {data.name}; {os.cpu_count()} cores; max_offsets_per_trigger {base.max_offsets_per_trigger}, "
          f"trigger {base.trigger_seconds} s, inference batch {base.inference_batch_size}", flush=True)

    from tweetdesk.kafka.broker import kafka_settings

    results: dict[str, dict] = {}
    limit: list[tuple[float, float]] = []  # (one-core enrich_batch tweets/s, load average)
    if not args.skip_stream:
        limit.append((enrich_rate(data, args.limit_n), os.getloadavg()[0]))
        print(f"enrich_batch on one core: {limit[0][0]:,.0f} tweets/s ({load()})", flush=True)
        together = enrich_rate_together(data, args.limit_n, os.cpu_count() or 1)
        print(f"enrich_batch in {len(together)} processes at once: {sum(together):,.0f} tweets/s "
              f"({' + '.join(f'{x:,.0f}' for x in together)}; {load()})", flush=True)
    with tempfile.TemporaryDirectory(prefix="tweetdesk-bench-") as tmp, \
            kafka_settings(base.model_copy(update={"work_dir": Path(tmp)}), create_topics=False) as s:
        if not args.skip_broker:
            results["broker flat out"] = broker_alone(s, data, args.n, 0.0)
            results["broker paced"] = broker_alone(s, data, paced_n, args.rate)
        if not args.skip_stream:
            stream = Stream(s, Path(tmp) / "stream", args.enricher and load_function(args.enricher))
            try:
                t0 = time.monotonic()
                stream.run(SAMPLE_TWEETS, 400, 0.0, "warm-up", 600)
                cold = time.monotonic() - t0
                print(f"Spark session + query start {stream.spark_start_s:.1f} s; first 400 tweets (models load in "
                      f"each Python worker) {cold:.1f} s", flush=True)
                results["stream + producer"] = stream.run(data, args.n, 0.0, "flat out beside the producer", 3_600)
                results["stream paced"] = stream.run(data, paced_n, args.rate, f"{args.rate:.0f}/s", 1_800)
                results["stream flat out"] = stream.drain(data, args.n, 3_600)
            finally:
                stream.stop()
    if not args.skip_stream:
        limit.append((enrich_rate(data, args.limit_n), os.getloadavg()[0]))
        print(f"enrich_batch on one core, again after the stream: {limit[1][0]:,.0f} tweets/s ({load()})", flush=True)

    print()
    print(f"{'phase':<18}{'tweets':>8}{'produce/s':>11}{'sustained/s':>13}{'p50 s':>8}{'p95 s':>8}{'load':>7}")
    for name, r in results.items():
        print(f"{name:<18}{r['n']:>8,}{r['produce_rate']:>11,.0f}{r['sustained']:>13,.0f}{r['p50']:>8.2f}"
              f"{r['p95']:>8.2f}{r.get('load', float('nan')):>7.1f}")
    for name in ("stream + producer", "stream flat out", "stream paced"):
        if name in results:
            r = results[name]
            print(f"{name}: {r['batches']} micro-batches, median {r['batch_rows_p50']:.0f} tweets in "
                  f"{r['batch_s_p50']:.2f} s; max latency {r['max']:.2f} s; {r['dead']} dead letters")
            if "each" in r:
                each = ", ".join(f"{n:,} in {t:.2f} s" for n, t in r["each"])
                print(f"{name}: query start to its first micro-batch {r['lead_s']:.2f} s; then {each} "
                      f"({r['within']:,.0f} tweets/s within them)")
            print(f"{name}: a micro-batch's time (medians, s): planning {r['plan_s']:.2f}, read + models "
                  f"{r['transform_s']:.2f} (enricher {r['model_s']:.2f} CPU-s summed over the workers), Parquet "
                  f"{r['parquet_s']:.2f}, publish {r['publish_s']:.2f}, checkpoint {r['checkpoint_s']:.2f}")
    if "broker flat out" in results and "stream flat out" in results:
        ratio = results["broker flat out"]["sustained"] / results["stream flat out"]["sustained"]
        print(f"broker alone is {ratio:.1f}x the stream's sustained rate: the time goes to "
              f"{'the Spark job (models)' if ratio > 2 else 'Kafka and ingest'}")
    if "stream flat out" in results:
        r = results["stream flat out"]
        one_core = sum(x for x, _ in limit) / len(limit)
        cores = os.cpu_count() or 1
        share = r["sustained"] / (cores * one_core)
        print(f"target flat out >= 75% of what the models allow ({cores} cores x {one_core:,.0f} tweets/s of "
              f"enrich_batch on one core = {cores * one_core:,.0f}/s): {'met' if share >= 0.75 else 'NOT met'} "
              f"({r['sustained']:,.0f}/s = {share:.0%}; load {r['load']:.1f})")
        within = r["within"]
        print(f"  beside it: {sum(together):,.0f}/s is what {len(together)} processes running enrich_batch at once "
              f"reached ({sum(together) / (cores * one_core):.0%} of that limit); the stream's micro-batches alone ran "
              f"{within:,.0f}/s ({within / (cores * one_core):.0%}), the {r['lead_s']:.1f} s from query start to the "
              f"first micro-batch aside")
    if "stream paced" in results:
        r = results["stream paced"]
        print(f"target p95 ingest->Parquet <= 1.0 s at {args.rate:.0f} tweets/s: {'met' if r['p95'] <= 1.0 else 'NOT met'} "
              f"({r['p95']:.2f} s; load {r['load']:.1f})")

if __name__ == "__main__":
    main()
