"""`sellerdesk triage`: the dry run of the decision core over a JSON-lines file (spec/triage.md)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import typer


def triage_command(
    source: str = typer.Argument(..., metavar="FILE|-", help="JSON lines of cases; - reads standard input."),
    policy: Path | None = typer.Option(None, "--policy", help="Shop policy TOML merged over the default."),
    summary: bool = typer.Option(
        False, "--summary", help="Print counts by intent, scenario and action to stderr."
    ),
) -> None:
    """Decide each case and print one JSON decision per input line, in order."""
    from connectors import capabilities_for
    from worker.policy.load import PolicyError, load_policy
    from worker.render import default_renderer
    from worker.settings import get_settings
    from worker.triage.dryrun import Summary, printable, run
    from worker.triage.pipeline import Triage

    try:
        pol = load_policy(policy)
    except PolicyError as exc:
        typer.echo(f"sellerdesk triage: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        # utf-8-sig: exports from Excel or PowerShell start with a BOM. Bad bytes become U+FFFD in that
        # line's case (reported there) instead of ending the run.
        if source == "-":
            stream = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", errors="replace")
        else:
            stream = open(source, encoding="utf-8-sig", errors="replace")  # noqa: SIM115
    except OSError as exc:
        typer.echo(f"sellerdesk triage: cannot read {source}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None

    engine = Triage(policy=pol, renderer=default_renderer(), shop_name=get_settings().shop_name)
    counts = Summary()
    progress = sys.stderr.isatty()
    out = sys.stdout.buffer
    with stream:
        for n, decision in enumerate(run(stream, engine, capabilities_for, counts), start=1):
            # Input strings may hold lone surrogates (legal JSON escapes): written as U+FFFD, never a crash.
            out.write(printable(json.dumps(decision, ensure_ascii=False)).encode("utf-8") + b"\n")
            out.flush() if progress else None
            if progress and n % 200 == 0:
                sys.stderr.write(f"\rtriage: {n} cases")
                sys.stderr.flush()
    if progress and counts.cases >= 200:
        sys.stderr.write("\r" + " " * 40 + "\r")
    if summary:
        for line in counts.lines():
            typer.echo(line, err=True)
