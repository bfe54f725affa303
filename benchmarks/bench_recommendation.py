"""Recommendation benchmark on the public Amazon sets: baselines (default and tuned), SASRec and fusion over seeds,
the long-tail curve, text vs random init.

Protocol everywhere: leave-one-out, full ranking over all items, history excluded. SASRec and the fusion ranker
train to convergence on validation once per seed, each into its model folder under out/bench/recommendation/
<dataset>/seed-<seed>; the reported figure is that folder re-scored from disk (`longtail evaluate --model DIR` gives
it again). EASE, item kNN and ALS are reported at their defaults and at their best validation setting (the grid is
recorded); the long-tail knob's weight is chosen on validation. Writes benchmarks/results/recommendation.json (one
entry per run, each with its "seed"), recommendation-summary.json (mean +- sd over seeds, bootstrap intervals over
users, fusion minus SASRec) and one HTML report per dataset.

    nice -n 15 python benchmarks/bench_recommendation.py --datasets beauty toys sports --seeds 42 43 44
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import psutil  # noqa: E402

from longtail.core.config import LongtailConfig, RecommendConfig, load_config  # noqa: E402
from longtail.data.adapters import load_dataset  # noqa: E402
from longtail.data.splits import Split, leave_one_out  # noqa: E402
from longtail.encode.factory import build_encoder  # noqa: E402
from longtail.encode.item_text import encode_items  # noqa: E402
from longtail.evaluate.harness import Evaluation, evaluate_split, make_validator  # noqa: E402
from longtail.evaluate.protocol import BASELINE_GRIDS, choose_knob, compare_over_seeds, summarise_seeds, tune_on_validation  # noqa: E402
from longtail.evaluate.report import comparisons, write_report  # noqa: E402
from longtail.evaluate.tradeoff import tradeoff_curve  # noqa: E402
from longtail.models.base import Recommender, TrainData, make_recommender  # noqa: E402
from longtail.models.sequential import SASRec  # noqa: E402
from longtail.models.sequential.model import WEIGHTS_FILE  # noqa: E402
from longtail.pipeline.model_folder import load_model_folder  # noqa: E402
from longtail.pipeline.protocol import reported_runs  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results" / "recommendation.json"
SUMMARY = HERE / "results" / "recommendation-summary.json"
KNOB_WEIGHTS = [0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0]
ARTIFACTS = REPO / "out" / "bench" / "recommendation"
DATASETS = Path(os.environ.get("LONGTAIL_DATASETS", REPO.parent / "shared" / "datasets"))
BASELINES = ("popularity", "itemknn", "als", "ease")
log = logging.getLogger("bench")


class PeakMemory:
    """Samples this process's resident memory in a thread; `peak_mb` is the highest value seen inside the block."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()

    def _measure(self) -> None:
        self.peak_mb = max(self.peak_mb, psutil.Process().memory_info().rss / 2**20)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._measure()

    def __enter__(self) -> PeakMemory:
        self._measure()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._measure()


def run_record(dataset: str, model: str, seed: int, evaluation: Evaluation, train_seconds: float, peak_mb: float, **extra: object) -> dict:
    """One run in the results file's format."""
    return {
        "dataset": dataset,
        "model": model,
        "seed": seed,
        "protocol": "loo-full",
        **evaluation.summary(),
        "train_seconds": round(train_seconds, 2),
        "peak_rss_mb": round(peak_mb, 1),
        **extra,
    }


def save_runs(runs: list[dict], results: Path) -> None:
    """Merge into the results file, replacing earlier runs of the same dataset, model and seed."""
    existing = json.loads(results.read_text()) if results.is_file() else []
    fresh = {(r["dataset"], r["model"], r.get("seed")) for r in runs}
    merged = [r for r in existing if (r["dataset"], r["model"], r.get("seed")) not in fresh] + runs
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(merged, indent=1, allow_nan=True))


def fit_measured(model: Recommender, data: TrainData, validate=None) -> tuple[Recommender, float, float]:
    """Fit while timing it and sampling peak memory."""
    with PeakMemory() as memory:
        started = time.perf_counter()
        model.fit(data, validate)
        seconds = time.perf_counter() - started
    return model, seconds, memory.peak_mb


