"""AliExpress IOP connector: signing, envelopes and the error table, streams, sends and actions.

Recorded-shape fakes (httpx.MockTransport) pin the wire details; the real sandbox on an
ephemeral port drives the connector end to end.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import httpx
import pytest

from connectors import connector_class
from connectors.aliexpress import (
    ISSUE_DETAIL,
    MSG_ADD,
    MSG_DETAILS,
    MSG_RELATIONS,
    ORDER_DETAIL,
    ORDER_LIST,
    AliExpressConnector,
    SandboxConnector,
    WindowCursor,
    map_order_status,
    normalise_shipping_method,
    sign,
)
from connectors.base import AccountRef, ActionRequest, ConnectorError, ErrorKind, RetryPolicy
from connectors.sandbox import SandboxServer
from worker.triage.types import OrderStatus

PACIFIC = ZoneInfo("America/Los_Angeles")
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NO_RETRY = RetryPolicy(attempts=1)


# ------------------------------------------------------------------------------- fakes


class FakeIop:
    """A MockTransport gateway: per-method handlers returning (status, body) or raising."""

    def __init__(self) -> None:
        self.handlers: dict[str, Callable[[dict[str, str]], Any]] = {}
        self.calls: list[dict[str, str]] = []

    def on(self, method: str, handler: Callable[[dict[str, str]], Any]) -> None:
        self.handlers[method] = handler

    def methods(self) -> list[str]:
        return [c.get("method", c["_path"]) for c in self.calls]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        params = dict(parse_qsl(request.content.decode()))
        params["_path"] = request.url.path
        self.calls.append(params)
        key = params.get("method") or request.url.path
        answer = self.handlers[key](params)
        if isinstance(answer, httpx.Response):
            return answer
        status, body = answer if isinstance(answer, tuple) else (200, answer)
        if isinstance(body, (dict, list)):
            return httpx.Response(status, json=body)
        return httpx.Response(status, text=str(body))


def ok(method: str, result: dict[str, Any]) -> dict[str, Any]:
    return {method.replace(".", "_") + "_response": {"result": result, "request_id": "r1"}}


def account(**credentials: Any) -> AccountRef:
    creds = {
        "app_key": "12345",
        "app_secret": "S3CRET-X",
        "access_token": "AT-7f3a",
        "seller_login_id": "cnseller",
    }
    creds.update(credentials)
    return AccountRef(id=7, marketplace="aliexpress", name="shop", credentials=creds, settings={})


def connector(
    fake: FakeIop, *, settings: dict[str, Any] | None = None, retry: RetryPolicy = NO_RETRY, **creds: Any
):
    ref = account(**creds)
    ref = AccountRef(ref.id, ref.marketplace, ref.name, ref.credentials, settings or {})
    sleeps: list[float] = []
    conn = AliExpressConnector(
        ref,
        http=httpx.Client(transport=httpx.MockTransport(fake)),
        retry=retry,
        now=lambda: NOW,
        sleep=sleeps.append,
    )
    return conn, sleeps


def pacific(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=PACIFIC).astimezone(UTC)


# ----------------------------------------------------------------------------- signing


def test_sign_known_answer_business_call():
    params = {
        "app_key": "12345",
        "method": "aliexpress.trade.seller.orderlist.get",
        "session": "tok",
        "sign_method": "sha256",
        "timestamp": "1700000000000",
    }
    # openssl dgst -sha256 -hmac secret over "app_key12345methodaliexpress...timestamp1700000000000"
    expected = "1888F0522394D0C9B9D6A8C560E38CF4C348ACFC2DF616CD331AA3E854771212"
    assert sign("secret", params["method"], params) == expected
    assert sign("secret", params["method"], {**params, "sign": "ignored"}) == expected


def test_sign_known_answer_system_call_prefixes_the_api_path():
    params = {
        "app_key": "12345",
        "refresh_token": "rt",
        "sign_method": "sha256",
        "timestamp": "1700000000000",
    }
    expected = "F9FDF4AE06D951752A81ECD9980BB3915DCF5B4D5C94251AA982B5CFA7927597"
    assert sign("secret", "/auth/token/refresh", params) == expected


def test_requests_are_signed_and_carry_the_system_parameters():
    fake = FakeIop()
    fake.on(ORDER_LIST, lambda p: ok(ORDER_LIST, {"target_list": {}, "total_count": 0, "success": True}))
    conn, _ = connector(fake)
    conn.check_credentials()
    sent = fake.calls[0]
    assert sent["_path"] == "/sync"
    assert sent["app_key"] == "12345" and sent["session"] == "AT-7f3a" and sent["sign_method"] == "sha256"
    params = {k: v for k, v in sent.items() if k not in ("_path",)}
    assert sent["sign"] == sign("S3CRET-X", ORDER_LIST, params)
    assert json.loads(sent["param_aeop_order_query"])["page_size"] == 1


def test_missing_credential_is_named():
    with pytest.raises(ValueError, match="'app_secret'"):
        AliExpressConnector(account(app_secret=""))


def test_bad_setting_is_named():
    ref = AccountRef(1, "aliexpress", "shop", account().credentials, {"page_size": 500})
    with pytest.raises(ValueError, match="page_size"):
        AliExpressConnector(ref)


def test_registry_resolves_both_dialects():
    assert connector_class("aliexpress") is AliExpressConnector
    assert connector_class("sandbox") is SandboxConnector


# ------------------------------------------------------------------------ error table


def iop_error(category: str, code: str, message: str, status: int = 200):
    return lambda p: (status, {"type": category, "code": code, "message": message, "request_id": "r"})


def legacy_error(code: int, msg: str, sub_code: str = "", sub_msg: str = ""):
    body = {"error_response": {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg}}
    return lambda p: (200, body)


@pytest.mark.parametrize(
    ("handler", "kind", "retry_after"),
    [
        (
            iop_error("ISP", "ApiCallLimit", "App Call Limited: This ban will last for 7 more seconds"),
            ErrorKind.RETRYABLE,
            7.0,
        ),
        (
            legacy_error(
                7,
                "App Call Limited",
                "accesscontrol.limited-by-app-access-count",
                "This ban will last for 12 more seconds",
            ),
            ErrorKind.RETRYABLE,
            12.0,
        ),
        (
            iop_error("ISV", "IllegalAccessToken", "The specified access token is invalid or expired"),
            ErrorKind.ACCOUNT,
            None,
        ),
        (legacy_error(27, "Invalid session"), ErrorKind.ACCOUNT, None),
        (
            iop_error("ISV", "SomethingElse", "The authorization has been revoked by the seller"),
            ErrorKind.ACCOUNT,
            None,
        ),
        (
            iop_error("ISV", "IncompleteSignature", "The request signature does not conform"),
            ErrorKind.ACCOUNT,
            None,
        ),
        (iop_error("ISP", "isp.remote-service-error", "backend down"), ErrorKind.RETRYABLE, None),
        (iop_error("SYSTEM", "ServiceUnavailable", "busy", 500), ErrorKind.RETRYABLE, None),
        (
            legacy_error(15, "Remote service error", "isp.top-remote-connection-timeout"),
            ErrorKind.RETRYABLE,
            None,
        ),
        (iop_error("ISV", "MissingParameter", "param_aeop_order_query is missing"), ErrorKind.FATAL, None),
        (
            legacy_error(15, "Remote service error", "isv.invalid-parameter", "bad date"),
            ErrorKind.FATAL,
            None,
        ),
        (lambda p: httpx.Response(503, text="<html>bad gateway</html>"), ErrorKind.RETRYABLE, None),
        (lambda p: httpx.Response(401, text="no"), ErrorKind.ACCOUNT, None),
        (lambda p: httpx.Response(200, text="not json"), ErrorKind.RETRYABLE, None),
        (
            lambda p: ok(ORDER_LIST, {"success": False, "error_code": "x", "error_message": "bad window"}),
            ErrorKind.FATAL,
            None,
        ),
    ],
)
def test_error_table_rows(handler, kind, retry_after):
    fake = FakeIop()
    fake.on(ORDER_LIST, handler)
    conn, _ = connector(fake)
    with pytest.raises(ConnectorError) as info:
        conn.check_credentials()
    assert info.value.kind is kind
    assert info.value.retry_after == retry_after
    assert "S3CRET-X" not in str(info.value) and "AT-7f3a" not in str(info.value)


def test_ban_seconds_are_honoured_by_the_retry():
    fake = FakeIop()
    answers = [
        (200, {"type": "ISP", "code": "ApiCallLimit", "message": "This ban will last for 9 more seconds"}),
        ok(ORDER_LIST, {"target_list": {}, "total_count": 0, "success": True}),
    ]
    fake.on(ORDER_LIST, lambda p: answers.pop(0))
    conn, sleeps = connector(fake, retry=RetryPolicy(attempts=3, initial=0.1))
    conn.check_credentials()
    assert sleeps == [9.0]
    assert fake.methods() == [ORDER_LIST, ORDER_LIST]


# ------------------------------------------------------------------------------ orders


def order_row(n: int, modified: datetime, status: str = "WAIT_BUYER_ACCEPT_GOODS") -> dict[str, Any]:
    return {
        "order_id": 8000 + n,
        "order_status": status,
        "gmt_create": "2026-01-01 10:00:00",
        "gmt_update": modified.astimezone(PACIFIC).strftime("%Y-%m-%d %H:%M:%S"),
        "frozen_status": "NO_FROZEN",
        "issue_status": "NO_ISSUE",
        "buyer_login_id": f"buyer{n}",
        "buyer_signer_fullname": "Ana Silva",
        "pay_amount": {"amount": "25.00", "currency_code": "USD"},
        "product_list": {
            "order_product_dto": [
                {
                    "product_name": "Summer dress",
                    "product_count": 1,
                    "product_unit_price": {"amount": "25.00", "currency_code": "USD"},
                    "sku_code": "DR-RED-M",
                    "freight_commit_day": "60",
                    "logistics_service_name": "CPAM",
                }
            ]
        },
        "gmt_send_goods_time": "2026-01-03 10:00:00",
    }


class OrderServer:
    """Orders modified in a window, newest first, paged; the row set can change between pages."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.queries: list[dict[str, Any]] = []
        self.fail_pages: set[int] = set()

    def __call__(self, params: dict[str, str]):
        query = json.loads(params["param_aeop_order_query"])
        self.queries.append(query)
        page, size = query["current_page"], query["page_size"]
        if page in self.fail_pages:
            self.fail_pages.discard(page)
            return 500, {"type": "SYSTEM", "code": "ServiceUnavailable", "message": "busy"}
        start, end = pacific(query["modified_date_start"]), pacific(query["modified_date_end"])
        rows = [r for r in self.rows if start <= pacific(r["gmt_update"]) <= end]
        chunk = rows[(page - 1) * size : page * size]
        return ok(
            ORDER_LIST,
            {"target_list": {"aeop_order_item_dto": chunk}, "total_count": len(rows), "success": True},
        )


