"""Hybrid product search: BM25 and dense ANN fused by reciprocal rank, with filters, facets and personalisation."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from longtail.core.artifacts import MANIFEST_FILE, update_manifest, verify_manifest, write_manifest
from longtail.core.config import CONFIG_FILENAME, LongtailConfig, load_config, save_config
from longtail.core.errors import LongtailError
from longtail.encode.encoder import TextEncoder, encode_queries
from longtail.encode.factory import build_encoder
from longtail.encode.item_text import item_texts
from longtail.search.cross_encoder import CROSS_ENCODER_DIR, CrossEncoderScorer
from longtail.search.dense import DenseIndex
from longtail.search.features import RankingFeatures
from longtail.search.filters import FacetCodes, SearchFilter, allowed_rows, filter_columns
from longtail.search.finetuned import FINETUNED_DIR, FINETUNED_FEATURE, FinetunedCosine
from longtail.search.fusion import reciprocal_rank_fusion
from longtail.search.learned import LearnedRanker
from longtail.search.lexical import LexicalIndex

log = logging.getLogger(__name__)
Mode = Literal["hybrid", "lexical", "dense"]
ITEMS_FILE = "items.parquet"
VECTORS_FILE = "vectors.npy"
LEXICAL_DIR = "lexical"
RECENT_FILE = "user_recent_items.parquet"
# The score the engine hands the learned ranker besides the generic pair features, when the index folder holds a
# cross-encoder and the ranker was trained with it. (The candidates' RRF score is no feature: judged items that
# retrieval missed have none, so a ranker trained on judgments learns the judging process from it, not relevance.)
CROSS_ENCODER_FEATURE = "cross_encoder"
# Scores the engine computes per pair from models in its folder, appended after the generic features in the ranker's order.
MODEL_FEATURES = (FINETUNED_FEATURE, CROSS_ENCODER_FEATURE)


@dataclass
class SearchHit:
    """One result: the item, its fused score and where each retriever ranked it (None: not retrieved)."""

    item_id: str
    title: str
    score: float
    row: int
    lexical_rank: int | None
    dense_rank: int | None
    fields: dict[str, object] = field(default_factory=dict)


@dataclass
class SearchResults:
    """Ranked hits, facet counts over the fused candidates, and the index terms the query searched for."""

    hits: list[SearchHit]
    facets: dict[str, list[tuple[str, int]]]
    query_terms: list[str]
    personalised: bool
    total: int = 0  # fused candidates before the cut to k


def recent_items_by_user(events: pl.DataFrame, limit: int) -> pl.DataFrame:
    """Each user's `limit` most recent item interactions (searches excluded), newest first."""
    return (
        events.filter(pl.col("item_id").is_not_null() & (pl.col("event_type") != "search"))
        .sort("timestamp", descending=True)
        .group_by("user_id", maintain_order=True)
        .head(limit)
        .select("user_id", "item_id")
    )


