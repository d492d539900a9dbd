"""`sellerdesk templates check`: render every template in every language and report problems."""

from __future__ import annotations

from pathlib import Path

import typer

from worker.render import LANGUAGES, Renderer, default_renderer

app = typer.Typer(help="Reply and lifecycle mail templates.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Reply and lifecycle mail templates."""


@app.command()
def check(
    templates_dir: Path | None = typer.Option(
        None,
        "--templates-dir",
        help="Templates root (default: $SELLERDESK_TEMPLATES_DIR or the repo's templates/).",
        exists=True,
        file_okay=False,
    ),
) -> None:
    """Render every template in every language with sample contexts; exit 1 on any problem."""
    renderer = Renderer(templates_dir) if templates_dir else default_renderer()
    problems = renderer.check()
    for problem in problems:
        typer.echo(problem)
    replies, lifecycle = len(renderer.reply_names()), len(renderer.lifecycle_kinds())
    shape = f"{len(LANGUAGES)} languages x {replies} replies + {lifecycle} lifecycle"
    if problems:
        typer.echo(f"templates check: {shape}: {len(problems)} problem(s)", err=True)
        raise typer.Exit(1)
    typer.echo(f"templates check: {shape}: all rendered")
