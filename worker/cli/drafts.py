"""`sellerdesk drafts ...`: list, show, approve and reject drafts from a terminal, as "cli:<os user>"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from worker.cli.db import fail, require_current_schema
from worker.cli.users import cli_actor
from worker.settings import get_settings

if TYPE_CHECKING:
    from worker.web.review import Reviewer

app = typer.Typer(help="Review reply drafts from the command line.", no_args_is_help=True)


def cli_reviewer() -> Reviewer:
    """The CLI acts on every account but approves no money action (that needs a user with a cap)."""
    from worker.web.review import Reviewer

    actor = cli_actor()
    return Reviewer(actor=actor, user_id=None, username=actor, role="admin", account_ids=None, money_cap=None)


@app.command("list")
def list_drafts(
    state: str = typer.Option(
        "pending", "--state", help="pending, snoozed, approved, sent, rejected, ... or all."
    ),
    limit: int = typer.Option(50, "--limit", min=1, max=200),
    json_out: bool = typer.Option(False, "--json", help="JSON (the API's format) instead of a table."),
) -> None:
    """List drafts, most urgent first."""
    from worker.db import session_scope, utcnow
    from worker.web.queue import FilterError, Filters, list_queue
    from worker.web.templating import ago

    try:
        filters = Filters.parse({"state": state})
    except FilterError as exc:
        fail(str(exc))
    with session_scope(require_current_schema()) as session:
        page = list_queue(session, filters, None, limit=limit)
    if json_out:
        typer.echo(json.dumps(page.model_dump(mode="json"), indent=2, ensure_ascii=False))
        return
    if not page.items:
        typer.echo(f"no {state} drafts")
        return
    now = utcnow()
    rows = [("ID", "AGE", "ACCOUNT", "INTENT/SCENARIO", "BUYER", "MESSAGE")]
    for item in page.items:
        situation = item.intent if item.scenario == item.intent else f"{item.intent}/{item.scenario}"
        if item.open_money_actions:
            situation += " $"
        rows.append(
            (
                str(item.id),
                ago(item.created_at, now),
                item.account_name,
                situation,
                item.buyer_name or "-",
                item.excerpt[:60],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        typer.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[5]
        )
    if page.total > len(page.items):
        typer.echo(f"... {page.total - len(page.items)} more (use --limit)")


@app.command()
def show(
    draft_id: int = typer.Argument(...),
    json_out: bool = typer.Option(False, "--json", help="The API's JSON."),
) -> None:
    """Show a draft: the buyer's message, the decision and the reply."""
    from worker.db import session_scope
    from worker.web.queue import draft_detail

    with session_scope(require_current_schema()) as session:
        detail = draft_detail(session, draft_id, None)
    if detail is None:
        fail(f"no draft {draft_id}")
    if json_out:
        typer.echo(json.dumps(detail.model_dump(mode="json"), indent=2, ensure_ascii=False))
        return
    dec = detail.decision
    typer.echo(f"draft {detail.id} [{detail.state}] {detail.account.marketplace}/{detail.account.name}")
    typer.echo(
        f"decision: {dec.intent}/{dec.scenario} confidence {dec.confidence:.2f}; " + "; ".join(dec.reasons)
    )
    if detail.buyer_message:
        typer.echo(f"\nbuyer wrote:\n{detail.buyer_message.body}")
    for action in detail.actions:
        amount = f" {action.amount} {action.currency}" if action.amount is not None else ""
        typer.echo(f"action {action.id}: {action.type}{amount} [{action.state}]")
    typer.echo(f"\nreply ({detail.template}, {detail.language}):\n{detail.reply}")


@app.command()
def approve(
    draft_id: int = typer.Argument(...),
    edit_file: Path | None = typer.Option(
        None, "--edit-file", help="Send this file's text instead of the draft."
    ),
    send_now: bool = typer.Option(False, "--send-now", help="Skip the undo window."),
) -> None:
    """Approve a draft (its money actions must be decided first, in the web UI or API)."""
    from datetime import timedelta

    from worker.db import session_scope, utcnow
    from worker.web import review

    edited = None
    if edit_file is not None:
        try:
            edited = edit_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read {edit_file}: {getattr(exc, 'strerror', None) or exc}")
    window = timedelta(seconds=get_settings().undo_window_seconds)
    try:
        with session_scope(require_current_schema()) as session:
            out = review.approve(
                session,
                cli_reviewer(),
                draft_id,
                now=utcnow(),
                undo_window=window,
                edited_text=edited,
                send_now=send_now,
            )
            when = out.not_before
    except review.ReviewError as exc:
        fail(str(exc))
    typer.echo(f"approved draft {draft_id}: sends at {when:%Y-%m-%d %H:%M:%S} UTC")


@app.command()
def reject(
    draft_id: int = typer.Argument(...),
    reason: str = typer.Option(
        ..., "--reason", help="Why the draft must not be sent (kept in the audit log)."
    ),
) -> None:
    """Reject a draft with a reason."""
    from worker.db import session_scope, utcnow
    from worker.web import review

    try:
        with session_scope(require_current_schema()) as session:
            review.reject(session, cli_reviewer(), draft_id, reason=reason, now=utcnow())
    except review.ReviewError as exc:
        fail(str(exc))
    typer.echo(f"rejected draft {draft_id}")
