"""Amazon SP-API connector against a fake Amazon that checks every call with Amazon's own Swagger models.

`SwaggerContract` reads `shared/contracts/amazon/{ordersV0,solicitations}.json` (Swagger 2.0, which
openapi-core does not read) and checks each request the connector sends (path, method, declared and
required query parameters with their types, no body where none is declared) and each answer the
fake gives (a status the operation declares, the body against its schema with `$ref`s resolved by
jsonschema's Draft 4 validator, and no property the schema does not declare). Gaps, documented:
the models declare no auth, so the `x-amz-access-token` header is checked here by hand; the LWA
token endpoint is in no model and is checked against the LWA documentation (form-encoded
refresh_token grant with client id and secret).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import httpx
import jsonschema
import pytest
from sqlalchemy import select

from connectors import connector_class
from connectors.amazon import (
    AMAZON_ERROR_RULES,
    REVIEW_SOLICITATION_BODY,
    AmazonConnector,
    AmazonCredentials,
    OrdersCursor,
    order_from_amazon,
)
from connectors.base import AccountRef, ConnectorError, ErrorKind, RateLimiter, RetryPolicy, classify_error
from worker import models as m
from worker import outbox as ob
from worker.db import session_scope
from worker.lifecycle.sweep import plan_events, sweep
from worker.triage.types import OrderStatus

CONTRACTS_DIR = Path(__file__).resolve().parents[3] / "shared" / "contracts" / "amazon"
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
US = "ATVPDKIKX0DER"
QUOTA_EXCEEDED = {
    "errors": [
        {
            "code": "QuotaExceeded",
            "message": "You exceeded your quota for the requested resource.",
            "details": "",
        }
    ]
}

# ------------------------------------------------------------------------------ the contract


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    template: str
    pattern: re.Pattern[str]
    parameters: tuple[dict[str, Any], ...]
    responses: dict[str, Any]
    definitions: dict[str, Any]


class ContractError(AssertionError):
    """A request or a fake answer that Amazon's model does not allow."""


class SwaggerContract:
    """Checks requests and responses against Swagger 2.0 models."""

    def __init__(self, *files: str) -> None:
        self.operations: list[Operation] = []
        for name in files:
            doc = json.loads((CONTRACTS_DIR / name).read_text())
            assert doc.get("swagger") == "2.0", name
            for template, item in doc["paths"].items():
                shared = tuple(item.get("parameters", ()))
                for method, op in item.items():
                    if method not in {"get", "post", "put", "patch", "delete"}:
                        continue
                    regex = re.compile("^" + re.sub(r"\{[^/}]+\}", "[^/]+", template) + "$")
                    self.operations.append(
                        Operation(
                            operation_id=op["operationId"],
                            method=method.upper(),
                            template=template,
                            pattern=regex,
                            parameters=shared + tuple(op.get("parameters", ())),
                            responses=op["responses"],
                            definitions=doc["definitions"],
                        )
                    )

    def operation(self, request: httpx.Request) -> Operation:
        if request.url.scheme != "https" or not re.fullmatch(
            r"sellingpartnerapi-(na|eu|fe)\.amazon\.com", request.url.host
        ):
            raise ContractError(f"not an SP-API endpoint: {request.url}")
        for op in self.operations:
            if op.method == request.method and op.pattern.match(request.url.path):
                return op
        raise ContractError(f"no operation {request.method} {request.url.path} in the models")

    def check_request(self, request: httpx.Request) -> Operation:
        op = self.operation(request)
        if not request.headers.get("x-amz-access-token"):
            raise ContractError(f"{op.operation_id}: no x-amz-access-token header")
        query = parse_qs(request.url.query.decode(), keep_blank_values=True)
        declared = {p["name"]: p for p in op.parameters if p["in"] == "query"}
        for name in query:
            if name not in declared:
                raise ContractError(f"{op.operation_id}: query parameter {name!r} is not in the model")
        for name, param in declared.items():
            if name not in query:
                if param.get("required"):
                    raise ContractError(f"{op.operation_id}: required query parameter {name!r} missing")
                continue
            values = query[name]
            if len(values) != 1:
                raise ContractError(f"{op.operation_id}: {name!r} repeated (the model says csv)")
            self._check_value(op, param, values[0])
        path_names = re.findall(r"\{([^/}]+)\}", op.template)
        for name, part in zip(path_names, self._path_values(op, request.url.path), strict=True):
            if not unquote(part):
                raise ContractError(f"{op.operation_id}: empty path parameter {name!r}")
        body_params = [p for p in op.parameters if p["in"] == "body"]
        if body_params:
            self.check_schema(op, body_params[0]["schema"], json.loads(request.content), "request body")
        elif request.content:
            raise ContractError(f"{op.operation_id}: sends a body the model does not declare")
        return op

    @staticmethod
    def _path_values(op: Operation, path: str) -> list[str]:
        parts, template = path.split("/"), op.template.split("/")
        return [p for p, t in zip(parts, template, strict=True) if t.startswith("{")]

    @staticmethod
    def _check_value(op: Operation, param: dict[str, Any], raw: str) -> None:
        kind = param.get("type")
        where = f"{op.operation_id}: {param['name']}={raw!r}"
        if kind == "integer":
            if not re.fullmatch(r"-?\d+", raw):
                raise ContractError(f"{where} is not an integer")
        elif kind == "boolean":
            if raw not in ("true", "false"):
                raise ContractError(f"{where} is not a boolean")
        elif kind == "array":
            items = raw.split(",")  # collectionFormat defaults to csv
            if "maxItems" in param and len(items) > param["maxItems"]:
                raise ContractError(f"{where} has more than {param['maxItems']} items")
            if not all(items):
                raise ContractError(f"{where} has an empty item")
        elif kind == "string":
            if not raw:
                raise ContractError(f"{where} is empty")
            if param["name"].endswith(("After", "Before")):
                try:
                    datetime.fromisoformat(raw)
                except ValueError:
                    raise ContractError(f"{where} is not an ISO 8601 date-time") from None

    def check_response(self, op: Operation, status: int, body: Any) -> None:
        declared = op.responses.get(str(status))
        if declared is None:
            raise ContractError(f"{op.operation_id}: status {status} is not declared")
        schema = declared.get("schema")
        if schema is not None:
            self.check_schema(op, schema, body, f"{status} answer")
        elif body not in (None, b"", ""):
            raise ContractError(f"{op.operation_id}: {status} declares no body")

    def check_schema(self, op: Operation, schema: dict[str, Any], instance: Any, what: str) -> None:
        root = {"definitions": op.definitions, "allOf": [schema]}
        errors = sorted(jsonschema.Draft4Validator(root).iter_errors(instance), key=lambda e: list(e.path))
        if errors:
            first = errors[0]
            raise ContractError(
                f"{op.operation_id} {what}: {'/'.join(map(str, first.path))}: {first.message}"
            )
        extra = undeclared(instance, schema, op.definitions)
        if extra:
            raise ContractError(f"{op.operation_id} {what}: properties not in the model: {', '.join(extra)}")


