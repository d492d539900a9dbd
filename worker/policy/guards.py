"""The seven guards of policy.md: code, not configuration, applied after every proposal.

Each guard is a function of the proposal and the facts; it may only make the decision safer
(remove a refund, add a protection extension, send to a human). They run in a fixed order in
`apply_guards`, after the marketplace's capabilities have been applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from worker.policy.model import Policy
from worker.triage.types import MONEY_ACTIONS, REFUND_ACTIONS, Action, ActionType, Intent, Scenario

# Guard 1: in these situations the parcel is on its way or was delivered: no refund.
NO_REFUND_SCENARIOS = frozenset(
    {
        Scenario.in_transit.value,
        Scenario.delivered_not_received.value,
        Scenario.awaiting_pickup.value,
        Scenario.customs_held.value,
    }
)
# Intents that do not imply the buyer has the parcel: the logistics situation decides refunds
# for them too, so "I want my money back" on a moving parcel is refused like "where is it".
LOGISTICS_INTENTS = frozenset(
    {
        Intent.not_received,
        Intent.refund_request,
        Intent.cancel_order,
        Intent.change_address,
        Intent.payment,
        Intent.other,
    }
)


@dataclass
class Proposal:
    """A decision under construction; guards and capabilities edit it in place."""

    intent: Intent
    scenario: str
    refund_allowed: bool
    actions: list[Action]
    template: str
    auto_send: bool
    offer_resend: bool = False
    offer_refund: bool = False
    photo_requested: bool = False
    reply_suppressed: bool = False
    reasons: list[str] = field(default_factory=list)

    def has(self, action_type: ActionType) -> bool:
        return any(a.type is action_type for a in self.actions)

    def drop(self, types: frozenset[ActionType] | set[ActionType]) -> list[Action]:
        dropped = [a for a in self.actions if a.type in types]
        self.actions = [a for a in self.actions if a.type not in types]
        return dropped


@dataclass(frozen=True)
class Facts:
    """What the guards need to know about the case."""

    now: datetime
    logistics_scenario: str
    under_protection: bool
    paid: Decimal
    refunded: Decimal
    currency: str
    confidence: float
    conflict: bool
    from_buyer: bool
    auto_responder: bool
    last_auto_reply_at: datetime | None
    can_extend_protection: bool
    max_extend_days: int | None
    marketplace: str


def refund_blocked(p: Proposal, f: Facts) -> bool:
    """Whether guard 1 forbids any refund for this proposal."""
    if p.scenario in NO_REFUND_SCENARIOS:
        return True
    return p.intent in LOGISTICS_INTENTS and f.logistics_scenario in NO_REFUND_SCENARIOS


def guard_refund_cap(p: Proposal, f: Facts) -> None:
    """Guard 7: a refund never exceeds what the buyer paid (less what was already refunded)."""
    remaining = max(Decimal("0"), f.paid - f.refunded)
    kept: list[Action] = []
    for a in p.actions:
        if a.type in REFUND_ACTIONS or a.type is ActionType.coupon:
            if remaining <= 0 and a.type in REFUND_ACTIONS:
                p.reasons.append(f"guard 7: {a.type.value} dropped, order already fully refunded")
                continue
            amount = remaining if a.type is ActionType.refund_full else (a.amount or Decimal("0"))
            if amount > remaining:
                p.reasons.append(f"guard 7: {a.type.value} {amount} capped to paid amount {remaining}")
                amount = remaining
            a = a.model_copy(update={"amount": amount, "currency": f.currency})
        kept.append(a)
    p.actions = kept
    if remaining <= 0 and p.refund_allowed:
        p.refund_allowed = False
        p.offer_refund = False


def guard_no_refund_in_window(p: Proposal, f: Facts) -> None:
    """Guard 1: no refund while the parcel is in transit, delivered, awaiting pickup or at customs."""
    if not refund_blocked(p, f):
        return
    dropped = p.drop(REFUND_ACTIONS)
    if p.refund_allowed or dropped or p.offer_refund:
        scen = p.scenario if p.scenario in NO_REFUND_SCENARIOS else f.logistics_scenario
        p.reasons.append(f"guard 1: no refund while {scen}")
    p.refund_allowed = False
    p.offer_refund = False


def guard_resend_extends_protection(p: Proposal, f: Facts, policy: Policy) -> None:
    """Guard 2: offering a resend on an order under protection extends the protection."""
    resend_offered = p.offer_resend or p.has(ActionType.resend)
    if not (resend_offered and f.under_protection):
        return
    if p.has(ActionType.extend_protection):
        return
    if not f.can_extend_protection:
        # The marketplace cannot extend protection, so a resend would leave the buyer exposed:
        # offer what it allows instead (a refund where one is allowed).
        p.drop({ActionType.resend})
        p.offer_resend = False
        p.reasons.append(
            f"guard 2: {f.marketplace} cannot extend buyer protection, so no resend is offered"
            + ("; refund offered instead" if p.refund_allowed else "")
        )
        if p.refund_allowed:
            p.offer_refund = True
        return
    days = policy.protection.extension_days
    if f.max_extend_days is not None:
        days = min(days, f.max_extend_days)
    p.actions.append(Action(type=ActionType.extend_protection, days=days))
    p.reasons.append(f"guard 2: resend offered, buyer protection extended by {days} days")


def _money_value(a: Action, paid: Decimal) -> Decimal:
    # A resend costs us the goods again: value it at what the buyer paid.
    return paid if a.type is ActionType.resend else (a.amount or Decimal("0"))


def guard_money_needs_human(p: Proposal, f: Facts, policy: Policy) -> None:
    """Guard 3: money actions wait for a human unless the shop allows them under a cap."""
    money = [a for a in p.actions if a.type in MONEY_ACTIONS]
    if not money or not p.auto_send:
        return
    if policy.money.auto_allowed and all(_money_value(a, f.paid) <= policy.money.auto_cap for a in money):
        p.reasons.append(f"money actions within the automatic cap {policy.money.auto_cap}")
        return
    p.auto_send = False
    p.reasons.append("guard 3: money action waits for a human")


def guard_uncertain_needs_human(p: Proposal, f: Facts, policy: Policy) -> None:
    """Guard 4: `other`, low confidence and conflicting readings always wait for a human."""
    why = []
    if p.intent is Intent.other:
        why.append("intent other")
    if f.confidence < policy.auto_send.confidence_threshold:
        why.append(f"confidence {f.confidence:.2f} < {policy.auto_send.confidence_threshold:.2f}")
    if f.conflict:
        why.append("conflicting intents")
    if not why:
        return
    if p.auto_send:
        p.auto_send = False
    if not p.has(ActionType.escalate):
        p.actions.append(Action(type=ActionType.escalate, note=", ".join(why)))
    p.reasons.append(f"guard 4: {', '.join(why)}: a human decides")


def guard_no_ping_pong(p: Proposal, f: Facts, policy: Policy) -> None:
    """Guard 5: never answer our own, system or auto-responder messages; one auto reply per period."""
    if not f.from_buyer or f.auto_responder:
        p.reply_suppressed = True
        p.auto_send = False
        p.reasons.append(
            "guard 5: "
            + ("auto-responder message" if f.from_buyer else "not a buyer message")
            + ", not answered"
        )
        return
    if p.auto_send and f.last_auto_reply_at is not None:
        period = timedelta(hours=policy.auto_send.period_hours)
        if f.now - f.last_auto_reply_at < period:
            p.auto_send = False
            p.reasons.append(
                f"guard 5: an automatic reply went out {f.last_auto_reply_at:%Y-%m-%d %H:%M}, "
                f"within {policy.auto_send.period_hours:g} h"
            )


def apply_guards(p: Proposal, f: Facts, policy: Policy) -> Proposal:
    """Run every guard in order; the result is never less safe than the proposal."""
    guard_refund_cap(p, f)
    guard_no_refund_in_window(p, f)
    guard_resend_extends_protection(p, f, policy)
    guard_money_needs_human(p, f, policy)
    guard_uncertain_needs_human(p, f, policy)
    guard_no_ping_pong(p, f, policy)
    return p


def feedback_request_allowed(*, dispute_open: bool, return_open: bool, complaint: bool) -> tuple[bool, str]:
    """Guard 6: no feedback request while a dispute or return is open, or after a complaint."""
    if dispute_open:
        return False, "guard 6: dispute open"
    if return_open:
        return False, "guard 6: return open"
    if complaint:
        return False, "guard 6: complaint in the conversation"
    return True, ""
