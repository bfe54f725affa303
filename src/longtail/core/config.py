"""One validated configuration, loaded from YAML with defaults, saved next to every artifact."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from longtail.core.errors import ConfigError

CONFIG_FILENAME = "config.yaml"
# The one list of behaviour event types; it lives here so config can check event weights without importing data/.
EVENT_TYPES: tuple[str, ...] = ("search", "view", "click", "add_to_cart", "purchase", "rating", "review", "return")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ColumnMapping(_Section):
    """Maps a user's own column names onto the canonical ones, per table."""

    items: dict[str, str] = Field(default_factory=dict, description="source column -> canonical column")
    events: dict[str, str] = Field(default_factory=dict)
    users: dict[str, str] = Field(default_factory=dict)
    judgments: dict[str, str] = Field(default_factory=dict)


class ColumnExpressions(_Section):
    """Canonical columns computed from a row, per table: a constant (`'purchase'`) or a SQL expression over the file's columns."""

    items: dict[str, str] = Field(default_factory=dict, description="canonical column -> SQL expression")
    events: dict[str, str] = Field(default_factory=dict, description="e.g. event_type: \"CASE WHEN qty < 0 THEN 'return' ELSE 'purchase' END\"")


class TransactionConfig(_Section):
    """How `longtail convert --transactions` reads a line-item log (one row per invoice line)."""

    columns: dict[str, str] = Field(
        default_factory=dict,
        description="role -> your column, for roles invoice, item_id, title, quantity, price, timestamp, user_id; "
        "unnamed roles are found by common export names (InvoiceNo, StockCode, Description, ...)",
    )
    return_invoice_prefix: str | None = Field(
        None, description="invoices starting with this text are returns/cancellations (e.g. 'C'); None: a negative quantity marks a return"
    )


class DataConfig(_Section):
    """Where the tables come from, how their columns are named, and how their cells are written."""

    columns: ColumnMapping = Field(default_factory=ColumnMapping)
    expressions: ColumnExpressions = Field(default_factory=ColumnExpressions)
    csv_separator: str = ","
    encoding: str = Field("utf-8", description="text encoding of CSV/JSONL files, e.g. latin-1 (cp1252) for older spreadsheet exports")
    decimal_separator: Literal[".", ","] = Field(".", description="',' reads numbers written as 12,50 (a thousands '.' is then dropped)")
    timestamp_format: str | None = Field(None, description="strftime format of time cells, e.g. '%m/%d/%y %H:%M'; tried before the ISO forms")
    transactions: TransactionConfig = Field(default_factory=TransactionConfig)


class QualityConfig(_Section):
    """Thresholds of the audit checks and which cleaning rules run."""

    min_rating: float = 1.0
    max_rating: float = 5.0
    allowed_currencies: list[str] = Field(default_factory=list, description="empty: any ISO-like 3-letter code")
    future_tolerance_seconds: int = Field(3600, ge=0, description="clock skew allowed before a timestamp counts as future")
    reference_time: str | None = Field(None, description="ISO time treated as 'now'; default: the audit's wall clock")
    catalogue_start: str | None = Field(None, description="ISO date before which no event or item can exist")
    near_duplicate_threshold: float = Field(0.8, gt=0.0, le=1.0, description="Jaccard similarity of character shingles")
    near_duplicate_shingle: int = Field(3, ge=1, le=10)
    price_outlier_ratio: float = Field(20.0, gt=1.0, description="flag prices this many times above/below the category median")
    price_outlier_min_category_items: int = Field(5, ge=2)
    bot_window_seconds: int = Field(600, gt=0)
    bot_max_events_per_window: int = Field(300, gt=0, description="more events than this inside one window marks a bot")
    bot_robust_z: float = Field(8.0, gt=0, description="robust z-score of a user's peak rate that also marks a bot")
    quarantine_bots: bool = True
    fix_html: bool = True
    fix_mojibake: bool = True
    stale_after_days: int = Field(30, gt=0)
    max_unparseable_share: float = Field(
        0.5, ge=0.0, le=1.0, description="a column whose non-empty cells fail to parse above this share stops the audit (exit 2)"
    )
    rare_code_shape_share: float = Field(
        0.01, gt=0.0, lt=1.0, description="an item-code shape (digits as 9, letters as A) held by fewer codes than this share is unusual"
    )
    fee_price_dispersion: float = Field(
        0.25, gt=0.0, description="median absolute deviation / median of a code's unit prices above which its price is not a product's stable price"
    )
    generic_title_words: int = Field(2, ge=1, description="titles of at most this many words count as generic (e.g. POSTAGE, Bank Charges)")


