"""Fine-tuning the dense encoder for a catalogue: BM25-mined hard negatives, early stopping on validation NDCG@10, cached on disk.

Two sources of training queries: graded judgments of training queries (`judgment_examples`), or synthetic queries written
from the titles alone (`synthetic_examples`, no judgments used). `train_or_load_finetuned` trains once per output folder and
afterwards loads the saved model, so a benchmark can call it every run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import polars as pl

from longtail.augment.queries import SHOPPER_TEMPLATES, generate_queries
from longtail.core.config import EncodeConfig, LongtailConfig
from longtail.core.errors import LongtailError
from longtail.data.query_split import query_folds
from longtail.encode.encoder import TextEncoder
from longtail.encode.factory import build_encoder
from longtail.encode.finetune import OBJECTIVE, REPORT_FILE, Example, finetune_encoder
from longtail.encode.item_text import item_texts
from longtail.evaluate.search_metrics import evaluate_run
from longtail.search.dense import exact_search
from longtail.search.lexical import LexicalIndex

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MODEL_FILE = "model.safetensors"
SOURCE_FILE = "training_source.json"
Source = Literal["judgments", "synthetic"]


def _negatives_by_query(lexical: LexicalIndex, item_ids: Sequence[str], queries: Sequence[str], exclude: Sequence[set[str]], depth: int) -> list[list[str]]:
    """Per query, the item ids of its top-`depth` BM25 hits that are not in its `exclude` set, best first."""
    found = []
    for query, excluded in zip(queries, exclude, strict=True):
        rows, _ = lexical.search(query, depth + len(excluded))
        found.append([item_ids[row] for row in rows if item_ids[row] not in excluded][:depth])
    return found


def judgment_examples(items: pl.DataFrame, judgments: pl.DataFrame, min_grade: float = 2.0, depth: int = 10, seed: int = 42) -> list[Example]:
    """(query, positive text, hard negative text) per judged item with grade >= `min_grade`; the negative is a judged item of
    the same query below `min_grade` (lowest grade first) when there is one, else a top BM25 hit the query has no judgment for."""
    texts = item_texts(items)
    item_ids = items["item_id"].to_list()
    text_of = dict(zip(item_ids, texts, strict=True))
    lexical = LexicalIndex.build(texts)
    grouped = judgments.filter(pl.col("item_id").is_in(item_ids)).group_by("query_id", maintain_order=True).agg("query", "item_id", "grade")
    queries = [query[0] for query in grouped["query"].to_list()]
    judged = [set(ids) for ids in grouped["item_id"].to_list()]
    unjudged = _negatives_by_query(lexical, item_ids, queries, judged, depth)
    rng = np.random.default_rng(seed)
    examples: list[Example] = []
    for query, ids, grades, mined in zip(queries, grouped["item_id"].to_list(), grouped["grade"].to_list(), unjudged, strict=True):
        positives = [item for item, grade in zip(ids, grades, strict=True) if grade >= min_grade]
        low = [item for _, item in sorted((grade, item) for item, grade in zip(ids, grades, strict=True) if grade < min_grade)]
        pool = low + list(rng.permutation(mined)) if mined else low
        if not pool:
            continue
        examples.extend((query, text_of[positive], text_of[pool[number % len(pool)]]) for number, positive in enumerate(positives))
    return examples


def synthetic_examples(
    items: pl.DataFrame, max_items: int | None = None, per_item: int = 3, depth: int = 10, seed: int = 42, hard_negatives: bool = True
) -> list[Example]:
    """(synthetic query, its item's text, hard negative text) from the titles alone: queries from `augment.queries`, the
    negative a top BM25 hit for the query with a different text (no judgments used); without `hard_negatives`, (query, text) pairs."""
    texts = item_texts(items)
    item_ids = items["item_id"].to_list()
    text_of = dict(zip(item_ids, texts, strict=True))
    chosen = items if max_items is None or max_items >= items.height else items.sample(max_items, seed=seed)
    # Salient words are weighed against the whole catalogue, so a sample gets the same queries it would get in full.
    generated = generate_queries(items, per_item=per_item, templates=SHOPPER_TEMPLATES).filter(pl.col("item_id").is_in(chosen["item_id"].to_list()))
    queries, owners = generated["query"].to_list(), generated["item_id"].to_list()
    if not hard_negatives:
        return [(query, text_of[owner]) for query, owner in zip(queries, owners, strict=True)]
    lexical = LexicalIndex.build(texts)
    mined = _negatives_by_query(lexical, item_ids, queries, [{owner} for owner in owners], depth)
    rng = np.random.default_rng(seed)
    examples: list[Example] = []
    for query, owner, candidates in zip(queries, owners, mined, strict=True):
        # Variants of the same product share a title: such a "negative" would contradict the positive.
        different = [item for item in candidates if text_of[item] != text_of[owner]]
        if different:
            examples.append((query, text_of[owner], text_of[different[int(rng.integers(len(different)))]]))
    return examples


class ValidationScorer:
    """Condensed NDCG@10 (each validation query's judged items ranked by cosine) and NDCG@10 over a sampled catalogue
    (the judged items plus `distractors` random others, unjudged = not relevant); the objective is their mean."""

    def __init__(self, items: pl.DataFrame, judgments: pl.DataFrame, max_queries: int | None = 400, distractors: int = 2000, seed: int = 42) -> None:
        rng = np.random.default_rng(seed)
        query_ids = judgments["query_id"].unique(maintain_order=True).to_list()
        if max_queries is not None and len(query_ids) > max_queries:
            query_ids = [query_ids[i] for i in sorted(rng.choice(len(query_ids), max_queries, replace=False))]
        self.judgments = judgments.filter(pl.col("query_id").is_in(query_ids))
        judged = set(self.judgments["item_id"].to_list())
        others = items.filter(~pl.col("item_id").is_in(list(judged)))
        sample = others.sample(min(distractors, others.height), seed=seed)
        self.items = pl.concat([items.filter(pl.col("item_id").is_in(list(judged))), sample])
        self.texts = item_texts(self.items)
        self.item_ids = self.items["item_id"].to_list()
        firsts = self.judgments.group_by("query_id", maintain_order=True).agg(pl.col("query").first(), pl.col("item_id"))
        self.query_ids, self.queries, self.judged_ids = firsts["query_id"].to_list(), firsts["query"].to_list(), firsts["item_id"].to_list()

    def __call__(self, model: SentenceTransformer) -> dict[str, float]:
        """Metrics of a sentence-transformers model on the validation queries; `objective` is their mean."""
        item_vectors = np.asarray(model.encode(self.texts, batch_size=128, normalize_embeddings=True, convert_to_numpy=True), dtype=np.float32)
        query_vectors = np.asarray(model.encode(self.queries, batch_size=128, normalize_embeddings=True, convert_to_numpy=True), dtype=np.float32)
        return self.score_vectors(item_vectors, query_vectors)

    def score_vectors(self, item_vectors: np.ndarray, query_vectors: np.ndarray) -> dict[str, float]:
        """The metrics from item vectors (rows of `self.items`) and query vectors (rows of `self.queries`)."""
        row_of = {item: row for row, item in enumerate(self.item_ids)}
        condensed, full = {}, {}
        rows, _ = exact_search(item_vectors, query_vectors, 10)
        for position, (query_id, judged) in enumerate(zip(self.query_ids, self.judged_ids, strict=True)):
            judged_rows = np.array([row_of[item] for item in judged])
            order = np.argsort(-(item_vectors[judged_rows] @ query_vectors[position]), kind="stable")
            condensed[query_id] = [judged[i] for i in order]
            full[query_id] = [self.item_ids[row] for row in rows[position] if row >= 0]
        condensed_ndcg = float(np.mean(evaluate_run(condensed, self.judgments)["NDCG@10"].to_numpy()))
        full_ndcg = float(np.mean(evaluate_run(full, self.judgments)["NDCG@10"].to_numpy()))
        return {"NDCG@10_condensed": condensed_ndcg, "NDCG@10_sampled_catalogue": full_ndcg, OBJECTIVE: (condensed_ndcg + full_ndcg) / 2}

    def score_encoder(self, encoder: TextEncoder) -> dict[str, float]:
        """The same metrics for any Longtail encoder (stock, int8, or a fine-tuned one loaded from disk)."""
        from longtail.encode.encoder import encode_queries

        return self.score_vectors(encoder.encode(self.texts, 128), encode_queries(encoder, self.queries))


def train_or_load_finetuned(
    items: pl.DataFrame,
    out_dir: str | Path,
    config: LongtailConfig,
    source: Source = "judgments",
    train_judgments: pl.DataFrame | None = None,
    validation_judgments: pl.DataFrame | None = None,
    min_grade: float = 2.0,
    synthetic_items: int | None = 20_000,
    hard_negatives: bool = True,
) -> TextEncoder:
    """The fine-tuned MiniLM in `out_dir` as an encoder (behind `config.encode.cache_dir`), training it first if the folder has
    no model: on `train_judgments` (source "judgments") or on synthetic queries from the titles (source "synthetic"),
    early-stopped on `validation_judgments`."""
    out = Path(out_dir)
    if not (out / MODEL_FILE).is_file():
        if validation_judgments is None:
            raise LongtailError(f"{out}: no fine-tuned model there yet, and training it needs validation judgments for early stopping")
        if source == "judgments":
            if train_judgments is None:
                raise LongtailError(f"{out}: fine-tuning on judgments needs the training queries' judgments")
            examples = judgment_examples(items, train_judgments, min_grade, seed=config.seed)
        else:
            examples = synthetic_examples(items, synthetic_items, seed=config.seed, hard_negatives=hard_negatives)
        scorer = ValidationScorer(items, validation_judgments, seed=config.seed)
        finetune_encoder(examples, out, config, scorer=scorer)
        (out / SOURCE_FILE).write_text(
            json.dumps(
                {
                    "source": source,
                    "min_grade": min_grade if source == "judgments" else None,
                    "hard_negatives": hard_negatives,
                    "examples": len(examples),
                    "report": REPORT_FILE,
                },
                indent=2,
            ),
            encoding="utf-8",
        )
    return build_encoder(EncodeConfig.model_validate({**config.encode.model_dump(), "encoder": "minilm", "model_path": str(out)}))


def train_or_load_folds(
    items: pl.DataFrame,
    out_dir: str | Path,
    config: LongtailConfig,
    train_judgments: pl.DataFrame,
    validation_judgments: pl.DataFrame,
    folds: int = 2,
    min_grade: float = 2.0,
) -> tuple[list[TextEncoder], dict[str, int]]:
    """Cross-fitted fine-tuned encoders: model k (in `out_dir/fold-k`) trained on the training queries outside fold k,
    each early-stopped on `validation_judgments`; with the query id -> fold map (`query_folds`, the cross-encoders' folds),
    so a training pair can take the cosine of the one model that never saw its query."""
    fold_of = query_folds([str(query) for query in train_judgments["query_id"].to_list()], folds, config.seed)
    fold_column = train_judgments["query_id"].cast(pl.String).replace_strict(fold_of, return_dtype=pl.Int64)
    encoders = [
        train_or_load_finetuned(
            items, Path(out_dir) / f"fold-{fold}", config, "judgments", train_judgments.filter(fold_column != fold), validation_judgments, min_grade
        )
        for fold in range(folds)
    ]
    return encoders, fold_of
