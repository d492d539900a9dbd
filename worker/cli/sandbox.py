"""`sellerdesk sandbox`: run the sandbox marketplace standalone (demo, manual tests, chaos benches)."""

from __future__ import annotations

import json
import signal
import threading
from types import FrameType

import typer

app = typer.Typer(help="The local sandbox marketplace (AliExpress IOP + 17TRACK dialects).")


@app.command("sandbox")
def sandbox(
    port: int = typer.Option(8765, help="Port to listen on (0: any free port)."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind; keep it local."),
    seed: int = typer.Option(1, help="Seed of the generated data."),
    accounts: int = typer.Option(2, min=1, help="Seller accounts (each with its own app key)."),
    orders: int = typer.Option(200, min=0, help="Backdated orders generated per account at start."),
    messages: int = typer.Option(20, min=0, help="Buyer messages generated per account at start."),
    disputes: int = typer.Option(3, min=0, help="Disputes opened per account at start."),
    rate: float = typer.Option(2.0, min=0, help="New buyer messages per minute while running (0: none)."),
    speed: float = typer.Option(
        1.0, min=0, help="Simulated seconds per real second (60: a minute a second)."
    ),
    duration: float = typer.Option(0, min=0, help="Stop after this many seconds (0: until Ctrl-C)."),
) -> None:
    """Serve the sandbox until Ctrl-C (or --duration), printing its URL and demo credentials."""
    # Imported here: the CLI imports every command module at start-up and must stay light.
    from connectors.sandbox import SandboxServer

    server = SandboxServer(seed=seed, port=port, host=host, accounts=accounts, speed=speed, orders=orders)
    for account in server.accounts:
        server.add_buyer_messages(messages, account.name)
        server.open_disputes(disputes, account.name)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGINT, on_signal)
    previous_term = signal.signal(signal.SIGTERM, on_signal)
    server.start()
    try:
        if rate > 0:
            server.start_traffic(
                messages_per_minute=rate, orders_per_minute=rate / 2, disputes_per_minute=rate / 10
            )
        typer.echo(f"sandbox marketplace at {server.url}  (export SELLERDESK_SANDBOX_URL={server.url})")
        typer.echo(f"17TRACK token: {server.token_17track}")
        for account in server.accounts:
            typer.echo(f"account {account.name}: {json.dumps(server.credentials(account.name))}")
        typer.echo(
            "admin: GET /_sandbox/state | /_sandbox/ledger, POST /_sandbox/faults | /_sandbox/generate"
        )
        stop.wait(duration or None)
    finally:
        server.stop()
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
        typer.echo(f"sandbox stopped; {len(server.ledger)} seller messages/actions received")
