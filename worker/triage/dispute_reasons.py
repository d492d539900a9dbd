"""Marketplace dispute reasons mapped onto intents (for a dispute opened without a message).

Marketplaces give a reason as an enum code (eBay: `ITEM_NOT_RECEIVED`, `WRONG_SIZE`...) or as
display text (AliExpress: "The product was not delivered within the promised time"). Codes and
known texts are looked up exactly (after folding case, punctuation and underscores); an unknown
reason falls back to keyword rules, then to `other`, which always goes to a human.
"""

from __future__ import annotations

import re

from worker.triage.types import Intent

# Exact reasons, folded by _key(): lower case, words separated by single spaces.
KNOWN_REASONS: dict[str, Intent] = {
    # eBay inquiries, payment disputes and returns
    "item not received": Intent.not_received,
    "inr": Intent.not_received,
    "arrived late": Intent.not_received,
    "not as described": Intent.quality_issue,
    "significantly not as described": Intent.quality_issue,
    "snad": Intent.quality_issue,
    "defective item": Intent.quality_issue,
    "arrived damaged": Intent.quality_issue,
    "fake or counterfeit": Intent.quality_issue,
    "not authentic": Intent.quality_issue,
    "expired item": Intent.quality_issue,
    "wrong size": Intent.wrong_item,
    "does not fit": Intent.wrong_item,
    "different from listing": Intent.wrong_item,
    "buyer received wrong item": Intent.wrong_item,
    "missing parts": Intent.missing_item,
    "buyer cancel order": Intent.cancel_order,
    "ordered accidentally": Intent.refund_request,
    "ordered wrong item": Intent.refund_request,
    "ordered different item": Intent.refund_request,
    "buyer purchased wrong item": Intent.refund_request,
    "no longer need item": Intent.refund_request,
    "buyer no longer need item": Intent.refund_request,
    "changed mind": Intent.refund_request,
    "found better price": Intent.refund_request,
    "unauthorized payment": Intent.payment,
    "duplicate payment": Intent.payment,
    "duplicate charge": Intent.payment,
    "incorrect amount": Intent.payment,
    # AliExpress issue reasons
    "product not received": Intent.not_received,
    "the product was not delivered within the promised time": Intent.not_received,
    "package not received": Intent.not_received,
    "shipment is on the way but not received": Intent.not_received,
    "quality not as described": Intent.quality_issue,
    "product is different from the description": Intent.wrong_item,
    "product not as described": Intent.wrong_item,
    "received wrong item": Intent.wrong_item,
    "received wrong color": Intent.wrong_item,
    "received wrong size": Intent.wrong_item,
    "shipping method not as described": Intent.shipping_method,
    "package is empty": Intent.empty_package,
    "empty package": Intent.empty_package,
    "customs duties": Intent.customs_tax,
    "quantity not as described": Intent.missing_item,
}

# Fallback rules for reasons not listed above, first match wins: order matters (a reason that
# names both the shipping method and "not as described" is about the shipping method).
KEYWORD_RULES: tuple[tuple[re.Pattern[str], Intent], ...] = tuple(
    (re.compile(rx), intent)
    for rx, intent in (
        (r"\bempty\b", Intent.empty_package),
        (r"\b(customs?|duty|duties|tax|taxes|vat)\b", Intent.customs_tax),
        (r"\b(shipping|delivery|logistics) (method|service|company)\b", Intent.shipping_method),
        (r"\b(missing|incomplete|quantity|parts?)\b", Intent.missing_item),
        (r"\b(wrong|different|size|colou?r|fit)\b", Intent.wrong_item),
        (
            r"\b(quality|damaged?|defective|broken|fake|counterfeit|authentic|described)\b",
            Intent.quality_issue,
        ),
        (
            r"\b(not received|not delivered|never arrived|late|lost|delivery|tracking|inr)\b",
            Intent.not_received,
        ),
        (r"\b(payment|charge|charged|paid|unauthori[sz]ed|duplicate|amount)\b", Intent.payment),
        (r"\bcancel", Intent.cancel_order),
        (r"\b(refund|return|remorse|no longer|changed mind|accident)", Intent.refund_request),
        (r"\baddress\b", Intent.change_address),
    )
)

_SEPARATORS_RE = re.compile(r"[\W_]+")


def _key(reason: str) -> str:
    return _SEPARATORS_RE.sub(" ", reason.casefold()).strip()


def intent_from_dispute(reason: str) -> tuple[Intent, str]:
    """The intent a dispute reason stands for, and a reason line saying how it was found."""
    if not isinstance(reason, str):
        raise TypeError(f"dispute.reason: expected str, got {type(reason).__name__}")
    key = _key(reason)
    if not key:
        return Intent.other, "dispute reason empty: other"
    known = KNOWN_REASONS.get(key)
    if known is not None:
        return known, f"dispute reason '{reason}' -> {known.value}"
    for rx, intent in KEYWORD_RULES:
        m = rx.search(key)
        if m:
            return intent, f"dispute reason '{reason}' -> {intent.value} (keyword '{m.group()}')"
    return Intent.other, f"dispute reason '{reason}' not recognised: other"