def _resolve(schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = definitions[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def undeclared(
    instance: Any, schema: dict[str, Any], definitions: dict[str, Any], path: str = ""
) -> list[str]:
    """Object properties the schema does not declare (the models allow them; our fakes must not invent)."""
    schema = _resolve(schema, definitions)
    out: list[str] = []
    if isinstance(instance, dict) and "properties" in schema:
        for key, value in instance.items():
            if key in schema["properties"]:
                out += undeclared(value, schema["properties"][key], definitions, f"{path}/{key}")
            elif not schema.get("additionalProperties"):
                out.append(f"{path}/{key}")
    elif isinstance(instance, list) and "items" in schema:
        for i, value in enumerate(instance):
            out += undeclared(value, schema["items"], definitions, f"{path}/{i}")
    return out


@cache
def contract() -> SwaggerContract:
    return SwaggerContract("ordersV0.json", "solicitations.json")


def contract_example(operation_id: str, status: str = "200") -> dict[str, Any]:
    op = next(o for o in contract().operations if o.operation_id == operation_id)
    return copy.deepcopy(next(iter(op.responses[status]["examples"].values())))


# -------------------------------------------------------------------------------- fake Amazon


def amazon_order(order_id: str, status: str = "Shipped", **extra: Any) -> dict[str, Any]:
    """An Orders v0 `Order` with the fields a merchant-fulfilled order carries (checked by the model)."""
    order = {
        "AmazonOrderId": order_id,
        "PurchaseDate": "2026-02-20T10:00:00Z",
        "LastUpdateDate": "2026-02-21T08:30:00Z",
        "OrderStatus": status,
        "FulfillmentChannel": "MFN",
        "OrderTotal": {"CurrencyCode": "USD", "Amount": "31.90"},
        "MarketplaceId": US,
        "ShipServiceLevel": "Std US D2D Dom",
        "ShipmentServiceLevelCategory": "Standard",
        "OrderType": "StandardOrder",
        "EarliestShipDate": "2026-02-21T00:00:00Z",
        "LatestShipDate": "2026-02-23T07:59:59Z",
        "EarliestDeliveryDate": "2026-02-25T08:00:00Z",
        "LatestDeliveryDate": "2026-03-04T07:59:59Z",
        "IsPrime": False,
        "BuyerInfo": {"BuyerEmail": f"{order_id}@marketplace.amazon.com"},
        "ShippingAddress": {
            "City": "Austin",
            "StateOrRegion": "TX",
            "PostalCode": "78701",
            "CountryCode": "US",
        },
    }
    order.update(extra)
    return order


Handler = Callable[[httpx.Request, Operation], httpx.Response]


@dataclass
class FakeAmazon:
    """Serves LWA and the SP-API operations the connector uses; every exchange is checked by the contract."""

    orders_pages: dict[str | None, dict[str, Any]] = field(default_factory=dict)
    offered: set[str] = field(default_factory=set)
    solicited: list[str] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    tokens_issued: int = 0
    lwa_error: dict[str, Any] | None = None
    # operationId -> scripted answers consumed one per call before the normal behaviour.
    script: dict[str, list[Callable[[httpx.Request], httpx.Response]]] = field(default_factory=dict)
    rate_header: str | None = None

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host == "api.amazon.com":
            return self._lwa(request)
        op = contract().check_request(request)
        scripted = self.script.get(op.operation_id)
        if scripted:
            response = scripted.pop(0)(request)
        else:
            response = getattr(self, f"_{op.operation_id}")(request, op)
        body = response.json() if response.content else None
        contract().check_response(op, response.status_code, body)
        if self.rate_header:
            response.headers["x-amzn-RateLimit-Limit"] = self.rate_header
        return response

    def _lwa(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST" and request.url.path == "/auth/o2/token"
        assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        assert form == {
            "grant_type": "refresh_token",
            "refresh_token": "Atzr|refresh",
            "client_id": "amzn1.application-oa2-client.abc",
            "client_secret": "s3cret",
        }
        if self.lwa_error:
            return httpx.Response(400, json=self.lwa_error)
        self.tokens_issued += 1
        return httpx.Response(
            200,
            json={
                "access_token": f"Atza|token-{self.tokens_issued}",
                "refresh_token": "Atzr|refresh",
                "token_type": "bearer",
                "expires_in": 3600,
            },
        )

    def _getOrders(self, request: httpx.Request, op: Operation) -> httpx.Response:  # noqa: N802
        token = request.url.params.get("NextToken")
        return httpx.Response(200, json=self.orders_pages[token])

    def _getSolicitationActionsForOrder(self, request: httpx.Request, op: Operation) -> httpx.Response:  # noqa: N802
        order_id = unquote(request.url.path.rsplit("/", 1)[-1])
        base = f"/solicitations/v1/orders/{order_id}"
        actions = []
        if order_id in self.offered:
            actions.append(
                {
                    "href": f"{base}/solicitations/productReviewAndSellerFeedback?marketplaceIds={US}",
                    "name": "productReviewAndSellerFeedback",
                }
            )
        return httpx.Response(
            200, json={"_links": {"actions": actions, "self": {"href": f"{base}?marketplaceIds={US}"}}}
        )

    def _createProductReviewAndSellerFeedbackSolicitation(  # noqa: N802
        self, request: httpx.Request, op: Operation
    ) -> httpx.Response:
        order_id = unquote(request.url.path.split("/")[4])
        if order_id not in self.offered:
            return httpx.Response(
                400,
                json={
                    "errors": [{"code": "InvalidInput", "message": "Solicitation not allowed", "details": ""}]
                },
            )
        self.offered.discard(order_id)  # Amazon offers it once per order
        self.solicited.append(order_id)
        return httpx.Response(201, json={})

    def calls(self, operation_id: str) -> list[httpx.Request]:
        return [
            r
            for r in self.requests
            if r.url.host != "api.amazon.com" and contract().operation(r).operation_id == operation_id
        ]


class RecordingLimiter(RateLimiter):
    def __init__(self) -> None:
        self.calls: list[tuple[str, float, int]] = []

    def acquire(self, key: str, rate: float, burst: int, cost: float = 1.0) -> float:
        self.calls.append((key, rate, burst))
        return 0.0


class Clock:
    def __init__(self, t: datetime = T0) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


CREDENTIALS = {
    "client_id": "amzn1.application-oa2-client.abc",
    "client_secret": "s3cret",
    "refresh_token": "Atzr|refresh",
    "marketplace_id": US,
}


def connector(
    fake: FakeAmazon,
    *,
    clock: Clock | None = None,
    settings: dict[str, Any] | None = None,
    credentials: dict[str, Any] | None = None,
    limiter: RateLimiter | None = None,
    sleeps: list[float] | None = None,
    refreshed: list[dict[str, Any]] | None = None,
) -> AmazonConnector:
    ref = AccountRef(
        id=7,
        marketplace="amazon",
        name="amz",
        credentials=credentials or dict(CREDENTIALS),
        settings=settings or {},
    )
    return AmazonConnector(
        ref,
        http=httpx.Client(transport=fake.transport()),
        limiter=limiter,
        retry=RetryPolicy(attempts=3, initial=0.01, maximum=0.02),
        now=clock or Clock(),
        sleep=(sleeps.append if sleeps is not None else (lambda _s: None)),
        on_credentials_refreshed=(refreshed.append if refreshed is not None else None),
    )


# ----------------------------------------------------------------------------- the contract


def test_the_contract_checker_refuses_what_amazon_would():
    op = next(o for o in contract().operations if o.operation_id == "getOrders")
    good = httpx.Request(
        "GET",
        "https://sellingpartnerapi-na.amazon.com/orders/v0/orders",
        params={"MarketplaceIds": US, "LastUpdatedAfter": "2026-03-01T00:00:00Z"},
        headers={"x-amz-access-token": "t"},
    )
    assert contract().check_request(good) is op
    for params, problem in [
        ({"LastUpdatedAfter": "2026-03-01T00:00:00Z"}, "required query parameter 'MarketplaceIds'"),
        ({"MarketplaceIds": US, "Since": "x"}, "'Since' is not in the model"),
        ({"MarketplaceIds": US, "MaxResultsPerPage": "ten"}, "is not an integer"),
        ({"MarketplaceIds": US, "LastUpdatedAfter": "yesterday"}, "not an ISO 8601"),
    ]:
        bad = httpx.Request("GET", good.url.copy_with(params=params), headers={"x-amz-access-token": "t"})
        with pytest.raises(ContractError, match=re.escape(problem)):
            contract().check_request(bad)
    with pytest.raises(ContractError, match="x-amz-access-token"):
        contract().check_request(httpx.Request("GET", good.url))
    with pytest.raises(ContractError, match="no operation"):
        contract().check_request(httpx.Request("GET", "https://sellingpartnerapi-na.amazon.com/messages/v0"))
    with pytest.raises(ContractError, match="Orders/0/OrderStatus"):
        contract().check_response(op, 200, {"payload": {"Orders": [amazon_order("1", status="Lost")]}})
    with pytest.raises(ContractError, match="not in the model: /payload/Orders/0/Delivered"):
        contract().check_response(op, 200, {"payload": {"Orders": [amazon_order("1", Delivered=True)]}})
    with pytest.raises(ContractError, match="status 401 is not declared"):
        contract().check_response(op, 401, {})
    # Our fakes, Amazon's own example and the real 429 body all pass.
    contract().check_response(op, 200, {"payload": {"Orders": [amazon_order("1")], "NextToken": "n"}})
    contract().check_response(op, 200, contract_example("getOrders"))
    contract().check_response(op, 429, QUOTA_EXCEEDED)


# ------------------------------------------------------------------------------------- LWA


def test_lwa_token_is_fetched_once_and_refreshed_ahead_of_expiry():
    fake = FakeAmazon(offered={"111-1"})
    clock, refreshed = Clock(), []
    conn = connector(fake, clock=clock, refreshed=refreshed)
    assert conn.review_offered("111-1")
    assert conn.review_offered("111-1")
    assert fake.tokens_issued == 1
    assert all(
        r.headers["x-amz-access-token"] == "Atza|token-1"
        for r in fake.calls("getSolicitationActionsForOrder")
    )
    # 1 h tokens, refreshed 300 s before they expire.
    clock.t = T0 + timedelta(seconds=3600 - 301)
    conn.review_offered("111-1")
    assert fake.tokens_issued == 1
    clock.t = T0 + timedelta(seconds=3600 - 299)
    conn.review_offered("111-1")
    assert fake.tokens_issued == 2
    assert fake.calls("getSolicitationActionsForOrder")[-1].headers["x-amz-access-token"] == "Atza|token-2"
    # The caller gets the full credentials to store encrypted, new token included.
    assert refreshed[-1] == {
        **CREDENTIALS,
        "endpoint": "https://sellingpartnerapi-na.amazon.com",
        "token_url": "https://api.amazon.com/auth/o2/token",
        "access_token": "Atza|token-2",
        "access_token_expires_at": (clock.t + timedelta(seconds=3600)).isoformat(),
    }
    # A stored, still valid token is used without asking LWA.
    stored = {
        **CREDENTIALS,
        "access_token": "Atza|stored",
        "access_token_expires_at": (T0 + timedelta(hours=1)).isoformat(),
    }
    fake2 = FakeAmazon(offered={"1"})
    connector(fake2, credentials=stored).review_offered("1")
    assert fake2.tokens_issued == 0
    assert fake2.calls("getSolicitationActionsForOrder")[0].headers["x-amz-access-token"] == "Atza|stored"


def test_a_revoked_refresh_token_pauses_the_account_without_leaking_secrets():
    fake = FakeAmazon(
        lwa_error={
            "error": "invalid_grant",
            "error_description": "The request has an invalid grant parameter : refresh_token",
        }
    )
    conn = connector(fake)
    with pytest.raises(ConnectorError) as err:
        conn.review_offered("1")
    assert err.value.kind is ErrorKind.ACCOUNT and err.value.code == "invalid_grant"
    for secret in ("s3cret", "Atzr|refresh"):
        assert secret not in str(err.value) and secret not in repr(conn.creds)


def test_a_403_forces_one_token_refresh_then_pauses_the_account():
    unauthorized = {
        "errors": [
            {
                "code": "Unauthorized",
                "message": "Access to requested resource is denied.",
                "details": "The access token you provided is revoked, malformed or invalid.",
            }
        ]
    }
    fake = FakeAmazon(offered={"1"})
    fake.script["getSolicitationActionsForOrder"] = [lambda r: httpx.Response(403, json=unauthorized)]
    conn = connector(fake)
    assert conn.review_offered("1")  # the refreshed token works
    assert fake.tokens_issued == 2
    fake.script["getSolicitationActionsForOrder"] = [lambda r: httpx.Response(403, json=unauthorized)] * 2
    with pytest.raises(ConnectorError) as err:
        conn.review_offered("1")
    assert (
        err.value.kind is ErrorKind.ACCOUNT and err.value.status == 403 and err.value.code == "Unauthorized"
    )
    assert "revoked, malformed or invalid" in str(err.value)


# ---------------------------------------------------------------------------------- orders


def test_get_orders_pages_with_next_token_and_maps_orders():
    example = contract_example("getOrders")  # Amazon's own example page: a Pending order, NextToken set
    token = example["payload"]["NextToken"]
    fake = FakeAmazon(
        orders_pages={
            None: example,
            token: {
                "payload": {
                    "Orders": [
                        amazon_order("113-0000001-0000001"),
                        amazon_order("113-0000002-0000002", "Canceled"),
                        amazon_order(
                            "113-0000003-0000003",
                            "Unshipped",
                            OrderTotal={"CurrencyCode": "USD", "Amount": "12.00"},
                        ),
                    ],
                    "LastUpdatedBefore": "2026-03-02T11:58:00Z",
                }
            },
        }
    )
    limiter = RecordingLimiter()
    conn = connector(fake, limiter=limiter, settings={"overlap_seconds": 600, "lifecycle": {"daily_cap": 3}})
    first = conn.fetch("orders", None)
    assert first.more and [o.external_id for o in first.rows] == ["902-3159896-1390916"]
    pending = first.rows[0]
    assert (pending.status, pending.total, pending.currency, pending.paid_at) == (
        OrderStatus.unpaid,
        Decimal("0.00"),
        "USD",
        None,
    )
    assert (
        pending.buyer_id == "user@example.com"
        and pending.buyer_name == "John Doe"
        and pending.buyer_country == "US"
    )
    assert pending.handling_days == 5  # LatestShipDate 5 days after purchase
    second = conn.fetch("orders", first.cursor)
    assert not second.more
    shipped, cancelled, unshipped = second.rows
    assert shipped.status is OrderStatus.shipped and shipped.total == Decimal("31.90")
    assert shipped.paid_at == datetime(2026, 2, 20, 10, 0, tzinfo=UTC)
    assert shipped.promised_delivery_days == 12  # 20 Feb 10:00 -> 4 Mar 07:59 (2026 is not a leap year)
    assert shipped.shipping_method == "Std US D2D Dom" and shipped.items == ()
    assert cancelled.status is OrderStatus.cancelled and cancelled.cancelled_at == cancelled.modified_at
    assert unshipped.status is OrderStatus.paid and unshipped.total == Decimal("12.00")
    # Both pages asked the same window; the second with the token. The next pass overlaps 10 minutes.
    calls = fake.calls("getOrders")
    lookback = (T0 - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert [c.url.params.get("LastUpdatedAfter") for c in calls] == [lookback, lookback]
    assert [c.url.params.get("NextToken") for c in calls] == [None, token]
    assert calls[0].url.params["MarketplaceIds"] == US and calls[0].url.params["MaxResultsPerPage"] == "100"
    nxt = OrdersCursor.load(second.cursor)
    assert nxt.since == T0 - timedelta(minutes=10) and nxt.next_token is None
    assert limiter.calls[-1] == ("amazon:7:getOrders", 0.0167, 20)


def test_a_new_pass_starts_from_the_saved_cursor():
    fake = FakeAmazon(orders_pages={None: {"payload": {"Orders": []}}})
    clock = Clock(T0 + timedelta(hours=2))
    conn = connector(fake, clock=clock)
    saved = OrdersCursor(since=T0 - timedelta(minutes=10), started=T0 - timedelta(minutes=10)).dump()
    batch = conn.fetch("orders", saved)
    assert batch.rows == [] and not batch.more
    assert fake.calls("getOrders")[0].url.params["LastUpdatedAfter"] == "2026-03-02T11:50:00Z"
    assert OrdersCursor.load(batch.cursor).since == clock.t - timedelta(minutes=10)
    with pytest.raises(ConnectorError, match="cursor is not valid") as err:
        conn.fetch("orders", "not json")
    assert err.value.kind is ErrorKind.FATAL
    with pytest.raises(ValueError, match="amazon has no stream 'messages'"):
        conn.fetch("messages", None)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"OrderStatus": "Lost"}, "OrderStatus 'Lost'"),
        ({"PurchaseDate": "yesterday"}, "PurchaseDate"),
        ({"LatestDeliveryDate": "soon"}, "LatestDeliveryDate"),
        ({"OrderTotal": {"CurrencyCode": "USD", "Amount": "lots"}}, "OrderTotal.Amount"),
        ({"AmazonOrderId": ""}, "lacks AmazonOrderId"),
    ],
)
def test_bad_order_fields_are_named(change, named):
    with pytest.raises(ConnectorError, match=re.escape(named)) as err:
        order_from_amazon(amazon_order("1", **change), US)
    assert err.value.kind is ErrorKind.FATAL


