"""The `sellerdesk` command: loads the settings first, then runs one of the sub-commands listed in COMMANDS."""

from __future__ import annotations

import importlib
from importlib.metadata import version as distribution_version

import typer

from worker.settings import InvalidSetting, load_settings, set_settings

app = typer.Typer(
    name="sellerdesk",
    help="Answers marketplace buyers for cross-border sellers.",
    no_args_is_help=True,
    add_completion=False,
    # Local variables may hold credentials or database URLs: never print them with a traceback.
    pretty_exceptions_show_locals=False,
)

# Every sub-command: (name, module, attribute). The attribute is a typer.Typer (a command group such as
# `sellerdesk db ...`) or a plain function (one command). All these modules are imported when the CLI
# starts, so keep their top-level imports light and import heavy modules inside the command functions.
COMMANDS: list[tuple[str, str, str]] = [
    ("db", "worker.cli.db", "app"),
    ("accounts", "worker.cli.accounts", "app"),
    ("triage", "worker.cli.triage", "triage_command"),
    ("templates", "worker.cli.templates", "app"),
    ("worker", "worker.cli.daemon", "worker_command"),
    ("beat", "worker.cli.daemon", "beat_command"),
    ("status", "worker.cli.daemon", "status_command"),
    ("sandbox", "worker.cli.sandbox", "sandbox"),
    ("demo", "worker.cli.demo", "demo_command"),
    ("web", "worker.cli.web", "web"),
    ("users", "worker.cli.users", "app"),
    ("drafts", "worker.cli.drafts", "app"),
]


@app.callback()
def main() -> None:
    """Answers marketplace buyers for cross-border sellers."""
    # Settings come first for every command: a bad value stops here, with one line and exit status 2.
    try:
        settings = load_settings()
    except InvalidSetting as exc:
        typer.echo(f"sellerdesk: {exc}", err=True)
        raise typer.Exit(2) from None
    set_settings(settings)
    from worker.logs import configure_logging

    configure_logging(settings.log_level, settings.log_json)


@app.command()
def version() -> None:
    """Print the installed Sellerdesk version."""
    typer.echo(f"sellerdesk {distribution_version('sellerdesk')}")


def _register(commands: list[tuple[str, str, str]]) -> None:
    for name, module, attribute in commands:
        target = getattr(importlib.import_module(module), attribute)
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=name)
        else:
            app.command(name=name)(target)


_register(COMMANDS)
