"""The data model on a real PostgreSQL: constraints, timestamptz, numeric, bytea, and per-test isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from worker.crypto import get_credentials, set_credentials
from worker.db import session_scope
from worker.models import Account, Conversation, Decision, Message, Order, Outbox
from worker.settings import Settings


def _account(session: Session, name: str = "main") -> Account:
    account = Account(marketplace="ebay", name=name)
    session.add(account)
    session.flush()
    return account


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_starts_on_empty_tables(pg_engine: Engine, run: int) -> None:
    # Run twice: the second run only passes if the first one's rows were truncated.
    with session_scope(pg_engine) as session:
        assert session.scalar(select(func.count()).select_from(Account)) == 0
        account = _account(session)
        assert account.id == 1  # identities restart too


def test_unique_and_check_constraints(pg_engine: Engine) -> None:
    with Session(pg_engine) as session:
        account = _account(session)
        session.add(Outbox(account_id=account.id, idempotency_key="draft:1", kind="reply", body="a"))
        session.commit()
        session.add(Outbox(account_id=account.id, idempotency_key="draft:1", kind="reply", body="b"))
        with pytest.raises(IntegrityError, match="uq_outbox_idempotency_key"):
            session.commit()
        session.rollback()
        session.add(
            Outbox(account_id=account.id, idempotency_key="draft:2", kind="reply", body="b", state="maybe")
        )
        with pytest.raises(IntegrityError, match="ck_outbox_state_valid"):
            session.commit()
        session.rollback()
        session.add(Account(marketplace="ebay", name="main"))
        with pytest.raises(IntegrityError, match="uq_accounts_marketplace_name"):
            session.commit()


def test_one_decision_per_message(pg_engine: Engine) -> None:
    with Session(pg_engine) as session:
        account = _account(session)
        order = Order(
            account_id=account.id, external_id="1", status="paid", total=Decimal("3"), currency="EUR"
        )
        session.add(order)
        session.flush()
        conversation = Conversation(account_id=account.id, external_id="c")
        session.add(conversation)
        session.flush()
        message = Message(conversation_id=conversation.id, external_id="m", direction="buyer", body="hi")
        session.add(message)
        session.flush()
        for _ in range(2):
            session.add(
                Decision(
                    source_key=Decision.source_key_for(message.id, None),
                    account_id=account.id,
                    order_id=order.id,
                    message_id=message.id,
                    intent="thanks",
                    confidence=1.0,
                    scenario="thanks",
                    refund_allowed=False,
                    auto_send=True,
                    template="thanks",
                    reply_language="en",
                )
            )
        with pytest.raises(IntegrityError, match="uq_decisions_"):
            session.flush()


def test_timestamps_are_utc_whatever_the_session_time_zone(pg_engine: Engine) -> None:
    paid = datetime(2026, 1, 2, 7, 30, 15, 123456, tzinfo=timezone(timedelta(hours=-3)))
    with Session(pg_engine) as session:
        session.execute(text("SET TIME ZONE 'Asia/Tokyo'"))
        account = _account(session)
        order = Order(
            account_id=account.id,
            external_id="1",
            status="paid",
            total=Decimal("3"),
            currency="EUR",
            paid_at=paid,
        )
        session.add(order)
        session.commit()
        session.execute(text("SET TIME ZONE 'Asia/Tokyo'"))
        session.expire_all()
        loaded = session.get(Order, order.id).paid_at
        assert loaded == paid and loaded.tzinfo is UTC and loaded.hour == 10
        order.shipped_at = datetime(2026, 1, 3)
        with pytest.raises(StatementError, match="naive datetime"):
            session.flush()


def test_money_is_exact_numeric(pg_engine: Engine) -> None:
    with Session(pg_engine) as session:
        account = _account(session)
        order = Order(
            account_id=account.id,
            external_id="1",
            status="paid",
            total=Decimal("9999999999.99"),
            currency="USD",
            refunded_total=Decimal("0.30"),
        )
        session.add(order)
        session.commit()
        assert session.execute(text("SELECT total + refunded_total FROM orders")).scalar() == Decimal(
            "10000000000.29"
        )
        session.expire_all()
        assert session.get(Order, order.id).total == Decimal("9999999999.99")


def test_credentials_encrypted_in_bytea(pg_settings: Settings, pg_engine: Engine) -> None:
    with session_scope(pg_engine) as session:
        account = _account(session)
        set_credentials(account, {"refresh_token": "PG-TOPSECRET"})
    with Session(pg_engine) as session:
        raw = session.execute(text("SELECT credentials_encrypted FROM accounts")).scalar()
        assert b"PG-TOPSECRET" not in bytes(raw)
        assert get_credentials(session.get(Account, account.id)) == {"refresh_token": "PG-TOPSECRET"}