class PipelineConfig(_Section):
    """Where batch steps run: in this process (default) or on a Spark cluster."""

    executor: Literal["local", "spark"] = "local"
    spark_master: str = Field("local[2]", description="local[N] or spark://host:port")
    spark_partitions: int = Field(8, ge=1)
    spark_connect_timeout_seconds: float = Field(30.0, gt=0, description="give up on an unreachable master after this long")
    spark_executor_memory: str = "1g"
    spark_driver_memory: str = "2g"
    in_process_memory_gb: float | None = Field(
        None, gt=0, description="memory the in-process executor may use; unset: what the machine has available when the step starts"
    )
    in_process_bytes_per_event: int = Field(
        500, gt=0, description="peak memory per event of the in-process audit (measured ~470-600 B), for refusing inputs that cannot fit"
    )


class DifferentialPrivacyConfig(_Section):
    """Noise for released aggregates: the privacy budget and the per-user contribution bounds it relies on."""

    epsilon: float = Field(1.0, gt=0, description="privacy budget of one release; smaller is more private and noisier")
    max_categories_per_user: int = Field(5, ge=1, description="a user counts towards at most this many categories")
    max_count_per_category: int = Field(1, ge=1, description="a user adds at most this much to one category's count")


class PrivacyConfig(_Section):
    """Pseudonymisation and PII scrubbing at ingestion, and differential privacy for released aggregates."""

    enabled: bool = Field(False, description="run pseudonymisation and PII scrubbing before the audit")
    pseudonymise: bool = True
    key_env: str = Field("LONGTAIL_PSEUDONYM_KEY", min_length=1, description="environment variable holding the pseudonym key")
    # exclude=True: the key must never be written next to the data by save_config.
    key: SecretStr | None = Field(None, exclude=True, description="pseudonym key; prefer key_env so it stays out of files")
    pseudonym_prefix: str = "u_"
    pseudonym_hex_chars: int = Field(16, ge=8, le=64, description="hex digits of HMAC-SHA256 kept (16 = 64 bits)")
    scrub_pii: bool = True
    scrub_columns: dict[str, list[str]] = Field(default_factory=lambda: {"events": ["query", "text"]}, description="table -> free-text columns to scrub")
    differential_privacy: DifferentialPrivacyConfig = Field(default_factory=DifferentialPrivacyConfig)


