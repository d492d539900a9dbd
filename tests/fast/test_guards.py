"""The seven guards of policy.md, each on its own, then as properties over random cases and policies."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import ALIEXPRESS_CAPS, NO_EXTEND_CAPS, NOW, cls, make_case
from worker.policy.engine import evaluate
from worker.policy.guards import (
    NO_REFUND_SCENARIOS,
    Facts,
    Proposal,
    feedback_request_allowed,
    guard_money_needs_human,
    guard_no_ping_pong,
    guard_no_refund_in_window,
    guard_refund_cap,
    guard_resend_extends_protection,
    guard_uncertain_needs_human,
)
from worker.policy.load import default_policy, policy_from_overrides
from worker.triage.situation import resolve_situation
from worker.triage.types import MONEY_ACTIONS, REFUND_ACTIONS, Action, ActionType, Intent

POLICY = default_policy()
ALL_TEMPLATES = sorted(POLICY.auto_send.templates) + [
    "not_received/overdue",
    "not_received/lost",
    "not_received/no_tracking_info",
    "not_received/returned_to_sender",
    "customs_tax/default",
    "cancel_order/default",
    "refund_request/default",
    "other/default",
    "payment/default",
    "quality_issue/stain",
    "shipping_method/default",
]


def facts(**kw) -> Facts:
    base = dict(
        now=NOW,
        logistics_scenario="in_transit",
        under_protection=True,
        paid=Decimal("24.90"),
        refunded=Decimal("0"),
        currency="USD",
        confidence=0.9,
        conflict=False,
        from_buyer=True,
        auto_responder=False,
        last_auto_reply_at=None,
        can_extend_protection=True,
        max_extend_days=None,
        marketplace="aliexpress",
    )
    base.update(kw)
    return Facts(**base)


def proposal(**kw) -> Proposal:
    base = dict(
        intent=Intent.not_received,
        scenario="overdue",
        refund_allowed=True,
        actions=[],
        template="not_received/overdue",
        auto_send=True,
    )
    base.update(kw)
    return Proposal(**base)


# ---- guard 1
@pytest.mark.parametrize("scenario", sorted(NO_REFUND_SCENARIOS))
def test_guard1_removes_refunds_in_window(scenario):
    p = proposal(
        scenario=scenario,
        offer_refund=True,
        actions=[
            Action(type=ActionType.refund_full),
            Action(type=ActionType.refund_partial, amount=Decimal(1)),
        ],
    )
    guard_no_refund_in_window(p, facts(logistics_scenario=scenario))
    assert not p.refund_allowed and not p.offer_refund
    assert not any(a.type in REFUND_ACTIONS for a in p.actions)
    assert any("guard 1" in r for r in p.reasons)


def test_guard1_applies_to_refund_request_on_moving_parcel():
    p = proposal(
        intent=Intent.refund_request, scenario="refund_request", actions=[Action(type=ActionType.refund_full)]
    )
    guard_no_refund_in_window(p, facts(logistics_scenario="in_transit"))
    assert not p.refund_allowed and not p.actions


def test_guard1_leaves_received_goods_alone():
    # A quality problem means the buyer has the goods; the tracking state does not block compensation.
    p = proposal(
        intent=Intent.quality_issue,
        scenario="quality_issue",
        actions=[Action(type=ActionType.refund_partial, amount=Decimal(2))],
    )
    guard_no_refund_in_window(p, facts(logistics_scenario="delivered_not_received"))
    assert p.refund_allowed and p.actions


# ---- guard 2
def test_guard2_resend_extends_protection():
    p = proposal(actions=[Action(type=ActionType.resend)], offer_resend=True)
    guard_resend_extends_protection(p, facts(), POLICY)
    ext = [a for a in p.actions if a.type is ActionType.extend_protection]
    assert len(ext) == 1 and ext[0].days == 30


def test_guard2_offer_alone_extends_too():
    p = proposal(actions=[], offer_resend=True)
    guard_resend_extends_protection(p, facts(), POLICY)
    assert any(a.type is ActionType.extend_protection for a in p.actions)


def test_guard2_days_capped_by_marketplace():
    p = proposal(actions=[Action(type=ActionType.resend)])
    guard_resend_extends_protection(p, facts(max_extend_days=10), POLICY)
    assert [a.days for a in p.actions if a.type is ActionType.extend_protection] == [10]


def test_guard2_not_under_protection_no_extension():
    p = proposal(actions=[Action(type=ActionType.resend)])
    guard_resend_extends_protection(p, facts(under_protection=False), POLICY)
    assert not any(a.type is ActionType.extend_protection for a in p.actions)


def test_guard2_cannot_extend_means_no_resend_offer():
    p = proposal(actions=[Action(type=ActionType.resend)], offer_resend=True)
    guard_resend_extends_protection(p, facts(can_extend_protection=False, marketplace="ebay"), POLICY)
    assert not p.offer_resend and not any(a.type is ActionType.resend for a in p.actions)
    assert p.offer_refund
    assert any("ebay cannot extend buyer protection" in r for r in p.reasons)


# ---- guard 3
def test_guard3_money_waits_for_human():
    p = proposal(actions=[Action(type=ActionType.refund_full, amount=Decimal("24.90"))])
    guard_money_needs_human(p, facts(), POLICY)
    assert p.auto_send is False


def test_guard3_auto_money_under_cap_when_allowed():
    pol = policy_from_overrides({"money": {"auto_allowed": True, "auto_cap": "5"}})
    p = proposal(actions=[Action(type=ActionType.coupon, amount=Decimal("3"))])
    guard_money_needs_human(p, facts(), pol)
    assert p.auto_send is True
    p = proposal(actions=[Action(type=ActionType.coupon, amount=Decimal("6"))])
    guard_money_needs_human(p, facts(), pol)
    assert p.auto_send is False


def test_guard3_resend_is_valued_at_the_order():
    pol = policy_from_overrides({"money": {"auto_allowed": True, "auto_cap": "5"}})
    p = proposal(actions=[Action(type=ActionType.resend)])
    guard_money_needs_human(p, facts(paid=Decimal("24.90")), pol)
    assert p.auto_send is False


# ---- guard 4
@pytest.mark.parametrize(
    ("intent", "conf", "conflict"),
    [(Intent.other, 0.99, False), (Intent.not_received, 0.3, False), (Intent.not_received, 0.95, True)],
)
def test_guard4_uncertain_waits(intent, conf, conflict):
    p = proposal(intent=intent, scenario="in_transit")
    guard_uncertain_needs_human(p, facts(confidence=conf, conflict=conflict), POLICY)
    assert p.auto_send is False and any(a.type is ActionType.escalate for a in p.actions)


def test_guard4_confident_stays_auto():
    p = proposal(intent=Intent.not_received, scenario="in_transit")
    guard_uncertain_needs_human(p, facts(confidence=0.95), POLICY)
    assert p.auto_send is True and not p.actions


# ---- guard 5
def test_guard5_no_reply_to_auto_responder_or_system():
    for f in (facts(auto_responder=True), facts(from_buyer=False)):
        p = proposal(scenario="in_transit")
        guard_no_ping_pong(p, f, POLICY)
        assert p.reply_suppressed and not p.auto_send


def test_guard5_one_auto_reply_per_period():
    p = proposal(scenario="in_transit")
    guard_no_ping_pong(p, facts(last_auto_reply_at=NOW - timedelta(hours=3)), POLICY)
    assert p.auto_send is False and not p.reply_suppressed
    p = proposal(scenario="in_transit")
    guard_no_ping_pong(p, facts(last_auto_reply_at=NOW - timedelta(hours=30)), POLICY)
    assert p.auto_send is True


# ---- guard 6
def test_guard6_feedback_request():
    assert feedback_request_allowed(dispute_open=False, return_open=False, complaint=False) == (True, "")
    for kw in ({"dispute_open": True}, {"return_open": True}, {"complaint": True}):
        args = {"dispute_open": False, "return_open": False, "complaint": False, **kw}
        ok, why = feedback_request_allowed(**args)
        assert not ok and why.startswith("guard 6")


# ---- guard 7
def test_guard7_full_refund_is_what_remains():
    p = proposal(actions=[Action(type=ActionType.refund_full)])
    guard_refund_cap(p, facts(paid=Decimal("24.90"), refunded=Decimal("4.90")))
    assert p.actions[0].amount == Decimal("20.00")


def test_guard7_partial_capped():
    p = proposal(actions=[Action(type=ActionType.refund_partial, amount=Decimal("100"))])
    guard_refund_cap(p, facts(paid=Decimal("24.90")))
    assert p.actions[0].amount == Decimal("24.90") and any("guard 7" in r for r in p.reasons)


def test_guard7_fully_refunded_order_gets_nothing():
    p = proposal(actions=[Action(type=ActionType.refund_full)], offer_refund=True)
    guard_refund_cap(p, facts(paid=Decimal("24.90"), refunded=Decimal("24.90")))
    assert not p.actions and not p.refund_allowed and not p.offer_refund


# ---- properties over random orders, trackings and policies
TRACKING = st.sampled_from(
    [
        "not_found",
        "info_received",
        "in_transit",
        "customs_hold",
        "out_for_delivery",
        "available_for_pickup",
        "delivery_failure",
        "delivered",
        "returning",
        "returned",
        "lost",
        "exception",
        "expired",
        None,
    ]
)
INTENTS = st.sampled_from(list(Intent))
SIGNALS = st.lists(
    st.sampled_from(["wants_refund", "wants_resend", "wants_cancel", "stain", "auto_reply"]), max_size=3
)


@st.composite
def policies(draw):
    overrides = {
        "deadlines": {"no_scan_lost_after_days": draw(st.integers(1, 120))},
        "protection": {"extension_days": draw(st.integers(1, 180))},
        "auto_send": {
            "enabled": draw(st.booleans()),
            "confidence_threshold": draw(st.floats(0, 1)),
            "templates": draw(st.lists(st.sampled_from(ALL_TEMPLATES), unique=True)),
        },
        "money": {"auto_allowed": draw(st.booleans()), "auto_cap": str(draw(st.integers(0, 500)))},
        "shipping": {
            "default": {"promised_days": draw(st.integers(1, 365))},
            "epacket": {"promised_days": draw(st.integers(1, 365))},
        },
        "compensation": {"customs_tax_coupon": str(draw(st.integers(0, 1000)))},
    }
    return policy_from_overrides(overrides)


@st.composite
def scenarios(draw):
    case = make_case(
        shipped_days_ago=draw(st.one_of(st.none(), st.integers(0, 200))),
        status=draw(st.sampled_from(["paid", "shipped", "delivered", "completed"])),
        tracking=draw(TRACKING),
        events=draw(st.integers(0, 2)),
        method=draw(st.sampled_from(["epacket", "china_post_small_packet", "dhl", "odd"])),
        country=draw(st.sampled_from(["US", "BR", "DE"])),
        promised=draw(st.one_of(st.none(), st.integers(1, 120))),
        total=str(draw(st.decimals(min_value=0, max_value=500, places=2))),
        refunded=str(draw(st.decimals(min_value=0, max_value=600, places=2))),
        dispute=draw(
            st.sampled_from([None, {"reason": "not received", "buyer_request": "refund", "amount": 999}])
        ),
    )
    c = cls(
        draw(INTENTS),
        draw(st.floats(0, 1)),
        signals=tuple(draw(SIGNALS)),
        runner_up=draw(st.sampled_from([None, Intent.other])),
    )
    caps = draw(st.sampled_from([ALIEXPRESS_CAPS, NO_EXTEND_CAPS]))
    return case, c, caps


PROPS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(scenarios(), policies())
def test_property_moving_parcel_before_deadline_never_refunded(sc, pol):
    case, c, caps = sc
    sit = resolve_situation(case, pol)
    p = evaluate(case, c, c.intent, sit, pol, caps)
    moving = (
        case.tracking is not None
        and case.tracking.status.value
        in {"in_transit", "out_for_delivery", "info_received", "delivery_failure", "exception", "expired"}
        and case.order.shipped_at is not None
    )
    if (
        moving
        and sit.days_left is not None
        and case.now < sit.deadline
        and c.intent in (Intent.not_received, Intent.refund_request, Intent.cancel_order)
    ):
        assert not p.refund_allowed
        assert not any(a.type in REFUND_ACTIONS for a in p.actions)
    if p.scenario in NO_REFUND_SCENARIOS:
        assert not p.refund_allowed and not any(a.type in REFUND_ACTIONS for a in p.actions)


@PROPS
@given(scenarios(), policies())
def test_property_money_and_safety_guards(sc, pol):
    case, c, caps = sc
    sit = resolve_situation(case, pol)
    p = evaluate(case, c, c.intent, sit, pol, caps)
    money = [a for a in p.actions if a.type in MONEY_ACTIONS]
    # guard 7
    remaining = max(Decimal(0), case.order.total - case.order.refunded)
    for a in p.actions:
        if a.type in REFUND_ACTIONS:
            assert a.amount is not None and 0 < a.amount <= remaining
    # guard 3
    if money and p.auto_send:
        assert pol.money.auto_allowed
        assert all(
            (case.order.total if a.type is ActionType.resend else a.amount) <= pol.money.auto_cap
            for a in money
        )
    # guard 2
    if (p.offer_resend or any(a.type is ActionType.resend for a in p.actions)) and sit.under_protection:
        assert caps.extend_protection
        assert any(a.type is ActionType.extend_protection for a in p.actions)
    # guard 4
    if c.intent is Intent.other or c.confidence < pol.auto_send.confidence_threshold or c.runner_up:
        assert not p.auto_send
    # guard 5
    if "auto_reply" in c.signals:
        assert p.reply_suppressed and not p.auto_send
    # capabilities
    for a in p.actions:
        assert a.type in (
            ActionType.request_photo,
            ActionType.request_address_confirmation,
            ActionType.escalate,
        ) or caps.allows(a.type.value)
