"""`longtail ablate`: train a baseline and named balancing/augmentation variants alike, and compare them per segment."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from longtail.balance.component import build_chain, run
from longtail.balance.sequences import check_training_only, sequence_table, table_histories
from longtail.core.config import AblationVariant, LongtailConfig, RecommendConfig, SequentialConfig
from longtail.core.errors import ConfigError
from longtail.core.executors import TableMapper, map_in_process
from longtail.data.adapters import Dataset, load_dataset
from longtail.data.columns import SYNTHETIC
from longtail.data.splits import Split, split_events
from longtail.encode.encoder import TextEncoder
from longtail.encode.factory import build_encoder
from longtail.encode.item_text import texts_for
from longtail.evaluate.harness import Evaluation, evaluate_split, make_validator
from longtail.evaluate.report import report_context
from longtail.evaluate.significance import paired_bootstrap
from longtail.models.base import TrainData, make_recommender
from longtail.reporting.writers import write_report_pair

BASELINE = "baseline"
SEGMENTS = ("all", "head", "torso", "tail", "cold")
METRICS = ("HR@10", "NDCG@10")
# a variant may change how the model learns, never how long: every arm gets the baseline's budget
BUDGET_KEYS = frozenset({"max_train_seconds", "epochs", "patience"})
Step = Callable[[str], None]


def first_users(data: Dataset, max_users: int | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Items and events of the first `max_users` users (all when None), the catalogue cut to the items they touched.

    Cutting the catalogue too keeps popularity segments meaningful: head is a share of the items in play.
    """
    if max_users is None:
        return data.items, data.events
    users = data.events["user_id"].unique(maintain_order=True).head(max_users)
    events = data.events.filter(pl.col("user_id").is_in(users.implode()))
    return data.items.filter(pl.col("item_id").is_in(events["item_id"].unique().implode())), events


def variant_settings(base: RecommendConfig, variant: AblationVariant) -> RecommendConfig:
    """The recommend settings of one arm: the baseline's with the arm's sequential overrides."""
    if BUDGET_KEYS & set(variant.sequential):
        raise ConfigError(f"ablation variant {variant.name!r} may not change the training budget ({', '.join(sorted(BUDGET_KEYS))})")
    try:
        sequential = SequentialConfig.model_validate({**base.sequential.model_dump(), **variant.sequential})
    except ValueError as error:
        raise ConfigError(f"ablation variant {variant.name!r}: bad sequential override: {error}") from None
    return base.model_copy(update={"sequential": sequential})


def training_table(split: Split, variant: AblationVariant, seed: int, map_table: TableMapper = map_in_process) -> pl.DataFrame:
    """The arm's training sequences (its components run through `map_table`), checked to hold nothing but each user's own training items."""
    table = run(build_chain(variant.sequences), sequence_table(split.train), seed, map_table=map_table)
    check_training_only(table, split.train)
    return table


