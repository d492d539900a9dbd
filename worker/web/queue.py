"""What the queue shows: filtered, urgency-ordered drafts with counts per filter, and one draft in full.

Every query takes `account_ids`, the accounts the viewer may see (None: all of them), so a draft of
another account is simply not found. The output models are pydantic: the JSON API returns them as
they are and the pages render them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, Select, case, func, or_, select
from sqlalchemy.orm import Session

from worker import models as m
from worker.triage.types import MONEY_ACTIONS, REFUND_ACTIONS, ActionType, Intent

EXCERPT_CHARS = 180
MAX_PAGE = 200
# Facets in the order the queue shows them.
FACETS = ("state", "account", "marketplace", "intent", "scenario", "language", "auto")
MONEY_TYPES = tuple(sorted(t.value for t in MONEY_ACTIONS))
# What each facet filters and counts on (queries join Draft, Decision and Account).
FACET_COLUMNS: dict[str, Any] = {
    "state": m.Draft.state,
    "account": m.Draft.account_id,
    "marketplace": m.Account.marketplace,
    "intent": m.Decision.intent,
    "scenario": m.Decision.scenario,
    "language": m.Decision.language,
    "auto": m.Draft.auto,
}


class FilterError(ValueError):
    """A queue filter that cannot be read; `field` names the query parameter."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


