"""Alembic environment: the models' metadata, the database URL from the caller or the settings.

`worker.db.upgrade_database` passes an open connection in `config.attributes["connection"]`; the plain
`alembic` command (alembic.ini at the repository root) connects to `SELLERDESK_DATABASE_URL` itself.
"""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import make_url
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeDecorator

from worker.db import make_engine, migration_options
from worker.models import Base
from worker.settings import get_settings

config = context.config
target_metadata = Base.metadata
if config.config_file_name is not None:
    # Only the `alembic` command has an ini file; the CLI's own logging stays as it is.
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Write our column types (UTCDateTime, Money) as the plain SQLAlchemy type they store, so a migration
    never imports application code that may change after it was written."""
    if type_ == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl!r}"
    return False


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().database_url


def _configure(**kwargs: Any) -> None:
    if "connection" in kwargs:
        dialect = kwargs["connection"].dialect.name
    else:
        dialect = make_url(kwargs["url"]).get_backend_name()
    context.configure(
        target_metadata=target_metadata, render_item=render_item, **migration_options(dialect), **kwargs
    )


def _run(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()
elif config.attributes.get("connection") is not None:
    _run(config.attributes["connection"])
else:
    engine = make_engine(_url())
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()
