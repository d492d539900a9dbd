"""Hostile AliExpress answers, served by the real sandbox over HTTP and spoiled on the way to the connector.

The contract (spec/connectors.md, connectors/base.py): a page the connector cannot read is refused as a
whole with a ConnectorError naming the row and the field (FATAL: the call is wrong; RETRYABLE: the
gateway hiccuped), never another exception; the poll keeps its cursor and asks again (asserted end to
end in test_data_path.py). A page it can read yields records whose every field the database can hold.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from connectors.aliexpress import (
    ISSUE_DETAIL,
    ISSUE_LIST,
    MSG_DETAILS,
    MSG_RELATIONS,
    ORDER_DETAIL,
    ORDER_LIST,
    SandboxConnector,
)
from connectors.base import DISPUTES, MESSAGES, ORDERS, ErrorKind, RetryPolicy
from connectors.sandbox.server import SandboxServer
from tests.hostile.conftest import assert_classified
from tests.hostile.payloads import TEXTS
from tests.hostile.records import problems
from tests.hostile.spoil import Body, Spoil, Spoiled, drop, first_row, listed, put, raw, result

pytestmark = pytest.mark.timeout(60)


def whole(content: bytes) -> Spoil:
    return lambda body: content


def nested(depth: int) -> Any:
    return json.loads("[" * depth + "]" * depth)


def huge_page(rows: int) -> Callable[[Body], None]:
    def grow(res: Body) -> None:
        (listed,) = res["target_list"].values()
        template = listed[0]
        listed[:] = [{**template, "order_id": 9_000_000_000 + i} for i in range(rows)]

    return grow


def children(change: Callable[[Body], Any]) -> Callable[[Body], None]:
    def on_detail(detail: Body) -> None:
        (kids,) = detail["child_order_list"].values()
        change(kids[0])

    return on_detail


@dataclass(frozen=True)
class Case:
    stream: str
    method: str | tuple[str, ...]
    spoil: Spoil
    refused: ErrorKind | None = None  # None: the page is read
    field: str | None = None  # what the refusal must name
    check: Callable[[list[Any]], None] | None = None
    settings: dict[str, Any] | None = None


# The order detail is read first where both have a field; list-row cases read the list alone.
LIST_ONLY = {"fetch_order_detail": False}


def orders(spoil: Spoil, kind: ErrorKind | None = ErrorKind.FATAL, field: str | None = None, **kw) -> Case:
    kw.setdefault("settings", LIST_ONLY)
    return Case(ORDERS, ORDER_LIST, spoil, kind, field, **kw)


def detail(spoil: Spoil, field: str, kind: ErrorKind = ErrorKind.FATAL) -> Case:
    return Case(ORDERS, ORDER_DETAIL, result(spoil), kind, field)


def messages(spoil: Spoil, field: str | None, method: str = MSG_DETAILS, **kw) -> Case:
    return Case(MESSAGES, method, spoil, ErrorKind.FATAL if field else None, field, **kw)


def disputes(spoil: Spoil, field: str | None, method: str = ISSUE_LIST, **kw) -> Case:
    return Case(DISPUTES, method, spoil, ErrorKind.FATAL if field else None, field, **kw)


def order_row(**values: Any) -> Spoil:
    return first_row("target_list", put(**values))


def message_row(**values: Any) -> Spoil:
    return first_row("message_detail_list", put(**values))


def names_buyer(name: str) -> Callable[[list[Any]], None]:
    def check(rows: list[Any]) -> None:
        assert name in [r.buyer_name for r in rows]

    return check


def body_contains(text: str) -> Callable[[list[Any]], None]:
    def check(rows: list[Any]) -> None:
        assert any(text in r.body for r in rows), [r.body[:80] for r in rows]

    return check


def count(n: int) -> Callable[[list[Any]], None]:
    def check(rows: list[Any]) -> None:
        assert len(rows) == n

    return check


def all_open(rows: list[Any]) -> None:
    assert rows and all(r.is_open for r in rows)


FATAL, RETRYABLE = ErrorKind.FATAL, ErrorKind.RETRYABLE

CASES: dict[str, Case] = {
    # Money: NaN, infinities, fractions of a cent, out of NUMERIC(12, 2), wrong types.
    "total_nan": orders(order_row(pay_amount={"amount": "NaN", "currency_code": "USD"}), field="pay_amount"),
    "total_infinity": orders(
        order_row(pay_amount={"amount": "Infinity", "currency_code": "USD"}), field="pay_amount"
    ),
    "total_1e309_number": orders(
        order_row(pay_amount={"amount": float("inf"), "currency_code": "USD"}), field="pay_amount"
    ),
    "total_negative": orders(
        order_row(pay_amount={"amount": "-5.00", "currency_code": "USD"}), field="pay_amount"
    ),
    "total_fraction_of_cent": orders(
        order_row(pay_amount={"amount": "12.345", "currency_code": "USD"}), field="pay_amount"
    ),
    "total_too_big": orders(
        order_row(pay_amount={"amount": "1e20", "currency_code": "USD"}), field="pay_amount"
    ),
    "total_exponent_huge": orders(
        order_row(pay_amount={"amount": "1e999999", "currency_code": "USD"}), field="pay_amount"
    ),
    "total_words": orders(
        order_row(pay_amount={"amount": "twelve", "currency_code": "USD"}), field="pay_amount"
    ),
    "total_list": orders(order_row(pay_amount=[1, 2]), field="pay_amount"),
    "total_boolean": orders(order_row(pay_amount=True), field="pay_amount"),
    "total_currency_object": orders(
        order_row(pay_amount={"amount": "1.00", "currency_code": {"x": 1}}), field="pay_amount"
    ),
    "total_currency_words": orders(
        order_row(pay_amount={"amount": "1.00", "currency_code": "dollars"}), field="pay_amount"
    ),
    "total_missing": orders(first_row("target_list", drop("pay_amount", "order_amount")), field="pay_amount"),
    "total_as_cents": orders(order_row(pay_amount={"cent": 1990, "currency_code": "USD"}), None),
    # Ids, statuses, dates.
    "order_id_missing": orders(first_row("target_list", drop("order_id", "id")), field="order_id"),
    "order_status_unknown": orders(order_row(order_status="TELEPORTED"), field="order_status"),
    "order_status_null": orders(order_row(order_status=None), field="order_status"),
    "order_status_object": orders(order_row(order_status={"s": 1}), field="order_status"),
    "updated_year_0": orders(order_row(gmt_update="0000-01-01 00:00:00"), field="gmt_update"),
    "updated_year_9999_pacific": orders(order_row(gmt_update="9999-12-31 23:59:59"), field="gmt_update"),
    "updated_words": orders(order_row(gmt_update="last tuesday"), field="gmt_update"),
    "updated_epoch_1e30": orders(order_row(gmt_update=10**30), field="gmt_update"),
    "updated_epoch_infinity": orders(order_row(gmt_update=float("inf")), field="gmt_update"),
    "updated_boolean": orders(order_row(gmt_update=True), field="gmt_update"),
    "updated_timezone_less_iso": orders(order_row(gmt_update="2026-02-01T10:00:00"), None),
    "updated_with_offset": orders(order_row(gmt_update="2026-02-01T10:00:00+14:00"), None),
    "shipped_year_9999": orders(
        order_row(gmt_send_goods_time="9999-12-31 23:59:59"), field="gmt_send_goods_time"
    ),
    # Page shapes.
    "list_is_a_string": orders(result(put(target_list="garbage")), field="target_list"),
    "list_is_a_number": orders(result(put(target_list=7)), field="target_list"),
    "total_count_words": orders(result(put(total_count="many")), field="total_count"),
    "total_count_negative": orders(result(put(total_count=-1)), field="total_count"),
    "total_count_huge": orders(result(put(total_count=10**30)), field="total_count"),
    "huge_page_10k_rows": orders(result(huge_page(10_000)), None, check=count(10_000)),
    "duplicate_ids_in_page": orders(
        result(
            lambda res: next(iter(res["target_list"].values())).append(
                dict(next(iter(res["target_list"].values()))[0])
            )
        ),
        None,
    ),
    "nested_garbage_field": orders(order_row(garbage=nested(500)), None),
    "null_everywhere_in_row": orders(
        first_row("target_list", lambda row: row.update(dict.fromkeys(row))), field="order_id"
    ),
    # Whole answers that are not IOP JSON.
    "answer_html_page": orders(whole(b"<html><body>502 Bad Gateway</body></html>"), RETRYABLE),
    "answer_truncated_json": orders(
        whole(b'{"aliexpress_trade_seller_orderlist_get_response": {"res'), RETRYABLE
    ),
    "answer_empty": orders(whole(b""), RETRYABLE),
    "answer_json_array": orders(whole(b"[1, 2, 3]"), RETRYABLE),
    "answer_nested_too_deep": orders(whole(b"[" * 100_000 + b"]" * 100_000), RETRYABLE),
    "answer_bad_utf8_in_name": orders(
        raw(
            lambda content: content.replace(
                b'"buyer_signer_fullname": "', b'"buyer_signer_fullname": "\xff\xfe', 1
            )
        ),
        None,
        check=lambda rows: (
            [r for r in rows if r.buyer_name and "\ufffd\ufffd" in r.buyer_name] or pytest.fail()
        ),
    ),
    # The order detail.
    "buyer_info_string": detail(put(buyer_info="garbage"), "buyer_info"),
    "buyer_info_list": detail(put(buyer_info=[{"country": "US"}]), "buyer_info"),
    "receipt_address_number": detail(put(receipt_address=5), "receipt_address"),
    "children_not_a_list": detail(put(child_order_list="garbage"), "child_order_list"),
    "child_quantity_negative": detail(children(put(product_count=-1)), "product_count"),
    "child_quantity_huge": detail(children(put(product_count=10**30)), "product_count"),
    "child_price_nan": detail(
        children(put(product_price={"amount": "NaN", "currency_code": "USD"})), "product_price"
    ),
    "child_promised_days_huge": detail(children(put(freight_commit_day=10**9)), "freight_commit_day"),
    "paid_year_9999": detail(put(gmt_pay_success="9999-12-31 23:59:59"), "gmt_pay_success"),
    "logistics_not_a_list": detail(put(logistic_info_list=3.5), "logistic_info_list"),
    # Messages.
    "message_list_string": messages(result(put(message_detail_list="garbage")), "message_detail_list"),
    "message_id_missing": messages(first_row("message_detail_list", drop("id")), "id"),
    "message_time_missing": messages(first_row("message_detail_list", drop("gmt_create")), "gmt_create"),
    "message_time_1e30": messages(message_row(gmt_create=10**30), "gmt_create"),
    "message_time_words": messages(message_row(gmt_create="soon"), "gmt_create"),
    "message_summary_string": messages(message_row(summary="garbage"), "summary"),
    "message_content_object": messages(message_row(content={"html": "<b>"}), "content"),
    "message_content_number": messages(message_row(content=42), None, check=body_contains("42")),
    "message_content_bad_utf8": messages(
        raw(lambda content: content.replace(b'"content": "', b'"content": "\xc0\xafX', 1)),
        None,
        check=body_contains("\ufffd\ufffdX"),
    ),
    "message_type_unknown": messages(message_row(message_type="hologram"), None),
    "relations_list_number": messages(result(put(result_list=7)), "result_list", method=MSG_RELATIONS),
    "relation_channel_missing": messages(
        first_row("result_list", drop("channel_id")), "channel_id", method=MSG_RELATIONS
    ),
    "relation_time_garbage": messages(
        first_row("result_list", put(last_message_create_time="yesterday-ish")),
        "last_message_create_time",
        method=MSG_RELATIONS,
    ),
    # Disputes.
    "issue_list_string": disputes(result(put(data_list="garbage")), "data_list"),
    "issue_id_missing": disputes(first_row("data_list", drop("issue_id", "id")), "issue_id"),
    "issue_opened_garbage": disputes(first_row("data_list", put(gmt_create="not a date")), "gmt_create"),
    "issue_status_unknown": disputes(
        result(put(issue_status="MARS_ARBITRATION")), None, method=ISSUE_DETAIL, check=all_open
    ),
    "issue_status_missing": disputes(
        result(lambda res: [row.pop("issue_status", None) for row in (res, *listed(res, "data_list"))]),
        "issue_status",
        method=(ISSUE_LIST, ISSUE_DETAIL),
    ),
    "issue_refund_max_nan": disputes(
        result(put(refund_money_max={"amount": "NaN", "currency_code": "USD"}, buyer_solution_list=[])),
        "refund_money_max",
        method=ISSUE_DETAIL,
    ),
    "issue_solution_refund_infinity": disputes(
        result(
            put(buyer_solution_list=[{"refund_money": {"amount": "-Infinity"}, "solution_type": "refund"}])
        ),
        "refund_money",
        method=ISSUE_DETAIL,
    ),
    "issue_solutions_string": disputes(
        result(put(buyer_solution_list="garbage")), "buyer_solution_list", method=ISSUE_DETAIL
    ),
}

# A hostile buyer name on the order list comes through as the buyer's name, untouched.
for _name in ("xss_script_tag", "jinja_expression", "sql_drop_table", "rtl_override", "nul_character"):
    CASES[f"buyer_name_{_name}"] = orders(
        order_row(buyer_signer_fullname=TEXTS[_name]), None, check=names_buyer(TEXTS[_name])
    )


@pytest.fixture(scope="module")
def sandbox():
    with SandboxServer(seed=11, port=0, orders=3, speed=0) as sb:
        shop = sb.accounts[0].name
        sb.add_buyer_messages(3, shop)
        sb.open_disputes(2, shop)
        yield sb


def fetch(sandbox: SandboxServer, case: Case) -> list[Any]:
    methods = case.method if isinstance(case.method, tuple) else (case.method,)
    transport = Spoiled(methods, case.spoil)
    with httpx.Client(transport=transport) as http:
        settings = {"rate_per_second": 1000, "burst": 1000, **(case.settings or {})}
        conn = SandboxConnector(
            sandbox.account_ref(settings=settings), http=http, retry=RetryPolicy(attempts=1)
        )
        return conn.fetch(case.stream, None).rows


def test_the_unspoiled_sandbox_serves_every_stream(sandbox):
    for stream, method in ((ORDERS, ORDER_LIST), (MESSAGES, MSG_DETAILS), (DISPUTES, ISSUE_LIST)):
        rows = fetch(sandbox, Case(stream, method, lambda body: body))
        assert rows, stream
        assert [p for r in rows for p in problems(r)] == []


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_answer_is_read_or_refused_with_a_named_field(sandbox, name):
    case = CASES[name]
    try:
        rows = fetch(sandbox, case)
    except Exception as exc:  # noqa: BLE001 - the point: which exception, and what it says
        assert case.refused is not None, f"refused a readable page: {exc!r}"
        assert_classified(exc, field=case.field)
        assert exc.kind is case.refused, exc
        return
    assert case.refused is None, f"read a page that should be refused: {rows[:1]}"
    assert rows
    assert [p for r in rows for p in problems(r)] == []
    if case.check is not None:
        case.check(rows)
