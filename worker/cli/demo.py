"""`sellerdesk demo`: the whole product on one machine with nothing to install."""

from __future__ import annotations

import typer


def demo_command(
    duration: float = typer.Option(0, "--duration", help="Stop after this many seconds (0: until Ctrl-C)."),
    port: int = typer.Option(8000, "--port", help="Port of the approval UI on 127.0.0.1."),
    sandbox_port: int = typer.Option(8765, "--sandbox-port", help="Port of the sandbox marketplace."),
    seed: int = typer.Option(1, "--seed", help="Seed of the sandbox's generated traffic."),
) -> None:
    """Start the sandbox marketplace, a Celery worker, beat and the approval UI on localhost."""
    from worker.demo import Demo, DemoOptions
    from worker.settings import get_settings

    settings = get_settings()
    if not settings.is_sqlite or settings.broker_url:
        typer.echo(
            "sellerdesk demo runs on the embedded default: unset SELLERDESK_DATABASE_URL and "
            "SELLERDESK_BROKER_URL (production uses `sellerdesk worker`, `beat` and `web`).",
            err=True,
        )
        raise typer.Exit(2)
    demo = Demo(
        settings,
        DemoOptions(duration=duration or None, port=port, sandbox_port=sandbox_port, seed=seed),
        echo=typer.echo,
    )
    try:
        demo.start()
        code = demo.run()
    finally:
        demo.stop()
    raise typer.Exit(code)