def order_fake(rows: list[dict[str, Any]]) -> tuple[FakeIop, OrderServer]:
    fake = FakeIop()
    server = OrderServer(rows)
    fake.on(ORDER_LIST, server)
    fake.on(ORDER_DETAIL, lambda p: ok(ORDER_DETAIL, {"buyer_info": {"country": "br"}}))
    return fake, server


def test_orders_paginate_to_the_end_across_calls_then_overlap_the_next_window():
    rows = [order_row(n, NOW - timedelta(hours=n)) for n in range(120)]
    fake, server = order_fake(rows)
    conn, _ = connector(fake, settings={"page_size": 50, "max_pages_per_call": 2, "overlap_minutes": 10})
    first = conn.fetch("orders", None)
    assert len(first.rows) == 100 and first.more
    second = conn.fetch("orders", first.cursor)
    assert len(second.rows) == 20 and not second.more
    seen = {o.external_id for o in first.rows + second.rows}
    assert len(seen) == 120
    # The finished window's end becomes the next window's start, minus the overlap.
    assert (
        WindowCursor.load(second.cursor, NOW).since == NOW
        and WindowCursor.load(second.cursor, NOW).until is None
    )
    conn.fetch("orders", second.cursor)
    assert pacific(server.queries[-1]["modified_date_start"]) == NOW - timedelta(minutes=10)


