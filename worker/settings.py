"""Process settings: environment variables prefixed `SELLERDESK_`, an optional `.env`, `*_FILE` secrets.

`get_settings()` is the one accessor; `load_settings()` builds a fresh instance and turns every bad value
into `InvalidSetting`, whose message names the environment variable to fix.
"""

from __future__ import annotations

import os
import re
import secrets
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, FilePath, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError

ENV_PREFIX = "SELLERDESK_"

# The repository root, found from this file: templates/ and migrations/ live there in a source checkout
# or an editable install. A wheel install (the Docker image) points the two settings elsewhere.
SOURCE_ROOT = Path(__file__).resolve().parent.parent

SECRET_KEY_FILENAME = "secret_key"
MIN_SECRET_KEY_CHARS = 32

# Fields that may instead be read from a file named by `SELLERDESK_<FIELD>_FILE` (Docker/Kubernetes
# secrets), so a password never has to sit in the environment.
FILE_VARIANT_FIELDS = ("secret_key", "database_url", "broker_url", "redis_url", "tracking_api_token")

Role = Literal["agent", "supervisor", "admin"]
DEFAULT_MONEY_CAPS: dict[str, Decimal] = {
    "agent": Decimal("20"),
    "supervisor": Decimal("200"),
    "admin": Decimal("2000"),
}

_DB_SCHEME = re.compile(r"^(?P<scheme>[a-z0-9]+)(\+(?P<driver>[a-z0-9_]+))?://", re.IGNORECASE)


class InvalidSetting(Exception):
    """A setting the program cannot start with; `variable` is the environment variable to fix."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"invalid setting {variable}: {problem}")
        self.variable = variable
        self.problem = problem


def env_var(field_name: str) -> str:
    """The environment variable that sets `field_name`."""
    return f"{ENV_PREFIX}{field_name.upper()}"


def normalise_database_url(url: str) -> str:
    """Return the SQLAlchemy URL to use: PostgreSQL goes through psycopg 3; only SQLite and PostgreSQL pass."""
    match = _DB_SCHEME.match(url)
    if not match:
        raise ValueError("not a database URL: expected sqlite:///path or postgresql://user@host/db")
    scheme, driver = match["scheme"].lower(), (match["driver"] or "").lower()
    rest = url[match.end() :]
    if scheme in ("postgres", "postgresql") and driver in ("", "psycopg"):
        return f"postgresql+psycopg://{rest}"
    if scheme == "sqlite" and driver in ("", "pysqlite"):
        return url
    raise ValueError(
        f"unsupported database {match[0]!r}: use sqlite:///path or postgresql://... (driver psycopg 3)"
    )


class _FileVariantSource(PydanticBaseSettingsSource):
    """Reads `SELLERDESK_<FIELD>_FILE`: the field's value is the file's content without surrounding blanks."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # Required by the base class; all the work happens in __call__.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in FILE_VARIANT_FIELDS:
            direct = env_var(name)
            variable = f"{direct}_FILE"
            path = os.environ.get(variable)
            if not path:
                continue
            if os.environ.get(direct):
                raise InvalidSetting(variable, f"{direct} is set too; set only one of them")
            try:
                values[name] = Path(path).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise InvalidSetting(variable, f"cannot read {path}: {reason}") from None
        return values


