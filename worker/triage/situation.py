"""Resolve the logistics situation of an order from its facts: deadline, days left, scenario.

Pure code. The scenario names follow `shared/spec/triage.md`; the deadline rule follows the
playbook: shipped_at + promised delivery days (the order's own, else the policy table).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from worker.policy.model import Policy
from worker.triage.types import Case, OrderStatus, Scenario, Situation, TrackingStatus

# Tracking states in which the parcel is, as far as anyone knows, still on its way.
MOVING = frozenset(
    {
        TrackingStatus.info_received,
        TrackingStatus.in_transit,
        TrackingStatus.out_for_delivery,
        TrackingStatus.delivery_failure,
        TrackingStatus.exception,
        TrackingStatus.expired,
    }
)
NO_SCAN = frozenset({TrackingStatus.not_found, TrackingStatus.info_received})
DIRECT = {
    TrackingStatus.delivered: Scenario.delivered_not_received,
    TrackingStatus.available_for_pickup: Scenario.awaiting_pickup,
    TrackingStatus.customs_hold: Scenario.customs_held,
    TrackingStatus.lost: Scenario.lost,
    TrackingStatus.returning: Scenario.returned_to_sender,
    TrackingStatus.returned: Scenario.returned_to_sender,
}
UNSHIPPED = frozenset({OrderStatus.unpaid, OrderStatus.paid})


def calendar_days(start: datetime, end: datetime) -> int:
    """Whole calendar days from `start` to `end` (UTC dates), negative when `end` is earlier."""
    return (end.date() - start.date()).days


def deadline_for(case: Case, policy: Policy) -> tuple[datetime | None, int | None, str | None]:
    """Promised delivery deadline, the promised days used, and where they came from."""
    order = case.order
    if order.shipped_at is None:
        return None, None, None
    if order.promised_delivery_days:
        days, source = order.promised_delivery_days, "order"
    else:
        days = policy.promised_days(order.shipping_method, order.buyer_country)
        source = "policy"
    try:
        return order.shipped_at + timedelta(days=days), days, source
    except OverflowError:
        raise ValueError(
            f"order.shipped_at: {order.shipped_at:%Y-%m-%d} + {days} days is beyond year 9999"
        ) from None


def _has_scan(case: Case) -> bool:
    t = case.tracking
    if t is None:
        return False
    if t.events or t.last_event_at is not None:
        return True
    return t.status not in NO_SCAN


def resolve_situation(case: Case, policy: Policy) -> Situation:
    """The not-received scenario and the deadline facts for this order at `case.now`."""
    order, tracking, now = case.order, case.tracking, case.now
    reasons: list[str] = []
    deadline, days, source = deadline_for(case, policy)
    days_left = calendar_days(now, deadline) if deadline else None
    since = calendar_days(order.shipped_at, now) if order.shipped_at else None
    if deadline is not None:
        reasons.append(f"promised {days} days from shipment ({source})")
    passed = deadline is not None and now >= deadline
    status = tracking.status if tracking else None

    if order.shipped_at is None or (order.status in UNSHIPPED and status is None):
        scenario = Scenario.not_shipped_yet
        reasons.append(f"order {order.status.value}, not shipped")
    elif status in DIRECT:
        scenario = DIRECT[status]
        reasons.append(f"tracking {status.value}")
    elif status is None and order.status in (OrderStatus.delivered, OrderStatus.completed):
        scenario = Scenario.delivered_not_received
        reasons.append(f"order marked {order.status.value}, no tracking data")
    elif not _has_scan(case) and since is not None and since >= policy.deadlines.no_scan_lost_after_days:
        # Past the deadline the overdue rule is the stronger claim; before it, no scan means lost.
        scenario = Scenario.overdue if passed else Scenario.no_tracking_info
        reasons.append(
            f"no carrier scan {since} days after shipment (>= {policy.deadlines.no_scan_lost_after_days})"
        )
    else:
        scenario = Scenario.overdue if passed else Scenario.in_transit
        reasons.append(f"tracking {status.value if status else 'unknown'}, parcel moving")

    if deadline is not None:
        reasons.append(
            f"deadline {deadline:%Y-%m-%d} passed" if passed else f"deadline {deadline:%Y-%m-%d} not reached"
        )
    under_protection = order.status in (OrderStatus.shipped, OrderStatus.delivered)
    return Situation(
        scenario=scenario.value,
        deadline=deadline,
        days_left=days_left,
        days_since_shipment=since,
        under_protection=under_protection,
        reasons=tuple(reasons),
    )
