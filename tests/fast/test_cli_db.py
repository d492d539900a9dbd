"""`sellerdesk db` and `sellerdesk accounts` on SQLite, and the migrations against the models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text
from typer.testing import CliRunner, Result

from worker.cli import app
from worker.crypto import get_credentials
from worker.db import head_revision, make_engine, schema_differences, session_scope, upgrade_database
from worker.models import Account, AuditLog, Base
from worker.settings import SOURCE_ROOT, load_settings


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Run the CLI from an unrelated directory with the data dir in a folder that does not exist yet."""
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("SELLERDESK_DATA_DIR", str(tmp_path / "not" / "yet" / "data"))

    def run(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(app, list(args), input=input)

    return run


def test_upgrade_creates_the_data_dir_and_twice_is_a_no_op(cli, tmp_path: Path) -> None:
    database = tmp_path / "not" / "yet" / "data" / "sellerdesk.db"
    first = cli("db", "upgrade")
    assert first.exit_code == 0, first.output
    assert "upgraded from an empty database to revision 0001" in first.stdout
    assert database.exists()

    engine = make_engine(f"sqlite:///{database}")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (username, password_hash, role, active, created_at) "
                "VALUES ('ana', 'h', 'agent', 1, '2026-01-01 00:00:00')"
            )
        )
    tables = set(inspect(engine).get_table_names())

    second = cli("db", "upgrade")
    assert second.exit_code == 0, second.output
    assert "already at revision 0001 (newest); nothing to do" in second.stdout
    assert set(inspect(engine).get_table_names()) == tables
    with engine.connect() as connection:
        assert connection.execute(text("SELECT username FROM users")).scalars().all() == ["ana"]
    engine.dispose()


def test_current_reports_the_revision(cli) -> None:
    before = cli("db", "current")
    assert before.exit_code == 1
    assert "run `sellerdesk db upgrade`" in before.stdout
    cli("db", "upgrade")
    after = cli("db", "current")
    assert after.exit_code == 0
    assert after.stdout.strip() == f"{head_revision(SOURCE_ROOT / 'migrations')} (newest)"


def test_upgrade_from_any_directory_through_the_console_script(tmp_path: Path, sellerdesk) -> None:
    for expected in ("upgraded from an empty database", "already at revision"):
        done = sellerdesk("db", "upgrade", cwd="/", SELLERDESK_DATA_DIR=str(tmp_path / "data"))
        assert done.returncode == 0, done.stderr
        assert expected in done.stdout


def test_unreachable_database_is_one_line_and_status_1(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELLERDESK_DATABASE_URL", "postgresql://sd:pw@127.0.0.1:1/none")
    result = cli("db", "upgrade")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "sellerdesk: database postgresql+psycopg://sd:***@127.0.0.1:1/none"
    )
    assert "pw" not in result.stderr


def test_models_and_migrations_agree_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert upgrade_database(url, SOURCE_ROOT / "migrations") == (None, "0001")
    engine = make_engine(url)
    try:
        assert schema_differences(engine) == []
        assert set(inspect(engine).get_table_names()) == set(Base.metadata.tables) | {"alembic_version"}
    finally:
        engine.dispose()


def test_schema_differences_sees_a_drifted_database(tmp_path: Path) -> None:
    # The agreement test above is only worth something if a difference would be reported.
    url = f"sqlite:///{tmp_path / 'drift.db'}"
    upgrade_database(url, SOURCE_ROOT / "migrations")
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("DROP INDEX ix_outbox_state_not_before"))
            connection.execute(text("ALTER TABLE accounts ADD COLUMN nickname VARCHAR(20)"))
        kinds = {diff[0] for diff in schema_differences(engine)}
        assert {"add_index", "remove_column"} <= kinds
    finally:
        engine.dispose()


def test_accounts_add_list_pause_resume(cli, tmp_path: Path) -> None:
    assert cli("db", "upgrade").exit_code == 0
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"app_key": "123", "app_secret": "VERY-SECRET"}), encoding="utf-8")

    added = cli("accounts", "add", "aliexpress", "main", "--credentials", str(creds))
    assert added.exit_code == 0, added.output
    assert added.stdout.strip() == "added account 1: aliexpress/main"
    from_stdin = cli("accounts", "add", "ebay", "second", "--credentials", "-", input='{"token": "t"}')
    assert from_stdin.exit_code == 0, from_stdin.output

    duplicate = cli("accounts", "add", "aliexpress", "main")
    assert duplicate.exit_code == 1
    assert duplicate.stderr.strip() == "sellerdesk: account aliexpress/main exists already"

    assert cli("accounts", "pause", "aliexpress/main", "--reason", "token revoked").exit_code == 0
    listing = cli("accounts", "list").stdout.splitlines()
    assert listing[0].split() == ["ID", "MARKETPLACE", "NAME", "STATE"]
    assert listing[1].split() == ["1", "aliexpress", "main", "paused:", "token", "revoked"]
    assert listing[2].split() == ["2", "ebay", "second", "active"]
    assert cli("accounts", "resume", "1").exit_code == 0

    settings = load_settings()
    with session_scope(make_engine(settings.database_url)) as session:
        account = session.scalar(select(Account).where(Account.name == "main"))
        assert account.paused is False and account.paused_reason is None
        assert get_credentials(account, settings.secret_key) == {
            "app_key": "123",
            "app_secret": "VERY-SECRET",
        }
        assert b"VERY-SECRET" not in account.credentials_encrypted
        actions = session.scalars(select(AuditLog.action).order_by(AuditLog.id)).all()
        assert actions == ["account.add", "account.add", "account.pause", "account.resume"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["accounts", "pause", "7"], "no account 7"),
        (["accounts", "pause", "main"], "is not an account reference"),
        (["accounts", "add", "ebay", "x", "--credentials", "-"], "are not valid JSON"),
    ],
)
def test_account_errors_are_one_line(cli, args: list[str], message: str) -> None:
    cli("db", "upgrade")
    result = cli(*args, input="[not json")
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr


def test_accounts_before_upgrade_say_what_to_do(cli) -> None:
    result = cli("accounts", "list")
    assert result.exit_code == 1
    assert "run `sellerdesk db upgrade`" in result.stderr


def test_version_prints_the_installed_version(cli) -> None:
    result = cli("version")
    assert result.exit_code == 0
    assert result.stdout.startswith("sellerdesk ") and result.stdout.strip().split()[1][0].isdigit()
