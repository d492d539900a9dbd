"""Drafts, outbox and actions: every send and every refund happens exactly once, whatever fails."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from connectors.base import SendResult
from tests.fakes import FakeConnector, seed_order
from worker import actions as acts
from worker import dispatch
from worker import drafts as d
from worker import models as m
from worker import outbox as ob
from worker.db import session_scope
from worker.triage.types import Action, ActionType, Intent
from worker.triage.types import Decision as TD

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
UNDO = timedelta(minutes=2)


class Clock:
    def __init__(self, t: datetime = T0) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t

    def advance(self, **kw) -> None:
        self.t += timedelta(**kw)


def decision(
    *,
    auto: bool = False,
    actions: list[Action] | None = None,
    suppressed: bool = False,
    refund_allowed: bool = False,
) -> TD:
    return TD(
        id="x",
        language="en",
        intent=Intent.not_received,
        confidence=0.9,
        scenario="in_transit",
        deadline=None,
        days_left=None,
        refund_allowed=refund_allowed,
        actions=actions or [],
        auto_send=auto,
        template="not_received/in_transit",
        reply_language="en",
        reply="Hello Alex, your parcel is on its way.",
        reasons=["tracking in_transit"],
        reply_suppressed=suppressed,
    )


@pytest.fixture
def world(engine):
    with session_scope(engine) as s:
        acc, order, conv, msg = seed_order(s, now=T0)
        ids = {"account": acc.id, "order": order.id, "conv": conv.id, "msg": msg.id}
    return ids


def src(world, **kw) -> d.Source:
    return d.Source(
        account_id=world["account"],
        order_id=world["order"],
        message_id=world["msg"],
        conversation_id=world["conv"],
        **kw,
    )


def count(engine, model, *where) -> int:
    with session_scope(engine) as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def pending_draft(engine, world, **kw) -> int:
    with session_scope(engine) as s:
        row = d.record_decision(s, src(world), decision(**kw), now=T0, undo_window=UNDO)
        return s.scalar(select(m.Draft.id).where(m.Draft.decision_id == row.id))


# ------------------------------------------------------------------ decisions and drafts
def test_record_decision_is_idempotent(engine, world):
    with session_scope(engine) as s:
        a = d.record_decision(s, src(world), decision(), now=T0, undo_window=UNDO)
    with session_scope(engine) as s:
        b = d.record_decision(s, src(world), decision(), now=T0, undo_window=UNDO)
    assert a.id == b.id
    assert count(engine, m.Decision) == 1 and count(engine, m.Draft) == 1


def test_suppressed_decision_has_no_draft(engine, world):
    with session_scope(engine) as s:
        d.record_decision(s, src(world), decision(suppressed=True), now=T0, undo_window=UNDO)
    assert count(engine, m.Decision) == 1 and count(engine, m.Draft) == 0 and count(engine, m.Outbox) == 0


def test_auto_decision_waits_for_the_undo_window(engine, world):
    with session_scope(engine) as s:
        d.record_decision(s, src(world), decision(auto=True), now=T0, undo_window=UNDO)
    with session_scope(engine) as s:
        out = s.scalar(select(m.Outbox))
        draft = s.scalar(select(m.Draft))
        conv = s.get(m.Conversation, world["conv"])
        assert out.not_before == T0 + UNDO and out.state == "pending"
        assert draft.state == "approved" and draft.auto
        assert conv.last_auto_reply_at == T0
    assert dispatch.due_sends(engine, T0 + timedelta(seconds=119), timedelta(0)) == []
    assert dispatch.due_sends(engine, T0 + UNDO, timedelta(0)) == [out.id]


def test_actions_become_rows_money_stays_proposed(engine, world):
    acts_ = [
        Action(type=ActionType.resend),
        Action(type=ActionType.extend_protection, days=30),
        Action(type=ActionType.request_photo),
    ]
    draft_id = pending_draft(engine, world, actions=acts_)
    with session_scope(engine) as s:
        rows = {a.type: a.state for a in s.scalars(select(m.ProposedAction))}
    assert rows == {"resend": "proposed", "extend_protection": "proposed"}
    with session_scope(engine) as s:
        d.approve_draft(s, draft_id, actor="u1", reviewer_id=None, now=T0)
    with session_scope(engine) as s:
        rows = {a.type: a.state for a in s.scalars(select(m.ProposedAction))}
    assert rows == {"resend": "proposed", "extend_protection": "approved"}


def test_approve_twice_is_refused_and_writes_one_outbox_row(engine, world):
    draft_id = pending_draft(engine, world)
    with session_scope(engine) as s:
        d.approve_draft(s, draft_id, actor="u1", reviewer_id=None, now=T0, edited_text="Edited reply")
    with pytest.raises(d.DraftError, match="approved, not pending"):
        with session_scope(engine) as s:
            d.approve_draft(s, draft_id, actor="u2", reviewer_id=None, now=T0)
    with session_scope(engine) as s:
        rows = list(s.scalars(select(m.Outbox)))
        assert len(rows) == 1 and rows[0].body == "Edited reply"
        assert (
            s.scalar(select(func.count()).select_from(m.AuditLog).where(m.AuditLog.action == "draft.approve"))
            == 1
        )


def test_concurrent_approvals_one_wins(engine, world):
    draft_id = pending_draft(engine, world)
    results = []

    def approve(who):
        try:
            with session_scope(engine) as s:
                d.approve_draft(s, draft_id, actor=who, reviewer_id=None, now=T0)
            results.append("ok")
        except d.DraftError:
            results.append("refused")
        except Exception as exc:  # SQLite busy under contention counts as refused, never as a second row
            results.append(f"error {type(exc).__name__}")

    threads = [threading.Thread(target=approve, args=(f"u{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 1
    assert count(engine, m.Outbox) == 1


def test_reject_needs_reason_and_rejects_actions(engine, world):
    draft_id = pending_draft(engine, world, actions=[Action(type=ActionType.resend)])
    with pytest.raises(d.DraftError, match="reason"):
        with session_scope(engine) as s:
            d.reject_draft(s, draft_id, actor="u", reviewer_id=None, reason="  ", now=T0)
    with session_scope(engine) as s:
        d.reject_draft(s, draft_id, actor="u", reviewer_id=None, reason="wrong tone", now=T0)
    with session_scope(engine) as s:
        assert s.get(m.Draft, draft_id).state == "rejected"
        assert s.scalar(select(m.ProposedAction.state)) == "rejected"


def test_snooze_and_wake(engine, world):
    draft_id = pending_draft(engine, world)
    with session_scope(engine) as s:
        d.snooze_draft(s, draft_id, actor="u", until=T0 + timedelta(hours=1), now=T0)
    with session_scope(engine) as s:
        assert d.wake_snoozed(s, T0 + timedelta(minutes=59)) == 0
        assert d.wake_snoozed(s, T0 + timedelta(hours=1)) == 1
        assert s.get(m.Draft, draft_id).state == "pending"


def test_undo_within_window_then_too_late(engine, world):
    fake = FakeConnector(world["account"])
    with session_scope(engine) as s:
        d.record_decision(s, src(world), decision(auto=True), now=T0, undo_window=UNDO)
        draft_id = s.scalar(select(m.Draft.id))
    with session_scope(engine) as s:
        d.undo_send(s, draft_id, actor="u", now=T0 + timedelta(seconds=30))
    with session_scope(engine) as s:
        assert s.get(m.Draft, draft_id).state == "pending"
        assert s.scalar(select(m.Outbox.state)) == "cancelled"
    # The cancelled row is never sent, even when due.
    oid = count(engine, m.Outbox)
    assert ob.deliver(oid, lambda _: fake, engine=engine, clock=Clock(T0 + UNDO)) == "not-claimed"
    # Approved again by a human, then sent: undo is now too late.
    with session_scope(engine) as s:
        d.approve_draft(s, draft_id, actor="u", reviewer_id=None, now=T0 + timedelta(minutes=1))
        new_id = s.scalar(select(m.Outbox.id).where(m.Outbox.state == "pending"))
    assert ob.deliver(new_id, lambda _: fake, engine=engine, clock=Clock(T0 + UNDO)) == "sent"
    with pytest.raises(d.DraftError, match="too late"):
        with session_scope(engine) as s:
            d.undo_send(s, draft_id, actor="u", now=T0 + UNDO)
    assert len(fake.sent) == 1


# ------------------------------------------------------------------ sending exactly once
def approved_row(engine, world) -> int:
    draft_id = pending_draft(engine, world)
    with session_scope(engine) as s:
        return d.approve_draft(s, draft_id, actor="u", reviewer_id=None, now=T0).id


def test_deliver_sends_once_and_records_everything(engine, world):
    fake = FakeConnector(world["account"])
    oid = approved_row(engine, world)
    assert ob.deliver(oid, lambda _: fake, engine=engine, clock=Clock()) == "sent"
    assert ob.deliver(oid, lambda _: fake, engine=engine, clock=Clock()) == "not-claimed"
    assert len(fake.sent) == 1 and fake.sent[0]["conversation"] == "conv-1"
    with session_scope(engine) as s:
        row = s.get(m.Outbox, oid)
        assert (row.state, row.marketplace_message_id, row.attempts) == ("sent", "m1", 1)
        assert s.get(m.Draft, row.draft_id).state == "sent"
        own = s.scalar(select(m.Message).where(m.Message.external_id == "m1"))
        assert own.direction == "seller" and own.triage_state == "skipped"


def test_parallel_senders_send_once(engine, world):
    fake = FakeConnector(world["account"])
    oid = approved_row(engine, world)
    results = []
    threads = [
        threading.Thread(
            target=lambda: results.append(ob.deliver(oid, lambda _: fake, engine=engine, clock=Clock()))
        )
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fake.sent) == 1
    assert results.count("sent") == 1


def test_crash_between_call_and_mark_is_reconciled_not_resent(engine, world):
    fake = FakeConnector(world["account"])
    oid = approved_row(engine, world)
    clock = Clock()
    job = ob.claim(engine, oid, clock())
    fake.send_message(job.conversation_external_id, job.body, order_external_id=None)  # then the worker dies
    assert ob.deliver(oid, lambda _: fake, engine=engine, clock=clock) == "not-claimed"  # redelivered task
    assert (
        dispatch.stale_sends(engine, clock(), ob.SENDING_LEASE, timedelta(0)) == []
    )  # within the lease nobody touches it
    clock.advance(minutes=3)
    assert dispatch.stale_sends(engine, clock(), ob.SENDING_LEASE, timedelta(0)) == [oid]
    assert ob.reconcile(oid, lambda _: fake, engine=engine, clock=clock) == "reconciled-sent"
    assert len(fake.sent) == 1
    with session_scope(engine) as s:
        assert s.get(m.Outbox, oid).state == "sent"


def test_crash_before_call_is_sent_after_reconcile(engine, world):
    fake = FakeConnector(world["account"])
    oid = approved_row(engine, world)
    clock = Clock()
    ob.claim(engine, oid, clock())  # the worker dies before calling the marketplace
    clock.advance(minutes=3)
    assert ob.reconcile(oid, lambda _: fake, engine=engine, clock=clock) == "reconciled-pending"
    assert ob.deliver(oid, lambda _: fake, engine=engine, clock=clock) == "sent"
    assert len(fake.sent) == 1


def test_answer_lost_becomes_uncertain_then_sent(engine, world):
    fake = FakeConnector(world["account"])
    fake.fail_next = ["timeout_after_send"]
    oid = approved_row(engine, world)
    clock = Clock()
    assert ob.deliver(oid, lambda _: fake, engine=engine, clock=clock) == "uncertain"
    assert ob.deliver(oid, lambda _: fake, engine=engine, clock=clock) == "not-claimed"
    clock.advance(seconds=31)
    assert ob.reconcile(oid, lambda _: fake, engine=engine, clock=clock) == "reconciled-sent"
    assert len(fake.sent) == 1


class ReadsBackTheFirst(FakeConnector):
    """A marketplace that does not echo ids, read back by text: identical texts collide on one id."""

    def send_message(self, conversation_external_id, body, *, order_external_id):
        super().send_message(conversation_external_id, body, order_external_id=order_external_id)
        first = next(
            x for x in self.sent if x["conversation"] == conversation_external_id and x["body"] == body
        )
        return SendResult(marketplace_message_id=first["id"])


def test_two_rows_never_claim_one_delivery(engine, world):
    fake = ReadsBackTheFirst(world["account"])
    first = approved_row(engine, world)
    with session_scope(engine) as s:
        row = s.get(m.Outbox, first)
        twin = m.Outbox(
            account_id=row.account_id, draft_id=row.draft_id, conversation_id=row.conversation_id,
            order_id=row.order_id, idempotency_key="twin", kind=row.kind, body=row.body,
            state="pending", not_before=T0, created_at=T0, updated_at=T0,
        )  # fmt: skip
        s.add(twin)
        s.flush()
        second = twin.id
    clock = Clock()
    assert ob.deliver(first, lambda _: fake, engine=engine, clock=clock) == "sent"
    # The read-back names the first message again: the second row must not claim it.
    assert ob.deliver(second, lambda _: fake, engine=engine, clock=clock) == "uncertain"
    clock.advance(seconds=31)
    assert ob.reconcile(second, lambda _: fake, engine=engine, clock=clock) == "reconciled-sent"
    assert len(fake.sent) == 2  # each row went out once; reconcile sent nothing
    with session_scope(engine) as s:
        ids = {s.get(m.Outbox, i).marketplace_message_id for i in (first, second)}
    assert ids == {x["id"] for x in fake.sent}


def test_unexpected_exception_after_send_is_uncertain(engine, world):
    fake = FakeConnector(world["account"])
    fake.fail_next = ["crash_after_send"]
    oid = approved_row(engine, world)
    clock = Clock()
    assert ob.deliver(oid, lambda _: fake, engine=engine, clock=clock) == "uncertain"
    clock.advance(minutes=1)
    assert ob.reconcile(oid, lambda _: fake, engine=engine, clock=clock) == "reconciled-sent"
    assert len(fake.sent) == 1


def test_retryable_backs_off_then_fails_after_max_attempts(engine, world):
    fake = FakeConnector(world["account"])
    fake.fail_next = ["retryable"] * ob.MAX_ATTEMPTS
    oid = approved_row(engine, world)
    clock = Clock()
    outcomes = []
    for _ in range(ob.MAX_ATTEMPTS):
        outcomes.append(ob.deliver(oid, lambda _: fake, engine=engine, clock=clock))
        assert ob.deliver(oid, lambda _: fake, engine=engine, clock=clock) == "not-claimed"  # backing off
        clock.advance(hours=2)
    assert outcomes == ["retry"] * (ob.MAX_ATTEMPTS - 1) + ["failed"]
    assert fake.sent == []
    with session_scope(engine) as s:
        row = s.get(m.Outbox, oid)
        assert row.state == "failed" and s.get(m.Draft, row.draft_id).state == "failed"


def test_backoff_doubles_from_the_configured_base_and_caps_at_an_hour():
    assert [ob.backoff(n) for n in (1, 2, 3)] == [timedelta(seconds=s) for s in (15, 30, 60)]
    assert [ob.backoff(n, timedelta(seconds=1)) for n in (1, 2, 3)] == [
        timedelta(seconds=s) for s in (1, 2, 4)
    ]
    assert ob.backoff(30) == timedelta(hours=1)


def test_retry_waits_the_given_base_before_the_next_claim(engine, world):
    fake = FakeConnector(world["account"])
    fake.fail_next = ["retryable"]
    oid = approved_row(engine, world)
    clock = Clock()
    base = timedelta(seconds=3)
    assert ob.deliver(oid, lambda _: fake, engine=engine, clock=clock, retry_base=base) == "retry"
    clock.advance(seconds=2)
    assert ob.deliver(oid, lambda _: fake, engine=engine, clock=clock, retry_base=base) == "not-claimed"
    clock.advance(seconds=1)
    assert ob.deliver(oid, lambda _: fake, engine=engine, clock=clock, retry_base=base) == "sent"
    assert len(fake.sent) == 1


def test_fatal_fails_at_once(engine, world):
    fake = FakeConnector(world["account"])
    fake.fail_next = ["fatal"]
    oid = approved_row(engine, world)
    assert ob.deliver(oid, lambda _: fake, engine=engine, clock=Clock()) == "failed"


def test_revoked_token_pauses_account_and_keeps_the_send(engine, world):
    fake = FakeConnector(world["account"])
    fake.fail_next = ["account"]
    oid = approved_row(engine, world)
    assert ob.deliver(oid, lambda _: fake, engine=engine, clock=Clock()) == "account-paused"
    with session_scope(engine) as s:
        acc = s.get(m.Account, world["account"])
        assert acc.paused and "token revoked" in acc.paused_reason
        assert s.get(m.Outbox, oid).state == "pending"
    assert ob.deliver(oid, lambda _: fake, engine=engine, clock=Clock()) == "not-claimed"  # paused
    with session_scope(engine) as s:
        s.get(m.Account, world["account"]).paused = False
    assert ob.deliver(oid, lambda _: fake, engine=engine, clock=Clock()) == "sent"
    assert len(fake.sent) == 1


# ------------------------------------------------------------------ actions
def proposed(engine, world, action: Action, *, refund_allowed=True) -> int:
    pending_draft(engine, world, actions=[action], refund_allowed=refund_allowed)
    with session_scope(engine) as s:
        return s.scalar(select(m.ProposedAction.id).where(m.ProposedAction.type == action.type.value))


def test_money_action_needs_confirmation_and_cap(engine, world):
    aid = proposed(
        engine, world, Action(type=ActionType.refund_full, amount=Decimal("24.90"), currency="USD")
    )
    with pytest.raises(d.DraftError, match="confirm"):
        with session_scope(engine) as s:
            d.approve_action(s, aid, actor="u", reviewer_id=None, money_cap=Decimal(100), now=T0)
    with pytest.raises(d.DraftError, match="cap"):
        with session_scope(engine) as s:
            d.approve_action(s, aid, actor="u", reviewer_id=None, money_cap=Decimal(20), now=T0, confirm=True)
    with session_scope(engine) as s:
        d.approve_action(s, aid, actor="u", reviewer_id=None, money_cap=Decimal(100), now=T0, confirm=True)


def test_forbidden_refund_needs_audited_override(engine, world):
    aid = proposed(
        engine,
        world,
        Action(type=ActionType.refund_partial, amount=Decimal("5"), currency="USD"),
        refund_allowed=False,
    )
    with pytest.raises(d.DraftError, match="override"):
        with session_scope(engine) as s:
            d.approve_action(
                s, aid, actor="u", reviewer_id=None, money_cap=Decimal(100), now=T0, confirm=True
            )
    with session_scope(engine) as s:
        d.approve_action(
            s,
            aid,
            actor="u",
            reviewer_id=None,
            money_cap=Decimal(100),
            now=T0,
            confirm=True,
            override_reason="buyer sent proof of loss",
        )
    with session_scope(engine) as s:
        entry = s.scalar(select(m.AuditLog).where(m.AuditLog.action == "action.approve"))
        assert entry.details_json["override_reason"] == "buyer sent proof of loss"


def test_refund_executes_once_and_updates_refunded_total(engine, world):
    fake = FakeConnector(world["account"])
    aid = proposed(
        engine, world, Action(type=ActionType.refund_full, amount=Decimal("24.90"), currency="USD")
    )
    with session_scope(engine) as s:
        d.approve_action(s, aid, actor="u", reviewer_id=None, money_cap=Decimal(100), now=T0, confirm=True)
    assert acts.execute(aid, lambda _: fake, engine=engine, clock=Clock()) == "done"
    assert acts.execute(aid, lambda _: fake, engine=engine, clock=Clock()) == "not-claimed"
    assert len(fake.actions) == 1
    with session_scope(engine) as s:
        assert s.get(m.Order, world["order"]).refunded_total == Decimal("24.90")


def test_refund_over_remaining_fails_at_execution(engine, world):
    fake = FakeConnector(world["account"])
    aid = proposed(
        engine, world, Action(type=ActionType.refund_partial, amount=Decimal("10"), currency="USD")
    )
    with session_scope(engine) as s:
        d.approve_action(s, aid, actor="u", reviewer_id=None, money_cap=Decimal(100), now=T0, confirm=True)
        s.get(m.Order, world["order"]).refunded_total = Decimal("20")  # refunded elsewhere meanwhile
    assert acts.execute(aid, lambda _: fake, engine=engine, clock=Clock()) == "failed"
    assert fake.actions == []


def test_action_unknown_outcome_is_reconciled_once(engine, world):
    fake = FakeConnector(world["account"])
    fake.fail_next = ["timeout_after_send"]
    aid = proposed(
        engine, world, Action(type=ActionType.refund_full, amount=Decimal("24.90"), currency="USD")
    )
    with session_scope(engine) as s:
        d.approve_action(s, aid, actor="u", reviewer_id=None, money_cap=Decimal(100), now=T0, confirm=True)
    clock = Clock()
    assert acts.execute(aid, lambda _: fake, engine=engine, clock=clock) == "uncertain"
    assert acts.execute(aid, lambda _: fake, engine=engine, clock=clock) == "not-claimed"
    clock.advance(minutes=1)
    assert dispatch.stale_actions(engine, clock(), ob.SENDING_LEASE, ob.RECONCILE_DELAY, timedelta(0)) == [
        aid
    ]
    assert acts.reconcile(aid, lambda _: fake, engine=engine, clock=clock) == "reconciled-done"
    assert len(fake.actions) == 1
    with session_scope(engine) as s:
        assert s.get(m.Order, world["order"]).refunded_total == Decimal("24.90")


# ------------------------------------------------------------------ one reply per text and conversation
def second_message(engine, world, body="where is it, again?") -> int:
    with session_scope(engine) as s:
        msg = m.Message(
            conversation_id=world["conv"], external_id="b2", direction="buyer", body=body, sent_at=T0
        )
        s.add(msg)
        s.flush()
        return msg.id


def test_newer_identical_reply_supersedes_the_unsent_one(engine, world):
    first = pending_draft(engine, world, actions=[Action(type=ActionType.resend)])
    mid = second_message(engine, world)
    with session_scope(engine) as s:
        d.record_decision(
            s,
            d.Source(
                account_id=world["account"],
                order_id=world["order"],
                message_id=mid,
                conversation_id=world["conv"],
            ),
            decision(actions=[Action(type=ActionType.resend)]),
            now=T0,
            undo_window=UNDO,
        )
    with session_scope(engine) as s:
        old = s.get(m.Draft, first)
        assert old.state == "cancelled" and "superseded" in old.reject_reason
        states = sorted(a.state for a in s.scalars(select(m.ProposedAction)))
        assert states == ["proposed", "rejected"]  # one resend proposal left, not two


def test_superseding_cancels_an_auto_reply_still_in_its_undo_window(engine, world):
    with session_scope(engine) as s:
        d.record_decision(s, src(world), decision(auto=True), now=T0, undo_window=UNDO)
    mid = second_message(engine, world)
    with session_scope(engine) as s:
        d.record_decision(
            s,
            d.Source(
                account_id=world["account"],
                order_id=world["order"],
                message_id=mid,
                conversation_id=world["conv"],
            ),
            decision(auto=True),
            now=T0 + timedelta(seconds=10),
            undo_window=UNDO,
        )
    with session_scope(engine) as s:
        states = sorted(o.state for o in s.scalars(select(m.Outbox)))
        assert states == ["cancelled", "pending"]


def test_identical_text_already_sent_goes_to_a_human(engine, world):
    fake = FakeConnector(world["account"])
    with session_scope(engine) as s:
        d.record_decision(s, src(world), decision(auto=True), now=T0, undo_window=UNDO)
    oid = count(engine, m.Outbox)
    assert ob.deliver(oid, lambda _: fake, engine=engine, clock=Clock(T0 + UNDO)) == "sent"
    mid = second_message(engine, world)
    with session_scope(engine) as s:
        row = d.record_decision(
            s,
            d.Source(
                account_id=world["account"],
                order_id=world["order"],
                message_id=mid,
                conversation_id=world["conv"],
            ),
            decision(auto=True),
            now=T0 + timedelta(hours=1),
            undo_window=UNDO,
        )
        assert row.auto_send is False and "a human decides" in row.reasons_json[-1]
        assert s.scalar(select(m.Draft.state).where(m.Draft.decision_id == row.id)) == "pending"


def test_reconcile_never_takes_another_sends_message(engine, world):
    """Two identical texts in one conversation: the second send's reconcile must not match the first."""
    fake = FakeConnector(world["account"])
    first = approved_row(engine, world)
    assert ob.deliver(first, lambda _: fake, engine=engine, clock=Clock()) == "sent"
    mid = second_message(engine, world)
    with session_scope(engine) as s:
        # A human approves the same text again on purpose (a decision the supersede rule leaves to them).
        row = d.record_decision(
            s,
            d.Source(
                account_id=world["account"],
                order_id=world["order"],
                message_id=mid,
                conversation_id=world["conv"],
            ),
            decision(),
            now=T0,
            undo_window=UNDO,
        )
        draft_id = s.scalar(select(m.Draft.id).where(m.Draft.decision_id == row.id))
    with session_scope(engine) as s:
        second = d.approve_draft(s, draft_id, actor="u", reviewer_id=None, now=T0).id
    clock = Clock()
    ob.claim(engine, second, clock())  # the worker dies before calling the marketplace
    clock.advance(minutes=3)
    assert ob.reconcile(second, lambda _: fake, engine=engine, clock=clock) == "reconciled-pending"
    assert ob.deliver(second, lambda _: fake, engine=engine, clock=clock) == "sent"
    assert len(fake.sent) == 2


