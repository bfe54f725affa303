"""Under-, over- and combined re-sampling of a labelled training table with imbalanced-learn; generated rows are flagged synthetic."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from longtail.balance.component import WholeTableComponent, register
from longtail.balance.sampling import repeat_rows
from longtail.core.errors import ConfigError
from longtail.data.columns import SYNTHETIC, WEIGHT

SamplingStrategy = str | float | dict[Any, int]


def feature_columns(table: pl.DataFrame, label: str, features: Sequence[str] | None = None) -> list[str]:
    """The given feature columns, or every numeric column except the label and the bookkeeping columns."""
    if features is not None:
        return list(features)
    skipped = {label, SYNTHETIC, WEIGHT}
    return [name for name, dtype in table.schema.items() if name not in skipped and dtype.is_numeric()]


class ImbalancedLearnResampler(WholeTableComponent):
    """A re-sampler from imbalanced-learn applied to the feature columns of a table with a label column.

    Kept original rows come back unchanged with all their columns; rows the sampler generates carry its feature
    values and label, nulls in every other column (so they never share a key with any real row) and `synthetic = True`.
    The imbalanced-learn samplers work on the whole table at once, so these run in-process only.
    """

    needs_whole_table = "imbalanced-learn re-samples the whole table at once (class counts, nearest neighbours across all rows)"

    def __init__(self, label: str = "label", features: Sequence[str] | None = None, sampling_strategy: SamplingStrategy = "auto", k_neighbors: int = 5) -> None:
        self.label, self.features, self.sampling_strategy, self.k_neighbors = label, features, sampling_strategy, k_neighbors

    @abstractmethod
    def sampler(self, seed: int) -> Any:
        """The configured imbalanced-learn sampler."""

    def _kept_originals(self, sampler: Any, rows: int, produced: int) -> np.ndarray:
        """Positions in the input of the output rows that are originals (-1 for generated rows)."""
        if hasattr(sampler, "sample_indices_"):
            return np.asarray(sampler.sample_indices_)
        cleaner = getattr(sampler, "enn_", None) or getattr(sampler, "tomek_", None)
        if cleaner is not None:
            # combined methods: SMOTE appends generated rows after the originals, then the cleaner keeps a subset of both
            kept = np.asarray(cleaner.sample_indices_)
            return np.where(kept < rows, kept, -1)
        return np.concatenate([np.arange(rows), np.full(produced - rows, -1)])

    def apply(self, table: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
        columns = feature_columns(table, self.label, self.features)
        if not columns:
            raise ConfigError(f"{self.name}: the table has no numeric feature columns to re-sample on")
        features = table.select(columns).to_numpy().astype(np.float64)
        labels = table[self.label].to_numpy()
        sampler = self.sampler(int(rng.integers(2**31 - 1)))
        resampled, resampled_labels = sampler.fit_resample(features, labels)
        origin = self._kept_originals(sampler, table.height, len(resampled))
        originals = repeat_rows(table, origin[origin >= 0])
        generated = origin < 0
        if not generated.any():
            return originals
        new_rows = pl.DataFrame({name: resampled[generated, position] for position, name in enumerate(columns)})
        new_rows = new_rows.with_columns(pl.Series(self.label, resampled_labels[generated]), pl.lit(True).alias(SYNTHETIC), pl.lit(1.0).alias(WEIGHT))
        return pl.concat([originals, new_rows.cast({name: table.schema[name] for name in new_rows.columns})], how="diagonal_relaxed").select(table.columns)


@register
class RandomUnderSample(ImbalancedLearnResampler):
    """Drop random rows of the larger classes (default: down to the smallest class)."""

    name = "random-under"

    def sampler(self, seed: int) -> Any:
        from imblearn.under_sampling import RandomUnderSampler

        return RandomUnderSampler(sampling_strategy=self.sampling_strategy, random_state=seed)


@register
class RandomOverSample(ImbalancedLearnResampler):
    """Repeat random rows of the smaller classes (default: up to the largest class); repeats are synthetic copies."""

    name = "random-over"

    def sampler(self, seed: int) -> Any:
        from imblearn.over_sampling import RandomOverSampler

        return RandomOverSampler(sampling_strategy=self.sampling_strategy, random_state=seed)


@register
class SmoteOverSample(ImbalancedLearnResampler):
    """SMOTE: new minority rows interpolated between a row and one of its k nearest same-class neighbours."""

    name = "smote"

    def sampler(self, seed: int) -> Any:
        from imblearn.over_sampling import SMOTE

        return SMOTE(sampling_strategy=self.sampling_strategy, k_neighbors=self.k_neighbors, random_state=seed)


@register
class SmoteEnnResample(ImbalancedLearnResampler):
    """SMOTE, then edited nearest neighbours removes rows (real or generated) whose neighbours disagree with their label."""

    name = "smote-enn"

    def sampler(self, seed: int) -> Any:
        from imblearn.combine import SMOTEENN
        from imblearn.over_sampling import SMOTE

        return SMOTEENN(sampling_strategy=self.sampling_strategy, smote=SMOTE(k_neighbors=self.k_neighbors, random_state=seed), random_state=seed)


@register
class SmoteTomekResample(ImbalancedLearnResampler):
    """SMOTE, then removes Tomek links (cross-class nearest-neighbour pairs) to clean class borders."""

    name = "smote-tomek"

    def sampler(self, seed: int) -> Any:
        from imblearn.combine import SMOTETomek
        from imblearn.over_sampling import SMOTE

        return SMOTETomek(sampling_strategy=self.sampling_strategy, smote=SMOTE(k_neighbors=self.k_neighbors, random_state=seed), random_state=seed)
