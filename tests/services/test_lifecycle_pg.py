"""The lifecycle sweep on PostgreSQL with a realistic table: 50,000 orders, 150,500 events, 500 due.

The sweep's query must be a range scan of ix_lifecycle_events_state_due (its cost grows with the due
events, never with the orders), and two sweeps racing on real row locks must enqueue each event once.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import Engine, func, select, text

from worker import models as m
from worker.db import session_scope
from worker.lifecycle.config import Kind
from worker.lifecycle.sweep import due_events_query, plan_events, sweep
from worker.settings import Settings

NOW = datetime(2026, 3, 10, 16, 0, tzinfo=UTC)  # noon in New York: no quiet hours for US buyers
ORDERS = 50_000
DUE = 500
LATER = 2_000  # due events whose time has not come


def _seed(engine: Engine) -> None:
    with session_scope(engine) as s:
        for i in range(5):
            s.add(m.Account(marketplace="aliexpress", name=f"shop-{i}", settings_json={}, created_at=NOW))
    params = {"now": NOW, "orders": ORDERS, "due": DUE, "later": DUE + LATER}
    with engine.begin() as conn:
        conn.execute(
            text(
                """
                INSERT INTO orders (account_id, external_id, status, total, currency, refunded_total, buyer_id,
                                    buyer_name, buyer_country, paid_at, shipped_at, delivered_at, created_at,
                                    updated_at)
                SELECT 1 + g % 5, 'O' || g, 'delivered', 24.90, 'USD', 0, 'buyer-' || g, 'Ana', 'US',
                       :now - interval '30 days', :now - interval '28 days', :now - interval '8 days',
                       :now - interval '30 days', :now - interval '8 days'
                FROM generate_series(1, :orders) AS g
                """
            ),
            params,
        )
        # History: every order already had its payment, shipping and delivery mails.
        for kind, state, age in (
            ("payment_confirmed", "sent", "30 days"),
            ("shipped", "sent", "28 days"),
            ("delivered", "skipped", "7 days"),
        ):
            conn.execute(
                text(
                    """
                    INSERT INTO lifecycle_events (order_id, kind, state, due_at, created_at, updated_at)
                    SELECT id, :kind, :state, :now - CAST(:age AS interval), :now, :now FROM orders
                    """
                ),
                {**params, "kind": kind, "state": state, "age": age},
            )
        # Feedback requests: 500 due now, 2,000 due later, the rest long done.
        conn.execute(
            text(
                """
                INSERT INTO lifecycle_events (order_id, kind, state, due_at, created_at, updated_at)
                SELECT id, 'feedback_request',
                       CASE WHEN id <= :later THEN 'due' ELSE 'sent' END,
                       CASE WHEN id <= :due THEN :now - interval '1 day' + id * interval '1 second'
                            WHEN id <= :later THEN :now + interval '1 day' + id * interval '1 second'
                            ELSE :now - interval '20 days' END,
                       :now, :now
                FROM orders
                """
            ),
            params,
        )
        conn.execute(text("ANALYZE"))


def _plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes.extend(_plan_nodes(child))
    return nodes


def _explain(engine: Engine, stmt) -> dict[str, Any]:
    compiled = stmt.compile(dialect=engine.dialect)
    params = {k: (v.value if isinstance(v, Enum) else v) for k, v in compiled.params.items()}
    with engine.connect() as conn:
        return conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", params).scalar_one()[0]["Plan"]


def test_sweep_query_uses_the_state_due_index_and_racing_sweeps_enqueue_once(
    pg_engine: Engine, pg_settings: Settings
) -> None:
    _seed(pg_engine)
    with session_scope(pg_engine) as s:
        assert s.scalar(select(func.count()).select_from(m.LifecycleEvent)) == 3 * ORDERS + ORDERS

    # Planning on PostgreSQL: ON CONFLICT DO NOTHING makes re-planning a no-op.
    with session_scope(pg_engine) as s:
        assert plan_events(s, s.get(m.Order, ORDERS), NOW) == []
        fresh = m.Order(
            account_id=1,
            external_id="new",
            status="paid",
            total=Decimal("9.90"),
            currency="USD",
            paid_at=NOW - timedelta(days=30),
            buyer_country="US",
            created_at=NOW,
            updated_at=NOW,
        )
        s.add(fresh)
        s.flush()
        fresh.status, fresh.delivered_at = "delivered", NOW - timedelta(days=20)
        assert plan_events(s, fresh, NOW) == [Kind.delivered, Kind.feedback_request]
        assert plan_events(s, fresh, NOW) == []
        s.rollback()

    nodes = _plan_nodes(_explain(pg_engine, due_events_query(NOW, 500)))
    scans = [n for n in nodes if n.get("Relation Name") or n["Node Type"].endswith("Index Scan")]
    assert not [n for n in nodes if n["Node Type"] == "Seq Scan"], nodes
    assert {n.get("Relation Name") for n in scans if n.get("Relation Name")} == {"lifecycle_events"}
    assert any(n.get("Index Name") == "ix_lifecycle_events_state_due" for n in scans), scans

    with session_scope(pg_engine) as s:
        due_ids = list(s.scalars(due_events_query(NOW, 10_000)))
    assert len(due_ids) == DUE

    results = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        results.append(sweep(pg_engine, NOW, limit=DUE))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == 2
    assert sum(r.errors for r in results) == 0
    assert sum(r.enqueued for r in results) == DUE
    with session_scope(pg_engine) as s:
        assert s.scalar(select(func.count()).select_from(m.Outbox)) == DUE
        keys = s.scalars(select(m.Outbox.idempotency_key)).all()
        assert len(set(keys)) == DUE
        linked = s.scalar(
            select(func.count())
            .select_from(m.LifecycleEvent)
            .where(m.LifecycleEvent.state == "enqueued", m.LifecycleEvent.outbox_id.is_not(None))
        )
        assert linked == DUE
        still_due = s.scalar(
            select(func.count()).select_from(m.LifecycleEvent).where(m.LifecycleEvent.state == "due")
        )
        assert still_due == LATER
    # Nothing left for a third sweep, and the next hour's due events are found the same way.
    assert sweep(pg_engine, NOW, limit=DUE).selected == 0
    assert sweep(pg_engine, NOW + timedelta(days=1) + timedelta(seconds=DUE + 100), limit=50).selected == 50
