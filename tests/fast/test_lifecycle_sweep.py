"""The lifecycle mailer on a real (SQLite) database, with an injected clock.

The month test moves orders of three marketplaces through every kind and every exclusion, hour by
hour, running the sweep twice per hour and delivering through the outbox; the other tests pin the
pieces: idempotent planning, racing sweeps, the daily cap, approvals, failures.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from connectors.amazon import REVIEW_SOLICITATION_BODY
from tests.fakes import FakeConnector
from worker import dispatch
from worker import models as m
from worker import outbox as ob
from worker.db import session_scope
from worker.lifecycle import rules
from worker.lifecycle.config import Kind
from worker.lifecycle.sweep import (
    RETRY_LATER,
    LifecycleError,
    Mailer,
    approve_lifecycle,
    idempotency_key,
    pending_approvals,
    plan_events,
    process_event,
    reject_lifecycle,
    sweep,
)
from worker.render import Renderer

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday
H = timedelta(hours=1)
NO_QUIET = {"quiet_hours": {"enabled": False}}


class World:
    """Accounts, orders, disputes and conversations written the way the poller would, at a given time."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.orders: dict[str, int] = {}
        self.accounts: dict[str, int] = {}

    def account(self, name: str, marketplace: str, lifecycle: dict | None = None) -> int:
        with session_scope(self.engine) as s:
            acc = m.Account(marketplace=marketplace, name=name, settings_json={"lifecycle": lifecycle or {}})
            s.add(acc)
            s.flush()
            self.accounts[name] = acc.id
            return acc.id

    def order(self, account: str, ext: str, now: datetime, status: str = "unpaid", **fields) -> list[Kind]:
        with session_scope(self.engine) as s:
            row = m.Order(
                account_id=self.accounts[account],
                external_id=ext,
                status=status,
                total=Decimal("24.90"),
                currency="USD",
                buyer_id=fields.pop("buyer_id", f"buyer-{ext}"),
                buyer_name=fields.pop("buyer_name", "Ana"),
                created_at=now,
                updated_at=now,
                **fields,
            )
            s.add(row)
            s.flush()
            self.orders[ext] = row.id
            return plan_events(s, row, now)

    def update(self, ext: str, now: datetime, **fields) -> list[Kind]:
        with session_scope(self.engine) as s:
            row = s.get(m.Order, self.orders[ext])
            for name, value in fields.items():
                setattr(row, name, value)
            row.updated_at = now
            s.flush()
            return plan_events(s, row, now)

    def dispute(self, ext: str, now: datetime, buyer_request: str | None = None) -> None:
        with session_scope(self.engine) as s:
            order = s.get(m.Order, self.orders[ext])
            s.add(
                m.Dispute(
                    account_id=order.account_id,
                    order_id=order.id,
                    external_id=f"d-{ext}",
                    reason="not as described",
                    buyer_request=buyer_request,
                    opened_at=now,
                    created_at=now,
                    updated_at=now,
                )
            )

    def conversation(self, ext: str, now: datetime, **flags) -> None:
        with session_scope(self.engine) as s:
            order = s.get(m.Order, self.orders[ext])
            s.add(
                m.Conversation(
                    account_id=order.account_id,
                    external_id=f"c-{ext}",
                    order_id=order.id,
                    buyer_id=order.buyer_id,
                    created_at=now,
                    updated_at=now,
                    **flags,
                )
            )

    def events(self) -> dict[tuple[str, str], m.LifecycleEvent]:
        names = {v: k for k, v in self.orders.items()}
        with session_scope(self.engine) as s:
            rows = s.scalars(select(m.LifecycleEvent)).all()
            return {(names[r.order_id], r.kind): r for r in rows}

    def event_id(self, ext: str, kind: Kind) -> int:
        return self.events()[(ext, kind.value)].id


def deliver_due(engine, fake: FakeConnector, now: datetime) -> None:
    for outbox_id in dispatch.due_sends(engine, now, timedelta(0)):
        ob.deliver(outbox_id, lambda _account: fake, engine=engine, clock=lambda: now)


def count(engine, model, *where) -> int:
    with session_scope(engine) as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
def world(engine, settings) -> World:
    return World(engine)


