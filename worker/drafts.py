"""Drafts: a decision becomes a reply waiting for a human, or an automatic reply in its undo window.

Every state change is a conditional UPDATE checked for rowcount 1, so two agents (or an agent and
the sender) can never both act on the same draft. Approving writes the outbox row in the same
transaction; the sender (`worker/outbox.py`) is the only thing that talks to the marketplace.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from worker import models as m
from worker.triage.types import MONEY_ACTIONS, REFUND_ACTIONS, ActionType
from worker.triage.types import Decision as TriageDecision

# Actions that change something on the marketplace or in the warehouse get a row of their own and
# an approval; request_photo, request_address_confirmation and escalate are what the reply says.
EXECUTABLE = frozenset(
    {
        ActionType.extend_protection,
        ActionType.refund_full,
        ActionType.refund_partial,
        ActionType.resend,
        ActionType.coupon,
    }
)
OPEN_DRAFT_STATES = (m.DraftState.pending, m.DraftState.snoozed)


class DraftError(Exception):
    """A draft operation that cannot happen (wrong state, unknown id); the message says why."""


@dataclass(frozen=True)
class Source:
    """Where a decision came from, in database ids."""

    account_id: int
    order_id: int
    message_id: int | None = None
    dispute_id: int | None = None
    conversation_id: int | None = None


def audit(s: Session, actor: str, action: str, object_type: str, object_id: Any, **details: Any) -> None:
    """Append one line to the audit log in the caller's transaction."""
    s.add(
        m.AuditLog(
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            details_json=details,
        )
    )


def _jsonable_actions(decision: TriageDecision) -> list[dict[str, Any]]:
    return [a.to_json() for a in decision.actions]


def record_decision(
    s: Session,
    src: Source,
    decision: TriageDecision,
    *,
    now: datetime,
    undo_window: timedelta,
    with_drafts: set[int] | None = None,
) -> m.Decision:
    """Store a triage decision with its draft, actions and (for automatic replies) outbox row.

    Idempotent: a second call for the same source returns the stored decision and writes nothing.
    `with_drafts` (a triage batch's): the conversations that may hold an unsent draft; kept up to date.
    """
    key = m.Decision.source_key_for(src.message_id, src.dispute_id)
    row = _insert_decision(
        s,
        source_key=key,
        account_id=src.account_id,
        order_id=src.order_id,
        message_id=src.message_id,
        dispute_id=src.dispute_id,
        intent=decision.intent.value,
        language=decision.language,
        confidence=decision.confidence,
        scenario=decision.scenario,
        refund_allowed=decision.refund_allowed,
        auto_send=decision.auto_send,
        template=decision.template,
        reply_language=decision.reply_language,
        reasons_json=list(decision.reasons),
        actions_json=_jsonable_actions(decision),
        deadline=decision.deadline,
        days_left=decision.days_left,
        created_at=now,
    )
    if row is None:
        # This source was decided before (a retried task) or by another worker just now: keep that one.
        existing = s.scalar(select(m.Decision).where(m.Decision.source_key == key))
        if existing is None:
            raise IntegrityError(f"decision {key}", None, Exception("conflicts with another decision"))
        return existing
    if decision.reply_suppressed:
        return row

    auto = decision.auto_send
    if src.conversation_id is not None:
        if with_drafts is None or src.conversation_id in with_drafts:
            _supersede_identical(s, src.conversation_id, decision.reply, row.id, now)
        if auto and _sent_recently(s, src.conversation_id, decision.reply, now):
            # The buyer already got this exact text: sending it again automatically reads like a bot.
            auto = False
            row.auto_send = False
            row.reasons_json = [
                *row.reasons_json,
                "same reply already sent to this conversation: a human decides",
            ]
    draft = m.Draft(
        decision_id=row.id,
        account_id=src.account_id,
        conversation_id=src.conversation_id,
        state=m.DraftState.approved if auto else m.DraftState.pending,
        original_text=decision.reply,
        template=decision.template,
        language=decision.reply_language,
        auto=auto,
        send_after=now + undo_window if auto else None,
        created_at=now,
        updated_at=now,
    )
    s.add(draft)
    if auto:
        s.flush()  # the outbox row's key needs the draft's id; otherwise the draft goes with the next flush
    if with_drafts is not None and src.conversation_id is not None:
        with_drafts.add(src.conversation_id)
    executable = [(i, a) for i, a in enumerate(decision.actions) if a.type in EXECUTABLE]
    # Only a decision with something to execute needs to know what the order already has.
    already = _open_action_types(s, src.order_id) if executable else set()
    for i, a in executable:
        if a.type.value in already:
            # One refund, resend or extension per order: a second decision about the same order (the buyer
            # wrote again, a dispute opened) must not queue the same money twice.
            row.reasons_json = [
                *row.reasons_json,
                f"{a.type.value} already proposed for this order: not again",
            ]
            continue
        s.add(
            m.ProposedAction(
                decision_id=row.id,
                order_id=src.order_id,
                account_id=src.account_id,
                type=a.type.value,
                amount=a.amount,
                currency=a.currency,
                days=a.days,
                note=a.note,
                # Automatic decisions carry no money action (guard 3); what they carry is approved with them.
                state=m.ActionState.approved if auto else m.ActionState.proposed,
                approved_at=now if auto else None,
                idempotency_key=f"action:{row.id}:{i}:{a.type.value}",
                created_at=now,
                updated_at=now,
            )
        )
    if auto:
        _enqueue_send(
            s,
            draft,
            body=decision.reply,
            not_before=draft.send_after or now,
            now=now,
            new_draft=True,
            order_id=src.order_id,
        )
        if src.conversation_id is not None:
            # Reserve the conversation's automatic-reply slot now, so a second message in the period
            # cannot also be answered automatically (guard 5).
            _reserve_auto_reply(s, src.conversation_id, now)
    return row


