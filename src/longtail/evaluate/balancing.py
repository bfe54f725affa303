"""The balancing experiment: one classifier trained on an imbalanced real task with and without each balancing strategy.

Each run is scored per class on an untouched test split.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from longtail.balance.component import Component, as_training_table, run
from longtail.balance.leakage import check_disjoint
from longtail.core.config import TabularBalanceConfig
from longtail.data.adapters import load_dataset
from longtail.data.columns import SYNTHETIC, WEIGHT
from longtail.data.tokenize import tokenize
from longtail.evaluate.classification import classification_metrics, macro_f1
from longtail.evaluate.significance import paired_bootstrap, paired_bootstrap_statistic

KEY, LABEL, TEXT = "item_id", "label", "text"
FEATURE_PREFIX = "x"
BASELINE = "baseline"


def zh_category_table(datasets_root: str | Path, fraction: float, seed: int) -> pl.DataFrame:
    """`item_id`, `text`, `label` (category) for a random `fraction` of every zh-reviews category, so the 17x imbalance stays."""
    reviews = load_dataset("zh-reviews", datasets_root).items.filter(pl.col("title").str.strip_chars().str.len_chars() > 0)
    position = pl.int_range(pl.len()).shuffle(seed=seed).over("category")
    sampled = reviews.filter(position < (pl.len().over("category") * fraction).ceil())
    return sampled.select(pl.col("item_id").alias(KEY), pl.col("title").alias(TEXT), pl.col("category").alias(LABEL))


def stratified_split(table: pl.DataFrame, test_fraction: float, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Train and test rows with every label's share kept in both (each label keeps at least one test row)."""
    position = pl.int_range(pl.len()).shuffle(seed=seed).over(LABEL)
    in_test = position < (pl.len().over(LABEL) * test_fraction).ceil()
    return table.filter(~in_test), table.filter(in_test)


