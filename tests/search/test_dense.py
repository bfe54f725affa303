"""faiss dense retrieval: exact ground truth, ANN recall, filtered search, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from longtail.core.config import SearchConfig
from longtail.search import dense
from longtail.search.dense import DenseIndex, choose_kind, exact_search, recall_at_k


def _clustered(n: int, dimension: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, dimension))
    vectors = centres[rng.integers(0, 50, n)] + 0.3 * rng.normal(size=(n, dimension))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_exact_search_returns_best_rows_in_order_and_pads_small_subsets():
    vectors = np.eye(4, dtype=np.float32)
    query = np.array([[0.1, 0.9, 0.4, 0.0]], dtype=np.float32)
    rows, scores = exact_search(vectors, query, 3)
    assert rows.tolist() == [[1, 2, 0]]
    np.testing.assert_allclose(scores, [[0.9, 0.4, 0.1]], atol=1e-6)
    rows, _ = exact_search(vectors, query, 3, rows=np.array([0, 3]))
    assert rows.tolist() == [[0, 3, -1]]


def test_auto_kind_depends_on_catalogue_size():
    config = SearchConfig()
    assert choose_kind(1_000, config) == "flat"
    assert choose_kind(100_000, config) == "hnsw"
    assert choose_kind(2_000_000, config) == "ivf"
    assert choose_kind(10, SearchConfig(ann="ivf")) == "ivf"


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_ann_recall_at_10_against_exact_is_high_on_clustered_vectors(kind):
    vectors = _clustered(20_000)
    queries = vectors[:100] + 0.05
    index = DenseIndex.build(vectors, SearchConfig(ann=kind))
    approximate, _ = index.search(queries, 10)
    truth, _ = exact_search(vectors, queries / np.linalg.norm(queries, axis=1, keepdims=True), 10)
    assert recall_at_k(approximate, truth, 10) > 0.9


@pytest.mark.parametrize(("kind", "exact_threshold"), [("hnsw", 0), ("ivf", 0), ("hnsw", 1_000_000)])
def test_filtered_search_returns_only_allowed_rows(monkeypatch, kind, exact_threshold):
    monkeypatch.setattr(dense, "EXACT_FILTER_ROWS", exact_threshold)  # 0: the in-ANN bitmap path; huge: exact subset scan
    vectors = _clustered(5_000)
    allowed = np.zeros(len(vectors), dtype=bool)
    allowed[::7] = True
    index = DenseIndex.build(vectors, SearchConfig(ann=kind))
    rows, _ = index.search(vectors[:5], 10, allowed)
    assert (rows >= 0).all() and allowed[rows].all()
    truth, _ = exact_search(vectors, vectors[:5], 10, np.flatnonzero(allowed))
    assert recall_at_k(rows, truth, 10) > 0.9


def test_recall_at_k_counts_shared_rows():
    assert recall_at_k(np.array([[1, 2, 3]]), np.array([[3, 4, 1]]), 3) == pytest.approx(2 / 3)


def test_index_round_trips_through_disk(tmp_path):
    vectors = _clustered(2_000)
    built = DenseIndex.build(vectors, SearchConfig(ann="hnsw"))
    built.save(tmp_path)
    reopened = DenseIndex.open(tmp_path, vectors, SearchConfig(ann="hnsw"))
    assert reopened.kind == "hnsw" and len(reopened) == 2_000
    np.testing.assert_array_equal(reopened.search(vectors[:3], 5)[0], built.search(vectors[:3], 5)[0])
