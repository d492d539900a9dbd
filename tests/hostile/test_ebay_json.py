"""Hostile eBay answers: the eBay sandbox (connectors/sandbox_ebay.py) answers, we spoil the JSON in flight.

Same contract as the AliExpress suite: a page the connector cannot read is refused whole with a
ConnectorError naming the field (FATAL, or RETRYABLE for a server-side hiccup), and a page it reads
yields records the database can hold.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from connectors.base import DISPUTES, MESSAGES, ORDERS, AccountRef, ErrorKind, RetryPolicy
from connectors.ebay import EbayConnector
from connectors.sandbox_ebay import EbaySandbox
from tests.hostile.conftest import assert_classified
from tests.hostile.payloads import TEXTS
from tests.hostile.records import problems

pytestmark = pytest.mark.timeout(60)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
Body = dict[str, Any]

ORDERS_PATH = r"/sell/fulfillment/v1/order$"
FULFILLMENTS_PATH = r"/shipping_fulfillment$"
CONVERSATIONS_PATH = r"/commerce/message/v1/conversation$"
MESSAGES_PATH = r"/commerce/message/v1/conversation/conv-1$"
INQUIRY_SEARCH = r"/inquiry/search$"
INQUIRY_DETAIL = r"/inquiry/5300000001$"


def world() -> EbaySandbox:
    sb = EbaySandbox(
        client_id="cid", client_secret="secret", refresh_token="rt", seller_username="seller", now=lambda: NOW
    )
    day = timedelta(days=1)
    for n in (1, 2):
        sb.add_order(
            f"12-0000{n}",
            buyer=f"buyer{n}",
            buyer_name=f"Buyer {n}",
            country="DE",
            title="Phone case",
            sku=f"CASE-{n}",
            quantity=1,
            unit_price=Decimal("9.90"),
            currency="EUR",
            created=NOW - 20 * day,
            max_estimated_delivery=NOW - 2 * day,
        )
    sb.ship("12-00001", tracking="LP00999888777CN", carrier="CHINA_POST", at=NOW - 18 * day)
    sb.buyer_writes("conv-1", "buyer1", "Wo ist mein Paket?", NOW - timedelta(hours=5))
    sb.open_inquiry(
        "5300000001", "12-00002", buyer="buyer2", amount=Decimal("9.90"), currency="EUR", created=NOW - day
    )
    return sb


@dataclass(frozen=True)
class Case:
    stream: str
    path: str  # regex searched in the request path
    spoil: Callable[[Body], Body | bytes]
    refused: ErrorKind | None = ErrorKind.FATAL
    field: str | None = None
    check: Callable[[list[Any]], None] | None = None


def connector(sb: EbaySandbox, case: Case) -> EbayConnector:
    def handler(request: httpx.Request) -> httpx.Response:
        response = sb.handle(request)
        if not re.search(case.path, request.url.path):
            return response
        spoiled = case.spoil(json.loads(response.content))
        content = spoiled if isinstance(spoiled, bytes) else json.dumps(spoiled).encode()
        return httpx.Response(
            response.status_code, content=content, headers={"content-type": "application/json"}
        )

    account = AccountRef(
        id=5,
        marketplace="ebay",
        name="hostile",
        credentials={
            "client_id": "cid",
            "client_secret": "secret",
            "refresh_token": "rt",
            "seller_username": "seller",
        },
        settings={},
    )
    return EbayConnector(
        account,
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        retry=RetryPolicy(attempts=1),
        now=lambda: NOW,
        sleep=lambda seconds: None,
    )


def at(*path: str | int, value: Any) -> Callable[[Body], Body]:
    """Set the value at `path` (creating missing objects on the way)."""

    def spoil(body: Body) -> Body:
        target: Any = body
        for key in path[:-1]:
            target = target[key] if isinstance(key, int) else target.setdefault(key, {})
        target[path[-1]] = value
        return body

    return spoil


def order(
    *path: str | int, value: Any, field: str | None, kind: ErrorKind | None = ErrorKind.FATAL, **kw
) -> Case:
    return Case(
        ORDERS, ORDERS_PATH, at("orders", 0, *path, value=value), kind if field or kind else None, field, **kw
    )


def ok_order(*path: str | int, value: Any, check: Callable[[list[Any]], None] | None = None) -> Case:
    return Case(ORDERS, ORDERS_PATH, at("orders", 0, *path, value=value), None, None, check)


def message(*path: str | int, value: Any, field: str | None, **kw) -> Case:
    kind = ErrorKind.FATAL if field else None
    return Case(MESSAGES, MESSAGES_PATH, at("messages", 0, *path, value=value), kind, field, **kw)


def inquiry(*path: str | int, value: Any, field: str | None, where: str = INQUIRY_DETAIL, **kw) -> Case:
    kind = ErrorKind.FATAL if field else None
    return Case(DISPUTES, where, at(*path, value=value), kind, field, **kw)


def whole(content: bytes) -> Callable[[Body], bytes]:
    return lambda body: content


def buyer_named(name: str) -> Callable[[list[Any]], None]:
    return lambda rows: (name in [r.buyer_name for r in rows]) or pytest.fail(f"{name!r} not kept")


def body_is(text: str) -> Callable[[list[Any]], None]:
    return lambda rows: (text in [r.body for r in rows]) or pytest.fail(f"{text[:40]!r} not kept")


CASES: dict[str, Case] = {
    # Orders: wrong types where objects, arrays and strings belong.
    "order_not_an_object": Case(ORDERS, ORDERS_PATH, at("orders", 0, value="12-00001"), field="orderId"),
    "orders_not_an_array": Case(ORDERS, ORDERS_PATH, at("orders", value={"0": {}}), field="orders"),
    "orders_null": Case(ORDERS, ORDERS_PATH, at("orders", value=None), None),
    "order_id_number": order("orderId", value=1200001, field="orderId"),
    "pricing_summary_string": order("pricingSummary", value="9.90 EUR", field="pricingSummary"),
    "total_list": order("pricingSummary", "total", value=[9.9], field="total"),
    "total_missing_value": order(
        "pricingSummary", "total", value={"currency": "EUR"}, field="pricingSummary.total"
    ),
    "total_nan": order("pricingSummary", "total", "value", value="NaN", field="pricingSummary.total"),
    "total_infinity_number": order(
        "pricingSummary", "total", "value", value=float("inf"), field="pricingSummary.total"
    ),
    "total_fraction_of_cent": order(
        "pricingSummary", "total", "value", value="9.999", field="pricingSummary.total"
    ),
    "total_too_big": order("pricingSummary", "total", "value", value="1e15", field="pricingSummary.total"),
    "total_object": order("pricingSummary", "total", "value", value={"a": 1}, field="pricingSummary.total"),
    "total_boolean": order("pricingSummary", "total", "value", value=True, field="pricingSummary.total"),
    "currency_number": order("pricingSummary", "total", "currency", value=978, field="currency"),
    "currency_words": order("pricingSummary", "total", "currency", value="euros", field="currency"),
    "buyer_string": order("buyer", value="buyer1", field="buyer"),
    "buyer_username_object": order("buyer", "username", value={"id": 1}, field="buyer.username"),
    "cancel_status_number": order("cancelStatus", value=0, field="cancelStatus"),
    "payments_object": order("paymentSummary", "payments", value={"paymentDate": "x"}, field="payments"),
    "payment_date_words": order(
        "paymentSummary", "payments", 0, "paymentDate", value="Tuesday", field="paymentDate"
    ),
    "created_missing": order("creationDate", value=None, field="creationDate"),
    "created_year_0": order("creationDate", value="0000-01-01T00:00:00.000Z", field="creationDate"),
    "created_year_9999_west": order("creationDate", value="9999-12-31T23:59:59-12:00", field="creationDate"),
    "created_epoch_number": order("creationDate", value=1772366400, field="creationDate"),
    "created_timezone_less": ok_order("creationDate", value="2026-02-01T10:00:00"),
    "line_items_string": order("lineItems", value="case", field="lineItems"),
    "line_item_quantity_boolean": ok_order("lineItems", 0, "quantity", value=True),
    "line_item_quantity_huge": order("lineItems", 0, "quantity", value=10**12, field="quantity"),
    "line_item_cost_nan": order("lineItems", 0, "lineItemCost", "value", value="NaN", field="lineItemCost"),
    "line_item_sku_list": order("lineItems", 0, "sku", value=["a"], field="sku"),
    "ship_to_string": order(
        "fulfillmentStartInstructions", 0, "shippingStep", "shipTo", value="x", field="shipTo"
    ),
    "full_name_number": order(
        "fulfillmentStartInstructions",
        0,
        "shippingStep",
        "shipTo",
        "fullName",
        value=7,
        field=None,
        kind=None,
    ),
    "full_name_object": order(
        "fulfillmentStartInstructions",
        0,
        "shippingStep",
        "shipTo",
        "fullName",
        value={"x": 1},
        field="fullName",
    ),
    "country_code_words": order(
        "fulfillmentStartInstructions",
        0,
        "shippingStep",
        "shipTo",
        "contactAddress",
        "countryCode",
        value="Germany",
        field="countryCode",
    ),
    "instructions_object": order(
        "fulfillmentStartInstructions", value={"a": 1}, field="fulfillmentStartInstructions"
    ),
    "estimated_delivery_words": order(
        "lineItems",
        0,
        "lineItemFulfillmentInstructions",
        "maxEstimatedDeliveryDate",
        value="soon",
        field="maxEstimatedDeliveryDate",
    ),
    "unknown_statuses": ok_order("orderFulfillmentStatus", value="TELEPORTED"),
    "nested_garbage": ok_order("extension", value=json.loads("[" * 500 + "]" * 500)),
    "fulfillments_string": Case(
        ORDERS, FULFILLMENTS_PATH, at("fulfillments", value="x"), field="fulfillments"
    ),
    "tracking_number_object": Case(
        ORDERS,
        FULFILLMENTS_PATH,
        at("fulfillments", 0, "shipmentTrackingNumber", value={"n": 1}),
        field="shipmentTrackingNumber",
    ),
    "shipped_date_garbage": Case(
        ORDERS,
        FULFILLMENTS_PATH,
        at("fulfillments", 0, "shippedDate", value="yesterday"),
        field="shippedDate",
    ),
    "next_link_number": Case(ORDERS, ORDERS_PATH, at("next", value=42), field="next"),
    "answer_html": Case(ORDERS, ORDERS_PATH, whole(b"<html>Service Unavailable</html>"), field="not JSON"),
    "answer_truncated": Case(ORDERS, ORDERS_PATH, whole(b'{"orders": [{"orderId": "12-'), field="not JSON"),
    "answer_array": Case(ORDERS, ORDERS_PATH, whole(b"[]"), field="not a JSON object"),
    "answer_nested_too_deep": Case(
        ORDERS, ORDERS_PATH, whole(b"[" * 100_000 + b"]" * 100_000), field="not JSON"
    ),
    "answer_bad_utf8_name": Case(
        ORDERS,
        ORDERS_PATH,
        lambda body: json.dumps(body).encode().replace(b'"Buyer 1"', b'"Buyer \xff1"'),
        None,
        check=buyer_named("Buyer \ufffd1"),
    ),
    # Messages.
    "conversations_number": Case(
        MESSAGES, CONVERSATIONS_PATH, at("conversations", value=5), field="conversations"
    ),
    "latest_message_string": Case(
        MESSAGES,
        CONVERSATIONS_PATH,
        at("conversations", 0, "latestMessage", value="hi"),
        field="latestMessage",
    ),
    "messages_object": Case(MESSAGES, MESSAGES_PATH, at("messages", value={"m": 1}), field="messages"),
    "message_id_missing": message("messageId", value=None, field="messageId"),
    "message_sender_number": message("senderUsername", value=12345, field=None),
    "message_sender_object": message("senderUsername", value={"u": "x"}, field="senderUsername"),
    "message_date_garbage": message("createdDate", value="2026-02-30T10:00:00Z", field="createdDate"),
    "message_body_one_megabyte": message(
        "messageBody", value="W" * 1_000_000, field=None, check=body_is("W" * 1_000_000)
    ),
    # Disputes (Post-Order inquiries).
    "members_string": inquiry("members", value="x", field="members", where=INQUIRY_SEARCH),
    "inquiry_details_string": inquiry("inquiryDetails", value="x", field="inquiryDetails"),
    "claim_amount_string": inquiry("claimAmount", value="9.90", field="claimAmount"),
    "claim_amount_nan": inquiry("claimAmount", "value", value="NaN", field="claimAmount"),
    "claim_currency_object": inquiry("claimAmount", "currency", value={"c": 1}, field="claimAmount.currency"),
    "inquiry_created_garbage": inquiry("creationDate", value={"value": "soon"}, field="creationDate"),
    "inquiry_status_unknown": inquiry("inquiryStatusEnum", value="ON_MARS", field=None),
    "pagination_string": inquiry(
        "paginationOutput", value="x", field="paginationOutput", where=INQUIRY_SEARCH
    ),
}

for _name in ("xss_script_tag", "jinja_expression", "sql_drop_table", "zero_width_characters", "emoji_flood"):
    CASES[f"buyer_name_{_name}"] = ok_order(
        "fulfillmentStartInstructions",
        0,
        "shippingStep",
        "shipTo",
        "fullName",
        value=TEXTS[_name],
        check=buyer_named(TEXTS[_name]),
    )
    CASES[f"message_body_{_name}"] = message(
        "messageBody", value=TEXTS[_name], field=None, check=body_is(TEXTS[_name])
    )


def test_the_unspoiled_sandbox_serves_every_stream():
    sb = world()
    for stream, path in ((ORDERS, ORDERS_PATH), (MESSAGES, MESSAGES_PATH), (DISPUTES, INQUIRY_DETAIL)):
        rows = connector(sb, Case(stream, path, lambda body: body)).fetch(stream, None).rows
        assert rows and [p for r in rows for p in problems(r)] == [], stream


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_answer_is_read_or_refused_with_a_named_field(name):
    case = CASES[name]
    try:
        rows = connector(world(), case).fetch(case.stream, None).rows
    except Exception as exc:  # noqa: BLE001 - the point: which exception, and what it says
        assert case.refused is not None, f"refused a readable page: {exc!r}"
        assert_classified(exc, field=case.field)
        assert exc.kind is case.refused, exc
        return
    assert case.refused is None, f"read a page that should be refused: {rows[:1]}"
    assert [p for r in rows for p in problems(r)] == []
    if case.check is not None:
        case.check(rows)