class ServeConfig(_Section):
    """The HTTP API: where events are stored, request limits and per-key rate limits."""

    store: Literal["sqlite", "postgres"] = Field("sqlite", description="postgres for several server processes sharing one store")
    sqlite_path: str | None = Field(None, description="SQLite file; default: longtail.db inside the served data directory")
    postgres_dsn: str | None = Field(None, description="libpq connection string, required when store is postgres")
    host: str = Field("127.0.0.1", description="interface to bind; loopback unless you mean to expose the API")
    port: int = Field(8000, ge=0, le=65535)
    # 2: measured on this 2-core machine, one process used one core (its event loop holds the interpreter lock); see docs/serving.md.
    workers: int = Field(2, ge=1, le=64, description="server processes sharing the port (SO_REUSEPORT) and the event store; each loads the whole model")
    max_body_bytes: int = Field(1_048_576, gt=0, description="larger request bodies get 413")
    max_batch_events: int = Field(1000, ge=1, description="most events in one POST /events")
    rate_limit_per_second: float = Field(100.0, gt=0, description="tokens each API key regains per second")
    rate_limit_burst: int = Field(200, ge=1, description="requests a key may make at once before being limited")
    key_cache_seconds: float = Field(
        1.0, ge=0, description="how long a verified API key is trusted without a store look-up (a revocation takes effect within it); 0: look up every request"
    )
    invalid_key_rate_per_second: float = Field(5.0, gt=0, description="requests with an unknown or revoked key one client address regains per second")
    invalid_key_burst: int = Field(50, ge=1, description="requests with a bad key one client address may make before getting 429 without a key look-up")
    max_results: int = Field(100, ge=1, description="largest k a search or recommendation may ask for")
    popularity_refresh_seconds: float = Field(10.0, ge=0, description="how stale the default popularity ranking may get")
    model_reload_seconds: float = Field(2.0, ge=0, description="how often a served model folder is checked for a new version; 0: never")
    query_cache_size: int = Field(4096, ge=0, description="query vectors kept in memory by model-backed search (LRU); 0: encode every query")
    batch_window_ms: float = Field(
        2.0, ge=0, le=50, description="how long a query encode or a recommendation waits for concurrent ones to share its forward pass"
    )
    # 1 by default: on the shared 2-core machine two batches at once split the work into smaller, costlier batches
    # (docs/serving.md has the runs); a machine with idle cores may do better with null.
    query_batch_concurrency: int | None = Field(
        1, ge=1, le=64, description="query-encode batches running at once (ONNX Runtime and torch release the interpreter lock); null: one per core"
    )
    recommend_batch_concurrency: int | None = Field(
        1, ge=1, le=64, description="recommendation batches running at once (smaller batches cost more CPU per user); null: one per core"
    )
    recommendation_cache_size: int = Field(
        4096, ge=0, description="recommendation lists kept in memory (LRU), keyed by model version, k and the user's sequence; 0: none"
    )
    result_cache_size: int = Field(2048, ge=0, description="non-personalised search answers kept in memory (LRU, cleared when items change); 0: none")
    compute_threads: int = Field(
        1, ge=1, le=64, description="threads one model call (torch, BLAS, OpenMP, LightGBM) may use; concurrent requests already fill the cores"
    )
    onnx_query_encoder_dir: str | None = Field(
        ".cache/onnx-query-encoders",
        description="where model-backed search exports its MiniLM query encoder to fp32 ONNX (by weights hash) for ONNX Runtime; null: torch",
    )
    compiled_ranker_dir: str | None = Field(
        ".cache/compiled-rankers",
        description="where a served fusion ranker's trees are compiled to native code (lleaves), keyed by the model's hash; null: score with LightGBM",
    )

    def batches_at_once(self, setting: int | None) -> int:
        """How many micro-batches of one kind run at once: the setting, else the number of cores."""
        return setting or os.cpu_count() or 1


class EncodeConfig(_Section):
    """Which text encoder turns item and query text into vectors, and where its cache lives."""

    encoder: Literal["minilm", "minilm-int8", "e5-multilingual"] = Field(
        "minilm", description="minilm: stock all-MiniLM-L6-v2; minilm-int8: its int8 ONNX fast path; e5-multilingual: handles Chinese"
    )
    model_path: str | None = Field(None, description="a fine-tuned model saved by `longtail finetune` (minilm only)")
    batch_size: int = Field(64, ge=1, description="texts encoded per forward pass")
    cache_dir: str | None = Field(
        ".cache/embeddings", description="embedding cache folder (one subfolder per encoder); unchanged texts are never re-encoded; null: no cache"
    )


