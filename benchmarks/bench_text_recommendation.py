"""Text-aware sequential recommenders against ID-only SASRec on the inductive new-item split (issue 13).

Per dataset and seed: leave-one-out, then a random 10% of items held out of every model input (kept as test
targets); ID-only SASRec, the content-only baseline (text similarity to the user's last items) and the text-aware
models are trained in the same run and scored by full ranking, overall and on tail items, cold users and new
items, with paired bootstrap CIs (text model minus SASRec; on new items, minus the content baseline). The
transfer stage pre-trains the text-only adaptor model on Beauty + Toys and fine-tunes it on Scientific, against
the same model trained on Scientific alone for the same wall time.

Writes benchmarks/results/text-recommendation.json and text-recommendation-<dataset>.html, rewritten after every
model so an interrupted run keeps what it finished. Item text vectors come from the `encode` settings through the
embedding cache, so each text is encoded once across runs (and shared with the search index).

    python benchmarks/bench_text_recommendation.py --datasets beauty scientific --seeds 3
    python benchmarks/bench_text_recommendation.py --datasets scientific --seeds 1 --max-train-seconds 120 --label "1 seed, capped, under load"
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

import numpy as np  # noqa: E402
from bench_recommendation import PeakMemory, fit_measured  # noqa: E402

from longtail.core.config import LongtailConfig, RecommendConfig  # noqa: E402
from longtail.data.adapters import load_dataset  # noqa: E402
from longtail.data.splits import Split, hold_out_new_items, leave_one_out  # noqa: E402
from longtail.encode.factory import build_encoder  # noqa: E402
from longtail.encode.item_text import encode_items  # noqa: E402
from longtail.evaluate.harness import Evaluation, evaluate_split, make_validator  # noqa: E402
from longtail.evaluate.report import report_context  # noqa: E402
from longtail.evaluate.significance import paired_bootstrap  # noqa: E402
from longtail.models.base import Recommender, TrainData, make_recommender  # noqa: E402
from longtail.models.sequential import TextAdaptorSASRec  # noqa: E402
from longtail.reporting.writers import write_report_pair  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "text-recommendation.json"
DATASETS = Path(os.environ.get("LONGTAIL_DATASETS", HERE.parent.parent / "shared" / "datasets"))
ID_ONLY, CONTENT = "sasrec", "content"
TEXT_MODELS = ("sasrec-adaptor", "sasrec-dual-view", "sasrec-tail-blend")
# (segment, metric) pairs each text model is compared on; new items against the content baseline, the rest against SASRec
AGAINST_ID_ONLY = (("all", "NDCG@10"), ("tail", "NDCG@10"), ("cold", "NDCG@10"))
AGAINST_CONTENT = (("new_items", "HR@10"),)
PRETRAIN_SETS = ("beauty", "toys")
log = logging.getLogger("bench")


def inductive_split(dataset: str, seed: int, share: float) -> tuple[Split, np.ndarray]:
    """Leave-one-out with `share` of the items held out as new items, and every item's text vector (cached)."""
    data = load_dataset(dataset, DATASETS)
    split = hold_out_new_items(leave_one_out(data.items, data.events), share, seed)
    vectors = encode_items(split.item_ids, data.items, build_encoder(LongtailConfig().encode))
    return split, vectors


def record(dataset: str, model: str, seed: int, evaluation: Evaluation, seconds: float, peak_mb: float, **extra: object) -> dict:
    """One run as the issue asks: dataset, model, uses_text, seed, metrics, segments (tail, cold, new_items, ...), cost."""
    return {
        "dataset": dataset,
        "model": model,
        "uses_text": model != ID_ONLY,
        "seed": seed,
        "protocol": "loo-full + new items",
        "metrics": evaluation.metrics,
        "segments": evaluation.segments,
        "train_seconds": round(seconds, 2),
        "peak_rss_mb": round(peak_mb, 1),
        **extra,
    }


