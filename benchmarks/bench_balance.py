"""Does balancing help an imbalanced real task? zh-reviews category classification (17x imbalance) per balancing strategy."""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from longtail.core.config import LongtailConfig
from longtail.evaluate.balancing import run_category_experiment
from longtail.pipeline.balance_step import build_strategies

RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = Path(os.environ.get("LONGTAIL_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets"))


def _interval(compared: dict | None, metric: str) -> str:
    """A strategy's difference to the baseline with its 95% interval; '*' marks a significant one."""
    if compared is None:
        return ""
    c = compared[metric]
    return f"{c['difference']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]{' *' if c['significant'] else ''}"


def print_table(experiment: dict) -> None:
    """One line per strategy: macro-F1 and minority recall with the 95% interval of the difference to the baseline."""
    print(f"{'strategy':<24}{'train rows':>11}{'synthetic':>10}{'macro-F1':>10}{'  vs baseline [95% CI]':<26}{'minority recall':>16}  vs baseline [95% CI]")
    for row in experiment["rows"]:
        compared = row.get("vs_baseline")
        print(
            f"{row['strategy']:<24}{row['train_rows']:>11,}{row['synthetic_rows']:>10,}{row['macro_f1']:>10.4f}  {_interval(compared, 'macro_f1'):<24}"
            f"{row['minority_recall']:>16.4f}  {_interval(compared, 'minority_recall')}"
        )


def main() -> None:
    """Run the experiment with the default balance.tabular config; write benchmarks/results/balance.json (balance-lightgbm.json for LightGBM)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    parser.add_argument("--classifier", choices=("logistic", "lightgbm"), default="logistic")
    args = parser.parse_args()
    config = LongtailConfig()
    config.balance.tabular.classifier = args.classifier
    started = time.perf_counter()
    experiment = run_category_experiment(
        args.datasets, config.balance.tabular, build_strategies(config.balance.tabular), config.seed, on_step=lambda name: print(f"... {name}", flush=True)
    )
    result = {
        "benchmark": "balance",
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "config": {"seed": config.seed, **config.balance.tabular.model_dump()},
        **experiment,
        "seconds": round(time.perf_counter() - started, 1),
    }
    RESULTS.mkdir(exist_ok=True)
    target = RESULTS / ("balance.json" if args.classifier == "logistic" else f"balance-{args.classifier}.json")
    target.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print_table(experiment)
    print(f"wrote {target} in {result['seconds']}s")


if __name__ == "__main__":
    main()
