"""`python -m worker ...` is `sellerdesk ...` (used to start child processes with this interpreter)."""

from worker.cli import app

app(prog_name="sellerdesk")