# INSERT .. ON CONFLICT DO NOTHING RETURNING the row, built once (per-call construction costs more than
# the statement itself).
_INSERT_DECISION = {
    "sqlite": sqlite_insert(m.Decision).on_conflict_do_nothing().returning(m.Decision),
    "postgresql": pg_insert(m.Decision).on_conflict_do_nothing().returning(m.Decision),
}


def _insert_decision(s: Session, **values: Any) -> m.Decision | None:
    """INSERT the decision unless its source already has one (then None): one statement, no savepoint."""
    stmt = _INSERT_DECISION[s.get_bind().dialect.name]
    # populate_existing: SQLite reuses the id of a row whose savepoint was rolled back, and the session
    # would otherwise hand back that stale object from its identity map.
    return s.scalars(stmt, values, execution_options={"populate_existing": True}).one_or_none()


def _reserve_auto_reply(s: Session, conversation_id: int, now: datetime) -> None:
    conv = s.identity_map.get(m.Conversation.__mapper__.identity_key_from_primary_key((conversation_id,)))
    if conv is not None:
        # Loaded already (a triage batch): set it on the row, flushed in one UPDATE with the complaint flag.
        conv.last_auto_reply_at = now
        return
    s.execute(
        update(m.Conversation).where(m.Conversation.id == conversation_id).values(last_auto_reply_at=now)
    )


# An identical text sent to the same conversation within this window is not sent again automatically.
REPEAT_WINDOW = timedelta(hours=24)


def _supersede_identical(
    s: Session, conversation_id: int, text: str, decision_id: int, now: datetime
) -> None:
    """Cancel unsent drafts in this conversation with the same text: the buyer gets it once, not twice."""
    older = s.scalars(
        select(m.Draft).where(
            m.Draft.conversation_id == conversation_id,
            m.Draft.state.in_([m.DraftState.pending, m.DraftState.snoozed, m.DraftState.approved]),
            m.Draft.original_text == text,
        )
    )
    for draft in list(older):
        if draft.state == m.DraftState.approved:
            res = s.execute(
                update(m.Outbox)
                .where(m.Outbox.draft_id == draft.id, m.Outbox.state == m.OutboxState.pending)
                .values(state=m.OutboxState.cancelled, last_error="superseded", updated_at=now)
                .execution_options(synchronize_session=False)
            )
            if res.rowcount != 1:
                continue  # already being sent: it stands, and the new draft follows it
        draft.state = m.DraftState.cancelled
        draft.reject_reason = f"superseded by the reply to a newer message (decision {decision_id})"
        draft.updated_at = now
        s.execute(
            update(m.ProposedAction)
            .where(
                m.ProposedAction.decision_id == draft.decision_id,
                m.ProposedAction.state == m.ActionState.proposed,
            )
            .values(state=m.ActionState.rejected, last_error="superseded", updated_at=now)
        )
        audit(s, "system", "draft.supersede", "draft", draft.id, by_decision=decision_id)


def _sent_recently(s: Session, conversation_id: int, text: str, now: datetime) -> bool:
    return (
        s.scalar(
            select(m.Outbox.id)
            .where(
                m.Outbox.conversation_id == conversation_id,
                m.Outbox.body == text,
                m.Outbox.state.in_([m.OutboxState.sent, m.OutboxState.sending, m.OutboxState.uncertain]),
                m.Outbox.created_at >= now - REPEAT_WINDOW,
            )
            .limit(1)
        )
        is not None
    )