def test_orders_normalised_from_list_and_detail():
    fake, _ = order_fake([order_row(1, NOW - timedelta(hours=1))])
    fake.on(
        ORDER_DETAIL,
        lambda p: ok(
            ORDER_DETAIL,
            {
                "buyer_info": {"country": "br", "login_id": "buyer1"},
                "logistic_info_list": {
                    "aeop_order_logistic_info": [
                        {
                            "logistics_no": "RB123CN",
                            "logistics_service_name": "CPAM",
                            "gmt_send": "2026-01-03 10:00:00",
                        }
                    ]
                },
            },
        ),
    )
    conn, _ = connector(fake)
    (order,) = conn.fetch("orders", None).rows
    assert order.external_id == "8001" and order.status is OrderStatus.shipped
    assert order.total == Decimal("25.00") and order.currency == "USD"
    assert order.buyer_country == "BR" and order.tracking_number == "RB123CN"
    assert order.shipping_method == "china_post_small_packet" and order.promised_delivery_days == 60
    assert order.protection_open is True
    assert order.shipped_at == pacific("2026-01-03 10:00:00")
    assert order.items[0].sku == "DR-RED-M"


def test_duplicated_rows_within_a_batch_are_deduped():
    rows = [order_row(n, NOW - timedelta(hours=n)) for n in range(30)]
    fake, server = order_fake(rows)
    plain = server.__call__

    def with_repeats(params):  # each page also repeats the previous page's last rows
        answer = plain(params)
        query = json.loads(params["param_aeop_order_query"])
        if query["current_page"] > 1:
            result = answer[ORDER_LIST.replace(".", "_") + "_response"]["result"]
            result["target_list"]["aeop_order_item_dto"][:0] = rows[
                (query["current_page"] - 1) * 10 - 2 : (query["current_page"] - 1) * 10
            ]
        return answer

    fake.on(ORDER_LIST, with_repeats)
    conn, _ = connector(fake, settings={"page_size": 10})
    batch = conn.fetch("orders", None)
    ids = [o.external_id for o in batch.rows]
    assert len(ids) == len(set(ids)) == 30


