"""Settings: defaults, environment, *_FILE secrets, the generated secret key, and bad values at start-up."""

from __future__ import annotations

import stat
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from worker.cli import app
from worker.settings import (
    SOURCE_ROOT,
    InvalidSetting,
    get_settings,
    load_settings,
    normalise_database_url,
    set_settings,
)


def test_defaults_put_everything_in_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings(_env_file=None)
    assert s.data_dir == tmp_path / "sellerdesk-data"
    assert s.database_url == f"sqlite:///{tmp_path / 'sellerdesk-data' / 'sellerdesk.db'}"
    assert s.is_sqlite
    assert s.broker_url is None and s.redis_url is None
    assert s.log_level == "INFO" and s.log_json is False
    assert s.undo_window_seconds == 120
    assert s.shop_name == "Our store" and s.policy_file is None
    assert s.templates_dir == SOURCE_ROOT / "templates"
    assert s.migrations_dir == SOURCE_ROOT / "migrations"
    assert (s.web_host, s.web_port, s.timezone) == ("127.0.0.1", 8000, "UTC")
    assert set(s.money_caps) == {"agent", "supervisor", "admin"}


def test_environment_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELLERDESK_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("SELLERDESK_WEB_PORT", "9001")
    monkeypatch.setenv("SELLERDESK_LOG_LEVEL", "debug")
    monkeypatch.setenv("SELLERDESK_LOG_JSON", "true")
    monkeypatch.setenv("SELLERDESK_BROKER_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("SELLERDESK_DATABASE_URL", "postgres://u:p@db:5432/sd")
    monkeypatch.setenv("SELLERDESK_MONEY_CAPS", '{"agent": "5.50"}')
    monkeypatch.setenv("SELLERDESK_TIMEZONE", "Asia/Shanghai")
    s = load_settings(_env_file=None)
    assert s.data_dir == tmp_path / "d"
    assert s.web_port == 9001
    assert s.log_level == "DEBUG" and s.log_json is True
    assert s.broker_url == "redis://127.0.0.1:6379/0"
    assert s.database_url == "postgresql+psycopg://u:p@db:5432/sd"
    assert not s.is_sqlite
    # Roles left out keep their default cap.
    assert s.money_caps["agent"] == Decimal("5.50")
    assert s.money_caps["admin"] == Decimal("2000")
    assert s.timezone == "Asia/Shanghai"


def test_dotenv_file_is_read_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("SELLERDESK_SHOP_NAME=Dress Corner\nOTHER_TOOL=x\n", encoding="utf-8")
    assert load_settings().shop_name == "Dress Corner"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_database_urls_are_normalised(raw: str, expected: str) -> None:
    assert normalise_database_url(raw) == expected


@pytest.mark.parametrize("raw", ["mysql://u@h/db", "postgresql+psycopg2://u@h/db", "just-a-path.db"])
def test_unsupported_database_urls_are_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        normalise_database_url(raw)


def test_secret_key_is_generated_once_private_and_reused(tmp_path: Path) -> None:
    first = load_settings(_env_file=None, data_dir=tmp_path / "new" / "dir")
    key_file = tmp_path / "new" / "dir" / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = first.secret_key.get_secret_value()
    assert len(key) >= 32
    assert key_file.read_text(encoding="utf-8").strip() == key
    second = load_settings(_env_file=None, data_dir=tmp_path / "new" / "dir")
    assert second.secret_key.get_secret_value() == key
    # Never shown by accident.
    assert key not in repr(second) and key not in str(second.model_dump())


def test_given_secret_key_writes_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELLERDESK_SECRET_KEY", "k" * 40)
    s = load_settings(_env_file=None, data_dir=tmp_path)
    assert s.secret_key.get_secret_value() == "k" * 40
    assert not (tmp_path / "secret_key").exists()


def test_short_secret_key_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELLERDESK_SECRET_KEY", "hunter2-abc")
    with pytest.raises(InvalidSetting, match="too short") as caught:
        load_settings(_env_file=None, data_dir=tmp_path)
    assert caught.value.variable == "SELLERDESK_SECRET_KEY"
    # The message never repeats a secret value.
    assert "hunter2" not in str(caught.value)


def test_file_variants_read_secrets_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "key").write_text("s" * 48 + "\n", encoding="utf-8")
    (tmp_path / "db").write_text("postgresql://app:pw@db/sd\n", encoding="utf-8")
    monkeypatch.setenv("SELLERDESK_SECRET_KEY_FILE", str(tmp_path / "key"))
    monkeypatch.setenv("SELLERDESK_DATABASE_URL_FILE", str(tmp_path / "db"))
    s = load_settings(_env_file=None, data_dir=tmp_path / "data")
    assert s.secret_key.get_secret_value() == "s" * 48
    assert s.database_url == "postgresql+psycopg://app:pw@db/sd"