# ------------------------------------------------------------------------------------- a month

SENT = ("sent", None)

EXPECTED: dict[tuple[str, str], tuple[str, str | None]] = {
    ("A-happy", "unpaid_reminder"): ("skipped", "paid meanwhile"),
    ("A-happy", "payment_confirmed"): SENT,
    ("A-happy", "shipped"): SENT,
    ("A-happy", "delivered"): SENT,
    ("A-happy", "feedback_request"): SENT,
    ("A-unpaid", "unpaid_reminder"): SENT,
    ("A-paid-late", "unpaid_reminder"): SENT,
    ("A-paid-late", "payment_confirmed"): SENT,
    ("A-dispute", "payment_confirmed"): SENT,
    ("A-dispute", "shipped"): SENT,
    ("A-dispute", "delivered"): SENT,
    ("A-dispute", "feedback_request"): ("skipped", "guard 6: dispute open"),
    ("A-return", "payment_confirmed"): SENT,
    ("A-return", "shipped"): SENT,
    ("A-return", "delivered"): ("skipped", "return open"),
    ("A-return", "feedback_request"): ("skipped", "guard 6: return open"),
    ("A-complaint", "payment_confirmed"): SENT,
    ("A-complaint", "shipped"): SENT,
    ("A-complaint", "delivered"): SENT,
    ("A-complaint", "feedback_request"): ("skipped", "guard 6: complaint in the conversation"),
    ("A-optout", "payment_confirmed"): ("skipped", "buyer opted out"),
    ("A-optout", "shipped"): ("skipped", "buyer opted out"),
    ("A-refund", "payment_confirmed"): SENT,
    ("A-refund", "shipped"): SENT,
    ("A-refund", "delivered"): ("skipped", "order refunded"),
    ("A-refund", "feedback_request"): ("skipped", "order refunded"),
    ("A-cancel", "payment_confirmed"): SENT,
    ("A-cancel", "shipped"): ("skipped", "order cancelled"),
    ("A-stale", "payment_confirmed"): ("skipped", "stale: due 2026-03-01 04:00 UTC, more than 72 h ago"),
    ("A-completed", "payment_confirmed"): SENT,
    ("A-completed", "shipped"): SENT,
    ("A-completed", "feedback_request"): SENT,
    ("E-approve", "payment_confirmed"): SENT,
    ("E-approve", "shipped"): SENT,
    ("E-approve", "delivered"): SENT,
    ("E-approve", "feedback_request"): SENT,
    ("E-reject", "payment_confirmed"): SENT,
    ("E-reject", "shipped"): SENT,
    ("E-reject", "delivered"): SENT,
    ("E-reject", "feedback_request"): ("skipped", "rejected by agent-1: buyer asked for a call"),
    ("E-dispute", "payment_confirmed"): SENT,
    ("E-dispute", "shipped"): SENT,
    ("E-dispute", "delivered"): SENT,
    ("E-dispute", "feedback_request"): ("skipped", "guard 6: dispute open"),
    ("E-blocked", "payment_confirmed"): ("skipped", "buyer blocklisted"),
    ("AM-ok", "feedback_request"): SENT,
    ("AM-late", "feedback_request"): (
        "skipped",
        "amazon: review requests only 5-30 days after delivery (delivered 2026-01-30)",
    ),
}


