"""`sellerdesk accounts ...`: add, list, pause and resume marketplace accounts."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from worker.cli.db import fail, require_current_schema
from worker.models import Marketplace

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from worker.models import Account

app = typer.Typer(help="Marketplace accounts.", no_args_is_help=True)

ACTOR = "cli"


def _read_credentials(source: Path) -> dict[str, Any]:
    name = "standard input" if str(source) == "-" else str(source)
    try:
        text = sys.stdin.read() if str(source) == "-" else source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read credentials from {name}: {getattr(exc, 'strerror', None) or exc}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"credentials in {name} are not valid JSON (line {exc.lineno}, column {exc.colno})")
    if not isinstance(data, dict):
        fail(f"credentials in {name} must be a JSON object")
    return data


def _find(session: Session, ref: str) -> Account:
    from sqlalchemy import select

    from worker.models import Account

    if ref.isdigit():
        account = session.get(Account, int(ref))
    elif "/" in ref:
        marketplace, _, name = ref.partition("/")
        account = session.scalar(
            select(Account).where(Account.marketplace == marketplace, Account.name == name)
        )
    else:
        fail(f"{ref!r} is not an account reference: give its id or MARKETPLACE/NAME")
    if account is None:
        fail(f"no account {ref}")
    return account


def _audit(session: Session, account: Account, action: str, **details: Any) -> None:
    from worker.models import AuditLog

    session.add(
        AuditLog(
            actor=ACTOR, action=action, object_type="account", object_id=str(account.id), details_json=details
        )
    )


@app.command()
def add(
    marketplace: Marketplace = typer.Argument(
        ..., metavar="MARKETPLACE", help="Which marketplace the account is on."
    ),
    name: str = typer.Argument(..., help="A name for the account, unique per marketplace."),
    credentials: Path | None = typer.Option(
        None,
        "--credentials",
        help="JSON file with the account's API credentials (- reads standard input); stored encrypted.",
    ),
) -> None:
    """Add an account (credentials are read from a file, never from the command line)."""
    from sqlalchemy import select

    from worker.crypto import set_credentials
    from worker.db import session_scope
    from worker.models import Account

    name = name.strip()
    if not name or len(name) > 200:
        fail("the account name must have 1 to 200 characters")
    data = _read_credentials(credentials) if credentials is not None else None
    engine = require_current_schema()
    with session_scope(engine) as session:
        exists = select(Account.id).where(Account.marketplace == marketplace.value, Account.name == name)
        if session.scalar(exists) is not None:
            fail(f"account {marketplace.value}/{name} exists already")
        account = Account(marketplace=marketplace.value, name=name)
        if data is not None:
            set_credentials(account, data)
        session.add(account)
        session.flush()
        _audit(session, account, "account.add", marketplace=marketplace.value, name=name)
    typer.echo(f"added account {account.id}: {marketplace.value}/{name}")


@app.command("list")
def list_accounts() -> None:
    """List the accounts with their state."""
    from sqlalchemy import select

    from worker.db import session_scope
    from worker.models import Account

    engine = require_current_schema()
    with session_scope(engine) as session:
        accounts = session.scalars(select(Account).order_by(Account.id)).all()
    if not accounts:
        typer.echo("no accounts yet: add one with `sellerdesk accounts add MARKETPLACE NAME`")
        return
    rows = [("ID", "MARKETPLACE", "NAME", "STATE")]
    for account in accounts:
        state = f"paused: {account.paused_reason}" if account.paused else "active"
        rows.append((str(account.id), account.marketplace, account.name, state))
    # The state goes last and unpadded: it is the only free-text column.
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        padded = "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        typer.echo(f"{padded}  {row[3]}")


@app.command()
def pause(
    account: str = typer.Argument(..., help="Account id or MARKETPLACE/NAME."),
    reason: str = typer.Option("paused by hand", "--reason", help="Shown wherever the account appears."),
) -> None:
    """Stop polling and sending for an account until it is resumed."""
    from worker.db import session_scope, utcnow

    with session_scope(require_current_schema()) as session:
        found = _find(session, account)
        found.paused, found.paused_reason, found.paused_at = True, reason, utcnow()
        _audit(session, found, "account.pause", reason=reason)
        label = f"{found.marketplace}/{found.name}"
    typer.echo(f"paused account {label}: {reason}")


@app.command()
def resume(account: str = typer.Argument(..., help="Account id or MARKETPLACE/NAME.")) -> None:
    """Resume a paused account."""
    from worker.db import session_scope

    with session_scope(require_current_schema()) as session:
        found = _find(session, account)
        found.paused, found.paused_reason, found.paused_at = False, None, None
        _audit(session, found, "account.resume")
        label = f"{found.marketplace}/{found.name}"
    typer.echo(f"resumed account {label}")
