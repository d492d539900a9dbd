"""The policy engine: from intent + situation to refund, actions, template and auto-send.

`propose` writes down what the playbook says to do; `evaluate` then removes what the marketplace
cannot do and applies the guards. Pure code.
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.base import Capabilities
from worker.policy.guards import Facts, Proposal, apply_guards
from worker.policy.model import Policy
from worker.triage.types import (
    Action,
    ActionType,
    Case,
    Classification,
    Intent,
    OrderStatus,
    Scenario,
    Situation,
)

# Actions that are only words in the reply: every marketplace "supports" them.
REPLY_ONLY = frozenset(
    {ActionType.request_photo, ActionType.request_address_confirmation, ActionType.escalate}
)
UNSHIPPED = frozenset({OrderStatus.unpaid, OrderStatus.paid})
# Scenarios in which the not-received policy refunds (policy.md table, "refund now? yes").
REFUNDABLE_SCENARIOS = frozenset(
    {
        Scenario.overdue.value,
        Scenario.no_tracking_info.value,
        Scenario.lost.value,
        Scenario.returned_to_sender.value,
    }
)


@dataclass(frozen=True)
class Preference:
    """What the buyer asked for, from the message's signals or the dispute."""

    refund: bool
    resend: bool
    cancel: bool

    @property
    def prefers(self) -> str | None:
        if self.resend and not self.refund:
            return "resend"
        if self.refund and not self.resend:
            return "refund"
        return None


def buyer_preference(case: Case, cls: Classification) -> Preference:
    """Read the buyer's preference from signals and the dispute's request."""
    req = case.dispute.buyer_request if case.dispute else None
    return Preference(
        refund="wants_refund" in cls.signals or req == "refund",
        resend="wants_resend" in cls.signals or req == "resend",
        cancel="wants_cancel" in cls.signals or cls.intent is Intent.cancel_order,
    )


def _not_received(scenario: str, pref: Preference, p: Proposal) -> None:
    refund = Action(type=ActionType.refund_full)
    resend = Action(type=ActionType.resend)
    if scenario == Scenario.not_shipped_yet.value:
        p.refund_allowed = pref.cancel
        if pref.cancel:
            p.offer_refund = True
            p.actions.append(refund)
            p.reasons.append("buyer wants to cancel an unshipped order: full refund")
    elif scenario == Scenario.overdue.value:
        p.refund_allowed = p.offer_refund = p.offer_resend = True
        p.actions.append(resend if pref.prefers == "resend" else refund)
        p.reasons.append("deadline passed: full refund, or resend if the buyer prefers")
    elif scenario == Scenario.no_tracking_info.value:
        p.refund_allowed = p.offer_refund = p.offer_resend = True
        p.actions.append(refund if pref.prefers == "refund" else resend)
        p.reasons.append("no carrier scan: treated as lost, resend (refund if the buyer will not wait)")
    elif scenario == Scenario.lost.value:
        p.refund_allowed = p.offer_refund = p.offer_resend = True
        if pref.prefers:
            p.actions.append(refund if pref.prefers == "refund" else resend)
            p.reasons.append(f"parcel lost: buyer chose {pref.prefers}")
        else:
            p.reasons.append("parcel lost: buyer chooses between resend and full refund")
    elif scenario == Scenario.returned_to_sender.value:
        p.refund_allowed = p.offer_refund = p.offer_resend = True
        p.actions.append(Action(type=ActionType.request_address_confirmation))
        if pref.prefers:
            p.actions.append(refund if pref.prefers == "refund" else resend)
        p.reasons.append("returned to sender: confirm the address; resend or refund")
    else:  # in_transit, delivered_not_received, awaiting_pickup, customs_held
        p.refund_allowed = False


