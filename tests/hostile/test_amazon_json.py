"""Hostile Amazon SP-API answers (getOrders) through the real AmazonConnector on a mock transport.

The cases under "found bugs" once crashed the parser (the reason is kept with each); the rest is the
same contract as the other connectors.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from connectors.amazon import AmazonConnector
from connectors.base import ORDERS, AccountRef, RetryPolicy
from tests.hostile.conftest import assert_classified
from tests.hostile.payloads import TEXTS
from tests.hostile.records import problems

pytestmark = pytest.mark.timeout(60)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
US = "ATVPDKIKX0DER"
ORDER: dict[str, Any] = {
    "AmazonOrderId": "111-0000001-0000001",
    "PurchaseDate": "2026-02-20T10:00:00Z",
    "LastUpdateDate": "2026-02-21T08:30:00Z",
    "OrderStatus": "Shipped",
    "OrderTotal": {"CurrencyCode": "USD", "Amount": "31.90"},
    "MarketplaceId": US,
    "ShipServiceLevel": "Std US D2D Dom",
    "LatestShipDate": "2026-02-23T07:59:59Z",
    "LatestDeliveryDate": "2026-03-04T07:59:59Z",
    "BuyerInfo": {"BuyerEmail": "abc@marketplace.amazon.com", "BuyerName": "Alex"},
    "ShippingAddress": {"CountryCode": "US"},
}


def page(*orders: dict[str, Any]) -> dict[str, Any]:
    return {"payload": {"Orders": list(orders)}}


def fetch(answer: dict[str, Any] | bytes) -> list[Any]:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/orders/v0/orders"
        content = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        return httpx.Response(200, content=content, headers={"content-type": "application/json"})

    account = AccountRef(
        id=3,
        marketplace="amazon",
        name="hostile",
        credentials={
            "client_id": "cid",
            "client_secret": "secret",
            "refresh_token": "rt",
            "marketplace_id": US,
            "access_token": "at",
            "access_token_expires_at": "2999-01-01T00:00:00+00:00",
        },
        settings={},
    )
    conn = AmazonConnector(
        account,
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        retry=RetryPolicy(attempts=1),
        now=lambda: NOW,
        sleep=lambda seconds: None,
    )
    return conn.fetch(ORDERS, None).rows


def order(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(ORDER)
    out.update(changes)
    return out


REFUSED: dict[str, tuple[dict[str, Any] | bytes, str | None]] = {
    "order_id_missing": (page(order(AmazonOrderId=None)), "AmazonOrderId"),
    "order_id_number": (page(order(AmazonOrderId=111)), "AmazonOrderId"),
    "order_not_an_object": (page("111-0000001-0000001"), "not an object"),  # type: ignore[arg-type]
    "status_unknown": (page(order(OrderStatus="Teleported")), "OrderStatus"),
    "status_list": (page(order(OrderStatus=["Shipped"])), "OrderStatus"),
    "purchase_date_words": (page(order(PurchaseDate="yesterday")), "PurchaseDate"),
    "purchase_date_number": (page(order(PurchaseDate=1772366400)), "PurchaseDate"),
    "purchase_date_year_0": (page(order(PurchaseDate="0000-01-01T00:00:00Z")), "PurchaseDate"),
    "amount_nan": (page(order(OrderTotal={"CurrencyCode": "USD", "Amount": "NaN"})), "OrderTotal.Amount"),
    "amount_words": (page(order(OrderTotal={"CurrencyCode": "USD", "Amount": "lots"})), "OrderTotal.Amount"),
    "currency_missing": (page(order(OrderTotal={"Amount": "1.00"})), "CurrencyCode"),
    "orders_not_a_list": ({"payload": {"Orders": {"a": 1}}}, "payload.Orders"),
    "payload_missing": ({"errors": []}, "payload.Orders"),
    "answer_html": (b"<html>Service Unavailable</html>", "not JSON"),
    "answer_truncated": (b'{"payload": {"Orders": [', "not JSON"),
    "answer_array": (b"[]", "not a JSON object"),
}
READABLE: dict[str, tuple[dict[str, Any], Callable[[list[Any]], Any] | None]] = {
    "unknown_extra_fields": (page(order(Extra={"deep": [1, {"x": None}]})), None),
    "total_missing_pending": (page(order(OrderStatus="Pending", OrderTotal=None)), None),
    "timezone_less_dates": (page(order(PurchaseDate="2026-02-20T10:00:00")), None),
    "empty_page": (page(), None),
    "ten_thousand_orders": (
        page(*[order(AmazonOrderId=f"111-{i:07d}-0000001") for i in range(10_000)]),
        lambda rows: len(rows) == 10_000 or pytest.fail(len(rows)),
    ),
}
for _name in ("xss_script_tag", "jinja_expression", "sql_drop_table", "rtl_override"):
    READABLE[f"buyer_name_{_name}"] = (
        page(order(BuyerInfo={"BuyerName": TEXTS[_name]})),
        lambda rows, text=TEXTS[_name]: rows[0].buyer_name == text or pytest.fail(rows[0].buyer_name),
    )


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_hostile_answer_is_refused_with_a_named_field(name):
    answer, field = REFUSED[name]
    with pytest.raises(Exception) as info:
        fetch(answer)
    assert_classified(info.value, field=field)


@pytest.mark.parametrize("name", sorted(READABLE))
def test_readable_oddity_is_read_into_storable_records(name):
    answer, check = READABLE[name]
    rows = fetch(answer)
    assert [p for r in rows for p in problems(r)] == []
    if check is not None:
        check(rows)


# ------------------------------------------------------------------------ found bugs (fixed)


def _bug(name: str, answer: dict[str, Any] | bytes, fix: str):
    """A case that once crashed the parser; `fix` says what was wrong (kept as the regression's reason)."""
    return pytest.param(answer, id=name)


@pytest.mark.parametrize(
    "answer",
    [
        _bug(
            "date_beyond_year_9999_in_utc",
            page(order(LastUpdateDate="9999-12-31T23:59:59-12:00")),
            "parse_time catches ValueError only; _utc() raises OverflowError there (catch it too)",
        ),
        _bug(
            "answer_nested_too_deep",
            b"[" * 100_000 + b"]" * 100_000,
            "_json catches ValueError only; response.json() raises RecursionError (treat it as not JSON)",
        ),
        _bug(
            "marketplace_id_list",
            page(order(OrderTotal=None, MarketplaceId=[US])),
            "MARKETPLACES.get() of a list MarketplaceId raises TypeError: unhashable (check it is a str)",
        ),
    ],
)
def test_amazon_bug_is_a_classified_error(answer):
    with pytest.raises(Exception) as info:
        fetch(answer)
    assert_classified(info.value)


STORABLE_BUGS: dict[str, dict[str, Any]] = {
    "amount_fraction_of_cent": page(order(OrderTotal={"CurrencyCode": "USD", "Amount": "12.345"})),
    "amount_beyond_numeric_12_2": page(order(OrderTotal={"CurrencyCode": "USD", "Amount": "1e20"})),
    "buyer_name_object": page(order(BuyerInfo={"BuyerName": {"first": "A"}})),
    "buyer_email_number": page(order(BuyerInfo={"BuyerEmail": 12345})),
    "ship_service_level_list": page(order(ShipServiceLevel=["Std"])),
}


@pytest.mark.parametrize("name", sorted(STORABLE_BUGS))
def test_amazon_refuses_what_the_database_cannot_hold(name):
    try:
        rows = fetch(STORABLE_BUGS[name])
    except Exception as exc:  # noqa: BLE001
        assert_classified(exc)
        return
    assert [p for r in rows for p in problems(r)] == []
