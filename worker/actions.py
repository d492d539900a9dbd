"""Executing approved actions (protection extensions, refunds, resends, coupons) exactly once.

Same discipline as the outbox: claim `approved -> executing` with rowcount 1, call the marketplace
outside a transaction, mark `done`. An unknown outcome is `uncertain` and is reconciled through
`Connector.find_action` before anything is tried again: a refund is never executed twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from connectors.base import ActionRequest, ConnectorError, ErrorKind, LeaseLost, fenced
from worker import models as m
from worker.db import session_scope, utcnow
from worker.drafts import audit
from worker.outbox import RECONCILE_DELAY, SENDING_LEASE, ConnectorFor, pause_account, still_ours
from worker.triage.types import REFUND_ACTIONS, ActionType

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5


def _request(s, action: m.ProposedAction) -> ActionRequest:
    order = s.get(m.Order, action.order_id)
    dispute_ext = None
    decision = s.get(m.Decision, action.decision_id)
    if decision is not None and decision.dispute_id is not None:
        dispute = s.get(m.Dispute, decision.dispute_id)
        dispute_ext = dispute.external_id if dispute else None
    if dispute_ext is None:
        dispute_ext = s.scalar(
            select(m.Dispute.external_id)
            .where(m.Dispute.order_id == action.order_id, m.Dispute.closed_at.is_(None))
            .order_by(m.Dispute.id.desc())
            .limit(1)
        )
    return ActionRequest(
        type=action.type,
        order_external_id=order.external_id,
        idempotency_key=action.idempotency_key,
        amount=action.amount,
        currency=action.currency or order.currency,
        days=action.days,
        dispute_external_id=dispute_ext,
        note=action.note,
    )


def _check_refund(s, action: m.ProposedAction) -> str | None:
    """Guard 7 at execution time: the order may have been refunded since the approval."""
    if ActionType(action.type) not in REFUND_ACTIONS:
        return None
    order = s.get(m.Order, action.order_id)
    remaining = order.total - order.refunded_total
    if (action.amount or Decimal("0")) > remaining:
        return f"refund {action.amount} exceeds what remains of the payment ({remaining})"
    return None


def _finish(
    engine: Engine | None,
    action_id: int,
    state: str,
    now: datetime,
    *,
    error: str | None = None,
    external_ref: str | None = None,
) -> None:
    with session_scope(engine) as s:
        values = {"state": state, "updated_at": now, "last_error": error[:2000] if error else None}
        if state == m.ActionState.done:
            values.update(executed_at=now, external_ref=external_ref)
        res = s.execute(
            update(m.ProposedAction)
            .where(m.ProposedAction.id == action_id, m.ProposedAction.state == m.ActionState.executing)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if res.rowcount != 1 or state != m.ActionState.done:
            return
        action = s.get(m.ProposedAction, action_id)
        if ActionType(action.type) in REFUND_ACTIONS and action.amount:
            # In the same transaction as `done`, so the next decision sees what is left to refund.
            s.execute(
                update(m.Order)
                .where(m.Order.id == action.order_id)
                .values(refunded_total=m.Order.refunded_total + action.amount)
            )
        audit(
            s, "system", "action.executed", "action", action_id, type=action.type, external_ref=external_ref
        )


def execute(
    action_id: int,
    connector_for: ConnectorFor,
    *,
    engine: Engine | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> str:
    """Execute one approved action if it is ours to execute; returns what happened."""
    now = clock()
    with session_scope(engine) as s:
        order_id = s.scalar(select(m.ProposedAction.order_id).where(m.ProposedAction.id == action_id))
        if order_id is None:
            return "missing"
        # One money movement per order at a time: lock the order, then look for another in flight. Two
        # refunds claimed at once could otherwise both pass the "what remains" check below.
        s.execute(select(m.Order.id).where(m.Order.id == order_id).with_for_update())
        busy = s.scalar(
            select(m.ProposedAction.id)
            .where(
                m.ProposedAction.order_id == order_id,
                m.ProposedAction.id != action_id,
                m.ProposedAction.type.in_([t.value for t in REFUND_ACTIONS]),
                m.ProposedAction.state.in_([m.ActionState.executing, m.ActionState.uncertain]),
            )
            .limit(1)
        )
        if busy is not None:
            return "busy"
        res = s.execute(
            update(m.ProposedAction)
            .where(m.ProposedAction.id == action_id, m.ProposedAction.state == m.ActionState.approved)
            .values(state=m.ActionState.executing, attempts=m.ProposedAction.attempts + 1, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if res.rowcount != 1:
            return "not-claimed"
        action = s.get(m.ProposedAction, action_id, populate_existing=True)
        problem = _check_refund(s, action)
        request = _request(s, action)
        attempts = action.attempts
        account_id = action.account_id
        claimed_at = action.updated_at
    if problem:
        _finish(engine, action_id, m.ActionState.failed, clock(), error=problem)
        return "failed"
    try:
        fence = still_ours(
            engine,
            m.ProposedAction,
            action_id,
            m.ActionState.executing,
            m.ProposedAction.updated_at,
            claimed_at,
            clock,
        )
        with fenced(fence):
            result = connector_for(account_id).perform_action(request)
    except LeaseLost:
        log.warning("action %s: claim lost before the write; nothing done", action_id)
        return "lease-lost"
    except ConnectorError as exc:
        now = clock()
        if exc.kind is ErrorKind.ACCOUNT:
            pause_account(engine, account_id, str(exc), now)
            _finish(engine, action_id, m.ActionState.approved, now, error=str(exc))
            return "account-paused"
        if exc.maybe_sent:
            _finish(engine, action_id, m.ActionState.uncertain, now, error=str(exc))
            return "uncertain"
        if exc.kind is ErrorKind.RETRYABLE and attempts < MAX_ATTEMPTS:
            _finish(engine, action_id, m.ActionState.approved, now, error=str(exc))
            return "retry"
        _finish(engine, action_id, m.ActionState.failed, now, error=str(exc))
        return "failed"
    except Exception as exc:  # noqa: BLE001 - unknown outcome: reconcile, never repeat blindly
        log.exception("action %s: unexpected failure", action_id)
        _finish(
            engine,
            action_id,
            m.ActionState.uncertain,
            clock(),
            error=f"unexpected: {type(exc).__name__}: {exc}",
        )
        return "uncertain"
    _finish(engine, action_id, m.ActionState.done, clock(), external_ref=result.external_ref)
    return "done"


def reconcile(
    action_id: int,
    connector_for: ConnectorFor,
    *,
    engine: Engine | None = None,
    clock: Callable[[], datetime] = utcnow,
    lease: timedelta = SENDING_LEASE,
    reconcile_delay: timedelta = RECONCILE_DELAY,
) -> str:
    """Settle an action whose outcome is unknown: done if the marketplace shows it, else approved again."""
    now = clock()
    with session_scope(engine) as s:
        action = s.get(m.ProposedAction, action_id)
        if action is None:
            return "missing"
        stale = (action.state == m.ActionState.uncertain and action.updated_at <= now - reconcile_delay) or (
            action.state == m.ActionState.executing and action.updated_at < now - lease
        )
        if not stale:
            return "not-stale"
        res = s.execute(
            update(m.ProposedAction)
            .where(
                m.ProposedAction.id == action_id,
                m.ProposedAction.state == action.state,
                m.ProposedAction.updated_at == action.updated_at,
            )
            .values(state=m.ActionState.executing, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if res.rowcount != 1:
            return "not-claimed"
        request = _request(s, action)
        account_id = action.account_id
    connector = connector_for(account_id)
    try:
        found = connector.find_action(request)
    except ConnectorError as exc:
        _finish(engine, action_id, m.ActionState.uncertain, clock(), error=f"reconcile: {exc}")
        return "still-uncertain"
    if found is not None:
        _finish(engine, action_id, m.ActionState.done, clock(), external_ref=found.external_ref)
        return "reconciled-done"
    if request.type in connector.unconfirmable_actions:
        # "Not found" means nothing here: doing it again could do it twice. A person checks instead.
        reason = (
            f"{request.type}: outcome unknown and {connector.marketplace} cannot confirm it; check it by hand"
        )
        _finish(engine, action_id, m.ActionState.failed, clock(), error=reason)
        with session_scope(engine) as s:
            s.add(m.Quarantine(kind="action", object_id=str(action_id), reason=reason, attempts=1))
        return "needs-human"
    _finish(
        engine, action_id, m.ActionState.approved, clock(), error="reconciled: not found on the marketplace"
    )
    return "reconciled-approved"
