"""The outbox: the only code that sends to a marketplace, exactly once.

A send is three short transactions around one network call:
1. claim: `UPDATE outbox SET state='sending' WHERE id=? AND state='pending' AND not_before<=now`,
   rowcount must be 1 (another worker, an undo, or a retry of this task lost the race otherwise);
2. the marketplace call, outside any transaction;
3. mark `sent` with the marketplace's message id (and the draft, and our own copy of the message).
A crash between 2 and 3 leaves the row `sending`; a call whose outcome is unknown marks it
`uncertain`. Neither is ever retried blindly: `reconcile` first asks the marketplace whether the
message is there, and only sends again when it is not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from connectors.base import Connector, ConnectorError, ErrorKind, LeaseLost, fenced
from worker import models as m
from worker.db import session_scope, utcnow
from worker.drafts import audit

log = logging.getLogger(__name__)

ConnectorFor = Callable[[int], Connector]  # account id -> a ready connector

MAX_ATTEMPTS = 6
# A `sending` row older than this belongs to a worker that died: the HTTP timeout is far shorter.
SENDING_LEASE = timedelta(minutes=2)
# How long after an unknown outcome we ask the marketplace what happened.
RECONCILE_DELAY = timedelta(seconds=30)
# Look for our message from a little before the claim (clock skew between us and the marketplace).
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class SendJob:
    outbox_id: int
    account_id: int
    conversation_external_id: str
    order_external_id: str | None
    conversation_id: int | None
    body: str
    claimed_at: datetime
    attempts: int


# First wait before retrying a send that failed without reaching the marketplace; doubles per attempt.
RETRY_BASE = timedelta(seconds=15)


def backoff(attempts: int, base: timedelta = RETRY_BASE) -> timedelta:
    """Wait before the next try of a send that failed without reaching the marketplace (capped at 1 h)."""
    return min(timedelta(hours=1), base * 2 ** max(0, attempts - 1))


def _job(s, row: m.Outbox, claimed_at: datetime) -> SendJob:
    conv = s.get(m.Conversation, row.conversation_id) if row.conversation_id else None
    order = s.get(m.Order, row.order_id) if row.order_id else None
    target = conv.external_id if conv else (order.external_id if order else None)
    if target is None:
        raise ValueError(f"outbox {row.id} has neither a conversation nor an order to send to")
    return SendJob(
        outbox_id=row.id,
        account_id=row.account_id,
        conversation_external_id=target,
        order_external_id=order.external_id if order else None,
        conversation_id=row.conversation_id,
        body=row.body,
        claimed_at=claimed_at,
        attempts=row.attempts,
    )


def claim(engine: Engine | None, outbox_id: int, now: datetime) -> SendJob | None:
    """Claim a due pending row for sending; None when it is not ours to send."""
    with session_scope(engine) as s:
        paused = s.scalar(
            select(m.Account.paused)
            .join(m.Outbox, m.Outbox.account_id == m.Account.id)
            .where(m.Outbox.id == outbox_id)
        )
        if paused is None or paused:
            return None
        res = s.execute(
            update(m.Outbox)
            .where(
                m.Outbox.id == outbox_id, m.Outbox.state == m.OutboxState.pending, m.Outbox.not_before <= now
            )
            .values(
                state=m.OutboxState.sending, claimed_at=now, attempts=m.Outbox.attempts + 1, updated_at=now
            )
            .execution_options(synchronize_session=False)
        )
        if res.rowcount != 1:
            return None
        row = s.get(m.Outbox, outbox_id, populate_existing=True)
        return _job(s, row, now)


def still_ours(
    engine: Engine | None,
    model: Any,
    row_id: int,
    state: str,
    stamp: Any,
    held: datetime,
    clock: Callable[[], datetime],
) -> Callable[[], None]:
    """The fence run right before a marketplace write: is the row still in `state` with our claim stamp?
    Then renew the stamp (the lease), else raise LeaseLost. Used by sends and by actions."""
    current = {"at": held}

    def check() -> None:
        now = clock()
        with session_scope(engine) as s:
            res = s.execute(
                update(model)
                .where(model.id == row_id, model.state == state, stamp == current["at"])
                .values({stamp.key: now})
                .execution_options(synchronize_session=False)
            )
        if res.rowcount != 1:
            raise LeaseLost(f"{model.__tablename__} {row_id} is no longer claimed by this worker")
        current["at"] = now

    return check


def mark_sent(
    engine: Engine | None,
    job: SendJob,
    marketplace_message_id: str,
    now: datetime,
    reconcile_delay: timedelta = RECONCILE_DELAY,
) -> str:
    """Record a confirmed send: outbox, draft, lifecycle event and our own copy of the message.

    Returns "sent", "not-ours" (the row moved on meanwhile) or "uncertain" (the id is another send's)."""
    with session_scope(engine) as s:
        row = s.get(m.Outbox, job.outbox_id)
        if row is not None and marketplace_message_id in _attributed_ids(s, row):
            # A marketplace that does not echo ids is read back by text: two identical texts sent to one
            # conversation at once both read the newer one. Leave this row to reconcile, which excludes
            # ids other rows own, rather than let two rows claim one delivery.
            res = s.execute(
                update(m.Outbox)
                .where(m.Outbox.id == job.outbox_id, m.Outbox.state == m.OutboxState.sending)
                .values(
                    state=m.OutboxState.uncertain,
                    last_error=f"marketplace id {marketplace_message_id} already belongs to another send",
                    not_before=now + reconcile_delay,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            return "uncertain" if res.rowcount == 1 else "not-ours"
        res = s.execute(
            update(m.Outbox)
            .where(
                m.Outbox.id == job.outbox_id,
                m.Outbox.state.in_([m.OutboxState.sending, m.OutboxState.uncertain]),
            )
            .values(
                state=m.OutboxState.sent,
                sent_at=now,
                marketplace_message_id=marketplace_message_id,
                last_error=None,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if res.rowcount != 1:
            return "not-ours"
        # `row` was loaded above; the UPDATE changed its state, not the draft it belongs to.
        if row.draft_id is not None:
            s.execute(
                update(m.Draft)
                .where(m.Draft.id == row.draft_id)
                .values(state=m.DraftState.sent, updated_at=now)
            )
        s.execute(
            update(m.LifecycleEvent)
            .where(m.LifecycleEvent.outbox_id == row.id)
            .values(state=m.LifecycleState.sent, updated_at=now)
        )
        if job.conversation_id is not None:
            # Our own copy: the next poll sees this id, dedupes it, and never triages our message.
            try:
                with s.begin_nested():
                    s.add(
                        m.Message(
                            conversation_id=job.conversation_id,
                            external_id=marketplace_message_id,
                            direction=m.MessageDirection.seller,
                            body=job.body,
                            sent_at=now,
                            triage_state=m.TriageState.skipped,
                            created_at=now,
                        )
                    )
            except IntegrityError:
                pass  # the poll stored it first
        return "sent"


def _fail(engine: Engine | None, job: SendJob, state: str, error: str, now: datetime, **extra) -> None:
    with session_scope(engine) as s:
        s.execute(
            update(m.Outbox)
            .where(m.Outbox.id == job.outbox_id, m.Outbox.state == m.OutboxState.sending)
            .values(state=state, last_error=error[:2000], updated_at=now, **extra)
        )
        if state == m.OutboxState.failed:
            row = s.get(m.Outbox, job.outbox_id)
            if row.draft_id is not None:
                s.execute(
                    update(m.Draft)
                    .where(m.Draft.id == row.draft_id)
                    .values(state=m.DraftState.failed, updated_at=now)
                )
            s.execute(
                update(m.LifecycleEvent)
                .where(m.LifecycleEvent.outbox_id == row.id)
                .values(state=m.LifecycleState.failed, updated_at=now)
            )


def pause_account(engine: Engine | None, account_id: int, reason: str, now: datetime) -> None:
    """Pause an account whose credentials the marketplace refuses; visible in status and the UI."""
    with session_scope(engine) as s:
        res = s.execute(
            update(m.Account)
            .where(m.Account.id == account_id, m.Account.paused.is_(False))
            .values(paused=True, paused_reason=reason[:500], paused_at=now)
        )
        if res.rowcount:
            audit(s, "system", "account.pause", "account", account_id, reason=reason[:500])
            log.error("account %s paused: %s", account_id, reason)


def deliver(
    outbox_id: int,
    connector_for: ConnectorFor,
    *,
    engine: Engine | None = None,
    clock: Callable[[], datetime] = utcnow,
    reconcile_delay: timedelta = RECONCILE_DELAY,
    retry_base: timedelta = RETRY_BASE,
) -> str:
    """Send one outbox row if it is ours to send; returns what happened, for logs and tests."""
    job = claim(engine, outbox_id, clock())
    if job is None:
        return "not-claimed"
    try:
        connector = connector_for(job.account_id)
        fence = still_ours(
            engine, m.Outbox, job.outbox_id, m.OutboxState.sending, m.Outbox.claimed_at, job.claimed_at, clock
        )
        with fenced(fence):
            result = connector.send_message(
                job.conversation_external_id, job.body, order_external_id=job.order_external_id
            )
    except LeaseLost:
        # We were too slow before the write and a reconciler owns the row now: it decides, we write nothing.
        log.warning("outbox %s: claim lost before the write; nothing sent", outbox_id)
        return "lease-lost"
    except ConnectorError as exc:
        now = clock()
        if exc.kind is ErrorKind.ACCOUNT:
            pause_account(engine, job.account_id, str(exc), now)
            # Nothing went out: the row waits for the account to be resumed.
            _fail(engine, job, m.OutboxState.pending, str(exc), now, not_before=now)
            return "account-paused"
        if exc.maybe_sent:
            _fail(engine, job, m.OutboxState.uncertain, str(exc), now, not_before=now + reconcile_delay)
            return "uncertain"
        if exc.kind is ErrorKind.RETRYABLE and job.attempts < MAX_ATTEMPTS:
            _fail(
                engine,
                job,
                m.OutboxState.pending,
                str(exc),
                now,
                not_before=now + backoff(job.attempts, retry_base),
            )
            return "retry"
        _fail(engine, job, m.OutboxState.failed, str(exc), now)
        return "failed"
    except Exception as exc:  # noqa: BLE001 - an unknown failure after the call may have sent it
        log.exception("outbox %s: unexpected failure while sending", outbox_id)
        now = clock()
        _fail(
            engine,
            job,
            m.OutboxState.uncertain,
            f"unexpected: {type(exc).__name__}: {exc}",
            now,
            not_before=now + reconcile_delay,
        )
        return "uncertain"
    return mark_sent(engine, job, result.marketplace_message_id, clock(), reconcile_delay)


def _attributed_ids(s, row: m.Outbox) -> frozenset[str]:
    """Marketplace ids already matched to other sends to the same place: never this row's message."""
    same_place = (
        m.Outbox.conversation_id == row.conversation_id
        if row.conversation_id is not None
        else m.Outbox.order_id == row.order_id
    )
    ids = s.scalars(
        select(m.Outbox.marketplace_message_id).where(
            same_place, m.Outbox.id != row.id, m.Outbox.marketplace_message_id.is_not(None)
        )
    )
    return frozenset(ids)


def reconcile(
    outbox_id: int,
    connector_for: ConnectorFor,
    *,
    engine: Engine | None = None,
    clock: Callable[[], datetime] = utcnow,
    lease: timedelta = SENDING_LEASE,
    reconcile_delay: timedelta = RECONCILE_DELAY,
) -> str:
    """Settle a row whose send may or may not have happened: mark it sent, or make it pending again."""
    now = clock()
    with session_scope(engine) as s:
        row = s.get(m.Outbox, outbox_id)
        if row is None:
            return "missing"
        stale_sending = row.state == m.OutboxState.sending and row.claimed_at and row.claimed_at < now - lease
        due_uncertain = row.state == m.OutboxState.uncertain and row.not_before <= now
        if not (stale_sending or due_uncertain):
            return "not-stale"
        seen_state, seen_claim = row.state, row.claimed_at
        # Take the row over: only one reconciler may act on what it saw.
        res = s.execute(
            update(m.Outbox)
            .where(m.Outbox.id == outbox_id, m.Outbox.state == seen_state, m.Outbox.claimed_at == seen_claim)
            .values(state=m.OutboxState.sending, claimed_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if res.rowcount != 1:
            return "not-claimed"
        job = _job(s, row, now)
        taken = _attributed_ids(s, row)
    try:
        found = connector_for(job.account_id).find_sent_message(
            job.conversation_external_id, job.body, (seen_claim or now) - CLOCK_SKEW, exclude=taken
        )
    except ConnectorError as exc:
        _fail(
            engine,
            job,
            m.OutboxState.uncertain,
            f"reconcile: {exc}",
            clock(),
            not_before=clock() + reconcile_delay,
        )
        return "still-uncertain"
    if found:
        marked = mark_sent(engine, job, found, clock(), reconcile_delay)
        return "reconciled-sent" if marked == "sent" else f"reconciled-{marked}"
    # The marketplace has no such message: it never went out, so sending it now is the first send.
    _fail(
        engine,
        job,
        m.OutboxState.pending,
        "reconciled: not found on the marketplace",
        clock(),
        not_before=clock(),
    )
    return "reconciled-pending"
