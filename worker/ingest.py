"""Ingest: normalised connector records become rows, deduplicated on the marketplace's own ids.

Called inside the poll's transaction, so the rows and the stream cursor commit together. A
re-poll of an overlapping window changes nothing that did not change on the marketplace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from connectors.base import NormDispute, NormMessage, NormOrder, NormTracking
from worker import models as m

ORDER_FIELDS = (
    "status",
    "total",
    "currency",
    "buyer_id",
    "buyer_name",
    "buyer_country",
    "buyer_language",
    "paid_at",
    "shipped_at",
    "delivered_at",
    "completed_at",
    "cancelled_at",
    "shipping_method",
    "carrier",
    "tracking_number",
    "promised_delivery_days",
    "handling_days",
)
# Fields a later poll must not blank out when the marketplace omits them from a summary page.
STICKY = frozenset(
    {
        "buyer_country",
        "buyer_language",
        "buyer_name",
        "tracking_number",
        "shipping_method",
        "promised_delivery_days",
        "handling_days",
        "carrier",
    }
)


@dataclass
class IngestResult:
    """What a batch changed: ids the next steps (triage, lifecycle) care about."""

    orders: list[int] = field(default_factory=list)
    new_messages: list[int] = field(default_factory=list)
    new_disputes: list[int] = field(default_factory=list)
    duplicates: int = 0


def clean_text(value: str | None, limit: int | None = None) -> str | None:
    """Text every database stores: lone surrogates and NUL become U+FFFD; display fields are clipped."""
    if value is None:
        return None
    text = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace").replace("\x00", "\ufffd")
    return text[:limit] if limit is not None else text


# Column sizes of the free-text fields a marketplace fills in (see worker/models.py).
TEXT_LIMITS = {
    "buyer_name": 200,
    "buyer_id": 200,
    "shipping_method": 100,
    "carrier": 100,
    "tracking_number": 100,
}


def upsert_order(s: Session, account_id: int, o: NormOrder, now: datetime) -> tuple[m.Order, bool]:
    """Insert or update one order and its items; returns the row and whether anything changed."""
    row = s.scalar(
        select(m.Order).where(m.Order.account_id == account_id, m.Order.external_id == o.external_id)
    )
    created = row is None
    if row is None:
        row = m.Order(account_id=account_id, external_id=o.external_id, created_at=now)
        s.add(row)
    changed = created
    for name in ORDER_FIELDS:
        value = getattr(o, name)
        if isinstance(value, str):
            value = clean_text(value, TEXT_LIMITS.get(name))
        if value is None and name in STICKY:
            continue
        if getattr(row, name, None) != value:
            setattr(row, name, value)
            changed = True
    if o.raw:
        row.raw_json = o.raw
    if o.items and (created or not row.items):
        row.items = [
            m.OrderItem(
                sku=clean_text(i.sku, 100),
                title=clean_text(i.title) or "",
                quantity=i.quantity,
                price=i.price,
                currency=i.currency,
            )
            for i in o.items
        ]
        changed = True
    if changed:
        row.updated_at = now
    s.flush()
    if created:
        # Messages that arrived before their order wait for it: link their conversations now.
        s.execute(
            update(m.Conversation)
            .where(
                m.Conversation.account_id == account_id,
                m.Conversation.order_external_id == o.external_id,
                m.Conversation.order_id.is_(None),
            )
            .values(order_id=row.id)
        )
        if row.buyer_id:
            s.execute(
                update(m.Conversation)
                .where(
                    m.Conversation.account_id == account_id,
                    m.Conversation.order_external_id.is_(None),
                    m.Conversation.buyer_id == row.buyer_id,
                    m.Conversation.order_id.is_(None),
                )
                .values(order_id=row.id)
            )
    return row, changed


def _latest_order_of_buyer(s: Session, account_id: int, buyer_id: str) -> int | None:
    return s.scalar(
        select(m.Order.id)
        .where(m.Order.account_id == account_id, m.Order.buyer_id == buyer_id)
        .order_by(m.Order.paid_at.desc().nulls_last(), m.Order.id.desc())
        .limit(1)
    )


def _conversation(s: Session, account_id: int, msg: NormMessage, now: datetime) -> m.Conversation:
    conv = s.scalar(
        select(m.Conversation).where(
            m.Conversation.account_id == account_id,
            m.Conversation.external_id == msg.conversation_external_id,
        )
    )
    if conv is None:
        conv = m.Conversation(
            account_id=account_id,
            external_id=msg.conversation_external_id,
            buyer_id=clean_text(msg.buyer_id, 200),
            buyer_name=clean_text(msg.buyer_name, 200),
            order_external_id=msg.order_external_id,
            created_at=now,
            updated_at=now,
        )
        s.add(conv)
    if msg.order_external_id and conv.order_id is None:
        conv.order_external_id = msg.order_external_id
        conv.order_id = s.scalar(
            select(m.Order.id).where(
                m.Order.account_id == account_id, m.Order.external_id == msg.order_external_id
            )
        )
    elif conv.order_id is None and conv.buyer_id:
        # eBay conversations name a listing, not an order: the buyer's latest order is the best match.
        conv.order_id = _latest_order_of_buyer(s, account_id, conv.buyer_id)
    if conv.last_message_at is None or msg.sent_at > conv.last_message_at:
        conv.last_message_at = msg.sent_at
    s.flush()
    return conv


def upsert_message(s: Session, account_id: int, msg: NormMessage, now: datetime) -> m.Message | None:
    """Store a message once; None when it is already stored (a re-polled page)."""
    conv = _conversation(s, account_id, msg, now)
    exists = s.scalar(
        select(m.Message.id).where(
            m.Message.conversation_id == conv.id, m.Message.external_id == msg.external_id
        )
    )
    if exists is not None:
        return None
    # Only buyer messages are triaged: our own and the marketplace's are never answered (guard 5).
    state = m.TriageState.new if msg.direction == m.MessageDirection.buyer else m.TriageState.skipped
    row = m.Message(
        conversation_id=conv.id,
        external_id=msg.external_id,
        direction=msg.direction,
        body=clean_text(msg.body) or "",
        sent_at=msg.sent_at,
        triage_state=state,
        created_at=now,
        # The poll enqueues triage for it as soon as this batch commits.
        dispatched_at=now if state == m.TriageState.new else None,
    )
    s.add(row)
    s.flush()
    return row


def upsert_dispute(
    s: Session, account_id: int, d: NormDispute, now: datetime
) -> tuple[m.Dispute | None, bool]:
    """Insert or update a dispute; True when it is new (or reopened) and needs a decision."""
    order_id = s.scalar(
        select(m.Order.id).where(m.Order.account_id == account_id, m.Order.external_id == d.order_external_id)
    )
    if order_id is None:
        return None, False  # the orders stream has not delivered its order yet; the overlap brings it back
    row = s.scalar(
        select(m.Dispute).where(m.Dispute.account_id == account_id, m.Dispute.external_id == d.external_id)
    )
    fresh = row is None
    if row is None:
        row = m.Dispute(account_id=account_id, order_id=order_id, external_id=d.external_id, created_at=now)
        s.add(row)
    reopened = not fresh and row.closed_at is not None and d.is_open
    row.reason = clean_text(d.reason, 200) or ""
    row.status = d.status
    row.buyer_request = d.buyer_request
    row.amount = d.amount
    row.currency = d.currency
    row.opened_at = d.opened_at
    row.response_due_at = d.response_due_at
    row.closed_at = None if d.is_open else (d.closed_at or now)
    row.raw_json = d.raw or None
    row.updated_at = now
    if reopened:
        row.triage_state = m.TriageState.new
    if fresh and not d.is_open:
        row.triage_state = m.TriageState.skipped  # closed before we ever saw it: nothing to answer
    if (fresh and d.is_open) or reopened:
        row.dispatched_at = now
    s.flush()
    return row, (fresh and d.is_open) or reopened


def add_tracking(s: Session, order: m.Order, t: NormTracking, now: datetime) -> m.TrackingSnapshot:
    """Record a carrier lookup; the order learns its delivery time from it."""
    snap = m.TrackingSnapshot(
        order_id=order.id,
        tracking_number=t.tracking_number,
        status=t.status.value,
        sub_status=t.sub_status,
        last_event_at=t.last_event_at,
        events_json=[
            {"time": e.time.isoformat(), "location": e.location, "description": e.description}
            for e in t.events
        ],
        fetched_at=now,
    )
    s.add(snap)
    order.tracking_checked_at = now
    if t.status.value == "delivered" and order.delivered_at is None:
        order.delivered_at = t.last_event_at or now
        if order.status == "shipped":
            order.status = "delivered"
        order.updated_at = now
    return snap


class IngestError(Exception):
    """A record the database refused; the message names it by the marketplace's id."""


