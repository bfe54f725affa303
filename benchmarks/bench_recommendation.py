"""Recommendation benchmark on the public Amazon sets: baselines, SASRec, fusion, long-tail curve, text vs random init.

Protocol everywhere: leave-one-out, full ranking over all items, history excluded. Writes
benchmarks/results/recommendation.json (a list of runs) and one HTML report per dataset. Trained sequential
models are kept under out/bench/recommendation/ so a re-run evaluates them again instead of retraining
(their recorded training time and memory travel with them).

    python benchmarks/bench_recommendation.py --datasets beauty toys sports scientific
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

from longtail.core.config import LongtailConfig, RecommendConfig  # noqa: E402
from longtail.data.adapters import load_dataset  # noqa: E402
from longtail.data.splits import Split, leave_one_out  # noqa: E402
from longtail.encode.factory import build_encoder  # noqa: E402
from longtail.encode.item_text import encode_items  # noqa: E402
from longtail.evaluate.harness import Evaluation, evaluate_split, make_validator  # noqa: E402
from longtail.evaluate.report import comparisons, write_report  # noqa: E402
from longtail.evaluate.tradeoff import tradeoff_curve  # noqa: E402
from longtail.models.base import Recommender, TrainData, make_recommender  # noqa: E402
from longtail.models.fusion import FusionRanker  # noqa: E402
from longtail.models.sequential import SASRec  # noqa: E402
from longtail.models.sequential.model import WEIGHTS_FILE  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results" / "recommendation.json"
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


def run_record(dataset: str, model: str, evaluation: Evaluation, train_seconds: float, peak_mb: float, **extra: object) -> dict:
    """One run in the results file's format."""
    return {"dataset": dataset, "model": model, "protocol": "loo-full", **evaluation.summary(),
            "train_seconds": round(train_seconds, 2), "peak_rss_mb": round(peak_mb, 1), **extra}


def save_runs(runs: list[dict], results: Path) -> None:
    """Merge into the results file, replacing earlier runs of the same dataset and model."""
    existing = json.loads(results.read_text()) if results.is_file() else []
    fresh = {(r["dataset"], r["model"]) for r in runs}
    merged = [r for r in existing if (r["dataset"], r["model"]) not in fresh] + runs
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
    meta = {"config": settings, "train_seconds": seconds, "peak_rss_mb": peak, "epochs": len(model.history_),
            "best_valid_ndcg10": model.best_valid_, "history": model.history_}
    meta_path.write_text(json.dumps(meta, indent=1))
    return model, meta


def bench_dataset(dataset: str, config: LongtailConfig, stages: set[str], results: Path, artifacts: Path) -> None:
    """Every requested stage on one dataset, then the dataset's report and bootstrap comparisons."""
    data = load_dataset(dataset, DATASETS)
    split = leave_one_out(data.items, data.events)
    settings = config.recommend
    log.info("%s: %d users, %d items, %d training interactions", dataset, len(split.user_ids), split.n_items, sum(map(len, split.train)))
    vectors = encode_items(split.item_ids, data.items, build_encoder(config.encode))
    evaluations: dict[str, Evaluation] = {}
    runs: list[dict] = []
    fitted: dict[str, Recommender] = {}

    def evaluate(name: str, model: Recommender, seconds: float, peak: float, **extra: object) -> None:
        evaluations[name] = evaluate_split(model.score, split, "test", settings)
        runs.append(run_record(dataset, name, evaluations[name], seconds, peak, **extra))
        log.info(
            "%s %s: HR@10 %.4f NDCG@10 %.4f (train %.0fs)", dataset, name, evaluations[name].metrics["HR@10"], evaluations[name].metrics["NDCG@10"], seconds
        )
        save_runs(runs, results)

    train = TrainData(split.n_items, split.train, split.valid, vectors, config.seed)
    if "sasrec" in stages:
        model, meta = sequential_model(f"{dataset}-sasrec", split, settings, vectors, artifacts)
        fitted["sasrec"] = model
        evaluate("sasrec", model, meta["train_seconds"], meta["peak_rss_mb"], epochs=meta["epochs"], config=meta["config"])
    if "baselines" in stages:
        for name in (*BASELINES, "content"):
            model, seconds, peak = fit_measured(make_recommender(name, settings), train)
            fitted[name] = model
            evaluate(name, model, seconds, peak)
    if "fusion" in stages and {"sasrec", "ease", "itemknn", "content", "popularity"} <= set(fitted):
        sources = {name: fitted[name] for name in ("sasrec", "ease", "itemknn", "content", "popularity")}
        ranker, seconds, peak = fit_measured(FusionRanker(sources, settings, data.items, split.item_ids, config.seed, sources_fitted=True), train)
        fitted["fusion"] = ranker
        evaluate("fusion", ranker, seconds, peak, sources=list(sources), feature_importance=ranker.importance(),
                 candidate_recall_valid=ranker.candidate_recall_)
    if "longtail" in stages and {"fusion", "sasrec"} & set(fitted):
        base = "fusion" if "fusion" in fitted else "sasrec"
        curve = tradeoff_curve(fitted[base].score, split, settings, weights=[0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0])
        runs.append({"dataset": dataset, "model": f"{base}+longtail-curve", "protocol": "loo-full", "curve": curve, "metrics": curve[0]["metrics"],
                     "segments": {}, "train_seconds": 0.0})
        save_runs(runs, results)
    if "textinit" in stages:
        for mode in ("none", "project", "finetune"):
            variant = settings.model_copy(update={"sequential": settings.sequential.model_copy(update={"text_init": mode})})
            cache_name = f"{dataset}-sasrec" if mode == "none" else f"{dataset}-sasrec-text-{mode}"
            model, meta = sequential_model(cache_name, split, variant, vectors, artifacts)
            evaluate(f"sasrec-text-{mode}", model, meta["train_seconds"], meta["peak_rss_mb"], epochs=meta["epochs"], text_init=mode)
    best = max((n for n in evaluations if n in ("sasrec", "fusion")), key=lambda n: evaluations[n].metrics["NDCG@10"], default=None)
    if best:
        for run in runs:
            if run["model"] == best:
                run["compared_with"] = comparisons(evaluations, best, settings)
        save_runs(runs, results)
    write_report(runs, evaluations, results.parent / f"recommendation-{dataset}.html", dataset, settings)


def main() -> int:
    """Parse arguments, run the datasets in order (most important first)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["beauty", "scientific", "toys", "sports"])
    parser.add_argument("--stages", nargs="+", default=["sasrec", "baselines", "fusion", "longtail", "textinit"])
    parser.add_argument("--max-train-seconds", type=float, default=None, help="wall-time cap for each sequential model")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the runs file to merge into")
    parser.add_argument("--artifacts", type=Path, default=ARTIFACTS, help="where trained sequential models are kept")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    for dataset in arguments.datasets:
        config = LongtailConfig()
        sequential = config.recommend.sequential.model_copy(update={"max_train_seconds": arguments.max_train_seconds})
        config.recommend.sequential = sequential
        stages = set(arguments.stages) - ({"textinit"} if dataset != "scientific" else set())
        bench_dataset(dataset, config, stages, arguments.results, arguments.artifacts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
