"""The eBay connector against a fake eBay whose every request and answer is checked against eBay's
published contracts (tests/fast/ebay_contract.py).

Fakes of Message and Fulfillment answers are built with `contract.build(...)`, which refuses a field
the contract does not declare. Post-Order answers have no schema in the contracts (request shapes
only): those fakes are minimal, use eBay's documented field names (InquirySummaryType,
InquiryDetailsResponse, ReturnSummaryType) and are marked as such.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from connectors import connector_class
from connectors.base import (
    DISPUTES,
    MESSAGES,
    ORDERS,
    AccountRef,
    ActionRequest,
    ConnectorError,
    ErrorKind,
    RateLimiter,
    RetryPolicy,
    classify_error,
)
from connectors.ebay import (
    DEFAULT_SCOPES,
    EBAY_ERROR_RULES,
    EbayConnector,
    EbayCredentials,
    PassCursor,
    order_status,
    promised_delivery_days,
)
from connectors.sandbox_ebay import EbaySandbox
from tests.fast import ebay_contract as contract
from tests.fast.ebay_contract import ContractViolation, FakeEbay, json_response
from worker.triage.types import OrderStatus

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CLIENT_ID = "SellerDe-sellerde-PRD-a1b2c3d4e-5f6a7b8c"
CLIENT_SECRET = "PRD-b1c2d3e4f5a6-SECRET-7788"
REFRESH_TOKEN = "v^1.1#i^1#r^1#p^3#f^0#I^3#t^REFRESH-TOKEN-SECRET-Ul4xMF8="
OLD_TOKEN = "v^1.1#i^1#p^3#I^3#f^0#r^0#t^OLD-ACCESS-SECRET"
NEW_TOKEN = "v^1.1#i^1#p^3#I^3#f^0#r^0#t^NEW-ACCESS-SECRET"
SELLER = "gadget.corner.shop"
BUYER = "anna_m_1987"
SECRETS = (CLIENT_SECRET, REFRESH_TOKEN, OLD_TOKEN, NEW_TOKEN)

ORDERS_PATH = "/sell/fulfillment/v1/order"
CONVERSATIONS_PATH = "/commerce/message/v1/conversation"


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def credentials(**over: Any) -> dict[str, Any]:
    creds = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH_TOKEN,
        "access_token": OLD_TOKEN,
        "access_token_expires_at": (NOW + timedelta(hours=1)).isoformat(),
        "seller_username": SELLER,
        "marketplace_id": "EBAY_US",
    }
    creds.update(over)
    return {k: v for k, v in creds.items() if v is not None}


def token_answer(request: httpx.Request) -> httpx.Response:
    # eBay OAuth guide, "Refreshing a User access token": no new refresh token is returned.
    return json_response(
        200, {"access_token": NEW_TOKEN, "expires_in": 7200, "token_type": "User Access Token"}
    )


@pytest.fixture
def fake() -> FakeEbay:
    ebay = FakeEbay(CLIENT_ID, CLIENT_SECRET)
    ebay.on("POST", "/identity/v1/oauth2/token", token_answer)
    return ebay


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def slept() -> list[float]:
    return []


def connector(
    fake: FakeEbay,
    clock: Clock,
    slept: list[float] | None = None,
    *,
    creds: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    limiter: RateLimiter | None = None,
    attempts: int = 3,
    **kwargs: Any,
) -> EbayConnector:
    account = AccountRef(
        id=7,
        marketplace="ebay",
        name="gadget corner",
        credentials=creds or credentials(),
        settings=settings or {},
    )
    return EbayConnector(
        account,
        http=fake.client(),
        limiter=limiter,
        retry=RetryPolicy(attempts=attempts, initial=0.0, maximum=0.0),
        now=clock,
        sleep=(slept.append if slept is not None else (lambda s: None)),
        **kwargs,
    )


# ------------------------------------------------------------------------------------ fakes


def money(value: str, currency: str = "USD") -> dict[str, str]:
    return {"value": value, "currency": currency}


def order_fake(
    order_id: str = "12-11111-22222",
    *,
    modified: str = "2026-02-27T08:30:00.000Z",
    fulfillment_status: str = "NOT_STARTED",
    payment_status: str = "PAID",
    cancel_state: str = "NONE_REQUESTED",
    max_estimated: str | None = "2026-02-24T07:59:59.000Z",
    fulfillment_hrefs: list[str] | None = None,
) -> dict[str, Any]:
    line_item: dict[str, Any] = {
        "lineItemId": "10061234567801",
        "legacyItemId": "110587654321",
        "sku": "SKU-USB-C-2M",
        "title": "USB-C Braided Cable 2m, 100W Fast Charging",
        "quantity": 2,
        "lineItemCost": money("19.98"),
        "total": money("24.97"),
        "lineItemFulfillmentStatus": "FULFILLED" if fulfillment_status == "FULFILLED" else "NOT_STARTED",
        "soldFormat": "FIXED_PRICE",
        "listingMarketplaceId": "EBAY_US",
        "purchaseMarketplaceId": "EBAY_US",
        "refunds": [],
        "taxes": [],
        "appliedPromotions": [],
        "deliveryCost": {"shippingCost": money("4.99")},
        "lineItemFulfillmentInstructions": {
            "minEstimatedDeliveryDate": "2026-02-17T08:00:00.000Z",
            "shipByDate": "2026-02-05T07:59:59.000Z",
            "guaranteedDelivery": False,
        },
    }
    if max_estimated:
        line_item["lineItemFulfillmentInstructions"]["maxEstimatedDeliveryDate"] = max_estimated
    return contract.build(
        "fulfillment",
        "Order",
        {
            "orderId": order_id,
            "creationDate": "2026-02-02T09:15:00.000Z",
            "lastModifiedDate": modified,
            "orderFulfillmentStatus": fulfillment_status,
            "orderPaymentStatus": payment_status,
            "sellerId": SELLER,
            "buyer": {"username": BUYER},
            "cancelStatus": {"cancelState": cancel_state, "cancelRequests": []},
            "pricingSummary": {
                "priceSubtotal": money("19.98"),
                "deliveryCost": money("4.99"),
                "total": money("24.97"),
            },
            "paymentSummary": {
                "payments": [
                    {
                        "paymentMethod": "EBAY",
                        "paymentDate": "2026-02-02T09:16:00.000Z",
                        "amount": money("24.97"),
                        "paymentStatus": "PAID",
                    }
                ],
                "refunds": [],
                "totalDueSeller": money("24.97"),
            },
            "fulfillmentStartInstructions": [
                {
                    "fulfillmentInstructionsType": "SHIP_TO",
                    "minEstimatedDeliveryDate": "2026-02-17T08:00:00.000Z",
                    "maxEstimatedDeliveryDate": "2026-02-24T07:59:59.000Z",
                    "ebaySupportedFulfillment": False,
                    "shippingStep": {
                        "shippingCarrierCode": "USPS",
                        "shippingServiceCode": "USPSFirstClass",
                        "shipTo": {
                            "fullName": "Anna Miller",
                            "contactAddress": {
                                "addressLine1": "221 Elm Street",
                                "city": "Portland",
                                "stateOrProvince": "OR",
                                "postalCode": "97205",
                                "countryCode": "US",
                            },
                            "primaryPhone": {"phoneNumber": "5035550100"},
                        },
                    },
                }
            ],
            "fulfillmentHrefs": fulfillment_hrefs or [],
            "lineItems": [line_item],
            "salesRecordReference": "1042",
            "totalFeeBasisAmount": money("24.97"),
        },
    )


def orders_page(orders: list[dict[str, Any]], *, offset: int, limit: int, total: int) -> dict[str, Any]:
    base = f"https://api.ebay.com{ORDERS_PATH}?filter=lastmodifieddate:%5B2026-01-30T12:00:00.000Z..%5D"
    page: dict[str, Any] = {
        "href": f"{base}&limit={limit}&offset={offset}",
        "limit": limit,
        "offset": offset,
        "total": total,
        "orders": orders,
        "warnings": [],
    }
    if offset + limit < total:
        page["next"] = f"{base}&limit={limit}&offset={offset + limit}"
    if offset:
        page["prev"] = f"{base}&limit={limit}&offset={max(0, offset - limit)}"
    return contract.build("fulfillment", "OrderSearchPagedCollection", page)


def fulfillments_fake(*shipments: tuple[str, str, str]) -> dict[str, Any]:
    return contract.build(
        "fulfillment",
        "ShippingFulfillmentPagedCollection",
        {
            "fulfillments": [
                {
                    "fulfillmentId": tracking,
                    "shipmentTrackingNumber": tracking,
                    "shippingCarrierCode": carrier,
                    "shippedDate": shipped,
                    "lineItems": [{"lineItemId": "10061234567801", "quantity": 1}],
                }
                for tracking, carrier, shipped in shipments
            ],
            "total": len(shipments),
            "warnings": [],
        },
    )


def message_fake(message_id: str, sender: str, recipient: str, body: str, created: str) -> dict[str, Any]:
    return contract.build(
        "message",
        "MessageDetail",
        {
            "messageId": message_id,
            "senderUsername": sender,
            "recipientUsername": recipient,
            "messageBody": body,
            "createdDate": created,
            "readStatus": sender == SELLER,
            "subject": "Question about item #110587654321",
            "messageMedia": [],
        },
    )


def conversation_fake(conversation_id: str, latest: dict[str, Any]) -> dict[str, Any]:
    return contract.build(
        "message",
        "ConversationDetail",
        {
            "conversationId": conversation_id,
            "conversationStatus": "ACTIVE",
            "conversationTitle": "USB-C Braided Cable 2m, 100W Fast Charging",
            "conversationType": "FROM_MEMBERS",
            "createdDate": "2026-02-20T10:00:00.000Z",
            "referenceId": "110587654321",
            "referenceType": "LISTING",
            "unreadCount": 1,
            "latestMessage": latest,
        },
    )


def conversations_page(
    conversations: list[dict[str, Any]], *, offset: int, limit: int, total: int
) -> dict[str, Any]:
    page: dict[str, Any] = {
        "href": f"https://api.ebay.com{CONVERSATIONS_PATH}?conversation_type=FROM_MEMBERS&limit={limit}&offset={offset}",
        "limit": limit,
        "offset": offset,
        "total": total,
        "conversations": conversations,
    }
    if offset + limit < total:
        page["next"] = (
            f"https://api.ebay.com{CONVERSATIONS_PATH}?conversation_type=FROM_MEMBERS"
            f"&limit={limit}&offset={offset + limit}"
        )
    return contract.build("message", "GetAllMyConversationsResponse", page)


def messages_page(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return contract.build(
        "message",
        "GetMessagesByConversationIdResponse",
        {
            "conversationStatus": "ACTIVE",
            "conversationTitle": "USB-C Braided Cable 2m, 100W Fast Charging",
            "conversationType": "FROM_MEMBERS",
            "href": "https://api.ebay.com/commerce/message/v1/conversation/c1?conversation_type=FROM_MEMBERS",
            "limit": 50,
            "offset": 0,
            "total": len(messages),
            "messages": messages,
        },
    )


# Post-Order answers: NOT covered by the contracts (responses are empty there). Minimal, with eBay's
# documented names: InquirySearchResponse{members, paginationOutput, totalNumberOfInquiries},
# InquirySummaryType, InquiryDetailsResponse, ReturnSummaryType. DateTime is {"value": ...}.
def inquiry_summary(inquiry_id: str = "5212345678", status: str = "OPEN") -> dict[str, Any]:
    return {
        "inquiryId": inquiry_id,
        "itemId": "110587654321",
        "transactionId": "2874561234017",
        "buyer": BUYER,
        "seller": SELLER,
        "claimAmount": {"value": 24.97, "currency": "USD"},
        "inquiryStatusEnum": status,
        "status": status,
        "creationDate": {"value": "2026-02-25T16:40:00.000Z"},
        "lastModifiedDate": {"value": "2026-02-26T09:00:00.000Z"},
        "respondByDate": {"value": "2026-02-28T16:40:00.000Z"},
    }


def inquiry_search(*members: dict[str, Any], total: int | None = None, offset: int = 0) -> dict[str, Any]:
    count = len(members) if total is None else total
    return {
        "members": list(members),
        "paginationOutput": {"limit": 50, "offset": offset, "totalEntries": count, "totalPages": 1},
        "totalNumberOfInquiries": count,
    }


def return_summary(return_id: str = "5098765432", state: str = "RETURN_REQUESTED") -> dict[str, Any]:
    return {
        "returnId": return_id,
        "orderId": "12-11111-22222",
        "buyerLoginName": BUYER,
        "sellerLoginName": SELLER,
        "currentType": "MONEY_BACK",
        "state": state,
        "status": "WAITING_FOR_RETURN_LABEL" if state != "CLOSED" else "CLOSED",
        "creationInfo": {
            "item": {"itemId": "110587654321", "transactionId": "2874561234017", "returnQuantity": 1},
            "type": "MONEY_BACK",
            "reason": "DEFECTIVE_ITEM",
            "comments": {"content": "Cable stopped charging after two days."},
            "creationDate": {"value": "2026-02-26T11:00:00.000Z"},
        },
        "sellerTotalRefund": {"estimatedRefundAmount": {"value": 24.97, "currency": "USD"}},
        "sellerResponseDue": {
            "activityDue": "SELLER_APPROVE_REQUEST",
            "respondByDate": {"value": "2026-03-01T11:00:00.000Z"},
        },
    }


def return_search(*members: dict[str, Any]) -> dict[str, Any]:
    return {
        "members": list(members),
        "paginationOutput": {"limit": 50, "offset": 0, "totalEntries": len(members), "totalPages": 1},
        "total": len(members),
    }


def ebay_error(status: int, error_id: int, category: str, message: str, **headers: str) -> httpx.Response:
    body = contract.error_body(
        "fulfillment",
        {"errorId": error_id, "domain": "API_FULFILLMENT", "category": category, "message": message},
    )
    return json_response(status, body, headers=headers)


# ------------------------------------------------------------------------- the contract helper


def test_contract_helper_refuses_invented_fields_and_missing_parameters():
    with pytest.raises(ContractViolation, match="undeclared"):
        contract.build("fulfillment", "Order", {"orderId": "1", "deliveredDate": "2026-01-01T00:00:00Z"})
    with pytest.raises(ContractViolation, match="not of type"):
        contract.build("message", "ConversationDetail", {"unreadCount": "three"})
    bearer = {"Authorization": "Bearer t", "X-EBAY-C-MARKETPLACE-ID": "EBAY_US"}
    with pytest.raises(ContractViolation, match="conversation_type"):
        contract.validate_request(
            httpx.Request("GET", f"https://api.ebay.com{CONVERSATIONS_PATH}", headers=bearer)
        )
    with pytest.raises(ContractViolation, match="undeclared query"):
        contract.validate_request(
            httpx.Request("GET", f"https://api.ebay.com{ORDERS_PATH}", params={"since": "x"}, headers=bearer)
        )
    with pytest.raises(ContractViolation, match="IAF"):
        contract.validate_request(
            httpx.Request("GET", "https://api.ebay.com/post-order/v2/inquiry/search", headers=bearer)
        )
    iaf = {"Authorization": "IAF t", "X-EBAY-C-MARKETPLACE-ID": "EBAY_US"}
    with pytest.raises(ContractViolation, match="unknown query"):
        contract.validate_request(
            httpx.Request(
                "GET", "https://api.ebay.com/post-order/v2/inquiry/search", params={"q": "1"}, headers=iaf
            )
        )


# ---------------------------------------------------------------------------------- OAuth


def test_token_still_valid_beyond_the_margin_is_used_without_refresh(fake, clock):
    fake.on("GET", ORDERS_PATH, json_response(200, orders_page([], offset=0, limit=100, total=0)))
    ebay = connector(
        fake, clock, creds=credentials(access_token_expires_at=(NOW + timedelta(minutes=6)).isoformat())
    )
    ebay.fetch(ORDERS, None)
    assert fake.calls("POST", "/identity/v1/oauth2/token") == []
    assert fake.calls("GET", ORDERS_PATH)[0].headers["authorization"] == f"Bearer {OLD_TOKEN}"
    assert ebay.refreshed_credentials is None


def test_token_is_refreshed_ahead_of_expiry_and_handed_back_for_storage(fake, clock):
    fake.on("GET", ORDERS_PATH, json_response(200, orders_page([], offset=0, limit=100, total=0)))
    stored: list[dict[str, Any]] = []
    ebay = connector(
        fake,
        clock,
        creds=credentials(access_token_expires_at=(NOW + timedelta(minutes=4)).isoformat()),
        on_credentials_refreshed=stored.append,
    )
    ebay.fetch(ORDERS, None)
    token_calls = fake.calls("POST", "/identity/v1/oauth2/token")
    assert len(token_calls) == 1
    form = contract.check_token_request(token_calls[0], CLIENT_ID, CLIENT_SECRET)
    assert form["refresh_token"] == REFRESH_TOKEN
    assert form["scope"].split(" ") == list(DEFAULT_SCOPES)
    assert fake.calls("GET", ORDERS_PATH)[0].headers["authorization"] == f"Bearer {NEW_TOKEN}"
    expected = credentials(
        access_token=NEW_TOKEN, access_token_expires_at=(NOW + timedelta(hours=2)).isoformat()
    )
    assert ebay.refreshed_credentials == expected  # everything to store back, encrypted
    assert stored == [expected]
    # The next call within the new token's life does not refresh again.
    clock.now = NOW + timedelta(minutes=90)
    ebay.fetch(ORDERS, None)
    assert len(fake.calls("POST", "/identity/v1/oauth2/token")) == 1


def test_missing_access_token_is_fetched_first(fake, clock):
    fake.on("GET", ORDERS_PATH, json_response(200, orders_page([], offset=0, limit=100, total=0)))
    ebay = connector(fake, clock, creds=credentials(access_token=None, access_token_expires_at=None))
    ebay.check_credentials()
    assert [r.url.path for r in fake.requests] == ["/identity/v1/oauth2/token", ORDERS_PATH]


def test_a_401_refreshes_once_and_repeats_the_call(fake, clock):
    invalid = json_response(
        401,
        contract.error_body(
            "fulfillment",
            {
                "errorId": 1001,
                "domain": "OAuth",
                "category": "REQUEST",
                "message": "Invalid access token",
                "longMessage": "Invalid access token. Check the value of the Authorization HTTP request header.",
            },
        ),
    )
    fake.on("GET", ORDERS_PATH, [invalid, json_response(200, orders_page([], offset=0, limit=100, total=0))])
    ebay = connector(fake, clock)
    ebay.fetch(ORDERS, None)
    auths = [r.headers["authorization"] for r in fake.calls("GET", ORDERS_PATH)]
    assert auths == [f"Bearer {OLD_TOKEN}", f"Bearer {NEW_TOKEN}"]


def test_a_401_after_a_fresh_token_is_an_account_error(fake, clock):
    invalid = json_response(
        401,
        contract.error_body(
            "fulfillment",
            {"errorId": 1001, "domain": "OAuth", "category": "REQUEST", "message": "Invalid access token"},
        ),
    )
    fake.on("GET", ORDERS_PATH, invalid)
    with pytest.raises(ConnectorError) as info:
        connector(fake, clock).fetch(ORDERS, None)
    assert info.value.kind is ErrorKind.ACCOUNT
    assert info.value.status == 401
    assert len(fake.calls("GET", ORDERS_PATH)) == 2  # once, then once more after one refresh


@pytest.mark.parametrize(
    ("status", "error", "description"),
    [
        (
            400,
            "invalid_grant",
            "the provided authorization refresh token is invalid or was issued to another client",
        ),
        (401, "invalid_client", "client authentication failed"),
        (
            400,
            "invalid_scope",
            "The requested scope is invalid, unknown, malformed, or exceeds the scope granted",
        ),
    ],
)
def test_a_revoked_refresh_token_pauses_the_account(fake, clock, status, error, description):
    fake.on(
        "POST",
        "/identity/v1/oauth2/token",
        json_response(status, {"error": error, "error_description": description}),
    )
    ebay = connector(fake, clock, creds=credentials(access_token=None))
    with pytest.raises(ConnectorError) as info:
        ebay.check_credentials()
    assert info.value.kind is ErrorKind.ACCOUNT
    assert info.value.code == error
    assert fake.calls("GET", ORDERS_PATH) == []  # nothing is called without a token
    assert all(secret not in str(info.value) for secret in SECRETS)


# --------------------------------------------------------------------------------- orders


def test_orders_page_to_the_end_then_the_next_pass_overlaps(fake, clock):
    pages = {
        0: orders_page(
            [order_fake("12-00001-00001"), order_fake("12-00001-00002")], offset=0, limit=2, total=5
        ),
        2: orders_page(
            [order_fake("12-00001-00003"), order_fake("12-00001-00004")], offset=2, limit=2, total=5
        ),
        4: orders_page([order_fake("12-00001-00005")], offset=4, limit=2, total=5),
    }
    fake.on("GET", ORDERS_PATH, lambda r: json_response(200, pages[int(r.url.params["offset"])]))
    ebay = connector(fake, clock, settings={"orders_page_size": 2, "overlap_seconds": 600})

    seen, cursor, more, batches = [], None, True, 0
    while more:
        batch = ebay.fetch(ORDERS, cursor)
        seen += [o.external_id for o in batch.rows]
        cursor, more = batch.cursor, batch.more
        batches += 1
        clock.now += timedelta(seconds=5)
    assert batches == 3
    assert seen == [f"12-00001-0000{i}" for i in range(1, 6)]
    calls = fake.calls("GET", ORDERS_PATH)
    assert [c.url.params["offset"] for c in calls] == ["0", "2", "4"]
    first_since = NOW - timedelta(days=30)
    assert {c.url.params["filter"] for c in calls} == {"lastmodifieddate:[2026-01-30T12:00:00.000Z..]"}
    assert first_since.strftime("%Y-%m-%dT%H:%M") in calls[0].url.params["filter"]

    # The pass started at NOW; the next one reads from NOW minus the 10-minute overlap.
    ebay.fetch(ORDERS, cursor)
    assert (
        fake.calls("GET", ORDERS_PATH)[-1].url.params["filter"]
        == "lastmodifieddate:[2026-03-01T11:50:00.000Z..]"
    )


def test_a_saved_cursor_resumes_in_a_new_worker(fake, clock):
    pages = {
        0: orders_page([order_fake("12-00001-00001")], offset=0, limit=1, total=2),
        1: orders_page([order_fake("12-00001-00002")], offset=1, limit=1, total=2),
    }
    fake.on("GET", ORDERS_PATH, lambda r: json_response(200, pages[int(r.url.params["offset"])]))
    first = connector(fake, clock, settings={"orders_page_size": 1}).fetch(ORDERS, None)
    assert first.more and [o.external_id for o in first.rows] == ["12-00001-00001"]
    assert PassCursor.load(first.cursor, ORDERS).offset == 1

    clock.now += timedelta(hours=3)  # a different worker, much later: same pass, same filter
    second = connector(fake, clock, settings={"orders_page_size": 1}).fetch(ORDERS, first.cursor)
    assert [o.external_id for o in second.rows] == ["12-00001-00002"] and not second.more
    filters = [c.url.params["filter"] for c in fake.calls("GET", ORDERS_PATH)]
    assert filters[0] == filters[1]
    assert json.loads(second.cursor)["since"] == "2026-03-01T11:50:00.000Z"


def test_a_corrupt_cursor_is_a_clear_error(fake, clock):
    with pytest.raises(ConnectorError, match="orders cursor is not valid"):
        connector(fake, clock).fetch(ORDERS, "{not json")


def test_unshipped_order_maps_status_items_and_promise_from_payment(fake, clock):
    fake.on("GET", ORDERS_PATH, json_response(200, orders_page([order_fake()], offset=0, limit=100, total=1)))
    order = connector(fake, clock).fetch(ORDERS, None).rows[0]
    assert order.external_id == "12-11111-22222"
    assert order.status is OrderStatus.paid
    assert (order.total, order.currency) == (Decimal("24.97"), "USD")
    assert (order.buyer_id, order.buyer_name, order.buyer_country) == (BUYER, "Anna Miller", "US")
    assert order.paid_at == datetime(2026, 2, 2, 9, 16, tzinfo=UTC)
    assert order.shipped_at is None and order.tracking_number is None
    # Not shipped yet: paid 02-02 09:16 -> latest estimate 02-24 07:59:59 = 21.9 days -> 22.
    assert order.promised_delivery_days == 22
    assert order.handling_days == 3  # ship-by 02-05 07:59 from creation 02-02 09:15
    assert order.shipping_method == "USPSFirstClass"
    assert order.protection_open is False
    (item,) = order.items
    assert (item.sku, item.quantity, item.price, item.currency) == ("SKU-USB-C-2M", 2, Decimal("9.99"), "USD")
    assert fake.calls("GET", r"/sell/fulfillment/v1/order/.*/shipping_fulfillment") == []


def test_shipping_fulfillments_give_tracking_carrier_and_the_promise_from_shipment(fake, clock):
    href = "https://api.ebay.com/sell/fulfillment/v1/order/12-11111-22222/shipping_fulfillment/9400111899560"
    shipped = order_fake(fulfillment_status="FULFILLED", fulfillment_hrefs=[href])
    fake.on("GET", ORDERS_PATH, json_response(200, orders_page([shipped], offset=0, limit=100, total=1)))
    fake.on(
        "GET",
        "/sell/fulfillment/v1/order/12-11111-22222/shipping_fulfillment",
        json_response(
            200,
            fulfillments_fake(
                ("LP00123456789CN", "CHINA_POST", "2026-02-04T10:00:00.000Z"),
                ("9400111899560123456789", "USPS", "2026-02-06T18:00:00.000Z"),
            ),
        ),
    )
    order = connector(fake, clock).fetch(ORDERS, None).rows[0]
    assert order.status is OrderStatus.shipped
    assert order.shipped_at == datetime(2026, 2, 4, 10, 0, tzinfo=UTC)  # the first parcel left then
    assert (order.tracking_number, order.carrier) == ("9400111899560123456789", "USPS")  # the latest
    # Shipped 02-04 10:00 -> latest estimate 02-24 07:59:59 = 19.9 days -> 20; deadline lands on eBay's.
    assert order.promised_delivery_days == 20


@pytest.mark.parametrize(
    ("fulfillment", "payment", "cancel", "shipped", "expected"),
    [
        ("NOT_STARTED", "PENDING", "NONE_REQUESTED", False, OrderStatus.unpaid),
        ("NOT_STARTED", "FAILED", "NONE_REQUESTED", False, OrderStatus.unpaid),
        ("NOT_STARTED", "PAID", "NONE_REQUESTED", False, OrderStatus.paid),
        ("IN_PROGRESS", "PAID", "NONE_REQUESTED", False, OrderStatus.paid),
        ("IN_PROGRESS", "PAID", "NONE_REQUESTED", True, OrderStatus.shipped),
        ("FULFILLED", "PAID", "NONE_REQUESTED", True, OrderStatus.shipped),
        ("FULFILLED", "PARTIALLY_REFUNDED", "NONE_REQUESTED", True, OrderStatus.shipped),
        ("NOT_STARTED", "PAID", "CANCELED", False, OrderStatus.cancelled),
        ("FULFILLED", "FULLY_REFUNDED", "NONE_REQUESTED", True, OrderStatus.cancelled),
        ("NOT_STARTED", "PAID", "IN_PROGRESS", False, OrderStatus.paid),
    ],
)
def test_order_status_mapping(fulfillment, payment, cancel, shipped, expected):
    assert (
        order_status(fulfillment=fulfillment, payment=payment, cancel_state=cancel, has_shipment=shipped)
        is expected
    )


def test_promised_days_are_rounded_up_and_bounded():
    created = datetime(2026, 1, 1, tzinfo=UTC)
    assert (
        promised_delivery_days(max_estimated=None, shipped_at=None, paid_at=None, created_at=created) is None
    )
    same_day = created + timedelta(hours=3)
    assert (
        promised_delivery_days(max_estimated=same_day, shipped_at=None, paid_at=None, created_at=created) == 1
    )
    late = created - timedelta(days=2)  # shipped after eBay's estimate already passed
    assert (
        promised_delivery_days(max_estimated=late, shipped_at=created, paid_at=None, created_at=created) == 1
    )
    far = created + timedelta(days=500)
    assert promised_delivery_days(max_estimated=far, shipped_at=None, paid_at=None, created_at=created) == 365


def test_an_order_without_a_total_names_the_field(fake, clock):
    broken = order_fake()
    del broken["pricingSummary"]["total"]
    fake.on("GET", ORDERS_PATH, json_response(200, orders_page([broken], offset=0, limit=100, total=1)))
    with pytest.raises(ConnectorError, match="pricingSummary.total") as info:
        connector(fake, clock).fetch(ORDERS, None)
    assert info.value.kind is ErrorKind.FATAL


# ------------------------------------------------------------------------------- messages


def test_messages_stream_reads_new_messages_with_direction(fake, clock):
    old = message_fake("m0", BUYER, SELLER, "Is this still available?", "2026-01-10T10:00:00.000Z")
    ask = message_fake(
        "m1", BUYER, SELLER, "Hi, my cable has not arrived yet. Any news?", "2026-02-27T10:00:00.000Z"
    )
    ours = message_fake("m2", SELLER, BUYER, "Hello Anna, it is on its way.", "2026-02-27T12:00:00.000Z")
    fake.on(
        "GET",
        CONVERSATIONS_PATH,
        json_response(200, conversations_page([conversation_fake("c1", ours)], offset=0, limit=50, total=1)),
    )
    fake.on("GET", f"{CONVERSATIONS_PATH}/c1", json_response(200, messages_page([ours, ask, old])))
    batch = connector(fake, clock).fetch(MESSAGES, None)
    assert [(m.external_id, m.direction) for m in batch.rows] == [("m2", "seller"), ("m1", "buyer")]
    asked = next(m for m in batch.rows if m.external_id == "m1")
    assert asked.conversation_external_id == "c1"
    assert asked.buyer_id == BUYER and asked.body.startswith("Hi, my cable")
    assert asked.sent_at == datetime(2026, 2, 27, 10, 0, tzinfo=UTC)
    listing = fake.calls("GET", CONVERSATIONS_PATH)[0].url.params
    assert listing["conversation_type"] == "FROM_MEMBERS"
    assert listing["start_time"] == "2026-01-30T12:00:00.000Z"
    assert fake.calls("GET", f"{CONVERSATIONS_PATH}/c1")[0].url.params["conversation_type"] == "FROM_MEMBERS"
    assert not batch.more


def test_conversations_without_new_messages_are_not_opened(fake, clock):
    stale = message_fake("m9", BUYER, SELLER, "Thanks!", "2026-01-02T10:00:00.000Z")
    fake.on(
        "GET",
        CONVERSATIONS_PATH,
        json_response(200, conversations_page([conversation_fake("c9", stale)], offset=0, limit=50, total=1)),
    )
    assert connector(fake, clock).fetch(MESSAGES, None).rows == []
    assert fake.calls("GET", f"{CONVERSATIONS_PATH}/c9") == []


def test_conversation_pages_are_followed_with_the_cursor(fake, clock):
    new = message_fake("m1", BUYER, SELLER, "Where is my parcel?", "2026-02-28T10:00:00.000Z")
    pages = {
        0: conversations_page([conversation_fake("c1", new)], offset=0, limit=1, total=2),
        1: conversations_page([conversation_fake("c2", new)], offset=1, limit=1, total=2),
    }
    fake.on("GET", CONVERSATIONS_PATH, lambda r: json_response(200, pages[int(r.url.params["offset"])]))
    fake.on("GET", rf"{CONVERSATIONS_PATH}/c\d", json_response(200, messages_page([new])))
    ebay = connector(fake, clock, settings={"conversations_page_size": 1})
    first = ebay.fetch(MESSAGES, None)
    second = ebay.fetch(MESSAGES, first.cursor)
    assert first.more and not second.more
    assert [c.url.params["offset"] for c in fake.calls("GET", CONVERSATIONS_PATH)] == ["0", "1"]
    assert [r.conversation_external_id for r in first.rows + second.rows] == ["c1", "c2"]


def test_messages_need_the_seller_username(fake, clock):
    with pytest.raises(ConnectorError, match="seller_username") as info:
        connector(fake, clock, creds=credentials(seller_username=None)).fetch(MESSAGES, None)
    assert info.value.kind is ErrorKind.ACCOUNT
    assert fake.requests == []


# ------------------------------------------------------------------------------- disputes


def test_inquiry_and_return_become_disputes(fake, clock):
    fake.on("GET", "/post-order/v2/inquiry/search", json_response(200, inquiry_search(inquiry_summary())))
    detail = {
        **inquiry_summary(),
        "creationReason": "ITEM_NOT_RECEIVED",
        "inquiryDetails": {
            "creationDate": {"value": "2026-02-25T16:40:00.000Z"},
            "expirationDate": {"value": "2026-03-27T16:40:00.000Z"},
            "desiredOutcome": "FULL_REFUND",
        },
        "sellerMakeItRightByDate": {"value": "2026-02-28T16:40:00.000Z"},
    }
    fake.on("GET", "/post-order/v2/inquiry/5212345678", json_response(200, detail))
    fake.on("GET", "/post-order/v2/return/search", json_response(200, return_search(return_summary())))
    ebay = connector(fake, clock)

    first = ebay.fetch(DISPUTES, None)
    (inr,) = first.rows
    assert inr.external_id == "inquiry:5212345678"
    assert inr.order_external_id == "110587654321-2874561234017"  # legacy order-line id: no orderId given
    assert inr.reason == "item not received"
    assert inr.status == "OPEN" and inr.is_open
    assert inr.buyer_request == "refund"
    assert (inr.amount, inr.currency) == (Decimal("24.97"), "USD")
    assert inr.opened_at == datetime(2026, 2, 25, 16, 40, tzinfo=UTC)
    assert inr.response_due_at == datetime(2026, 2, 28, 16, 40, tzinfo=UTC)
    assert first.more  # returns come next, in the same pass

    second = ebay.fetch(DISPUTES, first.cursor)
    (ret,) = second.rows
    assert ret.external_id == "return:5098765432"
    assert ret.order_external_id == "12-11111-22222"
    assert ret.reason == "defective item"
    assert ret.is_open and ret.buyer_request == "return"
    assert ret.amount == Decimal("24.97")
    assert ret.response_due_at == datetime(2026, 3, 1, 11, 0, tzinfo=UTC)
    assert not second.more

    search = fake.calls("GET", "/post-order/v2/inquiry/search")[0]
    assert search.headers["authorization"] == f"IAF {OLD_TOKEN}"
    assert search.headers["x-ebay-c-marketplace-id"] == "EBAY_US"
    assert (
        search.url.params["inquiry_creation_date_range_from"] == "2025-12-31T12:00:00.000Z"
    )  # 60-day window
    assert fake.calls("GET", "/post-order/v2/return/search")[0].url.params["creation_date_range_to"] == (
        "2026-03-01T12:00:00.000Z"
    )


def test_closed_inquiry_is_mapped_from_the_summary_alone(fake, clock):
    fake.on(
        "GET",
        "/post-order/v2/inquiry/search",
        json_response(200, inquiry_search(inquiry_summary(status="CLOSED"))),
    )
    fake.on(
        "GET",
        "/post-order/v2/return/search",
        json_response(200, return_search(return_summary(state="CLOSED"))),
    )
    ebay = connector(fake, clock)
    first = ebay.fetch(DISPUTES, None)
    second = ebay.fetch(DISPUTES, first.cursor)
    assert [d.is_open for d in first.rows + second.rows] == [False, False]
    assert fake.calls("GET", r"/post-order/v2/inquiry/\d+") == []


# --------------------------------------------------------------------------------- sending


def test_send_message_body_and_result(fake, clock):
    sent = contract.build(
        "message",
        "SendMessageResponse",
        {
            "messageId": "m-777",
            "createdDate": "2026-03-01T12:00:03.000Z",
            "messageBody": "Hello Anna, your parcel is in transit.",
            "senderUserName": SELLER,
            "recipientUserName": BUYER,
            "readStatus": False,
        },
    )
    fake.on("POST", "/commerce/message/v1/send_message", json_response(201, sent))
    result = connector(fake, clock).send_message(
        "c1", "Hello Anna, your parcel is in transit.", order_external_id=None
    )
    assert result.marketplace_message_id == "m-777"
    assert result.sent_at == datetime(2026, 3, 1, 12, 0, 3, tzinfo=UTC)
    (call,) = fake.calls("POST", "/commerce/message/v1/send_message")
    assert json.loads(call.content) == {
        "conversationId": "c1",
        "messageText": "Hello Anna, your parcel is in transit.",
    }
    assert call.headers["content-type"] == "application/json"


def test_reply_to_an_inquiry_goes_to_post_order(fake, clock):
    fake.on("POST", "/post-order/v2/inquiry/5212345678/send_message", json_response(200))
    result = connector(fake, clock).send_message(
        "inquiry:5212345678", "Tracking: LP00123456789CN", order_external_id=None
    )
    (call,) = fake.calls("POST", "/post-order/v2/inquiry/5212345678/send_message")
    assert json.loads(call.content) == {"message": {"content": "Tracking: LP00123456789CN"}}
    assert call.headers["authorization"] == f"IAF {OLD_TOKEN}"
    assert result.marketplace_message_id.startswith("inquiry:5212345678@")


def test_a_send_is_never_retried_and_a_5xx_may_have_sent(fake, clock, slept):
    fake.on(
        "POST",
        "/commerce/message/v1/send_message",
        json_response(
            500,
            contract.error_body(
                "message",
                {
                    "errorId": 335000,
                    "domain": "API_MESSAGE",
                    "category": "APPLICATION",
                    "message": "Internal error",
                },
            ),
        ),
    )
    with pytest.raises(ConnectorError) as info:
        connector(fake, clock, slept).send_message("c1", "Hello", order_external_id=None)
    assert info.value.kind is ErrorKind.RETRYABLE
    assert info.value.maybe_sent
    assert len(fake.calls("POST", "/commerce/message/v1/send_message")) == 1
    assert slept == []


@pytest.mark.parametrize(
    ("failure", "maybe_sent"),
    [(httpx.ReadTimeout("read timed out"), True), (httpx.ConnectTimeout("connect timed out"), False)],
)
def test_a_timed_out_send_is_reported_for_reconciliation(fake, clock, failure, maybe_sent):
    fake.on("POST", "/commerce/message/v1/send_message", [failure])
    with pytest.raises(ConnectorError) as info:
        connector(fake, clock).send_message("c1", "Hello", order_external_id=None)
    assert info.value.kind is ErrorKind.RETRYABLE
    assert info.value.maybe_sent is maybe_sent
    assert len(fake.calls("POST", "/commerce/message/v1/send_message")) == 1


def test_a_too_long_message_is_refused_before_sending(fake, clock):
    with pytest.raises(ConnectorError, match="2000") as info:
        connector(fake, clock).send_message("c1", "x" * 2001, order_external_id=None)
    assert info.value.kind is ErrorKind.FATAL
    assert fake.requests == []


def test_find_sent_message_reconciles_by_our_body(fake, clock):
    theirs = message_fake("m1", BUYER, SELLER, "Hello   Anna, it ships today.", "2026-03-01T11:59:00.000Z")
    ours_old = message_fake("m2", SELLER, BUYER, "Hello Anna, it ships today.", "2026-02-01T10:00:00.000Z")
    ours = message_fake("m3", SELLER, BUYER, "Hello Anna,\nit ships today.", "2026-03-01T12:00:05.000Z")
    fake.on("GET", f"{CONVERSATIONS_PATH}/c1", json_response(200, messages_page([theirs, ours_old, ours])))
    ebay = connector(fake, clock)
    assert ebay.find_sent_message("c1", "Hello Anna, it ships today.", NOW) == "m3"
    assert ebay.find_sent_message("c1", "Something else", NOW) is None


def test_a_send_accepted_without_an_id_or_readable_answer_must_be_reconciled(fake, clock):
    fake.on("POST", "/commerce/message/v1/send_message", json_response(201, {}))
    with pytest.raises(ConnectorError) as info:
        connector(fake, clock).send_message("c1", "Hello", order_external_id=None)
    assert info.value.maybe_sent and info.value.kind is ErrorKind.RETRYABLE

    # eBay breaking its own contract (HTML on a 201) is outside the fake: a bare transport here.
    bare = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(201, text="<html>ok</html>")))
    account = AccountRef(id=7, marketplace="ebay", name="x", credentials=credentials())
    ebay = EbayConnector(account, http=bare, now=clock)
    with pytest.raises(ConnectorError) as info:
        ebay.send_message("c1", "Hello", order_external_id=None)
    assert info.value.maybe_sent and info.value.kind is ErrorKind.RETRYABLE


def test_find_sent_message_in_an_inquiry_history(fake, clock):
    # Minimal InquiryDetailsResponse (not in the contract): history of ClaimHistoryEventModel.
    detail = {
        **inquiry_summary(),
        "inquiryHistoryDetails": {
            "history": [
                {
                    "action": "BUYER_CREATE_INQUIRY",
                    "actor": "BUYER",
                    "date": {"value": "2026-02-25T16:40:00.000Z"},
                },
                {
                    "action": "SELLER_SEND_MESSAGE",
                    "actor": "SELLER",
                    "date": {"value": "2026-03-01T12:00:02.000Z"},
                    "description": "Tracking: LP00123456789CN",
                },
            ]
        },
    }
    fake.on("GET", "/post-order/v2/inquiry/5212345678", json_response(200, detail))
    ebay = connector(fake, clock)
    assert ebay.find_sent_message("inquiry:5212345678", "Tracking: LP00123456789CN", NOW) == (
        "inquiry:5212345678@2026-03-01T12:00:02.000Z"
    )
    # Nothing of ours after `since` (beyond the overlap): not sent.
    assert (
        ebay.find_sent_message("inquiry:5212345678", "Tracking: LP00123456789CN", NOW + timedelta(hours=1))
        is None
    )


# ------------------------------------------------------------------------------------ refunds


def refund_answer(refund_id: str = "5000123456", status: str = "PENDING") -> httpx.Response:
    return json_response(
        200, contract.build("fulfillment", "Refund", {"refundId": refund_id, "refundStatus": status})
    )


def test_partial_refund_request_body(fake, clock):
    fake.on("POST", "/sell/fulfillment/v1/order/12-11111-22222/issue_refund", refund_answer())
    result = connector(fake, clock).perform_action(
        ActionRequest(
            type="refund_partial",
            order_external_id="12-11111-22222",
            idempotency_key="act-41",
            amount=Decimal("5"),
            currency="usd",
            note="Partial refund for the scratched case, as agreed.",
        )
    )
    assert result.external_ref == "5000123456"
    (call,) = fake.calls("POST", "/sell/fulfillment/v1/order/12-11111-22222/issue_refund")
    assert json.loads(call.content) == {
        "reasonForRefund": "OTHER",
        "orderLevelRefundAmount": {"value": "5.00", "currency": "USD"},
        "comment": "Partial refund for the scratched case, as agreed.",
    }


def test_full_refund_without_amount_reads_the_order_total(fake, clock):
    fake.on("GET", "/sell/fulfillment/v1/order/12-11111-22222", json_response(200, order_fake()))
    fake.on("POST", "/sell/fulfillment/v1/order/12-11111-22222/issue_refund", refund_answer())
    connector(fake, clock).perform_action(
        ActionRequest(
            type="refund_full",
            order_external_id="12-11111-22222",
            idempotency_key="act-42",
            dispute_external_id="return:5098765432",
        )
    )
    body = json.loads(fake.calls("POST", r".*/issue_refund")[0].content)
    assert body == {
        "reasonForRefund": "BUYER_RETURN",
        "orderLevelRefundAmount": {"value": "24.97", "currency": "USD"},
    }


def test_full_refund_on_an_inquiry_uses_the_inquiry(fake, clock):
    fake.on("POST", "/post-order/v2/inquiry/5212345678/issue_refund", json_response(200, {}))
    result = connector(fake, clock).perform_action(
        ActionRequest(
            type="refund_full",
            order_external_id="12-11111-22222",
            idempotency_key="act-43",
            dispute_external_id="inquiry:5212345678",
            note="Sorry it got lost: full refund.",
        )
    )
    (call,) = fake.calls("POST", "/post-order/v2/inquiry/5212345678/issue_refund")
    assert json.loads(call.content) == {"comments": {"content": "Sorry it got lost: full refund."}}
    assert result.external_ref == "inquiry:5212345678:refund"


def test_a_refund_is_called_once_even_on_a_retryable_error(fake, clock, slept):
    fake.on(
        "POST",
        "/sell/fulfillment/v1/order/12-11111-22222/issue_refund",
        ebay_error(409, 34922, "REQUEST", "Refund can't be issued while previous refund is processing."),
    )
    with pytest.raises(ConnectorError) as info:
        connector(fake, clock, slept).perform_action(
            ActionRequest(
                type="refund_partial",
                order_external_id="12-11111-22222",
                idempotency_key="a",
                amount=Decimal("3"),
                currency="USD",
            )
        )
    assert info.value.kind is ErrorKind.RETRYABLE and not info.value.maybe_sent
    assert len(fake.calls("POST", r".*/issue_refund")) == 1 and slept == []


def test_a_refund_accepted_without_an_id_must_be_reconciled(fake, clock):
    fake.on(
        "POST",
        "/sell/fulfillment/v1/order/12-11111-22222/issue_refund",
        json_response(200, contract.build("fulfillment", "Refund", {"refundStatus": "PENDING"})),
    )
    request = ActionRequest(
        type="refund_partial",
        order_external_id="12-11111-22222",
        idempotency_key="a",
        amount=Decimal("2"),
        currency="USD",
    )
    with pytest.raises(ConnectorError) as info:
        connector(fake, clock).perform_action(request)
    assert info.value.maybe_sent and info.value.kind is ErrorKind.RETRYABLE


def test_find_action_sees_an_earlier_refund(fake, clock):
    refunded = order_fake(payment_status="PARTIALLY_REFUNDED")
    refunded["paymentSummary"]["refunds"] = [
        contract.build(
            "fulfillment",
            "OrderRefund",
            {
                "refundId": "5000999",
                "refundStatus": "PENDING",
                "amount": money("5.00"),
                "refundDate": "2026-03-01T12:00:00.000Z",
            },
        )
    ]
    fake.on("GET", "/sell/fulfillment/v1/order/12-11111-22222", json_response(200, refunded))
    request = ActionRequest(
        type="refund_partial", order_external_id="12-11111-22222", idempotency_key="a", amount=Decimal("5")
    )
    assert connector(fake, clock).find_action(request).external_ref == "5000999"

    fake.on("GET", "/sell/fulfillment/v1/order/12-11111-22222", json_response(200, order_fake()))
    assert connector(fake, clock).find_action(request) is None


def test_resend_is_recorded_and_extend_protection_is_not_offered(fake, clock):
    ebay = connector(fake, clock)
    assert not EbayConnector.capabilities.allows("extend_protection")
    assert all(
        EbayConnector.capabilities.allows(a)
        for a in ("send_message", "refund_full", "refund_partial", "resend")
    )
    result = ebay.perform_action(
        ActionRequest(type="resend", order_external_id="12-1", idempotency_key="act-9")
    )
    assert result.external_ref == "resend:act-9"
    with pytest.raises(ConnectorError) as info:
        ebay.perform_action(
            ActionRequest(type="extend_protection", order_external_id="12-1", idempotency_key="x", days=15)
        )
    assert info.value.kind is ErrorKind.FATAL
    assert fake.requests == []


# ------------------------------------------------------------------------------ error table


@pytest.mark.parametrize(
    ("response", "kind", "retry_after"),
    [
        (ebay_error(400, 35001, "REQUEST", "The filter is invalid."), ErrorKind.FATAL, None),
        (ebay_error(404, 34913, "REQUEST", "Can not find the order."), ErrorKind.FATAL, None),
        (ebay_error(409, 34917, "BUSINESS", "This order was already refunded."), ErrorKind.FATAL, None),
        (ebay_error(403, 1100, "REQUEST", "Access denied"), ErrorKind.FATAL, None),
        (
            ebay_error(429, 2001, "REQUEST", "Too many requests.", **{"Retry-After": "30"}),
            ErrorKind.RETRYABLE,
            30.0,
        ),
        (
            ebay_error(400, 218050, "REQUEST", "Daily call limit exceeded for this application."),
            ErrorKind.RETRYABLE,
            None,
        ),
        (
            ebay_error(409, 34929, "REQUEST", "Buyer payment not processed. Try later."),
            ErrorKind.RETRYABLE,
            None,
        ),
        (
            ebay_error(500, 34900, "APPLICATION", "There was a problem with an eBay internal system."),
            ErrorKind.RETRYABLE,
            None,
        ),
        (httpx.Response(503, text="<html>Service Unavailable</html>"), ErrorKind.RETRYABLE, None),
    ],
    ids=[
        "request-400",
        "not-found",
        "business-409",
        "no-scope-403",
        "429",
        "call-limit",
        "try-later",
        "500",
        "503-html",
    ],
)
def test_error_table_rows(fake, clock, slept, response, kind, retry_after):
    fake.on("GET", ORDERS_PATH, response)
    with pytest.raises(ConnectorError) as info:
        connector(fake, clock, slept, attempts=1).fetch(ORDERS, None)
    assert info.value.kind is kind
    assert info.value.retry_after == retry_after
    assert info.value.status == response.status_code
    assert not info.value.maybe_sent  # a read changes nothing


def test_error_table_as_data():
    def kind(status, code, message="", category=None):
        return classify_error(EBAY_ERROR_RULES, status=status, code=code, message=message, category=category)

    assert kind(400, "invalid_grant") is ErrorKind.ACCOUNT
    assert kind(401, "1001", "Invalid access token") is ErrorKind.ACCOUNT
    assert kind(429, "2001") is ErrorKind.RETRYABLE
    assert kind(400, "2001", "Too many requests") is ErrorKind.RETRYABLE  # throttling on an odd status
    for try_later in ("34922", "34929", "34930"):
        assert kind(409, try_later) is ErrorKind.RETRYABLE
    assert kind(409, "34917", "This order was already refunded.") is ErrorKind.FATAL
    assert kind(409, "34922", category="REQUEST") is ErrorKind.RETRYABLE  # the specific row wins
    assert kind(400, "355003", category="REQUEST") is ErrorKind.FATAL
    assert kind(409, "34916", category="BUSINESS") is ErrorKind.FATAL
    assert kind(500, "335000", category="APPLICATION") is ErrorKind.RETRYABLE
    assert kind(500, "API call limit reached") is ErrorKind.RETRYABLE
    assert kind(502, None) is ErrorKind.RETRYABLE
    assert kind(400, "34903", "The refund reason must be specified.") is ErrorKind.FATAL


def test_reads_are_retried_honouring_retry_after(fake, clock, slept):
    throttled = ebay_error(429, 2001, "REQUEST", "Too many requests.", **{"Retry-After": "2"})
    fake.on(
        "GET", ORDERS_PATH, [throttled, json_response(200, orders_page([], offset=0, limit=100, total=0))]
    )
    batch = connector(fake, clock, slept).fetch(ORDERS, None)
    assert batch.rows == [] and not batch.more
    assert len(fake.calls("GET", ORDERS_PATH)) == 2
    assert slept == [2.0]


# ------------------------------------------------------------------------- config and secrets


@pytest.mark.parametrize("missing", ["client_id", "client_secret", "refresh_token"])
def test_missing_credentials_name_the_field(fake, clock, missing):
    with pytest.raises(ConnectorError, match=missing) as info:
        connector(fake, clock, creds=credentials(**{missing: None}))
    assert info.value.kind is ErrorKind.ACCOUNT


def test_bad_settings_name_the_setting(fake, clock):
    with pytest.raises(ConnectorError, match="orders_page_size"):
        connector(fake, clock, settings={"orders_page_size": 500})
    with pytest.raises(ConnectorError, match="rate_limits"):
        connector(fake, clock, settings={"rate_limits": {"trading": {"rate": 1, "burst": 1}}})


def test_secrets_stay_out_of_reprs_and_errors(fake, clock):
    fake.on(
        "POST",
        "/identity/v1/oauth2/token",
        json_response(400, {"error": "invalid_grant", "error_description": "bad"}),
    )
    ebay = connector(fake, clock, creds=credentials(access_token=None))
    texts = [repr(ebay), repr(ebay.account), repr(ebay.creds), repr(EbayCredentials.from_dict(credentials()))]
    with pytest.raises(ConnectorError) as info:
        ebay.check_credentials()
    texts += [str(info.value), repr(info.value)]
    assert CLIENT_ID in texts[2]  # the public id is fine to show
    for text in texts:
        assert all(secret not in text for secret in SECRETS), text


def test_rate_limiter_is_asked_per_account_and_api(fake, clock):
    class Recorder(RateLimiter):
        def __init__(self) -> None:
            self.calls: list[tuple[str, float, int]] = []

        def acquire(self, key: str, rate: float, burst: int, cost: float = 1.0) -> float:
            self.calls.append((key, rate, burst))
            return 0.0

    limiter = Recorder()
    fake.on("GET", ORDERS_PATH, json_response(200, orders_page([], offset=0, limit=100, total=0)))
    ebay = connector(
        fake,
        clock,
        creds=credentials(access_token=None),
        settings={"rate_limits": {"fulfillment": {"rate": 2.5, "burst": 4}}},
        limiter=limiter,
    )
    ebay.fetch(ORDERS, None)
    assert limiter.calls == [("ebay:7:fulfillment", 2.5, 4), ("ebay:7:identity", 0.5, 2)]


def test_registry_names_the_ebay_connector():
    assert connector_class("ebay") is EbayConnector


# ------------------------------------------------------------------- the sandbox's eBay dialect


def contract_checked(sandbox: EbaySandbox) -> httpx.Client:
    """A client on the sandbox dialect whose every request and answer goes through the contracts."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/identity/v1/oauth2/token":
            contract.check_token_request(request, CLIENT_ID, CLIENT_SECRET)
        else:
            contract.validate_request(request)
        response = sandbox.handle(request)
        contract.validate_response(request, response)
        return response

    return httpx.Client(transport=httpx.MockTransport(handler))