# ------------------------------------------------------------------ fencing: a slow worker never writes late
class SlowBeforeWrite(FakeConnector):
    """Spends a long time on reads before its write, like a send whose lookups hit bans and retries."""

    def __init__(self, account_id, on_read):
        super().__init__(account_id)
        self.on_read = on_read

    def send_message(self, conversation_external_id, body, *, order_external_id):
        self.on_read()  # meanwhile the lease expires and a reconciler takes the row over
        return super().send_message(conversation_external_id, body, order_external_id=order_external_id)

    def perform_action(self, request):
        self.on_read()
        return super().perform_action(request)


def test_a_send_whose_claim_was_taken_over_writes_nothing(engine, world):
    fake = FakeConnector(world["account"])
    oid = approved_row(engine, world)
    clock = Clock()

    def lease_expires_and_reconciler_runs():
        clock.advance(minutes=3)
        assert ob.reconcile(oid, lambda _: fake, engine=engine, clock=clock) == "reconciled-pending"

    slow = SlowBeforeWrite(world["account"], lease_expires_and_reconciler_runs)
    slow.sent = fake.sent  # one marketplace
    assert ob.deliver(oid, lambda _: slow, engine=engine, clock=clock) == "lease-lost"
    assert fake.sent == []
    assert ob.deliver(oid, lambda _: fake, engine=engine, clock=clock) == "sent"
    assert len(fake.sent) == 1


