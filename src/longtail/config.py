"""One validated configuration, loaded from YAML with defaults, saved next to every artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from longtail.errors import ConfigError

CONFIG_FILENAME = "config.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ColumnMapping(_Section):
    """Maps a user's own column names onto the canonical ones, per table."""

    items: dict[str, str] = Field(default_factory=dict, description="source column -> canonical column")
    events: dict[str, str] = Field(default_factory=dict)
    users: dict[str, str] = Field(default_factory=dict)
    judgments: dict[str, str] = Field(default_factory=dict)


class DataConfig(_Section):
    """Where the tables come from and how their columns are named."""

    columns: ColumnMapping = Field(default_factory=ColumnMapping)
    csv_separator: str = ","


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
    drop_unknown_item_events: bool = True
    stale_after_days: int = Field(30, gt=0)


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
    text_init: Literal["none", "freeze", "project", "finetune"] = Field(
        "none",
        description="none: random item embeddings; freeze: fixed PCA of text vectors; project: learned linear map of "
        "frozen text vectors; finetune: learned map plus a per-item correction (zero for items unseen in training)",
    )
    threads: int = Field(2, gt=0)
    max_train_seconds: float | None = Field(None, gt=0, description="stop training after this much wall time")


class RecommendConfig(_Section):
    """Evaluation protocol, segments, baselines, fusion and long-tail re-ranking for recommendation."""

    model: str = Field("sasrec", description="a registered recommender: popularity, itemknn, als, ease, content, sasrec")
    ks: list[int] = Field(default_factory=lambda: [5, 10, 20])
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


class LongtailConfig(_Section):
    """The whole configuration; every field has a default."""

    seed: int = 42
    data: DataConfig = Field(default_factory=DataConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    recommend: RecommendConfig = Field(default_factory=RecommendConfig)


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
