"""Situation resolution: deadline from the order or the policy table, scenario from the facts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.factories import NOW, make_case
from worker.policy.load import default_policy
from worker.triage.situation import calendar_days, deadline_for, resolve_situation

POLICY = default_policy()


def scenario(**kw) -> str:
    return resolve_situation(make_case(**kw), POLICY).scenario


@pytest.mark.parametrize(
    ("method", "country", "days"),
    [
        ("china_post_small_packet", "US", 60),
        ("china_post_small_packet", "BR", 90),
        ("China Post Small Packet", "br", 90),
        ("epacket", "US", 27),
        ("ePacket", "BR", 27),
        ("dhl", "DE", 60),
        ("unheard_of_courier", "FR", 60),
    ],
)
def test_deadline_falls_back_to_policy_table(method, country, days):
    case = make_case(method=method, country=country, shipped_days_ago=5)
    deadline, used, source = deadline_for(case, POLICY)
    assert used == days and source == "policy"
    assert deadline == case.order.shipped_at + timedelta(days=days)


def test_order_promised_days_win_over_table():
    case = make_case(promised=15, country="BR", shipped_days_ago=5)
    deadline, used, source = deadline_for(case, POLICY)
    assert (used, source) == (15, "order")


def test_contract_example_days_left_is_calendar_days():
    # shared/spec/triage.md: shipped 2026-01-03T10:00, BR small packet (90 days), now 2026-03-01T12:00 -> 33
    case = make_case(country="BR", shipped_days_ago=57)
    sit = resolve_situation(case, POLICY)
    assert sit.deadline == case.order.shipped_at + timedelta(days=90)
    assert sit.days_left == calendar_days(NOW, sit.deadline)
    assert sit.days_left == 33


def test_days_left_negative_after_deadline():
    sit = resolve_situation(make_case(shipped_days_ago=70), POLICY)
    assert sit.days_left == -10 and sit.scenario == "overdue"


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"status": "paid", "shipped_days_ago": None, "tracking": None}, "not_shipped_yet"),
        ({"status": "unpaid", "shipped_days_ago": None, "tracking": None}, "not_shipped_yet"),
        ({"tracking": "in_transit", "shipped_days_ago": 20}, "in_transit"),
        ({"tracking": "out_for_delivery", "shipped_days_ago": 20}, "in_transit"),
        ({"tracking": "exception", "shipped_days_ago": 20}, "in_transit"),
        ({"tracking": "in_transit", "shipped_days_ago": 61}, "overdue"),
        ({"tracking": "in_transit", "shipped_days_ago": 60}, "overdue"),
        ({"tracking": "in_transit", "shipped_days_ago": 59}, "in_transit"),
        ({"tracking": "in_transit", "shipped_days_ago": 80, "country": "BR"}, "in_transit"),
        ({"tracking": "delivered", "shipped_days_ago": 20}, "delivered_not_received"),
        ({"tracking": "delivered", "shipped_days_ago": 90}, "delivered_not_received"),
        ({"tracking": "available_for_pickup"}, "awaiting_pickup"),
        ({"tracking": "customs_hold"}, "customs_held"),
        ({"tracking": "lost"}, "lost"),
        ({"tracking": "returning"}, "returned_to_sender"),
        ({"tracking": "returned"}, "returned_to_sender"),
        ({"tracking": "not_found", "events": 0, "shipped_days_ago": 10}, "no_tracking_info"),
        ({"tracking": "not_found", "events": 0, "shipped_days_ago": 9}, "in_transit"),
        ({"tracking": None, "shipped_days_ago": 12}, "no_tracking_info"),
        ({"tracking": "not_found", "events": 0, "shipped_days_ago": 65}, "overdue"),
        ({"tracking": None, "status": "delivered", "shipped_days_ago": 30}, "delivered_not_received"),
        ({"tracking": "info_received", "events": 0, "shipped_days_ago": 15}, "no_tracking_info"),
    ],
)
def test_scenarios(kw, expected):
    assert scenario(**kw) == expected


def test_no_scan_threshold_is_a_setting():
    from worker.policy.load import policy_from_overrides

    pol = policy_from_overrides({"deadlines": {"no_scan_lost_after_days": 20}})
    case = make_case(tracking="not_found", events=0, shipped_days_ago=15)
    assert resolve_situation(case, pol).scenario == "in_transit"
    assert resolve_situation(case, POLICY).scenario == "no_tracking_info"


def test_reasons_explain_the_deadline():
    sit = resolve_situation(make_case(shipped_days_ago=20), POLICY)
    assert any("promised 60 days" in r for r in sit.reasons)
    assert any("not reached" in r for r in sit.reasons)
