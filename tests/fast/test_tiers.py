"""The services tier is skipped with a reason when its services are missing, and fails instead in CI."""

from __future__ import annotations

import os
import subprocess
import sys

from worker.settings import SOURCE_ROOT

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


def run_redis_test(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SELLERDESK_")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "tests/services/test_redis.py",
        ],
        cwd=SOURCE_ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_missing_services_skip_with_a_visible_reason() -> None:
    done = run_redis_test()
    assert done.returncode == 0, done.stdout
    assert "1 skipped" in done.stdout and "SELLERDESK_TEST_REDIS_URL is not set" in done.stdout


def test_unreachable_required_services_fail() -> None:
    done = run_redis_test(SELLERDESK_TEST_REDIS_URL=UNREACHABLE_REDIS, SELLERDESK_REQUIRE_SERVICES="1")
    assert done.returncode == 1, done.stdout
    assert "1 error" in done.stdout
    assert (
        "Redis at 127.0.0.1:1 does not answer" in done.stdout
        and "SELLERDESK_REQUIRE_SERVICES=1" in done.stdout
    )
