"""The simulated online experiment: team-draft interleaving is fair, identical arms show no difference, and a model that
ranks the bought item first beats one that never shows it, in the A/B split and in interleaving."""

from __future__ import annotations

import numpy as np

from longtail.evaluate.simulation import ClickModel, ab_test, interleaving_test, team_draft

USERS, K, ITEMS = 3000, 10, 500


def _lists(rng: np.random.Generator, targets: np.ndarray, hit_position: int | None) -> np.ndarray:
    """Each user's top K of random other items, with their bought item at `hit_position` (None: never shown)."""
    lists = np.stack([rng.choice(np.setdiff1d(np.arange(ITEMS), [target]), K, replace=False) for target in targets])
    if hit_position is not None:
        lists[:, hit_position] = targets
    return lists


def test_team_draft_takes_turns_and_keeps_each_rankings_order() -> None:
    rng = np.random.default_rng(0)
    first, second = np.array([1, 2, 3, 4, 5, 6]), np.array([6, 1, 7, 8, 9, 2])
    items, teams = team_draft(first, second, 6, rng)
    assert len(set(items.tolist())) == 6
    assert abs(int((teams == 0).sum()) - int((teams == 1).sum())) <= 1
    for team, ranking in ((0, first.tolist()), (1, second.tolist())):
        picked = items[teams == team].tolist()
        assert picked == sorted(picked, key=ranking.index)


def test_identical_arms_show_no_significant_difference() -> None:
    rng = np.random.default_rng(1)
    targets = rng.integers(0, ITEMS, USERS)
    lists = _lists(rng, targets, 2)
    for seed in (1, 3):
        ab = ab_test(lists, lists.copy(), targets, ClickModel(), seed)
        assert not ab["CTR"]["B_minus_A"]["significant"] and not ab["CVR"]["B_minus_A"]["significant"]
        assert not interleaving_test(lists, lists.copy(), targets, ClickModel(), seed)["preference_for_B"]["significant"]


def test_the_arm_showing_the_bought_item_first_wins_both_experiments() -> None:
    rng = np.random.default_rng(2)
    targets = rng.integers(0, ITEMS, USERS)
    weak, strong = _lists(rng, targets, None), _lists(rng, targets, 0)
    ab = ab_test(weak, strong, targets, ClickModel(), 1)
    assert ab["CVR"]["A"]["mean"] == 0.0 and ab["CVR"]["B"]["mean"] > 0.8
    assert ab["CTR"]["B_minus_A"]["significant"] and ab["CTR"]["B_minus_A"]["difference"] > 0
    interleaved = interleaving_test(weak, strong, targets, ClickModel(), 1)
    assert interleaved["preference_for_B"]["low"] > 0 and interleaved["B_wins"] > interleaved["A_wins"]
