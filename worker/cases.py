"""Build the decision core's `Case` from database rows: the bridge between storage and triage.

A triage batch loads its facts up front (`load_messages`, `load_facts`: a handful of queries for the
whole batch) and builds each case from those rows, instead of a dozen lookups per message.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload, selectinload

from worker import models as m
from worker.triage.types import MAX_MESSAGE_CHARS, Case


class CaseUnavailable(Exception):
    """The facts needed for a decision are not there (yet); the message says which."""


@dataclass
class Facts:
    """Rows a batch of decisions reads, keyed for lookup; orders come with their items."""

    accounts: dict[int, m.Account] = field(default_factory=dict)
    orders: dict[int, m.Order] = field(default_factory=dict)
    # order id -> newest tracking snapshot / newest open dispute / newest conversation (if loaded)
    tracking: dict[int, m.TrackingSnapshot] = field(default_factory=dict)
    open_disputes: dict[int, m.Dispute] = field(default_factory=dict)
    conversations: dict[int, m.Conversation] = field(default_factory=dict)
    # Conversations with an unsent (pending, snoozed, approved) draft: only those can have one superseded.
    with_drafts: set[int] = field(default_factory=set)


def load_messages(s: Session, ids: Collection[int]) -> dict[int, m.Message]:
    """The messages with their conversations, in one query; id -> message."""
    if not ids:
        return {}
    rows = s.scalars(
        select(m.Message).where(m.Message.id.in_(list(ids))).options(joinedload(m.Message.conversation))
    )
    return {msg.id: msg for msg in rows}


def load_facts(
    s: Session,
    account_ids: Collection[int],
    order_ids: Collection[int],
    *,
    conversation_ids: Collection[int] = (),
    conversations: bool = False,
) -> Facts:
    """Accounts, orders (+ items), newest tracking and open dispute per order; conversations if asked.

    `with_drafts` covers `conversation_ids` and, with `conversations`, the orders' conversations."""
    facts = Facts()
    facts.with_drafts = _with_drafts(s, conversation_ids)
    if account_ids:
        facts.accounts = {
            a.id: a for a in s.scalars(select(m.Account).where(m.Account.id.in_(list(account_ids))))
        }
    if not order_ids:
        return facts
    ids = list(order_ids)
    facts.orders = {
        o.id: o
        for o in s.scalars(select(m.Order).where(m.Order.id.in_(ids)).options(selectinload(m.Order.items)))
    }
    facts.tracking = {snap.order_id: snap for snap in s.scalars(_latest_tracking_of(ids))}
    # Few disputes are open per order: the newest (highest id) is the one, as in open_dispute().
    for d in s.scalars(
        select(m.Dispute)
        .where(m.Dispute.order_id.in_(ids), m.Dispute.closed_at.is_(None))
        .order_by(m.Dispute.id)
    ):
        facts.open_disputes[d.order_id] = d
    if conversations:
        for conv in s.scalars(
            select(m.Conversation).where(m.Conversation.order_id.in_(ids)).order_by(m.Conversation.id)
        ):
            facts.conversations[conv.order_id] = conv
        facts.with_drafts |= _with_drafts(s, {c.id for c in facts.conversations.values()})
    return facts


def _with_drafts(s: Session, conversation_ids: Collection[int]) -> set[int]:
    if not conversation_ids:
        return set()
    return set(
        s.scalars(
            select(m.Draft.conversation_id)
            .where(
                m.Draft.conversation_id.in_(list(conversation_ids)),
                m.Draft.state.in_([m.DraftState.pending, m.DraftState.snoozed, m.DraftState.approved]),
            )
            .distinct()
        )
    )


def _latest_tracking_of(order_ids: list[int]):
    # The newest snapshot per order in one query; same order as latest_tracking().
    ranked = (
        select(
            m.TrackingSnapshot.id,
            func.row_number()
            .over(
                partition_by=m.TrackingSnapshot.order_id,
                order_by=(m.TrackingSnapshot.fetched_at.desc(), m.TrackingSnapshot.id.desc()),
            )
            .label("rank"),
        )
        .where(m.TrackingSnapshot.order_id.in_(order_ids))
        .subquery()
    )
    return (
        select(m.TrackingSnapshot)
        .join(ranked, ranked.c.id == m.TrackingSnapshot.id)
        .where(ranked.c.rank == 1)
    )


