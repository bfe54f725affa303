"""The cross-encoder training loop on a few hand-made pairs (it learns, saves, loads and scores) and its place in an index."""

from __future__ import annotations

import json
import shutil

import numpy as np
import polars as pl
import pytest

from longtail.core.errors import LongtailError
from longtail.evaluate.search_eval import condensed_ndcg10_of, cross_encoder_examples, train_cross_encoders
from longtail.search.cross_encoder import (
    CROSS_ENCODER_DIR,
    INITIAL_BIAS,
    INITIAL_SCALE,
    READOUT_FILE,
    REPORT_FILE,
    CrossEncoderScorer,
    CrossEncoderSettings,
    load_cross_encoder,
    score_with,
    train_cross_encoder,
)
from longtail.search.engine import CROSS_ENCODER_FEATURE, SearchEngine
from longtail.search.learned import RankerSettings
from longtail.search.ranker_training import cross_encoder_feature, judged_pairs, query_vectors, train_ranker

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
    settings = CrossEncoderSettings(epochs=10, batch_size=4, learning_rate=5e-4, warmup_ratio=0.0)
    report = train_cross_encoder([(q, t) for q, t, _ in PAIRS], np.asarray([label for _, _, label in PAIRS]), folder, settings, groups=[q for q, _, _ in PAIRS])
    return folder, report


@pytest.mark.slow
def test_training_separates_relevant_from_irrelevant_pairs_and_round_trips(trained):
    folder, report = trained
    pairs = [(q, t) for q, t, _ in PAIRS]
    labels = np.asarray([label for _, _, label in PAIRS])
    assert report.steps == 20 and report.last_loss < report.first_loss
    assert json.loads((folder / REPORT_FILE).read_text())["pairs"] == len(pairs)
    scores = CrossEncoderScorer(folder).score_pairs(pairs)
    assert scores.shape == (len(pairs),)
    assert scores[labels == 1].mean() > scores[labels == 0].mean()


@pytest.mark.slow
def test_early_stopping_saves_the_best_checked_weights_at_the_trained_depth(tmp_path):
    pairs = [(q, t) for q, t, _ in PAIRS]
    labels = np.asarray([label for _, _, label in PAIRS])

    def margin(score):
        scores = score(pairs)
        return float(scores[labels == 1].mean() - scores[labels == 0].mean())

    settings = CrossEncoderSettings(epochs=8, batch_size=4, learning_rate=2e-4, warmup_ratio=0.0, eval_every=2, patience=2, layers=2, max_length=24)
    report = train_cross_encoder(pairs, labels, tmp_path / "ce", settings, validate=margin, groups=[q for q, _ in pairs])
    values = [value for _, value in report.validation]
    # The untrained model is checked first: it is the bar training must clear.
    assert [step for step, _ in report.validation][:3] == [0, 2, 4] and report.best_validation == max(values)
    assert dict(report.validation)[report.best_step] == report.best_validation
    # The saved folder is the best checkpoint: reloaded in fp32 it reproduces the best validation score.
    assert margin(CrossEncoderScorer(tmp_path / "ce", quantised=False).score_pairs) == pytest.approx(report.best_validation, abs=1e-4)
    assert load_cross_encoder(tmp_path / "ce").network.config.num_hidden_layers == 2
    assert CrossEncoderScorer(tmp_path / "ce").max_length == 24


def test_untrained_cosine_readout_is_the_scaled_cosine_of_the_mean_pooled_query_and_title_tokens_of_one_joint_pass():
    import torch

    model = load_cross_encoder(None, max_length=24, layers=2)
    model.network.eval()
    pair = ("glass beaker", "Borosilicate glass beaker 500 ml")
    features = model.tokenizer(*pair, return_tensors="pt")
    with torch.inference_mode():
        hidden = model.network(**features).last_hidden_state[0].numpy()
    ids = features["input_ids"][0].tolist()
    # [CLS] query [SEP] | title [SEP]: split at the first separator, not by token type ids.
    split = ids.index(model.tokenizer.sep_token_id) + 1
    query, title = hidden[:split].mean(axis=0), hidden[split:].mean(axis=0)
    cosine = float(query @ title / np.linalg.norm(query) / np.linalg.norm(title))
    assert score_with(model, [pair])[0] == pytest.approx(INITIAL_SCALE * cosine + INITIAL_BIAS, abs=1e-4)