@pytest.fixture
def sandbox(clock) -> EbaySandbox:
    world = EbaySandbox(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        refresh_token=REFRESH_TOKEN,
        seller_username=SELLER,
        now=clock,
    )
    day = timedelta(days=1)
    for n in range(1, 4):
        world.add_order(
            f"12-00000-0000{n}",
            buyer=f"buyer{n}",
            buyer_name=f"Buyer {n}",
            country="DE",
            title="Silicone phone case",
            sku=f"CASE-{n}",
            quantity=1,
            unit_price=Decimal("9.90"),
            currency="EUR",
            created=NOW - 20 * day + n * timedelta(hours=1),
            max_estimated_delivery=NOW - 2 * day,
            shipping=Decimal("2.00"),
        )
    world.ship("12-00000-00001", tracking="LP00999888777CN", carrier="CHINA_POST", at=NOW - 18 * day)
    world.buyer_writes(
        "conv-1", "buyer1", "Wo ist mein Paket? Es ist schon 18 Tage her.", NOW - timedelta(hours=5)
    )
    world.open_inquiry(
        "5300000001",
        "12-00000-00002",
        buyer="buyer2",
        amount=Decimal("11.90"),
        currency="EUR",
        created=NOW - day,
    )
    world.open_return(
        "5400000001",
        "12-00000-00003",
        buyer="buyer3",
        reason="NOT_AS_DESCRIBED",
        amount=Decimal("11.90"),
        currency="EUR",
        created=NOW - day,
    )
    return world


