"""The balance & augment step: build the configured components by name and apply them to a training split, guarded against leakage."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

# Imported for their registrations: every built-in component must be buildable by its name from config.
from longtail.augment import noise, queries, tabular_gan  # noqa: F401
from longtail.balance import resample, sampling, weights  # noqa: F401
from longtail.balance.component import Chain, Component, build, run
from longtail.balance.leakage import check_disjoint
from longtail.config import ComponentSpec, TabularBalanceConfig


def build_chain(specs: Sequence[ComponentSpec]) -> Component:
    """The components of one strategy, chained in order (an empty list changes nothing)."""
    return Chain([build(spec.name, **spec.params) for spec in specs])


def build_strategies(config: TabularBalanceConfig) -> dict[str, Component]:
    """Every configured strategy by name, in config order."""
    return {name: build_chain(specs) for name, specs in config.strategies.items()}


def balance_training_table(train: pl.DataFrame, evaluation: pl.DataFrame, keys: Sequence[str], specs: Sequence[ComponentSpec], seed: int) -> pl.DataFrame:
    """The training split after the configured components; raises LeakageError if it shares a key with the evaluation split."""
    check_disjoint(train, evaluation, keys)
    balanced = run(build_chain(specs), train, seed)
    check_disjoint(balanced, evaluation, keys)
    return balanced