def compare(evaluations: dict[str, Evaluation], seed: int, samples: int) -> dict[str, dict[str, dict]]:
    """Paired bootstrap per text model (same seed, same users): minus SASRec overall / tail / cold, minus content on new items."""
    rows: dict[str, dict[str, dict]] = {}
    for name, evaluation in evaluations.items():
        if name in (ID_ONLY, CONTENT):
            continue
        row = {}
        for baseline, pairs in ((ID_ONLY, AGAINST_ID_ONLY), (CONTENT, AGAINST_CONTENT)):
            if baseline not in evaluations:
                continue
            for segment, metric in pairs:
                ours, theirs = evaluation.per_user[segment][metric], evaluations[baseline].per_user[segment][metric]
                result = paired_bootstrap(ours, theirs, samples, seed)
                base_mean = float(np.nanmean(theirs)) if np.any(~np.isnan(theirs)) else float("nan")
                result["ratio"] = float(np.nanmean(ours)) / base_mean if base_mean > 0 else float("nan")
                result["baseline"] = baseline
                row[f"{segment}/{metric}"] = result
        if row:
            rows[f"{name} (seed {seed})"] = row
    return rows


def write(result: dict, dataset: str, evaluations: dict[str, Evaluation], config: RecommendConfig, path: Path) -> None:
    """The results JSON (every dataset so far) and this dataset's HTML page."""
    runs = [{**run, "model": f"{run['model']} (seed {run['seed']})"} for run in result["runs"] if run["dataset"] == dataset]
    rows = {name: row for name, row in result["comparisons"].items() if name.startswith(f"{dataset}/")}
    metrics = [f"{s}/{m}" for s, m in AGAINST_ID_ONLY + AGAINST_CONTENT]
    complete = {name.split("/", 1)[1]: row for name, row in rows.items() if set(metrics) <= set(row)}
    compared = (
        {
            "heading": "Paired bootstrap (95% CI over users): each text model minus SASRec (ID only); new_items/HR@10 minus the content baseline",
            "rows": complete,
            "metrics": metrics,
        }
        if complete
        else None
    )
    notes = [
        f"Run conditions (latest run): {result['label']}; each run's own are in the JSON.",
        f"Split: leave-one-out, {result['new_item_share']:.0%} of items held out as new items.",
    ]
    context = report_context(f"text-aware models, {dataset}", runs, evaluations, config, "leave-one-out + inductive new items", compared, notes)
    context["segment_names"] = ("head", "torso", "tail", "new_items", "cold", "active")
    write_report_pair(path, path.with_name(f"{path.stem}-{dataset}.html"), result, "evaluation.html", context)


def pretrained_adaptor(config: RecommendConfig, seed: int, seconds: float) -> tuple[TextAdaptorSASRec, float, float]:
    """The text-only adaptor model trained on Beauty + Toys training histories (catalogues side by side), for `seconds`."""
    histories: list[np.ndarray] = []
    vectors = []
    offset = 0
    for dataset in PRETRAIN_SETS:
        split, text = inductive_split(dataset, seed, 0.1)
        histories += [history + offset for history in split.train]
        vectors.append(text)
        offset += split.n_items
    settings = config.sequential.model_copy(update={"max_train_seconds": seconds})
    model = TextAdaptorSASRec(settings, config.text.model_copy(update={"id_embedding": "replace"}))
    fitted, train_seconds, peak = fit_measured(model, TrainData(offset, histories, None, np.vstack(vectors), seed))
    assert isinstance(fitted, TextAdaptorSASRec)
    return fitted, train_seconds, peak