def month_script(w: World) -> dict[int, list]:
    """Hour -> what happens then. Countries: BR (UTC-3), US (New York, DST from 8 March), DE, FR, ES, RU, GB."""
    w.account("ali", "aliexpress")
    w.account("ebay", "ebay", {"feedback_request": {"mode": "approval"}, "blocklist": ["eb-blocked"]})
    w.account("amz", "amazon")
    at = lambda h: T0 + h * H  # noqa: E731
    script: dict[int, list] = {}

    def on(hour: int, action) -> None:
        script.setdefault(hour, []).append(action)

    def life(
        ext: str, acc: str, country: str | None, paid: int, shipped: int | None, delivered: int | None, **kw
    ):
        on(0, lambda: w.order(acc, ext, at(0), "paid", paid_at=at(paid), buyer_country=country, **kw))
        if shipped is not None:
            on(
                shipped,
                lambda: w.update(
                    ext,
                    at(shipped),
                    status="shipped",
                    shipped_at=at(shipped),
                    tracking_number=f"LP{ext}CN",
                    shipping_method="china_post_small_packet",
                ),
            )
        if delivered is not None:
            on(
                delivered,
                lambda: w.update(ext, at(delivered), status="delivered", delivered_at=at(delivered)),
            )

    # AliExpress.
    on(0, lambda: w.order("ali", "A-happy", at(0), buyer_country="BR", buyer_language="pt"))
    on(3, lambda: w.update("A-happy", at(3), status="paid", paid_at=at(3)))
    on(24, lambda: w.update("A-happy", at(24), status="shipped", shipped_at=at(24), tracking_number="LP1BR"))
    on(360, lambda: w.update("A-happy", at(360), status="delivered", delivered_at=at(360)))
    on(0, lambda: w.order("ali", "A-unpaid", at(0), buyer_country="US"))
    on(240, lambda: w.update("A-unpaid", at(240), status="cancelled", cancelled_at=at(240)))
    on(0, lambda: w.order("ali", "A-paid-late", at(0), buyer_country="BR"))
    on(40, lambda: w.update("A-paid-late", at(40), status="paid", paid_at=at(40)))
    life("A-dispute", "ali", "DE", 0, 24, 240)
    on(280, lambda: w.dispute("A-dispute", at(280)))
    life("A-return", "ali", "FR", 0, 24, 240)
    on(250, lambda: w.dispute("A-return", at(250), buyer_request="return"))
    life("A-complaint", "ali", "ES", 0, 24, 240)
    on(300, lambda: w.conversation("A-complaint", at(300), complaint=True))
    life("A-optout", "ali", "RU", 0, 24, None)
    on(2, lambda: w.conversation("A-optout", at(2), opted_out=True))
    life("A-refund", "ali", None, 0, 24, 240)
    on(250, lambda: w.update("A-refund", at(250), refunded_total=Decimal("24.90")))
    life("A-cancel", "ali", "US", 0, 170, None)
    on(175, lambda: w.update("A-cancel", at(175), status="cancelled", cancelled_at=at(175)))
    on(100, lambda: w.order("ali", "A-stale", at(100), "paid", paid_at=at(100) - timedelta(days=5)))
    life("A-completed", "ali", "FR", 0, 24, None)
    on(300, lambda: w.update("A-completed", at(300), status="completed", completed_at=at(300)))
    # eBay: feedback requests wait for an agent.
    life("E-approve", "ebay", "GB", 0, 24, 200)
    life("E-reject", "ebay", "GB", 0, 24, 200)
    life("E-dispute", "ebay", "GB", 0, 24, 200)
    on(500, lambda: w.dispute("E-dispute", at(500)))
    life("E-blocked", "ebay", "GB", 0, None, None, buyer_id="eb-blocked")
    # Amazon: only the review solicitation, from the promised date (no delivery report) or a delivery.
    on(
        0,
        lambda: w.order(
            "amz", "AM-ok", at(0), "shipped", paid_at=at(0), promised_delivery_days=7, buyer_country="US"
        ),
    )
    on(0, lambda: w.order("amz", "AM-unpaid", at(0), "unpaid"))
    on(
        0,
        lambda: w.order(
            "amz",
            "AM-late",
            at(0),
            "delivered",
            paid_at=at(0) - timedelta(days=40),
            delivered_at=at(0) - timedelta(days=31),
        ),
    )
    return script


