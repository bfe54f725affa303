"""Replay benchmark: a trained model folder served by a real `longtail serve` process, its test users replayed through the
API, against `longtail evaluate --model` on the same users. Writes benchmarks/results/replay.json.

    python benchmarks/bench_replay.py [--model out/replay/beauty-fusion] [--dataset beauty] [--users 2000]

A folder that does not exist yet is trained first, demo-sized for a 2-core machine (about 15 minutes):
    longtail train --dataset beauty --fusion --evaluation-users 2000 --config benchmarks/replay-beauty.yaml --out out/replay/beauty-fusion
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from longtail.core.config import load_config  # noqa: E402
from longtail.data.adapters import load_dataset  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "replay.json"
TRAINING_CONFIG = ROOT / "benchmarks" / "replay-beauty.yaml"
TOLERANCE = 0.002


def longtail(*args: str) -> list[str]:
    """The CLI as a child process of this interpreter."""
    return [sys.executable, "-m", "longtail.cli", *args]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            return httpx.get(f"{url}/health", timeout=2).json()
        except httpx.HTTPError:
            time.sleep(0.5)
    raise RuntimeError(f"the server at {url} did not answer within {seconds:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "out" / "replay" / "beauty-fusion")
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--datasets-root", type=Path, default=Path(os.environ.get("LONGTAIL_DATASETS", ROOT.parent / "shared" / "datasets")))
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
    if not (args.model / "folder.json").is_file():
        subprocess.run(
            longtail(
                "train",
                "--dataset",
                args.dataset,
                "--fusion",
                "--evaluation-users",
                str(args.users),
                "--config",
                str(TRAINING_CONFIG),
                "--out",
                str(args.model),
                "--datasets-root",
                str(args.datasets_root),
            ),
            env=env,
            check=True,
        )
    with tempfile.TemporaryDirectory(prefix="longtail-replay-") as work:
        data = Path(work) / "data"
        data.mkdir()
        # The served directory holds the catalogue only: every replayed user arrives as new, through POST /events.
        load_dataset(args.dataset, args.datasets_root).items.write_parquet(data / "items.parquet")
        key = (
            subprocess.run(
                longtail("keys", "create", "--data", str(data), "--scope", "read", "--scope", "write_events"),
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        started = time.perf_counter()
        subprocess.run(longtail("evaluate", "--model", str(args.model), "--max-users", str(args.users), "--out", f"{work}/offline"), env=env, check=True)
        offline_seconds = time.perf_counter() - started
        offline = json.loads((Path(work) / "offline" / "evaluation.json").read_text())
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            longtail("serve", "--data", str(data), "--model", str(args.model), "--port", str(port)),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            health = wait_for(url, 300)
            started = time.perf_counter()
            subprocess.run(
                longtail(
                    "replay",
                    "--model",
                    str(args.model),
                    "--dataset",
                    args.dataset,
                    "--users",
                    str(args.users),
                    "--url",
                    url,
                    "--key",
                    key,
                    "--out",
                    f"{work}/replay.json",
                ),
                env=env,
                check=True,
            )
            replay_seconds = time.perf_counter() - started
        finally:
            server.terminate()
            server.wait(timeout=30)
        result = json.loads((Path(work) / "replay.json").read_text())
    # `replay` also scored the users offline with the same function; it must agree with the `evaluate --model` command.
    assert abs(result["offline"]["NDCG@10"] - offline["metrics"]["NDCG@10"]) < 1e-12, (result["offline"], offline["metrics"])
    settings = load_config(args.model / "config.yaml").recommend
    cap = settings.sequential.max_train_seconds
    difference = result["replay"]["NDCG@10"] - result["offline"]["NDCG@10"]
    result.update(
        {
            "served_version": health["model"],
            "training": ("SASRec uncapped" if cap is None else f"demo-sized: SASRec capped at {cap:g} s of wall time")
            + f", fusion ranker on {settings.fusion_train_users:,} users (the folder's config.yaml)",
            "difference_NDCG@10": difference,
            "within_tolerance": abs(difference) <= TOLERANCE,
            "tolerance": TOLERANCE,
            "seconds": {"offline": round(offline_seconds, 1), "replay": round(replay_seconds, 1)},
        }
    )
    RESULT.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
