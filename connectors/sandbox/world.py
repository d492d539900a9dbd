"""The sandbox marketplace's state and its seeded generator.

Everything is a function of the seed and the sandbox clock: an order's status and a parcel's
tracking are computed from planned timelines at the time asked, so advancing the clock moves
parcels along and completes orders without a background job. Only seller actions (messages,
extensions, dispute solutions) and generator calls change the state.
"""

from __future__ import annotations

import dataclasses
import random
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from connectors.sandbox.phrases import (
    DISPUTE_REASONS,
    PHRASES,
    SITUATION_STATES,
    SITUATION_WEIGHTS,
    SYSTEM_NOTICES,
)

# ---------------------------------------------------------------------------- catalogue

BUYERS: dict[str, dict[str, Any]] = {
    "en": {
        "countries": (
            ("US", ("Chicago", "Austin", "Denver")),
            ("GB", ("Leeds", "Bristol")),
            ("AU", ("Perth",)),
        ),
        "first": ("Alex", "Emma", "John", "Olivia", "Mike", "Sarah"),
        "last": ("Smith", "Brown", "Taylor", "Wilson"),
    },
    "es": {
        "countries": (("ES", ("Madrid", "Sevilla")), ("MX", ("Puebla", "Monterrey")), ("CL", ("Santiago",))),
        "first": ("Lucía", "Carlos", "Sofía", "Javier", "Marta"),
        "last": ("García", "López", "Martínez", "Sánchez"),
    },
    "pt": {
        "countries": (("BR", ("Curitiba", "Recife", "Campinas")), ("PT", ("Porto", "Braga"))),
        "first": ("Ana", "João", "Mariana", "Pedro", "Beatriz"),
        "last": ("Silva", "Souza", "Oliveira", "Costa"),
    },
    "ru": {
        "countries": (("RU", ("Kazan", "Samara", "Omsk")), ("BY", ("Minsk",)), ("KZ", ("Almaty",))),
        "first": ("Olga", "Dmitry", "Irina", "Sergey", "Anna"),
        "last": ("Ivanova", "Petrov", "Smirnova", "Kuznetsov"),
    },
    "fr": {
        "countries": (("FR", ("Lyon", "Nantes", "Lille")), ("BE", ("Liège",))),
        "first": ("Camille", "Louis", "Chloé", "Hugo", "Léa"),
        "last": ("Martin", "Bernard", "Dubois", "Moreau"),
    },
    "de": {
        "countries": (("DE", ("Köln", "Leipzig", "Bremen")), ("AT", ("Graz",)), ("CH", ("Basel",))),
        "first": ("Lena", "Jonas", "Mia", "Felix", "Hannah"),
        "last": ("Müller", "Schmidt", "Schneider", "Fischer"),
    },
}
LANGUAGE_WEIGHTS: dict[str, float] = {"en": 30, "es": 18, "pt": 20, "ru": 14, "fr": 9, "de": 9}

PRODUCTS: tuple[tuple[str, str, Decimal], ...] = (
    ("DR", "Summer dress", Decimal("18.90")),
    ("BT", "Leather belt", Decimal("7.50")),
    ("PC", "Phone case", Decimal("3.99")),
    ("EP", "Bluetooth earphones", Decimal("24.90")),
    ("SN", "Running sneakers", Decimal("32.00")),
    ("WT", "Quartz watch", Decimal("15.40")),
    ("BP", "Travel backpack", Decimal("21.70")),
    ("SG", "Polarised sunglasses", Decimal("9.90")),
    ("LS", "LED strip 5 m", Decimal("11.20")),
    ("RC", "Kids raincoat", Decimal("13.60")),
)
SIZES = ("S", "M", "L", "XL")
COLOURS = ("RED", "BLUE", "BLACK", "WHITE")


@dataclass(frozen=True, slots=True)
class Service:
    name: str  # AliExpress logistics service name
    promised_days: int
    speed: float  # multiplies the parcel timeline
    carrier_key: int  # 17TRACK carrier code
    carrier_name: str
    prefix: str
    suffix: str


