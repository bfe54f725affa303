"""Online experiments simulated on logged sessions: a position-based click model over two recommenders' top lists,
run as an A/B split and as team-draft interleaving, each with bootstrap intervals."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from longtail.evaluate.significance import bootstrap_ci, paired_bootstrap


@dataclass(frozen=True)
class ClickModel:
    """Position-based model: a user examines position p (1-based) with probability 1 / p**eta and clicks an examined
    item with probability `attraction` if it is the item they go on to buy (their logged next item), `noise` otherwise.
    A purchase (the conversion) is a click on that item."""

    eta: float = 1.0
    attraction: float = 0.9
    noise: float = 0.02

    def examination(self, k: int) -> np.ndarray:
        """P(examined) for positions 1..k."""
        return 1.0 / np.arange(1, k + 1, dtype=np.float64) ** self.eta

    def clicks(self, lists: np.ndarray, targets: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(users x k) clicks and, per user, whether they bought: lists are item indices, targets each user's next item."""
        examined = rng.random(lists.shape) < self.examination(lists.shape[1])[None, :]
        relevant = lists == targets[:, None]
        clicked = examined & (rng.random(lists.shape) < np.where(relevant, self.attraction, self.noise))
        return clicked, (clicked & relevant).any(axis=1)


def _independent_difference(a: np.ndarray, b: np.ndarray, samples: int, seed: int) -> dict[str, Any]:
    """mean(b) - mean(a) for two independent groups, with a 95% bootstrap interval resampling each group."""
    rng = np.random.default_rng(seed)
    means_a = a[rng.integers(0, len(a), size=(samples, len(a)))].mean(axis=1)
    means_b = b[rng.integers(0, len(b), size=(samples, len(b)))].mean(axis=1)
    low, high = np.percentile(means_b - means_a, [2.5, 97.5])
    return {"difference": float(b.mean() - a.mean()), "low": float(low), "high": float(high), "significant": bool(low > 0 or high < 0)}


def ab_test(lists_a: np.ndarray, lists_b: np.ndarray, targets: np.ndarray, model: ClickModel, seed: int, samples: int = 1000) -> dict[str, Any]:
    """Each user sees one arm's list (a coin flip); CTR (any click) and CVR (a purchase) per arm and B - A with intervals."""
    rng = np.random.default_rng(seed)
    to_b = rng.random(len(targets)) < 0.5
    shown = np.where(to_b[:, None], lists_b, lists_a)
    clicked, bought = model.clicks(shown, targets, rng)
    result: dict[str, Any] = {"users": {"A": int((~to_b).sum()), "B": int(to_b.sum())}}
    outcomes = {"CTR": np.asarray(clicked.any(axis=1), dtype=np.float64), "CVR": np.asarray(bought, dtype=np.float64)}
    for metric, values in outcomes.items():
        result[metric] = {
            "A": bootstrap_ci(values[~to_b], samples, seed),
            "B": bootstrap_ci(values[to_b], samples, seed),
            "B_minus_A": _independent_difference(values[~to_b], values[to_b], samples, seed),
        }
    return result


def team_draft(first: np.ndarray, second: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Team-draft interleaving of two rankings: the team with fewer picks (a coin flip on ties) adds its best item not
    yet shown; returns the k items and the team (0: first, 1: second) that contributed each."""
    chosen: list[int] = []
    teams: list[int] = []
    picks = [0, 0]
    rankings = (first.tolist(), second.tolist())
    cursors = [0, 0]
    while len(chosen) < k:
        team = int(rng.random() < 0.5) if picks[0] == picks[1] else int(picks[1] < picks[0])
        ranking = rankings[team]
        while cursors[team] < len(ranking) and ranking[cursors[team]] in chosen:
            cursors[team] += 1
        if cursors[team] >= len(ranking):
            team = 1 - team  # this team ran out of items: the other one picks
            ranking = rankings[team]
            while cursors[team] < len(ranking) and ranking[cursors[team]] in chosen:
                cursors[team] += 1
            if cursors[team] >= len(ranking):
                break
        chosen.append(ranking[cursors[team]])
        teams.append(team)
        picks[team] += 1
    return np.array(chosen, dtype=np.int64), np.array(teams, dtype=np.int64)


def interleaving_test(lists_a: np.ndarray, lists_b: np.ndarray, targets: np.ndarray, model: ClickModel, seed: int, samples: int = 1000) -> dict[str, Any]:
    """Every user sees the team-draft interleaving of both lists; per user B wins (+1) with more clicks on its items,
    A (-1) with more on its, else 0. The mean over users with a click, with a 95% interval; > 0 prefers B."""
    rng = np.random.default_rng(seed)
    k = lists_a.shape[1]
    drafted = [team_draft(a, b, k, rng) for a, b in zip(lists_a, lists_b, strict=True)]
    shown = np.stack([items for items, _ in drafted])
    teams = np.stack([team for _, team in drafted])
    clicked, _ = model.clicks(shown, targets, rng)
    for_b, for_a = (clicked & (teams == 1)).sum(axis=1), (clicked & (teams == 0)).sum(axis=1)
    outcome = np.sign(for_b - for_a).astype(np.float64)
    engaged = clicked.any(axis=1)
    interval = paired_bootstrap(outcome[engaged], np.zeros(int(engaged.sum())), samples, seed)
    return {
        "users_with_clicks": int(engaged.sum()),
        "B_wins": int((outcome > 0).sum()),
        "A_wins": int((outcome < 0).sum()),
        "ties": int((engaged & (outcome == 0)).sum()),
        "preference_for_B": interval,
    }


def simulate(lists_a: np.ndarray, lists_b: np.ndarray, targets: np.ndarray, model: ClickModel, seeds: list[int]) -> dict[str, Any]:
    """Both experiments for each seed (the coin flips and clicks), with the click model that produced them."""
    return {
        "click_model": asdict(model),
        "runs": [
            {"seed": seed, "ab": ab_test(lists_a, lists_b, targets, model, seed), "interleaving": interleaving_test(lists_a, lists_b, targets, model, seed)}
            for seed in seeds
        ],
    }
