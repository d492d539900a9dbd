"""Fixtures shared by both test tiers.

Fast tier (tests/fast): `settings` (a temporary data dir, SQLite), `engine` / `session` on a freshly
migrated SQLite file. Services tier (tests/services, marked `services` automatically): `pg_url`,
`pg_engine`, `pg_settings`, `pg_empty_url` and `redis_url`, from SELLERDESK_TEST_DATABASE_URL and
SELLERDESK_TEST_REDIS_URL. Unset, those tests are skipped with the reason; unreachable, they are skipped too,
unless SELLERDESK_REQUIRE_SERVICES=1 (CI), where either case fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Engine, make_url, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from worker import db as dbm
from worker.models import Base
from worker.settings import SOURCE_ROOT, Settings, load_settings, normalise_database_url, set_settings

MIGRATIONS_DIR = SOURCE_ROOT / "migrations"
SERVICES_DIR = Path(__file__).parent / "services"
# Test-tier switches, kept when a test clears the developer's other SELLERDESK_* variables.
TIER_VARIABLES = ("SELLERDESK_TEST_DATABASE_URL", "SELLERDESK_TEST_REDIS_URL", "SELLERDESK_REQUIRE_SERVICES")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SERVICES_DIR in item.path.parents:
            item.add_marker(pytest.mark.services)


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No SELLERDESK_* variable of the developer's shell leaks into a test; shared state is reset after it."""
    for name in list(os.environ):
        if name.startswith("SELLERDESK_") and name not in TIER_VARIABLES:
            monkeypatch.delenv(name)
    yield
    set_settings(None)
    dbm.dispose_engines()


@pytest.fixture
def sellerdesk() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the installed `sellerdesk` console script: sellerdesk(*args, cwd=..., **SELLERDESK_variables).

    Only the given SELLERDESK_* variables reach it, so the developer's shell cannot change the outcome."""
    command = Path(sys.executable).with_name("sellerdesk")
    assert command.exists(), "the sellerdesk console script is not installed next to this Python"

    def run(*args: str, cwd: Path | str, **env: str) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("SELLERDESK_")}
        return subprocess.run(
            [str(command), *args], cwd=cwd, env={**clean, **env}, capture_output=True, text=True, timeout=120
        )

    return run


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings on a temporary data dir (SQLite there), installed as the process-wide settings."""
    current = load_settings(_env_file=None, data_dir=tmp_path / "data")
    set_settings(current)
    return current


@pytest.fixture(scope="session")
def _migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Migrate once per session and copy the file per test: a fresh database costs a file copy.
    path = tmp_path_factory.mktemp("schema") / "migrated.db"
    dbm.upgrade_database(f"sqlite:///{path}", MIGRATIONS_DIR)
    assert not path.with_name(path.name + "-wal").exists(), "WAL not checkpointed: the copy would miss data"
    return path


@pytest.fixture
def engine(settings: Settings, _migrated_sqlite: Path) -> Engine:
    """The shared engine on a freshly migrated SQLite database in the settings' data dir."""
    target = settings.data_dir / "sellerdesk.db"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_migrated_sqlite, target)
    return dbm.get_engine(settings.database_url)


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as current:
        yield current


# Services tier.


def _unavailable(reason: str) -> None:
    if os.environ.get("SELLERDESK_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (and SELLERDESK_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """SELLERDESK_TEST_DATABASE_URL, checked to answer."""
    raw = os.environ.get("SELLERDESK_TEST_DATABASE_URL")
    if not raw:
        _unavailable("SELLERDESK_TEST_DATABASE_URL is not set: PostgreSQL tests not run")
    url = normalise_database_url(raw)
    engine = dbm.make_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        first_line = str(exc.orig).strip().splitlines()[0]
        _unavailable(f"PostgreSQL at {dbm.redact_url(url)} does not answer: {first_line}")
    finally:
        engine.dispose()
    return url


@contextmanager
def _pg_schema(server_url: str) -> Iterator[str]:
    """A new PostgreSQL schema, as a URL whose connections use it by default; dropped on exit."""
    name = f"sd_test_{uuid.uuid4().hex[:12]}"
    admin = dbm.make_engine(server_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{name}"'))
    url = make_url(server_url).update_query_dict({"options": f"-csearch_path={name}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        dbm.dispose_engines()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


@pytest.fixture
def pg_empty_url(pg_server_url: str) -> Iterator[str]:
    """A URL on a new, empty PostgreSQL schema (for migration tests), dropped after the test."""
    with _pg_schema(pg_server_url) as url:
        yield url


@pytest.fixture(scope="session")
def _pg_migrated_url(pg_server_url: str) -> Iterator[str]:
    with _pg_schema(pg_server_url) as url:
        dbm.upgrade_database(url, MIGRATIONS_DIR)
        yield url


@pytest.fixture
def pg_url(_pg_migrated_url: str) -> Iterator[str]:
    """A URL on a migrated PostgreSQL schema private to this test run; every table is emptied after each test."""
    yield _pg_migrated_url
    engine = dbm.make_engine(_pg_migrated_url)
    try:
        tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
        with engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()


@pytest.fixture
def pg_engine(pg_url: str) -> Engine:
    """The shared engine on `pg_url`."""
    return dbm.get_engine(pg_url)


@pytest.fixture
def pg_settings(tmp_path: Path, pg_url: str) -> Settings:
    """Settings whose database is `pg_url`, installed as the process-wide settings."""
    current = load_settings(_env_file=None, data_dir=tmp_path / "data", database_url=pg_url)
    set_settings(current)
    return current


@pytest.fixture(scope="session")
def redis_url() -> str:
    """SELLERDESK_TEST_REDIS_URL, checked to answer. The server is shared: use keys unique to the test."""
    import redis

    url = os.environ.get("SELLERDESK_TEST_REDIS_URL")
    if not url:
        _unavailable("SELLERDESK_TEST_REDIS_URL is not set: Redis tests not run")
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        where = urlsplit(url)
        _unavailable(f"Redis at {where.hostname}:{where.port or 6379} does not answer: {exc}")
    finally:
        client.close()
    return url
