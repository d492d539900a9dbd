"""Pure lifecycle decisions: which mails an order gets, when each is due, and whether one may go now.

No database and no clock here: the sweep loads the facts, passes `now`, and acts on the verdict.
Marketplace rules win over the shop's settings (Amazon: only the review request, 5 to 30 days after
delivery, sent by Amazon itself through the Solicitations API).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from worker.lifecycle.config import Kind, LifecycleConfig, Mode
from worker.policy.guards import feedback_request_allowed
from worker.render import LANGUAGES
from worker.triage.pipeline import COUNTRY_LANGUAGE
from worker.triage.types import OrderStatus

# ------------------------------------------------------------------------- marketplace rules


@dataclass(frozen=True, slots=True)
class MarketplaceRule:
    kinds: frozenset[Kind]
    # The marketplace writes the mail itself when asked (Amazon's review solicitation): no text of ours.
    review_solicitation: bool = False
    # Feedback may be requested only this long after delivery, from the first bound to the second.
    feedback_window: tuple[timedelta, timedelta] | None = None


DEFAULT_RULE = MarketplaceRule(kinds=frozenset(Kind))
MARKETPLACE_RULES: dict[str, MarketplaceRule] = {
    # Amazon sellers cannot message buyers for order updates; the only lifecycle mail is
    # createProductReviewAndSellerFeedbackSolicitation, once per order, 5 to 30 days after delivery.
    "amazon": MarketplaceRule(
        kinds=frozenset({Kind.feedback_request}),
        review_solicitation=True,
        feedback_window=(timedelta(days=5), timedelta(days=30)),
    ),
}

MARKETPLACE_LABELS = {"aliexpress": "AliExpress", "ebay": "eBay", "amazon": "Amazon", "sandbox": "Sandbox"}


def marketplace_rule(marketplace: str) -> MarketplaceRule:
    """The lifecycle rules of a marketplace (every kind allowed unless listed in MARKETPLACE_RULES)."""
    return MARKETPLACE_RULES.get(marketplace, DEFAULT_RULE)


# ------------------------------------------------------------------------------- buyer locale

# The buyer's zone, for quiet hours. Countries spanning several zones get their most populous one:
# quiet hours there may be off by an hour or three at the edges, never by half a day.
COUNTRY_ZONES: dict[str, str] = {
    "US": "America/New_York",
    "CA": "America/Toronto",
    "MX": "America/Mexico_City",
    "BR": "America/Sao_Paulo",
    "AR": "America/Argentina/Buenos_Aires",
    "CL": "America/Santiago",
    "CO": "America/Bogota",
    "PE": "America/Lima",
    "GB": "Europe/London",
    "IE": "Europe/Dublin",
    "PT": "Europe/Lisbon",
    "ES": "Europe/Madrid",
    "FR": "Europe/Paris",
    "BE": "Europe/Brussels",
    "NL": "Europe/Amsterdam",
    "LU": "Europe/Luxembourg",
    "DE": "Europe/Berlin",
    "AT": "Europe/Vienna",
    "CH": "Europe/Zurich",
    "IT": "Europe/Rome",
    "DK": "Europe/Copenhagen",
    "SE": "Europe/Stockholm",
    "NO": "Europe/Oslo",
    "FI": "Europe/Helsinki",
    "PL": "Europe/Warsaw",
    "CZ": "Europe/Prague",
    "SK": "Europe/Bratislava",
    "HU": "Europe/Budapest",
    "RO": "Europe/Bucharest",
    "BG": "Europe/Sofia",
    "GR": "Europe/Athens",
    "LT": "Europe/Vilnius",
    "LV": "Europe/Riga",
    "EE": "Europe/Tallinn",
    "UA": "Europe/Kiev",
    "BY": "Europe/Minsk",
    "RU": "Europe/Moscow",
    "KZ": "Asia/Almaty",
    "TR": "Europe/Istanbul",
    "IL": "Asia/Jerusalem",
    "SA": "Asia/Riyadh",
    "AE": "Asia/Dubai",
    "IN": "Asia/Kolkata",
    "CN": "Asia/Shanghai",
    "KR": "Asia/Seoul",
    "JP": "Asia/Tokyo",
    "SG": "Asia/Singapore",
    "AU": "Australia/Sydney",
    "NZ": "Pacific/Auckland",
    "ZA": "Africa/Johannesburg",
    "MA": "Africa/Casablanca",
}


def buyer_zone(country: str | None, fallback: ZoneInfo) -> ZoneInfo:
    """The buyer's time zone from the country code, else `fallback` (the shop's zone)."""
    name = COUNTRY_ZONES.get((country or "").upper())
    return ZoneInfo(name) if name else fallback


def mail_language(buyer_language: str | None, buyer_country: str | None) -> str:
    """The buyer's language when we have templates for it, else one from the country, else English."""
    if buyer_language:
        code = buyer_language.strip().lower().replace("_", "-").split("-")[0]
        if code in LANGUAGES:
            return code
    return COUNTRY_LANGUAGE.get((buyer_country or "").upper(), "en")


