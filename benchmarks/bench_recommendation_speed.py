"""Time to quality of the sequential model: the old and the new training recipe under the same training-time budget.

Each recipe trains SASRec on one dataset for at most `--budget` seconds of training (validation not counted), stopping
early on a validation sample; the best epoch is scored on the full test set (leave-one-out, full ranking). Writes
benchmarks/results/training-speed.json (one entry per dataset and recipe, with the NDCG@10-vs-seconds curve on the
validation sample) and training-speed-<dataset>.html with both curves; the trained models are saved under
out/bench/training-speed/ so `SASRec.load` re-scores them.

    nice -n 15 python benchmarks/bench_recommendation_speed.py --dataset beauty --budget 600 --recipes new old
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from bench_recommendation import DATASETS, REPO, PeakMemory  # noqa: E402

from longtail.core.config import RecommendConfig, SequentialConfig  # noqa: E402
from longtail.data.adapters import load_dataset  # noqa: E402
from longtail.data.splits import leave_one_out  # noqa: E402
from longtail.evaluate.harness import Evaluation, evaluate_split, make_validator  # noqa: E402
from longtail.evaluate.report import report_context  # noqa: E402
from longtail.models.base import TrainData  # noqa: E402
from longtail.models.sequential import SASRec  # noqa: E402
from longtail.reporting.charts import xy_chart  # noqa: E402
from longtail.reporting.writers import write_report_pair  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "training-speed.json"
ARTIFACTS = REPO / "out" / "bench" / "training-speed"
VALID_USERS = 4000  # both recipes stop early on the same validation sample, so their curves are comparable
log = logging.getLogger("bench")


def conditions() -> str:
    """'measured under load' when other work shared the CPUs at the start (1-minute load average above half the cores)."""
    load = os.getloadavg()[0]
    return f"measured under load (load average {load:.1f} on {os.cpu_count()} cores)" if load > (os.cpu_count() or 1) / 2 else "idle machine"


def run_recipe(dataset: str, recipe: str, budget: float, seed: int, artifacts: Path) -> tuple[dict, Evaluation]:
    """Train one recipe under the budget, score its best epoch on the test set, save the model; the entry and its evaluation."""
    data = load_dataset(dataset, DATASETS)
    split = leave_one_out(data.items, data.events)
    note = conditions()
    sequential = SequentialConfig(recipe=recipe, max_train_seconds=budget, valid_users=VALID_USERS)
    config = RecommendConfig(sequential=sequential)
    model = SASRec(sequential)
    with PeakMemory() as memory:
        started, cpu_started = time.perf_counter(), time.process_time()
        model.fit(TrainData(split.n_items, split.train, split.valid, seed=seed), make_validator(split, config, seed=seed))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    evaluation = evaluate_split(model.score, split, "test", config)
    model.save(artifacts / f"{dataset}-{recipe}")
    history = model.history_
    entry = {
        "dataset": dataset,
        "recipe": recipe,
        "seed": seed,
        "protocol": "loo-full",
        "budget_seconds": budget,
        "train_seconds": round(history[-1]["seconds"], 1),
        "wall_seconds": round(wall, 1),
        # CPU time this process got (training and validation): on a shared box it says how much of the budget was compute
        "cpu_seconds": round(cpu, 1),
        "epochs": len(history),
        "best_epoch": max(history, key=lambda r: r["valid"])["epoch"],
        "metrics": {name: evaluation.metrics[name] for name in ("HR@10", "NDCG@10")},
        "curve": [[round(r["seconds"], 1), round(r["valid"], 5)] for r in history],
        "curve_metric": f"NDCG@10 on {VALID_USERS} random validation users",
        "peak_rss_mb": round(memory.peak_mb, 1),
        "config": sequential.model_dump(),
        "conditions": note,
        "model_folder": os.path.relpath(artifacts / f"{dataset}-{recipe}", REPO),
    }
    log.info(
        "%s %s: NDCG@10 %.4f HR@10 %.4f after %.0fs of training",
        dataset,
        recipe,
        entry["metrics"]["NDCG@10"],
        entry["metrics"]["HR@10"],
        entry["train_seconds"],
    )
    return entry, evaluation


def save_entries(entries: list[dict], results: Path) -> list[dict]:
    """Merge into the results file, replacing earlier entries of the same dataset, recipe and budget; the merged list."""
    existing = json.loads(results.read_text()) if results.is_file() else []
    fresh = {(e["dataset"], e["recipe"], e["budget_seconds"]) for e in entries}
    merged = [e for e in existing if (e["dataset"], e["recipe"], e["budget_seconds"]) not in fresh] + entries
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(merged, indent=1))
    return merged


def write_html(dataset: str, entries: list[dict], evaluations: dict[str, Evaluation], results: Path) -> None:
    """The evaluation page of the recipes' best epochs, with both NDCG@10-vs-training-seconds curves."""
    # "curve" here is over seconds, not the long-tail knob the evaluation page charts under that key: left out
    runs = [
        {
            **{k: v for k, v in e.items() if k != "curve"},
            "model": f"sasrec ({e['recipe']} recipe)",
            "segments": evaluations[e["recipe"]].segments,
            "metrics": evaluations[e["recipe"]].metrics,
        }
        for e in entries
    ]
    context = report_context(
        f"Time to quality on {dataset}",
        runs,
        {r["model"]: evaluations[r["recipe"]] for r in runs},
        RecommendConfig(),
        notes=[f"{e['recipe']}: {e['conditions']}, budget {e['budget_seconds']:.0f}s" for e in entries],
    )
    curves = {f"{e['recipe']} recipe": [(x, y) for x, y in e["curve"]] for e in entries}
    context["charts"] = [("NDCG@10 vs training seconds", xy_chart(curves, entries[0]["curve_metric"], "training seconds", "NDCG@10"))]
    write_report_pair(
        results.with_name(f"training-speed-{dataset}.json"), results.with_name(f"training-speed-{dataset}.html"), runs, "evaluation.html", context
    )


def main() -> int:
    """Run each recipe in turn on the dataset and write the results and the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--recipes", nargs="+", default=["new", "old"], choices=["new", "old"])
    parser.add_argument("--budget", type=float, default=600.0, help="training seconds per recipe (validation not counted)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--artifacts", type=Path, default=ARTIFACTS)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    entries, evaluations = [], {}
    for recipe in arguments.recipes:
        entry, evaluations[recipe] = run_recipe(arguments.dataset, recipe, arguments.budget, arguments.seed, arguments.artifacts)
        entries.append(entry)
        merged = save_entries(entries, arguments.results)
    # the page shows every recipe measured on this dataset and budget; those from earlier runs are re-scored from their saved model
    shown = [e for e in merged if e["dataset"] == arguments.dataset and e["budget_seconds"] == arguments.budget]
    earlier = [e for e in shown if e["recipe"] not in evaluations]
    if earlier:
        data = load_dataset(arguments.dataset, DATASETS)
        split = leave_one_out(data.items, data.events)
        for entry in earlier:
            evaluations[entry["recipe"]] = evaluate_split(SASRec.load(REPO / entry["model_folder"]).score, split, "test", RecommendConfig())
    write_html(arguments.dataset, shown, evaluations, arguments.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
