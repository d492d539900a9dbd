"""`sellerdesk worker`, `sellerdesk beat`, `sellerdesk status`: run and watch the daemon."""

from __future__ import annotations

import json
import os
import shutil

import typer


def _prepare_metrics_dir() -> None:
    from worker.settings import get_settings

    path = get_settings().data_dir / "metrics"
    # Stale files from a previous run would add old counts to new ones.
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(path))


def worker_command(
    concurrency: int = typer.Option(0, "--concurrency", "-c", help="Worker processes (0: one per core)."),
    queues: str = typer.Option(
        "sellerdesk,sellerdesk.send,sellerdesk.poll", "--queues", "-Q", help="Queues to consume."
    ),
    pool: str = typer.Option(
        "", "--pool", help="prefork, threads or solo (default: prefork; threads on SQLite)."
    ),
    loglevel: str = typer.Option("", "--loglevel", "-l", help="Defaults to SELLERDESK_LOG_LEVEL."),
    metrics_port: int = typer.Option(
        0, "--metrics-port", help="Serve Prometheus metrics on this port (0: off)."
    ),
) -> None:
    """Run a Celery worker (scale out by running more of them)."""
    _prepare_metrics_dir()
    from worker.celery_app import app
    from worker.settings import get_settings

    settings = get_settings()
    if metrics_port:
        _serve_metrics(metrics_port)
    chosen_pool = pool or ("threads" if settings.is_sqlite else "prefork")
    argv = ["worker", "-Q", queues, "-l", loglevel or settings.log_level, "--pool", chosen_pool]
    if concurrency:
        argv += ["-c", str(concurrency)]
    elif chosen_pool == "threads":
        argv += ["-c", "4"]
    app.worker_main(argv)


def _serve_metrics(port: int) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from worker.metrics import render_metrics

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            body = render_metrics()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()


def beat_command(
    loglevel: str = typer.Option("", "--loglevel", "-l", help="Defaults to SELLERDESK_LOG_LEVEL."),
) -> None:
    """Run Celery beat: the poll, dispatch, tracking and lifecycle schedules. Run exactly one."""
    from worker.celery_app import app
    from worker.settings import get_settings

    settings = get_settings()
    schedule = settings.data_dir / "celerybeat-schedule"
    schedule.parent.mkdir(parents=True, exist_ok=True)
    app.Beat(loglevel=loglevel or settings.log_level, schedule=str(schedule)).run()


def status_command(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Counts from the database: orders, messages, decisions, drafts, sends, actions, quarantine, polls."""
    from worker.status import collect, lines

    data = collect()
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        for line in lines(data):
            typer.echo(line)
