"""`longtail simulate`: two model folders (or a folder's popularity) served to the same logged test sessions through a
click model, as an A/B test and as team-draft interleaving, beside their offline NDCG@10; JSON and HTML report."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from longtail.core.errors import LongtailError
from longtail.evaluate.simulation import ClickModel, simulate
from longtail.pipeline.model_folder import ModelFolder, evaluate_folder, folder_split, load_model_folder, sample_test_users
from longtail.reporting.writers import write_report_pair

POPULARITY_SUFFIX = "#popularity"  # DIR#popularity: the folder's popularity as the arm, the baseline every folder holds
RESULT_FILE, REPORT_FILE = "simulation.json", "simulation.html"


def load_arm(spec: str) -> ModelFolder:
    """A model folder as served, or with `DIR#popularity` the same folder serving its popularity."""
    path, popularity = (spec[: -len(POPULARITY_SUFFIX)], True) if spec.endswith(POPULARITY_SUFFIX) else (spec, False)
    folder = load_model_folder(path)
    return dataclasses.replace(folder, recommender=folder.popularity) if popularity else folder


def simulate_folders(specs: list[str], users: int | None, seeds: list[int], out: Path, k: int = 10, model: ClickModel | None = None) -> dict[str, Any]:
    """Serve arm A and arm B (`specs`) to the same sampled test users of A's folder; write and return the report."""
    if len(specs) != 2:
        raise LongtailError(f"simulate compares two arms: give --model twice (got {len(specs)})")
    arms = [load_arm(spec) for spec in specs]
    if arms[0].item_ids != arms[1].item_ids:
        raise LongtailError(f"{specs[0]} and {specs[1]} index different catalogues; train both on the same data")
    split = folder_split(arms[0].directory)
    chosen = sample_test_users(split, users, arms[0].config.seed)
    histories = [split.histories("test")[user] for user in chosen.tolist()]
    targets = np.array([split.test[user][0] for user in chosen.tolist()], dtype=np.int64)
    lists = [arm.recommend(histories, k)[0] for arm in arms]
    offline = [evaluate_folder(arm, split, chosen).metrics for arm in arms]
    result = {
        "arms": {
            label: {"model": spec, "recommender": arm.name, "version": arm.version, "offline": {name: metrics[name] for name in ("NDCG@10", "HR@10")}}
            for label, spec, arm, metrics in zip("AB", specs, arms, offline, strict=True)
        },
        "users": len(chosen),
        "k": k,
        **simulate(lists[0], lists[1], targets, model or ClickModel(), seeds),
    }
    write_report_pair(out / RESULT_FILE, out / REPORT_FILE, result, "simulation.html", {"result": result})
    return result
