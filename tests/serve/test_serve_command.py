"""`longtail serve` end to end: keys from the CLI, events acknowledged over HTTP survive kill -9 of the server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import free_port


def start(data: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "longtail.cli", "serve", "--data", str(data), "--port", str(port)], stdout=sink, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError(f"server did not start: {log.read_text()}")


@pytest.mark.slow
def test_served_events_survive_kill_9_of_the_server(served_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("items.csv", "events.parquet"):
        (data / name).write_bytes((served_dir / name).read_bytes())
    created = subprocess.run(
        [sys.executable, "-m", "longtail.cli", "keys", "create", "--data", str(data), "--scope", "write_events", "--scope", "read"],
        capture_output=True,
        text=True,
        check=True,
    )
    key = created.stdout.strip()
    assert key.startswith("lt_") and "cannot be shown again" in created.stderr
    headers = {"Authorization": f"Bearer {key}"}
    port = free_port()
    server = start(data, port, tmp_path / "server.log")
    url = f"http://127.0.0.1:{port}"
    try:
        acknowledged = []
        for n in range(30):
            event = {"user_id": "cli-u", "item_id": "B0000223SI", "event_type": "view", "session_id": f"s{n}"}
            response = httpx.post(f"{url}/events", json={"events": [event]}, headers=headers)
            assert response.status_code == 201
            acknowledged.extend(response.json()["ids"])
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
        server = start(data, port, tmp_path / "server.log")
        profile = httpx.get(f"{url}/users/cli-u/profile", headers=headers).json()
        assert profile["event_count"] == len(acknowledged) == 30
        assert {event["id"] for event in profile["recent_events"]} <= set(acknowledged)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_workers_refuse_a_port_another_server_listens_on(served_dir: Path, tmp_path: Path) -> None:
    """The workers share their port through SO_REUSEPORT; a port already served must still be refused, not shared."""
    import socket

    from longtail.core.config import LongtailConfig
    from longtail.core.errors import LongtailError
    from longtail.serve.server import serve

    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # even one that would allow sharing
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(LongtailError, match="cannot bind"):
            serve(served_dir, LongtailConfig(), "127.0.0.1", taken.getsockname()[1], workers=2)
