"""Wall time and peak memory of the batch steps (audit, encode) per executor: in-process, Spark local[2], standalone cluster."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_audit import synthetic_events, synthetic_items  # noqa: E402

from longtail.core.config import LongtailConfig  # noqa: E402
from longtail.data.loaders import to_canonical  # noqa: E402
from longtail.data.schema import EVENTS, ITEMS  # noqa: E402
from longtail.pipeline.encode_step import run_encode  # noqa: E402
from longtail.pipeline.executors import table_mapper  # noqa: E402
from longtail.pipeline.spark import StandaloneCluster  # noqa: E402
from longtail.quality.audit import audit  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
AUDIT_GRID = [(10_000, 1_000_000), (100_000, 1_000_000), (1_000_000, 1_000_000), (100_000, 10_000_000)]
ENCODE_SIZES = [1_000, 10_000]


class PeakMemory:
    """Samples the summed resident memory of this process and all its descendants (Spark JVMs and workers too)."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        me = psutil.Process()
        total = me.memory_info().rss
        for child in me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        self.peak = self._sample()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def measure(run: Callable[[], object]) -> dict[str, float]:
    """Wall seconds and peak memory (MB, process tree) of one call."""
    with PeakMemory() as memory:
        started = time.perf_counter()
        run()
        seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2), "peak_mb": round(memory.peak / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--executors", default="local,spark-local,spark-standalone")
    parser.add_argument("--quick", action="store_true", help="small sizes only, to check the script")
    args = parser.parse_args()
    grid = [(2_000, 50_000)] if args.quick else AUDIT_GRID
    encode_sizes = [200] if args.quick else ENCODE_SIZES
    executors = args.executors.split(",")
    runs: list[dict[str, object]] = []
    cluster = StandaloneCluster(worker_cores=2, worker_memory="4g").start() if "spark-standalone" in executors else None
    try:
        masters = {"local": None, "spark-local": "local[2]", "spark-standalone": cluster.master_url if cluster else None}
        for executor in executors:
            pipeline = (
                {"executor": "local"}
                if executor == "local"
                else {"executor": "spark", "spark_master": masters[executor], "spark_partitions": 8, "spark_driver_memory": "6g"}
            )
            config = LongtailConfig.model_validate({"pipeline": pipeline, "quality": {"reference_time": "2026-04-01T00:00:00+00:00"}})
            with table_mapper(config.pipeline) as mapper:
                for item_count, event_count in grid:
                    if executor != "local" and item_count >= 1_000_000:
                        continue  # the item checks run on the driver for every executor: measured once, in-process
                    rng = np.random.default_rng(0)
                    items = to_canonical(synthetic_items(item_count, rng), ITEMS, "synthetic")
                    events = to_canonical(synthetic_events(event_count, item_count, max(event_count // 10, 1), rng), EVENTS, "synthetic")
                    figures = measure(partial(audit, items, events, config, map_table=mapper))
                    runs.append({"step": "audit", "executor": executor, "items": item_count, "events": event_count, **figures})
                    print(json.dumps(runs[-1]), flush=True)
                for item_count in encode_sizes:
                    items = to_canonical(synthetic_items(item_count, np.random.default_rng(1)), ITEMS, "synthetic")
                    figures = measure(partial(run_encode, items, mapper))
                    runs.append(
                        {"step": "encode", "executor": executor, "items": item_count, **figures, "items_per_second": round(item_count / figures["seconds"], 1)}
                    )
                    print(json.dumps(runs[-1]), flush=True)
    finally:
        if cluster:
            cluster.stop()
    RESULTS.mkdir(exist_ok=True)
    target = RESULTS / ("scaling-quick.json" if args.quick else "scaling.json")
    target.write_text(json.dumps({"benchmark": "scaling", "cpus": os.cpu_count(), "runs": runs}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
