"""Queue queries, review rules and dashboard figures, without HTTP."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from tests.fast import web_world as ww
from worker import models as m
from worker import users as um
from worker.db import session_scope
from worker.web import review
from worker.web.queue import FilterError, Filters, draft_detail, facet_counts, list_queue, neighbours
from worker.web.stats import Count, bars, dashboard
from worker.web.templating import ago, money, percent, until

T0 = ww.T0


@pytest.fixture
def world(engine, monkeypatch):
    monkeypatch.setattr(um, "_hasher", ww.FAST_HASHER)
    return ww.build_world(engine)


def reviewer(world, name="agent", cap="20", role="agent", accounts=("A",)) -> review.Reviewer:
    return review.Reviewer(
        actor=str(world.users.get(name, 0)),
        user_id=world.users.get(name),
        username=name,
        role=role,
        account_ids=frozenset(world.accounts[a] for a in accounts) if accounts is not None else None,
        money_cap=Decimal(cap) if cap is not None else None,
    )


def test_filters_parse_and_round_trip():
    filters = Filters.parse(
        {"state": "all", "account": "3", "intent": "thanks", "auto": "manual", "language": " "}
    )
    assert filters == Filters(state=None, account=3, intent="thanks", auto=False)
    assert filters.params() == {"state": "all", "account": "3", "intent": "thanks", "auto": "manual"}
    assert Filters.parse(filters.params()) == filters
    assert Filters.parse({}).params() == {}
    assert filters.with_value("intent", None).active() == {"account": "3", "auto": "manual"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"state": "done"}, "state"),
        ({"account": "-1"}, "account"),
        ({"marketplace": "etsy"}, "marketplace"),
        ({"intent": "hello"}, "intent"),
        ({"auto": "sometimes"}, "auto"),
        ({"scenario": "x" * 41}, "scenario"),
    ],
)
def test_bad_filters_name_their_field(params, field):
    with pytest.raises(FilterError) as caught:
        Filters.parse(params)
    assert caught.value.field == field and str(caught.value).startswith(f"{field}: ")


def test_urgency_order_and_closed_disputes(engine, world):
    visible = frozenset({world.accounts["A"]})
    with session_scope(engine) as s:
        ids = [i.id for i in list_queue(s, Filters(), visible).items]
        assert ids[0] == world.drafts["dispute"]
        # A dispute due sooner on another order jumps ahead; a closed one counts for nothing.
        ww.add_case(s, world, "urgent", "A", dispute_due=T0 + timedelta(hours=2), created=T0)
        ww.add_case(
            s, world, "closed", "A", dispute_due=T0 + timedelta(hours=1), created=T0 - timedelta(days=1)
        )
        s.scalar(select(m.Dispute).where(m.Dispute.external_id == "D-closed")).closed_at = T0
        s.flush()
        ids = [i.id for i in list_queue(s, Filters(), visible).items]
    assert ids[:3] == [world.drafts["urgent"], world.drafts["dispute"], world.drafts["closed"]]


def test_facet_counts_apply_the_other_filters(engine, world):
    with session_scope(engine) as s:
        counts = facet_counts(s, Filters(language="es"), None)
    assert {v.value: v.count for v in counts["intent"]} == {"not_received": 1}
    assert {v.value: v.count for v in counts["language"]} == {"en": 6, "es": 1}
    assert [v.value for v in counts["state"]] == ["pending"]
    assert {v.label for v in counts["account"]} == {"aliexpress/shop-a"}
    assert [v.label for v in counts["auto"]] == ["manual"]


def test_neighbours_follow_the_queue(engine, world):
    visible = frozenset({world.accounts["A"]})
    with session_scope(engine) as s:
        assert neighbours(s, world.drafts["plain"], Filters(), visible) == (
            world.drafts["dispute"],
            world.drafts["forbidden"],
        )
        assert neighbours(s, world.drafts["dispute"], Filters(), visible)[0] is None
        # A draft outside the filter: previous none, next the first of the queue.
        assert neighbours(s, world.drafts["coupon"], Filters(intent="not_received"), visible) == (
            None,
            world.drafts["dispute"],
        )


def test_detail_is_none_for_other_accounts(engine, world):
    with session_scope(engine) as s:
        assert draft_detail(s, world.drafts["other-shop"], frozenset({world.accounts["A"]})) is None
        assert draft_detail(s, world.drafts["other-shop"], None).account.name == "shop-b"


def test_review_rules(engine, world):
    agent = reviewer(world)
    with session_scope(engine) as s:
        with pytest.raises(review.NotFound):
            review.approve(s, agent, world.drafts["other-shop"], now=T0, undo_window=ww.UNDO)
        with pytest.raises(review.Forbidden):
            review.approve_action(s, agent, world.actions["dispute:refund_full"], now=T0, confirm=True)
        no_money = reviewer(world, cap=None)
        with pytest.raises(review.Forbidden, match="no money approvals"):
            review.approve_action(s, no_money, world.actions["coupon:coupon"], now=T0, confirm=True)
        with pytest.raises(review.Invalid, match="^until:"):
            review.snooze(s, agent, world.drafts["plain"], until=T0 + timedelta(days=31), now=T0)
        with pytest.raises(review.Invalid, match="^edited_text:"):
            review.approve(
                s, agent, world.drafts["plain"], now=T0, undo_window=ww.UNDO, edited_text="x" * 20_001
            )
        # Extend-protection is not money: approved as proposed, no confirmation needed.
        action = review.approve_action(s, agent, world.actions["coupon:extend_protection"], now=T0)
        assert action.state == "approved"


def test_dashboard_figures(engine, world):
    agent = reviewer(world)
    with session_scope(engine) as s:
        review.approve(s, agent, world.drafts["plain"], now=T0, undo_window=ww.UNDO, edited_text="Different.")
        review.approve(s, agent, world.drafts["second"], now=T0, undo_window=ww.UNDO)
        review.reject(s, agent, world.drafts["script"], reason="spam", now=T0)
        ww.add_case(s, world, "auto", "A", created=T0, auto=True)
    with session_scope(engine) as s:
        stats = dashboard(s, frozenset({world.accounts["A"]}), now=T0, days=30)
    assert stats.drafts == 7 and stats.auto_drafts == 1 and stats.auto_send_rate == round(1 / 7, 4)
    assert stats.human_approved == 2 and stats.edited == 1 and stats.edit_rate == 0.5
    assert stats.pending == 3 and stats.oldest_pending_at == T0 - timedelta(hours=4)
    assert {c.label: c.count for c in stats.by_state} == {"pending": 3, "approved": 3, "rejected": 1}
    with session_scope(engine) as s:
        empty = dashboard(s, frozenset(), now=T0)
    assert empty.drafts == 0 and empty.auto_send_rate is None and empty.edit_rate is None


def test_bars_scale_to_the_largest():
    counts = [Count(label=str(i), count=c) for i, c in enumerate([10, 5, 0])]
    assert [b.fraction for b in bars(counts)] == [1.0, 0.5, 0.0]
    many = [Count(label=str(i), count=1) for i in range(15)]
    shown = bars(many, limit=12)
    assert len(shown) == 13 and shown[-1].label == "(other)" and shown[-1].count == 3


def test_template_filters():
    assert ago(T0 - timedelta(minutes=5), T0) == "5 min ago"
    assert ago(T0 - timedelta(hours=3, minutes=20), T0) == "3 h 20 ago"
    assert ago(T0 - timedelta(days=3), T0) == "3 d ago"
    assert ago(None, T0) == "—"
    assert until(T0 + timedelta(hours=20), T0) == "in 20 h"
    assert until(T0 - timedelta(hours=2), T0) == "2 h overdue"
    assert money(Decimal("1234.5"), "USD") == "1,234.50 USD"
    assert percent(0.257) == "26%" and percent(None) == "—"