# --------------------------------------------------------------------------------------- facts


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What the rules read of an order (a plain copy of the row, so they stay testable with data)."""

    marketplace: str
    status: OrderStatus
    # When we first saw the order: the unpaid reminder's clock (our orders carry no placement time).
    created_at: datetime
    total: Decimal
    refunded: Decimal = Decimal("0")
    paid_at: datetime | None = None
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None
    completed_at: datetime | None = None
    cancelled_at: datetime | None = None
    promised_delivery_days: int | None = None
    buyer_id: str | None = None
    buyer_country: str | None = None


@dataclass(frozen=True, slots=True)
class Exclusions:
    """What the conversation and disputes of the order say right now."""

    dispute_open: bool = False
    return_open: bool = False
    complaint: bool = False
    opted_out: bool = False


def delivery_reference(f: OrderFacts) -> datetime | None:
    """When the buyer had the parcel: delivered (or confirmed) time; on a marketplace with a feedback
    window but no delivery report (Amazon Orders v0), the promised delivery date instead."""
    if f.delivered_at is not None:
        return f.delivered_at
    if f.completed_at is not None:
        return f.completed_at
    rule = marketplace_rule(f.marketplace)
    if rule.feedback_window is not None and f.status is OrderStatus.shipped and f.promised_delivery_days:
        base = f.shipped_at or f.paid_at
        if base is not None:
            return base + timedelta(days=f.promised_delivery_days)
    return None


def moment(kind: Kind, f: OrderFacts) -> datetime | None:
    """When the kind's clock starts for this order; None while (or once) the order is not in that state."""
    if kind is Kind.unpaid_reminder:
        return f.created_at if f.status is OrderStatus.unpaid else None
    if kind is Kind.payment_confirmed:
        return f.paid_at if f.status is OrderStatus.paid else None
    if kind is Kind.shipped:
        return f.shipped_at if f.status is OrderStatus.shipped else None
    if kind is Kind.delivered:
        # Completed means the buyer already confirmed receipt: nothing left to ask for.
        return f.delivered_at if f.status is OrderStatus.delivered else None
    if kind is Kind.feedback_request:
        if f.status in (OrderStatus.delivered, OrderStatus.completed, OrderStatus.shipped):
            return delivery_reference(f)
        return None
    raise ValueError(f"unknown lifecycle kind {kind!r}")


def due_at(kind: Kind, f: OrderFacts, config: LifecycleConfig) -> datetime | None:
    """When the mail is due: its moment plus the shop's delay, never before a marketplace window opens."""
    start = moment(kind, f)
    if start is None:
        return None
    due = start + timedelta(hours=config.kind(kind).delay_hours)
    window = marketplace_rule(f.marketplace).feedback_window
    if kind is Kind.feedback_request and window is not None:
        due = max(due, start + window[0])
    return due


def too_late(
    kind: Kind, f: OrderFacts, config: LifecycleConfig, now: datetime, *, approved: bool = False
) -> str | None:
    """Why a mail due now would come too late to send (a marketplace window closed, or stale), else None.

    An agent's approval overrides staleness (the wait was theirs), never a marketplace window.
    """
    due = due_at(kind, f, config)
    if due is None:
        return None
    window = marketplace_rule(f.marketplace).feedback_window
    if kind is Kind.feedback_request and window is not None:
        start = moment(kind, f)
        assert start is not None
        if now > start + window[1]:
            return (
                f"{f.marketplace}: review requests only {window[0].days}-{window[1].days} days after delivery "
                f"(delivered {start:%Y-%m-%d})"
            )
        return None
    if not approved and now - due > timedelta(hours=config.stale_after_hours):
        return f"stale: due {due:%Y-%m-%d %H:%M} UTC, more than {config.stale_after_hours:g} h ago"
    return None


# ------------------------------------------------------------------------------------ planning


@dataclass(frozen=True, slots=True)
class Planned:
    kind: Kind
    due_at: datetime
    # Set when the event is recorded as skipped straight away (too late on first sight).
    skip_reason: str | None = None


def plan(f: OrderFacts, config: LifecycleConfig, now: datetime) -> list[Planned]:
    """The lifecycle events an order has reached: one per enabled kind the marketplace allows."""
    if not config.enabled or f.status is OrderStatus.cancelled or f.cancelled_at is not None:
        return []
    rule = marketplace_rule(f.marketplace)
    out: list[Planned] = []
    for kind in Kind:
        if kind not in rule.kinds or not config.kind(kind).enabled:
            continue
        due = due_at(kind, f, config)
        if due is None:
            continue
        out.append(Planned(kind, due, too_late(kind, f, config, now)))
    return out