def test_a_failing_page_raises_and_the_same_cursor_resumes_without_gap():
    rows = [order_row(n, NOW - timedelta(hours=n)) for n in range(25)]
    fake, server = order_fake(rows)
    conn, _ = connector(fake, settings={"page_size": 10, "max_pages_per_call": 1})
    first = conn.fetch("orders", None)
    assert first.more and WindowCursor.load(first.cursor, NOW).page == 2
    server.fail_pages = {2}
    with pytest.raises(ConnectorError) as info:
        conn.fetch("orders", first.cursor)
    assert info.value.kind is ErrorKind.RETRYABLE
    second = conn.fetch("orders", first.cursor)
    third = conn.fetch("orders", second.cursor)
    got = {o.external_id for o in first.rows + second.rows + third.rows}
    assert got == {str(8000 + n) for n in range(25)} and not third.more


def test_rows_leaving_the_window_make_the_reader_step_back():
    rows = [order_row(n, NOW - timedelta(hours=n)) for n in range(30)]
    fake, server = order_fake(rows)
    plain = server.__call__

    def shrinking(params):
        answer = plain(params)
        if len(server.queries) == 1:
            # After page 1 was served, three page-1 orders were modified again (after `until`):
            # every later row moves up three places.
            for row in rows[:3]:
                row["gmt_update"] = (
                    (NOW + timedelta(hours=1)).astimezone(PACIFIC).strftime("%Y-%m-%d %H:%M:%S")
                )
        return answer

    fake.on(ORDER_LIST, shrinking)
    conn, _ = connector(fake, settings={"page_size": 10})
    batch = conn.fetch("orders", None)
    assert {o.external_id for o in batch.rows} == {str(8000 + n) for n in range(30)}


def test_an_empty_page_before_the_reported_end_is_retried_not_skipped():
    fake = FakeIop()
    fake.on(ORDER_LIST, lambda p: ok(ORDER_LIST, {"target_list": {}, "total_count": 40, "success": True}))
    conn, _ = connector(fake)
    with pytest.raises(ConnectorError) as info:
        conn.fetch("orders", None)
    assert info.value.kind is ErrorKind.RETRYABLE


@pytest.mark.parametrize(
    "cursor",
    [
        "not json",
        "[]",
        '{"page": 2}',
        '{"since": "yesterday"}',
        '{"since": "2026-01-01T00:00:00+00:00", "page": 0}',
    ],
)
def test_malformed_cursor_names_the_problem(cursor):
    conn, _ = connector(FakeIop())
    with pytest.raises(ValueError, match="cursor"):
        conn.fetch("orders", cursor)


def test_unknown_stream_is_named():
    conn, _ = connector(FakeIop())
    with pytest.raises(ValueError, match="'tracking'"):
        conn.fetch("tracking", None)


# ----------------------------------------------------------------------- status tables


