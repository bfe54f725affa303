"""Classifier metrics by hand on a small example, and the user-level bootstrap of a macro-F1 difference."""

from __future__ import annotations

import math

import numpy as np

from longtail.evaluate.classification import classification_metrics, macro_f1
from longtail.evaluate.significance import paired_bootstrap_statistic

CLASSES = ["browse", "compare", "buy"]


def test_metrics_match_a_hand_count() -> None:
    truth = ["browse", "browse", "browse", "compare", "buy", "buy"]
    probabilities = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.6, 0.1], [0.5, 0.1, 0.4], [0.1, 0.2, 0.7]])
    result = classification_metrics(truth, probabilities, CLASSES)
    # predicted: browse, browse, compare, compare, browse, buy
    assert math.isclose(result["accuracy"], 4 / 6)
    browse = result["per_class"]["browse"]
    assert math.isclose(browse["precision"], 2 / 3) and math.isclose(browse["recall"], 2 / 3) and browse["support"] == 3
    assert math.isclose(result["per_class"]["compare"]["precision"], 0.5) and math.isclose(result["per_class"]["buy"]["recall"], 0.5)
    assert math.isclose(result["macro_f1"], np.mean([2 / 3, 2 / 3, 2 / 3]))
    # compare's probability ranks its only positive (0.6) below one negative (0.7): AUC 4/5
    assert math.isclose(result["per_class"]["compare"]["auc"], 4 / 5)
    forced = classification_metrics(truth, probabilities, CLASSES, predicted=["browse"] * 6)
    assert math.isclose(forced["accuracy"], 0.5) and forced["per_class"]["buy"]["f1"] == 0.0


def test_macro_f1_ignores_classes_absent_from_the_truth() -> None:
    truth = np.array(["browse", "browse", "buy"])
    assert math.isclose(macro_f1(truth, np.array(["browse", "browse", "buy"]), CLASSES), 1.0)
    assert math.isclose(macro_f1(truth, np.array(["browse", "compare", "buy"]), CLASSES), np.mean([2 / 3, 1.0]))


def test_bootstrap_of_a_macro_f1_difference_resamples_users() -> None:
    generator = np.random.default_rng(0)
    truth = generator.integers(0, 3, 600)
    users = np.repeat(np.arange(120), 5)
    noisy = np.where(generator.random(600) < 0.4, generator.integers(0, 3, 600), truth)

    def score(t: np.ndarray, p: np.ndarray) -> float:
        return macro_f1(t, p, range(3))

    better = paired_bootstrap_statistic(score, truth, truth, noisy, users, samples=300)
    assert better["significant"] and better["low"] > 0 and better["users"] == 120
    assert math.isclose(better["difference"], 1.0 - macro_f1(truth, noisy, range(3)))
    same = paired_bootstrap_statistic(score, truth, noisy, noisy, users, samples=100)
    assert same["difference"] == same["low"] == same["high"] == 0.0 and not same["significant"]
