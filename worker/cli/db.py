"""`sellerdesk db ...`: create, upgrade and inspect the database schema; helpers for commands that need it."""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

import typer

from worker.settings import get_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

app = typer.Typer(help="Create, upgrade and inspect the database schema.", no_args_is_help=True)


def fail(message: str, status: int = 1) -> NoReturn:
    """Print `sellerdesk: <message>` on stderr and exit with `status`."""
    typer.echo(f"sellerdesk: {message}", err=True)
    raise typer.Exit(status)


def _unreachable(exc: Exception) -> NoReturn:
    from worker.db import redact_url

    # The driver's first line says what went wrong (refused, unknown database, bad password) without the
    # SQL and parameters SQLAlchemy appends.
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    fail(f"database {redact_url(get_settings().database_url)}: {detail}")


@app.command()
def upgrade() -> None:
    """Create the database or upgrade it to the newest schema; running it again changes nothing."""
    from sqlalchemy.exc import OperationalError

    from worker.db import redact_url, upgrade_database

    url = get_settings().database_url
    try:
        before, after = upgrade_database(url)
    except OperationalError as exc:
        _unreachable(exc)
    except FileNotFoundError as exc:
        fail(str(exc))
    if before == after:
        typer.echo(f"{redact_url(url)}: already at revision {after} (newest); nothing to do")
    else:
        typer.echo(f"{redact_url(url)}: upgraded from {before or 'an empty database'} to revision {after}")


@app.command()
def current() -> None:
    """Show the database's schema revision; exit status 1 when it is behind the code."""
    revision, head = _revisions(_engine())
    if revision == head:
        typer.echo(f"{revision} (newest)")
        return
    typer.echo(f"{revision or 'empty'} (newest is {head}): run `sellerdesk db upgrade`")
    raise typer.Exit(1)


def _engine() -> Engine:
    from worker.db import get_engine

    return get_engine()


def _revisions(engine: Engine) -> tuple[str | None, str | None]:
    from sqlalchemy.exc import OperationalError

    from worker.db import current_revision, head_revision

    try:
        return current_revision(engine), head_revision()
    except OperationalError as exc:
        _unreachable(exc)


def require_current_schema() -> Engine:
    """The shared engine, once the database is known to be at the newest revision; else exit 1 saying why."""
    engine = _engine()
    revision, head = _revisions(engine)
    if revision != head:
        fail(
            f"the database is at revision {revision or 'none'}, the code needs {head}: run `sellerdesk db upgrade`"
        )
    return engine
