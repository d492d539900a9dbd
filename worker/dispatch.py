"""Finding due work in the database for the dispatcher, each row enqueued once per window.

The dispatcher (beat's `sellerdesk.dispatch`) is the safety net under every lost broker message.
Without a stamp it would enqueue every due row on every run, flooding the queues whenever sending
falls behind; with `dispatched_at` claimed in the same UPDATE it enqueues a row again only after
`redispatch_after`, long enough for the first task to have run.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Engine

from worker import models as m
from worker.db import session_scope


def claim(
    engine: Engine | None,
    model: Any,
    conditions: list[Any],
    now: datetime,
    redispatch_after: timedelta,
    *,
    order_by: Any,
    limit: int = 500,
) -> list[int]:
    """Stamp and return the ids of up to `limit` rows matching `conditions` not dispatched recently."""
    pick = (
        select(model.id)
        .where(*conditions, or_(model.dispatched_at.is_(None), model.dispatched_at < now - redispatch_after))
        .order_by(order_by)
        .limit(limit)
    )
    with session_scope(engine) as s:
        rows = s.execute(
            update(model)
            .where(model.id.in_(pick.scalar_subquery()))
            # Keep updated_at as it was (onupdate would bump it): staleness checks read it.
            .values(
                dispatched_at=now,
                **({"updated_at": model.updated_at} if hasattr(model, "updated_at") else {}),
            )
            .returning(model.id)
            .execution_options(synchronize_session=False)
        ).all()
    return sorted(r[0] for r in rows)


def due_sends(
    engine: Engine | None, now: datetime, redispatch_after: timedelta, limit: int = 500
) -> list[int]:
    """Pending outbox rows whose time has come (ix_outbox_state_not_before)."""
    return claim(
        engine,
        m.Outbox,
        [m.Outbox.state == m.OutboxState.pending, m.Outbox.not_before <= now],
        now,
        redispatch_after,
        order_by=m.Outbox.not_before,
        limit=limit,
    )


def stale_sends(
    engine: Engine | None, now: datetime, lease: timedelta, redispatch_after: timedelta, limit: int = 200
) -> list[int]:
    """Sends whose outcome is unknown: `uncertain` and due for a check, or `sending` past the lease."""
    return claim(
        engine,
        m.Outbox,
        [
            or_(
                (m.Outbox.state == m.OutboxState.uncertain) & (m.Outbox.not_before <= now),
                (m.Outbox.state == m.OutboxState.sending) & (m.Outbox.claimed_at < now - lease),
            )
        ],
        now,
        redispatch_after,
        order_by=m.Outbox.id,
        limit=limit,
    )


def due_actions(
    engine: Engine | None, now: datetime, redispatch_after: timedelta, limit: int = 200
) -> list[int]:
    """Approved actions waiting to be executed (ix_proposed_actions_state)."""
    return claim(
        engine,
        m.ProposedAction,
        [m.ProposedAction.state == m.ActionState.approved],
        now,
        redispatch_after,
        order_by=m.ProposedAction.created_at,
        limit=limit,
    )


def stale_actions(
    engine: Engine | None,
    now: datetime,
    lease: timedelta,
    reconcile_delay: timedelta,
    redispatch_after: timedelta,
    limit: int = 200,
) -> list[int]:
    """Actions whose outcome is unknown: `uncertain` after the delay, or `executing` past the lease."""
    return claim(
        engine,
        m.ProposedAction,
        [
            or_(
                (m.ProposedAction.state == m.ActionState.uncertain)
                & (m.ProposedAction.updated_at <= now - reconcile_delay),
                (m.ProposedAction.state == m.ActionState.executing)
                & (m.ProposedAction.updated_at < now - lease),
            )
        ],
        now,
        redispatch_after,
        order_by=m.ProposedAction.id,
        limit=limit,
    )


def stuck_triage(
    engine: Engine | None, model: Any, now: datetime, stuck_after: timedelta, limit: int = 1000
) -> list[int]:
    """Messages or disputes still new/processing long after their triage task was enqueued."""
    return claim(
        engine,
        model,
        [model.triage_state.in_([m.TriageState.new, m.TriageState.processing])],
        now,
        stuck_after,
        order_by=model.created_at,
        limit=limit,
    )
