"""The three benches run end to end at a tiny size, and their last line is the JSON the README quotes.

They run as the README says (`python -m bench.<name>`), in subprocesses, on the services of this test
run (SELLERDESK_TEST_DATABASE_URL / SELLERDESK_TEST_REDIS_URL); chaos runs without restarting the
services (other tests share them) but with faults and killed workers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import make_url

ROOT = Path(__file__).resolve().parents[2]


def run_bench(module: str, *args: str, pg_server_url: str, redis_url: str, timeout: float) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SELLERDESK_")}
    env["SELLERDESK_BENCH_DATABASE_URL"] = pg_server_url
    env["SELLERDESK_BENCH_REDIS_URL"] = redis_url.rsplit("/", 1)[0]
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0, (
        f"{module} failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    )
    assert len(lines) >= 2, "human-readable lines, then the JSON line"
    return json.loads(lines[-1])


@pytest.fixture
def services(pg_server_url: str, redis_url: str) -> dict[str, str]:
    return {
        "pg_server_url": make_url(pg_server_url).render_as_string(hide_password=False),
        "redis_url": redis_url,
    }


def test_pipeline_bench(services):
    figures = run_bench("bench.pipeline", "--messages", "120", "--accounts", "2", timeout=90, **services)
    assert set(figures) >= {"messages", "messages_per_s", "p95_latency_s", "raw_rows_per_s", "ratio"}
    assert figures["messages"] == 120 and figures["duplicates"] == 0 and figures["lost"] == 0
    assert figures["messages_per_s"] > 0 and figures["raw_rows_per_s"] > figures["messages_per_s"]


def test_lifecycle_bench(services):
    figures = run_bench("bench.lifecycle", "--orders", "2000", "--due", "100", timeout=60, **services)
    assert figures == {**figures, "orders": 2000, "due": 100, "enqueued": 100}
    assert figures["sweep_s"] > 0


def test_chaos_bench(services):
    figures = run_bench(
        "bench.chaos", "--messages", "40", "--kills", "1", "--kill-every", "2", "--no-restarts",
        "--timeout", "240", timeout=300, **services,
    )  # fmt: skip
    assert set(figures) >= {"messages", "decisions", "sent", "duplicates", "double_actions", "lost", "kills"}
    assert figures["kills"] == 1 and figures["messages"] >= 40 and figures["settled"] is True
    assert figures["duplicates"] == figures["double_actions"] == figures["lost"] == 0