@pytest.mark.parametrize(
    ("status", "end_reason", "expected"),
    [
        ("PLACE_ORDER_SUCCESS", None, OrderStatus.unpaid),
        ("WAIT_BUYER_PAY", None, OrderStatus.unpaid),
        ("RISK_CONTROL", None, OrderStatus.paid),
        ("WAIT_SELLER_SEND_GOODS", None, OrderStatus.paid),
        ("SELLER_PART_SEND_GOODS", None, OrderStatus.shipped),
        ("WAIT_BUYER_ACCEPT_GOODS", None, OrderStatus.shipped),
        ("IN_ISSUE", None, OrderStatus.shipped),
        ("IN_FROZEN", None, OrderStatus.shipped),
        ("FINISH", None, OrderStatus.completed),
        ("FINISH", "buyer_accept_goods_timeout", OrderStatus.completed),
        ("FINISH", "buyer_cancel_order", OrderStatus.cancelled),
        ("FINISH", "seller_send_goods_timeout", OrderStatus.cancelled),
        ("IN_CANCEL", None, OrderStatus.cancelled),
        ("wait_buyer_accept_goods", None, OrderStatus.shipped),
    ],
)
def test_order_status_mapping(status, end_reason, expected):
    assert map_order_status(status, end_reason) is expected


def test_unknown_order_status_is_named():
    with pytest.raises(ValueError, match="'TELEPORTED'"):
        map_order_status("TELEPORTED")


@pytest.mark.parametrize(
    ("status", "frozen", "issue", "open_"),
    [
        ("WAIT_BUYER_ACCEPT_GOODS", "NO_FROZEN", "NO_ISSUE", True),
        ("WAIT_BUYER_ACCEPT_GOODS", "IN_FROZEN", "NO_ISSUE", False),
        ("WAIT_BUYER_ACCEPT_GOODS", "NO_FROZEN", "IN_ISSUE", False),
        ("FINISH", "NO_FROZEN", "NO_ISSUE", False),
    ],
)
def test_protection_open_only_while_waiting_for_acceptance_unfrozen(status, frozen, issue, open_):
    row = order_row(1, NOW - timedelta(hours=1), status)
    row.update(frozen_status=frozen, issue_status=issue)
    fake, _ = order_fake([row])
    conn, _ = connector(fake)
    assert conn.fetch("orders", None).rows[0].protection_open is open_


def test_shipping_method_vocabulary():
    assert normalise_shipping_method("EMS_ZX_ZX_US") == "epacket"
    assert normalise_shipping_method("CAINIAO_STANDARD") == "aliexpress_standard"
    assert normalise_shipping_method("Some New-Line") == "some_new_line"
    assert normalise_shipping_method(None) is None


# ---------------------------------------------------------------------- sends (fakes)


def message_fake() -> FakeIop:
    fake = FakeIop()
    details = [
        {
            "id": 2,
            "gmt_create": 1772366400000,
            "content": "hello?",
            "sender_login_id": "buyer1",
            "message_type": "member",
        },
    ]
    fake.on(MSG_DETAILS, lambda p: ok(MSG_DETAILS, {"message_detail_list": {"message_detail": details}}))
    return fake


def test_send_is_not_retried_and_a_5xx_leaves_it_maybe_sent():
    fake = message_fake()
    fake.on(MSG_ADD, iop_error("SYSTEM", "ServiceUnavailable", "busy", 500))
    conn, sleeps = connector(fake, retry=RetryPolicy(attempts=5, initial=0))
    with pytest.raises(ConnectorError) as info:
        conn.send_message("c1", "Hello Ana", order_external_id=None)
    assert info.value.maybe_sent is True and info.value.kind is ErrorKind.RETRYABLE
    assert fake.methods().count(MSG_ADD) == 1 and sleeps == []


def test_a_throttled_send_is_refused_not_maybe_sent():
    fake = message_fake()
    fake.on(MSG_ADD, iop_error("ISP", "ApiCallLimit", "This ban will last for 3 more seconds"))
    conn, _ = connector(fake, retry=RetryPolicy(attempts=5, initial=0))
    with pytest.raises(ConnectorError) as info:
        conn.send_message("c1", "Hello Ana", order_external_id=None)
    assert info.value.maybe_sent is False and info.value.retry_after == 3.0
    assert fake.methods().count(MSG_ADD) == 1


def test_a_read_timeout_on_send_means_maybe_sent():
    fake = message_fake()

    def timeout(params):
        raise httpx.ReadTimeout("late")

    fake.on(MSG_ADD, timeout)
    conn, _ = connector(fake)
    with pytest.raises(ConnectorError) as info:
        conn.send_message("c1", "Hello Ana", order_external_id="8001")
    assert info.value.maybe_sent is True
    assert fake.methods().count(MSG_ADD) == 1


