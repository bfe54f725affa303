"""Balancing and augmentation ablation on Amazon Beauty: SASRec baseline vs each strategy under one training budget.

Reads benchmarks/ablation-beauty.yaml; writes benchmarks/results/ablation.json (with the config inside) and
benchmarks/results/ablation-beauty.html, rewritten after every arm so an interrupted run keeps what it finished.

    python benchmarks/bench_ablation.py [--config benchmarks/ablation-beauty.yaml]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from longtail.core.config import load_config  # noqa: E402
from longtail.evaluate.ablation import run_ablation, write_results  # noqa: E402

HERE = Path(__file__).resolve().parent
DATASETS = Path(os.environ.get("LONGTAIL_DATASETS", HERE.parent.parent / "shared" / "datasets"))
log = logging.getLogger("bench")


def main() -> int:
    """Run the configured ablation and keep its results and report up to date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=HERE / "ablation-beauty.yaml")
    parser.add_argument("--results", type=Path, default=HERE / "results" / "ablation.json")
    parser.add_argument("--report", type=Path, default=HERE / "results" / "ablation-beauty.html")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    settings = load_config(arguments.config)

    def save(result: dict, evaluations: dict) -> None:
        write_results(result, evaluations, settings, arguments.results, arguments.report)
        latest = result["runs"][-1]
        log.info(
            "%s: NDCG@10 %.4f tail NDCG@10 %.4f (%d epochs, %.0fs)",
            latest["model"],
            latest["metrics"]["NDCG@10"],
            latest["segments"]["tail"]["NDCG@10"],
            latest["epochs"],
            latest["train_seconds"],
        )

    run_ablation(settings, DATASETS, on_step=lambda step: log.info(step), on_arm=save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
