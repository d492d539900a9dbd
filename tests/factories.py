"""Plain-data builders for decision-core tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from connectors.base import Capabilities
from worker.triage.types import Case, Classification, Intent

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

ALIEXPRESS_CAPS = Capabilities(
    send_message=True,
    extend_protection=True,
    refund_full=True,
    refund_partial=True,
    resend=True,
    coupon=True,
    max_extend_days=90,
)
NO_EXTEND_CAPS = Capabilities(send_message=True, refund_full=True, refund_partial=True, resend=True)


def make_case(
    *,
    text: str | None = "Where is my order?",
    shipped_days_ago: int | None = 20,
    status: str = "shipped",
    tracking: str | None = "in_transit",
    events: int = 1,
    method: str = "china_post_small_packet",
    country: str = "US",
    promised: int | None = None,
    total: str = "24.90",
    refunded: str = "0",
    dispute: dict[str, Any] | None = None,
    buyer_name: str | None = "Alex",
    **extra: Any,
) -> Case:
    """A case `shipped_days_ago` days before NOW with the given tracking status."""
    shipped_at = NOW - timedelta(days=shipped_days_ago) if shipped_days_ago is not None else None
    ev = [
        {
            "time": (NOW - timedelta(days=2 + i)).isoformat(),
            "location": "Sort center",
            "description": "Processed",
        }
        for i in range(events)
    ]
    data: dict[str, Any] = {
        "id": "c1",
        "now": NOW.isoformat(),
        "marketplace": "aliexpress",
        "message": {"text": text, "sent_at": (NOW - timedelta(hours=1)).isoformat()} if text else None,
        "dispute": dispute,
        "order": {
            "id": "8000001",
            "status": status,
            "total": total,
            "refunded": refunded,
            "currency": "USD",
            "buyer_name": buyer_name,
            "buyer_country": country,
            "paid_at": (NOW - timedelta(days=(shipped_days_ago or 0) + 2)).isoformat(),
            "shipped_at": shipped_at.isoformat() if shipped_at else None,
            "shipping_method": method,
            "promised_delivery_days": promised,
            "tracking_number": "LP00123456789CN" if shipped_at else None,
            "items": [{"sku": "DR-RED-M", "title": "Summer dress", "quantity": 1, "price": total}],
        },
        "tracking": {
            "status": tracking,
            "last_event_at": ev[0]["time"] if ev else None,
            "events": ev,
        }
        if tracking
        else None,
    }
    data.update(extra)
    return Case.model_validate(data)


def cls(
    intent: Intent | str,
    confidence: float = 0.9,
    *,
    language: str = "en",
    signals: tuple[str, ...] = (),
    runner_up: Intent | None = None,
) -> Classification:
    return Classification(
        language=language, intent=Intent(intent), confidence=confidence, signals=signals, runner_up=runner_up
    )


D = Decimal
