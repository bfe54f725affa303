"""The fusion ranker's trees compiled to native code score as LightGBM does, are cached by the model's hash, and fall
back to LightGBM when the compiler is missing."""

from __future__ import annotations

import sys

import lightgbm
import numpy as np
import pytest

from longtail.models.compiled_trees import compile_trees


@pytest.fixture(scope="module")
def booster() -> lightgbm.Booster:
    """A small LambdaRank booster on real-valued features with ties and a missing value, as the fusion ranker fits."""
    rng = np.random.default_rng(7)
    features = rng.normal(size=(600, 6))
    features[:, 1] = rng.integers(1, 21, size=600)  # a rank feature: many equal values sit on split thresholds
    relevance = (features[:, 0] + 0.5 * features[:, 2] > 0.8).astype(int)
    data = lightgbm.Dataset(features, relevance, group=[20] * 30)
    return lightgbm.train({"objective": "lambdarank", "num_leaves": 15, "min_data_in_leaf": 5, "verbose": -1, "seed": 1}, data, num_boost_round=25)


def test_compiled_trees_score_as_lightgbm_to_1e_9(booster, tmp_path) -> None:
    predict = compile_trees(booster.model_to_string(), tmp_path)
    assert predict is not None
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(400, 6)).astype(np.float32)  # the ranker's feature rows are float32
    rows[:, 1] = rng.integers(1, 21, size=400)
    rows[5, 3] = np.nan
    np.testing.assert_allclose(predict(rows), booster.predict(rows, num_threads=1), rtol=0, atol=1e-9)


def test_the_compiled_library_is_reused_for_the_same_model_and_not_for_another(booster, tmp_path) -> None:
    assert compile_trees(booster.model_to_string(), tmp_path) is not None
    libraries = sorted(path.name for path in tmp_path.glob("*.so"))
    assert len(libraries) == 1 and not list(tmp_path.glob("*.partial"))
    again = compile_trees(booster.model_to_string(), tmp_path)
    assert again is not None and sorted(path.name for path in tmp_path.glob("*.so")) == libraries
    other = lightgbm.Booster(model_str=booster.model_to_string(num_iteration=10))
    assert compile_trees(other.model_to_string(), tmp_path) is not None
    assert len(list(tmp_path.glob("*.so"))) == 2


def test_without_lleaves_there_is_no_compiled_predictor(booster, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "lleaves", None)  # what `import lleaves` sees when it is not installed
    assert compile_trees(booster.model_to_string(), tmp_path) is None