def sandbox_connector(sandbox: EbaySandbox, clock: Clock, slept: list[float] | None = None) -> EbayConnector:
    account = AccountRef(
        id=11,
        marketplace="ebay",
        name="sandbox ebay",
        credentials=credentials(access_token=None, access_token_expires_at=None),
        settings={"orders_page_size": 2},
    )
    return EbayConnector(
        account,
        http=contract_checked(sandbox),
        retry=RetryPolicy(attempts=3, initial=0.0, maximum=0.0),
        now=clock,
        sleep=(slept.append if slept is not None else (lambda s: None)),
    )


def drain(ebay: EbayConnector, stream: str, cursor: str | None = None) -> tuple[list[Any], str | None]:
    rows: list[Any] = []
    more = True
    while more:
        batch = ebay.fetch(stream, cursor)
        rows += batch.rows
        cursor, more = batch.cursor, batch.more
    return rows, cursor


def test_the_connector_reads_and_writes_through_the_sandbox_dialect(sandbox, clock):
    ebay = sandbox_connector(sandbox, clock)
    orders, _ = drain(ebay, ORDERS)
    assert sorted(o.external_id for o in orders) == ["12-00000-00001", "12-00000-00002", "12-00000-00003"]
    shipped = next(o for o in orders if o.external_id == "12-00000-00001")
    assert (shipped.status, shipped.tracking_number, shipped.carrier) == (
        OrderStatus.shipped,
        "LP00999888777CN",
        "CHINA_POST",
    )
    assert shipped.promised_delivery_days == 16
    messages, message_cursor = drain(ebay, MESSAGES)
    assert [(m.conversation_external_id, m.direction, m.buyer_id) for m in messages] == [
        ("conv-1", "buyer", "buyer1")
    ]
    disputes, _ = drain(ebay, DISPUTES)
    assert sorted((d.external_id, d.order_external_id) for d in disputes) == [
        ("inquiry:5300000001", "12-00000-00002"),
        ("return:5400000001", "12-00000-00003"),
    ]

    clock.now += timedelta(minutes=1)
    ebay.send_message(
        "conv-1", "Hallo, Ihr Paket ist unterwegs: LP00999888777CN.", order_external_id="12-00000-00001"
    )
    ebay.send_message("inquiry:5300000001", "Sorry for the delay, we refund you now.", order_external_id=None)
    ebay.perform_action(
        ActionRequest(
            type="refund_full",
            order_external_id="12-00000-00002",
            idempotency_key="k1",
            dispute_external_id="inquiry:5300000001",
        )
    )
    assert [(e.kind, e.target) for e in sandbox.ledger] == [
        ("message", "conv-1"),
        ("message", "inquiry:5300000001"),
        ("refund", "inquiry:5300000001"),
    ]
    # Our reply comes back in the next poll as a seller message; the inquiry is closed.
    clock.now += timedelta(minutes=5)
    again, _ = drain(ebay, MESSAGES, message_cursor)
    assert ("seller", "Hallo, Ihr Paket ist unterwegs: LP00999888777CN.") in [
        (m.direction, m.body) for m in again
    ]
    disputes, _ = drain(ebay, DISPUTES)
    assert {d.external_id: d.is_open for d in disputes}["inquiry:5300000001"] is False