def test_missing_total_falls_back_to_the_marketplace_currency():
    order = amazon_order("1", "Pending", MarketplaceId="A1PA6795UKMFR9")
    del order["OrderTotal"]
    assert order_from_amazon(order, "A1PA6795UKMFR9").currency == "EUR"
    order["MarketplaceId"] = "UNKNOWN"
    with pytest.raises(ConnectorError, match="OrderTotal is missing"):
        order_from_amazon(order, "UNKNOWN")


# ---------------------------------------------------------------------------- solicitations


def test_the_review_is_requested_only_when_offered_and_only_once():
    fake = FakeAmazon(offered={"111-1"})
    limiter = RecordingLimiter()
    conn = connector(fake, limiter=limiter)
    result = conn.send_message("111-1", REVIEW_SOLICITATION_BODY, order_external_id="111-1")
    assert result.marketplace_message_id == "solicitation:111-1" and fake.solicited == ["111-1"]
    create = fake.calls("createProductReviewAndSellerFeedbackSolicitation")
    assert len(create) == 1 and create[0].url.params["marketplaceIds"] == US and create[0].content == b""
    assert ("amazon:7:createProductReviewAndSellerFeedbackSolicitation", 1.0, 5) in limiter.calls
    assert ("amazon:7:getSolicitationActionsForOrder", 1.0, 5) in limiter.calls
    # Amazon no longer offers it: a second attempt is refused before any create call.
    with pytest.raises(ConnectorError, match="not offered") as err:
        conn.request_review("111-1")
    assert err.value.kind is ErrorKind.FATAL and err.value.code == "SolicitationNotOffered"
    assert len(fake.calls("createProductReviewAndSellerFeedbackSolicitation")) == 1