SERVICES: tuple[Service, ...] = (
    Service("CPAM", 60, 1.8, 3011, "China Post", "RB", "CN"),
    Service("EMS_ZX_ZX_US", 27, 0.8, 3011, "China Post", "LX", "CN"),
    Service("CAINIAO_STANDARD", 45, 1.0, 190271, "Cainiao", "AEUS", ""),
    Service("DHL", 15, 0.35, 100001, "DHL", "", ""),
)
SERVICE_WEIGHTS = (35, 20, 35, 10)

# ------------------------------------------------------------------------------ parcels

# Normal journey: (days after shipping at speed 1, 17TRACK status, sub-status, where, description).
NORMAL_STAGES: tuple[tuple[float, str, str, str, str], ...] = (
    (0.2, "InfoReceived", "InfoReceived", "origin", "Shipment information received"),
    (1.0, "InTransit", "InTransit_PickedUp", "origin", "Picked up by the carrier"),
    (3.0, "InTransit", "InTransit_Departure", "hub", "Departed from the origin country"),
    (8.0, "InTransit", "InTransit_Arrival", "gateway", "Arrived in the destination country"),
    (9.0, "InTransit", "InTransit_CustomsProcessing", "gateway", "Customs clearance started"),
    (10.5, "InTransit", "InTransit_CustomsReleased", "gateway", "Released by customs"),
    (12.0, "InTransit", "InTransit_Other", "city", "Arrived at the local sorting center"),
    (13.5, "OutForDelivery", "OutForDelivery_Other", "city", "Out for delivery"),
    (14.0, "Delivered", "Delivered_Other", "city", "Delivered"),
)
_STAGE = {sub: i for i, (_, _, sub, _, _) in enumerate(NORMAL_STAGES)}


@dataclass(frozen=True, slots=True)
class ParcelEvent:
    at: datetime
    status: str
    sub_status: str
    location: str
    description: str


@dataclass
class Parcel:
    number: str
    service: Service
    origin: str
    destination_country: str
    destination_city: str
    events: list[ParcelEvent] = field(default_factory=list)  # chronological

    def visible(self, now: datetime) -> list[ParcelEvent]:
        return [e for e in self.events if e.at <= now]

    def latest(self, now: datetime) -> ParcelEvent | None:
        seen = self.visible(now)
        return seen[-1] if seen else None

    def delivered_at(self) -> datetime | None:
        return next((e.at for e in self.events if e.status == "Delivered"), None)


def _where(kind: str, parcel: Parcel) -> str:
    return {
        "origin": f"{parcel.origin}, CN",
        "hub": "Guangzhou International Exchange, CN",
        "gateway": f"International gateway, {parcel.destination_country}",
        "city": f"{parcel.destination_city}, {parcel.destination_country}",
    }[kind]


