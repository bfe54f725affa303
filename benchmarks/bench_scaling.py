"""Wall time and peak memory of the batch steps (audit, encode) per executor; with --events, one large audit from part files on a standalone cluster."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import polars as pl
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_audit import synthetic_events, synthetic_items  # noqa: E402

from longtail.core.config import LongtailConfig  # noqa: E402
from longtail.data.loaders import to_canonical  # noqa: E402
from longtail.data.schema import EVENTS, ITEMS  # noqa: E402
from longtail.pipeline.audit_step import run_audit  # noqa: E402
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


def process_role(process: psutil.Process) -> str:
    """Which part of a Spark run a process of the tree is: driver JVM, executor JVM, executor Python, cluster daemon, or other."""
    try:
        command = " ".join(process.cmdline())
    except psutil.Error:
        return "other"
    if "CoarseGrainedExecutorBackend" in command:
        return "executor_jvm"
    if "pyspark.daemon" in command or "pyspark.worker" in command:
        return "executor_python"
    if "SparkSubmit" in command:
        return "driver_jvm"
    if "deploy.master.Master" in command or "deploy.worker.Worker" in command:
        return "cluster_daemons"
    return "other"


ROLES = ("driver_python", "driver_jvm", "executor_jvm", "executor_python", "cluster_daemons")


class StepMemory(PeakMemory):
    """Peak memory per audit step (from the step callback): the whole process tree, and per role (driver Python and JVM, executors)."""

    def __init__(self, interval: float = 0.2) -> None:
        super().__init__(interval)
        self.steps: list[dict[str, object]] = []
        self._current = "start"
        self._started = time.perf_counter()
        self._peaks: dict[str, int] = {}

    def _roles(self) -> dict[str, int]:
        me = psutil.Process()
        sums = dict.fromkeys(ROLES, 0) | {"tree": me.memory_info().rss, "driver_python": me.memory_info().rss}
        for child in me.children(recursive=True):
            try:
                rss = child.memory_info().rss
            except psutil.Error:
                continue
            sums["tree"] += rss
            role = process_role(child)
            if role in sums:
                sums[role] += rss
        return sums

    def _run(self) -> None:
        while not self._stop.is_set():
            sums = self._roles()
            self.peak = max(self.peak, sums["tree"])
            self._peaks = {role: max(self._peaks.get(role, 0), value) for role, value in sums.items()}
            time.sleep(self.interval)

    def step(self, name: str) -> None:
        """Close the running step (its wall time and peaks) and open the next."""
        now = time.perf_counter()
        peaks = {f"peak_{role}_mb": round(self._peaks.get(role, 0) / 2**20, 1) for role in ("tree", *ROLES)}
        self.steps.append({"step": self._current, "seconds": round(now - self._started, 2), **peaks})
        self._current, self._started, self._peaks = name, now, {}


def write_parts(folder: Path, events: int, items: int, part_events: int, seed: int) -> int:
    """Synthetic events as Parquet part files, generated one part at a time (never all rows at once); the parts written."""
    folder.mkdir(parents=True, exist_ok=True)
    users = max(events // 10, 1)
    count = 0
    for index, start in enumerate(range(0, events, part_events)):
        rng = np.random.default_rng([seed, index])
        synthetic_events(min(part_events, events - start), items, users, rng).write_parquet(folder / f"part-{index:05d}.parquet")
        count += 1
    return count


IN_PROCESS = """
import json, resource, sys, time
from longtail.core.config import LongtailConfig
from longtail.pipeline.audit_step import run_audit
config = LongtailConfig.model_validate({"quality": {"reference_time": "2026-04-01T00:00:00+00:00"}})
started = time.perf_counter()
result = run_audit(sys.argv[1], sys.argv[2], sys.argv[3], config)
print(json.dumps({"seconds": round(time.perf_counter() - started, 2), "events": result.report["tables"]["events"]}))
"""


def in_process_run(items: Path, events: Path, out: Path, memory_gb: float | None) -> dict[str, object]:
    """The in-process audit of the same input in a child process (optionally under an address-space cap): its figures or its failure."""
    import resource
    import subprocess

    def cap() -> None:
        if memory_gb:
            limit = int(memory_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    started = time.perf_counter()
    child = subprocess.run([sys.executable, "-c", IN_PROCESS, str(items), str(events), str(out)], capture_output=True, text=True, preexec_fn=cap, check=False)
    seconds = round(time.perf_counter() - started, 2)
    peak = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    if child.returncode == 0:
        return {"completed": True, **json.loads(child.stdout.strip().splitlines()[-1]), "peak_mb": peak, "memory_cap_gb": memory_gb}
    lines = [line for line in child.stderr.strip().splitlines() if line.strip()]
    reason = lines[-1] if lines else f"exit code {child.returncode}"
    if child.returncode < 0 or "MemoryError" in child.stderr or "memory" in child.stderr.lower():
        reason = f"out of memory (cap {memory_gb} GB): {reason}"
    return {"completed": False, "seconds": seconds, "failure": reason, "peak_mb": peak, "memory_cap_gb": memory_gb}


def cluster_run(args: argparse.Namespace) -> None:
    """Events as part files through a standalone cluster (driver capped at 2 GB), then in-process on the same input."""
    record: dict[str, object] = {
        "events": args.events,
        "items": args.items,
        "part_events": args.part_events,
        "under_load": args.under_load,
        "load_average_at_start": round(os.getloadavg()[0], 2),
        "worker_cores": 2,
        "worker_memory": args.worker_memory,
        "executor_memory": args.executor_memory,
        "driver_memory": "2g",
        "partitions": args.partitions,
    }
    with tempfile.TemporaryDirectory(prefix="longtail-scaling-") as folder:
        # A kept input folder (--input-dir) is generated once and reused, so a rerun skips the generation.
        work = Path(args.input_dir) if args.input_dir else Path(folder)
        if not (work / "events").is_dir():
            started = time.perf_counter()
            work.mkdir(parents=True, exist_ok=True)
            synthetic_items(args.items, np.random.default_rng(0)).write_parquet(work / "items.parquet")
            write_parts(work / "events", args.events, args.items, args.part_events, seed=0)
            record["generate_seconds"] = round(time.perf_counter() - started, 2)
        record["parts"] = len(list((work / "events").iterdir()))
        record["input_mb"] = round(sum(p.stat().st_size for p in (work / "events").iterdir()) / 2**20, 1)
        out = Path(folder)
        with StandaloneCluster(worker_cores=2, worker_memory=args.worker_memory) as cluster:
            pipeline = {
                "executor": "spark",
                "spark_master": cluster.master_url,
                "spark_partitions": args.partitions,
                "spark_driver_memory": "2g",
                "spark_executor_memory": args.executor_memory,
            }
            config = LongtailConfig.model_validate({"pipeline": pipeline, "quality": {"reference_time": "2026-04-01T00:00:00+00:00"}})
            with StepMemory() as memory:
                started = time.perf_counter()
                result = run_audit(work / "items.parquet", work / "events", out / "out-cluster", config, memory.step)
                seconds = time.perf_counter() - started
                memory.step("end")
            events = result.report["tables"]["events"]
            written = {folder: pl.scan_parquet(out / "out-cluster" / folder / "events").select(pl.len()).collect().item() for folder in ("clean", "quarantine")}
            record["load_average_at_end"] = round(os.getloadavg()[0], 2)
            record["cluster"] = {
                "seconds": round(seconds, 2),
                "peak_tree_mb": round(memory.peak / 2**20, 1),
                "steps": memory.steps[1:],
                "events": events,
                "rows_written": written,
                "reconciles": events["input_rows"] == args.events == events["kept_rows"] + events["quarantined_rows"]
                and written == {"clean": events["kept_rows"], "quarantine": events["quarantined_rows"]},
            }
        print(json.dumps(record["cluster"], indent=2), flush=True)
        if not args.skip_in_process:
            record["in_process"] = in_process_run(work / "items.parquet", work / "events", out / "out-local", args.in_process_memory_gb)
            print(json.dumps(record["in_process"], indent=2), flush=True)
    target = RESULTS / "scaling.json"
    existing = json.loads(target.read_text(encoding="utf-8")) if target.exists() else {"benchmark": "scaling", "cpus": os.cpu_count()}
    # One record per size: a rerun at the same size replaces its record, other sizes stay.
    others = [run for run in existing.get("cluster_runs", []) if (run["events"], run["items"]) != (args.events, args.items)]
    existing["cluster_runs"] = [*others, record]
    target.write_text(json.dumps(existing, indent=2), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--executors", default="local,spark-local,spark-standalone")
    parser.add_argument("--quick", action="store_true", help="small sizes only, to check the script")
    parser.add_argument("--events", type=int, help="run the cluster audit on this many synthetic events written as part files")
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--part-events", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--worker-memory", default="8g")
    parser.add_argument("--executor-memory", default="6g")
    parser.add_argument("--in-process-memory-gb", type=float, help="address-space cap for the in-process run")
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument("--input-dir", help="keep the synthetic input in this folder (generated when absent) instead of a temporary one")
    parser.add_argument("--under-load", action="store_true", help="label the figures as measured while others used the CPUs")
    args = parser.parse_args()
    if args.events:
        cluster_run(args)
        return
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
