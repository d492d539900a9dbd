"""The data model (SQLAlchemy 2.0). Every datetime column is aware UTC, every amount a Decimal beside its currency.

States are plain strings guarded by CHECK constraints; the StrEnums below list the allowed values. Loops
that claim work (triage, drafts due, outbox, actions, lifecycle sweep) each have an index on
(state, due time). Crash safety for triage: the worker bumps `triage_attempts` in its own committed
transaction before it starts; when the count passes `settings.triage_max_attempts` the row's
`triage_state` becomes `quarantined` and a `Quarantine` row says why, for a human to release.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from worker.db import JSONDoc, Money, UTCDateTime, utcnow
from worker.triage.types import ActionType, OrderStatus, TrackingStatus

# Deterministic constraint names: identical on SQLite and PostgreSQL, so later migrations can name them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Marketplace(StrEnum):
    aliexpress = "aliexpress"
    ebay = "ebay"
    amazon = "amazon"
    sandbox = "sandbox"


class MessageDirection(StrEnum):
    buyer = "buyer"
    seller = "seller"
    system = "system"


class TriageState(StrEnum):
    new = "new"
    processing = "processing"
    done = "done"
    skipped = "skipped"
    quarantined = "quarantined"


class BuyerRequest(StrEnum):
    refund = "refund"
    return_ = "return"
    resend = "resend"


class DraftState(StrEnum):
    pending = "pending"
    approved = "approved"
    sent = "sent"
    rejected = "rejected"
    failed = "failed"
    snoozed = "snoozed"
    cancelled = "cancelled"


class OutboxKind(StrEnum):
    reply = "reply"
    lifecycle = "lifecycle"


class OutboxState(StrEnum):
    pending = "pending"
    sending = "sending"
    sent = "sent"
    failed = "failed"
    cancelled = "cancelled"
    # The marketplace call may or may not have gone through (timeout mid-send): never retried blindly.
    uncertain = "uncertain"


class ActionState(StrEnum):
    proposed = "proposed"
    approved = "approved"
    executing = "executing"
    done = "done"
    rejected = "rejected"
    failed = "failed"
    uncertain = "uncertain"


class LifecycleState(StrEnum):
    due = "due"
    enqueued = "enqueued"
    sent = "sent"
    skipped = "skipped"
    failed = "failed"


class Role(StrEnum):
    agent = "agent"
    supervisor = "supervisor"
    admin = "admin"


def _one_of(column: str, values: Iterable[str]) -> CheckConstraint:
    allowed = ", ".join(f"'{value}'" for value in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=f"{column}_valid")


class Base(DeclarativeBase):
    """Mapped[datetime] columns store aware UTC, Mapped[Decimal] columns are Money, dict/list are JSON."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        Decimal: Money(),
        dict[str, Any]: JSONDoc,
        list[Any]: JSONDoc,
    }


class Account(Base):
    """A seller account on one marketplace; credentials are Fernet-encrypted (see worker.crypto)."""

    __tablename__ = "accounts"
    __table_args__ = (
        UniqueConstraint("marketplace", "name"),
        _one_of("marketplace", Marketplace),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    marketplace: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    credentials_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Per-account overrides of settings and policy, e.g. {"policy_file": "...", "policy": {...}}.
    settings_json: Mapped[dict[str, Any]] = mapped_column(default=dict)
    paused: Mapped[bool] = mapped_column(default=False)
    paused_reason: Mapped[str | None] = mapped_column(Text)
    paused_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("account_id", "external_id"),
        _one_of("status", OrderStatus),
        Index("ix_orders_account_updated", "account_id", "updated_at"),
        Index("ix_orders_status_updated", "status", "updated_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    external_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))
    total: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    refunded_total: Mapped[Decimal] = mapped_column(default=Decimal("0.00"))
    buyer_id: Mapped[str | None] = mapped_column(String(200))
    buyer_name: Mapped[str | None] = mapped_column(String(200))
    buyer_country: Mapped[str | None] = mapped_column(String(2))
    buyer_language: Mapped[str | None] = mapped_column(String(8))
    paid_at: Mapped[datetime | None]
    shipped_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    # End of buyer protection as the marketplace reports it (AliExpress timeout_left_time); extensions move it.
    protection_ends_at: Mapped[datetime | None]
    shipping_method: Mapped[str | None] = mapped_column(String(100))
    carrier: Mapped[str | None] = mapped_column(String(100))
    tracking_number: Mapped[str | None] = mapped_column(String(100))
    # When the carrier was last asked about this parcel (the tracking refresh picks the oldest first).
    tracking_checked_at: Mapped[datetime | None]
    promised_delivery_days: Mapped[int | None]
    handling_days: Mapped[int | None]
    # Parcel weights for the missing-item check (policy: estimated vs. actual).
    estimated_weight_grams: Mapped[int | None]
    actual_weight_grams: Mapped[int | None]
    raw_json: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="OrderItem.id"
    )


class OrderItem(Base):
    __tablename__ = "order_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    sku: Mapped[str | None] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(Text, default="")
    quantity: Mapped[int] = mapped_column(default=1)
    price: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))

    order: Mapped[Order] = relationship(back_populates="items")