def plan_parcel(
    parcel: Parcel, fate: str, shipped_at: datetime, promised_days: int, rng: random.Random
) -> None:
    """Fill `parcel.events` for one fate: normal, slow, customs, lost, returned, pickup, failure, no_tracking."""
    speed = parcel.service.speed * rng.uniform(0.85, 1.15)

    def at(days: float) -> datetime:
        return shipped_at + timedelta(days=days)

    def stage(index: int, days: float) -> ParcelEvent:
        _, status, sub, where, text = NORMAL_STAGES[index]
        return ParcelEvent(at(days), status, sub, _where(where, parcel), text)

    def normal_until(sub: str) -> list[ParcelEvent]:
        last = _STAGE[sub]
        return [stage(i, NORMAL_STAGES[i][0] * speed) for i in range(last + 1)]

    city = _where("city", parcel)
    gateway = _where("gateway", parcel)
    if fate == "no_tracking":
        events: list[ParcelEvent] = []
    elif fate == "normal":
        events = normal_until("Delivered_Other")
    elif fate == "slow":
        # Leaves China normally, then crawls: delivered 25 days after the promised deadline.
        events = normal_until("InTransit_Departure")
        events += [
            ParcelEvent(
                at(promised_days * 0.5),
                "InTransit",
                "InTransit_Arrival",
                gateway,
                "Arrived in the destination country",
            ),
            ParcelEvent(
                at(promised_days * 0.5 + 2),
                "InTransit",
                "InTransit_CustomsReleased",
                gateway,
                "Released by customs",
            ),
            ParcelEvent(
                at(promised_days * 0.5 + 6),
                "InTransit",
                "InTransit_Other",
                city,
                "Arrived at the local sorting center",
            ),
            ParcelEvent(
                at(promised_days + 24), "OutForDelivery", "OutForDelivery_Other", city, "Out for delivery"
            ),
            ParcelEvent(at(promised_days + 25), "Delivered", "Delivered_Other", city, "Delivered"),
        ]
    elif fate == "customs":
        events = normal_until("InTransit_CustomsProcessing")
        events.append(
            ParcelEvent(
                events[-1].at + timedelta(days=2),
                "InTransit",
                "InTransit_CustomsRequiringInformation",
                gateway,
                "Held by customs: information required from the addressee",
            )
        )
    elif fate == "lost":
        events = normal_until("InTransit_Departure")
        events.append(
            ParcelEvent(
                events[-1].at + timedelta(days=20),
                "Exception",
                "Exception_Lost",
                gateway,
                "Item lost in transit",
            )
        )
    elif fate in ("returned", "pickup", "failure"):
        events = normal_until("OutForDelivery_Other")
        out = events[-1].at
        if fate == "returned":
            events += [
                ParcelEvent(
                    out + timedelta(hours=12),
                    "DeliveryFailure",
                    "DeliveryFailure_InvalidAddress",
                    city,
                    "Addressee unknown at this address",
                ),
                ParcelEvent(
                    out + timedelta(days=2), "Exception", "Exception_Returning", city, "Returning to sender"
                ),
                ParcelEvent(
                    out + timedelta(days=30),
                    "Exception",
                    "Exception_Returned",
                    "Shenzhen, CN",
                    "Returned to sender",
                ),
            ]
        elif fate == "pickup":
            events.append(
                ParcelEvent(
                    out + timedelta(hours=12),
                    "AvailableForPickup",
                    "AvailableForPickup_Other",
                    f"Post office, {city}",
                    "Awaiting collection at the post office",
                )
            )
        else:
            events.append(
                ParcelEvent(
                    out + timedelta(hours=12),
                    "DeliveryFailure",
                    "DeliveryFailure_NoBody",
                    city,
                    "Delivery attempted: nobody home",
                )
            )
    else:
        raise ValueError(f"unknown parcel fate {fate!r}")
    parcel.events = events


def status_of(parcel: Parcel | None, now: datetime) -> tuple[str, str]:
    """17TRACK (status, sub_status) of a parcel now; NotFound before its first scan."""
    latest = parcel.latest(now) if parcel else None
    if latest is None:
        return "NotFound", "NotFound_Other"
    return latest.status, latest.sub_status


# ------------------------------------------------------------------------------- records


@dataclass
class Buyer:
    login_id: str
    name: str
    country: str
    city: str
    language: str


@dataclass
class Item:
    sku: str
    title: str
    quantity: int
    price: Decimal


@dataclass
class Order:
    id: str
    account: str
    buyer: Buyer
    items: list[Item]
    total: Decimal
    currency: str
    service: Service
    created_at: datetime
    paid_at: datetime | None
    shipped_at: datetime | None
    parcel: Parcel | None
    promised_days: int
    confirm_after_delivery: timedelta | None  # None: the buyer never confirms receipt
    extended_days: int = 0
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    issue_id: str | None = None
    touches: list[datetime] = field(default_factory=list)
    state_label: str = ""

    def protection_end(self) -> datetime | None:
        if self.shipped_at is None:
            return None
        return self.shipped_at + timedelta(days=self.promised_days + self.extended_days)

    def finish_at(self) -> tuple[datetime, str] | None:
        """When the order completes by itself: the buyer confirms, or buyer protection runs out."""
        end = self.protection_end()
        if end is None:
            return None
        candidates = [(end, "buyer_accept_goods_timeout")]
        delivered = self.parcel.delivered_at() if self.parcel else None
        if delivered is not None and self.confirm_after_delivery is not None:
            candidates.append((delivered + self.confirm_after_delivery, "buyer_accept_goods"))
        return min(candidates)


