"""Migrations and CLI on a real PostgreSQL: from empty, again, and in agreement with the models."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text

from worker.db import make_engine, schema_differences, upgrade_database
from worker.models import Base
from worker.settings import SOURCE_ROOT

MIGRATIONS = SOURCE_ROOT / "migrations"


def test_upgrade_from_empty_then_again_is_a_no_op(pg_empty_url: str) -> None:
    assert upgrade_database(pg_empty_url, MIGRATIONS) == (None, "0001")
    engine = make_engine(pg_empty_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO users (username, password_hash, role, active, created_at) "
                    "VALUES ('ana', 'h', 'agent', true, now())"
                )
            )
        assert upgrade_database(pg_empty_url, MIGRATIONS) == ("0001", "0001")
        with engine.connect() as connection:
            assert connection.execute(text("SELECT username FROM users")).scalars().all() == ["ana"]
        assert set(inspect(engine).get_table_names()) == set(Base.metadata.tables) | {"alembic_version"}
    finally:
        engine.dispose()


def test_models_and_migrations_agree_on_postgresql(pg_empty_url: str) -> None:
    upgrade_database(pg_empty_url, MIGRATIONS)
    engine = make_engine(pg_empty_url)
    try:
        assert schema_differences(engine) == []
        with engine.begin() as connection:
            connection.execute(text("DROP INDEX ix_drafts_state_send_after"))
        assert [diff[0] for diff in schema_differences(engine)] == ["add_index"]
    finally:
        engine.dispose()


def test_cli_upgrade_on_postgresql_twice(pg_empty_url: str, tmp_path: Path, sellerdesk) -> None:
    env = {"SELLERDESK_DATA_DIR": str(tmp_path / "data"), "SELLERDESK_DATABASE_URL": pg_empty_url}
    first = sellerdesk("db", "upgrade", cwd=tmp_path, **env)
    assert first.returncode == 0, first.stderr
    assert "upgraded from an empty database to revision 0001" in first.stdout
    again = sellerdesk("db", "upgrade", cwd=tmp_path, **env)
    assert again.returncode == 0, again.stderr
    assert "already at revision 0001" in again.stdout
    current = sellerdesk("db", "current", cwd=tmp_path, **env)
    assert current.returncode == 0 and current.stdout.strip() == "0001 (newest)"