class SearchEngine:
    """A searchable catalogue: items, their vectors, a BM25 index, an ANN index and users' recent items."""

    def __init__(
        self,
        items: pl.DataFrame,
        lexical: LexicalIndex,
        dense: DenseIndex,
        encoder: TextEncoder,
        config: LongtailConfig,
        recent: pl.DataFrame | None = None,
        directory: Path | None = None,
        ranker: LearnedRanker | None = None,
        cross_encoder: CrossEncoderScorer | None = None,
        finetuned: FinetunedCosine | None = None,
    ) -> None:
        self.items = items
        self.lexical = lexical
        self.dense = dense
        self.encoder = encoder
        self.config = config
        self.recent = recent if recent is not None else pl.DataFrame(schema={"user_id": pl.String, "item_id": pl.String})
        self._row_of = {item_id: row for row, item_id in enumerate(items["item_id"].to_list())}
        self._titles = items["title"].to_list()
        self._ids = items["item_id"].to_list()
        self._filter_columns = filter_columns(items)
        # Rows replaced by a later version of their item stay in both indexes but are never returned.
        self._live: np.ndarray | None = None
        self.directory = directory
        self.ranker = ranker
        self.cross_encoder = cross_encoder
        self.finetuned = finetuned
        self._ranking_features: RankingFeatures | None = None
        self._texts: list[str] | None = None
        self._facet_codes: FacetCodes | None = None

    @classmethod
    def build(
        cls,
        items: pl.DataFrame,
        config: LongtailConfig | None = None,
        encoder: TextEncoder | None = None,
        events: pl.DataFrame | None = None,
        directory: str | Path | None = None,
        vectors: np.ndarray | None = None,
        show_progress: bool = False,
    ) -> SearchEngine:
        """Index a catalogue (encoding its texts unless vectors are given); saved to `directory` when one is given."""
        config = config or LongtailConfig()
        if items.height == 0:
            raise LongtailError("cannot build a search index from an empty catalogue")
        if items["item_id"].n_unique() != items.height:
            raise LongtailError("item_id values must be unique to build a search index; run `longtail audit` first")
        encoder = encoder or build_encoder(config.encode)
        texts = item_texts(items)
        if vectors is None:
            vectors = encoder.encode(texts, show_progress=show_progress)
        directory = Path(directory) if directory is not None else None
        lexical = LexicalIndex.build(texts, None if directory is None else directory / LEXICAL_DIR, config.search.fuzzy, config.search.fuzzy_min_length)
        dense = DenseIndex.build(vectors, config.search, config.seed)
        recent = recent_items_by_user(events, config.search.recent_items) if events is not None else None
        engine = cls(items, lexical, dense, encoder, config, recent, directory)
        if directory is not None:
            engine.save(directory)
        return engine

    def save(self, directory: str | Path) -> None:
        """Write everything except the BM25 index (written in place by `build`) plus the config that made it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.items.write_parquet(directory / ITEMS_FILE)
        np.save(directory / VECTORS_FILE, self.dense.vectors)
        self.dense.save(directory)
        self.recent.write_parquet(directory / RECENT_FILE)
        save_config(self.config, directory)
        write_manifest(directory)  # last: it records the BM25 files `build` wrote too

    @classmethod
    def open(cls, directory: str | Path, encoder: TextEncoder | None = None, lexical_copy: str | Path | None = None) -> SearchEngine:
        """Load an index folder written by `build(directory=...)`; with `lexical_copy`, the BM25 index is copied
        there first, so items added later (`add_items`) never change the index folder itself."""
        directory = Path(directory)
        if not (directory / CONFIG_FILENAME).is_file() or not (directory / ITEMS_FILE).is_file():
            raise LongtailError(f"{directory}: not a search index; build one with `longtail index`")
        if not verify_manifest(directory):
            log.warning("%s: no %s (built before manifests); its files cannot be checked, rebuild it to have them checked", directory, MANIFEST_FILE)
        config = load_config(directory / CONFIG_FILENAME)
        vectors = np.load(directory / VECTORS_FILE)
        lexical_dir = directory / LEXICAL_DIR
        if lexical_copy is not None:
            shutil.copytree(lexical_dir, lexical_copy, dirs_exist_ok=True)
            lexical_dir = Path(lexical_copy)
        lexical = LexicalIndex.open(lexical_dir, config.search.fuzzy, config.search.fuzzy_min_length)
        dense = DenseIndex.open(directory, vectors, config.search)
        recent = pl.read_parquet(directory / RECENT_FILE)
        items = pl.read_parquet(directory / ITEMS_FILE)
        cross_encoder = CrossEncoderScorer(directory / CROSS_ENCODER_DIR) if (directory / CROSS_ENCODER_DIR).is_dir() else None
        finetuned = FinetunedCosine.open(directory / FINETUNED_DIR) if (directory / FINETUNED_DIR).is_dir() else None
        return cls(
            items, lexical, dense, encoder or build_encoder(config.encode), config, recent, directory, LearnedRanker.load(directory), cross_encoder, finetuned
        )

    def ranking_features(self) -> RankingFeatures:
        """The (query, item) feature builder over this catalogue, built on first use (it tokenizes every item once)."""
        if self._ranking_features is None or len(self._ranking_features.titles) != self.items.height:
            self._ranking_features = RankingFeatures(self.items, self.dense.vectors, self.lexical.query_terms)
        return self._ranking_features

    def facet_codes(self) -> FacetCodes:
        """The facet fields' codes per catalogue row, made on first use and again after items are added."""
        codes = self._facet_codes
        if codes is None or codes.height != self.items.height:
            codes = self._facet_codes = FacetCodes(self.items, self.config.search.facet_fields)
        return codes

    def item_text(self, rows: np.ndarray) -> list[str]:
        """The indexed text of catalogue rows (what BM25, the encoder and the cross-encoder read)."""
        if self._texts is None or len(self._texts) != self.items.height:
            self._texts = item_texts(self.items)
        return [self._texts[row] for row in np.asarray(rows).tolist()]

    def cross_encoder_scores(self, query: str, rows: np.ndarray) -> np.ndarray:
        """The index's cross-encoder scores of rows for a query."""
        if self.cross_encoder is None:
            raise LongtailError("this index has no cross-encoder folder; its learned ranker cannot use one")
        return self.cross_encoder.score(query, self.item_text(rows))

    def model_features(self, query: str, rows: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
        """The model scores among `names` (see MODEL_FEATURES) of rows for a query, in the order `names` lists them."""
        computed: dict[str, np.ndarray] = {}
        for name in names:
            if name == CROSS_ENCODER_FEATURE:
                computed[name] = self.cross_encoder_scores(query, rows)
            elif name == FINETUNED_FEATURE:
                if self.finetuned is None:
                    raise LongtailError("this index has no fine-tuned encoders (finetuned/ folder); its learned ranker cannot use their cosine")
                computed[name] = self.finetuned.scores(query, rows)
        return computed

    def set_finetuned(self, finetuned: FinetunedCosine | None) -> None:
        """Use fine-tuned encoders' cosine (None: none) for ranker features, saving them into the index folder if there is one."""
        if finetuned is not None and len(finetuned.vectors[0]) != self.items.height:
            raise LongtailError(f"fine-tuned vectors cover {len(finetuned.vectors[0])} rows, the index has {self.items.height}")
        self.finetuned = finetuned
        if finetuned is not None and self.directory is not None:
            finetuned.save(self.directory / FINETUNED_DIR)

    def set_ranker(self, ranker: LearnedRanker | None) -> None:
        """Use a learned ranker on the fused candidates (None: fusion order), saving it into the index folder if there is one."""
        self.ranker = ranker
        if ranker is not None and self.directory is not None:
            ranker.save(self.directory)

    def set_cross_encoder(self, scorer: CrossEncoderScorer | None) -> None:
        """Use a trained cross-encoder (None: none) for ranker features, copying its folder into the index folder if there is one."""
        self.cross_encoder = scorer
        if scorer is not None and self.directory is not None and scorer.directory.resolve() != (self.directory / CROSS_ENCODER_DIR).resolve():
            shutil.copytree(scorer.directory, self.directory / CROSS_ENCODER_DIR, dirs_exist_ok=True)

    def set_fusion(self, rrf_k: int, lexical_weight: float) -> None:
        """Fuse with this RRF k and lexical weight (dense weight 1), saving them in the index folder's config if there is one."""
        search = self.config.search.model_copy(update={"rrf_k": rrf_k, "lexical_weight": lexical_weight, "dense_weight": 1.0})
        self.config = self.config.model_copy(update={"search": search})
        if self.directory is not None:
            save_config(self.config, self.directory)
            update_manifest(self.directory, [CONFIG_FILENAME])

    def candidates(self, queries: list[str], query_vectors: np.ndarray, depth: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each unfiltered query's BM25 rows and dense rows (best first, `depth` each), before fusion: what fusion tuning reads."""
        dense = self._dense_batch(query_vectors, depth)
        return [(self.lexical.search(query, depth, self._live)[0], rows) for query, rows in zip(queries, dense, strict=True)]

    def rerank(self, query: str, rows: np.ndarray, fused: np.ndarray, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The learned ranker's order of the first `depth` fused candidates (the rest keep their fused order below them)."""
        if self.ranker is None:
            raise LongtailError("this index has no learned ranker; train one with `longtail train-ranker`")
        depth = self.ranker.meta.settings.depth
        top = rows[:depth]
        features = self.ranking_features().compute(query, top, vector, self.model_features(query, top, self.ranker.features))
        learned = self.ranker.score(features)
        order = np.argsort(-learned, kind="stable")
        # Scores below the re-ranked head are shifted under its minimum, so the returned scores stay ordered.
        tail_scores = fused[depth:] - fused[depth:].max(initial=0.0) + (learned.min(initial=0.0) - 1.0)
        return np.concatenate([top[order], rows[depth:]]), np.concatenate([learned[order], tail_scores])

    def cross_encoder_rerank(self, query: str, rows: np.ndarray, depth: int) -> np.ndarray:
        """Rows with their first `depth` re-ordered by the cross-encoder (one batched pass); the rest keep their order."""
        head = np.asarray(rows[:depth])
        order = np.argsort(-self.cross_encoder_scores(query, head), kind="stable")
        return np.concatenate([head[order], rows[depth:]])

    def row_of(self, item_id: str) -> int | None:
        """The live catalogue row of an item, if it is indexed."""
        return self._row_of.get(item_id)

    def live_rows(self) -> np.ndarray | None:
        """A mask of the rows that may be returned (None: all of them)."""
        return self._live

    def visible_rows(self, search_filter: SearchFilter | None = None) -> np.ndarray | None:
        """A mask of the live rows that pass a filter (None: every row)."""
        allowed = allowed_rows(self._filter_columns, search_filter)
        if self._live is not None:
            allowed = self._live if allowed is None else allowed & self._live
        return allowed

    def nearest(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k live rows whose item vectors are closest to a unit vector, and their cosines, best first."""
        found, scores = self.dense.search(vector, k, self._live)
        keep = found[0] >= 0
        return found[0][keep], scores[0][keep]

    def add_items(self, items: pl.DataFrame, vectors: np.ndarray | None = None) -> None:
        """Make new or changed items searchable at once, without a rebuild: their texts are encoded (unless vectors
        are given) and appended to the BM25 and ANN indexes; an earlier row of the same item is retired."""
        if items.height == 0:
            return
        if items["item_id"].n_unique() != items.height:
            raise LongtailError("item_id values must be unique within one batch of added items")
        texts = item_texts(items)
        if vectors is None:
            vectors = self.encoder.encode(texts)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        first = self.items.height
        added = items.select([name for name in self.items.columns if name in items.columns])
        self.lexical.add(texts, first)
        self.dense.add(vectors)
        if self.finetuned is not None:
            self.finetuned.add(texts)
        live = np.ones(first + items.height, dtype=bool)
        if self._live is not None:
            live[:first] = self._live
        for row, item_id in enumerate(added["item_id"].to_list(), start=first):
            previous = self._row_of.get(item_id)
            if previous is not None:
                live[previous] = False
            self._row_of[item_id] = row
        self._live = None if live.all() else live
        self.items = pl.concat([self.items, added], how="diagonal_relaxed")
        self._filter_columns = pl.concat([self._filter_columns, filter_columns(added)])
        self._titles = [*self._titles, *added["title"].to_list()]
        self._ids = [*self._ids, *added["item_id"].to_list()]

    def forget_users(self, user_ids: list[str]) -> int:
        """Drop users' recent items from memory and from the index folder's copy; how many rows left."""
        kept = self.recent.filter(~pl.col("user_id").is_in(user_ids))
        removed = self.recent.height - kept.height
        self.recent = kept
        if removed and self.directory is not None:
            temporary = self.directory / f"{RECENT_FILE}.tmp"
            kept.write_parquet(temporary)
            temporary.replace(self.directory / RECENT_FILE)
            update_manifest(self.directory, [RECENT_FILE])
        return removed

    def profile_vector(self, user_id: str | None = None, item_ids: list[str] | None = None) -> np.ndarray | None:
        """A user's interest vector: the normalised mean of their recent items' vectors (None when unknown)."""
        if item_ids is None and user_id is not None:
            item_ids = self.recent.filter(pl.col("user_id") == user_id)["item_id"].to_list()
        rows = [self._row_of[item] for item in item_ids or [] if item in self._row_of]
        if not rows:
            return None
        mean = self.dense.vectors[rows].mean(axis=0)
        norm = float(np.linalg.norm(mean))
        return (mean / norm).astype(np.float32) if norm > 0 else None

    def _retrieve(
        self, query: str, mode: Mode, depth: int, allowed: np.ndarray | None, query_vector: np.ndarray | None, dense_rows: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """BM25 rows and dense rows (each best first; empty when the mode skips it) and the query vector used."""
        empty = np.zeros(0, dtype=np.int64)
        lexical_rows, vector = empty, None
        if mode in ("hybrid", "lexical"):
            lexical_rows, _ = self.lexical.search(query, depth, allowed, match_all=self.config.search.match == "all")
        if mode in ("hybrid", "dense"):
            vector = query_vector if query_vector is not None else encode_queries(self.encoder, [query])
            if dense_rows is None:
                found, _ = self.dense.search(vector, depth, allowed)
                dense_rows = found[0][found[0] >= 0]
        return lexical_rows, empty if dense_rows is None or mode == "lexical" else dense_rows, vector

    def _dense_batch(self, vectors: np.ndarray, depth: int) -> list[np.ndarray]:
        """Dense candidates of many query vectors in one ANN call (one call per query costs ~10x more on a busy CPU)."""
        found, _ = self.dense.search(vectors, depth, self._live)
        return [rows[rows >= 0] for rows in found]

    def search(
        self,
        query: str,
        k: int = 10,
        search_filter: SearchFilter | None = None,
        user_id: str | None = None,
        profile: np.ndarray | None = None,
        mode: Mode = "hybrid",
        query_vector: np.ndarray | None = None,
        lexical_weight: float | None = None,
        learned: bool = True,
        dense_rows: np.ndarray | None = None,
    ) -> SearchResults:
        """Rank the catalogue for a query; `mode` picks BM25, dense or both fused; the index's learned ranker (unless
        `learned` is False) re-orders the hybrid candidates; a user's profile re-ranks the candidates. `dense_rows`:
        dense candidates found beforehand (by `search_many`) for an unfiltered search."""
        settings = self.config.search
        depth = max(settings.candidates, k)
        allowed = self.visible_rows(search_filter)
        lexical_rows, dense_rows, vector = self._retrieve(query, mode, depth, allowed, query_vector, dense_rows)
        weights = [settings.lexical_weight if lexical_weight is None else lexical_weight, settings.dense_weight]
        rows, scores = reciprocal_rank_fusion([lexical_rows, dense_rows], weights, settings.rrf_k)
        if learned and self.ranker is not None and vector is not None and mode == "hybrid" and len(rows):
            rows, scores = self.rerank(query, rows, scores, vector)
        if profile is None and user_id is not None:
            profile = self.profile_vector(user_id)
        personalised = profile is not None and settings.personal_weight > 0 and len(rows) > 0
        if personalised:
            # The profile only re-orders what the query retrieved: it adds one more ranked list, never new items.
            affinity = self.dense.vectors[rows] @ profile
            by_affinity = rows[np.argsort(-affinity, kind="stable")]
            rows, scores = reciprocal_rank_fusion([rows, by_affinity], [1.0, settings.personal_weight], settings.rrf_k)
        facets = self.facet_codes().counts(rows[: settings.facet_depth])
        lexical_rank = {row: rank for rank, row in enumerate(lexical_rows.tolist(), start=1)}
        dense_rank = {row: rank for rank, row in enumerate(dense_rows.tolist(), start=1)}
        hits = [
            SearchHit(self._ids[row], self._titles[row], float(score), int(row), lexical_rank.get(row), dense_rank.get(row))
            for row, score in zip(rows[:k].tolist(), scores[:k].tolist(), strict=True)
        ]
        terms = self.lexical.query_terms(query) if mode != "dense" else []
        return SearchResults(hits, facets, terms, personalised, len(rows))

    def ranked_ids(
        self, query: str, k: int = 100, mode: Mode = "hybrid", query_vector: np.ndarray | None = None, lexical_weight: float | None = None, learned: bool = True
    ) -> list[str]:
        """Just the ranked item ids, for evaluation runs."""
        hits = self.search(query, k, mode=mode, query_vector=query_vector, lexical_weight=lexical_weight, learned=learned).hits
        return [hit.item_id for hit in hits]

    def search_many(self, queries: list[str], query_vectors: np.ndarray, k: int = 100, mode: Mode = "hybrid", learned: bool = True) -> list[list[str]]:
        """Ranked item ids for many unfiltered queries, their dense candidates found in one batch (evaluation runs)."""
        depth = max(self.config.search.candidates, k)
        dense = self._dense_batch(query_vectors, depth) if mode != "lexical" else [None] * len(queries)
        return [
            [hit.item_id for hit in self.search(query, k, mode=mode, query_vector=vector, learned=learned, dense_rows=rows).hits]
            for query, vector, rows in zip(queries, query_vectors, dense, strict=True)
        ]
