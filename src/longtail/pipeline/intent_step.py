"""The intent step: split users, build the intent table, fit the model, compare it with baselines, write JSON and HTML."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from longtail.core.config import LongtailConfig, save_config
from longtail.evaluate.classification import classification_context, classification_metrics, macro_f1
from longtail.evaluate.significance import paired_bootstrap_statistic
from longtail.models.intent import HEAD_CLASSES, Head, IntentModel, intent_table, latest_step_baseline, majority_baseline
from longtail.reporting.writers import write_report_pair

RESULT_FILE = "intent.json"
REPORT_FILE = "intent.html"
MODEL_FILE = "intent_model.json"


def assign_users(user_ids: list[str], test_share: float, valid_share: float, seed: int) -> pl.DataFrame:
    """Each distinct user in exactly one role: `test` (held out), `valid` (early stopping) or `train`."""
    users = sorted(set(user_ids))
    order = np.random.default_rng(seed).permutation(len(users))
    n_test = round(test_share * len(users))
    n_valid = round(valid_share * (len(users) - n_test))
    roles = np.full(len(users), "train", dtype=object)
    roles[order[:n_test]] = "test"
    roles[order[n_test : n_test + n_valid]] = "valid"
    return pl.DataFrame({"user_id": users, "role": roles.tolist()})


def _evaluate_head(model: IntentModel, head: Head, train: pl.DataFrame, test: pl.DataFrame, samples: int, seed: int) -> dict:
    """Model, majority and latest-step baselines on one head's labelled test rows, with macro-F1 bootstrap intervals."""
    classes = list(HEAD_CLASSES[head])
    rows = test.filter(pl.col(head).is_not_null())
    truth = np.asarray(rows[head].to_list(), dtype=object)
    prior = majority_baseline(train[head], 1, head)[0]
    model_probabilities = model.predict_proba(rows, head)
    probabilities = {
        "model": model_probabilities,
        "model, plain argmax": model_probabilities,
        "majority": majority_baseline(train[head], rows.height, head),
        "latest step": latest_step_baseline(rows, prior, head),
    }
    predicted = {name: np.asarray(classes, dtype=object)[p.argmax(axis=1)] for name, p in probabilities.items()}
    predicted["model"] = np.asarray(model.predict(rows, head), dtype=object)  # weighted argmax, tuned on early-stopping users
    metrics = {name: classification_metrics(truth, p, classes, predicted[name]) for name, p in probabilities.items()}
    codes = {name: np.array([classes.index(c) for c in values]) for name, values in {"truth": truth, **predicted}.items()}

    def score(t: np.ndarray, p: np.ndarray) -> float:
        return macro_f1(t, p, range(len(classes)))

    users = rows["user_id"].to_numpy()
    comparisons = {
        name: paired_bootstrap_statistic(score, codes["truth"], codes["model"], codes[name], users, samples, seed) for name in ("majority", "latest step")
    }
    label_shares = {name: round(float(np.mean(truth == name)), 4) for name in classes}
    return {
        "classes": classes,
        "models": metrics,
        "comparisons": comparisons,
        "test_label_shares": label_shares,
        "decision_weights": dict(zip(classes, model.decision_weights_[head], strict=True)),
        "importance": model.importance(head),
    }


def run_intent(
    items: pl.DataFrame,
    events: pl.DataFrame,
    config: LongtailConfig,
    out_dir: str | Path,
    dataset: str = "own files",
    max_users: int | None = None,
    advance: Callable[[str], None] = lambda step: None,
) -> dict:
    """Train the intent model on training users and evaluate both heads on held-out users; write JSON, HTML, model, config.

    `max_users` keeps a random sample of that many users (a quick look at a large log).
    """
    settings = config.intent
    started = time.perf_counter()
    every_user = events["user_id"].unique().sort()
    if max_users is not None and max_users < len(every_user):
        sample = every_user.sample(max_users, seed=config.seed)
        events = events.filter(pl.col("user_id").is_in(sample.implode()))
    roles = assign_users(events["user_id"].to_list(), settings.test_user_share, settings.valid_user_share, config.seed)
    training_users = roles.filter(pl.col("role") == "train")["user_id"].implode()
    popularity = dict(events.filter(pl.col("user_id").is_in(training_users) & pl.col("item_id").is_not_null())["item_id"].value_counts().iter_rows())
    advance("build the intent table")
    table = intent_table(items, events, settings, popularity).join(roles, on="user_id", how="left")
    part = {role: table.filter(pl.col("role") == role) for role in ("train", "valid", "test")}
    advance("fit the intent model")
    model = IntentModel(settings, config.seed).fit(part["train"], part["valid"])
    fit_seconds = time.perf_counter() - started
    advance("evaluate on held-out users")
    heads: dict[str, dict] = {
        head: _evaluate_head(model, head, part["train"], part["test"], settings.bootstrap_samples, config.seed)
        for head in HEAD_CLASSES
        if model.evaluable(head)
    }
    action_types = sorted(set(events["event_type"].drop_nulls().to_list()))
    notes = [
        f"Dataset: {dataset}; {events.height:,} events; event types: {', '.join(action_types)}.",
        f"User-level split: {part['train']['user_id'].n_unique():,} training users, {part['valid']['user_id'].n_unique():,} "
        f"early-stopping users, {part['test']['user_id'].n_unique():,} test users (rows: {part['test'].height:,}); "
        f"features from the {settings.window} events before each position, labels from the event at it.",
    ]
    if not model.evaluable("next_action"):
        notes.append(
            "next_action is not evaluated: every event in this log has the same action type "
            f"({', '.join(model.classes_['next_action'])}), so there is nothing to predict."
        )
    result = {
        "dataset": dataset,
        "events": events.height,
        "event_types": action_types,
        "window": settings.window,
        "users": {role: part[role]["user_id"].n_unique() for role in part},
        "rows": {role: part[role].height for role in part},
        "boosting_rounds": {head: booster.best_iteration or booster.current_iteration() for head, booster in model.boosters_.items()},
        "seconds": round(fit_seconds, 1),
        "heads": heads,
        "notes": notes,
    }
    out_dir = Path(out_dir)
    write_report_pair(
        out_dir / RESULT_FILE, out_dir / REPORT_FILE, result, "classification.html", classification_context(f"behaviour intent on {dataset}", heads, notes)
    )
    model.save(out_dir / MODEL_FILE)
    save_config(config, out_dir)
    return result
