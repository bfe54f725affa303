"""`longtail ablate` end to end on a small Beauty slice: every arm trained alike, compared with the baseline, nothing leaked."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from longtail.cli import app
from longtail.core.config import AblationVariant, RecommendConfig, config_from_dict
from longtail.core.errors import ConfigError
from longtail.evaluate.ablation import BASELINE, SEGMENTS, best_combination, goal_check, training_table, variant_settings

from builders import batch_mapper

TINY = {
    "seed": 3,
    "recommend": {
        "bootstrap_samples": 200,
        "sequential": {"hidden": 16, "blocks": 1, "max_len": 10, "dropout": 0.2, "epochs": 3, "patience": 3, "batch_size": 128, "lr": 0.003},
    },
    "ablation": {
        "dataset": "gram-beauty",
        "max_users": 300,
        "combine_best": 2,
        "variants": [
            {"name": "weights", "sequences": [{"name": "inverse-popularity-weights", "params": {"exponent": 0.5}}]},
            {"name": "oversample", "sequences": [{"name": "tail-oversampling"}]},
            {"name": "logq", "sequential": {"loss": "sampled", "negatives": 64}},
        ],
    },
}


@pytest.mark.slow
def test_ablate_writes_a_comparison_of_every_variant_with_the_baseline(tmp_path, datasets_root) -> None:
    config = tmp_path / "ablation.yaml"
    config.write_text(yaml.safe_dump(TINY))
    result = CliRunner().invoke(app, ["ablate", str(config), "--out", str(tmp_path / "out"), "--datasets-root", str(datasets_root)])
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "out" / "ablation.json").read_text())
    names = [run["model"] for run in written["runs"]]
    assert names[:4] == [BASELINE, "weights", "oversample", "logq"]
    assert written["users"] == 300 and written["protocol"] == "loo-full"
    assert {run["epochs"] for run in written["runs"]} == {3}  # the same budget for every arm
    oversample = written["runs"][2]
    assert oversample["synthetic_rows"] > 0 and oversample["training_rows"] == 300 + oversample["synthetic_rows"]
    assert written["runs"][1]["weighted"] and not written["runs"][0]["weighted"]
    for name in names[1:]:
        for segment in SEGMENTS:
            compared = written["vs_baseline"][name][f"{segment}/NDCG@10"]
            assert compared["low"] <= compared["difference"] <= compared["high"]
        assert set(written["goal"]["variants"][name]) >= {"meets_goal", "tail_ci", "overall_ndcg10_relative"}
    html = (tmp_path / "out" / "ablation.html").read_text()
    assert "each variant minus the baseline" in html and "oversample" in html
    assert yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())["ablation"]["max_users"] == 300
    assert "Ablation on gram-beauty" in result.output


def test_training_rows_come_only_from_training_histories(beauty_slice) -> None:
    split = beauty_slice[1]
    arm = AblationVariant.model_validate(
        {
            "name": "all",
            "sequences": [
                {"name": "weighted-sampling", "params": {"by": "last-item"}},
                {"name": "tail-oversampling"},
                {"name": "crop"},
                {"name": "mask"},
                {"name": "reorder"},
            ],
        }
    )
    table = training_table(split, arm, seed=0)
    assert table["synthetic"].sum() > len(split.train)
    for user, items in zip(table["user"].to_list(), table["items"].to_list(), strict=True):
        held_out = (set(split.valid[user]) | set(split.test[user])) - set(split.train[user])
        assert not held_out & set(items)
    # the arm's components through a mapper of several batches (as on Spark) build the same training table
    assert training_table(split, arm, seed=0, map_table=batch_mapper(4)).equals(table)


def test_a_variant_may_not_change_the_budget_or_invent_settings() -> None:
    base = RecommendConfig()
    with pytest.raises(ConfigError, match="budget"):
        variant_settings(base, AblationVariant(name="longer", sequential={"max_train_seconds": 999}))
    with pytest.raises(ConfigError, match="bad sequential override"):
        variant_settings(base, AblationVariant(name="typo", sequential={"negativs": 5}))
    assert variant_settings(base, AblationVariant(name="ok", sequential={"loss": "sampled"})).sequential.loss == "sampled"
    with pytest.raises(ConfigError, match="sequnces: unknown key"):
        config_from_dict({"ablation": {"variants": [{"name": "x", "sequnces": []}]}})


def test_the_combination_is_chosen_on_validation_among_variants_that_keep_accuracy() -> None:
    variants = [AblationVariant(name=n, sequences=[{"name": n}]) for n in ("a", "b", "c", "d")]
    runs = [
        {"model": BASELINE, "valid": {"NDCG@10": 0.10, "tail/NDCG@10": 0.01}},
        {"model": "a", "valid": {"NDCG@10": 0.099, "tail/NDCG@10": 0.03}},
        {"model": "b", "valid": {"NDCG@10": 0.080, "tail/NDCG@10": 0.09}},  # too much accuracy lost
        {"model": "c", "valid": {"NDCG@10": 0.102, "tail/NDCG@10": 0.02}},
        {"model": "d", "valid": {"NDCG@10": 0.110, "tail/NDCG@10": 0.005}},
    ]  # no tail gain
    combined = best_combination(runs, variants, 2, overall_loss=0.05)
    assert combined is not None and combined.name == "best-combination: a + c"
    assert [spec.name for spec in combined.sequences] == ["a", "c"]
    assert best_combination(runs, variants, 1, overall_loss=0.05) is None


def test_the_goal_needs_a_tail_gain_whose_interval_excludes_zero_and_little_overall_loss() -> None:
    def row(difference: float, low: float, high: float, relative: float) -> dict:
        return {"difference": difference, "low": low, "high": high, "relative": relative, "significant": low > 0 or high < 0}

    compared = {
        "clear": {"tail/NDCG@10": row(0.002, 0.001, 0.003, 0.2), "all/NDCG@10": row(-0.001, -0.002, 0.0, -0.04)},
        "noisy": {"tail/NDCG@10": row(0.002, -0.001, 0.005, 0.2), "all/NDCG@10": row(0.0, -0.001, 0.001, 0.0)},
        "costly": {"tail/NDCG@10": row(0.004, 0.002, 0.006, 0.5), "all/NDCG@10": row(-0.003, -0.004, -0.002, -0.08)},
        "from-zero": {"tail/NDCG@10": row(0.002, 0.001, 0.003, float("inf")), "all/NDCG@10": row(0.01, 0.008, 0.012, 0.4)},
    }
    verdicts = goal_check(compared, tail_gain=0.1, overall_loss=0.05)
    assert {name: v["meets_goal"] for name, v in verdicts.items()} == {"clear": True, "noisy": False, "costly": False, "from-zero": True}
