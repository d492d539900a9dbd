"""`sellerdesk users ...`: add people who use the web UI, set their role and accounts, issue API tokens."""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from worker.cli.db import fail, require_current_schema

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

app = typer.Typer(help="Users of the web UI and API: roles, accounts, tokens.", no_args_is_help=True)


def cli_actor() -> str:
    """The audit actor for commands run by hand: cli:<operating-system user>."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return f"cli:{name}"


def _read_password(source: Path | None) -> str:
    if source is None:
        return typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    name = "standard input" if str(source) == "-" else str(source)
    try:
        text = sys.stdin.read() if str(source) == "-" else source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read the password from {name}: {getattr(exc, 'strerror', None) or exc}")
    # One trailing newline is how files and pipes end; anything else is part of the password.
    return text[:-1] if text.endswith("\n") else text


def _account_ids(session: Session, refs: list[str]) -> list[int]:
    from sqlalchemy import select

    from worker.models import Account

    ids: list[int] = []
    for ref in refs:
        for part in (p.strip() for p in ref.split(",")):
            if not part:
                continue
            if part.isdigit():
                account = session.get(Account, int(part))
            elif "/" in part:
                marketplace, _, name = part.partition("/")
                account = session.scalar(
                    select(Account).where(Account.marketplace == marketplace, Account.name == name)
                )
            else:
                fail(f"{part!r} is not an account reference: give its id or MARKETPLACE/NAME")
            if account is None:
                fail(f"no account {part}")
            ids.append(account.id)
    return ids


PASSWORD_FILE_HELP = "Read the password from this file (- reads standard input) instead of prompting."
ACCOUNTS_HELP = "Account id or MARKETPLACE/NAME the user may see (repeat, or separate with commas)."


@app.command()
def add(
    username: str = typer.Argument(..., help="Login name (letters, digits, . _ @ -)."),
    role: str = typer.Option("agent", "--role", help="agent, supervisor or admin."),
    account: list[str] = typer.Option([], "--account", "-a", help=ACCOUNTS_HELP),
    password_file: Path | None = typer.Option(None, "--password-file", help=PASSWORD_FILE_HELP),
) -> None:
    """Add a user (the password is prompted for, or read from a file; never from the command line)."""
    from worker import users
    from worker.db import session_scope

    engine = require_current_schema()
    password = _read_password(password_file)
    try:
        with session_scope(engine) as session:
            user = users.create_user(
                session, username, password, role, _account_ids(session, account), actor=cli_actor()
            )
            label = f"{user.id}: {user.username} ({user.role})"
    except users.UserError as exc:
        fail(str(exc))
    typer.echo(f"added user {label}")


@app.command("list")
def list_users(
    json_out: bool = typer.Option(False, "--json", help="One JSON document instead of a table."),
) -> None:
    """List the users with role, accounts, state and number of API tokens."""
    from sqlalchemy import func, select

    from worker.db import session_scope
    from worker.models import ApiToken, User

    with session_scope(require_current_schema()) as session:
        tokens = dict(
            session.execute(select(ApiToken.user_id, func.count()).group_by(ApiToken.user_id)).all()
        )
        rows = [
            {
                "id": u.id,
                "username": u.username,
                "role": u.role,
                "active": u.active,
                "accounts": "all" if u.role == "admin" else [f"{a.marketplace}/{a.name}" for a in u.accounts],
                "tokens": tokens.get(u.id, 0),
            }
            for u in session.scalars(select(User).order_by(User.username))
        ]
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no users yet: add one with `sellerdesk users add NAME --role admin`")
        return
    table = [("ID", "USERNAME", "ROLE", "STATE", "TOKENS", "ACCOUNTS")]
    for r in rows:
        accounts = r["accounts"] if isinstance(r["accounts"], str) else (", ".join(r["accounts"]) or "none")
        state = "active" if r["active"] else "disabled"
        table.append((str(r["id"]), r["username"], r["role"], state, str(r["tokens"]), accounts))
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    for row in table:
        typer.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[5]
        )


@app.command("set-role")
def set_role(
    username: str = typer.Argument(...), role: str = typer.Argument(..., help="agent, supervisor or admin.")
) -> None:
    """Change a user's role."""
    from worker import users
    from worker.db import session_scope

    try:
        with session_scope(require_current_schema()) as session:
            user = users.set_role(session, users.get_user(session, username), role, actor=cli_actor())
            label = f"{user.username} is now {user.role}"
    except users.UserError as exc:
        fail(str(exc))
    typer.echo(label)