def test_a_month_of_orders_gets_every_mail_once(world, engine):
    script = month_script(world)
    fake = FakeConnector()
    totals: Counter[str] = Counter()
    decisions: dict[str, object] = {}
    for hour in range(0, 30 * 24 + 1):
        now = T0 + hour * H
        for action in script.get(hour, []):
            action()
        if hour == 600:
            with session_scope(engine) as s:
                pending = {p.order_external_id: p for p in pending_approvals(s, world.accounts["ebay"])}
                assert set(pending) == {"E-approve", "E-reject", "E-dispute"}
                assert all(p.kind is Kind.feedback_request for p in pending.values())
                decisions["approve"] = approve_lifecycle(s, pending["E-approve"].event_id, "agent-1", now=now)
                decisions["dispute"] = approve_lifecycle(s, pending["E-dispute"].event_id, "agent-1", now=now)
                reject_lifecycle(
                    s, pending["E-reject"].event_id, "agent-1", "buyer asked for a call", now=now
                )
        # Twice per hour: a second run finds nothing left to do.
        for _ in range(2):
            result = sweep(engine, now, limit=50)
            totals.update(
                enqueued=result.enqueued,
                approval=result.awaiting_approval,
                skipped=result.skipped,
                deferred=result.deferred,
                errors=result.errors,
            )
        deliver_due(engine, fake, now)

    events = world.events()
    got = {key: (ev.state, ev.skip_reason) for key, ev in events.items()}
    assert got == EXPECTED
    assert totals["errors"] == 0 and totals["approval"] == 3
    assert decisions["approve"].outcome == "enqueued"
    assert (
        decisions["dispute"].outcome == "skipped" and decisions["dispute"].reason == "guard 6: dispute open"
    )

    with session_scope(engine) as s:
        outbox = s.scalars(select(m.Outbox)).all()
        orders = {o.id: o for o in s.scalars(select(m.Order)).all()}
    # Exactly one outbox row and one marketplace send per mail sent.
    sent = [key for key, (state, _) in EXPECTED.items() if state == "sent"]
    assert len(outbox) == len(sent) == len(fake.sent)
    assert Counter(row.idempotency_key for row in outbox).most_common(1)[0][1] == 1
    assert all(row.state == "sent" and row.kind == "lifecycle" for row in outbox)
    for key in sent:
        ev = events[key]
        assert ev.outbox_id is not None
        assert any(
            r.id == ev.outbox_id and r.idempotency_key == idempotency_key(ev.order_id, key[1]) for r in outbox
        )
    # Nothing went out in the buyer's quiet hours (21:00-08:00 local).
    for row in outbox:
        order = orders[row.order_id]
        local = row.not_before.astimezone(rules.buyer_zone(order.buyer_country, ZoneInfo("UTC")))
        assert 8 <= local.hour < 21, (order.external_id, local)
    by_key = {row.idempotency_key: row for row in outbox}
    # 03:00 UTC is midnight in São Paulo: the payment mail waited for 08:00 there (11:00 UTC).
    happy = world.orders["A-happy"]
    assert by_key[idempotency_key(happy, Kind.payment_confirmed)].not_before == T0 + 11 * H
    # Approved at 00:00 UTC (midnight in London): queued for 08:00.
    approved = by_key[idempotency_key(world.orders["E-approve"], Kind.feedback_request)]
    assert approved.not_before == T0 + 608 * H
    # Amazon: the solicitation marker, addressed to the order (no conversation), 7 + 7 days after purchase.
    amazon = by_key[idempotency_key(world.orders["AM-ok"], Kind.feedback_request)]
    assert amazon.body == REVIEW_SOLICITATION_BODY and amazon.conversation_id is None
    assert amazon.not_before == T0 + 14 * 24 * H
    # Texts are rendered in the buyer's language, with the order's facts.
    assert "Olá" in by_key[idempotency_key(happy, Kind.payment_confirmed)].body
    assert "LP1BR" in by_key[idempotency_key(happy, Kind.shipped)].body
    assert "A-happy" in by_key[idempotency_key(happy, Kind.shipped)].body


# ---------------------------------------------------------------------------------- planning


def test_planning_is_idempotent(world, engine):
    world.account("ali", "aliexpress")
    assert world.order("ali", "o1", T0, "paid", paid_at=T0) == [Kind.payment_confirmed]
    assert world.update("o1", T0 + H) == []
    assert world.update("o1", T0 + 2 * H, status="delivered", delivered_at=T0 + 2 * H) == [
        Kind.delivered,
        Kind.feedback_request,
    ]
    assert world.update("o1", T0 + 3 * H, buyer_name="Ana Maria") == []
    assert count(engine, m.LifecycleEvent) == 3


