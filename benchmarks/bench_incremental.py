"""Incremental benchmark: warm-start SASRec on new events and check that the guard keeps good updates and rolls back bad ones.

Amazon Industrial & Scientific: each user's 3 newest reviews are held back as "new events"; the model is trained
on the rest (knowing only the items seen there), then updated twice from the same saved folder — once with the
new events as they are, once with the trained-on part relabelled by a random bijection of item ids (an id-mapping
bug). The guard judges both on each user's newest event. Writes benchmarks/results/incremental.json; with
--fusion the folder also holds the fusion ranker (MiniLM item text vectors), which each update warm-starts and
judges too, and the results go to benchmarks/results/incremental_fusion.json.

    python benchmarks/bench_incremental.py [--max-train-seconds 180] [--fusion]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from longtail.core.config import LongtailConfig  # noqa: E402
from longtail.data.adapters import load_dataset  # noqa: E402
from longtail.pipeline.incremental import hold_back, train_model_folder, update_model_folder  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
ARTIFACTS = REPO / "out" / "bench" / "incremental"
DATASETS = Path(os.environ.get("LONGTAIL_DATASETS", REPO.parent / "shared" / "datasets"))
HELD_BACK = 3


def relabel_trained_part(new: pl.DataFrame, item_ids: list[str], seed: int) -> pl.DataFrame:
    """Every new event except each user's newest points at the wrong item (a fixed random relabelling)."""
    relabel = dict(zip(item_ids, np.random.default_rng(seed).permutation(item_ids).tolist(), strict=True))
    newest = pl.col("timestamp").rank("ordinal", descending=True).over("user_id") == 1
    return new.with_columns(pl.when(newest).then(pl.col("item_id")).otherwise(pl.col("item_id").replace_strict(relabel)).alias("item_id"))


def main() -> int:
    """Train once, update a copy with clean and with corrupted new events, write both decisions."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-train-seconds", type=float, default=180.0, help="wall-time cap for the initial training")
    parser.add_argument("--fusion", action="store_true", help="also train, update and judge the fusion ranker")
    arguments = parser.parse_args()
    config = LongtailConfig()
    config.recommend.sequential = config.recommend.sequential.model_copy(update={"max_train_seconds": arguments.max_train_seconds})
    data = load_dataset("scientific", DATASETS)
    past, new = hold_back(data.events, HELD_BACK)
    suffix = "_fusion" if arguments.fusion else ""
    base = ARTIFACTS / f"base{suffix}"
    started = time.perf_counter()
    model = train_model_folder(data.items.filter(pl.col("item_id").is_in(past["item_id"].implode())), past, config, base, fusion=arguments.fusion)
    result = {
        "dataset": "scientific",
        "held_back_per_user": HELD_BACK,
        "past_events": past.height,
        "new_events": new.height,
        "fusion": arguments.fusion,
        "initial_training": {
            "seconds": round(time.perf_counter() - started, 1),
            "epochs": len(model.history_),
            "valid_NDCG@10": model.best_valid_,
            "items": model.n_items_,
        },
        "updates": {},
    }
    for name, events in (("clean", new), ("relabelled", relabel_trained_part(new, data.items["item_id"].to_list(), config.seed))):
        folder = ARTIFACTS / f"{name}{suffix}"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(base, folder)
        result["updates"][name] = decision = update_model_folder(folder, events, data.items, config)
        ranker = {k: decision["ranker"][k] for k in ("passed", "old", "new", "seconds")} if "ranker" in decision else None
        print(name, {k: decision[k] for k in ("decision", "old", "new", "seconds")}, ranker, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"incremental{suffix}.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
