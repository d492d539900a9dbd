"""`sellerdesk web`: serve the approval queue (web UI and JSON API) with uvicorn."""

from __future__ import annotations

import typer

from worker.settings import get_settings

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})

app = typer.Typer(help="Serve the approval queue: web UI, JSON API (/api/docs) and /healthz.")


@app.callback(invoke_without_command=True)
def web(
    host: str | None = typer.Option(
        None, "--host", help="Address to listen on (default: SELLERDESK_WEB_HOST)."
    ),
    port: int | None = typer.Option(
        None, "--port", min=1, max=65_535, help="Port to listen on (default: SELLERDESK_WEB_PORT)."
    ),
) -> None:
    """Serve the approval queue until interrupted."""
    import uvicorn

    from worker.cli.db import require_current_schema
    from worker.web.app import create_app

    settings = get_settings()
    require_current_schema()
    bind_host = host or settings.web_host
    bind_port = port or settings.web_port
    typer.echo(f"sellerdesk web: http://{bind_host}:{bind_port}/ (API docs at /api/docs)", err=True)
    if bind_host not in LOOPBACK:
        typer.echo(
            "sellerdesk web: listening beyond this machine; put it behind an https reverse proxy "
            "(session cookies are marked Secure only on https requests)",
            err=True,
        )
    uvicorn.run(
        create_app(settings),
        host=bind_host,
        port=bind_port,
        # Behind a reverse proxy on this host, X-Forwarded-Proto/For give the real scheme (Secure cookies)
        # and client address (login throttling); uvicorn trusts them from FORWARDED_ALLOW_IPS only.
        proxy_headers=True,
        server_header=False,
        log_level=settings.log_level.lower(),
    )