def test_an_action_whose_claim_was_taken_over_is_not_executed(engine, world):
    fake = FakeConnector(world["account"])
    aid = proposed(
        engine, world, Action(type=ActionType.refund_full, amount=Decimal("24.90"), currency="USD")
    )
    with session_scope(engine) as s:
        d.approve_action(s, aid, actor="u", reviewer_id=None, money_cap=Decimal(100), now=T0, confirm=True)
    clock = Clock()

    def lease_expires_and_reconciler_runs():
        clock.advance(minutes=3)
        assert acts.reconcile(aid, lambda _: fake, engine=engine, clock=clock) == "reconciled-approved"

    slow = SlowBeforeWrite(world["account"], lease_expires_and_reconciler_runs)
    slow.actions = fake.actions
    assert acts.execute(aid, lambda _: slow, engine=engine, clock=clock) == "lease-lost"
    assert fake.actions == []
    assert acts.execute(aid, lambda _: fake, engine=engine, clock=clock) == "done"
    assert len(fake.actions) == 1


# ------------------------------------------------------------------ one money movement per order
def test_a_second_decision_on_the_same_order_does_not_propose_the_refund_again(engine, world):
    refund = Action(type=ActionType.refund_full, amount=Decimal("24.90"), currency="USD")
    pending_draft(engine, world, actions=[refund], refund_allowed=True)
    mid = second_message(engine, world, body="I want my money back NOW")
    other = decision(actions=[refund], refund_allowed=True).model_copy(update={"reply": "A different reply."})
    with session_scope(engine) as s:
        row = d.record_decision(
            s,
            d.Source(
                account_id=world["account"],
                order_id=world["order"],
                message_id=mid,
                conversation_id=world["conv"],
            ),
            other,
            now=T0,
            undo_window=UNDO,
        )
        assert "refund_full already proposed" in row.reasons_json[-1]
        assert s.scalar(select(func.count()).select_from(m.ProposedAction)) == 1