def test_untrained_cosine_readout_already_ranks_each_querys_relevant_title_first():
    model = load_cross_encoder(None, max_length=24, layers=2)
    model.network.eval()
    scores = score_with(model, [(q, t) for q, t, _ in PAIRS])
    # PAIRS holds (relevant, irrelevant) per query, in that order.
    assert (scores[0::2] > scores[1::2]).all()


@pytest.mark.slow
def test_trained_folder_keeps_its_readout_as_json_and_weights_as_safetensors(trained):
    folder, _ = trained
    readout = json.loads((folder / READOUT_FILE).read_text())
    assert readout["readout"] == "cosine" and readout["scale"] != INITIAL_SCALE and readout["bias"] != INITIAL_BIAS
    assert (folder / "model.safetensors").is_file()
    assert not [path.name for path in folder.iterdir() if path.suffix in {".bin", ".pt", ".pkl", ".pickle"}]
    loaded = load_cross_encoder(folder, max_length=32)
    assert loaded.readout == "cosine" and float(loaded.log_scale.detach().exp()) == pytest.approx(readout["scale"], rel=1e-6)


@pytest.mark.slow
def test_a_head_readout_trains_saves_and_loads_back_as_a_head(tmp_path):
    pairs = [(q, t) for q, t, _ in PAIRS]
    settings = CrossEncoderSettings(epochs=2, batch_size=4, learning_rate=5e-4, warmup_ratio=0.0, layers=1, max_length=24, readout="head")
    train_cross_encoder(pairs, np.asarray([label for _, _, label in PAIRS]), tmp_path / "ce", settings, groups=[q for q, _ in pairs])
    assert json.loads((tmp_path / "ce" / READOUT_FILE).read_text())["readout"] == "head"
    loaded = load_cross_encoder(tmp_path / "ce")
    assert loaded.readout == "head" and loaded.network.config.num_hidden_layers == 1
    assert CrossEncoderScorer(tmp_path / "ce").score_pairs(pairs).shape == (len(pairs),)


@pytest.mark.slow
def test_int8_scores_keep_the_fp32_order_of_clearly_different_pairs(trained):
    folder, _ = trained
    pairs = [(q, t) for q, t, _ in PAIRS]
    full, int8 = CrossEncoderScorer(folder, quantised=False).score_pairs(pairs), CrossEncoderScorer(folder).score_pairs(pairs)
    assert np.abs(full - int8).max() < 0.5 * (full.max() - full.min())
    assert np.corrcoef(full, int8)[0, 1] > 0.9


def test_examples_pair_queries_with_indexed_text_and_scale_relevance_to_unit_range(catalogue, hand_judgments):
    examples = cross_encoder_examples(catalogue, hand_judgments.head(4))
    assert examples.pairs[0] == ("glass beaker", "Borosilicate glass beaker 500 ml. Pyrex. Lab > Glassware")
    assert examples.item_ids == ["beaker", "flask", "pipette", "drill"]
    # relevance 3, 2, 2, 1 (grade + 1) over the range 1..3
    np.testing.assert_allclose(examples.targets, [1.0, 0.5, 0.5, 0.0])
    # ordered by these targets, the judged items get a perfect condensed NDCG@10; reversed, less
    assert condensed_ndcg10_of(examples, examples.targets) == pytest.approx(1.0)
    assert condensed_ndcg10_of(examples, -examples.targets) < 0.7


