"""`sellerdesk demo`, the Quick start's first command: the whole daemon on the embedded default.

Runs the real command (sandbox, a Celery worker on the SQLite broker, beat, the web UI) for a short
while and checks from the outside what a new user would see: the UI answering, messages decided,
replies sent to the sandbox, a clean stop.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_runs_the_daemon_end_to_end(tmp_path):
    web, sandbox = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SELLERDESK_")}
    env.update(
        SELLERDESK_DATA_DIR=str(tmp_path / "data"),
        SELLERDESK_POLL_INTERVAL_SECONDS="2",
        SELLERDESK_DISPATCH_INTERVAL_SECONDS="1",
        SELLERDESK_UNDO_WINDOW_SECONDS="2",
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "worker",
            "demo",
            "--duration",
            "40",
            "--port",
            str(web),
            "--sandbox-port",
            str(sandbox),
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    healthy = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not healthy:
        try:
            healthy = httpx.get(f"http://127.0.0.1:{web}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            time.sleep(0.5)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out[-3000:]
    assert healthy, "the approval UI never answered /healthz"
    assert f"http://127.0.0.1:{web}/" in out and "password" in out and "Sellerdesk demo stopped." in out

    status = subprocess.run(
        [sys.executable, "-m", "worker", "status", "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(status.stdout)
    assert data["messages"]["total"] >= 20
    assert data["decisions"]["total"] >= 20
    assert data["sends"].get("sent", 0) >= 1, data
    assert data["drafts"].get("pending", 0) >= 1, data
    assert data["quarantined"] == 0
    assert all(not acc["paused"] for acc in data["accounts"])