def test_a_refund_waits_while_another_refund_of_the_order_is_in_flight(engine, world):
    fake = FakeConnector(world["account"])
    first = proposed(
        engine, world, Action(type=ActionType.refund_partial, amount=Decimal("5"), currency="USD")
    )
    with session_scope(engine) as s:
        # A second refund on the same order, approved by a human through another decision.
        other = m.ProposedAction(
            decision_id=s.scalar(select(m.Decision.id)),
            order_id=world["order"],
            account_id=world["account"],
            type="refund_partial",
            amount=Decimal("5"),
            currency="USD",
            state="approved",
            idempotency_key="manual:2",
        )
        s.add(other)
        s.flush()
        second = other.id
        d.approve_action(s, first, actor="u", reviewer_id=None, money_cap=Decimal(100), now=T0, confirm=True)
    clock = Clock()
    fake.fail_next = ["timeout_after_send"]
    assert acts.execute(first, lambda _: fake, engine=engine, clock=clock) == "uncertain"
    assert acts.execute(second, lambda _: fake, engine=engine, clock=clock) == "busy"
    clock.advance(minutes=1)
    assert acts.reconcile(first, lambda _: fake, engine=engine, clock=clock) == "reconciled-done"
    assert acts.execute(second, lambda _: fake, engine=engine, clock=clock) == "done"
    with session_scope(engine) as s:
        assert s.get(m.Order, world["order"]).refunded_total == Decimal("10")


