"""Near-duplicate detection at catalogue scale: wall time, peak memory and recall of planted near-duplicates."""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np

from longtail.core.config import PipelineConfig, QualityConfig
from longtail.pipeline.spark import StandaloneCluster, start_session
from longtail.pipeline.spark_items import near_duplicates_on_spark
from longtail.quality import duplicates

RESULTS = Path(__file__).resolve().parent / "results"
LETTERS = list("abcdefghijklmnopqrstuvwxyz")


def relisted(title: str) -> str:
    """A near-duplicate as shops produce them: re-listed upper-cased with a swapped letter pair (as in the audit's planted defects)."""
    middle = next(i for i in range(len(title) // 2, len(title) - 1) if title[i].isalpha() and title[i + 1].isalpha() and title[i] != title[i + 1])
    return (title[:middle] + title[middle + 1] + title[middle] + title[middle + 2 :]).upper()


def catalogue(count: int, planted_share: float, seed: int) -> tuple[list[str], list[str], dict[str, str]]:
    """Item ids and texts (brand, six words from a 20k-word vocabulary, a model code) plus planted near-duplicates, later id -> original id."""
    rng = np.random.default_rng(seed)
    vocabulary = ["".join(rng.choice(LETTERS, size=int(rng.integers(3, 10)))) for _ in range(20_000)]
    brands = [f"brand{b}" for b in range(2_000)]
    words = rng.integers(0, len(vocabulary), (count, 6))
    brand = rng.integers(0, len(brands), count)
    texts = [f"{brands[b]} {' '.join(vocabulary[w] for w in row)} m{i:07d}" for i, (b, row) in enumerate(zip(brand, words, strict=True))]
    ids = [f"i{i}" for i in range(count)]
    originals = rng.choice(count, size=int(count * planted_share), replace=False)
    planted = {f"dup{o}": f"i{o}" for o in originals}
    ids += list(planted)
    texts += [relisted(texts[o]) for o in originals]
    return ids, texts, planted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--planted-share", type=float, default=0.01)
    parser.add_argument("--spark", action="store_true", help="run the Spark banding job on a loopback standalone cluster instead")
    parser.add_argument("--under-load", action="store_true", help="label the figures as measured while others used the CPUs")
    args = parser.parse_args()
    config = QualityConfig()
    ids, texts, planted = catalogue(args.items, args.planted_share, seed=0)
    by_id = dict(zip(ids, texts, strict=True))
    reachable = {}
    for later, earlier in planted.items():
        own, other = duplicates.shingles(by_id[later], config.near_duplicate_shingle), duplicates.shingles(by_id[earlier], config.near_duplicate_shingle)
        if len(own & other) / len(own | other) >= config.near_duplicate_threshold:
            reachable[later] = earlier
    load = os.getloadavg()[0]
    if args.spark:
        with StandaloneCluster(worker_cores=2, worker_memory="6g") as cluster:
            session = start_session(PipelineConfig(executor="spark", spark_master=cluster.master_url, spark_executor_memory="5g"))
            try:
                started = time.perf_counter()
                found = near_duplicates_on_spark(session, ids, texts, config.near_duplicate_threshold, config.near_duplicate_shingle, partitions=8)
                seconds = time.perf_counter() - started
            finally:
                session.stop()
    else:
        started = time.perf_counter()
        found = duplicates.near_duplicates(ids, texts, config.near_duplicate_threshold, config.near_duplicate_shingle)
        seconds = time.perf_counter() - started
    recalled = sum(1 for later, earlier in reachable.items() if found.get(later, ("",))[0] == earlier)
    output = {
        "benchmark": "scaling_items",
        "path": "spark standalone, 1 worker x 2 cores (banding job)" if args.spark else "in-process (numpy MinHash + LSH banding, exact verification)",
        "items": len(ids),
        "mean_text_chars": round(float(np.mean([len(t) for t in texts])), 1),
        "planted_near_duplicates": len(planted),
        "planted_at_or_above_threshold": len(reachable),
        "recall_of_planted": round(recalled / max(len(reachable), 1), 4),
        "reported_near_duplicates": len(found),
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cpus": os.cpu_count(),
        "load_average_at_start": round(load, 2),
        "measured_under_load": args.under_load,
    }
    RESULTS.mkdir(exist_ok=True)
    target = RESULTS / "scaling_items.json"
    runs = json.loads(target.read_text(encoding="utf-8")) if target.exists() else {}
    runs = runs if "runs" in runs else {"benchmark": "scaling_items", "runs": [runs] if runs else []}
    runs["runs"] = [run for run in runs["runs"] if (run["path"], run["items"]) != (output["path"], output["items"])] + [output]
    target.write_text(json.dumps(runs, indent=2), encoding="utf-8")
    print(json.dumps(output, indent=2))


if __name__ == "__main__":
    main()
