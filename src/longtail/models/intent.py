"""Behaviour intent: the next action type and the shopping intent (browse / compare / buy) from a user's recent events.

Labels come from the event being predicted (the future); features come only from the events before it, so a
row never sees its own label. See docs/intent.md for the definitions and why they were chosen.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
import polars as pl

from longtail.core.config import EVENT_TYPES, IntentConfig
from longtail.core.errors import LongtailError
from longtail.data.columns import WEIGHT

INTENTS: tuple[str, ...] = ("browse", "compare", "buy")
ACTIONS: tuple[str, ...] = EVENT_TYPES[:5]
# Ratings and reviews are written by people who bought the item, so the action head counts them as purchases.
ACTION_OF_EVENT: dict[str, str] = {**{action: action for action in ACTIONS}, "rating": "purchase", "review": "purchase"}
Head = Literal["intent", "next_action"]
HEAD_CLASSES: dict[Head, tuple[str, ...]] = {"intent": INTENTS, "next_action": ACTIONS}
CATEGORICAL = ("latest_intent", "latest_action")
FEATURES: tuple[str, ...] = (
    "history_length",
    "window_length",
    "category_diversity",
    "brand_diversity",
    "latest_category_run",
    "latest_brand_run",
    "latest_category_share",
    "latest_brand_share",
    "repeat_item_share",
    "known_brand_share",
    "history_buy_share",
    "browse_share",
    "compare_share",
    "buy_share",
    "latest_popularity",
    "mean_popularity",
    "latest_category_size",
    "latest_brand_size",
    "window_category_mass",
    "history_brand_mass",
    "latest_gap",
    "mean_gap",
    "item_share",
    *(f"{action}_share" for action in ACTIONS),
    *CATEGORICAL,
)
MISSING = -1
WEIGHT_GRID = np.geomspace(0.25, 8.0, 21)


def step_intents(items: pl.DataFrame, events: pl.DataFrame, window: int) -> pl.DataFrame:
    """Events in per-user time order, each with the intent it shows relative to the same user's earlier events.

    buy: the item, or its (known) brand, was already in the user's history — a return to something engaged with.
    compare: otherwise, the item's (known) category is among the previous `window` events' categories — an
    alternative to what the user was just looking at. browse: otherwise — a product type new to the recent window.
    Events without an item (searches) have no intent.
    """
    side = items.select("item_id", "category", "brand").unique("item_id", keep="first")
    ordered = events.with_row_index("order").join(side, on="item_id", how="left").sort(["user_id", "timestamp", "order"])
    has_item = pl.col("item_id").is_not_null()

    def earlier(column: str) -> pl.Expr:
        return pl.col(column).is_not_null() & ~pl.col(column).is_first_distinct().over("user_id")

    recent_category = pl.any_horizontal(
        [(pl.col("category") == pl.col("category").shift(lag).over("user_id")).fill_null(False) for lag in range(1, window + 1)]
    )
    return ordered.with_columns(
        pl.int_range(pl.len()).over("user_id").alias("position"),
        (has_item & earlier("item_id")).alias("repeat_item"),
        earlier("brand").alias("known_brand"),
        pl.col("event_type").replace_strict(ACTION_OF_EVENT, default=None).alias("action"),
    ).with_columns(
        pl.when(~has_item)
        .then(None)
        .when(pl.col("repeat_item") | pl.col("known_brand"))
        .then(pl.lit("buy"))
        .when(recent_category)
        .then(pl.lit("compare"))
        .otherwise(pl.lit("browse"))
        .alias("intent")
    )


def _codes(column: pl.Series) -> tuple[np.ndarray, list[str]]:
    """Integer codes of a string column (MISSING for nulls) and the value each code stands for."""
    values = sorted(column.drop_nulls().unique().to_list())
    codes = column.replace_strict({value: code for code, value in enumerate(values)}, default=MISSING, return_dtype=pl.Int64)
    return codes.to_numpy(), values


def _run_length(codes: np.ndarray) -> int:
    """How many of the newest entries share the newest entry's (known) code."""
    if len(codes) == 0 or codes[-1] == MISSING:
        return 0
    different = np.flatnonzero(codes[::-1] != codes[-1])
    return int(different[0]) if different.size else len(codes)


def _share(values: np.ndarray, of: int) -> float:
    return float(np.mean(values == of)) if len(values) and of != MISSING else 0.0


