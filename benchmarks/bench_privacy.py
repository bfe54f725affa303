"""Privacy costs on real data: PII replacement rates and speed, and the accuracy lost to differential privacy vs ε."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import polars as pl

from longtail.core.config import DifferentialPrivacyConfig
from longtail.data.adapters import load_dataset
from longtail.privacy.dp import (
    affinity_counts,
    bounded_category_counts,
    category_domain,
    dp_affinities,
    dp_category_counts,
    normalise_affinities,
)
from longtail.privacy.pii import scrub_column

RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = Path(os.environ.get("LONGTAIL_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets"))
EPSILONS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
TOP_K = 10


def pii_rates(root: Path) -> dict[str, dict[str, object]]:
    """Rows changed by the scrubber, per real corpus (tuned on the first two; the GRAM keyword texts were held out)."""
    corpora = {"scientific": "scientific", "zh-reviews": "zh-reviews", "gram-beauty (held out)": "gram-beauty", "gram-toys (held out)": "gram-toys"}
    results = {}
    for label, name in corpora.items():
        items = load_dataset(name, root).items.filter(pl.col("title").is_not_null())
        started = time.perf_counter()
        scrubbed, counts = scrub_column(items, "title")
        seconds = time.perf_counter() - started
        changed = int((scrubbed.get_column("title") != items.get_column("title")).sum())
        results[label] = {
            "rows": items.height,
            "rows_changed": changed,
            "rate": changed / items.height,
            "replacements": counts,
            "rows_per_second": round(items.height / seconds),
        }
    return results


def top_k(values: np.ndarray, k: int) -> set[int]:
    """Indices of the k largest values (ties broken by index, so the result is deterministic)."""
    return set(np.lexsort((np.arange(values.size), -values))[:k].tolist())


def category_count_costs(events: pl.DataFrame, items: pl.DataFrame, repeats: int) -> list[dict[str, float]]:
    """Top-k overlap and relative error of released category popularity against the exact bounded counts, per ε."""
    rows = []
    for epsilon in EPSILONS:
        bounds = DifferentialPrivacyConfig(epsilon=epsilon)
        overlaps, relative_errors, absolute_errors, tail_errors = [], [], [], []
        for seed in range(repeats):
            exact = bounded_category_counts(events, items, bounds, seed).get_column("count").to_numpy()
            noisy = dp_category_counts(events, items, bounds, seed).table.get_column("count").to_numpy()
            truth = top_k(exact, TOP_K)
            overlaps.append(len(truth & top_k(noisy, TOP_K)) / TOP_K)
            head = np.array(sorted(truth))
            relative_errors.append(float(np.mean(np.abs(noisy[head] - exact[head]) / exact[head])))
            absolute_errors.append(float(np.mean(np.abs(noisy - exact))))
            seen = exact > 0
            tail_errors.append(float(np.median(np.abs(noisy[seen] - exact[seen]) / exact[seen])))
        rows.append(
            {
                "epsilon": epsilon,
                "sensitivity": float(bounds.max_categories_per_user * bounds.max_count_per_category),
                "expected_mean_abs_error": bounds.max_categories_per_user * bounds.max_count_per_category / epsilon,
                "mean_abs_error": float(np.mean(absolute_errors)),
                f"top{TOP_K}_overlap": float(np.mean(overlaps)),
                f"top{TOP_K}_relative_error": float(np.mean(relative_errors)),
                "median_relative_error_all_nonzero_categories": float(np.mean(tail_errors)),
            }
        )
    return rows


def bounding_bias(events: pl.DataFrame, items: pl.DataFrame) -> dict[str, float]:
    """How far contribution bounding alone (no noise) moves the top-k from raw event counts and distinct-user counts."""
    bounds = DifferentialPrivacyConfig()
    domain = category_domain(items)
    bounded = bounded_category_counts(events, items, bounds, 0).get_column("count").to_numpy()
    joined = events.join(items.select("item_id", "category"), on="item_id").filter(pl.col("category").is_in(domain))
    frame = pl.DataFrame({"category": domain})
    raw = frame.join(joined.group_by("category").agg(pl.len().alias("n")), on="category", how="left").get_column("n").fill_null(0).to_numpy()
    users = frame.join(joined.group_by("category").agg(pl.col("user_id").n_unique().alias("n")), on="category", how="left")
    distinct = users.get_column("n").fill_null(0).to_numpy()
    return {
        f"top{TOP_K}_overlap_with_event_counts": len(top_k(bounded, TOP_K) & top_k(raw, TOP_K)) / TOP_K,
        f"top{TOP_K}_overlap_with_distinct_user_counts": len(top_k(bounded, TOP_K) & top_k(distinct, TOP_K)) / TOP_K,
        "share_of_user_category_pairs_kept": float(bounded.sum() / distinct.sum()),
    }


def affinity_costs(events: pl.DataFrame, items: pl.DataFrame, repeats: int, coarse: int) -> list[dict[str, float]]:
    """Per-user affinity accuracy vs ε: L1 distance to the exact distribution and agreement of the top category,
    over the full category list and over the `coarse` categories with most catalogue items."""
    full = category_domain(items)
    largest = items.drop_nulls("category").group_by("category").len().sort(["len", "category"], descending=[True, False])
    domains = {"all categories": full, f"top {coarse} categories": sorted(largest.get_column("category").head(coarse).to_list())}
    rows = []
    for label, domain in domains.items():
        _, counts = affinity_counts(events, items, domain)
        # Scored only on users with an event in the domain; the others' exact profile is empty.
        active = counts.sum(axis=1) > 0
        exact = normalise_affinities(counts[active])
        for epsilon, threshold in itertools.product(EPSILONS, ("default", 0.0)):
            distances, agreement = [], []
            for seed in range(repeats):
                cut = None if threshold == "default" else threshold
                release = dp_affinities(events, items, epsilon, seed, domain, threshold=cut).table.get_column("affinity")
                released = np.stack(release.to_numpy())[active]
                distances.append(float(np.mean(np.abs(released - exact).sum(axis=1))))
                # Agreement: the released favourite is one of the user's exact favourites (ties are common in short histories).
                picked = exact[np.arange(exact.shape[0]), released.argmax(axis=1)]
                agreement.append(float(np.mean(picked == exact.max(axis=1))))
            rows.append(
                {
                    "domain": label,
                    "categories": len(domain),
                    "users_scored": int(active.sum()),
                    "epsilon": epsilon,
                    "threshold": "b*ln(categories)" if threshold == "default" else threshold,
                    "mean_l1_distance": float(np.mean(distances)),
                    "top1_agreement": float(np.mean(agreement)),
                }
            )
    return rows


def main() -> None:
    """Run every measurement on the bundled real datasets and write benchmarks/results/privacy.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=30, help="releases per ε for category counts")
    parser.add_argument("--affinity-repeats", type=int, default=3)
    parser.add_argument("--coarse", type=int, default=20, help="size of the coarse category domain for affinities")
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    args = parser.parse_args()
    started = time.perf_counter()
    scientific = load_dataset("scientific", args.datasets)
    result = {
        "benchmark": "privacy",
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "dataset": "scientific (Amazon 2018 Industrial & Scientific 5-core): 8,442 users, 4,385 items, 59,384 events",
        "config": {
            "epsilons": EPSILONS,
            "top_k": TOP_K,
            "repeats": args.repeats,
            "affinity_repeats": args.affinity_repeats,
            "bounds": DifferentialPrivacyConfig().model_dump(),
        },
        "pii": pii_rates(args.datasets),
        "category_counts": category_count_costs(scientific.events, scientific.items, args.repeats),
        "bounding_bias": bounding_bias(scientific.events, scientific.items),
        "affinities": affinity_costs(scientific.events, scientific.items, args.affinity_repeats, args.coarse),
    }
    result["seconds"] = round(time.perf_counter() - started, 1)
    RESULTS.mkdir(exist_ok=True)
    target = RESULTS / "privacy.json"
    target.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("pii", "category_counts", "bounding_bias")}, indent=1, ensure_ascii=False))
    print(f"wrote {target} in {result['seconds']}s")


if __name__ == "__main__":
    main()
