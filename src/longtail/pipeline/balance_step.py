"""The balance & augment step: build the configured components by name and apply them to a training split, guarded against leakage."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import polars as pl

# Imported for their registrations: every built-in component must be buildable by its name from config.
from longtail.balance.component import Component, build_chain, run
from longtail.balance.leakage import check_disjoint
from longtail.core.config import ComponentSpec, LongtailConfig, TabularBalanceConfig, save_config
from longtail.core.executors import TableMapper, map_in_process
from longtail.evaluate.balancing import report_heads, run_category_experiment
from longtail.evaluate.classification import classification_context
from longtail.reporting.writers import write_report_pair


def build_strategies(config: TabularBalanceConfig) -> dict[str, Component]:
    """Every configured strategy by name, in config order."""
    return {name: build_chain(specs) for name, specs in config.strategies.items()}


def balance_training_table(
    train: pl.DataFrame, evaluation: pl.DataFrame, keys: Sequence[str], specs: Sequence[ComponentSpec], seed: int, map_table: TableMapper = map_in_process
) -> pl.DataFrame:
    """The training split after the configured components (their statistics through `map_table`); raises LeakageError on a key shared with evaluation."""
    check_disjoint(train, evaluation, keys)
    balanced = run(build_chain(specs), train, seed, map_table=map_table)
    check_disjoint(balanced, evaluation, keys)
    return balanced


def run_classification_ablation(
    settings: LongtailConfig, datasets_root: str | Path, out_dir: Path, on_step: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """`longtail ablate` for a classifier: every configured balancing strategy on the imbalanced zh-reviews category
    task, written as ablation.json, an HTML table of per-class precision/recall/F1 (ablation.html) and config.yaml."""
    experiment = run_category_experiment(datasets_root, settings.balance.tabular, build_strategies(settings.balance.tabular), settings.seed, on_step)
    notes = [
        f"{experiment['task']}; {experiment['features']}; classifier {experiment['classifier']}; "
        f"{experiment['train_rows']:,} training and {experiment['test_rows']:,} untouched test rows.",
        "Comparisons: each strategy's macro-F1 minus the unbalanced baseline's, paired bootstrap over test rows.",
    ]
    write_report_pair(
        out_dir / "ablation.json",
        out_dir / "ablation.html",
        experiment,
        "classification.html",
        classification_context("balancing ablation: per-class scores", report_heads(experiment), notes),
    )
    save_config(settings, out_dir)
    return experiment