def test_a_failed_id_read_back_after_an_accepted_send_means_maybe_sent():
    # addmsg accepted (no id echoed); reading the id back fails: the message is out, so this must not
    # look like a refusal that the outbox would retry (the buyer would get it twice).
    fake = message_fake()
    fake.on(MSG_ADD, lambda p: ok(MSG_ADD, {"is_success": True}))
    conn, _ = connector(fake)
    detail = fake.handlers[MSG_DETAILS]
    reads = {"n": 0}

    def first_read_only(params):
        reads["n"] += 1
        if reads["n"] == 1:
            return detail(params)  # the buyer lookup before the send
        return iop_error("SYSTEM", "ServiceUnavailable", "busy", 500)(params)

    fake.on(MSG_DETAILS, first_read_only)
    with pytest.raises(ConnectorError) as info:
        conn.send_message("c1", "Hello Ana", order_external_id=None)
    assert info.value.maybe_sent is True and "reading its id back failed" in str(info.value)
    assert fake.methods().count(MSG_ADD) == 1


def test_send_payload_replies_to_the_channel_buyer():
    fake = message_fake()
    fake.on(MSG_ADD, lambda p: ok(MSG_ADD, {"is_success": True, "msg_id": 99}))
    conn, _ = connector(fake)
    result = conn.send_message("c1", "Hello Ana", order_external_id="8001")
    create = json.loads(next(c for c in fake.calls if c.get("method") == MSG_ADD)["create_param"])
    assert create == {
        "channel_id": "c1",
        "buyer_id": "buyer1",
        "content": "Hello Ana",
        "message_type": "order",
        "extern_id": "8001",
        "seller_id": "cnseller",
    }
    assert result.marketplace_message_id == "99"


def test_send_needs_the_seller_login_id():
    conn, _ = connector(message_fake(), seller_login_id="")
    with pytest.raises(ConnectorError, match="seller_login_id"):
        conn.send_message("c1", "Hi", order_external_id=None)


# ---------------------------------------------------------------------- token refresh


def test_token_is_refreshed_ahead_of_expiry_and_handed_back():
    fake = FakeIop()
    fake.on(ORDER_LIST, lambda p: ok(ORDER_LIST, {"target_list": {}, "total_count": 0, "success": True}))
    fake.on(
        "/rest/auth/token/refresh",
        lambda p: {"code": "0", "access_token": "new", "refresh_token": "rt2", "expire_time": 1775000000000},
    )
    handed: list[dict[str, Any]] = []
    ref = account(refresh_token="rt", expires_at=(NOW + timedelta(minutes=30)).isoformat())
    conn = AliExpressConnector(
        ref,
        http=httpx.Client(transport=httpx.MockTransport(fake)),
        now=lambda: NOW,
        on_credentials_refreshed=handed.append,
    )
    conn.check_credentials()
    refresh, business = fake.calls
    assert refresh["_path"] == "/rest/auth/token/refresh"
    assert refresh["sign"] == sign(
        "S3CRET-X", "/auth/token/refresh", {k: v for k, v in refresh.items() if k != "_path"}
    )
    assert business["session"] == "new"
    assert handed == [conn.refreshed_credentials] and handed[0]["refresh_token"] == "rt2"
    assert handed[0]["expires_at"] == datetime.fromtimestamp(1775000000, UTC).isoformat()
    assert ref.credentials["access_token"] == "AT-7f3a"  # the caller's dict is not mutated


# ----------------------------------------------------------------------------- sandbox


@pytest.fixture
def sb():
    with SandboxServer(seed=3, port=0, speed=0, start=NOW) as server:
        yield server


def sandbox_connector(
    sb: SandboxServer, account_name: str | None = None, **settings: Any
) -> SandboxConnector:
    ref = sb.account_ref(account_name, settings=settings)
    return SandboxConnector(
        ref, http=httpx.Client(timeout=2.0), retry=RetryPolicy(attempts=4, initial=0), sleep=lambda s: None
    )


def test_sandbox_messages_stream_with_directions(sb):
    ids = sb.add_buyer_messages(12)
    conn = sandbox_connector(sb)
    batch = conn.fetch("messages", None)
    buyer_ids = {m.external_id for m in batch.rows if m.direction == "buyer"}
    assert set(ids) <= buyer_ids
    assert all(m.order_external_id for m in batch.rows)
    assert {m.direction for m in batch.rows} <= {"buyer", "system"}
    reply_to = batch.rows[0]
    conn.send_message(
        reply_to.conversation_external_id, "We are on it.", order_external_id=reply_to.order_external_id
    )
    again = conn.fetch("messages", batch.cursor)
    assert [m.direction for m in again.rows if m.body == "We are on it."] == ["seller"]