class FinetuneConfig(_Section):
    """Contrastive fine-tuning of the MiniLM encoder on (query, item) pairs."""

    mode: Literal["full", "lora"] = "full"
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(32, ge=2, description="in-batch negatives: larger batches give harder training")
    learning_rate: float = Field(3e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    frozen_layers: int = Field(0, ge=0, description="freeze the embeddings and this many lowest transformer layers (full mode)")
    lora_rank: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    validation_fraction: float = Field(0.1, gt=0, lt=1)
    eval_steps: int = Field(50, ge=1)
    early_stopping_patience: int = Field(2, ge=1, description="evaluations without a lower validation loss before stopping")
    max_seq_length: int = Field(64, ge=8)
    max_minutes: float | None = Field(None, gt=0, description="wall-clock budget: training stops (keeping the best state so far) once it is spent")


class SearchConfig(_Section):
    """Lexical, dense and hybrid retrieval, filters, facets and personalisation."""

    ann: Literal["auto", "flat", "hnsw", "ivf"] = Field("auto", description="auto: exact below ann_min_items, HNSW up to 300k, IVF above")
    ann_min_items: int = Field(20_000, ge=0)
    hnsw_m: int = Field(32, ge=4)
    hnsw_ef_construction: int = Field(80, ge=8)
    hnsw_ef_search: int = Field(96, ge=8)
    ivf_lists: int = Field(0, ge=0, description="0: 4*sqrt(items)")
    ivf_probe: int = Field(24, ge=1)
    candidates: int = Field(100, ge=1, description="results taken from each retriever before fusion")
    rrf_k: int = Field(60, ge=1)
    lexical_weight: float = Field(1.0, ge=0)
    dense_weight: float = Field(1.0, ge=0)
    fuzzy: bool = Field(True, description="query words unknown to the index match words within one or two edits")
    fuzzy_min_length: int = Field(4, ge=1)
    match: Literal["any", "all"] = Field(
        "any", description="any: BM25 over items holding any query word; all: only items holding every word (a query none matches is relaxed)"
    )
    personal_weight: float = Field(0.3, ge=0, description="weight of a user's profile vector in the final score; 0 disables")
    recent_items: int = Field(20, ge=1, description="a user's most recent items that make their profile vector")
    facet_fields: list[str] = Field(default_factory=lambda: ["category", "brand"])
    facet_depth: int = Field(200, ge=1, description="facets count over this many fused candidates")


# The fast CPU recipe (issue 14): sampled softmax with logQ over many shared negatives instead of the full softmax,
# larger length-bucketed batches under a warm-up + cosine schedule, bf16 autocast, and early stopping on a validation
# sample. "old" is the field defaults, kept so earlier figures can be reproduced.
SEQUENTIAL_RECIPES: dict[str, dict[str, Any]] = {
    "old": {},
    "new": {
        "loss": "sampled",
        "negatives": 2048,
        "batch_size": 256,
        "lr": 3e-3,
        "schedule": "cosine",
        "warmup_steps": 100,
        "min_lr": 1e-4,
        "bucket": True,
        "autocast": "bf16",
        "valid_users": 4000,
        "epochs": 60,
        "patience": 8,
        "dropout": 0.3,
    },
}


class SequentialConfig(_Section):
    """The SASRec-style next-item transformer and how it is trained."""

    hidden: int = Field(64, gt=0)
    blocks: int = Field(2, gt=0)
    heads: int = Field(1, gt=0)
    max_len: int = Field(50, gt=1, description="most recent items the model reads")
    dropout: float = Field(0.5, ge=0.0, lt=1.0, description="on embeddings, attention and feed-forward layers")
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW decoupled weight decay")
    batch_size: int = Field(128, gt=0)
    epochs: int = Field(200, gt=0)
    patience: int = Field(20, gt=0, description="epochs without a better validation NDCG@10 before stopping")
    loss: Literal["ce", "sampled"] = Field("ce", description="full softmax over all items, or sampled softmax with logQ correction")
    negatives: int = Field(512, gt=0, description="shared negatives per batch for the sampled softmax")
    negative_exponent: float = Field(
        1.0, ge=0.0, description="sampled softmax draws negatives with probability proportional to count^exponent: 1 = popularity, 0 = uniform"
    )
    logq: bool = Field(True, description="subtract log of each item's sampling probability from its logit (sampled softmax only)")
    text_init: Literal["none", "freeze", "project", "finetune"] = Field(
        "none",
        description="none: random item embeddings; freeze: fixed PCA of text vectors; project: learned linear map of "
        "frozen text vectors; finetune: learned map plus a per-item correction (zero for items unseen in training)",
    )
    threads: int = Field(2, gt=0)
    max_train_seconds: float | None = Field(
        None,
        gt=0,
        description="stop after this much training time (validation not counted); "
        "a budget for the demo and time-to-quality runs, reported runs train to convergence",
    )
    recipe: Literal["old", "new"] = Field(
        "old",
        description="old: full softmax, batch 128, constant lr; new: the fast CPU recipe (see SEQUENTIAL_RECIPES), "
        "whose settings fill every key not set explicitly",
    )
    schedule: Literal["constant", "cosine"] = Field(
        "constant", description="learning rate after warm-up: constant, or cosine decay to min_lr over `epochs` (or over max_train_seconds when it ends first)"
    )
    warmup_steps: int = Field(0, ge=0, description="optimiser steps of linear learning-rate warm-up")
    min_lr: float = Field(0.0, ge=0.0, description="where the cosine schedule ends")
    bucket: bool = Field(False, description="batch histories of similar length together, so short histories are not padded to 50")
    autocast: Literal["none", "bf16"] = Field("none", description="bf16 autocast of the training forward pass (CPUs with AMX/AVX512-BF16)")
    valid_users: int | None = Field(None, gt=0, description="early stopping scores this many random validation users (all when None)")

    @model_validator(mode="before")
    @classmethod
    def _fill_recipe(cls, data: Any) -> Any:
        """A named recipe supplies its settings; keys given explicitly still win."""
        if isinstance(data, dict) and data.get("recipe") in SEQUENTIAL_RECIPES:
            return {**SEQUENTIAL_RECIPES[data["recipe"]], **data}
        return data


class TextSequentialConfig(_Section):
    """The text-aware sequential models: frozen item text vectors through a learned adaptor, fused with item ids, the tail blend."""

    experts: int = Field(8, gt=0, description="whitening experts of the mixture-of-experts text adaptor (UniSRec)")
    adaptor_dropout: float = Field(0.2, ge=0.0, lt=1.0, description="dropout on the frozen text vectors before the adaptor")
    id_embedding: Literal["add", "replace"] = Field(
        "add", description="add: adapted text vector plus a learned id vector (zero for items without training interactions); replace: text only"
    )
    tail_popularity: float = Field(
        10.0, gt=0.0, description="tail blend: an item with c training interactions takes weight exp(-c / this) on its text similarity score"
    )
    tail_recent: int = Field(5, gt=0, description="tail blend: last history items whose frozen text vectors make the user's text query")


class RecommendConfig(_Section):
    """Evaluation protocol, segments, baselines, fusion and long-tail re-ranking for recommendation."""

    model: str = Field("sasrec", description="a registered recommender: popularity, itemknn, als, ease, content, sasrec")
    ks: list[int] = Field(default_factory=lambda: [5, 10, 20])
    repeats: bool = Field(False, description="repeat consumption: a user's history is not masked from the ranking, so re-buying an item counts as a hit")
    head_item_share: float = Field(0.2, gt=0.0, lt=1.0, description="head = this share of items, the most interacted with in training")
    tail_interaction_share: float = Field(
        0.2, gt=0.0, lt=1.0, description="tail = the least popular items that together hold at most this share of training interactions"
    )
    cold_user_max_history: int = Field(4, ge=0, description="users with at most this many history items count as cold")
    bootstrap_samples: int = Field(1000, gt=0)
    knn_neighbours: int = Field(100, gt=0)
    als_factors: int = Field(64, gt=0)
    als_regularization: float = Field(0.05, ge=0.0)
    als_alpha: float = Field(10.0, gt=0.0)
    als_iterations: int = Field(15, gt=0)
    ease_lambda: float = Field(500.0, gt=0.0)
    content_recent: int = Field(5, gt=0, description="last history items whose text vectors make the content query")
    fusion_candidates: int = Field(50, gt=0, description="top items taken from each candidate source")
    fusion_trees: int = Field(200, gt=0)
    fusion_train_users: int = Field(10000, gt=0, description="users sampled to train the ranker")
    longtail_candidates: int = Field(100, gt=0, description="top items the long-tail re-ranker reorders")
    longtail_weight: float = Field(0.0, ge=0.0, le=1.0, description="the knob: 0 = accuracy only, 1 = least popular first")
    sequential: SequentialConfig = Field(default_factory=SequentialConfig)
    text: TextSequentialConfig = Field(default_factory=TextSequentialConfig)


class ComponentSpec(_Section):
    """One balancing or augmentation component by registered name, with the parameters its constructor takes."""

    name: str = Field(
        description="a registered component: random-sample, stratified-sample, weighted-sampling, random-under, "
        "random-over, smote, smote-enn, smote-tomek, class-weights, embedding-noise, ctgan, ..."
    )
    params: dict[str, Any] = Field(default_factory=dict)


def _default_tabular_strategies() -> dict[str, list[ComponentSpec]]:
    return {
        "baseline": [],
        "random_under": [ComponentSpec(name="random-under")],
        "random_over": [ComponentSpec(name="random-over")],
        "smote": [ComponentSpec(name="smote")],
        "smote_tomek": [ComponentSpec(name="smote-tomek")],
        "smote_enn": [ComponentSpec(name="smote-enn")],
        "weighted_sample": [ComponentSpec(name="weighted-sampling")],
        "class_weights_inverse": [ComponentSpec(name="class-weights", params={"method": "inverse"})],
        "class_weights_effective": [ComponentSpec(name="class-weights", params={"method": "effective", "beta": 0.999})],
    }


class TabularBalanceConfig(_Section):
    """Balancing of tabular training sets (a label column plus numeric features) and the classification experiment that compares them."""

    strategies: dict[str, list[ComponentSpec]] = Field(
        default_factory=_default_tabular_strategies,
        description="name -> components applied in order to the training split; an empty list is the unbalanced baseline",
    )
    classifier: Literal["logistic", "lightgbm"] = "logistic"
    sample_fraction: float = Field(0.2, gt=0, le=1, description="share of each zh-reviews category used (keeps the 17x imbalance)")
    test_fraction: float = Field(0.3, gt=0, lt=1, description="stratified, untouched test split")
    text_dimensions: int = Field(64, ge=2, description="LSA dimensions of the review-text features (TF-IDF over jieba tokens, then SVD)")
    bootstrap_samples: int = Field(1000, gt=0)


class BalanceConfig(_Section):
    """Imbalance correction and augmentation of training data."""

    tabular: TabularBalanceConfig = Field(default_factory=TabularBalanceConfig)


ACTIVITY_LEVELS: tuple[str, ...] = ("occasional", "regular", "frequent", "heavy")


class ProfileConfig(_Section):
    """User profiles (decay, sessions, windows, explanations) and how a live profile drives served recommendations."""

    half_life_days: float = Field(30.0, gt=0, description="an event's weight in the long-term interests halves every this many days")
    session_gap_minutes: float = Field(30.0, gt=0, description="a longer pause between two events starts a new session")
    intent_window_days: float = Field(30.0, gt=0, description="the intent distribution counts events this recent (before last seen)")
    max_recent_events: int = Field(200, ge=1, description="most events the intent window and the session list keep")
    event_weights: dict[str, float] = Field(
        default_factory=lambda: {"search": 0.0, "view": 1.0, "click": 1.0, "add_to_cart": 2.0, "purchase": 3.0, "rating": 2.0, "review": 2.0},
        description="interest weight of one event by type; types not listed weigh 0",
    )
    activity_thresholds: list[float] = Field(
        default_factory=lambda: [2.0, 5.0, 15.0],
        min_length=len(ACTIVITY_LEVELS) - 1,
        max_length=len(ACTIVITY_LEVELS) - 1,
        description="events per active day at which the regular, frequent and heavy levels start",
    )
    top: int = Field(5, ge=1, description="categories and brands listed")
    explain_items: int = Field(5, ge=1, description="items or events shown behind each part of a profile")
    max_events: int = Field(1000, ge=1, description="most recent events read from the store to build a served profile")
    cache_users: int = Field(10_000, ge=1, description="live profiles kept in server memory (least recently used leave first)")
    cache_seconds: float = Field(
        60.0,
        gt=0,
        description="a cached profile is rebuilt from the store after this long, so events and erasures made through other server processes reach it",
    )
    short_term_weight: float = Field(0.5, ge=0, le=1, description="share of the session vector in the blend with the long-term one")
    # No effect since the API's profile/popularity recommendation blend was removed (issue 20); still accepted because
    # every index and model folder written before carries them in its config.yaml, and those must keep loading.
    history_prior_events: float = Field(5.0, gt=0, description="no effect (kept so older configs load)")
    candidates: int = Field(200, ge=1, description="no effect (kept so older configs load)")

    @field_validator("event_weights")
    @classmethod
    def _known_event_types(cls, weights: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(weights) - set(EVENT_TYPES))
        if unknown:
            raise ValueError(f"unknown event type(s) {', '.join(unknown)}; use {', '.join(EVENT_TYPES)}")
        if any(weight < 0 for weight in weights.values()):
            raise ValueError("event weights must be >= 0")
        return weights


class IntentConfig(_Section):
    """The behaviour-intent model: its window, the user-level split it is evaluated on, and its LightGBM heads."""

    window: int = Field(5, ge=1, description="most recent events the features and the compare label look at")
    min_history: int = Field(2, ge=1, description="predict only at positions with at least this many earlier events")
    test_user_share: float = Field(0.2, gt=0.0, lt=1.0, description="users held out entirely for evaluation")
    valid_user_share: float = Field(0.1, gt=0.0, lt=1.0, description="training users kept aside for early stopping")
    trees: int = Field(500, gt=0, description="most boosting rounds; early stopping usually ends sooner")
    learning_rate: float = Field(0.05, gt=0.0)
    num_leaves: int = Field(31, ge=2)
    min_child_samples: int = Field(50, ge=1)
    early_stopping_rounds: int = Field(30, gt=0)
    bootstrap_samples: int = Field(1000, gt=0, description="user-level resamples for the macro-F1 difference interval")
    threads: int = Field(2, gt=0)


class IncrementalConfig(_Section):
    """Warm-start updates of the sequential model (and the fusion ranker, when saved) from new events, and the guard that rolls a worse model back."""

    epochs: int = Field(5, gt=0, description="passes over the new events (no early stopping: the recent slice is never seen)")
    lr: float = Field(1e-3, gt=0.0, description="learning rate of the warm-start passes")
    holdout: Literal["last", "time"] = Field("last", description="recent slice: last = each user's newest new event; time = new events after a global time cut")
    holdout_share: float = Field(0.2, gt=0.0, lt=1.0, description="share of new events after the cut (holdout: time)")
    metric: str = Field("NDCG@10", description="full-ranking metric the guard compares")
    tolerance: float = Field(0.002, ge=0.0, description="keep the new model unless its metric is lower than the old one's by more than this")
    ranker_trees: int = Field(20, gt=0, description="trees an update adds to the fusion ranker's booster")


class AblationVariant(_Section):
    """One ablation arm: components applied to the training data and/or overrides of the sequential model."""

    name: str
    sequences: list[ComponentSpec] = Field(default_factory=list, description="applied in order to the training sequences")
    item_text: list[ComponentSpec] = Field(default_factory=list, description="applied to item texts before encoding (needs a text_init)")
    sequential: dict[str, Any] = Field(default_factory=dict, description="recommend.sequential keys this arm changes (never its budget)")


class AblationConfig(_Section):
    """`longtail ablate`: a baseline (the recommend section) and named variants, trained and evaluated alike."""

    task: Literal["recommendation", "classification"] = Field(
        "recommendation",
        description="recommendation: SASRec arms from `variants`; classification: the imbalanced zh-reviews category task, "
        "one arm per `balance.tabular.strategies` entry, scored per class",
    )
    dataset: str = Field("gram-beauty", description="a bundled public dataset")
    protocol: Literal["loo", "temporal"] = "loo"
    max_users: int | None = Field(None, gt=0, description="only the first N users (quick runs); None: everybody")
    variants: list[AblationVariant] = Field(default_factory=list)
    combine_best: int = Field(
        0,
        ge=0,
        description="then also train one arm combining this many variants with the best validation tail NDCG@10 "
        "among those within overall_loss of the baseline's validation NDCG@10 (0: no combination)",
    )
    tail_gain: float = Field(0.10, description="goal: relative gain in tail-item NDCG@10 over the baseline")
    overall_loss: float = Field(0.05, ge=0.0, description="goal: at most this relative loss in overall NDCG@10")


class LongtailConfig(_Section):
    """The whole configuration; every field has a default."""

    seed: int = 42
    data: DataConfig = Field(default_factory=DataConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    encode: EncodeConfig = Field(default_factory=EncodeConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    recommend: RecommendConfig = Field(default_factory=RecommendConfig)
    balance: BalanceConfig = Field(default_factory=BalanceConfig)
    profile: ProfileConfig = Field(default_factory=ProfileConfig)
    intent: IntentConfig = Field(default_factory=IntentConfig)
    incremental: IncrementalConfig = Field(default_factory=IncrementalConfig)
    ablation: AblationConfig = Field(default_factory=AblationConfig)


def _format_validation_error(path: str, error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        location = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        if problem["type"] == "extra_forbidden":
            lines.append(f"  {location}: unknown key (check its spelling; see docs/configuration.md)")
        else:
            lines.append(f"  {location}: {problem['msg']}")
    return f"{path}: invalid configuration\n" + "\n".join(lines)


def config_from_dict(raw: dict[str, Any], source: str = "<config>") -> LongtailConfig:
    """Validate a plain mapping into a config, naming every bad key."""
    try:
        return LongtailConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_format_validation_error(source, error)) from None


def load_config(path: str | Path | None) -> LongtailConfig:
    """Load and validate a YAML config; None gives the defaults."""
    if path is None:
        return LongtailConfig()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return config_from_dict(raw, str(path))


def save_config(config: LongtailConfig, directory: str | Path) -> Path:
    """Write the config that made an artifact next to it."""
    target = Path(directory) / CONFIG_FILENAME
    target.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True), encoding="utf-8")
    return target
