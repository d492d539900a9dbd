"""Batched ingest: a batch costs a few statements per table and stores exactly what storing it record by
record stores (rows, ids, results, lifecycle calls), refusals included."""

from __future__ import annotations

import random
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from connectors.base import NormDispute, NormItem, NormMessage, NormOrder
from worker import db as dbm
from worker import models as m
from worker.ingest import IngestError, IngestResult, ingest
from worker.triage.types import OrderStatus

T0 = datetime(2026, 3, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=1)


def order(ext: str, **kw) -> NormOrder:
    values = {"status": OrderStatus.paid, "total": Decimal("10.00"), "currency": "USD", "modified_at": T0}
    return NormOrder(external_id=ext, **(values | kw))


def message(ext: str, conv: str, **kw) -> NormMessage:
    values = {"direction": "buyer", "body": f"body {ext}", "sent_at": T0}
    return NormMessage(external_id=ext, conversation_external_id=conv, **(values | kw))


def dispute(ext: str, order_ext: str, **kw) -> NormDispute:
    values = {"reason": "r", "status": "S", "opened_at": T0, "is_open": True}
    return NormDispute(external_id=ext, order_external_id=order_ext, **(values | kw))


def new_account(engine) -> int:
    with dbm.session_scope(engine) as s:
        acc = m.Account(marketplace="sandbox", name=f"shop {uuid.uuid4().hex}", settings_json={})
        s.add(acc)
        s.flush()
        return acc.id


def store(engine, account_id, rows, now=NOW, calls=None) -> IngestResult:
    def on_order(s, row, at):
        calls.append((row.external_id, row.status, row.id))

    with dbm.session_scope(engine) as s:
        return ingest(s, account_id, rows, now, on_order=on_order if calls is not None else None)


def count(engine, model) -> int:
    with dbm.session_scope(engine) as s:
        return s.scalar(select(func.count()).select_from(model))


@pytest.fixture
def account(engine) -> int:
    return new_account(engine)


def statements_per_batch(engine, size: int) -> list[list[str]]:
    """The statements of: `size` new orders, `size` messages naming them, the same messages again."""
    account_id = new_account(engine)
    seen: list[str] = []
    listener = lambda *args: seen.append(args[2].split(" (")[0])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        out = []
        item = (NormItem("s", "t", 1, Decimal("1"), "USD"),)
        for rows in (
            [order(f"O{i}", buyer_id=f"b{i}", items=item) for i in range(size)],
            [
                message(f"M{i}", f"C{i % (size // 2)}", order_external_id=f"O{i % (size // 2)}")
                for i in range(size)
            ],
        ):
            seen.clear()
            store(engine, account_id, rows)
            out.append(list(seen))
        seen.clear()
        assert store(engine, account_id, rows).duplicates == size  # a re-polled page stores nothing
        out.append(list(seen))
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    with dbm.session_scope(engine) as s:
        stored = s.scalars(select(m.Order.id).where(m.Order.account_id == account_id)).all()
    assert len(stored) == size
    return out


def test_a_batch_looks_rows_up_with_a_few_statements_whatever_its_size(engine):
    # SQLite inserts row by row (it cannot return ids of a multi-row insert in order); the lookups and
    # updates do not grow with the batch.
    small, large = statements_per_batch(engine, 20), statements_per_batch(engine, 400)
    for few, many in zip(small, large, strict=True):
        assert [s for s in few if not s.startswith("INSERT")] == [
            s for s in many if not s.startswith("INSERT")
        ]
        assert len(many) <= 12 + 2 * 400


@pytest.mark.services
def test_a_batch_costs_a_few_statements_on_postgresql(pg_engine):
    for batch in statements_per_batch(pg_engine, 600):
        assert len(batch) <= 14, batch