@pytest.mark.slow
def test_cross_fitting_scores_each_training_pair_with_the_model_that_did_not_see_its_query(catalogue, hand_judgments, tmp_path):
    # Validation queries the untrained model orders imperfectly, so each fold model's training moves it past step 0.
    held = pl.col("query_id").is_in(["q4", "q7", "q9", "q10"])
    train = cross_encoder_examples(catalogue, hand_judgments.filter(~held))
    validation = cross_encoder_examples(catalogue, hand_judgments.filter(held))
    settings = CrossEncoderSettings(batch_size=4, learning_rate=5e-4, warmup_ratio=0.0, eval_every=2, patience=3, max_length=24)
    fit = train_cross_encoders(train, validation, tmp_path, settings, folds=2, quantised=False)
    assert [d.name for d in fit.directories] == ["fold-0", "fold-1"]
    assert set(fit.out_of_fold) == set(zip(train.query_ids, train.item_ids, strict=True))
    seen = [json.loads((d / REPORT_FILE).read_text())["pairs"] for d in fit.directories]
    assert sum(seen) == len(train.pairs) and all(0 < n < len(train.pairs) for n in seen)
    # A pair's out-of-fold score is one of the two models' scores of it, and the two models differ (fp32: int8 scores move
    # with the other pairs in a batch, which share its activation scale).
    scorers = [CrossEncoderScorer(d, quantised=False) for d in fit.directories]
    both = np.vstack([s.score_pairs(train.pairs) for s in scorers])
    out_of_fold = np.asarray([fit.out_of_fold[key] for key in zip(train.query_ids, train.item_ids, strict=True)])
    matches = np.isclose(both, out_of_fold, atol=1e-5)
    assert matches.any(axis=0).all() and not np.allclose(both[0], both[1])
    # All pairs of one query come from the same model (folds split queries, not pairs).
    scored_by = {}
    for query_id, model in zip(train.query_ids, matches.argmax(axis=0).tolist(), strict=True):
        scored_by.setdefault(query_id, set()).add(model)
    assert all(len(models) == 1 for models in scored_by.values()) and {m for models in scored_by.values() for m in models} == {0, 1}


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
    plain = judged_pairs(engine, hand_judgments.filter(pl.col("query_id") == "q13"), vectors)
    appended = plain.with_feature(CROSS_ENCODER_FEATURE, cross_encoder_feature(engine, plain))
    assert appended.names == validation.names
    np.testing.assert_allclose(appended.features, validation.features, rtol=1e-5)
    ranker = train_ranker(engine, train, validation, settings)
    assert ranker.features[-1] == CROSS_ENCODER_FEATURE
    reopened = SearchEngine.open(tmp_path / "index", encoder=built.encoder)
    hits = reopened.search("erlenmeyer flask", k=3).hits
    assert len(hits) == 3 and [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # Re-ranking by the cross-encoder alone orders the head by its scores and leaves the tail in place.
    rows = np.asarray([hit.row for hit in reopened.search("erlenmeyer flask", k=6, learned=False).hits])
    reranked = reopened.cross_encoder_rerank("erlenmeyer flask", rows, 4)
    head_scores = reopened.cross_encoder_scores("erlenmeyer flask", reranked[:4])
    assert sorted(reranked[:4].tolist()) == sorted(rows[:4].tolist()) and reranked[4:].tolist() == rows[4:].tolist()
    assert head_scores.tolist() == sorted(head_scores.tolist(), reverse=True)


def test_pairwise_loss_is_the_label_gap_weighted_ranknet_loss_within_groups():
    import torch

    from longtail.search.cross_encoder import _pairwise_loss

    logits, targets = torch.tensor([2.0, 0.0, 5.0]), torch.tensor([1.0, 0.5, 0.0])
    # groups: the first two pairs share a query; the third is alone, so it is compared with nothing
    loss = _pairwise_loss(logits, targets, torch.tensor([0, 0, 1]))
    assert float(loss) == pytest.approx(float(np.log1p(np.exp(-2.0))))
    # two better-over-worse pairs in one group: (1.0 over 0.5, weight 0.5) and (1.0 over 0.0, weight 1) and (0.5 over 0.0, weight 0.5)
    expected = (0.5 * np.log1p(np.exp(-2.0)) + 1.0 * np.log1p(np.exp(3.0)) + 0.5 * np.log1p(np.exp(5.0))) / 2.0
    assert float(_pairwise_loss(logits, targets, torch.tensor([0, 0, 0]))) == pytest.approx(expected, rel=1e-5)


def test_a_pairwise_loss_without_query_groups_is_refused(tmp_path):
    with pytest.raises(LongtailError, match="group"):
        train_cross_encoder([(q, t) for q, t, _ in PAIRS], np.asarray([label for _, _, label in PAIRS]), tmp_path, CrossEncoderSettings(batch_size=4))


def test_labels_outside_zero_to_one_are_refused(tmp_path):
    with pytest.raises(LongtailError, match=r"\[0, 1\]"):
        train_cross_encoder([(q, t) for q, t, _ in PAIRS], np.full(len(PAIRS), 2.0), tmp_path, CrossEncoderSettings(batch_size=4))
