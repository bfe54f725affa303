"""The cross-encoder training loop on a few hand-made pairs: it learns, saves, loads and scores."""

from __future__ import annotations

import json

import numpy as np
import pytest

from longtail.core.errors import LongtailError
from longtail.search.cross_encoder import (
    REPORT_FILE,
    CrossEncoderScorer,
    CrossEncoderSettings,
    train_cross_encoder,
)

PAIRS = [
    ("glass beaker", "Borosilicate glass beaker 500 ml", 1.0),
    ("glass beaker", "Cordless power drill 18V", 0.0),
    ("cordless drill", "Cordless power drill 18V", 1.0),
    ("cordless drill", "Nitrile examination gloves, large", 0.0),
    ("safety goggles", "Safety goggles with anti-fog lens", 1.0),
    ("safety goggles", "Measuring tape 5 m", 0.0),
    ("measuring tape", "Measuring tape 5 m", 1.0),
    ("measuring tape", "Erlenmeyer flask, borosilicate glass, 250 ml", 0.0),
]


@pytest.mark.slow
def test_training_separates_relevant_from_irrelevant_pairs_and_round_trips(tmp_path):
    pairs = [(q, t) for q, t, _ in PAIRS]
    labels = np.asarray([label for _, _, label in PAIRS])
    settings = CrossEncoderSettings(epochs=6, batch_size=4, learning_rate=2e-4, warmup_ratio=0.0)
    report = train_cross_encoder(pairs, labels, tmp_path / "ce", settings)
    assert report.steps == 12 and report.last_loss < report.first_loss
    assert json.loads((tmp_path / "ce" / REPORT_FILE).read_text())["pairs"] == len(pairs)
    scores = CrossEncoderScorer(tmp_path / "ce").score_pairs(pairs)
    assert scores.shape == (len(pairs),)
    assert scores[labels == 1].mean() > scores[labels == 0].mean()


def test_labels_outside_zero_to_one_are_refused(tmp_path):
    with pytest.raises(LongtailError, match=r"\[0, 1\]"):
        train_cross_encoder([(q, t) for q, t, _ in PAIRS], np.full(len(PAIRS), 2.0), tmp_path, CrossEncoderSettings(batch_size=4))