# Action states that count as "this order already has one": everything but rejected and failed.
LIVE_ACTION_STATES = (
    m.ActionState.proposed,
    m.ActionState.approved,
    m.ActionState.executing,
    m.ActionState.done,
    m.ActionState.uncertain,
)


def _open_action_types(s: Session, order_id: int) -> set[str]:
    return set(
        s.scalars(
            select(m.ProposedAction.type).where(
                m.ProposedAction.order_id == order_id, m.ProposedAction.state.in_(LIVE_ACTION_STATES)
            )
        )
    )


def _enqueue_send(
    s: Session,
    draft: m.Draft,
    *,
    body: str,
    not_before: datetime,
    now: datetime,
    new_draft: bool = False,
    order_id: int | None = None,
) -> m.Outbox:
    """Queue the draft's reply (flushed, unless `new_draft`: created in this transaction, no sends yet)."""
    if new_draft:
        seq = 0
    else:
        seq = s.scalar(select(func.count()).select_from(m.Outbox).where(m.Outbox.draft_id == draft.id)) or 0
        decision = s.get(m.Decision, draft.decision_id)
        order_id = decision.order_id if decision else None
    row = m.Outbox(
        account_id=draft.account_id,
        draft_id=draft.id,
        conversation_id=draft.conversation_id,
        order_id=order_id,
        # One key per approval of the draft: an undone approval's row stays cancelled under its own key.
        idempotency_key=f"draft:{draft.id}:{seq + 1}",
        kind=m.OutboxKind.reply,
        body=body,
        state=m.OutboxState.pending,
        not_before=not_before,
        created_at=now,
        updated_at=now,
    )
    s.add(row)
    if not new_draft:
        s.flush()
    return row