def test_sandbox_duplicated_and_reordered_pages_are_deduped(sb):
    sb.add_orders(35, fresh=True)
    sb.faults.set(duplicate_pages=1.0, reorder_pages=1.0)
    conn = sandbox_connector(sb, page_size=10, fetch_order_detail=False)
    batch = conn.fetch("orders", None)
    ids = [o.external_id for o in batch.rows]
    assert len(ids) == len(set(ids)) == 35 and not batch.more
    sb.add_buyer_messages(25)
    messages = conn.fetch("messages", None).rows
    assert len({m.external_id for m in messages}) == len(messages) >= 25


def test_sandbox_lost_answer_is_reconciled_and_the_ledger_holds_one_send(sb):
    (message_id,) = sb.add_buyer_messages(1, situations=["nr_in_transit"])
    conn = sandbox_connector(sb)
    message = next(m for m in conn.fetch("messages", None).rows if m.external_id == message_id)
    before = sb.now()
    sb.faults.force("lose_answer", method=MSG_ADD)
    with pytest.raises(ConnectorError) as info:
        conn.send_message(
            message.conversation_external_id, "Your parcel is on its way.", order_external_id=None
        )
    assert info.value.maybe_sent is True
    found = conn.find_sent_message(message.conversation_external_id, "Your  parcel is on its way.", before)
    (entry,) = sb.ledger.entries("message")
    assert found == entry["message_id"] and entry["answer"] == "lost"
    assert conn.find_sent_message(message.conversation_external_id, "Something else", before) is None
    assert sb.duplicate_sends() == 0


def test_sandbox_ledger_records_sends_and_counts_duplicates(sb):
    sb.add_buyer_messages(2)
    conn = sandbox_connector(sb)
    first, second = (m for m in conn.fetch("messages", None).rows if m.direction == "buyer")
    result = conn.send_message(
        first.conversation_external_id, "Thank you!", order_external_id=first.order_external_id
    )
    conn.send_message(second.conversation_external_id, "Thank you!", order_external_id=None)
    entries = sb.ledger.entries("message")
    assert list(sb.ledger) == entries and sb.ledger[0] == entries[0] and len(sb.ledger) == 2
    assert [e["channel_id"] for e in entries] == [
        first.conversation_external_id,
        second.conversation_external_id,
    ]
    assert entries[0]["message_id"] == result.marketplace_message_id and entries[0]["at"] == NOW.isoformat()
    assert sb.duplicate_sends() == 0
    conn.send_message(first.conversation_external_id, "Thank  you!", order_external_id=None)
    assert sb.duplicate_sends() == 1


def test_sandbox_revoked_token_is_an_account_error(sb):
    conn = sandbox_connector(sb)
    conn.check_credentials()
    sb.faults.revoke_token(sb.accounts[0].name)
    with pytest.raises(ConnectorError) as info:
        conn.fetch("messages", None)
    assert info.value.kind is ErrorKind.ACCOUNT
    # The other account goes on.
    sandbox_connector(sb, sb.accounts[1].name).check_credentials()


def test_sandbox_rejects_a_wrong_signature(sb):
    ref = sb.account_ref()
    bad = AccountRef(ref.id, ref.marketplace, ref.name, {**ref.credentials, "app_secret": "0" * 32})
    with pytest.raises(ConnectorError) as info:
        SandboxConnector(bad).check_credentials()
    assert info.value.kind is ErrorKind.ACCOUNT and info.value.code == "IncompleteSignature"


def test_sandbox_throttle_is_waited_out(sb):
    sleeps: list[float] = []
    sb.faults.set(ban_seconds=4)
    sb.faults.force("throttle", 2)
    conn = SandboxConnector(
        sb.account_ref(), retry=RetryPolicy(attempts=3, initial=0.01), sleep=sleeps.append
    )
    conn.check_credentials()
    assert sleeps == [4.0, 4.0]


def test_sandbox_expired_token_is_refreshed(sb):
    conn = sandbox_connector(sb)
    old_token = conn.credentials["access_token"]
    handed: list[dict[str, Any]] = []
    conn.on_credentials_refreshed = handed.append
    sb.advance(days=29, hours=23)  # within the refresh margin of the 30-day token
    conn.check_credentials()
    assert [c["access_token"] for c in handed] == [sb.accounts[0].access_token]
    assert conn.credentials["access_token"] == sb.accounts[0].access_token != old_token
    # Without a known expiry, the refused call itself triggers the refresh, then is repeated.
    del conn.credentials["expires_at"]
    sb.advance(days=31)
    conn.check_credentials()
    assert len(handed) == 2 and conn.credentials["access_token"] == sb.accounts[0].access_token


