"""CL4SRec-style sequence augmentation: crop, mask and reorder training sequences into extra synthetic ones."""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
import polars as pl

from longtail.balance.component import Component, register
from longtail.balance.rows import RowDraws, component_stream, map_rows, with_copies
from longtail.balance.sequences import ITEMS
from longtail.core.errors import LongtailError
from longtail.core.executors import RowsT, TableMapper
from longtail.data.columns import MASKED, SYNTHETIC


class SequenceAugmentation(Component):
    """Adds `copies` transformed copies of every original sequence with at least `min_length` items (Xie et al., CL4SRec).

    Originals stay as they are; every copy is synthetic and built only from its own sequence's items,
    so nothing outside the user's training history can enter. Each copy draws from its row's own generator
    (balance.rows), so the augmentation runs per partition.
    """

    def __init__(self, rate: float, copies: int = 1, min_length: int = 3) -> None:
        if not 0 < rate < 1 or copies < 1 or min_length < 2:
            raise LongtailError(f"{self.name}: need 0 < rate < 1, copies >= 1 and min_length >= 2")
        self.rate = rate
        self.copies = copies
        self.min_length = min_length

    @abstractmethod
    def transform(self, items: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One augmented version of a sequence that still has two or more unmasked items to learn from."""

    def apply_mapped(self, table: RowsT, rng: np.random.Generator, map_table: TableMapper) -> RowsT:
        return map_rows(table, self._augment, map_table, component_stream(rng, self.name))

    def _augment(self, batch: pl.DataFrame, draws: RowDraws) -> pl.DataFrame:
        """The batch plus `copies` transformed copies of its eligible rows, each from its row's own generator."""
        eligible = np.flatnonzero(batch.select(~pl.col(SYNTHETIC) & (pl.col(ITEMS).list.len() >= self.min_length)).to_series().to_numpy())
        sources = batch[eligible]
        histories = [np.asarray(items, dtype=np.int64) for items in sources[ITEMS].to_list()]
        copies = []
        for copy in range(1, self.copies + 1):
            augmented = [self.transform(items, draws.generator(int(row), copy)) for row, items in zip(eligible, histories, strict=True)]
            copies.append(sources.with_columns(pl.Series(ITEMS, augmented, dtype=pl.List(pl.Int64))))
        return with_copies(batch, copies)


def _stretch(size: int, rate: float, rng: np.random.Generator) -> slice:
    """A random contiguous stretch of `rate` x `size` positions (at least two)."""
    length = max(2, int(rate * size))
    start = int(rng.integers(0, size - length + 1))
    return slice(start, start + length)


@register
class Crop(SequenceAugmentation):
    """A random contiguous stretch of `rate` x the sequence (at least two items)."""

    name = "crop"

    def __init__(self, rate: float = 0.6, copies: int = 1, min_length: int = 3) -> None:
        super().__init__(rate, copies, min_length)

    def transform(self, items: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return items[_stretch(len(items), self.rate, rng)].copy()


@register
class Mask(SequenceAugmentation):
    """Hide `rate` x the items (at least one) as MASKED; the newest item stays, so the copy keeps its next-item target."""

    name = "mask"

    def __init__(self, rate: float = 0.3, copies: int = 1, min_length: int = 3) -> None:
        super().__init__(rate, copies, min_length)

    def transform(self, items: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        hidden = rng.choice(len(items) - 1, size=max(1, int(self.rate * len(items))), replace=False)
        masked = items.copy()
        masked[hidden] = MASKED
        return masked


@register
class Reorder(SequenceAugmentation):
    """Shuffle a random contiguous stretch of `rate` x the sequence (at least two items)."""

    name = "reorder"

    def __init__(self, rate: float = 0.3, copies: int = 1, min_length: int = 3) -> None:
        super().__init__(rate, copies, min_length)

    def transform(self, items: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        stretch = _stretch(len(items), self.rate, rng)
        reordered = items.copy()
        reordered[stretch] = rng.permutation(items[stretch])
        return reordered