def test_file_variant_errors_name_the_file_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELLERDESK_SECRET_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(InvalidSetting, match="No such file") as caught:
        load_settings(_env_file=None, data_dir=tmp_path)
    assert caught.value.variable == "SELLERDESK_SECRET_KEY_FILE"

    (tmp_path / "short").write_text("abc", encoding="utf-8")
    monkeypatch.setenv("SELLERDESK_SECRET_KEY_FILE", str(tmp_path / "short"))
    with pytest.raises(InvalidSetting, match="too short") as caught:
        load_settings(_env_file=None, data_dir=tmp_path)
    assert caught.value.variable == "SELLERDESK_SECRET_KEY_FILE"

    monkeypatch.setenv("SELLERDESK_SECRET_KEY", "k" * 40)
    with pytest.raises(InvalidSetting, match="set only one") as caught:
        load_settings(_env_file=None, data_dir=tmp_path)
    assert caught.value.variable == "SELLERDESK_SECRET_KEY_FILE"


def test_unwritable_data_dir_names_the_variable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(InvalidSetting) as caught:
        load_settings(_env_file=None, data_dir=blocker / "data")
    assert caught.value.variable == "SELLERDESK_DATA_DIR"


def test_get_settings_is_cached_and_replaceable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELLERDESK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SELLERDESK_SHOP_NAME", "First")
    first = get_settings()
    monkeypatch.setenv("SELLERDESK_SHOP_NAME", "Second")
    assert get_settings() is first
    custom = load_settings(_env_file=None, shop_name="Custom")
    set_settings(custom)
    assert get_settings() is custom
    set_settings(None)
    assert get_settings().shop_name == "Second"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SELLERDESK_WEB_PORT", "abc", "Input should be a valid integer"),
        ("SELLERDESK_WEB_PORT", "70000", "less than or equal to 65535"),
        ("SELLERDESK_UNDO_WINDOW_SECONDS", "-1", "greater than or equal to 0"),
        ("SELLERDESK_LOG_LEVEL", "loud", "Input should be"),
        ("SELLERDESK_LOG_JSON", "perhaps", "valid boolean"),
        ("SELLERDESK_TIMEZONE", "Mars/Olympus", "unknown time zone"),
        ("SELLERDESK_DATABASE_URL", "mysql://u@h/db", "unsupported database"),
        ("SELLERDESK_MONEY_CAPS", "{not json", "not valid JSON"),
        ("SELLERDESK_MONEY_CAPS", '{"agent": -1}', "negative"),
        ("SELLERDESK_POLICY_FILE", "/nonexistent/policy.toml", "does not point to a file"),
    ],
)
def test_bad_value_stops_the_cli_with_one_line_and_status_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"SELLERDESK_DATA_DIR": str(tmp_path / "data"), variable: value}
    result = CliRunner().invoke(app, ["version"], env=env)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"sellerdesk: invalid setting {variable}: ")
    assert message in lines[0]


def test_bad_value_through_the_installed_command(tmp_path: Path, sellerdesk) -> None:
    done = sellerdesk(
        "db", "upgrade", cwd=tmp_path, SELLERDESK_DATA_DIR=str(tmp_path / "data"), SELLERDESK_WEB_PORT="abc"
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "sellerdesk: invalid setting SELLERDESK_WEB_PORT: "
        "Input should be a valid integer, unable to parse string as an integer"
    ]
    # Nothing was created: the program stopped before touching the database.
    assert not (tmp_path / "data" / "sellerdesk.db").exists()
