"""Classifier metrics (accuracy, per-class precision/recall/F1, macro-F1, one-vs-rest AUC) and their HTML report."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

from longtail.reporting import charts


def macro_f1(truth: np.ndarray, predicted: np.ndarray, classes: Sequence[object]) -> float:
    """Unweighted mean F1 over the classes that occur in `truth` (a class never seen cannot be recalled)."""
    scores = []
    for name in classes:
        actual, chosen = truth == name, predicted == name
        if actual.any():
            hits = float(np.sum(actual & chosen))
            scores.append(2 * hits / (actual.sum() + chosen.sum()))
    return float(np.mean(scores)) if scores else float("nan")


def classification_metrics(
    truth: Sequence[str] | np.ndarray, probabilities: np.ndarray, classes: Sequence[str], predicted: Sequence[str] | np.ndarray | None = None
) -> dict[str, Any]:
    """Metrics of a probabilistic classifier; its prediction is `predicted`, or else the most probable class.

    Per class: precision, recall, F1, support and one-vs-rest AUC (NaN when the class, or every other class, is
    absent from `truth`). Overall: accuracy, macro-F1 (over classes present in `truth`) and macro AUC.
    """
    labels = np.asarray(truth, dtype=object)
    if predicted is None:
        predicted = np.asarray(classes, dtype=object)[np.asarray(probabilities).argmax(axis=1)]
    chosen = np.asarray(predicted, dtype=object)
    precision, recall, f1, support = precision_recall_fscore_support(labels, chosen, labels=list(classes), zero_division=0)
    per_class = {}
    for column, name in enumerate(classes):
        positive = np.asarray(labels == name)
        auc = float(roc_auc_score(positive, probabilities[:, column])) if 0 < positive.sum() < len(labels) else float("nan")
        per_class[name] = {
            "precision": float(precision[column]),
            "recall": float(recall[column]),
            "f1": float(f1[column]),
            "support": int(support[column]),
            "auc": auc,
        }
    aucs = [c["auc"] for c in per_class.values() if not math.isnan(c["auc"])]
    return {
        "accuracy": float(np.mean(labels == chosen)) if len(labels) else float("nan"),
        "macro_f1": macro_f1(labels, chosen, classes),
        "macro_auc": float(np.mean(aucs)) if aucs else float("nan"),
        "rows": int(len(labels)),
        "per_class": per_class,
    }


def classification_context(title: str, heads: dict[str, dict], notes: list[str]) -> dict[str, Any]:
    """What `classification.html` shows: per head, a table of every model's metrics, bootstrap comparisons and an F1 chart.

    `heads` maps a head name to {"classes": [...], "models": {name: classification_metrics(...)}, "comparisons":
    {baseline: paired bootstrap of the macro-F1 difference}}.
    """
    figures = {}
    for head, result in heads.items():
        labels = [f"{model} / {name}" for model, metrics in result["models"].items() for name in result["classes"]]
        values = [metrics["per_class"][name]["f1"] for metrics in result["models"].values() for name in result["classes"]]
        figures[head] = charts.bar_chart(labels, values, f"{head}: F1 per class", "F1 (test users)")
    return {"title": title, "heads": heads, "notes": notes, "figures": figures}