def test_anything_but_the_solicitation_is_refused_without_a_call():
    fake = FakeAmazon(offered={"1"})
    conn = connector(fake)
    with pytest.raises(ConnectorError, match="amazon cannot message buyers") as err:
        conn.send_message("1", "Hello, your parcel shipped!", order_external_id="1")
    assert err.value.kind is ErrorKind.FATAL and fake.requests == []
    assert conn.find_sent_message("1", "Hello", T0) is None and fake.requests == []


def test_find_sent_message_reads_the_offer():
    fake = FakeAmazon(offered={"1"})
    conn = connector(fake)
    assert conn.find_sent_message("1", REVIEW_SOLICITATION_BODY, T0) is None
    assert conn.find_sent_message("2", REVIEW_SOLICITATION_BODY, T0) == "solicitation:2"


# ------------------------------------------------------------------------- errors, throttling


def test_quota_exceeded_waits_by_the_rate_limit_header_and_retries_reads():
    fake = FakeAmazon(offered={"1"})
    quota = lambda r: httpx.Response(429, json=QUOTA_EXCEEDED, headers={"x-amzn-RateLimit-Limit": "0.5"})  # noqa: E731
    fake.script["getSolicitationActionsForOrder"] = [quota]
    sleeps: list[float] = []
    conn = connector(fake, sleeps=sleeps)
    assert conn.review_offered("1")
    assert sleeps and sleeps[0] >= 2.0  # one request per 2 s: wait at least that
    assert conn.observed_rates["getSolicitationActionsForOrder"] == 0.5


