"""The data model on SQLite: uniqueness, checks, foreign keys, UTC and Decimal round trips, encrypted credentials."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from worker.crypto import CredentialsError, get_credentials, set_credentials
from worker.db import session_scope
from worker.models import (
    Account,
    AuditLog,
    Conversation,
    Decision,
    Dispute,
    Draft,
    LifecycleEvent,
    Message,
    Order,
    OrderItem,
    Outbox,
    PollCursor,
    ProposedAction,
    Quarantine,
    TrackingSnapshot,
    User,
)
from worker.settings import Settings

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def make_graph(session: Session) -> dict[str, Any]:
    """An account with an order, a conversation, a buyer message and its decision."""
    account = Account(marketplace="aliexpress", name="main")
    session.add(account)
    session.flush()
    order = Order(
        account_id=account.id, external_id="8123", status="shipped", total=Decimal("25.00"), currency="USD"
    )
    order.items.append(
        OrderItem(sku="DR-RED-M", title="Summer dress", quantity=1, price=Decimal("25"), currency="USD")
    )
    session.add(order)
    session.flush()
    conversation = Conversation(account_id=account.id, external_id="c-1", order_id=order.id)
    session.add(conversation)
    session.flush()
    message = Message(
        conversation_id=conversation.id, external_id="m-1", direction="buyer", body="Where is it?"
    )
    session.add(message)
    session.flush()
    decision = make_decision(account, order, message_id=message.id)
    session.add(decision)
    session.flush()
    return {
        "account": account,
        "order": order,
        "conversation": conversation,
        "message": message,
        "decision": decision,
    }


def make_decision(
    account: Account, order: Order, message_id: int | None = None, dispute_id: int | None = None
) -> Decision:
    return Decision(
        source_key=Decision.source_key_for(message_id, dispute_id),
        account_id=account.id,
        order_id=order.id,
        message_id=message_id,
        dispute_id=dispute_id,
        intent="not_received",
        language="en",
        confidence=0.9,
        scenario="in_transit",
        refund_allowed=False,
        auto_send=True,
        template="not_received/in_transit",
        reply_language="en",
        reasons_json=["tracking in_transit"],
        actions_json=[],
    )


def test_graph_defaults(session: Session) -> None:
    g = make_graph(session)
    session.commit()
    session.expire_all()
    order = session.get(Order, g["order"].id)
    assert [item.sku for item in order.items] == ["DR-RED-M"]
    assert order.refunded_total == Decimal("0.00")
    assert order.created_at.tzinfo is UTC
    message = session.get(Message, g["message"].id)
    assert (message.triage_state, message.triage_attempts, message.is_auto_reply) == ("new", 0, False)
    assert session.get(Conversation, g["conversation"].id).messages == [message]
    assert session.get(Account, g["account"].id).settings_json == {}


# Each builder adds a row that must clash with one already in the graph.
DUPLICATES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "account marketplace+name": lambda g: Account(marketplace="aliexpress", name="main"),
    "order account+external_id": lambda g: Order(
        account_id=g["account"].id, external_id="8123", status="paid", total=Decimal(1), currency="USD"
    ),
    "conversation account+external_id": lambda g: Conversation(account_id=g["account"].id, external_id="c-1"),
    "message conversation+external_id": lambda g: Message(
        conversation_id=g["conversation"].id, external_id="m-1", direction="buyer", body="again"
    ),
    "decision per message": lambda g: make_decision(g["account"], g["order"], message_id=g["message"].id),
    "poll cursor account+stream": lambda g: [
        PollCursor(account_id=g["account"].id, stream="orders"),
        PollCursor(account_id=g["account"].id, stream="orders"),
    ],
    "lifecycle order+kind": lambda g: [
        LifecycleEvent(order_id=g["order"].id, kind="shipped", due_at=NOW),
        LifecycleEvent(order_id=g["order"].id, kind="shipped", due_at=NOW),
    ],
    "outbox idempotency key": lambda g: [
        Outbox(account_id=g["account"].id, idempotency_key="draft:1", kind="reply", body="a"),
        Outbox(account_id=g["account"].id, idempotency_key="draft:1", kind="reply", body="b"),
    ],
    "action idempotency key": lambda g: [
        ProposedAction(
            decision_id=g["decision"].id,
            order_id=g["order"].id,
            account_id=g["account"].id,
            type="resend",
            idempotency_key="k",
        ),
        ProposedAction(
            decision_id=g["decision"].id,
            order_id=g["order"].id,
            account_id=g["account"].id,
            type="resend",
            idempotency_key="k",
        ),
    ],
    "draft per decision": lambda g: [
        Draft(
            decision_id=g["decision"].id,
            account_id=g["account"].id,
            original_text="x",
            template="t",
            language="en",
        ),
        Draft(
            decision_id=g["decision"].id,
            account_id=g["account"].id,
            original_text="y",
            template="t",
            language="en",
        ),
    ],
    "username": lambda g: [
        User(username="ana", password_hash="h", role="agent"),
        User(username="ana", password_hash="h", role="admin"),
    ],
    "quarantine kind+object": lambda g: [
        Quarantine(kind="message", object_id="1", reason="r", attempts=3),
        Quarantine(kind="message", object_id="1", reason="r", attempts=4),
    ],
}


@pytest.mark.parametrize("case", list(DUPLICATES))
def test_unique_constraints_hold(session: Session, case: str) -> None:
    g = make_graph(session)
    rows = DUPLICATES[case](g)
    session.add_all(rows if isinstance(rows, list) else [rows])
    with pytest.raises(IntegrityError, match="UNIQUE"):
        session.flush()


def test_dispute_only_decision_is_unique_per_dispute(session: Session) -> None:
    g = make_graph(session)
    dispute = Dispute(
        account_id=g["account"].id, order_id=g["order"].id, external_id="d-1", reason="not received"
    )
    session.add(dispute)
    session.flush()
    session.add(make_decision(g["account"], g["order"], dispute_id=dispute.id))
    session.flush()
    session.add(make_decision(g["account"], g["order"], dispute_id=dispute.id))
    with pytest.raises(IntegrityError, match="UNIQUE"):
        session.flush()


def test_decision_needs_a_source() -> None:
    assert Decision.source_key_for(5, 7) == "msg:5"
    assert Decision.source_key_for(None, 7) == "dispute:7"
    with pytest.raises(ValueError):
        Decision.source_key_for(None, None)


@pytest.mark.parametrize(
    "bad",
    [
        lambda g: Account(marketplace="etsy", name="x"),
        lambda g: Order(
            account_id=g["account"].id, external_id="9", status="lost", total=Decimal(1), currency="USD"
        ),
        lambda g: Message(
            conversation_id=g["conversation"].id, external_id="m-2", direction="robot", body="x"
        ),
        lambda g: Outbox(
            account_id=g["account"].id, idempotency_key="k", kind="reply", body="b", state="maybe"
        ),
        lambda g: LifecycleEvent(order_id=g["order"].id, kind="shipped", due_at=NOW, state="later"),
        lambda g: User(username="bob", password_hash="h", role="owner"),
        lambda g: TrackingSnapshot(order_id=g["order"].id, tracking_number="LP1", status="teleported"),
    ],
    ids=[
        "marketplace",
        "order status",
        "direction",
        "outbox state",
        "lifecycle state",
        "role",
        "tracking status",
    ],
)
def test_check_constraints_refuse_unknown_values(
    session: Session, bad: Callable[[dict[str, Any]], Any]
) -> None:
    g = make_graph(session)
    session.add(bad(g))
    with pytest.raises(IntegrityError, match="CHECK"):
        session.flush()


def test_foreign_keys_are_enforced_on_sqlite(session: Session) -> None:
    session.add(Order(account_id=999, external_id="1", status="paid", total=Decimal(1), currency="USD"))
    with pytest.raises(IntegrityError, match="FOREIGN KEY"):
        session.flush()


def test_sqlite_connections_use_wal_and_a_busy_timeout(engine: Engine) -> None:
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 30_000
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_datetimes_round_trip_as_aware_utc(session: Session) -> None:
    g = make_graph(session)
    sao_paulo = timezone(timedelta(hours=-3))
    paid = datetime(2026, 1, 2, 7, 30, 15, 123456, tzinfo=sao_paulo)
    g["order"].paid_at = paid
    session.commit()
    session.expire_all()
    loaded = session.get(Order, g["order"].id).paid_at
    assert loaded == paid
    assert loaded.tzinfo is UTC
    assert loaded.hour == 10
    # Stored as UTC wall time, so SQL comparisons and ordering are right.
    assert session.execute(text("SELECT paid_at FROM orders")).scalar().startswith("2026-01-02 10:30:15")
    assert session.scalar(select(Order.id).where(Order.paid_at > datetime(2026, 1, 2, 10, 0, tzinfo=UTC)))


def test_naive_datetimes_are_refused(session: Session) -> None:
    g = make_graph(session)
    g["order"].paid_at = datetime(2026, 1, 2, 10, 0)
    with pytest.raises(StatementError, match="naive datetime"):
        session.flush()


def test_money_round_trips_exactly(session: Session) -> None:
    g = make_graph(session)
    g["order"].total = Decimal("9999999999.99")
    g["order"].refunded_total = Decimal("0.10")
    session.commit()
    session.expire_all()
    order = session.get(Order, g["order"].id)
    assert order.total == Decimal("9999999999.99")
    assert order.refunded_total == Decimal("0.10")
    assert str(order.items[0].price) == "25.00"


@pytest.mark.parametrize(
    ("amount", "error"), [(0.1, "Decimal or an int"), (Decimal("1.005"), "2 decimal places")]
)
def test_money_refuses_floats_and_fractions_of_a_cent(session: Session, amount: Any, error: str) -> None:
    g = make_graph(session)
    g["order"].total = amount
    with pytest.raises(StatementError, match=error):
        session.flush()


def test_credentials_are_encrypted_at_rest(session: Session, settings: Settings) -> None:
    account = Account(marketplace="ebay", name="shop")
    set_credentials(account, {"refresh_token": "v^1.1#i^1#TOPSECRET-REFRESH", "app_id": "MyApp-123"})
    session.add(account)
    session.commit()
    raw = session.execute(
        text("SELECT credentials_encrypted FROM accounts WHERE id = :id"), {"id": account.id}
    )
    stored = raw.scalar()
    assert isinstance(stored, bytes)
    assert b"TOPSECRET" not in stored and b"MyApp-123" not in stored
    session.expire_all()
    loaded = session.get(Account, account.id)
    assert get_credentials(loaded) == {"refresh_token": "v^1.1#i^1#TOPSECRET-REFRESH", "app_id": "MyApp-123"}
    with pytest.raises(CredentialsError, match="wrong secret key") as caught:
        get_credentials(loaded, secret_key="another-secret-key-of-at-least-32-chars")
    assert "TOPSECRET" not in str(caught.value)
    assert get_credentials(Account(marketplace="ebay", name="bare")) == {}


def test_session_scope_commits_or_rolls_back(engine: Engine) -> None:
    with session_scope(engine) as session:
        session.add(Account(marketplace="sandbox", name="kept"))
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        session.add(Account(marketplace="sandbox", name="dropped"))
        session.flush()
        raise RuntimeError("boom")
    with session_scope(engine) as session:
        assert session.scalars(select(Account.name)).all() == ["kept"]
        session.add(AuditLog(actor="system", action="test", object_type="account"))
    with session_scope() as session:  # the shared engine of the current settings
        assert session.scalar(select(AuditLog.details_json)) == {}


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (
            "SELECT id FROM messages WHERE triage_state = 'new' ORDER BY created_at LIMIT 50",
            "ix_messages_triage",
        ),
        (
            "SELECT id FROM disputes WHERE triage_state = 'new' ORDER BY created_at LIMIT 50",
            "ix_disputes_triage",
        ),
        (
            "SELECT id FROM drafts WHERE state = 'approved' AND send_after <= :now",
            "ix_drafts_state_send_after",
        ),
        (
            "SELECT id FROM outbox WHERE state = 'pending' AND not_before <= :now",
            "ix_outbox_state_not_before",
        ),
        ("SELECT id FROM proposed_actions WHERE state = 'approved'", "ix_proposed_actions_state"),
        (
            "SELECT id FROM lifecycle_events WHERE state = 'due' AND due_at <= :now",
            "ix_lifecycle_events_state_due",
        ),
        (
            "SELECT * FROM tracking_snapshots WHERE order_id = 1 ORDER BY fetched_at DESC LIMIT 1",
            "ix_tracking_snapshots_order_fetched",
        ),
        ("SELECT id FROM orders WHERE account_id = 1 AND updated_at >= :now", "ix_orders_account_updated"),
        ("SELECT id FROM orders WHERE status = 'shipped' AND updated_at >= :now", "ix_orders_status_updated"),
    ],
)
def test_loop_queries_use_an_index(session: Session, query: str, index: str) -> None:
    plan = session.execute(text(f"EXPLAIN QUERY PLAN {query}"), {"now": "2026-03-01 12:00:00"}).all()
    assert any(index in row[-1] for row in plan), plan