def run_dataset(dataset: str, seed: int, models: list[str], config: RecommendConfig, result: dict, path: Path, pretrained: TextAdaptorSASRec | None) -> None:
    """Every model on one dataset and seed, written after each; then the paired comparisons."""
    split, vectors = inductive_split(dataset, seed, result["new_item_share"])
    log.info(
        "%s seed %d: %d users, %d items (%d new), %d training interactions",
        dataset,
        seed,
        len(split.user_ids),
        split.n_items,
        int(np.sum(split.new_items)),
        sum(map(len, split.train)),
    )
    data = TrainData(split.n_items, split.train, split.valid, vectors, seed)
    validate = make_validator(split, config)
    evaluations: dict[str, Evaluation] = {}

    def score(name: str, model: Recommender, seconds: float, peak: float, **extra: object) -> None:
        evaluations[name] = evaluate_split(model.score, split, "test", config)
        # a re-run replaces the same dataset, model and seed; other runs in the file stay
        result["runs"] = [r for r in result["runs"] if (r["dataset"], r["model"], r["seed"]) != (dataset, name, seed)]
        result["runs"].append(record(dataset, name, seed, evaluations[name], seconds, peak, label=result["label"], **extra))
        segments = evaluations[name].segments
        log.info(
            "%s %s seed %d: NDCG@10 %.4f tail %.4f cold %.4f new-item HR@10 %.4f (train %.0fs)",
            dataset,
            name,
            seed,
            evaluations[name].metrics["NDCG@10"],
            segments["tail"]["NDCG@10"],
            segments["cold"]["NDCG@10"],
            segments["new_items"]["HR@10"],
            seconds,
        )
        write(result, dataset, evaluations, config, path)

    for name in models:
        model, seconds, peak = fit_measured(make_recommender(name, config), data, validate)
        epochs = len(getattr(model, "history_", []))
        score(name, model, seconds, peak, **({"epochs": epochs} if epochs else {}))
    if pretrained is not None:
        replace = config.text.model_copy(update={"id_embedding": "replace"})
        for name, start in (("sasrec-adaptor-transfer", pretrained), ("sasrec-adaptor-scratch", None)):
            model = TextAdaptorSASRec(config.sequential, replace)
            with PeakMemory() as memory:
                started = time.perf_counter()
                if start is None:
                    model.fit(data, validate)
                else:
                    model.fit_from(start, data, validate)
                seconds = time.perf_counter() - started
            score(name, model, seconds, memory.peak_mb, epochs=len(model.history_))
        transfer = paired_bootstrap(
            evaluations["sasrec-adaptor-transfer"].per_user["all"]["NDCG@10"],
            evaluations["sasrec-adaptor-scratch"].per_user["all"]["NDCG@10"],
            config.bootstrap_samples,
            seed,
        )
        result["transfer"][f"{dataset} (seed {seed})"] = {"all/NDCG@10": transfer}
    for name, row in compare(evaluations, seed, config.bootstrap_samples).items():
        result["comparisons"][f"{dataset}/{name}"] = row
    write(result, dataset, evaluations, config, path)


def main() -> int:
    """Parse arguments and run every dataset and seed, most important first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["beauty", "scientific"])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1: each draws its own new items and initialisation")
    parser.add_argument("--models", nargs="*", default=[ID_ONLY, CONTENT, *TEXT_MODELS], help="none: only the transfer stage")
    parser.add_argument("--new-item-share", type=float, default=0.1)
    parser.add_argument("--max-train-seconds", type=float, default=None, help="wall-time cap per sequential model")
    parser.add_argument("--epochs", type=int, default=None, help="epoch cap per sequential model (default: the config's)")
    parser.add_argument(
        "--transfer-seconds",
        type=float,
        default=None,
        help="transfer stage on scientific: pre-train on Beauty + Toys this long, then fine-tune vs from scratch, equal time each",
    )
    parser.add_argument("--label", default="3 seeds, uncapped", help="run conditions written into the results, e.g. '1 seed, capped, under load'")
    parser.add_argument("--results", type=Path, default=RESULTS)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    config = LongtailConfig().recommend
    sequential = {"max_train_seconds": arguments.max_train_seconds, **({"epochs": arguments.epochs} if arguments.epochs else {})}
    # cold users: at most 5 items in the history the model reads at test time
    config = config.model_copy(update={"sequential": config.sequential.model_copy(update=sequential), "cold_user_max_history": 5})
    result: dict = {"runs": [], "comparisons": {}, "transfer": {}}
    if arguments.results.is_file():
        result |= json.loads(arguments.results.read_text())
    result |= {"label": arguments.label, "new_item_share": arguments.new_item_share, "config": config.model_dump()}
    for seed in range(arguments.seeds):
        pretrained = None
        if arguments.transfer_seconds and "scientific" in arguments.datasets:
            pretrained, seconds, peak = pretrained_adaptor(config, seed, arguments.transfer_seconds)
            result["transfer"][f"pretraining (seed {seed})"] = {
                "datasets": list(PRETRAIN_SETS),
                "train_seconds": round(seconds, 2),
                "peak_rss_mb": round(peak, 1),
                "epochs": len(pretrained.history_),
            }
        for dataset in arguments.datasets:
            run_dataset(dataset, seed, arguments.models, config, result, arguments.results, pretrained if dataset == "scientific" else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