def test_the_rate_amazon_reports_drives_the_limiter():
    fake = FakeAmazon(offered={"1"}, rate_header="2.0")
    limiter = RecordingLimiter()
    conn = connector(fake, limiter=limiter)
    conn.review_offered("1")
    conn.review_offered("1")
    ops = [c for c in limiter.calls if c[0].endswith("getSolicitationActionsForOrder")]
    assert ops == [
        ("amazon:7:getSolicitationActionsForOrder", 1.0, 5),
        ("amazon:7:getSolicitationActionsForOrder", 2.0, 5),
    ]


def test_a_throttled_solicitation_is_not_retried_here_and_was_not_sent():
    fake = FakeAmazon(offered={"1"})
    fake.script["createProductReviewAndSellerFeedbackSolicitation"] = [
        lambda r: httpx.Response(429, json=QUOTA_EXCEEDED, headers={"x-amzn-RateLimit-Limit": "1"})
    ]
    with pytest.raises(ConnectorError) as err:
        connector(fake).request_review("1")
    assert err.value.kind is ErrorKind.RETRYABLE and err.value.code == "QuotaExceeded"
    assert not err.value.maybe_sent and err.value.retry_after == 1.0
    assert len(fake.calls("createProductReviewAndSellerFeedbackSolicitation")) == 1


