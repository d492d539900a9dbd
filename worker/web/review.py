"""Human decisions on drafts and actions, for the web UI, the JSON API and the CLI alike.

Each function checks what the caller may do (the accounts they see, the money cap of their role)
and then calls `worker.drafts`, which owns the state machine, the outbox and the audit log. Errors
carry an HTTP-like kind so the API and the pages answer 404, 403, 409 or 422 consistently.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from worker import drafts
from worker import models as m
from worker.triage.types import REFUND_ACTIONS, ActionType
from worker.web.queue import MONEY_TYPES, money_value

MAX_SNOOZE = timedelta(days=30)
MAX_REASON_CHARS = 2000
MAX_REPLY_CHARS = 20_000


@dataclass(frozen=True)
class Reviewer:
    """Who acts: the audit actor, the user row (none for the CLI), role, visible accounts and money cap."""

    actor: str
    user_id: int | None
    username: str
    role: str
    # None: every account.
    account_ids: frozenset[int] | None
    # The largest money action this reviewer may approve; None: no money approvals at all.
    money_cap: Decimal | None


class ReviewError(Exception):
    """A refused review operation; `status` is the HTTP status the API answers with."""

    status = 409


class NotFound(ReviewError):
    status = 404


class Forbidden(ReviewError):
    status = 403


class Conflict(ReviewError):
    status = 409


class Invalid(ReviewError):
    status = 422


def _draft(s: Session, reviewer: Reviewer, draft_id: int) -> m.Draft:
    draft = s.get(m.Draft, draft_id)
    # Another account's draft is "not found": its existence is not the viewer's business.
    if draft is None or (reviewer.account_ids is not None and draft.account_id not in reviewer.account_ids):
        raise NotFound(f"draft {draft_id} not found")
    return draft


def _action(s: Session, reviewer: Reviewer, action_id: int) -> m.ProposedAction:
    action = s.get(m.ProposedAction, action_id)
    if action is None or (reviewer.account_ids is not None and action.account_id not in reviewer.account_ids):
        raise NotFound(f"action {action_id} not found")
    return action


def _reason(reason: str | None, field: str = "reason") -> str:
    text = (reason or "").strip()
    if not text:
        raise Invalid(f"{field}: give a reason")
    if len(text) > MAX_REASON_CHARS:
        raise Invalid(f"{field}: at most {MAX_REASON_CHARS} characters")
    return text


def open_money_actions(s: Session, decision_id: int) -> int:
    """How many money actions of a decision still wait for a human decision."""
    return (
        s.scalar(
            select(func.count())
            .select_from(m.ProposedAction)
            .where(
                m.ProposedAction.decision_id == decision_id,
                m.ProposedAction.state == m.ActionState.proposed,
                m.ProposedAction.type.in_(MONEY_TYPES),
            )
        )
        or 0
    )


def normalise_edit(original: str, edited: str | None) -> str | None:
    """The edited reply to store: None when it is absent or the same as the draft (so the edit rate is honest)."""
    if edited is None:
        return None
    text = edited.replace("\r\n", "\n")
    if len(text) > MAX_REPLY_CHARS:
        raise Invalid(f"edited_text: at most {MAX_REPLY_CHARS} characters")
    if not text.strip():
        raise Invalid("edited_text: the reply is empty")
    return None if text.strip() == original.strip() else text


def approve(
    s: Session,
    reviewer: Reviewer,
    draft_id: int,
    *,
    now: datetime,
    undo_window: timedelta,
    edited_text: str | None = None,
    send_now: bool = False,
) -> m.Outbox:
    """Approve a draft: it is sent after the undo window, or at once with `send_now`."""
    draft = _draft(s, reviewer, draft_id)
    edit = normalise_edit(draft.original_text, edited_text)
    waiting = open_money_actions(s, draft.decision_id)
    if waiting and draft.state in drafts.OPEN_DRAFT_STATES:
        # The reply usually announces the refund or resend: decide the money first, then send the words.
        raise Conflict(
            f"draft {draft_id} has {waiting} money action{'s' if waiting > 1 else ''} awaiting a decision: "
            "approve or reject them first"
        )
    try:
        return drafts.approve_draft(
            s,
            draft_id,
            actor=reviewer.actor,
            reviewer_id=reviewer.user_id,
            now=now,
            edited_text=edit,
            delay=timedelta(0) if send_now else undo_window,
        )
    except drafts.DraftError as exc:
        raise Conflict(str(exc)) from None


@dataclass(frozen=True)
class BulkResult:
    approved: list[int]
    # Draft id -> why it was not approved.
    skipped: dict[int, str]


def bulk_approve(
    s: Session, reviewer: Reviewer, draft_ids: Iterable[int], *, now: datetime, undo_window: timedelta
) -> BulkResult:
    """Approve each draft as it stands; one that cannot be approved is skipped with the reason."""
    approved: list[int] = []
    skipped: dict[int, str] = {}
    for draft_id in dict.fromkeys(draft_ids):
        try:
            with s.begin_nested():
                approve(s, reviewer, draft_id, now=now, undo_window=undo_window)
            approved.append(draft_id)
        except ReviewError as exc:
            skipped[draft_id] = str(exc)
    return BulkResult(approved=approved, skipped=skipped)


def reject(s: Session, reviewer: Reviewer, draft_id: int, *, reason: str, now: datetime) -> m.Draft:
    """Reject a draft with a reason."""
    _draft(s, reviewer, draft_id)
    text = _reason(reason)
    try:
        return drafts.reject_draft(
            s, draft_id, actor=reviewer.actor, reviewer_id=reviewer.user_id, reason=text, now=now
        )
    except drafts.DraftError as exc:
        raise Conflict(str(exc)) from None


def snooze(s: Session, reviewer: Reviewer, draft_id: int, *, until: datetime, now: datetime) -> m.Draft:
    """Hide a draft from the queue until `until` (at most MAX_SNOOZE ahead)."""
    _draft(s, reviewer, draft_id)
    if until.tzinfo is None:
        raise Invalid("until: give a time zone (e.g. 2026-03-01T12:00:00Z)")
    if until <= now:
        raise Invalid("until: snooze until a time in the future")
    if until - now > MAX_SNOOZE:
        raise Invalid(f"until: at most {MAX_SNOOZE.days} days ahead")
    try:
        return drafts.snooze_draft(s, draft_id, actor=reviewer.actor, until=until, now=now)
    except drafts.DraftError as exc:
        raise Conflict(str(exc)) from None


def undo(s: Session, reviewer: Reviewer, draft_id: int, *, now: datetime) -> m.Draft:
    """Take back an approval while its reply still waits in the outbox; the draft is pending again."""
    _draft(s, reviewer, draft_id)
    try:
        return drafts.undo_send(s, draft_id, actor=reviewer.actor, now=now)
    except drafts.DraftError as exc:
        raise Conflict(str(exc)) from None


def approve_action(
    s: Session,
    reviewer: Reviewer,
    action_id: int,
    *,
    now: datetime,
    confirm: bool = False,
    override_reason: str | None = None,
) -> m.ProposedAction:
    """Approve one action: money needs `confirm` and a cap that covers it; a forbidden refund an override."""
    action = _action(s, reviewer, action_id)
    if action.state != m.ActionState.proposed:
        raise Conflict(f"action {action_id} is {action.state}, not proposed")
    order = s.get(m.Order, action.order_id)
    value = money_value(action, order)
    reason = (override_reason or "").strip() or None
    if reason is not None and len(reason) > MAX_REASON_CHARS:
        raise Invalid(f"override_reason: at most {MAX_REASON_CHARS} characters")
    if value is not None:
        if reviewer.money_cap is None or value > reviewer.money_cap:
            cap = "no money approvals" if reviewer.money_cap is None else f"a cap of {reviewer.money_cap}"
            raise Forbidden(
                f"{action.type} of {value} {action.currency or order.currency} needs a higher role "
                f"(a {reviewer.role} has {cap})"
            )
        if not confirm:
            raise Invalid(f"confirm: {action.type} moves money, tick the confirmation to approve it")
    if ActionType(action.type) in REFUND_ACTIONS:
        decision = s.get(m.Decision, action.decision_id)
        if decision is not None and not decision.refund_allowed and reason is None:
            raise Invalid("override_reason: the policy does not allow a refund here; say why you override it")
    try:
        return drafts.approve_action(
            s,
            action_id,
            actor=reviewer.actor,
            reviewer_id=reviewer.user_id,
            money_cap=reviewer.money_cap,
            now=now,
            confirm=confirm,
            override_reason=reason,
        )
    except drafts.DraftError as exc:
        raise Conflict(str(exc)) from None


def reject_action(s: Session, reviewer: Reviewer, action_id: int, *, now: datetime, reason: str = "") -> None:
    """Reject one proposed action (the reason is optional)."""
    _action(s, reviewer, action_id)
    text = (reason or "").strip()
    if len(text) > MAX_REASON_CHARS:
        raise Invalid(f"reason: at most {MAX_REASON_CHARS} characters")
    try:
        drafts.reject_action(s, action_id, actor=reviewer.actor, now=now, reason=text)
    except drafts.DraftError as exc:
        raise Conflict(str(exc)) from None
