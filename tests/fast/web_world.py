"""Seed data for the web tests: two shops, four users and drafts made by the lead's `record_decision`."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from argon2 import PasswordHasher
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from worker import drafts as d
from worker import models as m
from worker import users as um
from worker.db import session_scope
from worker.triage.types import Action, ActionType, Intent
from worker.triage.types import Decision as TriageDecision

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
UNDO = timedelta(minutes=2)
PASSWORD = "correct horse battery"
# Cheap argon2 parameters for tests only: the production hasher takes ~0.1 s per hash.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
SCRIPT_MESSAGE = "Hello <script>alert('pwned')</script> <b>bold</b> & where is my parcel?"


@dataclass
class World:
    accounts: dict[str, int] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)
    drafts: dict[str, int] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)
    orders: dict[str, int] = field(default_factory=dict)


def decision(
    *,
    intent: Intent = Intent.not_received,
    scenario: str = "in_transit",
    reply: str = "Hello Alex, your parcel is on its way.",
    actions: list[Action] | None = None,
    refund_allowed: bool = False,
    confidence: float = 0.9,
    language: str = "en",
    auto: bool = False,
) -> TriageDecision:
    return TriageDecision(
        id="x",
        language=language,
        intent=intent,
        confidence=confidence,
        scenario=scenario,
        deadline=T0 + timedelta(days=7),
        days_left=7,
        refund_allowed=refund_allowed,
        actions=actions or [],
        auto_send=auto,
        template=f"{intent.value}/{scenario}",
        reply_language=language,
        reply=reply,
        reasons=[f"tracking {scenario}", f"intent {intent.value} at {confidence:.2f}"],
    )


def add_case(
    s,
    world: World,
    key: str,
    account: str,
    *,
    body: str | None = "where is it?",
    buyer: str = "Alex",
    total: str = "24.90",
    dispute_due: datetime | None = None,
    created: datetime = T0,
    **decision_kw,
) -> int:
    """One order with a conversation, a buyer message (and a dispute), decided into a draft; returns its id."""
    account_id = world.accounts[account]
    order = m.Order(
        account_id=account_id,
        external_id=f"80-{key}",
        status="shipped",
        total=Decimal(total),
        currency="USD",
        buyer_name=buyer,
        buyer_country="US",
        paid_at=created - timedelta(days=22),
        shipped_at=created - timedelta(days=20),
        shipping_method="epacket",
        tracking_number=f"LX{key.upper()}CN",
    )
    s.add(order)
    s.flush()
    s.add(
        m.OrderItem(
            order_id=order.id,
            sku=f"SKU-{key}",
            title="Phone case",
            quantity=1,
            price=Decimal(total),
            currency="USD",
        )
    )
    s.add(
        m.TrackingSnapshot(
            order_id=order.id,
            tracking_number=order.tracking_number,
            status="in_transit",
            last_event_at=created - timedelta(days=2),
            events_json=[
                {
                    "time": (created - timedelta(days=19)).isoformat(),
                    "location": "Shenzhen",
                    "description": "Accepted",
                },
                {
                    "time": (created - timedelta(days=2)).isoformat(),
                    "location": "Frankfurt",
                    "description": "Arrived at hub",
                },
            ],
            fetched_at=created - timedelta(hours=1),
        )
    )
    conv = m.Conversation(
        account_id=account_id, external_id=f"conv-{key}", order_id=order.id, buyer_name=buyer
    )
    s.add(conv)
    s.flush()
    message_id = None
    if body is not None:
        s.add(
            m.Message(
                conversation_id=conv.id,
                external_id=f"s-{key}",
                direction="seller",
                body="Thanks for your order!",
                sent_at=created - timedelta(days=21),
            )
        )
        msg = m.Message(
            conversation_id=conv.id,
            external_id=f"b-{key}",
            direction="buyer",
            body=body,
            sent_at=created,
            language="en",
        )
        s.add(msg)
        s.flush()
        message_id = msg.id
    dispute_id = None
    if dispute_due is not None:
        dispute = m.Dispute(
            account_id=account_id,
            order_id=order.id,
            external_id=f"D-{key}",
            reason="Package not received",
            buyer_request="refund",
            amount=Decimal(total),
            currency="USD",
            opened_at=created,
            response_due_at=dispute_due,
        )
        s.add(dispute)
        s.flush()
        dispute_id = dispute.id
    src = d.Source(
        account_id=account_id,
        order_id=order.id,
        message_id=message_id,
        dispute_id=dispute_id,
        conversation_id=conv.id,
    )
    row = d.record_decision(s, src, decision(**decision_kw), now=created, undo_window=UNDO)
    draft_id = s.scalar(select(m.Draft.id).where(m.Draft.decision_id == row.id))
    world.drafts[key] = draft_id
    world.orders[key] = order.id
    for action in s.scalars(select(m.ProposedAction).where(m.ProposedAction.decision_id == row.id)):
        world.actions[f"{key}:{action.type}"] = action.id
    return draft_id


def build_world(engine: Engine) -> World:
    """Shops A and B; admin, supervisor (A), agent (A) and agent-b (B); drafts of every interesting kind."""
    world = World()
    with session_scope(engine) as s:
        for name in ("A", "B"):
            account = m.Account(
                marketplace="aliexpress" if name == "A" else "ebay", name=f"shop-{name.lower()}"
            )
            s.add(account)
            s.flush()
            world.accounts[name] = account.id
        for username, role, accounts in (
            ("admin", "admin", []),
            ("super", "supervisor", ["A"]),
            ("agent", "agent", ["A"]),
            ("agent-b", "agent", ["B"]),
        ):
            user = um.create_user(
                s, username, PASSWORD, role, [world.accounts[a] for a in accounts], actor="test"
            )
            world.users[username] = user.id
        add_case(s, world, "plain", "A", created=T0 - timedelta(hours=5))
        add_case(
            s,
            world,
            "second",
            "A",
            buyer="Maria",
            body="Is my order shipped?",
            created=T0 - timedelta(hours=3),
            language="es",
        )
        add_case(
            s,
            world,
            "dispute",
            "A",
            buyer="Dmitri",
            created=T0 - timedelta(hours=1),
            dispute_due=T0 + timedelta(hours=20),
            scenario="overdue",
            refund_allowed=True,
            actions=[Action(type=ActionType.refund_full, amount=Decimal("24.90"), currency="USD")],
            reply="Hello Dmitri, we refunded your order in full.",
        )
        add_case(s, world, "script", "A", buyer="Eve", body=SCRIPT_MESSAGE, created=T0 - timedelta(hours=2))
        add_case(
            s,
            world,
            "forbidden",
            "A",
            buyer="Omar",
            created=T0 - timedelta(hours=4),
            actions=[Action(type=ActionType.refund_partial, amount=Decimal("10.00"), currency="USD")],
        )
        add_case(
            s,
            world,
            "coupon",
            "A",
            buyer="Lee",
            intent=Intent.quality_issue,
            scenario="quality_issue",
            created=T0 - timedelta(minutes=30),
            refund_allowed=True,
            actions=[
                Action(type=ActionType.coupon, amount=Decimal("2.00"), currency="USD"),
                Action(type=ActionType.extend_protection, days=30),
            ],
        )
        add_case(s, world, "other-shop", "B", buyer="Bob", created=T0 - timedelta(hours=6))
    return world


# Clients.


class Clock:
    """A settable clock for the app (app.state.clock)."""

    def __init__(self, t: datetime = T0) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t

    def advance(self, **kw: float) -> None:
        self.t += timedelta(**kw)


def csrf_in(html: str) -> str:
    """The CSRF token a page's forms carry."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match[1]


def login(client, username: str, password: str = PASSWORD) -> str:
    """Log `client` in through the form; returns the session's CSRF token."""
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_in(page.text), "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return csrf_in(client.get("/").text)


def token_for(engine: Engine, username: str) -> str:
    """A new API token for `username`."""
    with session_scope(engine) as s:
        _, token = um.create_token(s, um.get_user(s, username), "tests", actor="test")
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_app(settings, clock: Clock | None = None):
    """The web app on the test settings, its clock fixed at T0 (or `clock`)."""
    from worker.web.app import create_app

    app = create_app(settings)
    app.state.clock = clock or Clock()
    return app


def make_client(app, **kw):
    """A TestClient; Starlette's deprecation notice about httpx is silenced (it is not about our code)."""
    with warnings.catch_warnings():
        # StarletteDeprecationWarning (a UserWarning) asks for the httpx2 package; httpx works.
        warnings.filterwarnings("ignore", message=".*httpx2.*")
        from fastapi.testclient import TestClient
    return TestClient(app, **kw)


def count(engine: Engine, model, *where) -> int:
    with session_scope(engine) as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))