@pytest.mark.parametrize(
    ("answer", "kind", "maybe_sent"),
    [
        (
            lambda r: httpx.Response(
                503, json={"errors": [{"code": "ServiceUnavailable", "message": "down"}]}
            ),
            ErrorKind.RETRYABLE,
            True,
        ),
        (
            lambda r: httpx.Response(400, json={"errors": [{"code": "InvalidInput", "message": "bad id"}]}),
            ErrorKind.FATAL,
            False,
        ),
    ],
)
def test_solicitation_failures_are_classified(answer, kind, maybe_sent):
    fake = FakeAmazon(offered={"1"})
    fake.script["createProductReviewAndSellerFeedbackSolicitation"] = [answer]
    with pytest.raises(ConnectorError) as err:
        connector(fake).request_review("1")
    assert (err.value.kind, err.value.maybe_sent) == (kind, maybe_sent)


def test_a_timeout_after_sending_may_have_sent_a_connect_failure_did_not():
    for exc, maybe in ((httpx.ReadTimeout("slow"), True), (httpx.ConnectError("refused"), False)):
        fake = FakeAmazon(offered={"1"})

        def boom(request, exc=exc):
            raise exc

        fake.script["createProductReviewAndSellerFeedbackSolicitation"] = [boom]
        with pytest.raises(ConnectorError) as err:
            connector(fake).request_review("1")
        assert err.value.kind is ErrorKind.RETRYABLE and err.value.maybe_sent is maybe


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (429, "QuotaExceeded", ErrorKind.RETRYABLE),
        (400, "QuotaExceeded", ErrorKind.RETRYABLE),
        (403, "Unauthorized", ErrorKind.ACCOUNT),
        (400, "invalid_grant", ErrorKind.ACCOUNT),
        (401, "invalid_client", ErrorKind.ACCOUNT),
        (500, "InternalFailure", ErrorKind.RETRYABLE),
        (404, "NotFound", ErrorKind.FATAL),
        (400, "InvalidInput", ErrorKind.FATAL),
        (413, None, ErrorKind.FATAL),
    ],
)
def test_error_table(status, code, kind):
    assert classify_error(AMAZON_ERROR_RULES, status=status, code=code, message="") is kind


