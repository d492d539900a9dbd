"""Triage batches: facts loaded once per batch, items decided in turn, and what one item writes is seen
by the next (the automatic-reply slot, superseded drafts, one money action per order), as if each
message had been decided on its own."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select, update

from connectors.ratelimit import InProcessTokenBucket
from connectors.sandbox.server import SandboxServer
from tests.fakes import seed_order
from worker import db as dbm
from worker import drafts as d
from worker import models as m
from worker.connections import Connections
from worker.crypto import set_credentials
from worker.db import session_scope
from worker.decide import Engines, triage_disputes, triage_messages
from worker.polling import poll_stream
from worker.triage.types import Action, ActionType, Intent
from worker.triage.types import Decision as TD

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class FakeTriage:
    """Decides by the message's prefix and records every case it was given.

    auto:<reply>  an automatic reply, unless the case says the conversation's slot is taken (guard 5)
    draft:<reply> a reply for a human;  refund:<reply> the same with a full refund proposed
    quiet:<x>     no reply at all;      boom:<x> the decision core fails
    """

    def __init__(self) -> None:
        self.cases = []

    def decide(self, case, capabilities):
        self.cases.append(case)
        if case.message is None:
            kind, reply = "draft", f"About your dispute on {case.order.id}."
        else:
            kind, _, reply = case.message.text.partition(":")
        if kind == "boom":
            raise RuntimeError("the decision core failed")
        actions = []
        if kind == "refund":
            actions = [Action(type=ActionType.refund_full, amount=case.order.total, currency="USD")]
        return TD(
            id=case.id,
            language="en",
            intent=Intent.other if kind == "quiet" else Intent.not_received,
            confidence=0.9,
            scenario="in_transit",
            deadline=None,
            days_left=None,
            refund_allowed=kind == "refund",
            actions=actions,
            auto_send=kind == "auto" and case.last_auto_reply_at is None,
            template="not_received/in_transit",
            reply_language="en",
            reply=reply,
            reasons=[f"fake {case.id}"],
            reply_suppressed=kind == "quiet",
        )


class FakeEngines(Engines):
    def __init__(self) -> None:
        super().__init__()
        self.fake = FakeTriage()

    def for_account(self, account):
        return self.fake


@pytest.fixture
def shop(engine):
    with session_scope(engine) as s:
        acc, order, conv, msg = seed_order(s, now=T0)
        msg.triage_state = m.TriageState.done  # the seed's own message is not part of these batches
        return {"account": acc.id, "order": order.id, "conv": conv.id}


def add_order(engine, shop, n: int) -> int:
    with session_scope(engine) as s:
        order = m.Order(
            account_id=shop["account"],
            external_id=f"9000{n:03d}",
            status="shipped",
            total=Decimal("19.90"),
            currency="USD",
            buyer_name="Sam",
        )
        s.add(order)
        s.flush()
        return order.id


def add_conv(engine, shop, order_id: int | None, name: str) -> int:
    with session_scope(engine) as s:
        conv = m.Conversation(account_id=shop["account"], external_id=name, order_id=order_id)
        s.add(conv)
        s.flush()
        return conv.id


def add_msg(engine, conv_id: int, body: str) -> int:
    with session_scope(engine) as s:
        n = s.scalar(select(func.count()).select_from(m.Message)) + 1
        msg = m.Message(
            conversation_id=conv_id, external_id=f"b{n}", direction="buyer", body=body, sent_at=T0
        )
        s.add(msg)
        s.flush()
        return msg.id


def run(engine, ids, engines=None):
    return triage_messages(ids, engines=engines or FakeEngines(), engine=engine, clock=lambda: T0)


def rows(engine, model, *where):
    with session_scope(engine) as s:
        return list(s.scalars(select(model).where(*where).order_by(model.id)))


# ------------------------------------------------------------------ statements
def test_a_batch_costs_a_few_statements_per_message(engine, shop):
    ids = []
    for n, body in enumerate(["auto:On its way."] * 8 + ["draft:Sorry."] * 8 + ["refund:Refunded."] * 4):
        conv = add_conv(engine, shop, add_order(engine, shop, n), f"c{n}")
        ids.append(add_msg(engine, conv, body))
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        out = run(engine, ids)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert out == {"not-claimed": 0, "auto": 8, "draft": 12}
    # Per message: the decision, the draft, the complaint flag; automatic replies add the same-text check
    # and the outbox row, refunds the order's live actions and the refund. Per batch: claim and facts.
    # (Deciding message by message in savepoints took about 19 per message.)
    assert len(statements) <= 5 * len(ids), statements
    assert not [s for s in statements if s.startswith("SAVEPOINT")]


# ------------------------------------------------------------------ one conversation, one batch
def test_two_messages_of_one_conversation_share_the_automatic_reply_slot(engine, shop):
    conv = add_conv(engine, shop, shop["order"], "c-slot")
    first, second = (
        add_msg(engine, conv, "auto:On its way."),
        add_msg(engine, conv, "auto:Tracking says soon."),
    )
    engines = FakeEngines()
    assert run(engine, [first, second], engines) == {"not-claimed": 0, "auto": 1, "draft": 1}
    seen = {c.id: c for c in engines.fake.cases}
    assert (
        seen[f"msg:{first}"].last_auto_reply_at is None and not seen[f"msg:{first}"].complaint_in_conversation
    )
    # The second case sees what the first one wrote in the same transaction.
    assert seen[f"msg:{second}"].last_auto_reply_at == T0
    assert seen[f"msg:{second}"].complaint_in_conversation
    assert [x.auto_send for x in rows(engine, m.Decision)] == [True, False]
    assert len(rows(engine, m.Outbox)) == 1
    (c,) = rows(engine, m.Conversation, m.Conversation.id == conv)
    assert c.last_auto_reply_at == T0 and c.complaint


def test_an_identical_reply_in_the_same_batch_supersedes_the_first(engine, shop):
    conv = add_conv(engine, shop, shop["order"], "c-same")
    ids = [add_msg(engine, conv, "auto:Same text."), add_msg(engine, conv, "auto:Same text.")]
    run(engine, ids)
    first, second = rows(engine, m.Draft)
    decisions = rows(engine, m.Decision)
    assert first.state == "cancelled" and f"decision {decisions[1].id}" in first.reject_reason
    assert second.state == "pending"  # the slot was taken by the first, which is now cancelled
    assert [o.state for o in rows(engine, m.Outbox)] == ["cancelled"]
    assert [a.action for a in rows(engine, m.AuditLog)] == ["draft.supersede"]


def test_a_conversation_with_an_older_unsent_draft_still_gets_it_superseded(engine, shop):
    conv = add_conv(engine, shop, shop["order"], "c-old")
    run(engine, [add_msg(engine, conv, "draft:Same text.")])
    # A later batch: the draft it supersedes was written before the batch began.
    other = add_conv(engine, shop, add_order(engine, shop, 1), "c-other")
    run(engine, [add_msg(engine, other, "draft:Same text."), add_msg(engine, conv, "draft:Same text.")])
    states = {(x.conversation_id, x.state) for x in rows(engine, m.Draft)}
    assert states == {(conv, "cancelled"), (conv, "pending"), (other, "pending")}


def test_one_refund_per_order_within_a_batch(engine, shop):
    a = add_conv(engine, shop, shop["order"], "c-a")
    b = add_conv(engine, shop, shop["order"], "c-b")
    run(engine, [add_msg(engine, a, "refund:Refunded."), add_msg(engine, b, "refund:We refund you.")])
    assert len(rows(engine, m.ProposedAction)) == 1
    second = rows(engine, m.Decision)[1]
    assert "refund_full already proposed for this order: not again" in second.reasons_json


# ------------------------------------------------------------------ mixed outcomes
def test_blank_waiting_quiet_and_decided_messages_in_one_batch(engine, shop):
    conv = add_conv(engine, shop, shop["order"], "c-mixed")
    orphan = add_conv(engine, shop, None, "c-no-order")
    blank, waiting = add_msg(engine, conv, "   "), add_msg(engine, orphan, "draft:Hello")
    quiet, decided = add_msg(engine, conv, "quiet:ok"), add_msg(engine, conv, "draft:Hello")
    out = run(engine, [blank, waiting, quiet, decided])
    assert out == {"not-claimed": 0, "blank": 1, "waiting": 1, "suppressed": 1, "draft": 1}
    msgs = {x.id: x for x in rows(engine, m.Message)}
    assert (msgs[blank].triage_state, msgs[blank].language) == ("skipped", None)
    assert (msgs[waiting].triage_state, msgs[waiting].triage_attempts) == ("new", 0)
    assert (msgs[quiet].triage_state, msgs[quiet].language) == ("skipped", "en")
    assert (msgs[decided].triage_state, msgs[decided].language) == ("done", "en")
    assert [q.object_id for q in rows(engine, m.Quarantine)] == [str(blank)]


def test_a_message_failing_while_writing_is_isolated(engine, shop, monkeypatch, caplog):
    orders = [add_order(engine, shop, n) for n in range(3)]
    convs = [add_conv(engine, shop, order, f"c{n}") for n, order in enumerate(orders)]
    # The third order has a refund proposed already: its decision will note that (a write to the row).
    run(engine, [add_msg(engine, add_conv(engine, shop, orders[2], "c2-before"), "refund:x")])
    ids = [add_msg(engine, convs[0], "auto:On its way."), add_msg(engine, convs[1], "auto:On its way.")]
    ids.append(add_msg(engine, convs[2], "refund:Refunded."))
    real = d._reserve_auto_reply

    def fail_for_the_second(s, conversation_id, now):
        if conversation_id == convs[1]:
            raise RuntimeError("disk full")
        real(s, conversation_id, now)

    monkeypatch.setattr(d, "_reserve_auto_reply", fail_for_the_second)
    with caplog.at_level(logging.WARNING, logger="worker.decide"):
        out = run(engine, ids)
    assert out == {"not-claimed": 0, "auto": 1, "draft": 1, "error": 1}
    assert "deciding the batch again" in caplog.text
    msgs = {x.id: x for x in rows(engine, m.Message)}
    assert [msgs[i].triage_state for i in ids] == ["done", "processing", "done"]
    # Nothing of the failed message stays, and what follows it is linked right: SQLite reuses the id of
    # the rolled-back decision row, and the session must not hand back that row's stale object.
    decisions = {x.message_id: x for x in rows(engine, m.Decision, m.Decision.message_id.in_(ids))}
    assert sorted(decisions) == [ids[0], ids[2]]
    assert decisions[ids[2]].reasons_json == [
        f"fake msg:{ids[2]}",
        "refund_full already proposed for this order: not again",
    ]
    drafts = {x.decision_id: x for x in rows(engine, m.Draft)}
    assert drafts[decisions[ids[0]].id].conversation_id == convs[0]
    assert drafts[decisions[ids[2]].id].conversation_id == convs[2]
    assert [o.conversation_id for o in rows(engine, m.Outbox)] == [convs[0]]


def test_a_message_failing_before_it_writes_needs_no_second_pass(engine, shop, caplog):
    conv = add_conv(engine, shop, shop["order"], "c-boom")
    ids = [
        add_msg(engine, conv, "draft:One."),
        add_msg(engine, conv, "boom:x"),
        add_msg(engine, conv, "draft:Two."),
    ]
    with caplog.at_level(logging.WARNING, logger="worker.decide"):
        out = run(engine, ids)
    assert out == {"not-claimed": 0, "draft": 2, "error": 1}
    assert "deciding the batch again" not in caplog.text
    assert [x.message_id for x in rows(engine, m.Decision)] == [ids[0], ids[2]]


def test_a_source_decided_already_is_not_decided_twice(engine, shop):
    conv = add_conv(engine, shop, shop["order"], "c-twice")
    mid = add_msg(engine, conv, "auto:On its way.")
    run(engine, [mid])
    with session_scope(engine) as s:  # as if a second task had the message too
        s.execute(update(m.Message).where(m.Message.id == mid).values(triage_state="new"))
    run(engine, [mid])
    assert len(rows(engine, m.Decision)) == 1 and len(rows(engine, m.Draft)) == 1
    assert len(rows(engine, m.Outbox)) == 1


# ------------------------------------------------------------------ disputes
def add_dispute(engine, shop, order_id: int, name: str, opened: datetime) -> int:
    with session_scope(engine) as s:
        dispute = m.Dispute(
            account_id=shop["account"],
            order_id=order_id,
            external_id=name,
            reason="not received",
            opened_at=opened,
        )
        s.add(dispute)
        s.flush()
        return dispute.id


def test_a_dispute_batch(engine, shop):
    conv = add_conv(engine, shop, shop["order"], "c-d")
    run(engine, [add_msg(engine, conv, "draft:Hello")])  # a decision about this order at T0
    other = add_order(engine, shop, 7)
    answered = add_dispute(engine, shop, shop["order"], "d1", T0.replace(hour=11))
    fresh = [add_dispute(engine, shop, other, "d2", T0), add_dispute(engine, shop, other, "d3", T0)]
    out = triage_disputes([answered, *fresh], engines=FakeEngines(), engine=engine, clock=lambda: T0)
    assert out == {"not-claimed": 0, "answered-by-message": 1, "draft": 2}
    states = {x.id: x.triage_state for x in rows(engine, m.Dispute)}
    assert states == {answered: "skipped", fresh[0]: "done", fresh[1]: "done"}
    assert [x.dispute_id for x in rows(engine, m.Decision, m.Decision.dispute_id.is_not(None))] == fresh
    # The second dispute of the order got the same text for the same (absent) conversation: no action twice.
    assert len(rows(engine, m.Draft, m.Draft.conversation_id.is_(None))) == 2


# ------------------------------------------------------------------ a batch decides as one-by-one would
def dump(engine) -> dict[str, list[tuple]]:
    out = {}
    with session_scope(engine) as s:
        for model in (m.Message, m.Conversation, m.Dispute, m.Decision, m.Draft, m.Outbox, m.ProposedAction):
            cols = [c for c in model.__table__.columns if c.key not in ("updated_at", "dispatched_at")]
            out[model.__tablename__] = [tuple(r) for r in s.execute(select(*cols).order_by(cols[0]))]
        out["audit_log"] = [tuple(r) for r in s.execute(select(m.AuditLog.action, m.AuditLog.object_id))]
    return out


def test_a_batch_decides_exactly_as_one_message_at_a_time(engine, settings, tmp_path):
    """The real decision core on a sandbox shop where buyers write twice, word for word or not."""
    with SandboxServer(seed=7, port=0, orders=10, speed=0) as sb:
        name = sb.accounts[0].name
        sb.add_buyer_messages(40, name)
        sb.open_disputes(4, name)
        with session_scope(engine) as s:
            acc = m.Account(
                marketplace="sandbox", name=name, settings_json={"rate_per_second": 1000, "burst": 1000}
            )
            set_credentials(acc, sb.credentials(name), settings.secret_key)
            s.add(acc)
            s.flush()
            account_id = acc.id
        conns = Connections(engine, settings, limiter=InProcessTokenBucket())
        msgs, disputes = [], []
        for stream in ("orders", "messages", "disputes"):
            for _ in range(50):
                r = poll_stream(account_id, stream, conns, engine=engine)
                assert r.status == "ok", r.error
                msgs += r.new_messages
                disputes += r.new_disputes
                if not r.more:
                    break
    with session_scope(engine) as s:
        # Every other buyer writes again: half word for word, half in other words.
        firsts = list(s.scalars(select(m.Message).where(m.Message.id.in_(msgs)).order_by(m.Message.id)))
        for n, msg in enumerate(firsts[::2]):
            body = msg.body if n % 2 else "Any news about my order? " + msg.body
            again = m.Message(
                conversation_id=msg.conversation_id, external_id=f"again-{n}", direction="buyer", body=body
            )
            s.add(again)
            s.flush()
            msgs.append(again.id)
    copy = tmp_path / "one-by-one.db"
    raw = engine.raw_connection()
    try:
        with sqlite3.connect(copy) as target:
            raw.driver_connection.backup(target)
    finally:
        raw.close()
    single = dbm.make_engine(f"sqlite:///{copy}")
    try:
        engines = Engines(shop_name="Shop")
        batched = triage_messages(msgs, engines=engines, engine=engine, clock=lambda: T0)
        assert batched["error"] == 0 and batched["auto"] and batched["draft"]
        for mid in msgs:
            triage_messages([mid], engines=engines, engine=single, clock=lambda: T0)
        triage_disputes(disputes, engines=engines, engine=engine, clock=lambda: T0)
        for did in disputes:
            triage_disputes([did], engines=engines, engine=single, clock=lambda: T0)
        a, b = dump(engine), dump(single)
    finally:
        single.dispose()
    assert any(x[0] == "draft.supersede" for x in a["audit_log"])  # the world exercised what it should
    for table in a:
        assert a[table] == b[table], table


# ------------------------------------------------------------------ late orders
def test_a_conversation_stored_before_its_order_committed_is_linked_and_decided(engine, shop):
    # The orders poll committed while the messages poll was storing this conversation: nobody linked it.
    order = add_order(engine, shop, 50)
    with session_scope(engine) as s:
        conv = m.Conversation(
            account_id=shop["account"], external_id="c-late", order_id=None, order_external_id="9000050"
        )
        s.add(conv)
        s.flush()
        conv_id = conv.id
    msg = add_msg(engine, conv_id, "draft:Hello")
    assert run(engine, [msg]) == {"not-claimed": 0, "draft": 1}
    assert rows(engine, m.Conversation, m.Conversation.id == conv_id)[0].order_id == order
    assert rows(engine, m.Decision, m.Decision.message_id == msg)[0].order_id == order


def test_a_buyer_only_conversation_is_linked_to_the_buyers_latest_order(engine, shop):
    older, newer = add_order(engine, shop, 60), add_order(engine, shop, 61)
    with session_scope(engine) as s:
        s.execute(update(m.Order).where(m.Order.id.in_([older, newer])).values(buyer_id="buyer-x"))
        s.execute(update(m.Order).where(m.Order.id == older).values(paid_at=T0.replace(day=1)))
        s.execute(update(m.Order).where(m.Order.id == newer).values(paid_at=T0))
        conv = m.Conversation(account_id=shop["account"], external_id="c-buyer", buyer_id="buyer-x")
        s.add(conv)
        s.flush()
        conv_id = conv.id
    msg = add_msg(engine, conv_id, "draft:Hello")
    assert run(engine, [msg]) == {"not-claimed": 0, "draft": 1}
    assert rows(engine, m.Conversation, m.Conversation.id == conv_id)[0].order_id == newer


def test_an_order_of_another_account_is_never_linked(engine, shop):
    with session_scope(engine) as s:
        other = m.Account(marketplace="sandbox", name="other")
        s.add(other)
        s.flush()
        s.add(m.Order(account_id=other.id, external_id="9000070", status="shipped", total=Decimal("5"),
                      currency="USD"))  # fmt: skip
        conv = m.Conversation(account_id=shop["account"], external_id="c-x", order_external_id="9000070")
        s.add(conv)
        s.flush()
        conv_id = conv.id
    msg = add_msg(engine, conv_id, "draft:Hello")
    assert run(engine, [msg]) == {"not-claimed": 0, "waiting": 1}
    assert rows(engine, m.Conversation, m.Conversation.id == conv_id)[0].order_id is None
