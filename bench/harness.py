"""A real daemon for benches and service tests: Celery worker processes, a beat stand-in, the sandbox.

The worker processes are the production command (`python -m worker worker`) on a real broker; this
process plays beat by enqueuing the scheduled tasks itself at a fast pace, and can kill workers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis as redis_lib
from sqlalchemy import func, select

from worker import models as m
from worker.db import session_scope

FAST_TIMINGS = {
    "SELLERDESK_UNDO_WINDOW_SECONDS": "0",
    "SELLERDESK_SEND_LEASE_SECONDS": "5",
    "SELLERDESK_RECONCILE_DELAY_SECONDS": "2",
    "SELLERDESK_SEND_RETRY_SECONDS": "1",
    "SELLERDESK_STUCK_AFTER_SECONDS": "6",
    "SELLERDESK_TRIAGE_MAX_ATTEMPTS": "5",
    "SELLERDESK_POLL_INTERVAL_SECONDS": "2",
    "SELLERDESK_REDISPATCH_AFTER_SECONDS": "4",
}


def daemon_env(data_dir: Path, database_url: str, broker_url: str, **extra: str) -> dict[str, str]:
    """Environment of a worker process: this run's data dir, database and broker, fast timings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SELLERDESK_")}
    env.update(
        SELLERDESK_DATA_DIR=str(data_dir),
        SELLERDESK_DATABASE_URL=database_url,
        SELLERDESK_BROKER_URL=broker_url,
        SELLERDESK_REDIS_URL=broker_url,
        SELLERDESK_LOG_LEVEL="WARNING",
        **FAST_TIMINGS,
    )
    env.update(extra)
    return env


def flush_broker(broker_url: str) -> None:
    """Empty the broker's Redis database (each bench or test run uses a database of its own)."""
    redis_lib.Redis.from_url(broker_url).flushdb()


@dataclass
class Daemon:
    env: dict[str, str]
    log_dir: Path
    concurrency: int = 2
    pool: str = "prefork"
    # `bench.instrument` runs the same worker with statement and latency counters (benches only).
    module: str = "worker"
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(
        self, queues: str = "sellerdesk,sellerdesk.send,sellerdesk.poll", concurrency: int | None = None
    ) -> subprocess.Popen[bytes]:
        """Start one `sellerdesk worker` process group (main process + its pool) on `queues`."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"worker-{len(self.workers)}.log").open("ab")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                self.module,
                "worker",
                "--pool",
                self.pool,
                "-c",
                str(concurrency or self.concurrency),
                "-Q",
                queues,
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers.append(proc)
        return proc

    def pool_pids(self, proc: subprocess.Popen[bytes]) -> list[int]:
        """The pool processes (children) of a worker main process."""
        try:
            out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True, check=False)
        except FileNotFoundError:  # pragma: no cover - procps is on every supported machine
            return []
        return [int(p) for p in out.stdout.split()]

    def kill_pool_process(self, proc: subprocess.Popen[bytes]) -> int | None:
        """SIGKILL one pool process of a worker (its main process starts a new one)."""
        pids = self.pool_pids(proc)
        if not pids:
            return None
        os.kill(pids[0], signal.SIGKILL)
        return pids[0]

    def kill_worker(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL a whole worker (main process and pool): a machine dying mid-task."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    def start_split(self) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
        """The production layout: one worker for polls, one for triage and sending."""
        return self.start_worker("sellerdesk.poll", 1), self.start_worker("sellerdesk,sellerdesk.send")

    def peak_rss_mb(self) -> dict[int, float]:
        """Peak resident memory (VmHWM, MB) of every live worker process and pool process, by pid."""
        peaks: dict[int, float] = {}
        for proc in self.workers:
            if proc.poll() is not None:
                continue
            for pid in [proc.pid, *self.pool_pids(proc)]:
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                for line in status.splitlines():
                    if line.startswith("VmHWM:"):
                        peaks[pid] = int(line.split()[1]) / 1024
        return peaks

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for proc in self.workers:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill_worker(proc)


def tick() -> None:
    """What beat would enqueue: a poll of every stream and a dispatch of due work."""
    from worker.tasks import dispatch_task, schedule_polls_task

    schedule_polls_task.delay()
    dispatch_task.delay()


def wait_until(
    condition: Callable[[], bool], timeout: float, *, every: float = 1.0, on_tick: Callable[[], None] = tick
) -> bool:
    """Tick until `condition()` holds or `timeout` seconds pass; returns whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        on_tick()
        if condition():
            return True
        time.sleep(every)
    return condition()


def settled(engine=None) -> bool:
    """No message waiting for triage and no send or action whose outcome is open."""
    with session_scope(engine) as s:
        open_msgs = s.scalar(
            select(func.count())
            .select_from(m.Message)
            .where(m.Message.triage_state.in_(["new", "processing"]))
        )
        open_sends = s.scalar(
            select(func.count())
            .select_from(m.Outbox)
            .where(m.Outbox.state.in_(["pending", "sending", "uncertain"]))
        )
        return open_msgs == 0 and open_sends == 0
