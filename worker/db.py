"""Database plumbing: engines, one session per unit of work, column types, and Alembic run from code.

SQLite (the embedded default) gets WAL, a 30 s busy timeout and foreign keys on every connection;
PostgreSQL goes through psycopg 3. Datetimes are always timezone-aware UTC in Python, on both.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, Engine, Numeric, create_engine, event, make_url, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from worker.settings import get_settings, normalise_database_url

SQLITE_BUSY_TIMEOUT_MS = 30_000
CENT = Decimal("0.01")


def utcnow() -> datetime:
    """The current time as an aware UTC datetime (the only kind the database accepts)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC and returns aware UTC datetimes on every backend; a naive datetime is refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: pass an aware datetime (UTC)")
        value = value.astimezone(UTC)
        # SQLite has no time zone type: keep the UTC wall time and drop the offset.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Money(TypeDecorator[Decimal]):
    """Numeric(12, 2) that takes Decimal or int and refuses floats and fractions of a cent (nothing rounds)."""

    impl = Numeric(12, 2, asdecimal=True)
    cache_ok = True

    def process_bind_param(self, value: Decimal | int | None, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, Decimal | int):
            raise TypeError(f"money must be a Decimal or an int, got {type(value).__name__} {value!r}")
        amount = Decimal(value)
        if not amount.is_finite() or amount != amount.quantize(CENT):
            raise ValueError(f"money amount {amount} has more than 2 decimal places")
        return amount.quantize(CENT)

    def process_result_value(self, value: Decimal | None, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value).quantize(CENT)


# JSON documents: JSONB on PostgreSQL (indexable, compact), JSON text on SQLite.
JSONDoc = JSON().with_variant(postgresql.JSONB(), "postgresql")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for `url` (postgresql:// is rewritten to psycopg 3; a SQLite file's folder is created)."""
    url = normalise_database_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets the web app read while a worker writes; the busy timeout makes writers queue instead of
        # failing with "database is locked"; SQLite enforces foreign keys only when asked, per connection.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()
    # We issue BEGIN ourselves (below): the sqlite3 module's implicit BEGIN would be a deferred one.
    dbapi_connection.isolation_level = None


def _sqlite_begin_immediate(connection: Any) -> None:
    # A deferred transaction that reads first and writes later cannot wait for the write lock: SQLite
    # answers "database is locked" at once, busy timeout or not (it would risk a deadlock). Units of
    # work (session_scope) therefore take the lock when they begin and queue on the busy timeout; other
    # connections (read-only views, tests) begin deferred and, under WAL, never block a writer.
    if connection.get_execution_options().get("sqlite_begin_immediate"):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")


_engines: dict[str, Engine] = {}
_session_factories: dict[Engine, sessionmaker[Session]] = {}


def get_engine(url: str | None = None) -> Engine:
    """The shared engine for `url` (default: the settings' database URL), created on first use."""
    url = normalise_database_url(url or get_settings().database_url)
    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = make_engine(url)
    return engine


def dispose_engines() -> None:
    """Close every shared engine's connections (after fork in a worker process, and between tests)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()
    _session_factories.clear()


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """One session per unit of work: commits when the block ends, rolls back if it raises."""
    engine = engine or get_engine()
    factory = _session_factories.get(engine)
    if factory is None:
        bind = (
            engine.execution_options(sqlite_begin_immediate=True)
            if engine.dialect.name == "sqlite"
            else engine
        )
        # Objects stay readable after commit: tasks return what they wrote without reloading it.
        factory = _session_factories[engine] = sessionmaker(bind, expire_on_commit=False)
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


# Namespaces of `lock_keys` (the first key of PostgreSQL's two-key advisory locks).
LOCK_CONVERSATION = 1
LOCK_ORDER = 2


def lock_keys(s: Session, keys: Iterable[tuple[int, int]]) -> None:
    """Hold (namespace, id) locks until the transaction ends, taken in sorted order so holders never deadlock.

    PostgreSQL advisory locks; on SQLite a unit of work already holds the database's write lock."""
    ordered = sorted({(ns, int(i)) for ns, i in keys if i is not None})
    if not ordered or s.get_bind().dialect.name != "postgresql":
        return
    # One round trip; the subquery's ORDER BY fixes the order in which the locks are taken.
    s.execute(
        text(
            "SELECT count(pg_advisory_xact_lock(k.ns, k.id)) FROM "
            "(SELECT * FROM unnest(CAST(:ns AS int[]), CAST(:ids AS int[])) AS k(ns, id) ORDER BY 1, 2) AS k"
        ),
        {"ns": [ns for ns, _ in ordered], "ids": [i for _, i in ordered]},
    )


def redact_url(url: str) -> str:
    """The URL with its password masked, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


# Alembic, run from code so `sellerdesk db upgrade` works from any directory without alembic.ini.


def alembic_config(url: str | None = None, migrations_dir: Path | None = None) -> Any:
    """An Alembic Config for the migrations folder (default: the settings' one) and, if given, `url`."""
    from alembic.config import Config

    folder = migrations_dir or get_settings().migrations_dir
    if not (folder / "env.py").is_file():
        raise FileNotFoundError(f"no Alembic migrations in {folder} (set SELLERDESK_MIGRATIONS_DIR)")
    config = Config()
    config.set_main_option("script_location", str(folder))
    if url:
        # ConfigParser treats % as interpolation; URL-encoded passwords contain it.
        config.set_main_option("sqlalchemy.url", normalise_database_url(url).replace("%", "%%"))
    return config


def head_revision(migrations_dir: Path | None = None) -> str | None:
    """The newest migration revision the code ships."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(migrations_dir=migrations_dir)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None for a database never upgraded."""
    from alembic.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_database(url: str, migrations_dir: Path | None = None) -> tuple[str | None, str | None]:
    """Create or upgrade the schema at `url` to the newest revision; return (revision before, after)."""
    from alembic import command

    config = alembic_config(url, migrations_dir)
    engine = make_engine(url)
    try:
        before = current_revision(engine)
        with engine.begin() as connection:
            # env.py uses this connection (and its transaction) instead of opening its own.
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        return before, current_revision(engine)
    finally:
        engine.dispose()


def migration_options(dialect_name: str) -> dict[str, Any]:
    """Options for Alembic's migration context, shared by env.py and the models-vs-database check."""
    return {
        "compare_type": True,
        # SQLite cannot ALTER most things: Alembic rebuilds the table instead ("batch" mode).
        "render_as_batch": dialect_name == "sqlite",
    }


def schema_differences(engine: Engine) -> list[Any]:
    """What Alembic autogenerate would change to make the database match the models (empty: they agree)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from worker.models import Base

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts=migration_options(engine.dialect.name))
        return compare_metadata(context, Base.metadata)