def text_features(train: pl.DataFrame, test: pl.DataFrame, dimensions: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Both tables with LSA text vectors `x0..` (TF-IDF over jieba/word tokens, then truncated SVD), fitted on train only."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectoriser = TfidfVectorizer(tokenizer=tokenize, lowercase=False, token_pattern=None, min_df=2, sublinear_tf=True)
    svd = TruncatedSVD(dimensions, random_state=seed)
    train_vectors = svd.fit_transform(vectoriser.fit_transform(train[TEXT].to_list()))
    test_vectors = svd.transform(vectoriser.transform(test[TEXT].to_list()))

    def with_vectors(table: pl.DataFrame, vectors: np.ndarray) -> pl.DataFrame:
        columns = {f"{FEATURE_PREFIX}{d}": vectors[:, d] for d in range(dimensions)}
        return table.drop(TEXT).hstack(pl.DataFrame(columns))

    return with_vectors(train, train_vectors), with_vectors(test, test_vectors)


def _classifier(kind: str, seed: int) -> Any:
    if kind == "lightgbm":
        import lightgbm

        return lightgbm.LGBMClassifier(n_estimators=200, learning_rate=0.05, num_leaves=31, random_state=seed, n_jobs=1, verbose=-1)
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def _fit_predict(training: pl.DataFrame, test: pl.DataFrame, features: list[str], classifier: str, classes: list[str], seed: int) -> np.ndarray:
    """Class probabilities for the test rows, columns in `classes` order."""
    from threadpoolctl import threadpool_limits

    model = _classifier(classifier, seed)
    fit_parameters = {"logisticregression__sample_weight" if classifier == "logistic" else "sample_weight": training[WEIGHT].to_numpy()}
    # Small dense fits: multi-threaded BLAS spins on a busy machine and made one fit 100x slower than single-threaded.
    with threadpool_limits(1, user_api="blas"):
        model.fit(training.select(features).to_numpy(), training[LABEL].to_numpy(), **fit_parameters)
        probabilities = model.predict_proba(test.select(features).to_numpy())
    column = {label: position for position, label in enumerate(model.classes_.tolist())}
    return probabilities[:, [column[label] for label in classes]]


def compare_strategies(
    train: pl.DataFrame,
    test: pl.DataFrame,
    strategies: Mapping[str, Component],
    classifier: str = "logistic",
    seed: int = 42,
    bootstrap_samples: int = 1000,
    on_step: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per strategy: training rows, per-class scores, macro-F1 and minority recall on `test`, and paired bootstrap
    intervals of the differences to the strategy named `baseline` (which must be first)."""
    if next(iter(strategies)) != BASELINE:
        raise ValueError(f"the first strategy must be the unbalanced {BASELINE!r}")
    features = [c for c in train.columns if c.startswith(FEATURE_PREFIX)]
    sizes = train.group_by(LABEL).len().sort(["len", LABEL])
    minority = sizes[LABEL][0]
    classes = sorted(train[LABEL].unique().to_list())
    truth = test[LABEL].to_numpy()
    # integer codes keep the thousands of bootstrap macro-F1 evaluations fast
    truth_codes = np.searchsorted(classes, truth)
    codes = list(range(len(classes)))
    in_minority = truth == minority
    rows: list[dict[str, Any]] = []
    baseline_codes = baseline_correct = None
    for name, strategy in strategies.items():
        if on_step is not None:
            on_step(name)
        started = time.perf_counter()
        training = run(strategy, train, seed)
        check_disjoint(training, test, [KEY])
        probabilities = _fit_predict(training, test, features, classifier, classes, seed)
        predicted_codes = probabilities.argmax(axis=1)
        metrics = classification_metrics(truth, probabilities, classes, np.asarray(classes, dtype=object)[predicted_codes])
        correct = (predicted_codes == truth_codes).astype(np.float64)
        row: dict[str, Any] = {
            "strategy": name,
            "train_rows": training.height,
            "synthetic_rows": int(training[SYNTHETIC].sum()),
            "train_class_rows": dict(training.group_by(LABEL).len().sort(LABEL).iter_rows()),
            "accuracy": round(metrics["accuracy"], 4),
            "macro_f1": round(metrics["macro_f1"], 4),
            "macro_auc": round(metrics["macro_auc"], 4),
            "minority_class": minority,
            "minority_recall": round(float(correct[in_minority].mean()), 4),
            "per_class": {label: {key: round(value, 4) for key, value in scores.items()} for label, scores in metrics["per_class"].items()},
            "seconds": round(time.perf_counter() - started, 2),
        }
        if baseline_codes is None:
            baseline_codes, baseline_correct = predicted_codes, correct
        else:
            assert baseline_correct is not None  # set together with baseline_codes
            row["vs_baseline"] = {
                "macro_f1": paired_bootstrap_statistic(
                    partial(macro_f1, classes=codes), truth_codes, predicted_codes, baseline_codes, np.arange(len(truth_codes)), bootstrap_samples, seed
                ),
                "minority_recall": paired_bootstrap(correct[in_minority], baseline_correct[in_minority], bootstrap_samples, seed),
            }
        rows.append(row)
    return rows


def run_category_experiment(
    datasets_root: str | Path, config: TabularBalanceConfig, strategies: Mapping[str, Component], seed: int = 42, on_step: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """The zh-reviews category experiment with the configured data and classifier: data summary and one result row per strategy."""
    table = zh_category_table(datasets_root, config.sample_fraction, seed)
    train, test = stratified_split(table, config.test_fraction, seed)
    train, test = text_features(train, test, config.text_dimensions, seed)
    rows = compare_strategies(as_training_table(train), test, strategies, config.classifier, seed, config.bootstrap_samples, on_step)
    return {
        "task": "zh-reviews category classification (10 classes)",
        "features": f"LSA text vectors ({config.text_dimensions} dimensions: TF-IDF over jieba tokens, truncated SVD fitted on train)",
        "classifier": config.classifier,
        "train_rows": train.height,
        "test_rows": test.height,
        "train_class_rows": dict(train.group_by(LABEL).len().sort("len", descending=True).iter_rows()),
        "rows": rows,
    }


def report_heads(experiment: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The experiment in the shape `classification_context` takes: every strategy's per-class scores, and each
    strategy's macro-F1 difference to the unbalanced baseline."""
    rows = experiment["rows"]
    return {
        "category": {
            "classes": sorted(rows[0]["per_class"]),
            "models": {row["strategy"]: row for row in rows},
            "comparisons": {row["strategy"]: row["vs_baseline"]["macro_f1"] for row in rows if "vs_baseline" in row},
            "comparison_title": "Macro-F1 difference, strategy minus the unbalanced baseline (95% paired bootstrap over test rows)",
            "compared_label": "strategy",
            "sample_label": "test rows",
        }
    }
