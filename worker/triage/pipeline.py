"""The decision core: classify, resolve the situation, apply the policy, render the reply.

`Triage.decide` is the one code path used by `sellerdesk triage` and by the Celery tasks. It does
no I/O: the caller supplies the case (order facts included), the policy and the capabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.base import Capabilities
from worker.policy.engine import buyer_preference, evaluate
from worker.policy.guards import LOGISTICS_INTENTS, Proposal
from worker.policy.model import Policy
from worker.render import LANGUAGES, Renderer
from worker.triage.classify import classify
from worker.triage.dispute_reasons import intent_from_dispute
from worker.triage.situation import resolve_situation
from worker.triage.types import (
    ActionType,
    Case,
    Classification,
    Decision,
    Intent,
    LastEvent,
    ReplyContext,
    Situation,
)

# Reply language for a dispute with no message: the buyer's country is the best evidence left.
COUNTRY_LANGUAGE = {
    **dict.fromkeys(("BR", "PT", "AO", "MZ"), "pt"),
    **dict.fromkeys(
        (
            "ES",
            "MX",
            "AR",
            "CO",
            "CL",
            "PE",
            "VE",
            "EC",
            "GT",
            "CU",
            "BO",
            "DO",
            "HN",
            "PY",
            "SV",
            "NI",
            "CR",
            "PA",
            "UY",
            "PR",
        ),
        "es",
    ),
    **dict.fromkeys(("RU", "BY", "KZ", "KG"), "ru"),
    **dict.fromkeys(("FR", "BE", "LU", "MC", "SN", "CI", "MA", "DZ", "TN"), "fr"),
    **dict.fromkeys(("DE", "AT", "CH", "LI"), "de"),
}
DISPUTE_CONFIDENCE = 0.95  # a marketplace reason code is structured data, not free text


def classify_case(case: Case, threshold: float) -> tuple[Classification, Intent, list[str]]:
    """Classification of the message (or the dispute) and the intent that decides."""
    reasons: list[str] = []
    dispute_intent: Intent | None = None
    if case.dispute is not None:
        dispute_intent, why = intent_from_dispute(case.dispute.reason)
        reasons.append(f"dispute open: {why}")
    if case.message is None:
        intent = dispute_intent or Intent.other
        conf = DISPUTE_CONFIDENCE if intent is not Intent.other else 0.3
        cls = Classification(
            language=None, intent=intent, confidence=conf, reasons=(f"dispute reason -> {intent.value}",)
        )
        return cls, intent, reasons
    cls = classify(case.message.text)
    intent = cls.intent
    if dispute_intent not in (None, Intent.other) and (intent is Intent.other or cls.confidence < threshold):
        reasons.append(f"message unclear ({intent.value}, {cls.confidence:.2f}): the dispute reason decides")
        intent = dispute_intent
        cls = cls.model_copy(update={"intent": intent, "confidence": max(cls.confidence, threshold)})
    return cls, intent, reasons


def reply_language_for(cls: Classification, case: Case) -> str:
    """The buyer's language when we write it, else a language from the country, else English."""
    if cls.language in LANGUAGES:
        return cls.language
    if cls.language is None and case.order.buyer_country:
        return COUNTRY_LANGUAGE.get(case.order.buyer_country, "en")
    return "en"


def reply_context(
    case: Case,
    p: Proposal,
    situation: Situation,
    policy: Policy,
    language: str,
    shop_name: str,
    prefers: str | None,
) -> ReplyContext:
    """Everything the reply template may say, from the facts and the decision."""
    order, tracking = case.order, case.tracking
    method = policy.method(order.shipping_method)
    latest = tracking.latest_event() if tracking else None
    extension = next((a.days for a in p.actions if a.type is ActionType.extend_protection), None)
    refund = next(
        (a.amount for a in p.actions if a.type in (ActionType.refund_full, ActionType.refund_partial)), None
    )
    if refund is None and p.offer_refund:
        refund = max(order.total - order.refunded, 0)
    coupon = next((a.amount for a in p.actions if a.type is ActionType.coupon), None)
    usual = method.usual_days
    # Every value below comes from validated models: construct without validating them again.
    return ReplyContext.model_construct(
        language=language,
        shop_name=shop_name,
        buyer_name=(order.buyer_name or "").strip() or None,
        marketplace=case.marketplace,
        order_id=order.id,
        order_status=order.status.value,
        order_total=order.total,
        currency=order.currency,
        items=order.items,
        tracking_number=order.tracking_number,
        shipping_method=order.shipping_method,
        carrier_label=method.label if method.label and order.shipping_method else order.shipping_method,
        shipped_at=order.shipped_at,
        deadline=situation.deadline,
        days_left=situation.days_left,
        days_since_shipment=situation.days_since_shipment,
        usual_days_min=usual[0] if usual else None,
        usual_days_max=usual[1] if usual else None,
        tracking_status=tracking.status.value if tracking else None,
        last_event=LastEvent(time=latest.time, location=latest.location, description=latest.description)
        if latest
        else None,
        dispute_open=case.dispute is not None,
        handling_days=policy.orders.handling_days,
        extension_days=extension,
        offer_resend=p.offer_resend,
        offer_refund=p.offer_refund,
        refund_amount=refund,
        coupon_amount=coupon,
        photo_requested=p.photo_requested,
        buyer_prefers=prefers,  # type: ignore[arg-type]
    )


@dataclass
class Triage:
    """Decides cases with one policy, renderer and shop name."""

    policy: Policy
    renderer: Renderer
    shop_name: str = "Our store"

    def decide(self, case: Case, caps: Capabilities) -> Decision:
        """The full decision for one case, reply rendered in the buyer's language."""
        threshold = self.policy.auto_send.confidence_threshold
        cls, intent, reasons = classify_case(case, threshold)
        situation = resolve_situation(case, self.policy)
        p = evaluate(case, cls, intent, situation, self.policy, caps)
        language = reply_language_for(cls, case)
        prefers = buyer_preference(case, cls).prefers
        ctx = reply_context(case, p, situation, self.policy, language, self.shop_name, prefers)
        reply = self.renderer.render_reply(p.template, ctx)
        trail = [*cls.reasons, *reasons]
        if intent in LOGISTICS_INTENTS:
            trail.extend(situation.reasons)
        trail.extend(p.reasons)
        # Built from validated parts (the case, the classification, the guarded proposal).
        return Decision.model_construct(
            id=case.id,
            language=cls.language,
            intent=intent,
            confidence=cls.confidence,
            scenario=p.scenario,
            deadline=situation.deadline,
            days_left=situation.days_left,
            refund_allowed=p.refund_allowed,
            actions=p.actions,
            auto_send=p.auto_send,
            template=p.template,
            reply_language=language,
            reply=reply,
            reasons=trail,
            reply_suppressed=p.reply_suppressed,
            signals=cls.signals,
            context=ctx,
        )
