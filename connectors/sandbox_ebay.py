"""eBay dialect for the sandbox marketplace: the REST endpoints `EbayConnector` calls, served from memory.

A separate module so the sandbox server can mount it when it wants both marketplaces in the demo:
- `EbaySandbox.handle` is an httpx transport handler (in-process: `httpx.MockTransport(sandbox.handle)`);
- `EbaySandbox.asgi` is an ASGI app; mount it and point the account's `api_base`/`auth_base` at it.

Answers have the shapes of eBay's contracts (the tests run them through shared/contracts/ebay/). The
sandbox keeps a ledger of every message and refund it receives (what the exactly-once tests count),
checks OAuth tokens (a revoked refresh token answers `invalid_grant`), and injects faults on request:
an error status with eBay's envelope (429 with Retry-After, 5xx), or a lost answer after the change
was applied (the crash-between-call-and-mark case).
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx


def _iso(value: datetime) -> str:
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def _amount(value: Decimal, currency: str) -> dict[str, str]:
    return {"value": f"{value:.2f}", "currency": currency}


@dataclass
class LedgerEntry:
    """One change a client made: a message or a refund, with the request body as received."""

    kind: str  # message | refund
    target: str  # conversation id, "inquiry:<id>", "return:<id>" or order id
    body: dict[str, Any]
    at: datetime
    ref: str


@dataclass
class Fault:
    path: re.Pattern[str]
    status: int = 500
    times: int = 1
    retry_after: float | None = None
    lost_answer: bool = False  # apply the request, then lose the answer (a read timeout)


@dataclass
class _Conversation:
    detail: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)


class EbaySandbox:
    """An in-memory eBay seller account: orders, member conversations, INR inquiries and returns."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        seller_username: str = "sandbox.seller",
        now: Callable[[], datetime] | None = None,
        token_ttl_seconds: int = 7200,
        base_url: str = "https://api.ebay.com",
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.seller = seller_username
        self.now = now or (lambda: datetime.now(UTC))
        self.token_ttl = timedelta(seconds=token_ttl_seconds)
        self.base_url = base_url.rstrip("/")
        self.orders: dict[str, dict[str, Any]] = {}
        self.fulfillments: dict[str, list[dict[str, Any]]] = {}
        self.conversations: dict[str, _Conversation] = {}
        self.inquiries: dict[str, dict[str, Any]] = {}
        self.returns: dict[str, dict[str, Any]] = {}
        self.ledger: list[LedgerEntry] = []
        self.faults: list[Fault] = []
        self.revoked = False
        self._tokens: dict[str, datetime] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------ world building

    def add_order(
        self,
        order_id: str,
        *,
        buyer: str,
        buyer_name: str,
        country: str,
        title: str,
        sku: str,
        quantity: int,
        unit_price: Decimal,
        currency: str,
        created: datetime,
        max_estimated_delivery: datetime,
        shipping: Decimal = Decimal("0"),
    ) -> dict[str, Any]:
        """A paid, not yet shipped order (Fulfillment `Order`)."""
        items_total = unit_price * quantity
        order = {
            "orderId": order_id,
            "creationDate": _iso(created),
            "lastModifiedDate": _iso(created),
            "orderFulfillmentStatus": "NOT_STARTED",
            "orderPaymentStatus": "PAID",
            "sellerId": self.seller,
            "buyer": {"username": buyer},
            "cancelStatus": {"cancelState": "NONE_REQUESTED", "cancelRequests": []},
            "pricingSummary": {
                "priceSubtotal": _amount(items_total, currency),
                "deliveryCost": _amount(shipping, currency),
                "total": _amount(items_total + shipping, currency),
            },
            "paymentSummary": {
                "payments": [
                    {
                        "paymentMethod": "EBAY",
                        "paymentDate": _iso(created),
                        "amount": _amount(items_total + shipping, currency),
                        "paymentStatus": "PAID",
                    }
                ],
                "refunds": [],
                "totalDueSeller": _amount(items_total + shipping, currency),
            },
            "fulfillmentStartInstructions": [
                {
                    "fulfillmentInstructionsType": "SHIP_TO",
                    "maxEstimatedDeliveryDate": _iso(max_estimated_delivery),
                    "shippingStep": {
                        "shippingServiceCode": "EconomyShippingFromOutsideUS",
                        "shipTo": {"fullName": buyer_name, "contactAddress": {"countryCode": country}},
                    },
                }
            ],
            "fulfillmentHrefs": [],
            "lineItems": [
                {
                    "lineItemId": f"{order_id}-1",
                    "sku": sku,
                    "title": title,
                    "quantity": quantity,
                    "lineItemCost": _amount(items_total, currency),
                    "lineItemFulfillmentStatus": "NOT_STARTED",
                    "refunds": [],
                    "lineItemFulfillmentInstructions": {
                        "maxEstimatedDeliveryDate": _iso(max_estimated_delivery)
                    },
                }
            ],
        }
        with self._lock:
            self.orders[order_id] = order
            self.fulfillments[order_id] = []
        return order

    def ship(self, order_id: str, *, tracking: str, carrier: str, at: datetime) -> None:
        """Record a shipping fulfillment: the order becomes FULFILLED and carries the tracking number."""
        with self._lock:
            order = self.orders[order_id]
            self.fulfillments[order_id].append(
                {
                    "fulfillmentId": tracking,
                    "shipmentTrackingNumber": tracking,
                    "shippingCarrierCode": carrier,
                    "shippedDate": _iso(at),
                    "lineItems": [
                        {"lineItemId": li["lineItemId"], "quantity": li["quantity"]}
                        for li in order["lineItems"]
                    ],
                }
            )
            order["orderFulfillmentStatus"] = "FULFILLED"
            for li in order["lineItems"]:
                li["lineItemFulfillmentStatus"] = "FULFILLED"
            order["fulfillmentHrefs"].append(
                f"{self.base_url}/sell/fulfillment/v1/order/{order_id}/shipping_fulfillment/{tracking}"
            )
            order["lastModifiedDate"] = _iso(max(at, self.now()))

    def buyer_writes(
        self, conversation_id: str, buyer: str, text: str, at: datetime, *, listing_id: str = "110000000000"
    ) -> dict[str, Any]:
        """A member message from the buyer, in a new or existing conversation."""
        message = {
            "messageId": f"m{next(self._ids)}",
            "senderUsername": buyer,
            "recipientUsername": self.seller,
            "messageBody": text,
            "createdDate": _iso(at),
            "readStatus": False,
        }
        with self._lock:
            conv = self.conversations.get(conversation_id)
            if conv is None:
                conv = self.conversations[conversation_id] = _Conversation(
                    detail={
                        "conversationId": conversation_id,
                        "conversationStatus": "ACTIVE",
                        "conversationType": "FROM_MEMBERS",
                        "conversationTitle": f"Question about item #{listing_id}",
                        "createdDate": _iso(at),
                        "referenceId": listing_id,
                        "referenceType": "LISTING",
                    }
                )
            conv.messages.append(message)
        return message

    def open_inquiry(
        self,
        inquiry_id: str,
        order_id: str,
        *,
        buyer: str,
        amount: Decimal,
        currency: str,
        created: datetime,
        desired_outcome: str = "FULL_REFUND",
    ) -> dict[str, Any]:
        """An item-not-received inquiry (Post-Order InquiryDetailsResponse names)."""
        inquiry = {
            "inquiryId": inquiry_id,
            "orderId": order_id,
            "buyer": buyer,
            "seller": self.seller,
            "claimAmount": {"value": float(amount), "currency": currency},
            "inquiryStatusEnum": "OPEN",
            "status": "OPEN",
            "creationReason": "ITEM_NOT_RECEIVED",
            "creationDate": {"value": _iso(created)},
            "lastModifiedDate": {"value": _iso(created)},
            "respondByDate": {"value": _iso(created + timedelta(days=3))},
            "inquiryDetails": {"creationDate": {"value": _iso(created)}, "desiredOutcome": desired_outcome},
            "inquiryHistoryDetails": {
                "history": [{"action": "OPEN", "actor": "BUYER", "date": {"value": _iso(created)}}]
            },
        }
        with self._lock:
            self.inquiries[inquiry_id] = inquiry
        return inquiry

    def open_return(
        self,
        return_id: str,
        order_id: str,
        *,
        buyer: str,
        reason: str,
        amount: Decimal,
        currency: str,
        created: datetime,
    ) -> dict[str, Any]:
        """A money-back return request (Post-Order ReturnSummaryType names)."""
        summary = {
            "returnId": return_id,
            "orderId": order_id,
            "buyerLoginName": buyer,
            "sellerLoginName": self.seller,
            "currentType": "MONEY_BACK",
            "state": "RETURN_REQUESTED",
            "status": "RETURN_REQUESTED",
            "creationInfo": {
                "type": "MONEY_BACK",
                "reason": reason,
                "creationDate": {"value": _iso(created)},
            },
            "sellerTotalRefund": {"estimatedRefundAmount": {"value": float(amount), "currency": currency}},
            "sellerResponseDue": {
                "activityDue": "SELLER_APPROVE_REQUEST",
                "respondByDate": {"value": _iso(created + timedelta(days=3))},
            },
        }
        with self._lock:
            self.returns[return_id] = {"summary": summary, "detail": {"responseHistory": []}}
        return summary

    def revoke_refresh_token(self) -> None:
        """The seller withdrew consent: the next refresh answers invalid_grant, issued tokens stop working."""
        with self._lock:
            self.revoked = True
            self._tokens.clear()

    def inject(
        self,
        path_regex: str,
        *,
        status: int = 500,
        times: int = 1,
        retry_after: float | None = None,
        lost_answer: bool = False,
    ) -> None:
        """Fail the next `times` requests whose path matches (a regex searched in the path)."""
        with self._lock:
            self.faults.append(Fault(re.compile(path_regex), status, times, retry_after, lost_answer))

    # -------------------------------------------------------------------------------- HTTP

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request as eBay would; usable as an httpx.MockTransport handler."""
        path = request.url.path
        query = {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}
        fault = self._take_fault(path)
        if fault is not None and not fault.lost_answer:
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            return self._error(
                fault.status, 2001 if fault.status == 429 else 10000, "Injected fault", headers
            )
        with self._lock:
            response = self._route(request, path, query)
        if fault is not None:  # applied, but the caller never hears back
            raise httpx.ReadTimeout("sandbox: answer lost", request=request)
        return response

    async def asgi(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        """ASGI entry point: the same answers as `handle` (a lost answer becomes a dropped 500)."""
        if scope["type"] != "http":
            return
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        path = scope.get("path", "/")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        qs = scope.get("query_string", b"").decode()
        headers = [(k.decode(), v.decode()) for k, v in scope.get("headers", [])]
        request = httpx.Request(
            scope["method"], f"http://sandbox{path}" + (f"?{qs}" if qs else ""), headers=headers, content=body
        )
        try:
            response = self.handle(request)
        except httpx.ReadTimeout:
            response = self._error(500, 10000, "Injected fault: answer lost", {})
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": [(k.encode(), v.encode()) for k, v in response.headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": response.content})

    # ------------------------------------------------------------------------------ routing

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and fault.path.search(path):
                    fault.times -= 1
                    return fault
        return None

    def _route(self, request: httpx.Request, path: str, query: dict[str, str]) -> httpx.Response:
        if path == "/identity/v1/oauth2/token" and request.method == "POST":
            return self._token(request)
        auth = request.headers.get("authorization", "")
        scheme = "IAF" if path.startswith("/post-order/") else "Bearer"
        token = auth[len(scheme) + 1 :] if auth.startswith(f"{scheme} ") else ""
        expires = self._tokens.get(token)
        if expires is None or expires <= self.now():
            return self._error(401, 1001, "Invalid access token", {})
        body = json.loads(request.content) if request.content else {}
        for method, pattern, handler in self._ROUTES:
            match = re.fullmatch(pattern, path)
            if match and method == request.method:
                return handler(self, query, body, *match.groups())
        return self._error(404, 2002, "Resource not found", {})

    def _token(self, request: httpx.Request) -> httpx.Response:
        basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {basic}":
            return _json(
                401, {"error": "invalid_client", "error_description": "client authentication failed"}
            )
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        if form.get("grant_type") != "refresh_token":
            return _json(
                400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"}
            )
        if self.revoked or form.get("refresh_token") != self.refresh_token:
            return _json(
                400,
                {
                    "error": "invalid_grant",
                    "error_description": "the provided authorization refresh token is invalid or was issued to another client",
                },
            )
        token = f"sbx-access-{next(self._ids)}"
        self._tokens[token] = self.now() + self.token_ttl
        return _json(
            200,
            {
                "access_token": token,
                "expires_in": int(self.token_ttl.total_seconds()),
                "token_type": "User Access Token",
            },
        )

    @staticmethod
    def _error(status: int, error_id: int, message: str, headers: dict[str, str]) -> httpx.Response:
        category = "APPLICATION" if status >= 500 else "REQUEST"
        return _json(
            status,
            {
                "errors": [
                    {"errorId": error_id, "domain": "SANDBOX", "category": category, "message": message}
                ]
            },
            headers,
        )

    def _page(
        self, rows: list[dict[str, Any]], query: dict[str, str], path: str, default_limit: int, key: str
    ) -> dict[str, Any]:
        limit = int(query.get("limit", default_limit))
        offset = int(query.get("offset", 0))
        base = {k: v for k, v in query.items() if k not in ("limit", "offset")}

        def href(at: int) -> str:
            return f"{self.base_url}{path}?{urlencode({**base, 'limit': limit, 'offset': at})}"

        page: dict[str, Any] = {
            "href": href(offset),
            "limit": limit,
            "offset": offset,
            "total": len(rows),
            key: rows[offset : offset + limit],
        }
        if offset + limit < len(rows):
            page["next"] = href(offset + limit)
        if offset > 0:
            page["prev"] = href(max(0, offset - limit))
        return page

    # -- fulfillment

    def _get_orders(self, query: dict[str, str], body: dict[str, Any]) -> httpx.Response:
        since = None
        match = re.fullmatch(r"lastmodifieddate:\[([^.\]]+\.\d{3}Z)\.\.\]", query.get("filter", ""))
        if match:
            since = _parse(match.group(1))
        elif query.get("filter"):
            return self._error(400, 30700, "Invalid filter", {})
        rows = sorted(self.orders.values(), key=lambda o: (o["lastModifiedDate"], o["orderId"]))
        if since is not None:
            rows = [o for o in rows if _parse(o["lastModifiedDate"]) >= since]
        return _json(200, self._page(rows, query, "/sell/fulfillment/v1/order", 50, "orders"))

    def _get_order(self, query: dict[str, str], body: dict[str, Any], order_id: str) -> httpx.Response:
        order = self.orders.get(order_id)
        return _json(200, order) if order else self._error(404, 32100, "Order not found", {})

    def _get_fulfillments(self, query: dict[str, str], body: dict[str, Any], order_id: str) -> httpx.Response:
        if order_id not in self.orders:
            return self._error(404, 32100, "Order not found", {})
        rows = self.fulfillments[order_id]
        return _json(200, {"fulfillments": rows, "total": len(rows)})

    def _issue_refund(self, query: dict[str, str], body: dict[str, Any], order_id: str) -> httpx.Response:
        order = self.orders.get(order_id)
        if order is None:
            return self._error(404, 34913, "Can not find the order.", {})
        amount = (body.get("orderLevelRefundAmount") or {}).get("value")
        if not body.get("reasonForRefund") or amount is None:
            return self._error(
                400, 34905, "Either orderLevelRefundAmount or refundItems must be specified.", {}
            )
        return _json(200, self._refund(order, Decimal(amount), f"order:{order_id}", body))

    def _refund(
        self, order: dict[str, Any], amount: Decimal, target: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        refund_id = f"50000{next(self._ids)}"
        total = Decimal(order["pricingSummary"]["total"]["value"])
        currency = order["pricingSummary"]["total"]["currency"]
        order["paymentSummary"]["refunds"].append(
            {
                "refundId": refund_id,
                "refundStatus": "PENDING",
                "amount": _amount(amount, currency),
                "refundDate": _iso(self.now()),
            }
        )
        refunded = sum(Decimal(r["amount"]["value"]) for r in order["paymentSummary"]["refunds"])
        order["orderPaymentStatus"] = "FULLY_REFUNDED" if refunded >= total else "PARTIALLY_REFUNDED"
        order["lastModifiedDate"] = _iso(self.now())
        self.ledger.append(LedgerEntry("refund", target, body, self.now(), refund_id))
        return {"refundId": refund_id, "refundStatus": "PENDING"}

    # -- messages

    def _latest(self, conv: _Conversation) -> dict[str, Any]:
        return max(conv.messages, key=lambda m: m["createdDate"])

    def _get_conversations(self, query: dict[str, str], body: dict[str, Any]) -> httpx.Response:
        if query.get("conversation_type") not in ("FROM_MEMBERS", "FROM_EBAY"):
            return self._error(400, 355001, "The conversation_type is invalid.", {})
        convs = (
            [c for c in self.conversations.values() if c.messages]
            if query["conversation_type"] == "FROM_MEMBERS"
            else []
        )
        if query.get("start_time"):
            start = _parse(query["start_time"])
            convs = [c for c in convs if _parse(self._latest(c)["createdDate"]) >= start]
        convs.sort(key=lambda c: self._latest(c)["createdDate"], reverse=True)
        rows = [{**c.detail, "latestMessage": self._latest(c), "unreadCount": 0} for c in convs]
        return _json(200, self._page(rows, query, "/commerce/message/v1/conversation", 25, "conversations"))

    def _get_conversation(self, query: dict[str, str], body: dict[str, Any], conv_id: str) -> httpx.Response:
        conv = self.conversations.get(conv_id)
        if conv is None:
            return self._error(404, 355007, "The conversation_id is invalid.", {})
        rows = sorted(conv.messages, key=lambda m: m["createdDate"], reverse=True)
        page = self._page(rows, query, f"/commerce/message/v1/conversation/{conv_id}", 25, "messages")
        page.update(
            conversationStatus=conv.detail["conversationStatus"],
            conversationType=conv.detail["conversationType"],
            conversationTitle=conv.detail["conversationTitle"],
        )
        return _json(200, page)

    def _send_message(self, query: dict[str, str], body: dict[str, Any]) -> httpx.Response:
        conv = self.conversations.get(body.get("conversationId") or "")
        text = body.get("messageText") or ""
        if conv is None or not text:
            return self._error(400, 355003, "The conversationId or messageText is invalid.", {})
        buyer = next((m["senderUsername"] for m in conv.messages if m["senderUsername"] != self.seller), "")
        message = {
            "messageId": f"m{next(self._ids)}",
            "senderUsername": self.seller,
            "recipientUsername": buyer,
            "messageBody": text,
            "createdDate": _iso(self.now()),
            "readStatus": False,
        }
        conv.messages.append(message)
        self.ledger.append(
            LedgerEntry("message", conv.detail["conversationId"], body, self.now(), message["messageId"])
        )
        return _json(
            201,
            {
                "messageId": message["messageId"],
                "createdDate": message["createdDate"],
                "messageBody": text,
                "senderUserName": self.seller,
                "recipientUserName": buyer,
                "readStatus": False,
            },
        )

    # -- post-order

    def _search(
        self, rows: list[dict[str, Any]], query: dict[str, str], date_key: str
    ) -> list[dict[str, Any]]:
        start, end = query.get(f"{date_key}_from"), query.get(f"{date_key}_to")
        out = []
        for row in rows:
            created = _parse(
                row["creationDate"]["value"]
                if "creationDate" in row
                else row["creationInfo"]["creationDate"]["value"]
            )
            if (start is None or created >= _parse(start)) and (end is None or created <= _parse(end)):
                out.append(row)
        return out

    def _post_order_page(self, rows: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
        limit, offset = int(query.get("limit", 25)), int(query.get("offset", 0))
        return {
            "members": rows[offset : offset + limit],
            "paginationOutput": {
                "limit": limit,
                "offset": offset,
                "totalEntries": len(rows),
                "totalPages": max(1, -(-len(rows) // limit)),
            },
        }

    def _inquiry_search(self, query: dict[str, str], body: dict[str, Any]) -> httpx.Response:
        rows = self._search(list(self.inquiries.values()), query, "inquiry_creation_date_range")
        summaries = [
            {
                k: v
                for k, v in i.items()
                if k not in ("inquiryDetails", "inquiryHistoryDetails", "creationReason")
            }
            for i in rows
        ]
        page = self._post_order_page(summaries, query)
        page["totalNumberOfInquiries"] = len(rows)
        return _json(200, page)

    def _get_inquiry(self, query: dict[str, str], body: dict[str, Any], inquiry_id: str) -> httpx.Response:
        inquiry = self.inquiries.get(inquiry_id)
        return _json(200, inquiry) if inquiry else self._error(404, 1, "Inquiry not found", {})

    def _inquiry_message(
        self, query: dict[str, str], body: dict[str, Any], inquiry_id: str
    ) -> httpx.Response:
        inquiry = self.inquiries.get(inquiry_id)
        content = (body.get("message") or {}).get("content")
        if inquiry is None or not content:
            return self._error(400, 1, "Invalid inquiry or message", {})
        self._history(inquiry, "SELLER_SEND_MESSAGE", content)
        self.ledger.append(LedgerEntry("message", f"inquiry:{inquiry_id}", body, self.now(), inquiry_id))
        return httpx.Response(200)

    def _inquiry_refund(self, query: dict[str, str], body: dict[str, Any], inquiry_id: str) -> httpx.Response:
        inquiry = self.inquiries.get(inquiry_id)
        if inquiry is None or inquiry["status"] != "OPEN":
            return self._error(400, 1, "The inquiry cannot be refunded", {})
        order = self.orders.get(inquiry["orderId"])
        if order is not None:
            self._refund(order, Decimal(str(inquiry["claimAmount"]["value"])), f"inquiry:{inquiry_id}", body)
        inquiry["status"] = inquiry["inquiryStatusEnum"] = "CLOSED"
        self._history(inquiry, "SELLER_ISSUE_REFUND", (body.get("comments") or {}).get("content", ""))
        return _json(200, {"refundResult": {"refundStatus": "SUCCESS"}})

    def _history(self, inquiry: dict[str, Any], action: str, text: str) -> None:
        inquiry["inquiryHistoryDetails"]["history"].append(
            {"action": action, "actor": "SELLER", "date": {"value": _iso(self.now())}, "description": text}
        )
        inquiry["lastModifiedDate"] = {"value": _iso(self.now())}

    def _return_search(self, query: dict[str, str], body: dict[str, Any]) -> httpx.Response:
        rows = self._search([r["summary"] for r in self.returns.values()], query, "creation_date_range")
        page = self._post_order_page(rows, query)
        page["total"] = len(rows)
        return _json(200, page)

    def _get_return(self, query: dict[str, str], body: dict[str, Any], return_id: str) -> httpx.Response:
        ret = self.returns.get(return_id)
        return _json(200, ret) if ret else self._error(404, 1, "Return not found", {})

    def _return_message(self, query: dict[str, str], body: dict[str, Any], return_id: str) -> httpx.Response:
        ret = self.returns.get(return_id)
        content = (body.get("message") or {}).get("content")
        if ret is None or not content:
            return self._error(400, 1, "Invalid return or message", {})
        ret["detail"]["responseHistory"].append(
            {
                "activity": "SELLER_SEND_MESSAGE",
                "author": "SELLER",
                "creationDate": {"value": _iso(self.now())},
                "notes": content,
            }
        )
        self.ledger.append(LedgerEntry("message", f"return:{return_id}", body, self.now(), return_id))
        return httpx.Response(200)

    _ROUTES: tuple[tuple[str, str, Callable[..., httpx.Response]], ...] = (
        ("GET", r"/sell/fulfillment/v1/order", _get_orders),
        ("GET", r"/sell/fulfillment/v1/order/([^/]+)", _get_order),
        ("GET", r"/sell/fulfillment/v1/order/([^/]+)/shipping_fulfillment", _get_fulfillments),
        ("POST", r"/sell/fulfillment/v1/order/([^/]+)/issue_refund", _issue_refund),
        ("GET", r"/commerce/message/v1/conversation", _get_conversations),
        ("GET", r"/commerce/message/v1/conversation/([^/]+)", _get_conversation),
        ("POST", r"/commerce/message/v1/send_message", _send_message),
        ("GET", r"/post-order/v2/inquiry/search", _inquiry_search),
        ("GET", r"/post-order/v2/inquiry/([^/]+)", _get_inquiry),
        ("POST", r"/post-order/v2/inquiry/([^/]+)/send_message", _inquiry_message),
        ("POST", r"/post-order/v2/inquiry/([^/]+)/issue_refund", _inquiry_refund),
        ("GET", r"/post-order/v2/return/search", _return_search),
        ("GET", r"/post-order/v2/return/([^/]+)", _get_return),
        ("POST", r"/post-order/v2/return/([^/]+)/send_message", _return_message),
    )


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status,
        content=json.dumps(body).encode(),
        headers={"content-type": "application/json", **(headers or {})},
    )