def test_an_order_paid_meanwhile_gets_no_unpaid_reminder(world, engine):
    world.account("ali", "aliexpress", NO_QUIET)
    world.order("ali", "o1", T0)
    world.update("o1", T0 + 5 * H, status="paid", paid_at=T0 + 5 * H)
    result = sweep(engine, T0 + 24 * H)
    assert result.reasons["paid meanwhile"] == 1 and result.enqueued == 1  # the payment mail
    reminder = world.events()[("o1", "unpaid_reminder")]
    assert (reminder.state, reminder.skip_reason, reminder.outbox_id) == ("skipped", "paid meanwhile", None)
    assert count(engine, m.Outbox) == 1


def test_an_opt_out_holds_for_the_buyers_other_orders(world, engine):
    world.account("ali", "aliexpress", NO_QUIET)
    world.order("ali", "first", T0, "paid", paid_at=T0, buyer_id="same-buyer")
    world.conversation("first", T0, opted_out=True)
    world.order("ali", "second", T0, "paid", paid_at=T0, buyer_id="same-buyer")
    world.order("ali", "other", T0, "paid", paid_at=T0, buyer_id="someone-else")
    result = sweep(engine, T0)
    assert (result.skipped, result.enqueued, result.reasons["buyer opted out"]) == (2, 1, 2)
    assert world.events()[("other", "payment_confirmed")].state == "enqueued"


def test_bad_lifecycle_settings_plan_nothing_and_never_break_ingestion(world, engine, caplog):
    world.account("ali", "aliexpress", {"daily_cap": -1})
    with caplog.at_level(logging.ERROR):
        assert world.order("ali", "o1", T0, "paid", paid_at=T0) == []
    assert "lifecycle.daily_cap" in caplog.text
    assert count(engine, m.LifecycleEvent) == 0


# ------------------------------------------------------------------------------ concurrency


def test_each_event_is_handled_once_by_racing_sweeps(world, engine):
    world.account("ali", "aliexpress", NO_QUIET)
    for i in range(40):
        world.order("ali", f"o{i}", T0, "paid", paid_at=T0)
    now = T0 + H
    barrier = threading.Barrier(2)
    results = []

    def run() -> None:
        barrier.wait()
        results.append(sweep(engine, now, limit=100))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 2
    assert sum(r.enqueued for r in results) == 40
    assert sum(r.selected - r.not_claimed for r in results) == 40
    assert sum(r.errors for r in results) == 0
    assert count(engine, m.Outbox) == 40
    assert count(engine, m.LifecycleEvent, m.LifecycleEvent.state == "enqueued") == 40


def test_a_second_claim_of_the_same_event_does_nothing(world, engine):
    world.account("ali", "aliexpress", NO_QUIET)
    world.order("ali", "o1", T0, "paid", paid_at=T0)
    event_id = world.event_id("o1", Kind.payment_confirmed)
    mailer = Mailer.from_settings()
    assert process_event(engine, event_id, T0, mailer) == ("enqueued", "")
    assert process_event(engine, event_id, T0, mailer) == ("not-claimed", "")
    assert sweep(engine, T0 + 24 * H).selected == 0
    assert count(engine, m.Outbox) == 1


# --------------------------------------------------------------------------- cap, quiet hours


def test_daily_cap_leaves_the_rest_for_the_shops_next_day(world, engine):
    world.account("ali", "aliexpress", {"daily_cap": 3, "timezone": "America/Sao_Paulo", **NO_QUIET})
    now = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 12:00 in São Paulo
    for i in range(5):
        world.order("ali", f"o{i}", now, "paid", paid_at=now)
    first = sweep(engine, now)
    assert (first.enqueued, first.deferred, first.reasons["daily cap reached"]) == (3, 2, 2)
    midnight_sp = datetime(2026, 3, 3, 3, 0, tzinfo=UTC)
    waiting = [ev for ev in world.events().values() if ev.state == "due"]
    assert len(waiting) == 2 and all(ev.due_at == midnight_sp for ev in waiting)
    assert sweep(engine, midnight_sp - timedelta(minutes=1)).selected == 0
    second = sweep(engine, midnight_sp)
    assert second.enqueued == 2
    assert count(engine, m.Outbox) == 5


