"""Reported recommendation runs: one model folder per seed, trained to convergence on validation, re-scored from disk.

A reported figure is the test evaluation of the saved folder, loaded back and scored again (what `longtail evaluate
--model DIR` does), and it must equal the evaluation saved when the folder was written: a figure that cannot be
reproduced from its folder is refused rather than reported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from longtail.core.artifacts import load_json
from longtail.core.config import LongtailConfig
from longtail.encode.item_text import ItemEncoder
from longtail.evaluate.harness import Evaluation, evaluate_split
from longtail.pipeline.incremental import train_model_folder
from longtail.pipeline.model_folder import EVALUATION_FILE, ModelFolderError, evaluate_folder, folder_split, load_model_folder


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def rescore_folder(directory: str | Path) -> Evaluation:
    """The folder's served recommender scored again on its split's test items; refused unless it equals the saved evaluation."""
    directory = Path(directory)
    folder = load_model_folder(directory)
    evaluation = evaluate_folder(folder, folder_split(directory))
    saved = load_json(directory / EVALUATION_FILE)["metrics"]
    differing = sorted(name for name, value in evaluation.metrics.items() if not _same(value, saved.get(name, math.nan)))
    if differing:
        raise ModelFolderError(
            f"{directory}: re-scoring differs from the saved evaluation in {', '.join(differing)} "
            f"(e.g. {differing[0]}: {evaluation.metrics[differing[0]]} vs {saved.get(differing[0])})"
        )
    return evaluation


def reported_runs(
    items: pl.DataFrame,
    events: pl.DataFrame,
    config: LongtailConfig,
    dataset: str,
    seeds: Sequence[int],
    out_dir: str | Path,
    encode: ItemEncoder,
    fusion: bool = False,
) -> tuple[list[dict[str, Any]], dict[tuple[str, int], Evaluation]]:
    """Per seed: train SASRec (and with `fusion` the ranker over it) into `out_dir/seed-<seed>`, re-score the folder.

    Returns one run record per model and seed ("sasrec", and "fusion" with `fusion`), each carrying dataset, model,
    seed, protocol, metrics, segments, how training stopped and its folder; and their evaluations keyed (model, seed).
    """
    if config.recommend.sequential.max_train_seconds is not None:
        raise ModelFolderError(
            "reported runs train to convergence on validation: unset recommend.sequential.max_train_seconds "
            "(time caps are for the demo and the time-to-quality benchmark)"
        )
    runs: list[dict[str, Any]] = []
    evaluations: dict[tuple[str, int], Evaluation] = {}
    for seed in seeds:
        directory = Path(out_dir) / f"seed-{seed}"
        model = train_model_folder(items, events, config.model_copy(update={"seed": seed}), directory, encode, fusion=fusion)
        served = rescore_folder(directory)
        scored = {"sasrec": served}
        if fusion:
            sequential = load_model_folder(directory).sequential
            scored = {"sasrec": evaluate_split(sequential.score, folder_split(directory), "test", config.recommend), "fusion": served}
        training = {
            "epochs": len(model.history_),
            "stopped": model.stopped_,
            "best_valid_NDCG@10": model.best_valid_,
            "train_seconds": round(model.history_[-1]["seconds"], 2),
            "model_folder": str(directory),
        }
        for name, evaluation in scored.items():
            evaluations[(name, seed)] = evaluation
            runs.append({"dataset": dataset, "model": name, "seed": seed, "protocol": "loo-full", **evaluation.summary(), **training})
    return runs, evaluations
