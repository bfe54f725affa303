"""The cross-encoder training loop on a few hand-made pairs (it learns, saves, loads and scores) and its place in an index."""

from __future__ import annotations

import json
import shutil

import numpy as np
import polars as pl
import pytest

from longtail.core.errors import LongtailError
from longtail.search.cross_encoder import (
    CROSS_ENCODER_DIR,
    REPORT_FILE,
    CrossEncoderScorer,
    CrossEncoderSettings,
    train_cross_encoder,
)
from longtail.search.engine import CROSS_ENCODER_FEATURE, SearchEngine
from longtail.search.learned import RankerSettings
from longtail.search.ranker_training import judged_pairs, query_vectors, train_ranker

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


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A cross-encoder trained on the pairs above, and its training report."""
    folder = tmp_path_factory.mktemp("ce") / CROSS_ENCODER_DIR
    settings = CrossEncoderSettings(epochs=6, batch_size=4, learning_rate=2e-4, warmup_ratio=0.0)
    report = train_cross_encoder([(q, t) for q, t, _ in PAIRS], np.asarray([label for _, _, label in PAIRS]), folder, settings)
    return folder, report


@pytest.mark.slow
def test_training_separates_relevant_from_irrelevant_pairs_and_round_trips(trained):
    folder, report = trained
    pairs = [(q, t) for q, t, _ in PAIRS]
    labels = np.asarray([label for _, _, label in PAIRS])
    assert report.steps == 12 and report.last_loss < report.first_loss
    assert json.loads((folder / REPORT_FILE).read_text())["pairs"] == len(pairs)
    scores = CrossEncoderScorer(folder).score_pairs(pairs)
    assert scores.shape == (len(pairs),)
    assert scores[labels == 1].mean() > scores[labels == 0].mean()


@pytest.mark.slow
def test_an_index_with_a_cross_encoder_feeds_its_score_to_a_ranker_trained_with_it(trained, catalogue, fast_config, hand_judgments, tmp_path):
    folder, _ = trained
    built = SearchEngine.build(catalogue, fast_config, directory=tmp_path / "index")
    shutil.copytree(folder, tmp_path / "index" / CROSS_ENCODER_DIR)
    engine = SearchEngine.open(tmp_path / "index", encoder=built.encoder)
    assert engine.cross_encoder is not None
    vectors = query_vectors(engine, hand_judgments["query"].to_list())
    settings = RankerSettings(min_data_in_leaf=1, num_leaves=4, rounds=30, early_stopping=10)
    train = judged_pairs(engine, hand_judgments.filter(pl.col("query_id") != "q13"), vectors, cross_encoder=True)
    validation = judged_pairs(engine, hand_judgments.filter(pl.col("query_id") == "q13"), vectors, cross_encoder=True)
    expected = engine.cross_encoder.score("erlenmeyer flask", engine.item_text(np.asarray([engine.row_of(i) for i in validation.item_ids])))
    np.testing.assert_allclose(validation.features[:, -1], expected, rtol=1e-5)
    ranker = train_ranker(engine, train, validation, settings)
    assert ranker.features[-1] == CROSS_ENCODER_FEATURE
    reopened = SearchEngine.open(tmp_path / "index", encoder=built.encoder)
    hits = reopened.search("erlenmeyer flask", k=3).hits
    assert len(hits) == 3 and [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_labels_outside_zero_to_one_are_refused(tmp_path):
    with pytest.raises(LongtailError, match=r"\[0, 1\]"):
        train_cross_encoder([(q, t) for q, t, _ in PAIRS], np.full(len(PAIRS), 2.0), tmp_path, CrossEncoderSettings(batch_size=4))
