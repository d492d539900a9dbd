"""What the three service benches share: a private PostgreSQL schema, settings, accounts, the JSON line."""

from __future__ import annotations

import json
import os
import signal
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import make_url, text

from connectors.sandbox.server import SandboxServer
from worker import db as dbm
from worker import models as m
from worker.celery_app import app, configure
from worker.crypto import set_credentials
from worker.settings import Settings, load_settings, set_settings

DEFAULT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS = "redis://127.0.0.1:6379"
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def stop_cleanly_on_sigterm() -> None:
    """SIGTERM (a `timeout` wrapper, CI cancelling) unwinds the bench: workers stopped, schema dropped."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def server_url() -> str:
    """The PostgreSQL server the benches use (SELLERDESK_BENCH_DATABASE_URL, default the local test db)."""
    return dbm.normalise_database_url(os.environ.get("SELLERDESK_BENCH_DATABASE_URL", DEFAULT_DATABASE))


def redis_db_url(db: int) -> str:
    """A Redis database of the bench's own (SELLERDESK_BENCH_REDIS_URL without a database number)."""
    base = os.environ.get("SELLERDESK_BENCH_REDIS_URL", DEFAULT_REDIS).rstrip("/")
    return f"{base}/{db}"


@contextmanager
def private_schema(prefix: str, *, migrate: bool = True) -> Iterator[str]:
    """A new PostgreSQL schema (migrated), as a URL whose connections use it; dropped on exit."""
    server = server_url()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = dbm.make_engine(server)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    url = make_url(server).update_query_dict({"options": f"-csearch_path={name}"})
    rendered = url.render_as_string(hide_password=False)
    try:
        if migrate:
            dbm.upgrade_database(rendered, MIGRATIONS_DIR)
        yield rendered
    finally:
        dbm.dispose_engines()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        admin.dispose()


def install_settings(data_dir: Path, database_url: str, broker: str) -> Settings:
    """Settings of this bench process (the workers get the same through `daemon_env`)."""
    settings = load_settings(
        _env_file=None, data_dir=data_dir, database_url=database_url, broker_url=broker, redis_url=broker
    )
    set_settings(settings)
    configure(app, settings)
    return settings


def add_accounts(sb: SandboxServer, settings: Settings, **account_settings: Any) -> dict[str, int]:
    """One sellerdesk account per sandbox account, credentials encrypted; name -> id."""
    ids = {}
    with dbm.session_scope() as s:
        for acc in sb.accounts:
            row = m.Account(
                marketplace="sandbox",
                name=acc.name,
                settings_json={"rate_per_second": 1000, "burst": 1000, **account_settings},
            )
            set_credentials(row, sb.credentials(acc.name), settings.secret_key)
            s.add(row)
            s.flush()
            ids[acc.name] = row.id
    return ids


def say(line: str) -> None:
    """A human-readable progress line (stdout, flushed: the benches run for minutes)."""
    print(line, flush=True)


def emit(figures: dict[str, Any]) -> None:
    """The last line a bench prints: its figures as one JSON object."""
    sys.stdout.write(json.dumps(figures, sort_keys=False) + "\n")
    sys.stdout.flush()


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100, nearest rank) of `values`; 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]