@dataclass
class Message:
    id: str
    channel_id: str
    at: datetime
    content: str
    sender_login_id: str
    sender_name: str
    message_type: str  # member | order | system
    order_id: str | None
    situation: str | None = None
    language: str | None = None


@dataclass
class Channel:
    id: str
    account: str
    buyer: Buyer
    messages: list[Message] = field(default_factory=list)
    read: bool = False
    processed: bool = False


@dataclass
class Solution:
    id: str
    owner: str  # buyer | seller
    solution_type: str  # refund | return_and_refund
    amount: Decimal
    currency: str
    status: str  # pending | agreed | refused
    content: str
    at: datetime


@dataclass
class Issue:
    id: str
    account: str
    order_id: str
    buyer_login_id: str
    reason_en: str
    reason_cn: str
    opened_at: datetime
    modified_at: datetime
    max_refund: Decimal
    currency: str
    list_status: str = "processing"
    detail_status: str = "WAIT_SELLER_CONFIRM_REFUND"
    closed_at: datetime | None = None
    refunded: bool = False
    buyer_solutions: list[Solution] = field(default_factory=list)
    seller_solutions: list[Solution] = field(default_factory=list)


@dataclass
class Account:
    name: str
    app_key: str
    app_secret: str
    access_token: str
    refresh_token: str
    seller_login_id: str
    expires_at: datetime
    orders: dict[str, Order] = field(default_factory=dict)
    channels: dict[str, Channel] = field(default_factory=dict)
    issues: dict[str, Issue] = field(default_factory=dict)
    channel_by_buyer: dict[str, str] = field(default_factory=dict)

    def credentials(self, gateway_url: str) -> dict[str, Any]:
        return {
            "app_key": self.app_key,
            "app_secret": self.app_secret,
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at.isoformat(),
            "seller_login_id": self.seller_login_id,
            "gateway_url": gateway_url,
        }


# Initial population mix (`add_orders`): order state -> weight.
ORDER_STATE_WEIGHTS: dict[str, float] = {
    "completed": 28,
    "delivered": 14,
    "in_transit": 20,
    "paid": 8,
    "unpaid": 4,
    "cancelled": 4,
    "customs": 3,
    "lost": 2,
    "returned": 2,
    "pickup": 3,
    "failure": 2,
    "no_tracking": 2,
    "overdue": 3,
}
# Fast services make some states impossible before protection runs out.
_SLOW_STATES = frozenset({"overdue", "lost", "returned", "customs", "no_tracking", "pickup", "failure"})
TOKEN_LIFETIME = timedelta(days=30)