def sequential_model(name: str, split: Split, config: RecommendConfig, vectors: np.ndarray | None, artifacts: Path) -> tuple[SASRec, dict]:
    """Train a SASRec variant, or load it (with its recorded cost) if this dataset and config trained it before."""
    path = artifacts / name
    meta_path = artifacts / f"{name}.json"
    settings = config.sequential.model_dump()
    # the wall-time cap is a budget, not a model setting: a model trained under another cap is still this model

    def same(saved: dict) -> bool:
        return {**saved, "max_train_seconds": None} == {**settings, "max_train_seconds": None}

    if (path / WEIGHTS_FILE).is_file() and meta_path.is_file() and same(json.loads(meta_path.read_text())["config"]):
        log.info("%s: loading the model trained earlier from %s", name, path)
        return SASRec.load(path), json.loads(meta_path.read_text())
    data = TrainData(split.n_items, split.train, split.valid, vectors)
    model, seconds, peak = fit_measured(SASRec(config.sequential), data, make_validator(split, config))
    model.save(path)
    meta = {
        "config": settings,
        "train_seconds": seconds,
        "peak_rss_mb": peak,
        "epochs": len(model.history_),
        "best_valid_ndcg10": model.best_valid_,
        "history": model.history_,
    }
    meta_path.write_text(json.dumps(meta, indent=1))
    return model, meta


def bench_dataset(dataset: str, config: LongtailConfig, stages: set[str], seeds: list[int], results: Path, artifacts: Path, users: int | None = None) -> None:
    """Every requested stage on one dataset, then the dataset's report, seed summaries and bootstrap comparisons."""
    data = load_dataset(dataset, DATASETS)
    events = data.events
    if users is not None:  # a smoke test of the protocol on a few users: never a reported figure
        events = events.filter(events["user_id"].is_in(events["user_id"].unique().sort().head(users).implode()))
    split = leave_one_out(data.items, events)
    settings = config.recommend
    log.info("%s: %d users, %d items, %d training interactions", dataset, len(split.user_ids), split.n_items, sum(map(len, split.train)))
    vectors = encode_items(split.item_ids, data.items, build_encoder(config.encode))
    evaluations: dict[str, Evaluation] = {}
    runs: list[dict] = []
    fitted: dict[str, Recommender] = {}

    def evaluate(name: str, model: Recommender, seconds: float, peak: float, **extra: object) -> None:
        evaluations[name] = evaluate_split(model.score, split, "test", settings)
        runs.append(run_record(dataset, name, seeds[0], evaluations[name], seconds, peak, **extra))
        log.info(
            "%s %s: HR@10 %.4f NDCG@10 %.4f (train %.0fs)", dataset, name, evaluations[name].metrics["HR@10"], evaluations[name].metrics["NDCG@10"], seconds
        )
        save_runs(runs, results)

    train = TrainData(split.n_items, split.train, split.valid, vectors, seeds[0])
    if "baselines" in stages:
        for name in (*BASELINES, "content"):
            model, seconds, peak = fit_measured(make_recommender(name, settings), train)
            fitted[name] = model
            evaluate(name, model, seconds, peak, settings="defaults")
            if name in BASELINE_GRIDS:
                with PeakMemory() as memory:
                    started = time.perf_counter()
                    tuned, chosen, grid = tune_on_validation(name, BASELINE_GRIDS[name], train, split, settings)
                    seconds = time.perf_counter() - started
                # the fusion ranker's sources are the tuned baselines too
                settings = settings.model_copy(update=chosen)
                fitted[name] = tuned
                evaluate(f"{name}-tuned", tuned, seconds, memory.peak_mb, settings=chosen, grid=grid, grid_seconds=round(seconds, 1))
    seeded: dict[tuple[str, int], Evaluation] = {}
    if {"sasrec", "fusion"} & stages:
        tuned_config = config.model_copy(update={"recommend": settings})
        fusion = "fusion" in stages
        for seed in seeds:
            with PeakMemory() as memory:
                seed_runs, seed_evaluations = reported_runs(
                    data.items, events, tuned_config, dataset, [seed], artifacts / dataset, lambda ids: vectors, fusion=fusion
                )
            seeded.update(seed_evaluations)
            sequential = tuned_config.recommend.sequential
            for run in seed_runs:
                # the anchor a figure is compared with must share its loss: say which one trained it
                runs.append({**run, "peak_rss_mb": round(memory.peak_mb, 1), "recipe": sequential.recipe, "loss": sequential.loss})
                log.info(
                    "%s %s seed %d: NDCG@10 %.4f (%s after %d epochs)", dataset, run["model"], seed, run["metrics"]["NDCG@10"], run["stopped"], run["epochs"]
                )
            save_runs(runs, results)
        for name in {name for name, _ in seeded}:
            evaluations[name] = seeded[(name, seeds[0])]
    if "longtail" in stages and seeded:
        served = load_model_folder(artifacts / dataset / f"seed-{seeds[0]}")
        base = "fusion" if "fusion" in evaluations else "sasrec"
        scorer = served.recommender.score if base == "fusion" else served.sequential.score
        weight = choose_knob(tradeoff_curve(scorer, split, settings, KNOB_WEIGHTS, stage="valid"))
        curve = tradeoff_curve(scorer, split, settings, KNOB_WEIGHTS)
        chosen = next(point for point in curve if point["weight"] == weight)
        runs.append(
            {
                "dataset": dataset,
                "model": f"{base}+longtail-curve",
                "protocol": "loo-full",
                "seed": seeds[0],
                "curve": curve,
                "chosen_weight": weight,
                "chosen_on": "validation",
                "metrics": chosen["metrics"],
                "segments": {},
                "train_seconds": 0.0,
            }
        )
        save_runs(runs, results)
    if "textinit" in stages:
        for mode in ("none", "project", "finetune"):
            variant = settings.model_copy(update={"sequential": settings.sequential.model_copy(update={"text_init": mode})})
            cache_name = f"{dataset}-sasrec" if mode == "none" else f"{dataset}-sasrec-text-{mode}"
            model, meta = sequential_model(cache_name, split, variant, vectors, artifacts)
            evaluate(f"sasrec-text-{mode}", model, meta["train_seconds"], meta["peak_rss_mb"], epochs=meta["epochs"], text_init=mode)
    if seeded:
        seed_runs = [run for run in runs if (run["model"], run.get("seed")) in seeded]
        summaries = summarise_seeds(seed_runs, seeded, settings.bootstrap_samples)
        if "fusion" in evaluations:
            fusion_minus_sasrec = compare_over_seeds(
                [seeded[("fusion", s)] for s in seeds], [seeded[("sasrec", s)] for s in seeds], samples=settings.bootstrap_samples
            )
            next(s for s in summaries if s["model"] == "fusion")["minus_sasrec_NDCG@10"] = fusion_minus_sasrec
        save_summaries(summaries, results.with_name(SUMMARY.name))
    best = max((n for n in evaluations if n in ("sasrec", "fusion")), key=lambda n: evaluations[n].metrics["NDCG@10"], default=None)
    if best:
        for run in runs:
            if run["model"] == best and run.get("seed") == seeds[0]:
                run["compared_with"] = comparisons(evaluations, best, settings)
        save_runs(runs, results)
    report_runs = [run for run in runs if run["model"] in evaluations and run.get("seed") == seeds[0]]
    write_report(report_runs, evaluations, results.parent / f"recommendation-{dataset}.html", dataset, settings)