def test_sandbox_disputes_and_refunds(sb):
    (issue_id,) = sb.open_disputes(1)
    conn = sandbox_connector(sb)
    (dispute,) = conn.fetch("disputes", None).rows
    assert (
        dispute.external_id == issue_id and dispute.is_open and dispute.buyer_request in ("refund", "return")
    )
    order_id = dispute.order_external_id
    with pytest.raises(ConnectorError, match="dispute_external_id"):
        conn.perform_action(ActionRequest("refund_full", order_id, "k0"))
    too_much = ActionRequest(
        "refund_partial", order_id, "k1", amount=Decimal("9999"), dispute_external_id=issue_id
    )
    with pytest.raises(ConnectorError, match="exceeds"):
        conn.perform_action(too_much)
    partial = ActionRequest(
        "refund_partial", order_id, "k2", amount=Decimal("1.50"), dispute_external_id=issue_id
    )
    assert conn.find_action(partial) is None
    done = conn.perform_action(partial)
    assert conn.find_action(partial) == done
    (offer,) = sb.ledger.entries("refund_offer")
    assert offer["amount"] == "1.50" and offer["issue_id"] == issue_id


def test_sandbox_full_refund_agrees_with_the_buyers_own_proposal(sb):
    (issue_id,) = sb.open_disputes(1)
    conn = sandbox_connector(sb)
    detail = conn._issue_detail(issue_id)
    proposal = detail["buyer_solution_list"]["solution_api_dto"][0]
    amount = Decimal(proposal["refund_money"]["amount"])
    request = ActionRequest(
        "refund_full" if amount == Decimal(detail["refund_money_max"]["amount"]) else "refund_partial",
        str(detail["order_id"]),
        "k",
        amount=amount,
        dispute_external_id=issue_id,
    )
    result = conn.perform_action(request)
    assert result.external_ref == f"agree:{issue_id}:{proposal['id']}"
    assert conn.find_action(request) == result
    (dispute,) = conn.fetch("disputes", None).rows
    assert not dispute.is_open and dispute.closed_at is not None


def test_sandbox_extend_protection_and_its_limits(sb):
    sb.add_buyer_messages(1, situations=["nr_in_transit"])
    conn = sandbox_connector(sb)
    order = next(o for o in conn.fetch("orders", None).rows if o.protection_open)
    with pytest.raises(ConnectorError, match="1..30"):
        conn.perform_action(ActionRequest("extend_protection", order.external_id, "k", days=45))
    for key in ("a", "b", "c"):
        conn.perform_action(ActionRequest("extend_protection", order.external_id, key, days=30))
    with pytest.raises(ConnectorError) as info:  # 120 days in all: over the platform's limit
        conn.perform_action(ActionRequest("extend_protection", order.external_id, "d", days=30))
    assert info.value.kind is ErrorKind.FATAL and info.value.code == "201"
    assert len(sb.ledger.entries("extend_protection")) == 3


def test_resend_is_recorded_without_an_api_call(sb):
    conn = sandbox_connector(sb)
    request = ActionRequest("resend", "8001", "idem-1")
    assert conn.perform_action(request).external_ref == "resend:idem-1"
    assert conn.find_action(request) is not None
    assert len(sb.ledger) == 0
    with pytest.raises(ConnectorError):
        conn.perform_action(ActionRequest("coupon", "8001", "idem-2", amount=Decimal(2)))


def test_issue_detail_method_name_is_the_documented_one():
    assert ISSUE_DETAIL == "aliexpress.issue.detail.get" and MSG_RELATIONS.endswith("querymsgrelationlist")


def test_sandbox_reply_into_an_orders_own_channel_without_any_buyer_message(sb):
    (issue_id,) = sb.open_disputes(1)
    conn = sandbox_connector(sb)
    (dispute,) = conn.fetch("disputes", None).rows
    order_id = dispute.order_external_id
    before = sb.now()
    conn.send_message(order_id, "Sorry about the dispute.", order_external_id=order_id)
    (entry,) = sb.ledger.entries("message")
    order = sb.accounts[0].orders[order_id]
    assert entry["buyer_id"] == order.buyer.login_id and entry["order_id"] == order_id
    assert conn.find_sent_message(order_id, "Sorry about the dispute.", before) == entry["message_id"]