def test_messages_before_their_order_wait_for_it_and_are_reported_when_it_arrives(engine, account):
    first = store(
        engine,
        account,
        [
            message("M1", "C1", order_external_id="O1"),
            message("M2", "C1", direction="seller", order_external_id="O1"),
            message("M3", "C2", buyer_id="b7"),  # names no order: its buyer's first new order takes it
            message("M4", "C3", buyer_id="b7", order_external_id="O9"),  # names another order: not taken
        ],
    )
    calls = []
    result = store(engine, account, [order("O0", buyer_id="b7"), order("O1", buyer_id="b7")], calls=calls)
    with dbm.session_scope(engine) as s:
        linked = dict(s.execute(select(m.Conversation.external_id, m.Conversation.order_id)).all())
        ids = dict(s.execute(select(m.Order.external_id, m.Order.id)).all())
    assert linked == {"C1": ids["O1"], "C2": ids["O0"], "C3": None}
    m1, m3, _ = first.new_messages  # the buyer messages M1, M3, M4
    assert result.new_messages == [m3, m1]  # per order, in record order; the seller's message is not waiting
    assert [c[0] for c in calls] == ["O0", "O1"]


def test_a_changed_order_reports_the_undecided_messages_of_its_conversations(engine, account):
    store(engine, account, [order("O1"), order("O2")])
    waiting = store(engine, account, [message("M1", "C1", order_external_id="O1")]).new_messages
    assert store(engine, account, [order("O1"), order("O2")]).new_messages == []  # unchanged: nothing
    result = store(
        engine, account, [order("O2", total=Decimal("9.00")), order("O1", status=OrderStatus.shipped)]
    )
    assert result.new_messages == waiting and result.duplicates == 0


def test_later_records_of_a_batch_see_earlier_ones(engine, account):
    calls = []
    result = store(
        engine,
        account,
        [
            message("M1", "C1", order_external_id="O1"),
            order("O1"),
            message("M1", "C1", order_external_id="O1"),  # the same message again
            message("M2", "C1", order_external_id="O1", sent_at=T0 + timedelta(hours=1)),
            order("O1", status=OrderStatus.shipped, tracking_number="TN"),  # a second version
            dispute("D1", "O1"),
            dispute("D2", "O2"),  # its order has not come yet: skipped, the overlap brings it back
        ],
        calls=calls,
    )
    assert (
        count(engine, m.Message) == 2 and count(engine, m.Conversation) == 1 and count(engine, m.Order) == 1
    )
    assert result.duplicates == 1 and len(result.new_disputes) == 1
    # Each version of the order is planned as it was stored.
    assert [(c[0], c[1]) for c in calls] == [("O1", "paid"), ("O1", "shipped")]
    with dbm.session_scope(engine) as s:
        conv = s.scalars(select(m.Conversation)).one()
        assert conv.order_id == calls[0][2] and conv.last_message_at == T0 + timedelta(hours=1)


def test_a_conversation_linked_in_a_batch_keeps_its_order_for_later_messages_of_the_batch(engine, account):
    store(
        engine,
        account,
        [
            message("M1", "C1", order_external_id="O1"),
            order("O1"),  # links C1
            message("M2", "C1", order_external_id="O2"),  # C1 has its order now: O2 is not looked up
        ],
    )
    with dbm.session_scope(engine) as s:
        conv = s.scalars(select(m.Conversation)).one()
        assert (conv.order_external_id, conv.order_id) == ("O1", s.scalar(select(m.Order.id)))


def test_a_refused_record_is_named_and_nothing_of_its_batch_is_kept(engine, account):
    rows = [message("M1", "C1"), order("O1"), order("O-bad", total=Decimal("12.345")), message("M2", "C1")]
    with pytest.raises(IngestError, match="order O-bad"):
        store(engine, account, rows)
    with pytest.raises(IngestError, match="cannot ingest str"):
        store(engine, account, [order("O1"), "x"])
    assert count(engine, m.Message) == count(engine, m.Order) == count(engine, m.Conversation) == 0
    store(engine, account, rows[:2] + rows[3:])
    assert count(engine, m.Message) == 2


# ------------------------------------------------------------- batched == record by record


