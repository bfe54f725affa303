"""Serving under load on loopback: mixed search/recommend/event traffic at rising concurrency (an asyncio client), then kill -9 mid-load."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import numpy as np
import polars as pl

from longtail.core.config import LongtailConfig, ServeConfig
from longtail.serve.auth import create_key
from longtail.serve.sqlite_store import SqliteEventStore

HOST = "127.0.0.1"  # loopback only: this script must never send traffic anywhere else
REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "demo"
RESULTS = Path(__file__).resolve().parent / "results"
MIX = (("search", 0.5), ("recommend", 0.3), ("event", 0.2))


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class Server:
    """`longtail serve` as a child process, so it can be killed with SIGKILL and started again on the same store."""

    def __init__(self, data_dir: Path, config_path: Path, log_path: Path, model_dir: Path | None = None) -> None:
        self.data_dir, self.config_path, self.log_path, self.model_dir = data_dir, config_path, log_path, model_dir
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180.0) -> float:
        """Start and wait until /health answers; return the seconds it took."""
        started = time.perf_counter()
        command = [
            sys.executable,
            "-m",
            "longtail.cli",
            "serve",
            "--data",
            str(self.data_dir),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--config",
            str(self.config_path),
        ]
        command += ["--model", str(self.model_dir)] if self.model_dir is not None else []
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        while time.perf_counter() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server did not answer /health within {timeout:.0f}s")

    @property
    def pid(self) -> int:
        """The running server's process id."""
        assert self.process is not None
        return self.process.pid

    def kill_9(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Traffic:
    """Requests drawn from the demo data: queries from item titles, real users, events on real items."""

    def __init__(self, items: pl.DataFrame, users: list[str], seed: int) -> None:
        self.item_ids = items["item_id"].to_list()
        words = [w for title in items["title"].to_list() for w in title.split() if w.isalpha() and len(w) > 3]
        self.words = words
        self.users = users
        self.seed = seed

    def request(self, rng: random.Random, kind: str, worker: int, session: str | None = None) -> tuple[str, str, dict[str, Any] | None]:
        """One request of a kind; an event carries `session` as its session id (the retry check finds it by that)."""
        if kind == "search":
            return "POST", "/search", {"query": " ".join(rng.sample(self.words, rng.randint(1, 2))), "k": 10}
        if kind == "recommend":
            return "GET", f"/users/{rng.choice(self.users)}/recommendations?k=10", None
        event = {
            "user_id": f"bench-w{worker}",
            "item_id": rng.choice(self.item_ids),
            "event_type": rng.choice(["view", "click", "add_to_cart"]),
            "session_id": session,
        }
        return "POST", "/events", {"events": [event]}


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process and its child processes (the server's workers) have used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = [int(child) for task in Path(f"/proc/{pid}/task").iterdir() for child in (task / "children").read_text().split()]
    return own + sum(process_cpu_seconds(child) for child in children)


def _server_ms(response: aiohttp.ClientResponse) -> float | None:
    """The server's own time on the request, from its `Server-Timing: app;dur=<ms>` header."""
    _, found, duration = response.headers.get("server-timing", "").partition("dur=")
    return float(duration) if found else None


def _percentile_ms(seconds: list[float], q: float) -> float | None:
    return round(float(np.percentile(seconds, q)) * 1000, 2) if seconds else None


def run_load(
    url: str,
    key: str,
    traffic: Traffic,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    mix: tuple[tuple[str, float], ...],
    stop: threading.Event | None = None,
    idempotent: bool = False,
    server_pid: int | None = None,
) -> dict[str, Any]:
    """`concurrency` closed-loop clients (each sends its next request when the last is answered, on its own keep-alive
    connection) until the count or time bound; latencies as the client saw them and as the server timed them, errors,
    acknowledged event ids, and the CPU the client and (given its pid) the server used. With `idempotent`, each event
    request carries a unique Idempotency-Key (also its event's session id), and requests that got no answer are kept to
    be retried. The clients are coroutines on one asyncio loop over aiohttp: a lean client, so the figures measure the
    server rather than the load generator (it still shares the machine's cores with the server)."""
    return asyncio.run(_load(url, key, traffic, concurrency, max_requests, max_seconds, mix, stop, idempotent, server_pid))


async def _load(
    url: str,
    key: str,
    traffic: Traffic,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    mix: tuple[tuple[str, float], ...],
    stop: threading.Event | None,
    idempotent: bool,
    server_pid: int | None,
) -> dict[str, Any]:
    latencies: dict[str, list[float]] = defaultdict(list)
    server_seconds: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    acknowledged: list[tuple[int, str]] = []
    unanswered: list[tuple[str, dict[str, Any]]] = []
    budget = iter(range(max_requests))
    deadline = time.perf_counter() + max_seconds
    kinds, weights = zip(*mix, strict=True)

    async def worker(index: int) -> None:
        rng = random.Random(traffic.seed * 1000 + index)
        sent = 0
        connection = aiohttp.TCPConnector(limit=1)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(url, headers={"Authorization": f"Bearer {key}"}, connector=connection, timeout=timeout) as http:
            while time.perf_counter() < deadline and not (stop and stop.is_set()):
                if next(budget, None) is None:
                    return
                kind = rng.choices(kinds, weights)[0]
                sent += 1
                once = f"retry-w{index}-{sent}" if idempotent and kind == "event" else None
                method, path, body = traffic.request(rng, kind, index, once)
                started = time.perf_counter()
                try:
                    async with http.request(method, path, json=body, headers={"Idempotency-Key": once} if once else None) as response:
                        answer = await response.json() if response.status < 400 else None
                        ok, spent = response.status < 400, _server_ms(response)
                except (TimeoutError, aiohttp.ClientError):
                    answer, ok, spent = None, False, None
                    if once is not None and body is not None:
                        unanswered.append((once, body))
                elapsed = time.perf_counter() - started
                if ok:
                    latencies[kind].append(elapsed)
                    if spent is not None:
                        server_seconds[kind].append(spent / 1000)
                    if kind == "event" and answer is not None:
                        acknowledged.extend((event_id, f"bench-w{index}") for event_id in answer["ids"])
                else:
                    errors[kind] += 1

    client_cpu, server_cpu = time.process_time(), process_cpu_seconds(server_pid) if server_pid else None
    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    wall = time.perf_counter() - started
    client_cpu = time.process_time() - client_cpu
    server_cpu = process_cpu_seconds(server_pid) - server_cpu if server_pid and server_cpu is not None else None
    done = sum(len(v) for v in latencies.values())
    failed = sum(errors.values())
    per_kind = {
        kind: {
            "requests": len(latencies[kind]) + errors[kind],
            "errors": errors[kind],
            "p50_ms": _percentile_ms(latencies[kind], 50),
            "p99_ms": _percentile_ms(latencies[kind], 99),
            "server_p50_ms": _percentile_ms(server_seconds[kind], 50),
            "server_p99_ms": _percentile_ms(server_seconds[kind], 99),
        }
        for kind in kinds
    }
    answered = max(done, 1)
    return {
        "concurrency": concurrency,
        "requests": done + failed,
        "seconds": round(wall, 2),
        "throughput_rps": round(done / wall, 1),
        "error_rate": round(failed / max(done + failed, 1), 4),
        "cpu": {
            "client_seconds": round(client_cpu, 2),
            "client_ms_per_request": round(client_cpu / answered * 1000, 2),
            "server_seconds": None if server_cpu is None else round(server_cpu, 2),
            "server_ms_per_request": None if server_cpu is None else round(server_cpu / answered * 1000, 2),
        },
        "by_kind": per_kind,
        "_acknowledged": acknowledged,
        "_unanswered": unanswered,
    }


def retried_copies(store: SqliteEventStore) -> dict[str, int]:
    """How many stored events carry each fault-phase request's key (its session id): 1 each when nothing duplicated."""
    rows = store._read("SELECT session_id, COUNT(*) FROM events WHERE session_id LIKE 'retry-w%' GROUP BY session_id")
    return {session: int(copies) for session, copies in rows}


def prepare_served_directory(work: Path, key_name: str, serve_settings: dict[str, object] | None = None) -> tuple[Path, str]:
    """Copy the demo data into `work`, write a config with the per-key rate limit lifted (and `serve_settings`), and
    create an API key."""
    shutil.copy(DEMO / "items.csv", work / "items.csv")
    shutil.copy(DEMO / "events.parquet", work / "events.parquet")
    # Rate limits far above what two cores can serve: this measures the server, not the limiter.
    settings = {"serve": {"rate_limit_per_second": 1e6, "rate_limit_burst": 1_000_000, **(serve_settings or {})}}
    LongtailConfig.model_validate(settings)
    config_path = work / f"{key_name}.yaml"
    config_path.write_text(json.dumps(settings))
    with SqliteEventStore(work / "longtail.db") as store:
        key = create_key(store, ["read", "write_events"], key_name)
    return config_path, key


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--max-requests", type=int, default=2000, help="per concurrency level")
    parser.add_argument("--max-seconds", type=float, default=20.0, help="per concurrency level")
    parser.add_argument("--fault-seconds", type=float, default=4.0, help="load before the kill -9")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=None, help="default: results/serving.json, or serving-model.json with --model-backed or --model")
    parser.add_argument(
        "--model-backed", action="store_true", help="build a search index in the served directory first, so the server runs the model-backed services"
    )
    parser.add_argument(
        "--model", type=Path, default=None, help="also serve this model folder (`longtail train` on the demo data): recommendations from its recommender"
    )
    parser.add_argument("--query-batch-concurrency", type=int, default=None, help="serve.query_batch_concurrency (default: the config's, 1)")
    parser.add_argument("--recommend-batch-concurrency", type=int, default=None, help="serve.recommend_batch_concurrency (default: the config's, 1)")
    parser.add_argument("--workers", type=int, default=None, help="serve.workers: server processes (default: the config's)")
    args = parser.parse_args()

    load_at_start = os.getloadavg()[0]  # other work on the machine shares the cores with client and server
    work = Path(tempfile.mkdtemp(prefix="longtail-bench-serving-"))
    try:
        batching = {"query_batch_concurrency": args.query_batch_concurrency, "recommend_batch_concurrency": args.recommend_batch_concurrency}
        serve_settings = {name: value for name, value in {**batching, "workers": args.workers}.items() if value is not None}
        config_path, key = prepare_served_directory(work, "benchmark", serve_settings)
        if args.model_backed:
            # an index inside the served directory is picked up by `longtail serve` without being named
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "longtail.cli",
                    "index",
                    "--items",
                    str(work / "items.csv"),
                    "--events",
                    str(work / "events.parquet"),
                    "--out",
                    str(work / "index"),
                ],
                check=True,
            )
        items = pl.read_csv(DEMO / "items.csv", infer_schema=False)
        users = pl.read_parquet(DEMO / "events.parquet")["user_id"].unique().sort().to_list()
        traffic = Traffic(items, users, args.seed)

        server = Server(work, config_path, work / "server.log", args.model)
        first_start = server.start()
        levels, acknowledged = [], []
        for concurrency in args.concurrency:
            result = run_load(server.url, key, traffic, concurrency, args.max_requests, args.max_seconds, MIX, server_pid=server.pid)
            acknowledged.extend(result.pop("_acknowledged"))
            result.pop("_unanswered")  # no fault here: nothing to retry
            levels.append(result)
            print(
                f"concurrency {concurrency}: {result['throughput_rps']} req/s, errors {result['error_rate']:.2%}, cpu/request client "
                f"{result['cpu']['client_ms_per_request']} ms server {result['cpu']['server_ms_per_request']} ms, "
                + ", ".join(f"{k} p50 {v['p50_ms']} ms p99 {v['p99_ms']} ms (server p99 {v['server_p99_ms']} ms)" for k, v in result["by_kind"].items()),
                flush=True,
            )

        # Fault: event-heavy load at the highest concurrency, kill -9 the server while requests are in flight.
        stop = threading.Event()
        holder: dict[str, Any] = {}
        fault_mix = (("event", 0.8), ("search", 0.2))
        loader = threading.Thread(
            target=lambda: holder.update(
                run_load(server.url, key, traffic, max(args.concurrency), 10**9, args.fault_seconds + 30, fault_mix, stop, idempotent=True)
            )
        )
        loader.start()
        time.sleep(args.fault_seconds)
        server.kill_9()
        time.sleep(1.0)  # let workers see refused connections before stopping them
        stop.set()
        loader.join()
        fault_acknowledged = holder.pop("_acknowledged")
        acknowledged.extend(fault_acknowledged)

        unanswered = holder.pop("_unanswered")

        restart_seconds = server.start()
        with SqliteEventStore(work / "longtail.db") as store:
            before_retry = retried_copies(store)
        # Clients retry every event request that got no answer, with the same Idempotency-Key and body.
        retry_statuses: dict[str, int] = defaultdict(int)
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            for once, body in unanswered:
                response = http.post("/events", json=body, headers={"Idempotency-Key": once})
                retry_statuses["replayed" if response.headers.get("Idempotent-Replayed") else str(response.status_code)] += 1
                if response.status_code < 400:
                    acknowledged.extend((event_id, body["events"][0]["user_id"]) for event_id in response.json()["ids"])
        with SqliteEventStore(work / "longtail.db") as store:
            after_retry = retried_copies(store)
            present = store.event_ids()
        lost = sorted(event_id for event_id, _ in acknowledged if event_id not in present)
        # And through the API: each worker's user has at least as many events as were acknowledged to it.
        per_user: dict[str, int] = defaultdict(int)
        for _, user in acknowledged:
            per_user[user] += 1
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            short = {user: n for user, n in per_user.items() if http.get(f"/users/{user}/profile").json()["event_count"] < n}
        server.stop()

        zero_error = [level for level in levels if level["error_rate"] == 0]
        best = max(zero_error, key=lambda level: level["concurrency"]) if zero_error else None
        report = {
            "benchmark": "serving",
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "note": "client and server share the same cores",
                "load_average_1min": {"start": round(load_at_start, 2), "end": round(os.getloadavg()[0], 2)},
                "conditions": "measured under load" if max(load_at_start, os.getloadavg()[0]) > 0.5 * (os.cpu_count() or 1) else "idle",
            },
            "setup": {
                "catalogue": "demo (Amazon Industrial & Scientific): 4,385 items, 59,384 seeded events",
                "store": "SQLite WAL, synchronous=FULL",
                "services": ("model-backed (hybrid BM25 + dense search personalised by live profiles)" if args.model_backed else "default (BM25 search)")
                + (f"; recommendations from the model folder {args.model}" if args.model else "; default popularity recommendations"),
                "mix": dict(MIX),
                "client": "closed-loop clients as coroutines on one asyncio loop (aiohttp, one keep-alive connection each) in the benchmark "
                "process, on the same two cores as the server; latency as the client saw it, server_p50/p99 from the "
                "server's Server-Timing header; cpu: the client's and the server's CPU seconds per level (/proc)",
                "bounds": {"max_requests_per_level": args.max_requests, "max_seconds_per_level": args.max_seconds},
                "server_start_seconds": round(first_start, 2),
                "command": "python benchmarks/bench_serving.py"
                + (" --model-backed" if args.model_backed else "")
                + (f" --model {args.model}" if args.model else "")
                + "".join(f" --{name.replace('_', '-')} {value}" for name, value in serve_settings.items()),
                "batches_at_once": {name: value or getattr(ServeConfig(), name) for name, value in batching.items()},
                "server_processes": args.workers or ServeConfig().workers,
            },
            "levels": levels,
            "highest_zero_error_concurrency": best
            and {
                "concurrency": best["concurrency"],
                "search_p99_ms": best["by_kind"]["search"]["p99_ms"],
                "recommend_p99_ms": best["by_kind"]["recommend"]["p99_ms"],
                "throughput_rps": best["throughput_rps"],
            },
            "kill_9": {
                "load_seconds_before_kill": args.fault_seconds,
                "concurrency": max(args.concurrency),
                "events_acknowledged_during_fault": len(fault_acknowledged),
                "requests_failed_after_the_kill": holder["requests"] - sum(v["requests"] - v["errors"] for v in holder["by_kind"].values()),
                "events_acknowledged_in_run": len(acknowledged),
                "acknowledged_events_lost": len(lost),
                "users_short_of_acknowledged_events": len(short),
                "restart_seconds": round(restart_seconds, 2),
                "requests_unanswered_at_the_kill": len(unanswered),
                "unanswered_but_stored_before_retry": sum(1 for once, _ in unanswered if before_retry.get(once, 0) > 0),
                "retries": dict(retry_statuses),
                "duplicates_after_retry": sum(1 for copies in after_retry.values() if copies > 1),
                "unanswered_missing_after_retry": sum(1 for once, _ in unanswered if after_retry.get(once, 0) == 0),
            },
        }
        out = args.out or RESULTS / ("serving-model.json" if args.model_backed or args.model else "serving.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report["kill_9"], indent=2))
        print(f"wrote {out}")
        duplicates = report["kill_9"]["duplicates_after_retry"]
        return 0 if not lost and not short and not duplicates else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