class Settings(BaseSettings):
    """Everything the worker, the web app and the CLI read from the environment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        # A .env may hold other tools' variables (and the test-only SELLERDESK_TEST_* ones).
        extra="ignore",
        validate_default=True,
    )

    data_dir: Path = Path("sellerdesk-data")
    # Empty means a SQLite file in data_dir.
    database_url: str = ""
    # None: the embedded broker (no server), see the daemon; else e.g. redis://host:6379/0.
    broker_url: str | None = None
    redis_url: str | None = None
    # Empty means: read <data_dir>/secret_key, creating it (mode 0600) on first run.
    secret_key: SecretStr = SecretStr("")
    # 17TRACK API token for tracking lookups; None disables them.
    tracking_api_token: SecretStr | None = None
    # 17TRACK's API root; the sandbox serves the same dialect for the demo and the tests.
    tracking_api_url: str = "https://api.17track.net"

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_json: bool = False
    timezone: str = "UTC"

    shop_name: str = Field(default="Our store", min_length=1, max_length=200)
    policy_file: FilePath | None = None
    templates_dir: Path = SOURCE_ROOT / "templates"
    migrations_dir: Path = SOURCE_ROOT / "migrations"

    # Seconds an automatic reply waits in the outbox so a human can still cancel it.
    undo_window_seconds: int = Field(default=120, ge=0, le=86_400)
    # The auto-send confidence threshold and the one-automatic-reply period are policy values
    # (worker/policy/default.toml, [auto_send]): per shop, per account, in the policy file.
    poll_interval_seconds: int = Field(default=300, ge=1, le=86_400)
    # How often beat looks for drafts whose undo window has passed and outbox rows due to go out.
    dispatch_interval_seconds: int = Field(default=15, ge=1, le=3_600)
    # How often beat refreshes tracking, and how old a shipped order's last lookup must be to refresh it.
    tracking_interval_minutes: int = Field(default=60, ge=1, le=24 * 60)
    # A poll holds its stream this long; a poll killed mid-way blocks the stream at most this long.
    poll_lease_seconds: int = Field(default=300, ge=5, le=3_600)
    # A send or action still `sending` after this long belongs to a dead worker and is reconciled.
    send_lease_seconds: int = Field(default=120, ge=5, le=3_600)
    # After an unknown outcome (timeout mid-send), ask the marketplace what happened after this long.
    reconcile_delay_seconds: int = Field(default=30, ge=1, le=3_600)
    # A send refused without reaching the marketplace (5xx, 429) is retried after this long, doubling
    # per attempt up to an hour.
    send_retry_seconds: int = Field(default=15, ge=1, le=3_600)
    # A row the dispatcher enqueued is enqueued again only after this long (a lost task, a dead worker).
    redispatch_after_seconds: int = Field(default=60, ge=1, le=3_600)
    # A message still untriaged after this long lost its task: dispatch sends it again.
    stuck_after_seconds: int = Field(default=120, ge=5, le=86_400)
    tracking_refresh_hours: int = Field(default=12, ge=1, le=24 * 7)
    # A message or dispute whose triage failed (or whose worker died) this many times is quarantined.
    triage_max_attempts: int = Field(default=3, ge=1, le=100)
    # Largest money action (refund, resend, coupon; in the order's currency) each role may approve.
    # Roles left out keep their default.
    money_caps: dict[Role, Decimal] = Field(default_factory=lambda: dict(DEFAULT_MONEY_CAPS))

    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8000, ge=1, le=65_535)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _FileVariantSource(settings_cls), dotenv_settings

    @field_validator("data_dir", "templates_dir", "migrations_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Resolved once, so a later chdir (daemonising, tests) cannot move the data.
        return value.expanduser().resolve()

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (expected an IANA name such as Europe/Berlin)"
            ) from None
        return value

    @field_validator("money_caps")
    @classmethod
    def _caps(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for role, cap in value.items():
            if cap < 0:
                raise ValueError(f"cap for {role} is negative")
        return {**DEFAULT_MONEY_CAPS, **value}

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return normalise_database_url(value) if value else value

    @field_validator("broker_url", "redis_url")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value() and len(value.get_secret_value()) < MIN_SECRET_KEY_CHARS:
            raise ValueError(f"too short: use at least {MIN_SECRET_KEY_CHARS} random characters")
        return value

    @model_validator(mode="after")
    def _fill_defaults_from_data_dir(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'sellerdesk.db'}"
        if not self.secret_key.get_secret_value():
            self.secret_key = SecretStr(load_or_create_secret_key(self.data_dir))
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def load_or_create_secret_key(data_dir: Path) -> str:
    """Return the key stored in `<data_dir>/secret_key`, creating it (mode 0600) if it does not exist yet."""
    path = data_dir / SECRET_KEY_FILENAME
    try:
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            _create_secret_file(path, secrets.token_urlsafe(48))
        key = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise InvalidSetting(env_var("data_dir"), f"cannot create or read {path}: {exc.strerror}") from None
    if len(key) < MIN_SECRET_KEY_CHARS:
        raise InvalidSetting(
            env_var("data_dir"), f"{path} holds a key shorter than {MIN_SECRET_KEY_CHARS} chars"
        )
    return key


def _create_secret_file(path: Path, key: str) -> None:
    # Write a private temporary file, then link it into place: the link fails if another process got there
    # first (both then use that one), and nobody ever reads a half-written key.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(key + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment (and `overrides`); raise InvalidSetting naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "data_dir"
        problem = first["msg"].removeprefix("Value error, ")
        more = len(exc.errors()) - 1
        if more:
            problem += f" (and {more} more invalid setting{'s' if more > 1 else ''})"
        raise InvalidSetting(_variable_for(field), problem) from None
    except PydanticSettingsError as exc:
        # Raised when a complex value (money_caps) is not valid JSON; the message quotes the field name.
        match = re.search(r'field "(\w+)"', str(exc))
        field = match[1] if match else "money_caps"
        raise InvalidSetting(_variable_for(field), "not valid JSON") from None


def _variable_for(field: str) -> str:
    direct = env_var(field)
    if field in FILE_VARIANT_FIELDS and direct not in os.environ and f"{direct}_FILE" in os.environ:
        return f"{direct}_FILE"
    return direct


_current: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings, loaded from the environment on first use."""
    global _current
    if _current is None:
        _current = load_settings()
    return _current


def set_settings(settings: Settings | None) -> None:
    """Replace the process-wide settings (CLI start-up, tests); None reloads from the environment next time."""
    global _current
    _current = settings
