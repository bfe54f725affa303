"""Intent benchmark: the behaviour-intent model against majority and latest-step baselines on held-out users.

Amazon Industrial & Scientific (the richest set here: categories and brands) with a user-level split; every
event is a review, so only the browse/compare/buy head is measured (next-action needs several event types).
Writes benchmarks/results/intent.json and intent.html; the model and config go to out/bench/intent/.

    python benchmarks/bench_intent.py [--dataset scientific]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from longtail.core.config import LongtailConfig  # noqa: E402
from longtail.data.adapters import load_dataset  # noqa: E402
from longtail.pipeline.intent_step import REPORT_FILE, RESULT_FILE, run_intent  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
ARTIFACTS = REPO / "out" / "bench" / "intent"
DATASETS = Path(os.environ.get("LONGTAIL_DATASETS", REPO.parent / "shared" / "datasets"))


def main() -> int:
    """Run the intent step on one dataset and copy its JSON and HTML into benchmarks/results/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="scientific")
    arguments = parser.parse_args()
    data = load_dataset(arguments.dataset, DATASETS)
    result = run_intent(data.items, data.events, LongtailConfig(), ARTIFACTS, arguments.dataset, advance=lambda step: print(step, flush=True))
    RESULTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ARTIFACTS / RESULT_FILE, RESULTS / RESULT_FILE)
    shutil.copyfile(ARTIFACTS / REPORT_FILE, RESULTS / REPORT_FILE)
    summary = {
        name: {"accuracy": round(m["accuracy"], 4), "macro_f1": round(m["macro_f1"], 4), "macro_auc": round(m["macro_auc"], 4)}
        for name, m in result["heads"]["intent"]["models"].items()
    }
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