class TrackingSnapshot(Base):
    """One carrier lookup; the newest per order (index order_id, fetched_at) is the current tracking."""

    __tablename__ = "tracking_snapshots"
    __table_args__ = (
        _one_of("status", TrackingStatus),
        Index("ix_tracking_snapshots_order_fetched", "order_id", "fetched_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    tracking_number: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(30))
    sub_status: Mapped[str | None] = mapped_column(String(100))
    last_event_at: Mapped[datetime | None]
    events_json: Mapped[list[Any]] = mapped_column(default=list)
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow)


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("account_id", "external_id"),
        # Buyer-wide checks (opt-out, linking eBay conversations to the buyer's orders).
        Index("ix_conversations_account_buyer", "account_id", "buyer_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    external_id: Mapped[str] = mapped_column(String(200))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True)
    # The marketplace's order id as the message named it: links the conversation once the order arrives.
    order_external_id: Mapped[str | None] = mapped_column(String(100))
    buyer_id: Mapped[str | None] = mapped_column(String(200))
    buyer_name: Mapped[str | None] = mapped_column(String(200))
    last_message_at: Mapped[datetime | None]
    last_auto_reply_at: Mapped[datetime | None]
    # A complaint was seen here: no feedback request for this order (policy guard 6).
    complaint: Mapped[bool] = mapped_column(default=False)
    opted_out: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    messages: Mapped[list[Message]] = relationship(back_populates="conversation", order_by="Message.id")


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("conversation_id", "external_id"),
        _one_of("direction", MessageDirection),
        _one_of("triage_state", TriageState),
        Index("ix_messages_triage", "triage_state", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    external_id: Mapped[str] = mapped_column(String(200))
    direction: Mapped[str] = mapped_column(String(10))
    body: Mapped[str] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(8))
    sent_at: Mapped[datetime | None]
    is_auto_reply: Mapped[bool] = mapped_column(default=False)
    triage_state: Mapped[str] = mapped_column(String(20), default=TriageState.new)
    triage_attempts: Mapped[int] = mapped_column(default=0)
    # When a triage task was last enqueued for it; dispatch re-enqueues only long-silent ones.
    dispatched_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class Dispute(Base):
    __tablename__ = "disputes"
    __table_args__ = (
        UniqueConstraint("account_id", "external_id"),
        _one_of("buyer_request", BuyerRequest),
        _one_of("triage_state", TriageState),
        Index("ix_disputes_triage", "triage_state", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(200))
    # The marketplace's own status word (WAIT_SELLER_CONFIRM_REFUND, ...); closed_at says whether it is open.
    status: Mapped[str | None] = mapped_column(String(50))
    buyer_request: Mapped[str | None] = mapped_column(String(10))
    amount: Mapped[Decimal | None]
    currency: Mapped[str | None] = mapped_column(String(3))
    opened_at: Mapped[datetime | None]
    response_due_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    triage_state: Mapped[str] = mapped_column(String(20), default=TriageState.new)
    triage_attempts: Mapped[int] = mapped_column(default=0)
    dispatched_at: Mapped[datetime | None]
    raw_json: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Decision(Base):
    """Triage output for one source (a message, or a dispute alone): exactly one per source_key."""

    __tablename__ = "decisions"
    __table_args__ = (CheckConstraint("message_id IS NOT NULL OR dispute_id IS NOT NULL", name="has_source"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # "msg:<message id>" or "dispute:<dispute id>" (see source_key_for); the unique index makes a retried
    # triage task find the decision it already took instead of taking a second one.
    source_key: Mapped[str] = mapped_column(String(100), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), unique=True)
    dispute_id: Mapped[int | None] = mapped_column(ForeignKey("disputes.id"), index=True)
    intent: Mapped[str] = mapped_column(String(30))
    language: Mapped[str | None] = mapped_column(String(8))
    confidence: Mapped[float] = mapped_column(Float)
    scenario: Mapped[str] = mapped_column(String(40))
    refund_allowed: Mapped[bool]
    auto_send: Mapped[bool]
    template: Mapped[str] = mapped_column(String(100))
    reply_language: Mapped[str] = mapped_column(String(8))
    reasons_json: Mapped[list[Any]] = mapped_column(default=list)
    actions_json: Mapped[list[Any]] = mapped_column(default=list)
    deadline: Mapped[datetime | None]
    days_left: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @staticmethod
    def source_key_for(message_id: int | None, dispute_id: int | None) -> str:
        """The source key: the message when there is one, else the dispute."""
        if message_id is not None:
            return f"msg:{message_id}"
        if dispute_id is not None:
            return f"dispute:{dispute_id}"
        raise ValueError("a decision needs a message or a dispute")


class User(Base):
    __tablename__ = "users"
    __table_args__ = (_one_of("role", Role),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    accounts: Mapped[list[Account]] = relationship(secondary="user_accounts", order_by="Account.id")


class UserAccount(Base):
    """The accounts a user may see and act on."""

    __tablename__ = "user_accounts"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # Only a hash is stored; the token itself is shown once when created.
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]


class Draft(Base):
    """A reply waiting for a human (or for its undo window when automatic); one per decision."""

    __tablename__ = "drafts"
    __table_args__ = (
        _one_of("state", DraftState),
        Index("ix_drafts_state_send_after", "state", "send_after"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"), index=True)
    state: Mapped[str] = mapped_column(String(20), default=DraftState.pending)
    original_text: Mapped[str] = mapped_column(Text)
    edited_text: Mapped[str | None] = mapped_column(Text)
    template: Mapped[str] = mapped_column(String(100))
    language: Mapped[str] = mapped_column(String(8))
    auto: Mapped[bool] = mapped_column(default=False)
    # Automatic replies go out after this moment unless someone cancels them (the undo window).
    send_after: Mapped[datetime | None]
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reviewed_at: Mapped[datetime | None]
    reject_reason: Mapped[str | None] = mapped_column(Text)
    snoozed_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Outbox(Base):
    """One row per intended send; the unique idempotency key makes a second enqueue of the same send fail."""

    __tablename__ = "outbox"
    __table_args__ = (
        _one_of("kind", OutboxKind),
        _one_of("state", OutboxState),
        Index("ix_outbox_state_not_before", "state", "not_before"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    # Lifecycle mails have no draft.
    draft_id: Mapped[int | None] = mapped_column(ForeignKey("drafts.id"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(20), default=OutboxState.pending)
    attempts: Mapped[int] = mapped_column(default=0)
    not_before: Mapped[datetime] = mapped_column(default=utcnow)
    # When a send task was last enqueued for it: one task per row, not one per dispatch run.
    dispatched_at: Mapped[datetime | None]
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    marketplace_message_id: Mapped[str | None] = mapped_column(String(200))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ProposedAction(Base):
    """An action a decision proposes (extend protection, refund, resend, coupon...), approved then executed."""

    __tablename__ = "proposed_actions"
    __table_args__ = (
        _one_of("type", ActionType),
        _one_of("state", ActionState),
        Index("ix_proposed_actions_state", "state", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"), index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    type: Mapped[str] = mapped_column(String(40))
    amount: Mapped[Decimal | None]
    currency: Mapped[str | None] = mapped_column(String(3))
    days: Mapped[int | None]
    note: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(20), default=ActionState.proposed)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    approved_at: Mapped[datetime | None]
    # Why a reviewer approved beyond what the policy proposed (kept for the audit trail).
    override_reason: Mapped[str | None] = mapped_column(Text)
    executed_at: Mapped[datetime | None]
    external_ref: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    dispatched_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class LifecycleEvent(Base):
    """A lifecycle mail (unpaid reminder, shipped, feedback request...): at most one per order and kind."""

    __tablename__ = "lifecycle_events"
    __table_args__ = (
        UniqueConstraint("order_id", "kind"),
        _one_of("state", LifecycleState),
        Index("ix_lifecycle_events_state_due", "state", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    kind: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(20), default=LifecycleState.due)
    due_at: Mapped[datetime]
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"))
    skip_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PollCursor(Base):
    """Where incremental polling of one stream (orders, messages, disputes...) of an account stands."""

    __tablename__ = "poll_cursors"
    __table_args__ = (UniqueConstraint("account_id", "stream"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    stream: Mapped[str] = mapped_column(String(50))
    # Opaque to everything but its connector (a timestamp, a page token, JSON...).
    cursor: Mapped[str | None] = mapped_column(Text)
    # Held by the worker polling this stream now; an expired lease belongs to a dead worker.
    leased_until: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class AuditLog(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_object", "object_type", "object_id"),
        Index("ix_audit_log_at", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    # A user id as text, or "system" / "cli".
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(100))
    object_type: Mapped[str] = mapped_column(String(50))
    object_id: Mapped[str | None] = mapped_column(String(100))
    details_json: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Quarantine(Base):
    """Work set aside after repeated failures (or worker deaths) until a human releases it."""

    __tablename__ = "quarantine"
    __table_args__ = (UniqueConstraint("kind", "object_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # What was set aside: "message", "dispute", "outbox", "action"...; object_id is that row's id.
    kind: Mapped[str] = mapped_column(String(50))
    object_id: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    released_at: Mapped[datetime | None]
