"""Build the decision core's `Case` from database rows: the bridge between storage and triage."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker import models as m
from worker.triage.types import MAX_MESSAGE_CHARS, Case


class CaseUnavailable(Exception):
    """The facts needed for a decision are not there (yet); the message says which."""


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


def case_for_message(s: Session, msg: m.Message, marketplace: str, now: datetime) -> Case:
    """The case for a buyer message: its order, latest tracking and any open dispute."""
    conv = msg.conversation
    if conv.order_id is None:
        raise CaseUnavailable(f"message {msg.id}: conversation {conv.external_id} has no known order yet")
    order = s.get(m.Order, conv.order_id)
    text = msg.body if len(msg.body) <= MAX_MESSAGE_CHARS else msg.body[:MAX_MESSAGE_CHARS]
    return Case.model_validate(
        {
            "id": f"msg:{msg.id}",
            "now": now,
            "marketplace": marketplace,
            "message": {"text": text, "sent_at": msg.sent_at, "direction": msg.direction},
            "dispute": _dispute(open_dispute(s, order.id)),
            "order": _order(order),
            "tracking": _tracking(latest_tracking(s, order.id)),
            "conversation_id": conv.external_id,
            "last_auto_reply_at": conv.last_auto_reply_at,
            "complaint_in_conversation": conv.complaint,
        }
    )


def case_for_dispute(s: Session, dispute: m.Dispute, marketplace: str, now: datetime) -> Case:
    """The case for a dispute opened without a message."""
    order = s.get(m.Order, dispute.order_id)
    conv = conversation_for_order(s, order.id)
    return Case.model_validate(
        {
            "id": f"dispute:{dispute.id}",
            "now": now,
            "marketplace": marketplace,
            "message": None,
            "dispute": _dispute(dispute),
            "order": _order(order),
            "tracking": _tracking(latest_tracking(s, order.id)),
            "conversation_id": conv.external_id if conv else None,
            "last_auto_reply_at": conv.last_auto_reply_at if conv else None,
            "complaint_in_conversation": conv.complaint if conv else False,
        }
    )


def conversation_for_order(s: Session, order_id: int) -> m.Conversation | None:
    return s.scalar(
        select(m.Conversation)
        .where(m.Conversation.order_id == order_id)
        .order_by(m.Conversation.id.desc())
        .limit(1)
    )