def _transition(s: Session, draft_id: int, from_states: tuple[str, ...], **values: Any) -> m.Draft:
    res = s.execute(
        update(m.Draft)
        .where(m.Draft.id == draft_id, m.Draft.state.in_([str(x) for x in from_states]))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    draft = s.get(m.Draft, draft_id, populate_existing=True)
    if draft is None:
        raise DraftError(f"draft {draft_id} does not exist")
    if res.rowcount != 1:
        raise DraftError(f"draft {draft_id} is {draft.state}, not {' or '.join(str(x) for x in from_states)}")
    return draft


def approve_draft(
    s: Session,
    draft_id: int,
    *,
    actor: str,
    reviewer_id: int | None,
    now: datetime,
    edited_text: str | None = None,
    delay: timedelta = timedelta(0),
) -> m.Outbox:
    """Approve a pending draft (optionally edited) and enqueue its send, in the caller's transaction."""
    if edited_text is not None and not edited_text.strip():
        raise DraftError("the edited reply is empty")
    draft = _transition(
        s,
        draft_id,
        OPEN_DRAFT_STATES,
        state=m.DraftState.approved,
        reviewer_id=reviewer_id,
        reviewed_at=now,
        edited_text=edited_text,
        snoozed_until=None,
        updated_at=now,
    )
    body = edited_text if edited_text is not None else draft.original_text
    out = _enqueue_send(s, draft, body=body, not_before=now + delay, now=now)
    # Non-money actions (protection extensions) go with the reply; money actions need their own approval.
    s.execute(
        update(m.ProposedAction)
        .where(
            m.ProposedAction.decision_id == draft.decision_id,
            m.ProposedAction.state == m.ActionState.proposed,
            m.ProposedAction.type.not_in([t.value for t in MONEY_ACTIONS]),
        )
        .values(state=m.ActionState.approved, approved_by=reviewer_id, approved_at=now, updated_at=now)
    )
    audit(s, actor, "draft.approve", "draft", draft_id, edited=edited_text is not None, outbox_id=out.id)
    return out


def reject_draft(
    s: Session, draft_id: int, *, actor: str, reviewer_id: int | None, reason: str, now: datetime
) -> m.Draft:
    """Reject a pending draft with a reason; its proposed actions are rejected with it."""
    if not reason.strip():
        raise DraftError("a rejection needs a reason")
    draft = _transition(
        s,
        draft_id,
        OPEN_DRAFT_STATES,
        state=m.DraftState.rejected,
        reviewer_id=reviewer_id,
        reviewed_at=now,
        reject_reason=reason,
        updated_at=now,
    )
    s.execute(
        update(m.ProposedAction)
        .where(
            m.ProposedAction.decision_id == draft.decision_id,
            m.ProposedAction.state == m.ActionState.proposed,
        )
        .values(state=m.ActionState.rejected, updated_at=now)
    )
    audit(s, actor, "draft.reject", "draft", draft_id, reason=reason)
    return draft


def snooze_draft(s: Session, draft_id: int, *, actor: str, until: datetime, now: datetime) -> m.Draft:
    """Hide a pending draft from the queue until `until`."""
    if until <= now:
        raise DraftError("snooze until a time in the future")
    draft = _transition(
        s, draft_id, OPEN_DRAFT_STATES, state=m.DraftState.snoozed, snoozed_until=until, updated_at=now
    )
    audit(s, actor, "draft.snooze", "draft", draft_id, until=until.isoformat())
    return draft


def wake_snoozed(s: Session, now: datetime) -> int:
    """Return snoozed drafts whose time has come to the queue."""
    res = s.execute(
        update(m.Draft)
        .where(m.Draft.state == m.DraftState.snoozed, m.Draft.snoozed_until <= now)
        .values(state=m.DraftState.pending, snoozed_until=None, updated_at=now)
    )
    return res.rowcount or 0


def undo_send(s: Session, draft_id: int, *, actor: str, now: datetime) -> m.Draft:
    """Cancel an approved reply that has not been claimed by the sender yet; the draft is pending again."""
    res = s.execute(
        update(m.Outbox)
        .where(m.Outbox.draft_id == draft_id, m.Outbox.state == m.OutboxState.pending)
        .values(state=m.OutboxState.cancelled, updated_at=now, last_error="undone")
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:
        raise DraftError(f"draft {draft_id}: too late to undo, the reply is being sent or was sent")
    draft = _transition(
        s,
        draft_id,
        (m.DraftState.approved,),
        state=m.DraftState.pending,
        auto=False,
        send_after=None,
        updated_at=now,
    )
    s.execute(
        update(m.ProposedAction)
        .where(
            m.ProposedAction.decision_id == draft.decision_id,
            m.ProposedAction.state == m.ActionState.approved,
        )
        .values(state=m.ActionState.proposed, approved_by=None, approved_at=None, updated_at=now)
    )
    audit(s, actor, "draft.undo", "draft", draft_id)
    return draft


def approve_action(
    s: Session,
    action_id: int,
    *,
    actor: str,
    reviewer_id: int | None,
    money_cap: Decimal | None,
    now: datetime,
    confirm: bool = False,
    override_reason: str | None = None,
) -> m.ProposedAction:
    """Approve one proposed action: money needs `confirm`, a cap, and an audited override to pass a guard."""
    action = s.get(m.ProposedAction, action_id)
    if action is None:
        raise DraftError(f"action {action_id} does not exist")
    if action.state != m.ActionState.proposed:
        raise DraftError(f"action {action_id} is {action.state}, not proposed")
    atype = ActionType(action.type)
    order = s.get(m.Order, action.order_id)
    if atype in MONEY_ACTIONS:
        if not confirm:
            raise DraftError(f"{atype.value} moves money: confirm it explicitly")
        value = order.total if atype is ActionType.resend else (action.amount or Decimal("0"))
        if money_cap is None or value > money_cap:
            raise DraftError(
                f"{atype.value} of {value} {action.currency or order.currency} is above your approval cap"
            )
    if atype in REFUND_ACTIONS:
        decision = s.get(m.Decision, action.decision_id)
        remaining = order.total - order.refunded_total
        if (action.amount or Decimal("0")) > remaining:
            # Guard 7 holds for humans too: no override can refund more than was paid.
            raise DraftError(f"refund {action.amount} exceeds what remains of the payment ({remaining})")
        if decision is not None and not decision.refund_allowed and not (override_reason or "").strip():
            raise DraftError("the policy does not allow a refund here: give an override reason to proceed")
    res = s.execute(
        update(m.ProposedAction)
        .where(m.ProposedAction.id == action_id, m.ProposedAction.state == m.ActionState.proposed)
        .values(
            state=m.ActionState.approved,
            approved_by=reviewer_id,
            approved_at=now,
            override_reason=override_reason or None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:
        raise DraftError(f"action {action_id} was changed by someone else")
    audit(
        s,
        actor,
        "action.approve",
        "action",
        action_id,
        type=atype.value,
        amount=str(action.amount) if action.amount is not None else None,
        override_reason=override_reason,
    )
    return s.get(m.ProposedAction, action_id, populate_existing=True)


def reject_action(s: Session, action_id: int, *, actor: str, now: datetime, reason: str = "") -> None:
    """Reject one proposed action."""
    res = s.execute(
        update(m.ProposedAction)
        .where(m.ProposedAction.id == action_id, m.ProposedAction.state == m.ActionState.proposed)
        .values(state=m.ActionState.rejected, last_error=reason or None, updated_at=now)
    )
    if res.rowcount != 1:
        raise DraftError(f"action {action_id} is not proposed")
    audit(s, actor, "action.reject", "action", action_id, reason=reason)