def _user_rows(steps: dict[str, np.ndarray], config: IntentConfig, groups: dict[str, np.ndarray]) -> list[list[float]]:
    """One feature row per predictable position of one user, from that user's step arrays (earlier events only).

    `groups` holds per category / brand code its log catalogue size and its share of training interactions.
    """
    rows = []
    for t in range(config.min_history, len(steps["item"])):
        start = max(0, t - config.window)
        category, brand, intent, action = (steps[name][start:t] for name in ("category", "brand", "intent", "action"))
        known_category, known_brand = category[category != MISSING], brand[brand != MISSING]
        gaps = np.diff(steps["time"][start:t])
        past_intents, past_brands = steps["intent"][1:t], steps["brand"][:t]
        rows.append(
            [
                t,
                t - start,
                len(np.unique(known_category)) / len(category),
                len(np.unique(known_brand)) / len(brand),
                _run_length(category),
                _run_length(brand),
                _share(category, category[-1]),
                _share(brand, brand[-1]),
                float(steps["repeat"][start:t].mean()),
                float(steps["known_brand"][start:t].mean()),
                float(np.mean(past_intents == INTENTS.index("buy"))) if len(past_intents) else 0.0,
                *(float(np.mean(intent == code)) for code in range(len(INTENTS))),
                float(steps["popularity"][t - 1]),
                float(steps["popularity"][start:t].mean()),
                float(groups["category_size"][category[-1]]) if category[-1] != MISSING else 0.0,
                float(groups["brand_size"][brand[-1]]) if brand[-1] != MISSING else 0.0,
                # how much of all interest lies in the recent categories / the brands already bought: priors for compare / buy
                float(groups["category_mass"][np.unique(known_category)].sum()),
                float(groups["brand_mass"][np.unique(past_brands[past_brands != MISSING])].sum()),
                float(math.log1p(gaps[-1])) if len(gaps) else 0.0,
                float(np.log1p(gaps).mean()) if len(gaps) else 0.0,
                float(np.mean(steps["item"][start:t] != MISSING)),
                *(float(np.mean(action == code)) for code in range(len(ACTIONS))),
                float(intent[-1]),
                float(action[-1]),
            ]
        )
    return rows


def intent_table(items: pl.DataFrame, events: pl.DataFrame, config: IntentConfig, popularity: dict[str, int] | None = None) -> pl.DataFrame:
    """The intent training set: one row per (user, position) with at least `min_history` earlier events.

    Columns: `user_id`, `position`, the FEATURES (from the events before the position only), and the labels of
    the event at the position: `intent` (browse / compare / buy, null for an event without an item) and
    `next_action` (one of ACTIONS). `popularity` (item -> interactions) should come from training users only;
    by default it is counted over `events`.
    """
    steps = step_intents(items, events, config.window)
    counts = popularity if popularity is not None else dict(events.filter(pl.col("item_id").is_not_null())["item_id"].value_counts().iter_rows())
    log_popularity = steps["item_id"].replace_strict(counts, default=0, return_dtype=pl.Float64).log1p().fill_null(0.0)
    (category, categories), (brand, brands) = _codes(steps["category"]), _codes(steps["brand"])
    catalogue = items.unique("item_id", keep="first")
    groups = {**_group_statistics(categories, "category", catalogue, counts), **_group_statistics(brands, "brand", catalogue, counts)}
    arrays = {
        "item": np.where(steps["item_id"].is_null().to_numpy(), MISSING, 0),
        "category": category,
        "brand": brand,
        "intent": steps["intent"].replace_strict({name: code for code, name in enumerate(INTENTS)}, default=MISSING, return_dtype=pl.Int64).to_numpy(),
        "action": steps["action"].replace_strict({name: code for code, name in enumerate(ACTIONS)}, default=MISSING, return_dtype=pl.Int64).to_numpy(),
        "repeat": steps["repeat_item"].to_numpy().astype(np.float64),
        "known_brand": steps["known_brand"].to_numpy().astype(np.float64),
        "popularity": log_popularity.to_numpy(),
        "time": steps["timestamp"].dt.epoch("s").to_numpy().astype(np.float64),
    }
    bounds = np.flatnonzero(np.r_[True, steps["user_id"].to_numpy()[1:] != steps["user_id"].to_numpy()[:-1], True])
    features: list[list[float]] = []
    for begin, end in pairwise(bounds):
        features += _user_rows({name: values[begin:end] for name, values in arrays.items()}, config, groups)
    labels = steps.filter(pl.col("position") >= config.min_history).select("user_id", "position", "intent", pl.col("action").alias("next_action"))
    table = pl.DataFrame(np.asarray(features, dtype=np.float64).reshape(-1, len(FEATURES)), schema=list(FEATURES), orient="row")
    return pl.concat([labels.select("user_id", "position"), table, labels.select("intent", "next_action")], how="horizontal")