def item_vectors(
    split: Split, items: pl.DataFrame, variant: AblationVariant, encoder: TextEncoder, seed: int, map_table: TableMapper = map_in_process
) -> np.ndarray:
    """Item text vectors; with text components (run through `map_table`), each item's vector is the mean over its original and augmented texts."""
    texts = pl.DataFrame({"item": np.arange(split.n_items), "text": texts_for(split.item_ids, items)})
    table = run(build_chain(variant.item_text), texts, seed, map_table=map_table)
    vectors = encoder.encode(table["text"].to_list())
    summed = np.zeros((split.n_items, vectors.shape[1]), dtype=np.float64)
    np.add.at(summed, table["item"].to_numpy(), vectors)
    return (summed / np.maximum(np.linalg.norm(summed, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def best_combination(runs: list[dict], variants: list[AblationVariant], count: int, overall_loss: float) -> AblationVariant | None:
    """One arm merging the `count` variants with the best validation tail NDCG@10 among those that beat the baseline's
    there and keep overall validation NDCG@10 within `overall_loss` of it; None when fewer than two qualify.

    Chosen on validation, never on test. Components run in the variants' order; later model overrides win.
    """
    valid = {run["model"]: run["valid"] for run in runs}
    floor = (1 - overall_loss) * valid[BASELINE]["NDCG@10"]
    qualified = [v for v in variants if valid[v.name]["NDCG@10"] >= floor and valid[v.name]["tail/NDCG@10"] > valid[BASELINE]["tail/NDCG@10"]]
    chosen = sorted(qualified, key=lambda v: -valid[v.name]["tail/NDCG@10"])[:count]
    if count < 2 or len(chosen) < 2:
        return None
    return AblationVariant(
        name="best-combination: " + " + ".join(v.name for v in chosen),
        sequences=[spec for v in chosen for spec in v.sequences],
        item_text=[spec for v in chosen for spec in v.item_text],
        sequential={key: value for v in chosen for key, value in v.sequential.items()},
    )


def against_baseline(evaluations: dict[str, Evaluation], config: RecommendConfig) -> dict[str, dict[str, dict]]:
    """Paired bootstrap of each variant minus the baseline over the same users, per segment, with the relative change."""
    base = evaluations[BASELINE]
    result = {}
    for name, evaluation in evaluations.items():
        if name == BASELINE:
            continue
        rows = {}
        for segment in SEGMENTS:
            for metric in METRICS:
                compared = paired_bootstrap(evaluation.per_user[segment][metric], base.per_user[segment][metric], config.bootstrap_samples)
                reference = float(np.nanmean(base.per_user[segment][metric]))
                # from a baseline of 0 any gain is unbounded: +inf, not a silent NaN
                compared["relative"] = (
                    compared["difference"] / reference if reference else math.copysign(math.inf, compared["difference"]) if compared["difference"] else 0.0
                )
                rows[f"{segment}/{metric}"] = compared
        result[name] = rows
    return result


def goal_check(compared: dict[str, dict[str, dict]], tail_gain: float, overall_loss: float) -> dict[str, dict]:
    """Per variant: does tail NDCG@10 rise by `tail_gain` (relative, its 95% CI above 0) while overall NDCG@10 falls by at most `overall_loss`?"""
    verdicts = {}
    for name, rows in compared.items():
        tail, overall = rows["tail/NDCG@10"], rows["all/NDCG@10"]
        verdicts[name] = {
            "tail_ndcg10_relative": tail["relative"],
            "tail_ci": [tail["low"], tail["high"]],
            "tail_significant": tail["significant"],
            "overall_ndcg10_relative": overall["relative"],
            "overall_ci": [overall["low"], overall["high"]],
            "meets_goal": bool(tail["low"] > 0 and tail["relative"] >= tail_gain and overall["relative"] >= -overall_loss),
        }
    return verdicts


def train_arm(
    arm: AblationVariant, split: Split, items: pl.DataFrame, settings: LongtailConfig, encoder: TextEncoder | None, map_table: TableMapper = map_in_process
) -> tuple[dict, Evaluation]:
    """Build the arm's training data (through `map_table`), train its model under the shared budget, and evaluate it on validation and test."""
    config = variant_settings(settings.recommend, arm)
    table = training_table(split, arm, settings.seed, map_table)
    histories, weights = table_histories(table)
    vectors = item_vectors(split, items, arm, encoder, settings.seed, map_table) if encoder is not None and config.sequential.text_init != "none" else None
    model = make_recommender(config.model, config)
    started = time.perf_counter()
    model.fit(TrainData(split.n_items, histories, None, vectors, settings.seed, weights), make_validator(split, config))
    seconds = time.perf_counter() - started
    valid = evaluate_split(model.score, split, "valid", config)
    test = evaluate_split(model.score, split, "test", config)
    record = {
        "model": arm.name,
        **test.summary(),
        "train_seconds": round(seconds, 1),
        "valid": {"NDCG@10": valid.metrics["NDCG@10"], "tail/NDCG@10": valid.segments["tail"]["NDCG@10"]},
        "epochs": len(getattr(model, "history_", [])),
        "best_valid_ndcg10": getattr(model, "best_valid_", None),
        "sequences": [spec.model_dump() for spec in arm.sequences],
        "item_text": [spec.model_dump() for spec in arm.item_text],
        "sequential": arm.sequential,
        "training_rows": len(table),
        "synthetic_rows": int(table[SYNTHETIC].sum()),
        "weighted": weights is not None,
    }
    return record, test


def run_ablation(
    settings: LongtailConfig,
    datasets_root: Path,
    on_step: Step | None = None,
    on_arm: Callable[[dict, dict[str, Evaluation]], None] | None = None,
    map_table: TableMapper = map_in_process,
) -> tuple[dict, dict[str, Evaluation]]:
    """Train and test the baseline and every variant with the same seed, split and budget: the results and per-arm evaluations.

    The per-user sequences and every arm's balancing/augmentation components run through `map_table` (in-process or
    on Spark); the models train in this process. `on_arm` receives the results so far after every arm, so a long run leaves what it finished.
    """
    step = on_step or (lambda _: None)
    ablation = settings.ablation
    names = [variant.name for variant in ablation.variants]
    if BASELINE in names or len(set(names)) != len(names):
        raise ConfigError(f"ablation variant names must be unique and not {BASELINE!r}: {names}")
    arms = [AblationVariant(name=BASELINE), *ablation.variants]
    arm_settings = {arm.name: variant_settings(settings.recommend, arm) for arm in arms}
    for arm in arms:
        if arm.item_text and arm_settings[arm.name].sequential.text_init == "none":
            raise ConfigError(f"ablation variant {arm.name!r} augments item text but its model ignores text (set sequential.text_init)")
    step("load and split")
    items, events = first_users(load_dataset(ablation.dataset, datasets_root), ablation.max_users)
    split = split_events(items, events, ablation.protocol, map_table)
    encoder = build_encoder(settings.encode) if any(config.sequential.text_init != "none" for config in arm_settings.values()) else None
    runs: list[dict] = []
    evaluations: dict[str, Evaluation] = {}
    for variant in [*arms, None]:
        # the combination arm comes last: it is chosen from the variants' validation results
        current = variant or best_combination(runs, ablation.variants, ablation.combine_best, ablation.overall_loss)
        if current is None:
            break
        step(f"{current.name}: train and evaluate")
        record, evaluations[current.name] = train_arm(current, split, items, settings, encoder, map_table)
        runs.append(record)
        if on_arm is not None:
            on_arm(summarise(settings, split, runs, evaluations), evaluations)
    return summarise(settings, split, runs, evaluations), evaluations


def summarise(settings: LongtailConfig, split: Split, runs: list[dict], evaluations: dict[str, Evaluation]) -> dict:
    """The results file: setup, every arm's record, each variant against the baseline, and the goal check."""
    ablation = settings.ablation
    compared = against_baseline(evaluations, settings.recommend)
    return {
        "dataset": ablation.dataset,
        "protocol": f"{split.protocol}-full",
        "users": len(split.user_ids),
        "items": split.n_items,
        "seed": settings.seed,
        "model": settings.recommend.model,
        "max_train_seconds": settings.recommend.sequential.max_train_seconds,
        "runs": runs,
        "vs_baseline": compared,
        "goal": {
            "tail_gain": ablation.tail_gain,
            "overall_loss": ablation.overall_loss,
            "variants": goal_check(compared, ablation.tail_gain, ablation.overall_loss),
        },
    }


def write_results(result: dict, evaluations: dict[str, Evaluation], settings: LongtailConfig, json_path: Path, html_path: Path) -> None:
    """JSON for machines (with the whole config inside), the recommendation report with a variant-minus-baseline table for people."""
    budget = result["max_train_seconds"]
    notes = [
        f"Every arm trains {result['model']} with seed {result['seed']} on the same split and the same wall-time budget "
        f"({f'{budget:.0f} s' if budget else 'no cap'}); synthetic and re-sampled rows come only from training sequences.",
        f"Goal: tail-item NDCG@10 up by at least {result['goal']['tail_gain']:.0%} with overall NDCG@10 down by at most "
        f"{result['goal']['overall_loss']:.0%}. Met by: {', '.join(n for n, v in result['goal']['variants'].items() if v['meets_goal']) or 'none'}.",
    ]
    compared = {
        "heading": "Paired bootstrap: each variant minus the baseline (95% CI over users; relative change in brackets)",
        "rows": result["vs_baseline"],
        "metrics": [f"{s}/{m}" for s in SEGMENTS for m in METRICS],
        "relative": True,
    }
    context = report_context(
        f"ablation on {result['dataset']}", result["runs"], evaluations, settings.recommend, result["protocol"], compared=compared, notes=notes
    )
    write_report_pair(json_path, html_path, {**result, "config": settings.model_dump(mode="json")}, "evaluation.html", context)