@app.command("set-accounts")
def set_accounts(
    username: str = typer.Argument(...),
    accounts: list[str] = typer.Argument(None, help="Account ids or MARKETPLACE/NAME; none clears the list."),
) -> None:
    """Replace the accounts a user may see (admins see all whatever the list says)."""
    from worker import users
    from worker.db import session_scope

    try:
        with session_scope(require_current_schema()) as session:
            user = users.get_user(session, username)
            user = users.set_accounts(session, user, _account_ids(session, accounts or []), actor=cli_actor())
            names = ", ".join(f"{a.marketplace}/{a.name}" for a in user.accounts) or "none"
            label = f"{user.username} sees: {names}"
    except users.UserError as exc:
        fail(str(exc))
    typer.echo(label)


@app.command("set-password")
def set_password(
    username: str = typer.Argument(...),
    password_file: Path | None = typer.Option(None, "--password-file", help=PASSWORD_FILE_HELP),
) -> None:
    """Set a new password; the user's open web sessions end."""
    from worker import users
    from worker.db import session_scope

    engine = require_current_schema()
    password = _read_password(password_file)
    try:
        with session_scope(engine) as session:
            user = users.set_password(session, users.get_user(session, username), password, actor=cli_actor())
            label = user.username
    except users.UserError as exc:
        fail(str(exc))
    typer.echo(f"password of {label} changed")


@app.command()
def token(
    username: str = typer.Argument(...),
    name: str = typer.Option("cli", "--name", help="What the token is for (shown in `users list`)."),
) -> None:
    """Create an API token for scripts; it is printed once on standard output and only its hash is kept."""
    from worker import users
    from worker.db import session_scope

    try:
        with session_scope(require_current_schema()) as session:
            row, secret = users.create_token(
                session, users.get_user(session, username), name, actor=cli_actor()
            )
    except users.UserError as exc:
        fail(str(exc))
    typer.echo(
        f"token {row.id} for {username.strip().lower()} (shown once; send it as Authorization: Bearer ...):",
        err=True,
    )
    typer.echo(secret)


@app.command()
def tokens(username: str = typer.Argument(...)) -> None:
    """List a user's API tokens: id, name, created, last used (the tokens themselves are not kept)."""
    from worker import users
    from worker.db import session_scope

    try:
        with session_scope(require_current_schema()) as session:
            rows = [
                (
                    str(t.id),
                    t.name,
                    f"{t.created_at:%Y-%m-%d %H:%M}",
                    f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never",
                )
                for t in users.list_tokens(session, users.get_user(session, username))
            ]
    except users.UserError as exc:
        fail(str(exc))
    if not rows:
        typer.echo(f"{username.strip().lower()} has no API token")
        return
    table = [("ID", "NAME", "CREATED", "LAST USED"), *rows]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        typer.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[3]
        )


@app.command("revoke-token")
def revoke_token(
    token_id: int = typer.Argument(..., help="The token's id (see `sellerdesk users tokens`)."),
) -> None:
    """Revoke an API token: scripts using it get 401 from now on."""
    from worker import users
    from worker.db import session_scope

    try:
        with session_scope(require_current_schema()) as session:
            users.revoke_token(session, token_id, actor=cli_actor())
    except users.UserError as exc:
        fail(str(exc))
    typer.echo(f"revoked token {token_id}")