def test_cancelled_outbox_rows_do_not_count_against_the_cap(world, engine):
    world.account("ali", "aliexpress", {"daily_cap": 1, **NO_QUIET})
    world.order("ali", "o1", T0, "paid", paid_at=T0)
    world.order("ali", "o2", T0, "paid", paid_at=T0)
    assert sweep(engine, T0).enqueued == 1
    with session_scope(engine) as s:
        s.execute(m.Outbox.__table__.update().values(state="cancelled"))
    assert sweep(engine, T0 + 24 * H).enqueued == 1


def test_quiet_hours_move_the_event_not_the_outbox(world, engine):
    world.account("ali", "aliexpress")
    night_in_berlin = datetime(2026, 3, 2, 22, 30, tzinfo=UTC)  # 23:30 CET
    world.order("ali", "o1", night_in_berlin, "paid", paid_at=night_in_berlin, buyer_country="DE")
    result = sweep(engine, night_in_berlin)
    assert result.reasons == Counter({"quiet hours in the buyer's time zone": 1})
    ev = world.events()[("o1", "payment_confirmed")]
    assert (ev.state, ev.due_at) == ("due", datetime(2026, 3, 3, 7, 0, tzinfo=UTC))
    assert count(engine, m.Outbox) == 0
    assert sweep(engine, datetime(2026, 3, 3, 7, 0, tzinfo=UTC)).enqueued == 1


# ---------------------------------------------------------------------------------- approvals


def test_approval_flow(world, engine):
    world.account("ali", "aliexpress", {"payment_confirmed": {"mode": "approval"}, **NO_QUIET})
    world.account("other", "aliexpress", {"payment_confirmed": {"mode": "approval"}, **NO_QUIET})
    for ext in ("o1", "o2", "o3"):
        world.order("ali", ext, T0, "paid", paid_at=T0, buyer_country="FR")
    world.order("other", "x1", T0, "paid", paid_at=T0)
    result = sweep(engine, T0)
    assert result.awaiting_approval == 4 and count(engine, m.Outbox) == 0
    with session_scope(engine) as s:
        pending = pending_approvals(s, world.accounts["ali"])
    assert [p.order_external_id for p in pending] == ["o1", "o2", "o3"]
    assert "o1" in pending[0].preview and "Bonjour" in pending[0].preview  # French, the buyer's country
    # The sweep never touches a parked event again.
    assert sweep(engine, T0 + H).selected == 0

    with session_scope(engine) as s:
        done = approve_lifecycle(s, pending[0].event_id, "agent-7", now=T0 + H)
    assert done.outcome == "enqueued"
    with session_scope(engine) as s:
        row = s.get(m.Outbox, done.outbox_id)
        assert (row.state, row.not_before, row.kind) == ("pending", T0 + H, "lifecycle")
        assert row.body == pending[0].preview
        audit = s.scalars(select(m.AuditLog).where(m.AuditLog.action == "lifecycle.approve")).one()
        assert audit.actor == "agent-7" and audit.object_id == str(pending[0].event_id)
    with session_scope(engine) as s, pytest.raises(LifecycleError, match="not awaiting approval"):
        approve_lifecycle(s, pending[0].event_id, "agent-8", now=T0 + H)

    # Facts changed while it waited: approving re-checks and closes the event instead.
    world.update("o2", T0 + 2 * H, status="cancelled", cancelled_at=T0 + 2 * H)
    with session_scope(engine) as s:
        skipped = approve_lifecycle(s, pending[1].event_id, "agent-7", now=T0 + 3 * H)
    assert (skipped.outcome, skipped.reason) == ("skipped", "order cancelled")

    with session_scope(engine) as s:
        reject_lifecycle(s, pending[2].event_id, "agent-7", now=T0 + 3 * H)
    events = world.events()
    assert events[("o3", "payment_confirmed")].skip_reason == "rejected by agent-7"
    assert events[("o2", "payment_confirmed")].state == "skipped"
    with session_scope(engine) as s:
        assert [p.order_external_id for p in pending_approvals(s, world.accounts["ali"])] == []
        assert [p.order_external_id for p in pending_approvals(s, world.accounts["other"])] == ["x1"]
        with pytest.raises(LifecycleError, match="does not exist"):
            reject_lifecycle(s, 999_999, "agent-7")


# ----------------------------------------------------------------------------------- failures


