"""The demo: the sandbox marketplace, a real Celery worker, beat and the approval UI, on localhost.

Everything runs on the embedded default (SQLite and the SQLite broker transport in the data dir), so
nothing has to be installed. The worker, beat and web are separate processes, as in production; the
sandbox runs in this process and keeps generating buyer traffic until the demo stops.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from connectors.sandbox.server import DEFAULT_17TOKEN, SandboxServer
from worker import models as m
from worker.crypto import set_credentials
from worker.db import session_scope, upgrade_database
from worker.settings import Settings
from worker.status import collect


@dataclass
class DemoOptions:
    duration: float | None = None
    port: int = 8000
    sandbox_port: int = 8765
    seed: int = 1
    messages: int = 40
    disputes: int = 6
    messages_per_minute: float = 6.0


@dataclass
class Demo:
    settings: Settings
    options: DemoOptions
    echo: Callable[[str], None] = print
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)
    sandbox: SandboxServer | None = None
    admin_password: str | None = None

    def child_env(self) -> dict[str, str]:
        """Environment for the worker, beat and web: this demo's data dir, fast schedules, the sandbox."""
        env = dict(os.environ)
        env.update(
            SELLERDESK_DATA_DIR=str(self.settings.data_dir.resolve()),
            SELLERDESK_DATABASE_URL=self.settings.database_url,
            SELLERDESK_POLL_INTERVAL_SECONDS=env.get("SELLERDESK_POLL_INTERVAL_SECONDS", "10"),
            SELLERDESK_DISPATCH_INTERVAL_SECONDS=env.get("SELLERDESK_DISPATCH_INTERVAL_SECONDS", "5"),
            SELLERDESK_TRACKING_INTERVAL_MINUTES=env.get("SELLERDESK_TRACKING_INTERVAL_MINUTES", "1"),
            SELLERDESK_TRACKING_API_TOKEN=DEFAULT_17TOKEN,
            SELLERDESK_TRACKING_API_URL=self.sandbox.url if self.sandbox else "",
        )
        env.pop("SELLERDESK_BROKER_URL", None)
        return env

    def start(self) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        upgrade_database(self.settings.database_url, self.settings.migrations_dir)
        self.sandbox = self._start_sandbox()
        self._register_accounts()
        self.admin_password = self._ensure_admin()
        env = self.child_env()
        python = [sys.executable, "-m", "worker"]
        logs = self.settings.data_dir / "logs"
        logs.mkdir(exist_ok=True)
        for name, args in (
            ("worker", ["worker", "--pool", "threads", "--concurrency", "4"]),
            ("beat", ["beat"]),
            ("web", ["web", "--host", "127.0.0.1", "--port", str(self.options.port)]),
        ):
            out = (logs / f"{name}.log").open("ab")
            self.children.append(
                subprocess.Popen(
                    [*python, *args], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
        self._banner(logs)

    def _start_sandbox(self) -> SandboxServer:
        for port in (self.options.sandbox_port, 0):
            try:
                sb = SandboxServer(seed=self.options.seed, port=port, orders=30).start()
                break
            except OSError:
                continue
        sb.add_buyer_messages(self.options.messages)
        sb.open_disputes(self.options.disputes)
        sb.start_traffic(
            messages_per_minute=self.options.messages_per_minute, orders_per_minute=2, disputes_per_minute=0.5
        )
        return sb

    def _register_accounts(self) -> None:
        assert self.sandbox is not None
        with session_scope() as s:
            for acc in self.sandbox.accounts:
                row = s.scalar(
                    select(m.Account).where(m.Account.marketplace == "sandbox", m.Account.name == acc.name)
                )
                if row is None:
                    # The local sandbox answers far faster than AliExpress's real per-account rate.
                    row = m.Account(
                        marketplace="sandbox",
                        name=acc.name,
                        settings_json={"rate_per_second": 50, "burst": 50},
                    )
                    s.add(row)
                # The sandbox's port may differ from the last run: store its current address.
                set_credentials(row, self.sandbox.credentials(acc.name), self.settings.secret_key)
                row.paused, row.paused_reason = False, None

    def _ensure_admin(self) -> str | None:
        from worker.users import create_user

        with session_scope() as s:
            if s.scalar(select(m.User.id).where(m.User.username == "admin")) is not None:
                return None
            password = secrets.token_urlsafe(12)
            create_user(s, "admin", password, role="admin")
            return password

    def _banner(self, logs: Path) -> None:
        o = self.options
        login = (
            f"user admin, password {self.admin_password}"
            if self.admin_password
            else "user admin (password from the first demo run, or `sellerdesk users set-password admin`)"
        )
        for line in (
            "Sellerdesk demo is running (embedded mode: SQLite + SQLite broker, nothing else to install).",
            f"  approval queue:  http://127.0.0.1:{o.port}/   ({login})",
            f"  sandbox market:  {self.sandbox.url}/_sandbox/state",
            f"  data and logs:   {self.settings.data_dir.resolve()}  ({logs})",
            "  watch:           sellerdesk status   (in another terminal, same directory)",
            "Stop with Ctrl-C" + (f" (or it stops by itself after {o.duration:g} s)." if o.duration else "."),
        ):
            self.echo(line)

    def run(self) -> int:
        """Run until Ctrl-C, SIGTERM or the duration; return an exit status."""
        stop = False

        def _stop(*_: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, _stop)
        deadline = time.monotonic() + self.options.duration if self.options.duration else None
        last = 0.0
        try:
            while not stop and (deadline is None or time.monotonic() < deadline):
                for child in self.children:
                    if child.poll() is not None:
                        self.echo(
                            f"a demo process exited ({' '.join(child.args[2:3])}, status {child.returncode}); "
                            f"see {self.settings.data_dir / 'logs'}"
                        )
                        return 1
                if time.monotonic() - last >= 15:
                    last = time.monotonic()
                    self.echo(self.progress_line())
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        return 0

    def progress_line(self) -> str:
        data = collect()
        drafts = data["drafts"]
        return (
            f"[demo] orders {data['orders']}, messages {data['messages']['total']}, "
            f"decisions {data['decisions']['total']} (auto {data['decisions']['auto_send']}), "
            f"drafts pending {drafts.get('pending', 0)}, sent {data['sends'].get('sent', 0)}, "
            f"quarantined {data['quarantined']}"
        )

    def stop(self) -> None:
        """Stop the children (TERM, then KILL after 15 s) and the sandbox."""
        for child in self.children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in self.children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        if self.sandbox is not None:
            self.sandbox.stop()
        self.echo("Sellerdesk demo stopped.")
