"""Typed boundary of the decision core: the case it reads and the decision it writes.

The shapes follow `shared/spec/triage.md`. Input models are strict about types and lenient
about unknown extra fields (ignored), so a malformed case fails with an error naming the field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

# A buyer message longer than this is refused rather than classified: nobody writes 64 KB to a
# seller, and such input is either an attack or a bug upstream.
MAX_MESSAGE_CHARS = 20_000


def _aware_utc(value: datetime) -> datetime:
    """Naive datetimes are read as UTC; every datetime leaves as aware UTC."""
    try:
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    except OverflowError:
        # 9999-12-31T23:59:59-14:00 has no UTC equivalent within datetime's range.
        raise ValueError("time is outside the supported range once converted to UTC") from None


UTCDateTime = Annotated[datetime, AfterValidator(_aware_utc)]


class Intent(StrEnum):
    not_received = "not_received"
    quality_issue = "quality_issue"
    wrong_item = "wrong_item"
    missing_item = "missing_item"
    customs_tax = "customs_tax"
    empty_package = "empty_package"
    shipping_method = "shipping_method"
    cancel_order = "cancel_order"
    change_address = "change_address"
    payment = "payment"
    refund_request = "refund_request"
    thanks = "thanks"
    other = "other"


class Scenario(StrEnum):
    """Not-received family; other intents use the intent name as their scenario."""

    not_shipped_yet = "not_shipped_yet"
    no_tracking_info = "no_tracking_info"
    in_transit = "in_transit"
    overdue = "overdue"
    delivered_not_received = "delivered_not_received"
    customs_held = "customs_held"
    lost = "lost"
    returned_to_sender = "returned_to_sender"
    awaiting_pickup = "awaiting_pickup"


NOT_RECEIVED_SCENARIOS = frozenset(s.value for s in Scenario)


class TrackingStatus(StrEnum):
    not_found = "not_found"
    info_received = "info_received"
    in_transit = "in_transit"
    customs_hold = "customs_hold"
    out_for_delivery = "out_for_delivery"
    available_for_pickup = "available_for_pickup"
    delivery_failure = "delivery_failure"
    delivered = "delivered"
    returning = "returning"
    returned = "returned"
    lost = "lost"
    exception = "exception"
    expired = "expired"


class OrderStatus(StrEnum):
    unpaid = "unpaid"
    paid = "paid"
    shipped = "shipped"
    delivered = "delivered"
    completed = "completed"
    cancelled = "cancelled"


class ActionType(StrEnum):
    extend_protection = "extend_protection"
    resend = "resend"
    refund_full = "refund_full"
    refund_partial = "refund_partial"
    coupon = "coupon"
    request_photo = "request_photo"
    request_address_confirmation = "request_address_confirmation"
    escalate = "escalate"


MONEY_ACTIONS = frozenset(
    {ActionType.refund_full, ActionType.refund_partial, ActionType.resend, ActionType.coupon}
)
REFUND_ACTIONS = frozenset({ActionType.refund_full, ActionType.refund_partial})


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False, frozen=True)


class Message(_In):
    text: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    sent_at: UTCDateTime | None = None
    # Where the message came from; the pipeline never answers anything but a buyer.
    direction: Literal["buyer", "seller", "system"] = "buyer"

    @field_validator("text")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("message text is blank")
        return v


class Dispute(_In):
    reason: str = Field(min_length=1, max_length=200)
    opened_at: UTCDateTime | None = None
    buyer_request: Literal["refund", "return", "resend"] | None = None
    amount: Decimal | None = Field(default=None, ge=0)
    status: str | None = None


class Item(_In):
    sku: str | None = None
    title: str = ""
    quantity: int = Field(default=1, ge=0)
    price: Decimal = Field(default=Decimal("0"), ge=0)


class Order(_In):
    id: str = Field(min_length=1, max_length=100)
    status: OrderStatus
    total: Decimal = Field(ge=0)
    currency: str = Field(min_length=3, max_length=3)
    buyer_name: str | None = Field(default=None, max_length=200)
    buyer_country: str | None = Field(default=None, min_length=2, max_length=2)
    paid_at: UTCDateTime | None = None
    shipped_at: UTCDateTime | None = None
    delivered_at: UTCDateTime | None = None
    shipping_method: str | None = None
    promised_delivery_days: int | None = Field(default=None, ge=1, le=365)
    tracking_number: str | None = None
    items: list[Item] = Field(default_factory=list)
    # Already refunded on this order; a new refund never exceeds total - refunded (guard 7).
    refunded: Decimal = Field(default=Decimal("0"), ge=0)

    @field_validator("currency")
    @classmethod
    def _upper_currency(cls, v: str) -> str:
        return v.upper()

    @field_validator("buyer_country")
    @classmethod
    def _upper_country(cls, v: str | None) -> str | None:
        return v.upper() if v else v


class TrackingEvent(_In):
    time: UTCDateTime
    location: str | None = None
    description: str = ""


class Tracking(_In):
    status: TrackingStatus
    sub_status: str | None = None
    last_event_at: UTCDateTime | None = None
    events: list[TrackingEvent] = Field(default_factory=list)

    def latest_event(self) -> TrackingEvent | None:
        return max(self.events, key=lambda e: e.time) if self.events else None


class Case(_In):
    """One situation to decide: a buyer message and/or a dispute, with the order facts."""

    id: str = Field(min_length=1, max_length=200)
    now: UTCDateTime
    marketplace: str = "aliexpress"
    message: Message | None = None
    dispute: Dispute | None = None
    order: Order
    tracking: Tracking | None = None
    # Facts the pipeline knows from the database and the dry run may pass explicitly.
    conversation_id: str | None = None
    last_auto_reply_at: UTCDateTime | None = None
    complaint_in_conversation: bool = False


class Action(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: ActionType
    days: int | None = None
    amount: Decimal | None = None
    currency: str | None = None
    note: str | None = None

    @property
    def is_money(self) -> bool:
        return self.type in MONEY_ACTIONS

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type.value}
        if self.days is not None:
            out["days"] = self.days
        if self.amount is not None:
            out["amount"] = float(self.amount)
            out["currency"] = self.currency
        if self.note:
            out["note"] = self.note
        return out


class Classification(BaseModel):
    """What the buyer wrote: language, intent, and how sure we are."""

    model_config = ConfigDict(frozen=True)

    language: str | None
    intent: Intent
    confidence: float = Field(ge=0.0, le=1.0)
    # The second-best intent when it is close: a conflict a human should look at.
    runner_up: Intent | None = None
    reasons: tuple[str, ...] = ()
    # Extra facts read from the text that the policy may use, from a closed vocabulary:
    # "auto_reply" (out-of-office / auto-responder), "stain", "serious_defect", "minor_defect",
    # "wants_refund", "wants_resend", "wants_cancel", "dispute_threat", "complaint".
    signals: tuple[str, ...] = ()


class Situation(BaseModel):
    """What the order facts say: the scenario and the promised delivery deadline."""

    model_config = ConfigDict(frozen=True)

    scenario: str
    deadline: datetime | None
    days_left: int | None
    days_since_shipment: int | None
    under_protection: bool
    reasons: tuple[str, ...] = ()


class LastEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    time: datetime
    location: str | None = None
    description: str = ""


class ReplyContext(BaseModel):
    """Every variable a reply template may use; templates render with StrictUndefined."""

    model_config = ConfigDict(frozen=True)

    language: str
    shop_name: str
    buyer_name: str | None
    marketplace: str
    order_id: str
    order_status: str
    order_total: Decimal
    currency: str
    items: list[Item]
    tracking_number: str | None
    shipping_method: str | None
    carrier_label: str | None
    shipped_at: datetime | None
    deadline: datetime | None
    days_left: int | None
    days_since_shipment: int | None
    usual_days_min: int | None
    usual_days_max: int | None
    tracking_status: str | None
    last_event: LastEvent | None
    dispute_open: bool
    handling_days: int
    extension_days: int | None
    offer_resend: bool
    offer_refund: bool
    refund_amount: Decimal | None
    coupon_amount: Decimal | None
    photo_requested: bool
    buyer_prefers: Literal["refund", "resend"] | None


class Decision(BaseModel):
    """The output line of the contract, plus what the pipeline needs to act on it."""

    id: str
    language: str | None
    intent: Intent
    confidence: float
    scenario: str
    deadline: datetime | None
    days_left: int | None
    refund_allowed: bool
    actions: list[Action]
    auto_send: bool
    template: str
    reply_language: str
    reply: str
    reasons: list[str]
    # Not part of the output line: what the pipeline needs to act on the decision.
    reply_suppressed: bool = False
    signals: tuple[str, ...] = ()
    context: ReplyContext | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "language": self.language,
            "intent": self.intent.value,
            "confidence": round(self.confidence, 3),
            "scenario": self.scenario,
            # isoformat pads the year (0001-...); strftime("%Y") would not.
            "deadline": self.deadline.isoformat(timespec="seconds").replace("+00:00", "Z")
            if self.deadline
            else None,
            "days_left": self.days_left,
            "refund_allowed": self.refund_allowed,
            "actions": [a.to_json() for a in self.actions],
            "auto_send": self.auto_send,
            "template": self.template,
            "reply_language": self.reply_language,
            "reply": self.reply,
            "reasons": self.reasons,
        }