def propose(
    case: Case, cls: Classification, situation: Situation, intent: Intent, policy: Policy, logistics: str
) -> Proposal:
    """What the playbook does for this intent and situation, before capabilities and guards."""
    scenario = situation.scenario if intent is Intent.not_received else intent.value
    pref = buyer_preference(case, cls)
    comp = policy.compensation
    p = Proposal(
        intent=intent,
        scenario=scenario,
        refund_allowed=False,
        actions=[],
        template=f"{intent.value}/default",
        auto_send=False,
    )
    shipped = case.order.status not in UNSHIPPED and case.order.shipped_at is not None

    if intent is Intent.not_received:
        p.template = f"not_received/{scenario}"
        _not_received(scenario, pref, p)
    elif intent is Intent.quality_issue:
        p.refund_allowed = True
        p.photo_requested = True
        p.actions.append(Action(type=ActionType.request_photo))
        if "stain" in cls.signals:
            p.template = "quality_issue/stain"
            p.reasons.append("stain: suggest washing, offer to pay the laundry")
        else:
            p.reasons.append("quality issue: photos first, then partial refund or replacement")
    elif intent is Intent.wrong_item:
        p.refund_allowed = True
        p.photo_requested = True
        p.actions.append(Action(type=ActionType.request_photo, note="item and SKU sticker"))
        p.reasons.append("wrong item: photo of the item and the SKU sticker first")
    elif intent is Intent.missing_item:
        p.refund_allowed = True
        p.reasons.append("missing item: ask to check the parcel again (parts packed separately)")
    elif intent is Intent.customs_tax:
        p.refund_allowed = True
        p.actions.append(Action(type=ActionType.coupon, amount=comp.customs_tax_coupon))
        p.reasons.append("customs tax: not ours to bear, a coupon on the next order")
    elif intent is Intent.empty_package:
        p.photo_requested = True
        p.actions.append(Action(type=ActionType.request_photo, note="parcel and label"))
        p.reasons.append("empty parcel: ask whether it was damaged, check with family")
    elif intent is Intent.shipping_method:
        p.refund_allowed = True
        p.reasons.append("other carrier than chosen: partial refund only if it cost the buyer extra")
    elif intent is Intent.cancel_order:
        if not shipped:
            p.refund_allowed = p.offer_refund = True
            p.actions.append(Action(type=ActionType.refund_full))
            p.reasons.append("cancel before shipment: full refund")
        else:
            p.reasons.append("already shipped: cannot be cancelled")
    elif intent is Intent.change_address:
        if not shipped:
            p.actions.append(Action(type=ActionType.request_address_confirmation))
            p.reasons.append("not shipped yet: ask for the full new address")
        else:
            p.reasons.append("already shipped: address can no longer be changed")
    elif intent is Intent.refund_request:
        if not shipped:
            p.refund_allowed = p.offer_refund = True
            p.actions.append(Action(type=ActionType.refund_full))
            p.reasons.append("refund before shipment: cancel and refund")
        elif logistics in REFUNDABLE_SCENARIOS:
            _not_received(logistics, pref, p)
            p.reasons.append(f"refund request, parcel {logistics}")
        else:
            p.reasons.append(f"refund request, parcel {logistics}: ask the reason")
    # payment, thanks, other: a reply and nothing more.

    p.auto_send = policy.auto_send.enabled and p.template in policy.auto_send.templates
    return p


def apply_capabilities(p: Proposal, caps: Capabilities, marketplace: str) -> None:
    """Remove actions the marketplace cannot perform, saying so in the reasons."""
    kept = []
    for a in p.actions:
        if a.type in REPLY_ONLY or caps.allows(a.type.value):
            kept.append(a)
        else:
            p.reasons.append(f"{marketplace} cannot {a.type.value}: not proposed")
    p.actions = kept
    if not caps.resend:
        p.offer_resend = False
    if not (caps.refund_full or caps.refund_partial):
        p.offer_refund = False


def evaluate(
    case: Case,
    cls: Classification,
    intent: Intent,
    situation: Situation,
    policy: Policy,
    caps: Capabilities,
) -> Proposal:
    """The policy's decision for a case: proposal, capabilities, then the guards."""
    logistics = situation.scenario
    p = propose(case, cls, situation, intent, policy, logistics)
    apply_capabilities(p, caps, case.marketplace)
    conflict = cls.runner_up is not None
    facts = Facts(
        now=case.now,
        logistics_scenario=logistics,
        under_protection=situation.under_protection,
        paid=case.order.total,
        refunded=case.order.refunded,
        currency=case.order.currency,
        confidence=cls.confidence,
        conflict=conflict,
        from_buyer=case.message is None or case.message.direction == "buyer",
        auto_responder="auto_reply" in cls.signals,
        last_auto_reply_at=case.last_auto_reply_at,
        can_extend_protection=caps.extend_protection,
        max_extend_days=caps.max_extend_days,
        marketplace=case.marketplace,
    )
    return apply_guards(p, facts, policy)