class World:
    """All accounts' data, guarded by one lock; every random draw comes from the seeded generator."""

    def __init__(self, seed: int = 1, accounts: int = 2) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.lock = threading.RLock()
        self.accounts: dict[str, Account] = {}
        self.parcels: dict[str, Order] = {}
        self._counter = 0
        self._tokens: dict[str, str] = {}  # access token -> account name
        self._refresh: dict[str, str] = {}  # refresh token -> account name
        self._now: datetime | None = None
        self._initial_accounts = accounts

    # ------------------------------------------------------------------ ids and accounts

    def _next(self) -> int:
        self._counter += 1
        return self._counter

    def new_id(self, base: int) -> str:
        """A fresh numeric id above `base` (ids of one kind share a range, like the real ones)."""
        with self.lock:
            return str(base + self._next())

    def _hex(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(n))

    def setup(self, now: datetime) -> None:
        with self.lock:
            for _ in range(self._initial_accounts):
                self.add_account(now)

    def add_account(self, now: datetime, name: str | None = None) -> Account:
        with self.lock:
            index = len(self.accounts) + 1
            name = name or f"shop{index}"
            if name in self.accounts:
                raise ValueError(f"account {name!r} exists")
            account = Account(
                name=name,
                app_key=f"5{self.seed % 1000:03d}{index:03d}",
                app_secret=self._hex(32),
                access_token=f"50000{self._hex(40)}",
                refresh_token=f"50001{self._hex(40)}",
                seller_login_id=f"cn{1500000000 + self.seed * 1000 + index}{name}",
                expires_at=now + TOKEN_LIFETIME,
            )
            self.accounts[name] = account
            self._tokens[account.access_token] = name
            self._refresh[account.refresh_token] = name
            return account

    def account(self, name: str | None = None) -> Account:
        with self.lock:
            if name is None:
                return next(iter(self.accounts.values()))
            try:
                return self.accounts[name]
            except KeyError:
                raise ValueError(
                    f"unknown sandbox account {name!r} (known: {', '.join(self.accounts)})"
                ) from None

    def by_app_key(self, app_key: str) -> Account | None:
        with self.lock:
            return next((a for a in self.accounts.values() if a.app_key == app_key), None)

    def account_of_token(self, token: str) -> Account | None:
        with self.lock:
            name = self._tokens.get(token)
            return self.accounts.get(name) if name else None

    def refresh(self, account: Account, refresh_token: str, now: datetime) -> Account:
        """Issue a new access token (the old one stops working); the refresh token is kept."""
        with self.lock:
            if self._refresh.get(refresh_token) != account.name:
                raise KeyError("refresh token")
            self._tokens.pop(account.access_token, None)
            # Not from the seeded generator: refreshes happen at wall-clock-dependent moments and
            # must not shift the data that later generator calls produce.
            account.access_token = f"50000{secrets.token_hex(20)}"
            account.expires_at = now + TOKEN_LIFETIME
            self._tokens[account.access_token] = account.name
            return account

    # ------------------------------------------------------------------ generation

    def _buyer(self) -> Buyer:
        language = self.rng.choices(list(LANGUAGE_WEIGHTS), weights=list(LANGUAGE_WEIGHTS.values()))[0]
        spec = BUYERS[language]
        country, cities = self.rng.choice(spec["countries"])
        name = f"{self.rng.choice(spec['first'])} {self.rng.choice(spec['last'])}"
        login = f"{country.lower()}{self.rng.randint(100000000, 999999999)}{self._hex(4)}"
        return Buyer(login, name, country, self.rng.choice(cities), language)

    def _items(self) -> list[Item]:
        out = []
        for _ in range(self.rng.choice((1, 1, 1, 2))):
            prefix, title, price = self.rng.choice(PRODUCTS)
            sku = f"{prefix}-{self.rng.choice(COLOURS)}-{self.rng.choice(SIZES)}"
            out.append(Item(sku, title, self.rng.choice((1, 1, 2)), price))
        return out

    def _service(self, state: str) -> Service:
        if state in _SLOW_STATES:
            return self.rng.choice(SERVICES[:3])
        return self.rng.choices(SERVICES, weights=SERVICE_WEIGHTS)[0]

    def _tracking_number(self, service: Service) -> str:
        n = self._next()
        if service.name == "DHL":
            return f"{1000000000 + n * 7919 % 899999999}"
        if service.prefix == "AEUS":
            return f"AEUS{n:010d}"
        return f"{service.prefix}{n:09d}{service.suffix}"

    def make_order(self, account: Account, state: str, now: datetime, touch: bool = False) -> Order:
        """A new order that is in `state` at `now` (backdated), e.g. `customs` or `delivered`."""
        with self.lock:
            return self._make_order(account, state, now, touch)

    def _make_order(self, account: Account, state: str, now: datetime, touch: bool) -> Order:
        rng = self.rng
        buyer = self._buyer()
        items = self._items()
        service = self._service(state)
        promised = 90 if (service.name == "CPAM" and buyer.country == "BR") else service.promised_days
        order_id = f"81{self.seed % 100:02d}{self._next():012d}"
        total = sum((i.price * i.quantity for i in items), Decimal("0"))
        fate = {
            "overdue": "slow",
            "customs": "customs",
            "lost": "lost",
            "returned": "returned",
            "pickup": "pickup",
            "failure": "failure",
            "no_tracking": "no_tracking",
        }.get(state, "normal")
        # Ship "X days ago" where X puts the planned parcel in the wanted state now.
        parcel = Parcel("", service, rng.choice(("Shenzhen", "Yiwu", "Guangzhou")), buyer.country, buyer.city)
        shipped_at: datetime | None = None
        confirm: timedelta | None = timedelta(days=rng.uniform(4, 12))
        extended = 0
        if state in ("unpaid", "paid", "cancelled"):
            created = now - timedelta(
                days=rng.uniform(0.2, 2.0) if state != "cancelled" else rng.uniform(5, 20)
            )
            paid = None if state in ("unpaid",) else created + timedelta(minutes=rng.uniform(5, 120))
            if state == "paid":
                # Paid a few days ago; ships soon (and then moves along with the clock).
                created = now - timedelta(days=rng.uniform(1.5, 4.5))
                paid = created + timedelta(minutes=rng.uniform(5, 120))
                shipped_at = now + timedelta(days=rng.uniform(0.5, 3))
        else:
            # Plan at speed with a nominal ship date, then slide the plan to the right X.
            nominal = now
            plan_parcel(parcel, fate, nominal, promised, rng)
            offsets = [(e.at - nominal).total_seconds() / 86400 for e in parcel.events]
            subs = [e.sub_status for e in parcel.events]

            def after(sub: str, lo: float, hi: float) -> float:
                base = offsets[subs.index(sub)]
                return base + rng.uniform(lo, hi)

            if state == "in_transit":
                start = offsets[subs.index("InTransit_PickedUp")] + 0.2
                end = min(offsets[subs.index("InTransit_CustomsProcessing")] - 0.2, promised - 2)
                x = rng.uniform(start, max(start, end))
            elif state == "overdue":
                x = promised + rng.uniform(2, 20)
                extended = 30  # the seller already extended protection once for this buyer
            elif state == "delivered":
                x = after("Delivered_Other", 0.5, 3.5)
                confirm = None if rng.random() < 0.5 else timedelta(days=rng.uniform(5, 12))
            elif state == "completed":
                x = after("Delivered_Other", 14, 40)
            elif state == "customs":
                x = after("InTransit_CustomsRequiringInformation", 3, 12)
            elif state == "lost":
                x = after("Exception_Lost", 1, 8)
            elif state == "returned":
                x = after("Exception_Returning", 1, 10)
            elif state == "pickup":
                x = after("AvailableForPickup_Other", 1, 6)
            elif state == "failure":
                x = after("DeliveryFailure_NoBody", 1, 4)
            elif state == "no_tracking":
                x = rng.uniform(11, min(25, promised - 2))
            else:
                raise ValueError(f"unknown order state {state!r}")
            shipped_at = now - timedelta(days=x)
            shift = shipped_at - nominal
            parcel.events = [dataclasses.replace(e, at=e.at + shift) for e in parcel.events]
            paid = shipped_at - timedelta(days=rng.uniform(0.5, 3))
            created = paid - timedelta(minutes=rng.uniform(5, 120))
        if shipped_at is not None:
            parcel.number = self._tracking_number(service)
            if not parcel.events and fate != "no_tracking":
                plan_parcel(parcel, fate, shipped_at, promised, rng)
        order = Order(
            id=order_id,
            account=account.name,
            buyer=buyer,
            items=items,
            total=total,
            currency="USD",
            service=service,
            created_at=created,
            paid_at=paid,
            shipped_at=shipped_at,
            parcel=parcel if shipped_at is not None else None,
            promised_days=promised,
            confirm_after_delivery=confirm,
            extended_days=extended,
            state_label=state,
        )
        if state == "cancelled":
            order.cancelled_at = created + timedelta(days=1)
            order.cancel_reason = "buyer_cancel_order" if paid else "buyer_pay_timeout"
        if touch:
            order.touches.append(now)
        account.orders[order.id] = order
        if order.parcel is not None:
            self.parcels[order.parcel.number] = order
        return order

    def add_orders(self, account: Account, n: int, now: datetime, fresh: bool = False) -> list[str]:
        """`n` orders: a backdated realistic mix of states, or `fresh` ones placed right now."""
        with self.lock:
            ids = []
            for _ in range(n):
                if fresh:
                    order = self._make_order(account, "unpaid", now, touch=False)
                    order.created_at = now
                    order.paid_at = now + timedelta(minutes=self.rng.uniform(5, 60))
                    order.shipped_at = order.paid_at + timedelta(days=self.rng.uniform(1, 3))
                    fate = self.rng.choices(
                        ("normal", "slow", "customs", "lost", "returned", "pickup"), (80, 4, 5, 3, 3, 5)
                    )[0]
                    parcel = Parcel(
                        self._tracking_number(order.service),
                        order.service,
                        "Shenzhen",
                        order.buyer.country,
                        order.buyer.city,
                    )
                    plan_parcel(parcel, fate, order.shipped_at, order.promised_days, self.rng)
                    order.parcel = parcel
                    order.state_label = f"fresh/{fate}"
                    self.parcels[parcel.number] = order
                else:
                    states = list(ORDER_STATE_WEIGHTS)
                    state = self.rng.choices(states, weights=list(ORDER_STATE_WEIGHTS.values()))[0]
                    order = self._make_order(account, state, now, touch=False)
                ids.append(order.id)
            return ids

    def channel(self, account: Account, buyer: Buyer) -> Channel:
        """The buyer's conversation with the seller, opened on first use."""
        channel_id = account.channel_by_buyer.get(buyer.login_id)
        if channel_id is None:
            channel_id = self.new_id(3000000000)
            account.channels[channel_id] = Channel(channel_id, account.name, buyer)
            account.channel_by_buyer[buyer.login_id] = channel_id
        return account.channels[channel_id]

    def _compose(self, situation: str, order: Order, now: datetime) -> tuple[str, str]:
        language = order.buyer.language
        phrasings = PHRASES[situation][language]
        since = (
            order.shipped_at
            if order.shipped_at and order.shipped_at <= now
            else order.paid_at or order.created_at
        )
        days = max(1, (now - since).days)
        text = self.rng.choice(phrasings).format(order=order.id, item=order.items[0].title.lower(), days=days)
        return text, language

    def add_message(
        self,
        account: Account,
        order: Order,
        now: datetime,
        *,
        situation: str | None,
        text: str,
        language: str | None,
    ) -> Message:
        with self.lock:
            channel = self.channel(account, order.buyer)
            message = Message(
                id=self.new_id(7000000000),
                channel_id=channel.id,
                at=now,
                content=text,
                sender_login_id=order.buyer.login_id,
                sender_name=order.buyer.name,
                message_type="order",
                order_id=order.id,
                situation=situation,
                language=language,
            )
            channel.messages.append(message)
            channel.read = channel.processed = False
            return message

    def add_buyer_messages(
        self, account: Account, n: int, now: datetime, situations: list[str] | None = None
    ) -> list[str]:
        """`n` buyer messages, each about an order whose facts fit what the buyer says."""
        with self.lock:
            names = situations or list(SITUATION_WEIGHTS)
            for name in names:
                if name not in PHRASES:
                    raise ValueError(f"unknown situation {name!r} (known: {', '.join(PHRASES)})")
            weights = [SITUATION_WEIGHTS[name] for name in names]
            ids = []
            for _ in range(n):
                situation = self.rng.choices(names, weights=weights)[0]
                order = self._make_order(account, SITUATION_STATES[situation], now, touch=True)
                text, language = self._compose(situation, order, now)
                ids.append(
                    self.add_message(
                        account, order, now, situation=situation, text=text, language=language
                    ).id
                )
                if self.rng.random() < 0.05:
                    # Now and then AliExpress itself posts into the conversation.
                    notice = self.rng.choice(SYSTEM_NOTICES).format(order=order.id)
                    channel = self.channel(account, order.buyer)
                    channel.messages.append(
                        Message(
                            self.new_id(7000000000),
                            channel.id,
                            now,
                            notice,
                            "aliexpress",
                            "AliExpress",
                            "system",
                            order.id,
                        )
                    )
            return ids

    def open_disputes(self, account: Account, n: int, now: datetime) -> list[str]:
        """`n` dispute openings on fitting orders; about half come with a buyer message."""
        with self.lock:
            ids = []
            for _ in range(n):
                reason_en, reason_cn, situations = self.rng.choice(DISPUTE_REASONS)
                situation = self.rng.choice(situations)
                order = self._make_order(account, SITUATION_STATES[situation], now, touch=True)
                issue = self._open_issue(account, order, now, reason_en, reason_cn)
                ids.append(issue.id)
                if self.rng.random() < 0.5:
                    text, language = self._compose(situation, order, now)
                    self.add_message(account, order, now, situation=situation, text=text, language=language)
            return ids

    def _open_issue(
        self, account: Account, order: Order, now: datetime, reason_en: str, reason_cn: str
    ) -> Issue:
        full = self.rng.random() < 0.6
        amount = (
            order.total
            if full
            else (order.total * Decimal(self.rng.choice(("0.3", "0.5")))).quantize(Decimal("0.01"))
        )
        kind = "refund" if self.rng.random() < 0.8 else "return_and_refund"
        issue = Issue(
            id=self.new_id(9000000000),
            account=account.name,
            order_id=order.id,
            buyer_login_id=order.buyer.login_id,
            reason_en=reason_en,
            reason_cn=reason_cn,
            opened_at=now,
            modified_at=now,
            max_refund=order.total,
            currency=order.currency,
        )
        issue.buyer_solutions.append(
            Solution(
                self.new_id(9500000000),
                "buyer",
                kind,
                amount,
                order.currency,
                "pending",
                reason_en,
                now,
            )
        )
        account.issues[issue.id] = issue
        order.issue_id = issue.id
        order.touches.append(now)
        return issue

    # ------------------------------------------------------------------ derived state

    def order_state(self, order: Order, now: datetime) -> tuple[str, datetime, str | None]:
        """(AliExpress order_status, gmt_modified, end_reason) at `now`."""
        steps: list[tuple[datetime, str | None, str | None]] = [
            (order.created_at, "PLACE_ORDER_SUCCESS", None)
        ]
        if order.paid_at:
            steps.append((order.paid_at, "WAIT_SELLER_SEND_GOODS", None))
        if order.cancelled_at:
            steps.append((order.cancelled_at, "FINISH", order.cancel_reason))
        elif order.shipped_at:
            steps.append((order.shipped_at, "WAIT_BUYER_ACCEPT_GOODS", None))
            issue = self.accounts[order.account].issues.get(order.issue_id or "")
            finish = order.finish_at()
            if issue is not None:
                steps.append((issue.opened_at, "IN_ISSUE", None))
                if issue.closed_at is not None:
                    if issue.refunded:
                        steps.append((issue.closed_at, "FINISH", "issue_refund_success"))
                    else:
                        steps.append((issue.closed_at, "WAIT_BUYER_ACCEPT_GOODS", None))
                        if finish is not None:
                            later = max(finish[0], issue.closed_at + timedelta(days=5))
                            steps.append((later, "FINISH", finish[1]))
                elif finish is not None and finish[0] < issue.opened_at:
                    steps.append((finish[0], "FINISH", finish[1]))
            elif finish is not None:
                steps.append((finish[0], "FINISH", finish[1]))
        steps.extend((t, None, None) for t in order.touches)
        visible = sorted((s for s in steps if s[0] <= now), key=lambda s: s[0])
        status, reason = "PLACE_ORDER_SUCCESS", None
        done = False
        for _, step_status, step_reason in visible:
            if step_status is not None and not done:
                status, reason = step_status, step_reason
                done = status == "FINISH"
        modified = visible[-1][0] if visible else order.created_at
        return status, modified, reason

    def visible_orders(self, account: Account, now: datetime) -> list[Order]:
        return [o for o in account.orders.values() if o.created_at <= now]

    def visible_messages(self, channel: Channel, now: datetime) -> list[Message]:
        return [m for m in channel.messages if m.at <= now]
