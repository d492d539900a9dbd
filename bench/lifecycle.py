"""`python -m bench.lifecycle --orders N --due M`: lifecycle sweep time on PostgreSQL with N orders, M due.

The orders and their event history are bulk-loaded with COPY into a private schema: every order has
its payment, shipping and feedback-request events; M feedback requests are due now, as many more are
due tomorrow, the rest were sent long ago. The sweep (the beat task's code, `worker.lifecycle.sweep`)
then runs until nothing due is left. Its time must follow M, not N.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

import psycopg
from sqlalchemy import func, make_url, select, text

from bench.common import emit, install_settings, private_schema, say, stop_cleanly_on_sigterm
from worker import models as m
from worker.db import get_engine, session_scope
from worker.lifecycle.sweep import sweep

NOW = datetime(2026, 3, 10, 16, 0, tzinfo=UTC)  # noon in New York: no quiet hours for US buyers
ACCOUNTS = 5


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def load(url: str, orders: int, due: int) -> float:
    """COPY `orders` delivered orders and 3 events each into the schema; returns the seconds it took."""
    started = time.perf_counter()
    with session_scope() as s:
        for i in range(ACCOUNTS):
            # No daily cap: the bench measures the sweep, not the default cap of 500 mails a day per shop.
            settings = {"lifecycle": {"daily_cap": None}}
            s.add(
                m.Account(marketplace="aliexpress", name=f"shop-{i}", settings_json=settings, created_at=NOW)
            )
    paid, shipped, delivered = NOW - timedelta(days=30), NOW - timedelta(days=28), NOW - timedelta(days=8)
    with psycopg.connect(_dsn(url)) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY orders (id, account_id, external_id, status, total, currency, refunded_total, buyer_id,"
            " buyer_name, buyer_country, paid_at, shipped_at, delivered_at, created_at, updated_at)"
            " FROM STDIN"
        ) as cp:
            for i in range(1, orders + 1):
                cp.write_row(
                    (i, 1 + i % ACCOUNTS, f"O{i}", "delivered", "24.90", "USD", "0", f"buyer-{i}", "Ana", "US",
                     paid, shipped, delivered, paid, delivered)
                )  # fmt: skip
        with cur.copy(
            "COPY lifecycle_events (order_id, kind, state, due_at, created_at, updated_at) FROM STDIN"
        ) as cp:
            for i in range(1, orders + 1):
                cp.write_row((i, "payment_confirmed", "sent", paid, paid, paid))
                cp.write_row((i, "shipped", "sent", shipped, shipped, shipped))
                if i <= due:
                    when, state = NOW - timedelta(days=1) + timedelta(seconds=i), "due"
                elif i <= 2 * due:
                    when, state = NOW + timedelta(days=1) + timedelta(seconds=i), "due"
                else:
                    when, state = NOW - timedelta(days=20), "sent"
                cp.write_row((i, "feedback_request", state, when, delivered, delivered))
        cur.execute("SELECT setval(pg_get_serial_sequence('orders', 'id'), %s)", (orders,))
        conn.commit()
    with get_engine().connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.lifecycle", description=__doc__.splitlines()[0])
    p.add_argument("--orders", type=int, default=1_000_000)
    p.add_argument("--due", type=int, default=10_000)
    p.add_argument("--batch", type=int, default=500, help="events per sweep call (the beat task's limit)")
    p.add_argument("--timeout", type=float, default=600.0)
    args = p.parse_args(argv)
    stop_cleanly_on_sigterm()
    if args.due * 2 > args.orders:
        p.error("--due must be at most half of --orders (as many again are due tomorrow)")
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="sd-bench-") as tmp, private_schema("bench_lifecycle") as url:
        install_settings(Path(tmp) / "data", url, "")
        say(f"loading {args.orders} orders and {3 * args.orders} lifecycle events with COPY ...")
        loaded = load(url, args.orders, args.due)
        say(f"loaded in {loaded:.1f}s; sweeping {args.due} due events ({args.batch} per sweep) ...")
        engine = get_engine()
        totals = {"selected": 0, "enqueued": 0, "skipped": 0, "deferred": 0, "errors": 0}
        started = time.perf_counter()
        sweeps = 0
        while time.perf_counter() - started < args.timeout:
            result = sweep(engine, NOW, limit=args.batch)
            sweeps += 1
            for key in totals:
                totals[key] += getattr(result, key)
            if result.selected == 0:
                break
        sweep_s = time.perf_counter() - started
        with session_scope() as s:
            outbox = s.scalar(select(func.count()).select_from(m.Outbox))
            left = s.scalar(
                select(func.count())
                .select_from(m.LifecycleEvent)
                .where(m.LifecycleEvent.state == "due", m.LifecycleEvent.due_at <= NOW)
            )
    per_event = sweep_s / max(1, totals["selected"]) * 1000
    say(
        f"{sweeps} sweeps in {sweep_s:.2f}s ({per_event:.2f} ms per due event): {totals['enqueued']} enqueued, "
        f"{totals['skipped']} skipped, {totals['deferred']} deferred, {totals['errors']} errors; "
        f"{outbox} outbox rows, {left} still due"
    )
    emit(
        {"orders": args.orders, "due": args.due, "enqueued": totals["enqueued"], "sweep_s": round(sweep_s, 3)}
    )
    return 0 if totals["enqueued"] == args.due and outbox == args.due and left == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