def test_the_outbox_sender_settles_the_event(world, engine):
    world.account("ali", "aliexpress", NO_QUIET)
    world.order("ali", "ok", T0, "paid", paid_at=T0)
    world.order("ali", "bad", T0, "paid", paid_at=T0)
    world.conversation("ok", T0)
    assert sweep(engine, T0).enqueued == 2
    fake = FakeConnector()
    with session_scope(engine) as s:
        rows = {r.order_id: r.id for r in s.scalars(select(m.Outbox)).all()}
        conv = s.scalar(select(m.Outbox.conversation_id).where(m.Outbox.order_id == world.orders["ok"]))
    assert conv is not None  # the order's conversation carries the mail
    assert ob.deliver(rows[world.orders["ok"]], lambda _a: fake, engine=engine, clock=lambda: T0) == "sent"
    fake.fail_next = ["fatal"]
    assert ob.deliver(rows[world.orders["bad"]], lambda _a: fake, engine=engine, clock=lambda: T0) == "failed"
    events = world.events()
    assert events[("ok", "payment_confirmed")].state == "sent"
    assert events[("bad", "payment_confirmed")].state == "failed"
    assert fake.sent[0]["conversation"] == "c-ok"


def test_a_template_that_fails_marks_the_event_failed(world, engine, tmp_path):
    world.account("ali", "aliexpress", NO_QUIET)
    world.order("ali", "o1", T0, "paid", paid_at=T0)
    result = sweep(engine, T0, renderer=Renderer(tmp_path))  # no templates at all
    assert result.failed == 1 and result.reasons["template failed to render"] == 1
    ev = world.events()[("o1", "payment_confirmed")]
    assert ev.state == "failed" and ev.skip_reason.startswith("render: template 'payment_confirmed' (en)")
    assert count(engine, m.Outbox) == 0


def test_settings_broken_after_planning_defer_the_event(world, engine):
    world.account("ali", "aliexpress", NO_QUIET)
    world.order("ali", "o1", T0, "paid", paid_at=T0)
    with session_scope(engine) as s:
        s.get(m.Account, world.accounts["ali"]).settings_json = {
            "lifecycle": {"quiet_hours": {"start": "nope"}}
        }
    result = sweep(engine, T0)
    assert result.deferred == 1 and result.reasons["invalid lifecycle settings"] == 1
    ev = world.events()[("o1", "payment_confirmed")]
    assert ev.state == "due" and ev.due_at == T0 + RETRY_LATER
    assert ev.skip_reason.startswith("waiting: invalid lifecycle settings: lifecycle.quiet_hours.start")


def test_an_unexpected_error_is_retried_later_without_stopping_the_sweep(world, engine, monkeypatch):
    world.account("ali", "aliexpress", NO_QUIET)
    world.order("ali", "boom", T0, "paid", paid_at=T0)
    world.order("ali", "fine", T0 + timedelta(minutes=1), "paid", paid_at=T0 + timedelta(minutes=1))
    real_body = Mailer.body

    def body(self, kind, order, account):
        if order.external_id == "boom":
            raise RuntimeError("disk on fire")
        return real_body(self, kind, order, account)

    monkeypatch.setattr(Mailer, "body", body)
    result = sweep(engine, T0 + H)
    assert (result.errors, result.enqueued) == (1, 1)
    ev = world.events()[("boom", "payment_confirmed")]
    assert ev.state == "due" and ev.due_at == T0 + H + RETRY_LATER
    assert ev.skip_reason == "waiting: RuntimeError: disk on fire"


def test_sweep_limit_must_be_positive(engine, settings):
    with pytest.raises(ValueError, match="limit must be >= 1"):
        sweep(engine, T0, limit=0)


def test_config_is_what_the_sweep_reads(world, engine):
    """The per-account switch decides: a kind switched off after planning is skipped, not sent."""
    world.account("ali", "aliexpress", NO_QUIET)
    world.order("ali", "o1", T0, "paid", paid_at=T0)
    with session_scope(engine) as s:
        s.get(m.Account, world.accounts["ali"]).settings_json = {
            "lifecycle": {"payment_confirmed": {"enabled": False}, **NO_QUIET}
        }
    result = sweep(engine, T0)
    assert result.reasons == Counter({"payment_confirmed disabled for this account": 1})