def _cause(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    return str(inner).strip().splitlines()[0][:300] if str(inner).strip() else type(inner).__name__


def ingest(
    s: Session,
    account_id: int,
    rows: Iterable[Any],
    now: datetime,
    on_order: Callable[[Session, m.Order, datetime], None] | None = None,
) -> IngestResult:
    """Store one batch of records of any stream; `on_order` runs for each changed order (lifecycle plan)."""
    result = IngestResult()
    for rec in rows:
        try:
            _ingest_one(s, account_id, rec, now, on_order, result)
        except Exception as exc:
            name = f"{type(rec).__name__.removeprefix('Norm').lower()} {getattr(rec, 'external_id', '?')}"
            raise IngestError(f"{name}: {_cause(exc)}") from exc
    return result


def waiting_messages(s: Session, order_id: int) -> list[int]:
    """New buyer messages in the order's conversations (they could not be decided without it)."""
    return list(
        s.scalars(
            select(m.Message.id)
            .join(m.Conversation, m.Conversation.id == m.Message.conversation_id)
            .where(m.Conversation.order_id == order_id, m.Message.triage_state == m.TriageState.new)
        )
    )


def _ingest_one(
    s: Session,
    account_id: int,
    rec: Any,
    now: datetime,
    on_order: Callable[[Session, m.Order, datetime], None] | None,
    result: IngestResult,
) -> None:
    if isinstance(rec, NormOrder):
        order, changed = upsert_order(s, account_id, rec, now)
        if changed:
            result.orders.append(order.id)
            # Buyer messages that arrived before their order were waiting for it: decide them now.
            result.new_messages.extend(waiting_messages(s, order.id))
            if on_order is not None:
                on_order(s, order, now)
        else:
            result.duplicates += 1
    elif isinstance(rec, NormMessage):
        msg = upsert_message(s, account_id, rec, now)
        if msg is None:
            result.duplicates += 1
        elif msg.triage_state == m.TriageState.new:
            result.new_messages.append(msg.id)
    elif isinstance(rec, NormDispute):
        dispute, needs_decision = upsert_dispute(s, account_id, rec, now)
        if dispute is not None and needs_decision:
            result.new_disputes.append(dispute.id)
    else:
        raise TypeError(f"cannot ingest {type(rec).__name__}")
