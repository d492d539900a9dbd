"""docker-compose.yml is valid for Docker Compose (no engine needed: `config` only parses and checks)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from worker.settings import SOURCE_ROOT


def compose_command() -> list[str] | None:
    """`docker compose` (v2 plugin) when it works, else the standalone `docker-compose`, else None."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_compose_file_is_valid() -> None:
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    done = subprocess.run(
        [*command, "-f", str(SOURCE_ROOT / "docker-compose.yml"), "config", "-q"],
        cwd=SOURCE_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
