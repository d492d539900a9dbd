"""Pure lifecycle rules: planning, every exclusion, quiet hours, the Amazon window, language and zones."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from connectors import capabilities_for
from worker.lifecycle import rules
from worker.lifecycle.config import Kind, Mode, lifecycle_config
from worker.lifecycle.rules import Exclusions, OrderFacts, Outcome
from worker.triage.types import OrderStatus

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday, 12:00 UTC: 09:00 in São Paulo, 13:00 in Berlin
CONFIG = lifecycle_config({})
NO_QUIET = lifecycle_config({"lifecycle": {"quiet_hours": {"enabled": False}}})


def facts(status: OrderStatus, **kw) -> OrderFacts:
    base = dict(
        marketplace="aliexpress",
        status=status,
        created_at=T0,
        total=Decimal("24.90"),
        buyer_id="buyer-1",
        buyer_country="BR",
    )
    base.update(kw)
    return OrderFacts(**base)


def kinds(planned: list[rules.Planned]) -> list[Kind]:
    return [p.kind for p in planned]


# ------------------------------------------------------------------------------------ planning


def test_each_status_plans_the_mails_it_has_reached():
    paid, shipped, delivered = T0 + timedelta(hours=5), T0 + timedelta(days=2), T0 + timedelta(days=20)
    now = T0 + timedelta(minutes=1)
    assert [(p.kind, p.due_at) for p in rules.plan(facts(OrderStatus.unpaid), CONFIG, now)] == [
        (Kind.unpaid_reminder, T0 + timedelta(hours=24))
    ]
    assert [(p.kind, p.due_at) for p in rules.plan(facts(OrderStatus.paid, paid_at=paid), CONFIG, paid)] == [
        (Kind.payment_confirmed, paid)
    ]
    got = rules.plan(facts(OrderStatus.shipped, paid_at=paid, shipped_at=shipped), CONFIG, shipped)
    assert [(p.kind, p.due_at) for p in got] == [(Kind.shipped, shipped)]
    got = rules.plan(
        facts(OrderStatus.delivered, paid_at=paid, shipped_at=shipped, delivered_at=delivered),
        CONFIG,
        delivered,
    )
    assert [(p.kind, p.due_at) for p in got] == [
        (Kind.delivered, delivered + timedelta(hours=24)),
        (Kind.feedback_request, delivered + timedelta(days=7)),
    ]
    assert all(p.skip_reason is None for p in got)
    # Completed: the buyer confirmed receipt, so no "please confirm" mail, but feedback from that moment.
    done = T0 + timedelta(days=21)
    got = rules.plan(facts(OrderStatus.completed, paid_at=paid, completed_at=done), CONFIG, done)
    assert [(p.kind, p.due_at) for p in got] == [(Kind.feedback_request, done + timedelta(days=7))]


def test_cancelled_disabled_and_switched_off_plan_nothing():
    assert rules.plan(facts(OrderStatus.cancelled, cancelled_at=T0), CONFIG, T0) == []
    assert rules.plan(facts(OrderStatus.unpaid, cancelled_at=T0), CONFIG, T0) == []
    off = lifecycle_config({"lifecycle": {"enabled": False}})
    assert rules.plan(facts(OrderStatus.unpaid), off, T0) == []
    no_reminder = lifecycle_config({"lifecycle": {"unpaid_reminder": {"enabled": False}}})
    assert rules.plan(facts(OrderStatus.unpaid), no_reminder, T0) == []


def test_an_old_moment_seen_late_is_planned_as_skipped():
    """First poll of an order paid a week ago: the payment mail is recorded, never sent."""
    got = rules.plan(facts(OrderStatus.paid, paid_at=T0 - timedelta(days=7)), CONFIG, T0)
    assert kinds(got) == [Kind.payment_confirmed]
    assert got[0].skip_reason and got[0].skip_reason.startswith("stale: due 2026-02-23 12:00 UTC")


# ------------------------------------------------------------------------------- Amazon's rules


def amazon(status: OrderStatus = OrderStatus.delivered, **kw) -> OrderFacts:
    return facts(status, **{"marketplace": "amazon", "paid_at": T0, **kw})


def test_amazon_only_gets_the_feedback_request_inside_its_window():
    delivered = T0 + timedelta(days=3)
    got = rules.plan(amazon(delivered_at=delivered, shipped_at=T0), CONFIG, delivered)
    assert [(p.kind, p.due_at) for p in got] == [(Kind.feedback_request, delivered + timedelta(days=7))]
    # A shop delay shorter than Amazon's 5 days is lifted to 5 days.
    quick = lifecycle_config({"lifecycle": {"feedback_request": {"delay_hours": 24}}})
    assert rules.plan(amazon(delivered_at=delivered), quick, delivered)[0].due_at == delivered + timedelta(
        days=5
    )
    # No other kind, whatever the status.
    assert rules.plan(amazon(OrderStatus.unpaid, paid_at=None), CONFIG, T0) == []
    assert rules.plan(amazon(OrderStatus.paid), CONFIG, T0) == []
    f = amazon(delivered_at=delivered)
    for kind in (Kind.unpaid_reminder, Kind.payment_confirmed, Kind.shipped, Kind.delivered):
        verdict = rules.evaluate(kind, f, Exclusions(), NO_QUIET, delivered + timedelta(days=6))
        assert verdict.outcome is Outcome.skip and verdict.reason == f"amazon does not allow {kind.value}"


@pytest.mark.parametrize(
    ("days_after_delivery", "outcome"),
    [(4, Outcome.wait), (5, Outcome.send), (17, Outcome.send), (30, Outcome.send), (31, Outcome.skip)],
)
def test_amazon_window_is_5_to_30_days(days_after_delivery, outcome):
    delivered = T0
    quick = lifecycle_config(
        {"lifecycle": {"feedback_request": {"delay_hours": 0}, "quiet_hours": {"enabled": False}}}
    )
    verdict = rules.evaluate(
        Kind.feedback_request,
        amazon(delivered_at=delivered),
        Exclusions(),
        quick,
        delivered + timedelta(days=days_after_delivery),
    )
    assert verdict.outcome is outcome
    if outcome is Outcome.wait:
        assert verdict.until == delivered + timedelta(days=5)
    if outcome is Outcome.skip:
        assert (
            verdict.reason == "amazon: review requests only 5-30 days after delivery (delivered 2026-03-02)"
        )


def test_amazon_without_a_delivery_report_uses_the_promised_date():
    """Orders v0 never reports delivery: the latest promised delivery date stands in for it."""
    f = amazon(OrderStatus.shipped, promised_delivery_days=10)
    assert rules.delivery_reference(f) == T0 + timedelta(days=10)
    got = rules.plan(f, CONFIG, T0)
    assert [(p.kind, p.due_at) for p in got] == [(Kind.feedback_request, T0 + timedelta(days=17))]
    # Elsewhere a shipped order has no delivery time: no feedback request yet.
    assert rules.delivery_reference(facts(OrderStatus.shipped, promised_delivery_days=10, paid_at=T0)) is None


def test_amazon_rule_matches_the_connector_capabilities():
    caps = capabilities_for("amazon")
    assert caps.review_solicitation and not caps.send_message
    assert rules.marketplace_rule("amazon").review_solicitation
    for marketplace in ("aliexpress", "ebay"):
        assert capabilities_for(marketplace).send_message
        assert rules.marketplace_rule(marketplace).kinds == frozenset(Kind)


# ----------------------------------------------------------------------------------- exclusions


DELIVERED = T0 - timedelta(days=8)


def delivered_facts(**kw) -> OrderFacts:
    return facts(OrderStatus.delivered, paid_at=T0 - timedelta(days=30), delivered_at=DELIVERED, **kw)


@pytest.mark.parametrize(
    ("kind", "f", "ex", "reason"),
    [
        (Kind.feedback_request, delivered_facts(), Exclusions(dispute_open=True), "guard 6: dispute open"),
        (Kind.feedback_request, delivered_facts(), Exclusions(return_open=True), "guard 6: return open"),
        (
            Kind.feedback_request,
            delivered_facts(),
            Exclusions(complaint=True),
            "guard 6: complaint in the conversation",
        ),
        (
            Kind.feedback_request,
            delivered_facts(refunded=Decimal("2.00")),
            Exclusions(),
            "order partly refunded: no feedback request",
        ),
        (Kind.feedback_request, delivered_facts(), Exclusions(opted_out=True), "buyer opted out"),
        (Kind.feedback_request, delivered_facts(buyer_id="bad-buyer"), Exclusions(), "buyer blocklisted"),
        (Kind.feedback_request, delivered_facts(refunded=Decimal("24.90")), Exclusions(), "order refunded"),
        (
            Kind.payment_confirmed,
            facts(OrderStatus.cancelled, paid_at=T0, cancelled_at=T0),
            Exclusions(),
            "order cancelled",
        ),
        (
            Kind.payment_confirmed,
            facts(OrderStatus.paid, paid_at=T0),
            Exclusions(dispute_open=True),
            "dispute open",
        ),
        (
            Kind.payment_confirmed,
            facts(OrderStatus.paid, paid_at=T0),
            Exclusions(return_open=True),
            "return open",
        ),
        (
            Kind.payment_confirmed,
            facts(OrderStatus.paid, paid_at=T0),
            Exclusions(complaint=True),
            "complaint in the conversation",
        ),
        (Kind.unpaid_reminder, facts(OrderStatus.paid, paid_at=T0), Exclusions(), "paid meanwhile"),
        (
            Kind.payment_confirmed,
            facts(OrderStatus.shipped, paid_at=T0, shipped_at=T0),
            Exclusions(),
            "order is shipped now: payment_confirmed no longer applies",
        ),
        (
            Kind.delivered,
            facts(OrderStatus.completed, delivered_at=T0, completed_at=T0),
            Exclusions(),
            "order is completed now: delivered no longer applies",
        ),
    ],
)
def test_every_exclusion_skips_with_its_reason(kind, f, ex, reason):
    config = lifecycle_config({"lifecycle": {"blocklist": ["bad-buyer"], "quiet_hours": {"enabled": False}}})
    verdict = rules.evaluate(kind, f, ex, config, T0 + timedelta(hours=1))
    assert (verdict.outcome, verdict.reason) == (Outcome.skip, reason)


def test_a_clean_order_is_sent_in_the_kinds_mode():
    approval = lifecycle_config(
        {"lifecycle": {"feedback_request": {"mode": "approval"}, "quiet_hours": {"enabled": False}}}
    )
    assert rules.evaluate(
        Kind.feedback_request, delivered_facts(), Exclusions(), NO_QUIET, T0
    ) == rules.Verdict.send(Mode.auto)
    assert (
        rules.evaluate(Kind.feedback_request, delivered_facts(), Exclusions(), approval, T0).mode
        is Mode.approval
    )


def test_a_moved_moment_waits_for_the_new_time_and_an_old_one_is_stale():
    f = delivered_facts()
    early = rules.evaluate(Kind.feedback_request, f, Exclusions(), NO_QUIET, DELIVERED + timedelta(days=6))
    assert (early.outcome, early.until) == (Outcome.wait, DELIVERED + timedelta(days=7))
    late = rules.evaluate(Kind.feedback_request, f, Exclusions(), NO_QUIET, DELIVERED + timedelta(days=11))
    assert late.outcome is Outcome.skip and late.reason.startswith("stale:")


# --------------------------------------------------------------------------------- quiet hours


def test_quiet_hours_follow_the_buyers_zone():
    # 02:00 UTC is 23:00 in São Paulo (UTC-3): quiet until 08:00 there, 11:00 UTC.
    at = datetime(2026, 3, 3, 2, 0, tzinfo=UTC)
    verdict = rules.evaluate(Kind.feedback_request, delivered_facts(), Exclusions(), CONFIG, at)
    assert (verdict.outcome, verdict.until) == (Outcome.wait, datetime(2026, 3, 3, 11, 0, tzinfo=UTC))
    assert verdict.reason == "quiet hours in the buyer's time zone"
    # Same instant for a buyer in Berlin (03:00 there, UTC+1): quiet until 07:00 UTC.
    berlin = rules.evaluate(
        Kind.feedback_request, delivered_facts(buyer_country="DE"), Exclusions(), CONFIG, at
    )
    assert berlin.until == datetime(2026, 3, 3, 7, 0, tzinfo=UTC)
    # 12:00 UTC is daytime in both places: sent.
    assert (
        rules.evaluate(Kind.feedback_request, delivered_facts(), Exclusions(), CONFIG, T0).outcome
        is Outcome.send
    )
    # Unknown country: the shop's zone decides.
    tokyo_shop = lifecycle_config({"lifecycle": {"timezone": "Asia/Tokyo"}})
    unknown = rules.evaluate(
        Kind.feedback_request, delivered_facts(buyer_country=None), Exclusions(), tokyo_shop, T0
    )
    assert (unknown.outcome, unknown.until) == (Outcome.wait, datetime(2026, 3, 2, 23, 0, tzinfo=UTC))


@pytest.mark.parametrize(
    ("local", "start", "end", "until"),
    [
        ("2026-03-02T22:15", time(21), time(8), "2026-03-03T08:00"),  # evening, window wraps midnight
        ("2026-03-03T03:00", time(21), time(8), "2026-03-03T08:00"),  # small hours
        ("2026-03-03T08:00", time(21), time(8), None),  # the end itself is not quiet
        ("2026-03-03T20:59", time(21), time(8), None),
        ("2026-03-03T13:30", time(13), time(15), "2026-03-03T15:00"),  # a window inside one day
        ("2026-03-03T15:00", time(13), time(15), None),
        # The night the clocks go forward in Berlin (29 March 2026): 08:00 local is 06:00 UTC.
        ("2026-03-29T01:30", time(21), time(8), "2026-03-29T08:00"),
    ],
)
def test_quiet_until(local, start, end, until):
    zone = ZoneInfo("Europe/Berlin")
    now = datetime.fromisoformat(local).replace(tzinfo=zone).astimezone(UTC)
    got = rules.quiet_until(now, zone, start, end)
    expected = None if until is None else datetime.fromisoformat(until).replace(tzinfo=zone).astimezone(UTC)
    assert got == expected
    if got is not None:
        assert got > now


def test_day_bounds_in_the_shops_zone():
    zone = ZoneInfo("America/Sao_Paulo")
    start, end = rules.day_bounds(datetime(2026, 3, 3, 2, 0, tzinfo=UTC), zone)  # still 2 March there
    assert (start, end) == (datetime(2026, 3, 2, 3, 0, tzinfo=UTC), datetime(2026, 3, 3, 3, 0, tzinfo=UTC))


# ----------------------------------------------------------------------------- language, zones


@pytest.mark.parametrize(
    ("language", "country", "expected"),
    [
        ("pt-BR", "US", "pt"),
        ("de_AT", None, "de"),
        ("RU", None, "ru"),
        ("it", "IT", "en"),  # no Italian templates, and Italy has no template language
        (None, "BR", "pt"),
        (None, "mx", "es"),
        (None, "FR", "fr"),
        (None, None, "en"),
        ("", "KZ", "ru"),
    ],
)
def test_mail_language(language, country, expected):
    assert rules.mail_language(language, country) == expected


def test_every_country_zone_exists():
    for country, name in rules.COUNTRY_ZONES.items():
        assert len(country) == 2 and country.isupper()
        assert ZoneInfo(name).key == name
    fallback = ZoneInfo("UTC")
    assert rules.buyer_zone("br", fallback).key == "America/Sao_Paulo"
    assert rules.buyer_zone("ZZ", fallback) is fallback
    assert rules.buyer_zone(None, fallback) is fallback