def latest_tracking(s: Session, order_id: int) -> m.TrackingSnapshot | None:
    """The newest carrier lookup of an order (ix_tracking_snapshots_order_fetched)."""
    return s.scalar(
        select(m.TrackingSnapshot)
        .where(m.TrackingSnapshot.order_id == order_id)
        .order_by(m.TrackingSnapshot.fetched_at.desc(), m.TrackingSnapshot.id.desc())
        .limit(1)
    )


def open_dispute(s: Session, order_id: int) -> m.Dispute | None:
    return s.scalar(
        select(m.Dispute)
        .where(m.Dispute.order_id == order_id, m.Dispute.closed_at.is_(None))
        .order_by(m.Dispute.id.desc())
        .limit(1)
    )


def _order(order: m.Order) -> dict[str, Any]:
    return {
        "id": order.external_id,
        "status": order.status,
        "total": order.total,
        "currency": order.currency,
        "refunded": order.refunded_total,
        "buyer_name": order.buyer_name,
        "buyer_country": order.buyer_country,
        "paid_at": order.paid_at,
        "shipped_at": order.shipped_at,
        "delivered_at": order.delivered_at,
        "shipping_method": order.shipping_method,
        "promised_delivery_days": order.promised_delivery_days,
        "tracking_number": order.tracking_number,
        "items": [
            {"sku": i.sku, "title": i.title, "quantity": i.quantity, "price": i.price} for i in order.items
        ],
    }


def _tracking(snap: m.TrackingSnapshot | None) -> dict[str, Any] | None:
    if snap is None:
        return None
    return {
        "status": snap.status,
        "sub_status": snap.sub_status,
        "last_event_at": snap.last_event_at,
        "events": snap.events_json or [],
    }


def _dispute(d: m.Dispute | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {
        "reason": d.reason,
        "opened_at": d.opened_at,
        "buyer_request": d.buyer_request,
        "amount": d.amount,
        "status": d.status,
    }


def case_for_message(msg: m.Message, marketplace: str, now: datetime, facts: Facts) -> Case:
    """The case for a buyer message: its order, latest tracking and any open dispute."""
    conv = msg.conversation
    if conv.order_id is None:
        raise CaseUnavailable(f"message {msg.id}: conversation {conv.external_id} has no known order yet")
    order = facts.orders[conv.order_id]
    text = msg.body if len(msg.body) <= MAX_MESSAGE_CHARS else msg.body[:MAX_MESSAGE_CHARS]
    return Case.model_validate(
        {
            "id": f"msg:{msg.id}",
            "now": now,
            "marketplace": marketplace,
            "message": {"text": text, "sent_at": msg.sent_at, "direction": msg.direction},
            "dispute": _dispute(facts.open_disputes.get(order.id)),
            "order": _order(order),
            "tracking": _tracking(facts.tracking.get(order.id)),
            "conversation_id": conv.external_id,
            "last_auto_reply_at": conv.last_auto_reply_at,
            "complaint_in_conversation": conv.complaint,
        }
    )


def case_for_dispute(dispute: m.Dispute, marketplace: str, now: datetime, facts: Facts) -> Case:
    """The case for a dispute opened without a message (facts loaded with conversations)."""
    order = facts.orders[dispute.order_id]
    conv = facts.conversations.get(order.id)
    return Case.model_validate(
        {
            "id": f"dispute:{dispute.id}",
            "now": now,
            "marketplace": marketplace,
            "message": None,
            "dispute": _dispute(dispute),
            "order": _order(order),
            "tracking": _tracking(facts.tracking.get(order.id)),
            "conversation_id": conv.external_id if conv else None,
            "last_auto_reply_at": conv.last_auto_reply_at if conv else None,
            "complaint_in_conversation": conv.complaint if conv else False,
        }
    )


def latest_order_of_buyer(s: Session, account_id: int, buyer_id: str) -> int | None:
    """The buyer's latest order: what a conversation naming no order (eBay names a listing) is about."""
    return s.scalar(
        select(m.Order.id)
        .where(m.Order.account_id == account_id, m.Order.buyer_id == buyer_id)
        .order_by(m.Order.paid_at.desc().nulls_last(), m.Order.id.desc())
        .limit(1)
    )


def conversation_for_order(s: Session, order_id: int) -> m.Conversation | None:
    return s.scalar(
        select(m.Conversation)
        .where(m.Conversation.order_id == order_id)
        .order_by(m.Conversation.id.desc())
        .limit(1)
    )