@dataclass(frozen=True)
class Filters:
    """The queue's filters; `state=None` shows every state, `auto=None` automatic and manual drafts."""

    state: str | None = m.DraftState.pending.value
    account: int | None = None
    marketplace: str | None = None
    intent: str | None = None
    scenario: str | None = None
    language: str | None = None
    auto: bool | None = None

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> Filters:
        """Read filters from query parameters; empty values mean no filter, bad ones raise FilterError."""

        def text(name: str, max_len: int) -> str | None:
            value = params.get(name)
            if value is None or str(value).strip() == "":
                return None
            value = str(value).strip()
            if len(value) > max_len:
                raise FilterError(name, f"at most {max_len} characters")
            return value

        state = text("state", 20) or m.DraftState.pending.value
        if state == "all":
            parsed_state = None
        elif state in m.DraftState.__members__.values():
            parsed_state = state
        else:
            raise FilterError("state", f"{state!r} is not all or one of {', '.join(m.DraftState)}")
        account_text = text("account", 12)
        if account_text is not None and not account_text.isdigit():
            raise FilterError("account", f"{account_text!r} is not an account id")
        marketplace = text("marketplace", 20)
        if marketplace is not None and marketplace not in m.Marketplace.__members__.values():
            raise FilterError("marketplace", f"{marketplace!r} is not one of {', '.join(m.Marketplace)}")
        intent = text("intent", 30)
        if intent is not None and intent not in Intent.__members__.values():
            raise FilterError("intent", f"{intent!r} is not a known intent")
        auto_text = text("auto", 10)
        auto_values = {"auto": True, "true": True, "1": True, "manual": False, "false": False, "0": False}
        if auto_text is not None and auto_text.lower() not in auto_values:
            raise FilterError("auto", f"{auto_text!r} is not auto or manual")
        return cls(
            state=parsed_state,
            account=int(account_text) if account_text else None,
            marketplace=marketplace,
            intent=intent,
            scenario=text("scenario", 40),
            language=text("language", 8),
            auto=auto_values[auto_text.lower()] if auto_text else None,
        )

    def params(self) -> dict[str, str]:
        """The query parameters that reproduce these filters (defaults left out)."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "state":
                if value != m.DraftState.pending.value:
                    out["state"] = value or "all"
            elif f.name == "auto":
                if value is not None:
                    out["auto"] = "auto" if value else "manual"
            elif value is not None:
                out[f.name] = str(value)
        return out

    def with_value(self, facet: str, value: Any) -> Filters:
        """These filters with `facet` set to `value` (None clears it; for state, None means all)."""
        return replace(self, **{facet: value})

    def active(self) -> dict[str, str]:
        """The filters in use other than the state, for "clear" links."""
        return {k: v for k, v in self.params().items() if k != "state"}


class FacetValue(BaseModel):
    value: str
    label: str
    count: int


class QueueItem(BaseModel):
    id: int
    state: str
    auto: bool
    created_at: datetime
    account_id: int
    account_name: str
    marketplace: str
    intent: str
    scenario: str
    language: str | None
    confidence: float
    template: str
    buyer_name: str | None
    order_external_id: str
    order_total: Decimal
    currency: str
    excerpt: str
    response_due_at: datetime | None
    snoozed_until: datetime | None
    # Money actions still waiting for a decision: the reply cannot be approved before them.
    open_money_actions: int


class QueuePage(BaseModel):
    items: list[QueueItem]
    total: int
    limit: int
    offset: int


def _due_subquery() -> Any:
    # The most urgent deadline of an open dispute on the draft's order.
    return (
        select(func.min(m.Dispute.response_due_at))
        .where(m.Dispute.order_id == m.Decision.order_id, m.Dispute.closed_at.is_(None))
        .correlate(m.Decision)
        .scalar_subquery()
    )


def _joined(stmt: Select[Any]) -> Select[Any]:
    return stmt.join(m.Decision, m.Decision.id == m.Draft.decision_id).join(
        m.Account, m.Account.id == m.Draft.account_id
    )


def _conditions(
    filters: Filters, account_ids: frozenset[int] | None, skip: str | None = None
) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if account_ids is not None:
        out.append(m.Draft.account_id.in_(sorted(account_ids)))
    for facet, column in FACET_COLUMNS.items():
        value = getattr(filters, facet)
        if facet != skip and value is not None:
            out.append(column == value)
    return out


def _money_open(s: Session, decision_ids: list[int]) -> dict[int, int]:
    if not decision_ids:
        return {}
    rows = s.execute(
        select(m.ProposedAction.decision_id, func.count())
        .where(
            m.ProposedAction.decision_id.in_(decision_ids),
            m.ProposedAction.state == m.ActionState.proposed,
            m.ProposedAction.type.in_(MONEY_TYPES),
        )
        .group_by(m.ProposedAction.decision_id)
    ).all()
    return {decision_id: count for decision_id, count in rows}


def _excerpt(text: str | None) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 1] + "…"


def ordered_ids(s: Session, filters: Filters, account_ids: frozenset[int] | None) -> list[int]:
    """Every draft id matching the filters, most urgent first (for next/previous on the draft page)."""
    due = _due_subquery()
    stmt = _joined(select(m.Draft.id)).where(*_conditions(filters, account_ids))
    return list(s.scalars(stmt.order_by(*_urgency(due))))


def _urgency(due: Any) -> tuple[Any, ...]:
    # Dispute deadlines first (soonest first), then the oldest draft.
    return (case((due.is_(None), 1), else_=0), due, m.Draft.created_at, m.Draft.id)


def list_queue(
    s: Session, filters: Filters, account_ids: frozenset[int] | None, *, limit: int = 50, offset: int = 0
) -> QueuePage:
    """One page of the queue, most urgent first."""
    limit = max(1, min(limit, MAX_PAGE))
    offset = max(0, offset)
    where = _conditions(filters, account_ids)
    total = s.scalar(_joined(select(func.count()).select_from(m.Draft)).where(*where)) or 0
    due = _due_subquery()
    stmt = (
        _joined(
            select(
                m.Draft, m.Decision, m.Account, m.Order, m.Message.body, m.Dispute.reason, due.label("due")
            )
        )
        .join(m.Order, m.Order.id == m.Decision.order_id)
        .outerjoin(m.Message, m.Message.id == m.Decision.message_id)
        .outerjoin(m.Dispute, m.Dispute.id == m.Decision.dispute_id)
        .where(*where)
        .order_by(*_urgency(due))
        .limit(limit)
        .offset(offset)
    )
    rows = s.execute(stmt).all()
    money = _money_open(s, [row.Decision.id for row in rows])
    items = [
        QueueItem(
            id=row.Draft.id,
            state=row.Draft.state,
            auto=row.Draft.auto,
            created_at=row.Draft.created_at,
            account_id=row.Account.id,
            account_name=row.Account.name,
            marketplace=row.Account.marketplace,
            intent=row.Decision.intent,
            scenario=row.Decision.scenario,
            language=row.Decision.language,
            confidence=row.Decision.confidence,
            template=row.Draft.template,
            buyer_name=row.Order.buyer_name,
            order_external_id=row.Order.external_id,
            order_total=row.Order.total,
            currency=row.Order.currency,
            excerpt=_excerpt(row.body if row.body is not None else row.reason),
            response_due_at=row.due,
            snoozed_until=row.Draft.snoozed_until,
            open_money_actions=money.get(row.Decision.id, 0),
        )
        for row in rows
    ]
    return QueuePage(items=items, total=total, limit=limit, offset=offset)


def facet_counts(
    s: Session, filters: Filters, account_ids: frozenset[int] | None
) -> dict[str, list[FacetValue]]:
    """For each facet, its values with how many drafts each would show, the other filters applied."""
    out: dict[str, list[FacetValue]] = {}
    name_query = select(m.Account.id, m.Account.marketplace + "/" + m.Account.name)
    if account_ids is not None:
        name_query = name_query.where(m.Account.id.in_(sorted(account_ids)))
    names = dict(s.execute(name_query).all())
    for facet in FACETS:
        column = FACET_COLUMNS[facet]
        stmt = (
            _joined(select(column, func.count()).select_from(m.Draft))
            .where(*_conditions(filters, account_ids, skip=facet))
            .group_by(column)
        )
        values: list[FacetValue] = []
        for value, count in s.execute(stmt).all():
            if value is None:
                continue
            if facet == "auto":
                values.append(
                    FacetValue(
                        value="auto" if value else "manual",
                        label="automatic" if value else "manual",
                        count=count,
                    )
                )
            elif facet == "account":
                values.append(
                    FacetValue(value=str(value), label=names.get(value, f"account {value}"), count=count)
                )
            else:
                values.append(FacetValue(value=str(value), label=str(value).replace("_", " "), count=count))
        order = [state.value for state in m.DraftState]
        if facet == "state":
            values.sort(key=lambda v: order.index(v.value) if v.value in order else len(order))
        else:
            values.sort(key=lambda v: (-v.count, v.label))
        out[facet] = values
    return out


# The full draft.


class AccountOut(BaseModel):
    id: int
    marketplace: str
    name: str
    paused: bool
    paused_reason: str | None


class OrderItemOut(BaseModel):
    sku: str | None
    title: str
    quantity: int
    price: Decimal
    currency: str


class OrderOut(BaseModel):
    id: int
    external_id: str
    status: str
    total: Decimal
    currency: str
    refunded_total: Decimal
    buyer_name: str | None
    buyer_country: str | None
    buyer_language: str | None
    paid_at: datetime | None
    shipped_at: datetime | None
    delivered_at: datetime | None
    protection_ends_at: datetime | None
    shipping_method: str | None
    carrier: str | None
    tracking_number: str | None
    promised_delivery_days: int | None
    items: list[OrderItemOut]


class MessageOut(BaseModel):
    id: int
    direction: str
    body: str
    language: str | None
    sent_at: datetime | None
    is_auto_reply: bool


class DisputeOut(BaseModel):
    id: int
    external_id: str
    reason: str
    status: str | None
    buyer_request: str | None
    amount: Decimal | None
    currency: str | None
    opened_at: datetime | None
    response_due_at: datetime | None
    closed_at: datetime | None


class TrackingEventOut(BaseModel):
    time: datetime | None
    location: str | None
    description: str


class TrackingOut(BaseModel):
    tracking_number: str
    status: str
    sub_status: str | None
    last_event_at: datetime | None
    fetched_at: datetime
    # Newest first.
    events: list[TrackingEventOut]


class DecisionOut(BaseModel):
    id: int
    intent: str
    language: str | None
    confidence: float
    scenario: str
    refund_allowed: bool
    auto_send: bool
    template: str
    reply_language: str
    reasons: list[str]
    deadline: datetime | None
    days_left: int | None


class ActionOut(BaseModel):
    id: int
    type: str
    amount: Decimal | None
    currency: str | None
    days: int | None
    note: str | None
    state: str
    is_money: bool
    # What the approval cap is compared with: the order total for a resend, else the amount.
    value: Decimal | None
    # A refund the policy does not allow here: approving it needs an override reason.
    needs_override: bool
    approved_by: int | None
    approved_at: datetime | None
    override_reason: str | None


class OutboxOut(BaseModel):
    id: int
    state: str
    body: str
    not_before: datetime
    sent_at: datetime | None
    last_error: str | None


class AuditOut(BaseModel):
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str | None
    details: dict[str, Any]


class DraftDetail(BaseModel):
    id: int
    state: str
    auto: bool
    original_text: str
    edited_text: str | None
    # What would be (or was) sent: the edited text when there is one.
    reply: str
    template: str
    language: str
    created_at: datetime
    send_after: datetime | None
    reviewer_id: int | None
    reviewed_at: datetime | None
    reject_reason: str | None
    snoozed_until: datetime | None
    can_undo: bool
    open_money_actions: int
    account: AccountOut
    decision: DecisionOut
    order: OrderOut
    buyer_message: MessageOut | None
    dispute: DisputeOut | None
    conversation: list[MessageOut]
    tracking: TrackingOut | None
    actions: list[ActionOut]
    outbox: list[OutboxOut]
    audit: list[AuditOut]


def money_value(action: m.ProposedAction, order: m.Order) -> Decimal | None:
    """The amount an approval cap is compared with (as worker.drafts.approve_action does); None if not money."""
    atype = ActionType(action.type)
    if atype not in MONEY_ACTIONS:
        return None
    return order.total if atype is ActionType.resend else (action.amount or Decimal("0"))


def action_out(action: m.ProposedAction, order: m.Order, decision: m.Decision) -> ActionOut:
    """The API/page view of one proposed action."""
    atype = ActionType(action.type)
    return ActionOut(
        id=action.id,
        type=action.type,
        amount=action.amount,
        currency=action.currency or (order.currency if atype in MONEY_ACTIONS else None),
        days=action.days,
        note=action.note,
        state=action.state,
        is_money=atype in MONEY_ACTIONS,
        value=money_value(action, order),
        needs_override=atype in REFUND_ACTIONS and not decision.refund_allowed,
        approved_by=action.approved_by,
        approved_at=action.approved_at,
        override_reason=action.override_reason,
    )


def _message_out(msg: m.Message) -> MessageOut:
    return MessageOut(
        id=msg.id,
        direction=msg.direction,
        body=msg.body,
        language=msg.language,
        sent_at=msg.sent_at,
        is_auto_reply=msg.is_auto_reply,
    )


def _tracking_out(snap: m.TrackingSnapshot) -> TrackingOut:
    events: list[TrackingEventOut] = []
    for raw in snap.events_json or []:
        if not isinstance(raw, dict):
            continue
        when = raw.get("time")
        try:
            parsed = datetime.fromisoformat(when) if isinstance(when, str) else None
        except ValueError:
            parsed = None
        events.append(
            TrackingEventOut(
                time=parsed,
                location=raw.get("location") or None,
                description=str(raw.get("description") or ""),
            )
        )
    # Events without a time sink to the bottom; the rest newest first.
    events.sort(key=lambda e: (e.time is not None, e.time.timestamp() if e.time else 0), reverse=True)
    return TrackingOut(
        tracking_number=snap.tracking_number,
        status=snap.status,
        sub_status=snap.sub_status,
        last_event_at=snap.last_event_at,
        fetched_at=snap.fetched_at,
        events=events,
    )


def visible_draft(s: Session, draft_id: int, account_ids: frozenset[int] | None) -> m.Draft | None:
    """The draft when it exists and the viewer may see its account, else None."""
    draft = s.get(m.Draft, draft_id)
    if draft is None or (account_ids is not None and draft.account_id not in account_ids):
        return None
    return draft


def draft_detail(s: Session, draft_id: int, account_ids: frozenset[int] | None) -> DraftDetail | None:
    """Everything the draft page shows, or None when the draft is missing or not the viewer's."""
    draft = visible_draft(s, draft_id, account_ids)
    if draft is None:
        return None
    decision = s.get(m.Decision, draft.decision_id)
    account = s.get(m.Account, draft.account_id)
    order = s.get(m.Order, decision.order_id)
    buyer_message = s.get(m.Message, decision.message_id) if decision.message_id else None
    dispute = s.get(m.Dispute, decision.dispute_id) if decision.dispute_id else None
    conversation_id = draft.conversation_id or (buyer_message.conversation_id if buyer_message else None)
    conversation = (
        s.scalars(
            select(m.Message)
            .where(m.Message.conversation_id == conversation_id)
            .order_by(func.coalesce(m.Message.sent_at, m.Message.created_at), m.Message.id)
        ).all()
        if conversation_id
        else []
    )
    snap = s.scalar(
        select(m.TrackingSnapshot)
        .where(m.TrackingSnapshot.order_id == order.id)
        .order_by(m.TrackingSnapshot.fetched_at.desc(), m.TrackingSnapshot.id.desc())
        .limit(1)
    )
    actions = s.scalars(
        select(m.ProposedAction)
        .where(m.ProposedAction.decision_id == decision.id)
        .order_by(m.ProposedAction.id)
    ).all()
    outbox = s.scalars(select(m.Outbox).where(m.Outbox.draft_id == draft.id).order_by(m.Outbox.id)).all()
    audit_rows = s.scalars(
        select(m.AuditLog)
        .where(
            or_(
                (m.AuditLog.object_type == "draft") & (m.AuditLog.object_id == str(draft.id)),
                (m.AuditLog.object_type == "action")
                & (m.AuditLog.object_id.in_([str(a.id) for a in actions])),
            )
        )
        .order_by(m.AuditLog.at, m.AuditLog.id)
    ).all()
    action_views = [action_out(a, order, decision) for a in actions]
    return DraftDetail(
        id=draft.id,
        state=draft.state,
        auto=draft.auto,
        original_text=draft.original_text,
        edited_text=draft.edited_text,
        reply=draft.edited_text if draft.edited_text is not None else draft.original_text,
        template=draft.template,
        language=draft.language,
        created_at=draft.created_at,
        send_after=draft.send_after,
        reviewer_id=draft.reviewer_id,
        reviewed_at=draft.reviewed_at,
        reject_reason=draft.reject_reason,
        snoozed_until=draft.snoozed_until,
        can_undo=draft.state == m.DraftState.approved
        and any(o.state == m.OutboxState.pending for o in outbox),
        open_money_actions=sum(1 for a in action_views if a.is_money and a.state == m.ActionState.proposed),
        account=AccountOut(
            id=account.id,
            marketplace=account.marketplace,
            name=account.name,
            paused=account.paused,
            paused_reason=account.paused_reason,
        ),
        decision=DecisionOut(
            id=decision.id,
            intent=decision.intent,
            language=decision.language,
            confidence=decision.confidence,
            scenario=decision.scenario,
            refund_allowed=decision.refund_allowed,
            auto_send=decision.auto_send,
            template=decision.template,
            reply_language=decision.reply_language,
            reasons=[str(r) for r in decision.reasons_json or []],
            deadline=decision.deadline,
            days_left=decision.days_left,
        ),
        order=OrderOut(
            id=order.id,
            external_id=order.external_id,
            status=order.status,
            total=order.total,
            currency=order.currency,
            refunded_total=order.refunded_total,
            buyer_name=order.buyer_name,
            buyer_country=order.buyer_country,
            buyer_language=order.buyer_language,
            paid_at=order.paid_at,
            shipped_at=order.shipped_at,
            delivered_at=order.delivered_at,
            protection_ends_at=order.protection_ends_at,
            shipping_method=order.shipping_method,
            carrier=order.carrier,
            tracking_number=order.tracking_number,
            promised_delivery_days=order.promised_delivery_days,
            items=[
                OrderItemOut(
                    sku=i.sku, title=i.title, quantity=i.quantity, price=i.price, currency=i.currency
                )
                for i in order.items
            ],
        ),
        buyer_message=_message_out(buyer_message) if buyer_message else None,
        dispute=DisputeOut(
            id=dispute.id,
            external_id=dispute.external_id,
            reason=dispute.reason,
            status=dispute.status,
            buyer_request=dispute.buyer_request,
            amount=dispute.amount,
            currency=dispute.currency,
            opened_at=dispute.opened_at,
            response_due_at=dispute.response_due_at,
            closed_at=dispute.closed_at,
        )
        if dispute
        else None,
        conversation=[_message_out(msg) for msg in conversation],
        tracking=_tracking_out(snap) if snap else None,
        actions=action_views,
        outbox=[
            OutboxOut(
                id=o.id,
                state=o.state,
                body=o.body,
                not_before=o.not_before,
                sent_at=o.sent_at,
                last_error=o.last_error,
            )
            for o in outbox
        ],
        audit=[
            AuditOut(
                at=a.at,
                actor=a.actor,
                action=a.action,
                object_type=a.object_type,
                object_id=a.object_id,
                details=a.details_json or {},
            )
            for a in audit_rows
        ],
    )


def neighbours(
    s: Session, draft_id: int, filters: Filters, account_ids: frozenset[int] | None
) -> tuple[int | None, int | None]:
    """The drafts before and after `draft_id` in the filtered queue (None at either end or if absent)."""
    ids = ordered_ids(s, filters, account_ids)
    if draft_id not in ids:
        return None, ids[0] if ids else None
    at = ids.index(draft_id)
    return (ids[at - 1] if at > 0 else None), (ids[at + 1] if at + 1 < len(ids) else None)
