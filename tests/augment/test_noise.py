"""Embedding noise on real item vectors (LSA of Scientific titles): noise scaled to the spread, copies flagged, originals untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from longtail.augment.noise import vector_matrix
from longtail.balance.component import build, run
from longtail.core.errors import ConfigError
from longtail.data.adapters import load_dataset
from longtail.data.columns import SYNTHETIC
from longtail.data.segments import TAIL, item_segments


@pytest.fixture(scope="module")
def item_vectors(datasets_root: Path) -> pl.DataFrame:
    """Up to 300 Scientific items: 24-d LSA vectors of their titles (raw and L2-normalised) and whether they are tail items."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    data = load_dataset("scientific", datasets_root)
    items = data.items.head(300)
    vectors = TruncatedSVD(24, random_state=0).fit_transform(TfidfVectorizer(min_df=2).fit_transform(items["title"].to_list())).astype(np.float32)
    keep = np.linalg.norm(vectors, axis=1) > 0  # titles made only of words no other title has
    items, vectors = items.filter(pl.Series(keep)), vectors[keep]
    counts = items.join(data.events.group_by("item_id").len(), on="item_id", how="left").fill_null(0)["len"].to_numpy()
    return pl.DataFrame(
        {
            "item_id": items["item_id"],
            "vector": vectors,
            "unit": vectors / np.linalg.norm(vectors, axis=1, keepdims=True),
            "tail": item_segments(counts) == TAIL,
        }
    )


def test_noise_has_the_requested_scale_relative_to_each_dimension_spread(item_vectors: pl.DataFrame) -> None:
    out = run(build("embedding-noise", column="vector", scale=0.2, copies=2), item_vectors, seed=1)
    assert out.height == 3 * item_vectors.height and out[SYNTHETIC].sum() == 2 * item_vectors.height
    original = vector_matrix(item_vectors, "vector")
    assert out.head(item_vectors.height).drop(SYNTHETIC, "weight").equals(item_vectors)
    copies = out.filter(pl.col(SYNTHETIC))
    assert copies.drop("vector", SYNTHETIC, "weight").equals(pl.concat([item_vectors.drop("vector")] * 2))
    relative = (vector_matrix(copies, "vector") - np.vstack([original, original])) / original.std(axis=0)
    assert relative.mean() == pytest.approx(0.0, abs=0.01)
    assert relative.std() == pytest.approx(0.2, rel=0.05)
    assert np.all(relative.std(axis=0) == pytest.approx(0.2, rel=0.2))


def test_unit_vectors_stay_unit_and_close_to_their_source(item_vectors: pl.DataFrame) -> None:
    out = run(build("embedding-noise", column="unit", scale=0.1), item_vectors, seed=2)
    noisy = vector_matrix(out.filter(pl.col(SYNTHETIC)), "unit")
    assert np.allclose(np.linalg.norm(noisy, axis=1), 1.0, atol=1e-5)
    cosine = np.sum(noisy * vector_matrix(item_vectors, "unit"), axis=1)
    assert cosine.min() > 0.8 and cosine.max() < 1.0


def test_only_selected_rows_get_copies_and_a_seed_reproduces_them(item_vectors: pl.DataFrame) -> None:
    component = build("embedding-noise", column="vector", only="tail")
    out = run(component, item_vectors, seed=3)
    tail = item_vectors["tail"].sum()
    assert 0 < tail < item_vectors.height
    assert out.filter(pl.col(SYNTHETIC))["tail"].all() and out[SYNTHETIC].sum() == tail
    assert out.equals(run(component, item_vectors, seed=3)) and not out.equals(run(component, item_vectors, seed=4))


def test_non_finite_vectors_are_refused(item_vectors: pl.DataFrame) -> None:
    broken = item_vectors.with_columns(pl.Series("vector", np.full((item_vectors.height, 24), np.nan, dtype=np.float32)))
    with pytest.raises(ConfigError, match="finite"):
        run(build("embedding-noise", column="vector"), broken, seed=0)