# ------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"client_secret": None}, "'client_secret' is missing"),
        ({"refresh_token": 5}, "'refresh_token' must be a string"),
        ({"marketplace_id": "XX"}, "'endpoint' is missing"),
        ({"endpoint": "ftp://x"}, "'endpoint' must be an http(s) URL"),
        ({"access_token_expires_at": "tomorrow"}, "'access_token_expires_at' is not an ISO 8601"),
    ],
)
def test_bad_credentials_name_the_field(change, named):
    data = {**CREDENTIALS, **change}
    with pytest.raises(ConnectorError, match=re.escape(named)) as err:
        AmazonCredentials.from_dict({k: v for k, v in data.items() if v is not None})
    assert err.value.kind is ErrorKind.ACCOUNT


def test_the_marketplace_picks_the_regional_endpoint():
    assert AmazonCredentials.from_dict({**CREDENTIALS, "marketplace_id": "A1PA6795UKMFR9"}).endpoint == (
        "https://sellingpartnerapi-eu.amazon.com"
    )
    assert AmazonCredentials.from_dict({**CREDENTIALS, "marketplace_id": "A1VC38T7YXB528"}).endpoint == (
        "https://sellingpartnerapi-fe.amazon.com"
    )


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"orders_page_size": 500}, "orders_page_size"),
        ({"rate_limits": {"getOrders": {"rate": 0, "burst": 1}}}, "rate_limits.getOrders.rate"),
        ({"rate_limits": {"sendMessage": {"rate": 1, "burst": 1}}}, "unknown operation(s) sendMessage"),
    ],
)
def test_bad_settings_name_the_key(settings, named):
    with pytest.raises(ConnectorError, match=re.escape(named)) as err:
        connector(FakeAmazon(), settings=settings)
    assert err.value.kind is ErrorKind.ACCOUNT


