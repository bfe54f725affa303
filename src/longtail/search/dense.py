"""Dense retrieval over L2-normalised item vectors with faiss: exact, HNSW or IVF, with filtered search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faiss
import numpy as np

from longtail.core.config import SearchConfig
from longtail.core.errors import LongtailError

ANN_FILE = "ann.faiss"
HNSW_MAX_ITEMS = 300_000
# faiss's generated stubs lack SearchParametersHNSW and the keyword constructors its Python wrappers add at runtime.
_FAISS_WRAPPERS: Any = faiss
# Below this many allowed rows an exact scan of just those rows is faster and exact; above it the ANN filters in place.
EXACT_FILTER_ROWS = 10_000


def choose_kind(n_items: int, config: SearchConfig) -> str:
    """The ANN structure for a catalogue size: exact when small, HNSW in the middle, IVF when large."""
    if config.ann != "auto":
        return config.ann
    if n_items < config.ann_min_items:
        return "flat"
    return "hnsw" if n_items <= HNSW_MAX_ITEMS else "ivf"


def _build_faiss(vectors: np.ndarray, kind: str, config: SearchConfig, seed: int) -> faiss.Index:
    dimension = vectors.shape[1]
    index: faiss.Index
    if kind == "flat":
        index = faiss.IndexFlatIP(dimension)
    elif kind == "hnsw":
        hnsw = faiss.IndexHNSWFlat(dimension, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = config.hnsw_ef_construction
        index = hnsw
    elif kind == "ivf":
        lists = config.ivf_lists or max(1, int(4 * np.sqrt(len(vectors))))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dimension), dimension, lists, faiss.METRIC_INNER_PRODUCT)
        # k-means needs ~40 points per list; more only slows training down.
        sample = np.random.default_rng(seed).permutation(len(vectors))[: min(len(vectors), lists * 40)]
        index.train(vectors[sample])
    else:
        raise LongtailError(f"unknown ANN kind '{kind}'; use flat, hnsw or ivf")
    index.add(vectors)
    return index


class DenseIndex:
    """Inner-product (= cosine) search over item vectors; rows are item positions in the catalogue."""

    def __init__(self, index: faiss.Index, vectors: np.ndarray, config: SearchConfig) -> None:
        self.index = index
        self.vectors = vectors
        self.config = config

    @property
    def kind(self) -> str:
        """Which structure this index is: flat, hnsw or ivf."""
        if isinstance(self.index, faiss.IndexHNSWFlat):
            return "hnsw"
        if isinstance(self.index, faiss.IndexIVFFlat):
            return "ivf"
        return "flat"

    @classmethod
    def build(cls, vectors: np.ndarray, config: SearchConfig | None = None, seed: int = 42) -> DenseIndex:
        """Index L2-normalised vectors with the structure `config.ann` selects."""
        config = config or SearchConfig()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        return cls(_build_faiss(vectors, choose_kind(len(vectors), config), config, seed), vectors, config)

    def save(self, directory: str | Path) -> None:
        """Write the faiss structure (vectors are saved by the caller next to it)."""
        faiss.write_index(self.index, str(Path(directory) / ANN_FILE))

    @classmethod
    def open(cls, directory: str | Path, vectors: np.ndarray, config: SearchConfig) -> DenseIndex:
        """Read a structure written by `save`, paired with the vectors it was built from."""
        return cls(faiss.read_index(str(Path(directory) / ANN_FILE)), vectors, config)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, vectors: np.ndarray) -> None:
        """Append L2-normalised vectors as the next rows (every kind of structure here accepts additions)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.index.add(vectors)
        self.vectors = np.vstack([self.vectors, vectors])

    def _parameters(self, selector: faiss.IDSelector | None) -> faiss.SearchParameters | None:
        if self.kind == "hnsw":
            return _FAISS_WRAPPERS.SearchParametersHNSW(sel=selector, efSearch=max(self.config.hnsw_ef_search, 1))
        if self.kind == "ivf":
            return _FAISS_WRAPPERS.SearchParametersIVF(sel=selector, nprobe=self.config.ivf_probe)
        return None if selector is None else _FAISS_WRAPPERS.SearchParameters(sel=selector)

    def search(self, queries: np.ndarray, k: int = 100, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows and cosine scores per query vector; -1 rows pad when fewer than k are allowed."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = min(k, len(self))
        if allowed is not None and int(allowed.sum()) <= EXACT_FILTER_ROWS:
            return exact_search(self.vectors, queries, k, np.flatnonzero(allowed))
        selector = None
        if allowed is not None:
            bits = np.packbits(allowed.astype(np.uint8), bitorder="little")
            selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bits))
        params = self._parameters(selector)
        scores, rows = self.index.search(queries, k, params=params) if params is not None else self.index.search(queries, k)
        return rows.astype(np.int64), scores


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top-k by inner product, optionally over a subset of rows; the ground truth for ANN recall."""
    candidates = vectors if rows is None else vectors[rows]
    scores = np.atleast_2d(queries) @ candidates.T
    k_here = min(k, candidates.shape[0])
    top = np.argpartition(-scores, k_here - 1, axis=1)[:, :k_here] if k_here else np.zeros((len(scores), 0), dtype=np.int64)
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    top, top_scores = np.take_along_axis(top, order, axis=1), np.take_along_axis(top_scores, order, axis=1)
    found = top if rows is None else rows[top]
    pad = k - k_here
    if pad:
        found = np.hstack([found, np.full((len(found), pad), -1, dtype=np.int64)])
        top_scores = np.hstack([top_scores, np.full((len(found), pad), -np.inf, dtype=np.float32)])
    return found.astype(np.int64), top_scores.astype(np.float32)


def recall_at_k(approximate: np.ndarray, exact: np.ndarray, k: int = 10) -> float:
    """Mean share of the exact top-k rows that the approximate top-k also returns."""
    hits = [len(set(a[:k]) & set(e[:k]) - {-1}) / max(len(set(e[:k]) - {-1}), 1) for a, e in zip(approximate, exact, strict=True)]
    return float(np.mean(hits)) if hits else 0.0