def _group_statistics(values: list[str], column: str, catalogue: pl.DataFrame, popularity: dict[str, int]) -> dict[str, np.ndarray]:
    """Per category (or brand) value, in `_codes` order: log(1 + catalogue items) and share of training interactions."""
    counts = catalogue.select(column, pl.col("item_id").replace_strict(popularity, default=0, return_dtype=pl.Float64).alias("count"))
    grouped = counts.drop_nulls(column).group_by(column).agg(pl.len().alias("items"), pl.col("count").sum())
    by_value = {value: (size, count) for value, size, count in grouped.iter_rows()}
    sizes = np.array([by_value.get(value, (0, 0.0))[0] for value in values], dtype=np.float64)
    mass = np.array([by_value.get(value, (0, 0.0))[1] for value in values], dtype=np.float64)
    return {f"{column}_size": np.log1p(sizes), f"{column}_mass": mass / max(float(sum(popularity.values())), 1.0)}


def feature_matrix(table: pl.DataFrame) -> np.ndarray:
    """The FEATURES columns of an intent table as a float matrix, in FEATURES order."""
    return table.select(FEATURES).to_numpy().astype(np.float64)


def _labelled(frame: pl.DataFrame, head: str, classes: list[str]) -> pl.DataFrame:
    """The rows whose `head` label is one of the classes the model learned."""
    return frame.filter(pl.col(head).is_in(classes))


def _class_codes(frame: pl.DataFrame, head: str, classes: list[str]) -> np.ndarray:
    """The `head` labels as indices into `classes` (LightGBM's multiclass target)."""
    return frame[head].replace_strict({n: i for i, n in enumerate(classes)}, return_dtype=pl.Int32).to_numpy()