def test_registry_and_capabilities():
    assert connector_class("amazon") is AmazonConnector
    caps = AmazonConnector.capabilities
    assert caps.review_solicitation and not caps.send_message
    assert not any(
        caps.allows(a) for a in ("refund_full", "refund_partial", "resend", "coupon", "extend_protection")
    )
    assert AmazonConnector.streams == ("orders",)


def test_check_credentials_reads_one_order():
    fake = FakeAmazon(orders_pages={None: {"payload": {"Orders": []}}})
    connector(fake).check_credentials()
    call = fake.calls("getOrders")[0]
    assert call.url.params["MaxResultsPerPage"] == "1"


# --------------------------------------------------------------------- through the outbox


def test_a_feedback_request_goes_from_the_sweep_through_the_outbox_once(engine, settings):
    now = T0
    with session_scope(engine) as s:
        acc = m.Account(
            marketplace="amazon", name="amz", settings_json={"lifecycle": {"quiet_hours": {"enabled": False}}}
        )
        s.add(acc)
        s.flush()
        norm = order_from_amazon(amazon_order("113-5", PurchaseDate="2026-02-10T10:00:00Z"), US)
        order = m.Order(
            account_id=acc.id,
            external_id=norm.external_id,
            status=norm.status.value,
            total=norm.total,
            currency=norm.currency,
            buyer_id=norm.buyer_id,
            buyer_country=norm.buyer_country,
            paid_at=norm.paid_at,
            promised_delivery_days=norm.promised_delivery_days,
            created_at=now,
            updated_at=now,
        )
        s.add(order)
        s.flush()
        assert [k.value for k in plan_events(s, order, now)] == ["feedback_request"]
    # Promised by 4 March (22 days after purchase); requested 7 days later.
    due = datetime(2026, 3, 4, 10, 0, tzinfo=UTC) + timedelta(days=7)
    assert sweep(engine, due - timedelta(hours=1)).selected == 0
    assert sweep(engine, due).enqueued == 1
    with session_scope(engine) as s:
        row = s.scalars(select(m.Outbox)).one()
        assert (row.body, row.conversation_id) == (REVIEW_SOLICITATION_BODY, None)
        outbox_id = row.id

    fake = FakeAmazon(offered={"113-5"})

    def made_but_answer_lost(request: httpx.Request) -> httpx.Response:
        fake.offered.discard("113-5")
        fake.solicited.append("113-5")
        raise httpx.ReadTimeout("lost the answer", request=request)

    fake.script["createProductReviewAndSellerFeedbackSolicitation"] = [made_but_answer_lost]
    conn = connector(fake, clock=Clock(due))
    assert ob.deliver(outbox_id, lambda _a: conn, engine=engine, clock=lambda: due) == "uncertain"
    later = due + timedelta(minutes=5)
    # Reconciling asks Amazon: no longer offered, so it went out; nothing is sent twice.
    assert ob.reconcile(outbox_id, lambda _a: conn, engine=engine, clock=lambda: later) == "reconciled-sent"
    assert fake.solicited == ["113-5"]
    assert len(fake.calls("createProductReviewAndSellerFeedbackSolicitation")) == 1
    with session_scope(engine) as s:
        row = s.get(m.Outbox, outbox_id)
        event = s.scalars(select(m.LifecycleEvent)).one()
        assert (row.state, row.marketplace_message_id, event.state) == ("sent", "solicitation:113-5", "sent")
