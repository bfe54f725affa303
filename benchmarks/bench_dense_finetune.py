"""Dense encoders on Home Depot validation queries: stock MiniLM vs fine-tuned on training judgments (BM25 hard negatives)
vs fine-tuned on synthetic queries from titles only; plus encoding speed (items/s) of the stock and int8 encoders.

Validation queries only (split 70/10/20 by query, seed 42, as bench_search_judged.py); test queries are never read here.
Models are trained once into out/models/<name> and loaded afterwards. Writes benchmarks/results/dense_finetune.json.
Usage: bench_dense_finetune.py [run ...] with runs among stock, judgments-full, judgments-lora, synthetic-full, synthetic-inbatch
(in-batch negatives only), speed
(speed: items/s of the stock and int8 encoders on 5,000 sampled titles, per batch size, no cache; run it at normal priority).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from longtail.core.config import EncodeConfig, LongtailConfig
from longtail.data.loaders import load_table
from longtail.data.query_split import split_by_query
from longtail.data.schema import ITEMS
from longtail.encode.factory import build_encoder
from longtail.evaluate.search_metrics import load_judgments
from longtail.pipeline.dense_finetune import ValidationScorer, train_or_load_finetuned

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "out"
RESULT = HERE / "results" / "dense_finetune.json"
DATASETS = Path(os.environ.get("LONGTAIL_DATASETS", HERE.parents[1] / "shared" / "datasets"))
SEED = 42
# Fine-tuning settings chosen for a 2-core machine: short inputs (titles are <= 64 tokens, median 19), one pass, a wall budget.
FINETUNE = {
    "epochs": 1,
    "batch_size": 32,
    "learning_rate": 3e-5,
    "max_seq_length": 48,
    "eval_steps": 60,
    "early_stopping_patience": 3,
    "validation_fraction": 0.02,
    "max_minutes": 12,
}
SPEED_TITLES = 5000
SPEED_BATCHES = (32,)
RUNS = {
    "judgments-full": ("judgments", {"mode": "full"}),
    "judgments-lora": ("judgments", {"mode": "lora", "learning_rate": 5e-4}),
    "synthetic-full": ("synthetic", {"mode": "full"}),
    "synthetic-inbatch": ("synthetic", {"mode": "full", "max_minutes": 7}),
}


def encoder_speed(texts: list[str]) -> dict[str, dict[str, float]]:
    """Items per second of the stock and the int8 MiniLM per batch size (length-sorted batches, no cache), after a warm-up batch."""
    speeds: dict[str, dict[str, float]] = {}
    for name in ("minilm", "minilm-int8"):
        encoder = build_encoder(EncodeConfig.model_validate({"encoder": name, "cache_dir": None}))
        encoder.encode(texts[:64])
        for batch_size in SPEED_BATCHES:
            started = time.perf_counter()
            encoder.encode(texts, batch_size)
            speeds.setdefault(name, {})[f"batch_{batch_size}"] = len(texts) / (time.perf_counter() - started)
    return speeds


def main(names: list[str]) -> int:
    folder = DATASETS / "homedepot-search"
    items = load_table(folder / "items.csv", ITEMS).select("item_id", "title")
    parts = split_by_query(load_judgments(folder / "judgments.csv"), seed=SEED)
    validation = parts["validation"]
    load = os.getloadavg()
    results = json.loads(RESULT.read_text(encoding="utf-8")) if RESULT.is_file() else {}
    # All validation queries for the reported figures (training early-stops on a 400-query subset of them).
    scorer = ValidationScorer(items, validation, max_queries=None, seed=SEED)
    for name in names:
        started = time.perf_counter()
        if name == "speed":
            sample = items.sample(SPEED_TITLES, seed=SEED)["title"].to_list()
            speeds = encoder_speed(sample)
            results["speed"] = {
                "titles": SPEED_TITLES,
                "items_per_s": speeds,
                "load_before": load,
                "load_after": os.getloadavg(),
                "note": "measured under load: 2 cores shared with other jobs (load averages above)",
            }
            print("speed", speeds, flush=True)
            RESULT.write_text(json.dumps(results, indent=2), encoding="utf-8")
            continue
        if name == "stock":
            encoder = build_encoder(EncodeConfig(cache_dir=None))
            extra: dict[str, object] = {}
        else:
            source, settings = RUNS[name]
            config = LongtailConfig.model_validate({"seed": SEED, "finetune": {**FINETUNE, **settings}, "encode": {"cache_dir": None}})
            encoder = train_or_load_finetuned(
                items, OUT / "models" / name, config, source, parts["train"], validation, hard_negatives=not name.endswith("inbatch")
            )
            extra = {"model_path": f"out/models/{name}", "finetune_report": json.loads((OUT / "models" / name / "finetune_report.json").read_text())}
        metrics = scorer.score_encoder(encoder)
        results[name] = {
            "split": "validation",
            "queries": len(scorer.query_ids),
            "metrics": metrics,
            "seconds": time.perf_counter() - started,
            "load_at_start": load,
            "note": "measured under load (2 shared cores)",
            **extra,
        }
        print(name, metrics, flush=True)
        RESULT.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["stock", "judgments-full", "synthetic-full"]))