def tune_decision_weights(probabilities: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-class multipliers whose weighted argmax maximises macro-F1 on held-out rows (coordinate ascent).

    With imbalanced classes the plain argmax almost never picks a rare class; scaling its probability up trades
    some accuracy for recall of the rare class, which is what macro-F1 rewards. The first class stays at 1.
    """
    from sklearn.metrics import f1_score

    present = np.unique(truth)

    def score(weights: np.ndarray) -> float:
        return float(f1_score(truth, (probabilities * weights).argmax(axis=1), labels=present, average="macro", zero_division=0))

    weights = np.ones(probabilities.shape[1])
    best = score(weights)
    for _ in range(2):
        for column in range(1, len(weights)):
            for value in WEIGHT_GRID:
                trial = weights.copy()
                trial[column] = value
                if (trial_score := score(trial)) > best:
                    best, weights = trial_score, trial
    return weights


class IntentModel:
    """Two LightGBM multiclass heads over the same features: `intent` and `next_action`.

    Each head predicts the class with the highest weighted probability; the weights are tuned for macro-F1 on
    the early-stopping users (all 1 without them). A head whose training labels hold a single class (e.g.
    next_action on a log of reviews only) predicts that class with certainty; `evaluable(head)` says whether
    it learned anything.
    """

    def __init__(self, config: IntentConfig | None = None, seed: int = 42) -> None:
        self.config = config or IntentConfig()
        self.seed = seed

    def _params(self, n_classes: int) -> dict[str, object]:
        config = self.config
        return {
            "objective": "multiclass",
            "num_class": n_classes,
            "learning_rate": config.learning_rate,
            "num_leaves": config.num_leaves,
            "min_child_samples": config.min_child_samples,
            "feature_fraction": 0.9,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "seed": self.seed,
            "num_threads": config.threads,
            "verbose": -1,
        }

    def fit(self, table: pl.DataFrame, valid: pl.DataFrame | None = None) -> Self:
        """Fit both heads on an `intent_table`; `valid` (other users) drives early stopping.

        A `weight` column (as balancing components add) weights each row's loss; without one every row counts 1.
        """
        import lightgbm

        self.classes_: dict[str, list[str]] = {}
        self.boosters_: dict[str, lightgbm.Booster] = {}
        self.decision_weights_: dict[str, list[float]] = {}
        for head, canonical in HEAD_CLASSES.items():
            rows = table.filter(pl.col(head).is_not_null())
            present = set(rows[head].unique().to_list())
            self.classes_[head] = [name for name in canonical if name in present]
            if len(self.classes_[head]) < 2:
                continue
            classes = self.classes_[head]
            weights = rows[WEIGHT].to_numpy() if WEIGHT in rows.columns else None
            train_set = lightgbm.Dataset(
                feature_matrix(rows), _class_codes(rows, head, classes), weight=weights, feature_name=list(FEATURES), categorical_feature=list(CATEGORICAL)
            )
            valid_sets: list[lightgbm.Dataset] = []
            callbacks: list[Callable[..., Any]] = []
            if valid is not None and _labelled(valid, head, classes).height:
                kept = _labelled(valid, head, classes)
                valid_sets = [lightgbm.Dataset(feature_matrix(kept), _class_codes(kept, head, classes), reference=train_set)]
                callbacks = [lightgbm.early_stopping(self.config.early_stopping_rounds, verbose=False)]
            self.boosters_[head] = lightgbm.train(
                self._params(len(self.classes_[head])), train_set, self.config.trees, valid_sets=valid_sets, callbacks=callbacks
            )
            self.decision_weights_[head] = [1.0] * len(HEAD_CLASSES[head])
            if valid_sets:
                truth = np.array([HEAD_CLASSES[head].index(name) for name in kept[head].to_list()])
                self.decision_weights_[head] = tune_decision_weights(self.predict_proba(kept, head), truth).tolist()
        return self

    def evaluable(self, head: Head) -> bool:
        """Whether the head learned from two or more classes."""
        return head in self.boosters_

    def predict_proba(self, table: pl.DataFrame, head: Head = "intent") -> np.ndarray:
        """(rows, len(HEAD_CLASSES[head])) probabilities in canonical class order; classes unseen in training get 0."""
        if not self.classes_.get(head):
            raise LongtailError(f"intent model: head '{head}' had no labelled training rows")
        canonical = HEAD_CLASSES[head]
        output = np.zeros((table.height, len(canonical)))
        columns = [canonical.index(name) for name in self.classes_[head]]
        if head in self.boosters_:
            best = self.boosters_[head].best_iteration or None
            output[:, columns] = self.boosters_[head].predict(feature_matrix(table), num_iteration=best)
        else:
            output[:, columns[0]] = 1.0
        return output

    def predict_next(self, items: pl.DataFrame, events: pl.DataFrame, popularity: dict[str, int], at: datetime) -> dict[str, float]:
        """One user's intent probabilities for their next event, at time `at`, from their `events` (and the catalogue
        `items`, for category and brand statistics): the row an event at `at` would get, its label unknown."""
        upcoming = pl.DataFrame(
            {"user_id": [events["user_id"][0]], "item_id": [None], "event_type": ["view"], "timestamp": [at]},
            schema={name: events.schema[name] for name in ("user_id", "item_id", "event_type", "timestamp")},
        )
        table = intent_table(items, pl.concat([events.select(upcoming.columns), upcoming]), self.config, popularity)
        if table.is_empty():
            return {}
        return dict(zip(INTENTS, self.predict_proba(table.tail(1), "intent")[0].round(4).tolist(), strict=True))

    def predict(self, table: pl.DataFrame, head: Head = "intent") -> list[str]:
        """The class with the highest weighted probability for each row."""
        canonical = HEAD_CLASSES[head]
        weights = np.asarray(self.decision_weights_.get(head, [1.0] * len(canonical)))
        return [canonical[i] for i in (self.predict_proba(table, head) * weights).argmax(axis=1)]

    def importance(self, head: Head = "intent") -> dict[str, float]:
        """Share of total split gain per feature of a head."""
        gains = self.boosters_[head].feature_importance(importance_type="gain")
        return {name: round(float(g / max(gains.sum(), 1e-12)), 4) for name, g in zip(FEATURES, gains, strict=True)}

    def save(self, path: str | Path) -> Path:
        """Write config, classes and boosters as one JSON file; `IntentModel.load` predicts identically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        boosters = {head: booster.model_to_string() for head, booster in self.boosters_.items()}
        payload = {
            "config": self.config.model_dump(),
            "seed": self.seed,
            "classes": self.classes_,
            "boosters": boosters,
            "decision_weights": self.decision_weights_,
        }
        path.write_text(json.dumps(payload), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> IntentModel:
        """A fitted model from `save`."""
        import lightgbm

        payload = json.loads(Path(path).read_text(encoding="utf-8"))
        model = cls(IntentConfig.model_validate(payload["config"]), payload["seed"])
        model.classes_, model.decision_weights_ = payload["classes"], payload["decision_weights"]
        model.boosters_ = {head: lightgbm.Booster(model_str=text) for head, text in payload["boosters"].items()}
        return model


def majority_baseline(train_labels: pl.Series, rows: int, head: Head = "intent") -> np.ndarray:
    """Every row gets the training class frequencies (so the majority class is always predicted)."""
    canonical = HEAD_CLASSES[head]
    counts = dict(train_labels.drop_nulls().value_counts().iter_rows())
    prior = np.array([counts.get(name, 0) for name in canonical], dtype=np.float64)
    return np.tile(prior / max(prior.sum(), 1.0), (rows, 1))


def latest_step_baseline(table: pl.DataFrame, fallback: np.ndarray, head: Head = "intent") -> np.ndarray:
    """The heuristic: predict what the latest event showed (its intent relative to the one before it, or its action).

    Rows whose latest event has no such label get `fallback` (e.g. the training prior).
    """
    column = "latest_intent" if head == "intent" else "latest_action"
    codes = table[column].to_numpy().astype(np.int64)
    output = np.tile(fallback, (len(codes), 1))
    known = codes != MISSING
    output[known] = np.eye(len(HEAD_CLASSES[head]))[codes[known]]
    return output