def save_summaries(summaries: list[dict], path: Path) -> None:
    """Merge into the summary file, replacing earlier summaries of the same dataset and model."""
    existing = json.loads(path.read_text()) if path.is_file() else []
    fresh = {(s["dataset"], s["model"]) for s in summaries}
    merged = [s for s in existing if (s["dataset"], s["model"]) not in fresh] + summaries
    path.write_text(json.dumps(merged, indent=1, allow_nan=True))


def main() -> int:
    """Parse arguments, run the datasets in order (most important first)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["beauty", "scientific", "toys", "sports"])
    parser.add_argument("--stages", nargs="+", default=["baselines", "sasrec", "fusion", "longtail", "textinit"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44], help="one SASRec and fusion run (and model folder) per seed")
    parser.add_argument("--recipe", choices=["old", "new"], default=None, help="the sequential training recipe (default: the config's)")
    parser.add_argument("--config", type=Path, default=None, help="YAML config; defaults when omitted")
    parser.add_argument("--users", type=int, default=None, help="only the first N users: a smoke test of the protocol, never a reported figure")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the runs file to merge into")
    parser.add_argument("--artifacts", type=Path, default=ARTIFACTS, help="where the model folders are written")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    for dataset in arguments.datasets:
        config = load_config(arguments.config)
        if arguments.recipe is not None:
            # a named recipe fills its settings over the defaults, so it is validated afresh rather than copied
            sequential = config.recommend.sequential
            config.recommend.sequential = type(sequential).model_validate({**sequential.model_dump(exclude_unset=True), "recipe": arguments.recipe})
        stages = set(arguments.stages) - ({"textinit"} if dataset != "scientific" else set())
        bench_dataset(dataset, config, stages, arguments.seeds, arguments.results, arguments.artifacts, arguments.users)
    return 0


if __name__ == "__main__":
    sys.exit(main())
