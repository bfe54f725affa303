"""Crop, mask and reorder on real Beauty sequences: valid synthetic copies, originals untouched, reproducible."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from longtail.augment.sequences import Crop, Mask, Reorder
from longtail.balance.component import run
from longtail.balance.sequences import ITEMS, sequence_table
from longtail.core.config import SequentialConfig
from longtail.core.errors import LongtailError
from longtail.data.columns import MASKED, SYNTHETIC
from longtail.models.base import TrainData
from longtail.models.sequential import SASRec


@pytest.fixture(scope="module")
def table(beauty_slice) -> pl.DataFrame:
    return sequence_table(beauty_slice[1].train)


def _pairs(table: pl.DataFrame, augmented: pl.DataFrame) -> list[tuple[np.ndarray, np.ndarray]]:
    sources = dict(zip(table["user"].to_list(), table[ITEMS].to_list(), strict=True))
    copies = augmented.filter(pl.col(SYNTHETIC))
    return [(np.asarray(sources[u]), np.asarray(items)) for u, items in zip(copies["user"].to_list(), copies[ITEMS].to_list(), strict=True)]


def _augment(component, table: pl.DataFrame) -> tuple[pl.DataFrame, list[tuple[np.ndarray, np.ndarray]]]:
    augmented = run(component, table, seed=2)
    assert augmented.filter(~pl.col(SYNTHETIC)).equals(table)
    assert augmented.equals(run(component, table, seed=2))
    eligible = int((table[ITEMS].list.len() >= component.min_length).sum())
    assert augmented[SYNTHETIC].sum() == component.copies * eligible
    return augmented, _pairs(table, augmented)


def test_crop_gives_contiguous_stretches_of_the_source(table) -> None:
    _, pairs = _augment(Crop(rate=0.6, copies=2), table)
    for source, crop in pairs:
        assert len(crop) == max(2, int(0.6 * len(source)))
        starts = [i for i in range(len(source) - len(crop) + 1) if np.array_equal(source[i : i + len(crop)], crop)]
        assert starts


def test_mask_hides_some_items_but_never_the_newest(table) -> None:
    _, pairs = _augment(Mask(rate=0.3), table)
    for source, masked in pairs:
        hidden = masked == MASKED
        assert len(masked) == len(source) and not hidden[-1]
        assert hidden.sum() == max(1, int(0.3 * len(source)))
        np.testing.assert_array_equal(masked[~hidden], source[~hidden])


def test_reorder_shuffles_one_stretch_and_keeps_the_rest(table) -> None:
    _, pairs = _augment(Reorder(rate=0.5), table)
    changed = 0
    for source, reordered in pairs:
        assert sorted(reordered) == sorted(source)
        moved = np.flatnonzero(reordered != source)
        if moved.size:
            changed += 1
            assert moved.max() - moved.min() < max(2, int(0.5 * len(source)))
    assert changed > len(pairs) / 2


def test_sasrec_trains_on_masked_copies_and_ignores_masks_in_popularity(beauty_slice, table) -> None:
    augmented = run(Mask(rate=0.4), table, seed=0)
    histories = [np.asarray(items) for items in augmented[ITEMS].to_list()]
    data = TrainData(beauty_slice[1].n_items, histories)
    every = np.concatenate(histories)
    np.testing.assert_array_equal(data.counts(), np.bincount(every[every != MASKED], minlength=data.n_items))
    model = SASRec(SequentialConfig(hidden=16, blocks=1, max_len=8, epochs=1, batch_size=128)).fit(data)
    assert np.isfinite(model.history_[0]["loss"])
    assert np.isfinite(model.score(histories[-3:])).all()


def test_bad_rates_are_refused() -> None:
    with pytest.raises(LongtailError):
        Crop(rate=1.0)
    with pytest.raises(LongtailError):
        Mask(rate=0.3, min_length=1)