def test_a_lost_send_answer_is_reconciled_not_repeated(sandbox, clock):
    ebay = sandbox_connector(sandbox, clock)
    sandbox.inject(r"/send_message$", lost_answer=True)
    body = "Hello, your parcel is on its way."
    with pytest.raises(ConnectorError) as info:
        ebay.send_message("conv-1", body, order_external_id=None)
    assert info.value.maybe_sent
    # The outbox reconciles before any retry: the message is found, so it is not sent again.
    assert ebay.find_sent_message("conv-1", body, NOW) is not None
    assert [e.kind for e in sandbox.ledger] == ["message"]


def test_sandbox_faults_throttle_and_revoked_consent(sandbox, clock, slept):
    ebay = sandbox_connector(sandbox, clock, slept)
    sandbox.inject(r"^/sell/fulfillment/v1/order$", status=429, retry_after=7)
    drain(ebay, ORDERS)
    assert slept == [7.0]

    sandbox.revoke_refresh_token()
    with pytest.raises(ConnectorError) as info:
        ebay.fetch(ORDERS, None)
    assert info.value.kind is ErrorKind.ACCOUNT and info.value.code == "invalid_grant"


def test_the_sandbox_dialect_mounts_as_asgi(sandbox, clock):
    import asyncio

    async def scenario() -> list[str]:
        transport = httpx.ASGITransport(app=sandbox.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
            basic = httpx.BasicAuth(CLIENT_ID, CLIENT_SECRET)
            form = {"grant_type": "refresh_token", "refresh_token": REFRESH_TOKEN, "scope": "x"}
            token = (await client.post("/identity/v1/oauth2/token", data=form, auth=basic)).json()[
                "access_token"
            ]
            answer = await client.get(
                "/sell/fulfillment/v1/order",
                params={"limit": "5"},
                headers={"Authorization": f"Bearer {token}"},
            )
            return [o["orderId"] for o in answer.json()["orders"]]

    assert asyncio.run(scenario()) == ["12-00000-00002", "12-00000-00003", "12-00000-00001"]