def random_batches(rng: random.Random) -> list[list[object]]:
    orders, buyers = [f"O{i}" for i in range(8)], [f"b{i}" for i in range(4)]
    conv_buyer = {f"C{i}": rng.choice(buyers) for i in range(6)}
    batches, t = [], T0
    for _ in range(rng.randint(1, 5)):
        rows: list[object] = []
        for _ in range(rng.randint(1, 12)):
            t += timedelta(minutes=rng.randint(0, 30))
            pick = rng.random()
            if pick < 0.4:
                rows.append(
                    order(
                        rng.choice(orders),
                        status=rng.choice(list(OrderStatus)),
                        total=Decimal(rng.choice(["10.00", "12.50"])),
                        modified_at=t,
                        buyer_id=rng.choice([*buyers, None]),
                        paid_at=T0 + timedelta(hours=rng.randint(0, 5)),
                        tracking_number=rng.choice([None, "TN1", "TN2"]),
                        items=tuple(
                            NormItem(f"s{j}", "t", 1, Decimal("1.00"), "USD")
                            for j in range(rng.randint(0, 2))
                        ),
                    )
                )
            elif pick < 0.9:
                conv = rng.choice(sorted(conv_buyer))
                rows.append(
                    message(
                        f"M{rng.randint(0, 25)}",
                        conv,
                        direction=rng.choice(["buyer", "buyer", "seller", "system"]),
                        sent_at=t - timedelta(minutes=rng.randint(0, 300)),
                        buyer_id=rng.choice([conv_buyer[conv], None]),
                        order_external_id=rng.choice([None, None, rng.choice(orders)]),
                    )
                )
            else:
                rows.append(
                    dispute(
                        rng.choice(["D1", "D2"]), rng.choice(orders), opened_at=t, is_open=rng.random() < 0.6
                    )
                )
        if rng.random() < 0.2:  # a record the database refuses, somewhere in the batch
            rows.insert(rng.randint(0, len(rows)), order(rng.choice(orders), total=Decimal("1.005")))
        batches.append(rows)
    return batches


def snapshot(engine) -> dict[str, list[tuple]]:
    tables = {m.Order: "updated_at", m.OrderItem: None, m.Conversation: "updated_at", m.Message: None}
    tables |= {m.Dispute: "updated_at"}  # updated_at may come from the ORM's wall-clock onupdate
    with Session(engine) as s:
        return {
            model.__tablename__: [
                tuple(getattr(row, c.key) for c in model.__table__.columns if c.key != skip)
                for row in s.scalars(select(model).order_by(model.id))
            ]
            for model, skip in tables.items()
        }


def outcome(engine, account_id, batches, one_by_one: bool) -> list[object]:
    out: list[object] = []
    for i, rows in enumerate(batches):
        calls: list[tuple] = []
        now = NOW + timedelta(minutes=i)
        try:
            if one_by_one:
                total = IngestResult()
                with dbm.session_scope(engine) as s:
                    for rec in rows:
                        part = ingest(
                            s,
                            account_id,
                            [rec],
                            now,
                            on_order=lambda s, o, at, calls=calls: calls.append((o.id, o.status)),
                        )
                        total.orders += part.orders
                        total.new_messages += part.new_messages
                        total.new_disputes += part.new_disputes
                        total.duplicates += part.duplicates
            else:
                total = store(engine, account_id, rows, now, calls)
                calls = [(c[2], c[1]) for c in calls]
            out.append((total, calls))
        except IngestError as exc:
            out.append(str(exc))
    return out


@pytest.mark.parametrize("seed", range(12))
def test_a_batch_stores_what_its_records_stored_one_by_one_store(engine, _migrated_sqlite, tmp_path, seed):
    copy = tmp_path / "one_by_one.db"
    shutil.copyfile(_migrated_sqlite, copy)
    other = dbm.make_engine(f"sqlite:///{copy}")
    try:
        batches = random_batches(random.Random(seed))
        batched = outcome(engine, new_account(engine), batches, one_by_one=False)
        single = outcome(other, new_account(other), batches, one_by_one=True)
        assert batched == single
        assert snapshot(engine) == snapshot(other)
    finally:
        other.dispose()