# ------------------------------------------------------------------------------------ verdicts


class Outcome(StrEnum):
    send = "send"
    skip = "skip"  # never: the event is closed with the reason
    wait = "wait"  # not now: the event stays due until `until`


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    reason: str = ""
    until: datetime | None = None
    mode: Mode | None = None

    @classmethod
    def send(cls, mode: Mode) -> Verdict:
        return cls(Outcome.send, mode=mode)

    @classmethod
    def skip(cls, reason: str) -> Verdict:
        return cls(Outcome.skip, reason=reason)

    @classmethod
    def wait(cls, until: datetime, reason: str) -> Verdict:
        return cls(Outcome.wait, reason=reason, until=until)


def _no_longer_applies(kind: Kind, f: OrderFacts) -> str:
    if kind is Kind.unpaid_reminder:
        return (
            "paid meanwhile" if f.paid_at is not None or f.status is not OrderStatus.unpaid else "not unpaid"
        )
    if kind is Kind.feedback_request:
        return f"order is {f.status.value} with no delivery time: no feedback request"
    return f"order is {f.status.value} now: {kind.value} no longer applies"


def quiet_until(now: datetime, zone: ZoneInfo, start: time, end: time) -> datetime | None:
    """The end of the quiet window (UTC) if `now` falls inside it in `zone`, else None."""
    local = now.astimezone(zone)
    t = local.time().replace(tzinfo=None)
    if start < end:
        inside, end_day = start <= t < end, local.date()
    else:  # the window wraps midnight, e.g. 21:00-08:00
        inside = t >= start or t < end
        end_day = local.date() + timedelta(days=1) if t >= start else local.date()
    if not inside:
        return None
    return datetime.combine(end_day, end, tzinfo=zone).astimezone(UTC)


def day_bounds(now: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """Start and end (UTC) of the calendar day in `zone` that contains `now`."""
    today: date = now.astimezone(zone).date()
    start = datetime.combine(today, time(0), tzinfo=zone)
    end = datetime.combine(today + timedelta(days=1), time(0), tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def evaluate(
    kind: Kind,
    f: OrderFacts,
    ex: Exclusions,
    config: LifecycleConfig,
    now: datetime,
    *,
    approved: bool = False,
) -> Verdict:
    """Whether the mail may go now, re-checking every condition; the daily cap is the sweep's (it counts).

    `approved`: an agent approved it, so its time in the approval queue does not make it stale.
    """
    rule = marketplace_rule(f.marketplace)
    if not config.enabled:
        return Verdict.skip("lifecycle mails disabled for this account")
    if kind not in rule.kinds:
        return Verdict.skip(f"{f.marketplace} does not allow {kind.value}")
    if not config.kind(kind).enabled:
        return Verdict.skip(f"{kind.value} disabled for this account")
    if f.status is OrderStatus.cancelled or f.cancelled_at is not None:
        return Verdict.skip("order cancelled")
    if f.total > 0 and f.refunded >= f.total:
        return Verdict.skip("order refunded")
    if f.buyer_id and f.buyer_id in config.blocklist:
        return Verdict.skip("buyer blocklisted")
    if ex.opted_out:
        return Verdict.skip("buyer opted out")
    if kind is Kind.feedback_request:
        allowed, why = feedback_request_allowed(
            dispute_open=ex.dispute_open, return_open=ex.return_open, complaint=ex.complaint
        )
        if not allowed:
            return Verdict.skip(why)
        if f.refunded > 0:
            return Verdict.skip("order partly refunded: no feedback request")
    elif ex.dispute_open:
        return Verdict.skip("dispute open")
    elif ex.return_open:
        return Verdict.skip("return open")
    elif ex.complaint:
        return Verdict.skip("complaint in the conversation")
    due = due_at(kind, f, config)
    if due is None:
        return Verdict.skip(_no_longer_applies(kind, f))
    late = too_late(kind, f, config, now, approved=approved)
    if late:
        return Verdict.skip(late)
    if now < due:
        # The order's facts moved the moment (a corrected delivery date): wait for the new one.
        return Verdict.wait(due, "not due yet")
    quiet = config.quiet_hours
    if quiet.enabled:
        until = quiet_until(now, buyer_zone(f.buyer_country, config.zone), quiet.start, quiet.end)
        if until is not None:
            return Verdict.wait(until, "quiet hours in the buyer's time zone")
    return Verdict.send(config.kind(kind).mode)