class CannotConfirmExtensions(FakeConnector):
    unconfirmable_actions = frozenset({"extend_protection"})

    def find_action(self, request):
        return None if request.type == "extend_protection" else super().find_action(request)


def test_an_unconfirmable_action_with_an_unknown_outcome_goes_to_a_human(engine, world):
    fake = CannotConfirmExtensions(world["account"])
    fake.fail_next = ["timeout_after_send"]
    aid = proposed(engine, world, Action(type=ActionType.extend_protection, days=30))
    with session_scope(engine) as s:
        d.approve_action(s, aid, actor="u", reviewer_id=None, money_cap=None, now=T0)
    clock = Clock()
    assert acts.execute(aid, lambda _: fake, engine=engine, clock=clock) == "uncertain"
    clock.advance(minutes=1)
    assert acts.reconcile(aid, lambda _: fake, engine=engine, clock=clock) == "needs-human"
    assert acts.execute(aid, lambda _: fake, engine=engine, clock=clock) == "not-claimed"
    assert len(fake.actions) == 1  # never a second extension
    with session_scope(engine) as s:
        assert s.get(m.ProposedAction, aid).state == "failed"
        assert s.scalar(select(m.Quarantine.reason).where(m.Quarantine.kind == "action")).startswith(
            "extend_protection: outcome unknown"
        )
