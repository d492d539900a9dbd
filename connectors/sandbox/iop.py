"""The AliExpress IOP dialect of the sandbox: signature checks, envelopes and the business methods.

Answers mimic the shapes the connector expects from the real gateway (`<method>_response` wrapper
around `result`, TOP-style wrapped lists, US Pacific order times, epoch-millisecond message times).
Errors use the IOP envelope `{type, code, message, request_id}`.
"""

from __future__ import annotations

import hmac
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from connectors import aliexpress as ae
from connectors.sandbox.faults import Faults
from connectors.sandbox.ledger import Ledger, fingerprint
from connectors.sandbox.world import Account, Channel, Issue, Message, Order, Solution, World

PACIFIC = ZoneInfo("America/Los_Angeles")
# Total extension AliExpress allows on one order in the sandbox (beyond: sub_error_code 201).
MAX_TOTAL_EXTENSION_DAYS = 90
MAX_MESSAGE_CHARS = 2000
WRITE_METHODS = frozenset({ae.MSG_ADD, ae.EXTEND_ACCEPT_TIME, ae.SOLUTION_SAVE, ae.SOLUTION_AGREE})
LIST_METHODS = frozenset({ae.ORDER_LIST, ae.MSG_RELATIONS, ae.MSG_DETAILS, ae.ISSUE_LIST})


class IopError(Exception):
    """An error answered in the IOP envelope."""

    def __init__(self, category: str, code: str, message: str, status: int = 200) -> None:
        super().__init__(message)
        self.category, self.code, self.message, self.status = category, code, message, status

    def body(self, request_id: str) -> dict[str, Any]:
        return {"type": self.category, "code": self.code, "message": self.message, "request_id": request_id}


@dataclass
class Call:
    """One authenticated business call being served."""

    world: World
    account: Account
    params: dict[str, str]
    now: datetime
    faults: Faults
    ledger: Ledger
    method: str
    request_id: str


# ------------------------------------------------------------------------------ helpers


def ae_time(moment: datetime) -> str:
    return moment.astimezone(PACIFIC).strftime("%Y-%m-%d %H:%M:%S")


def millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def money(amount: Decimal, currency: str) -> dict[str, str]:
    return {"amount": f"{amount:.2f}", "currency_code": currency}


def json_param(call: Call, name: str) -> dict[str, Any]:
    raw = call.params.get(name)
    if raw is None:
        raise IopError(
            "ISV", "MissingParameter", f"The input parameter '{name}' that is mandatory is missing"
        )
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the decoder goes
        raise IopError("ISV", "InvalidParameter", f"The input parameter '{name}' is not valid JSON") from None
    if not isinstance(value, dict):
        raise IopError("ISV", "InvalidParameter", f"The input parameter '{name}' must be an object")
    return value


def int_param(source: dict[str, Any], name: str, default: int | None = None) -> int:
    value = source.get(name, default)
    if value is None:
        raise IopError(
            "ISV", "MissingParameter", f"The input parameter '{name}' that is mandatory is missing"
        )
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a JSON 1e999 is float infinity
        raise IopError(
            "ISV", "InvalidParameter", f"The input parameter '{name}' must be an integer"
        ) from None


def str_param(source: dict[str, Any], name: str) -> str:
    value = source.get(name)
    if value in (None, ""):
        raise IopError(
            "ISV", "MissingParameter", f"The input parameter '{name}' that is mandatory is missing"
        )
    return str(value)


def paging(source: dict[str, Any]) -> tuple[int, int]:
    page = int_param(source, "current_page", 1)
    size = int_param(source, "page_size", 20)
    if page < 1 or not 1 <= size <= 100:
        raise IopError("ISV", "InvalidParameter", "current_page must be >= 1 and page_size within 1..100")
    return page, size


def page_of(call: Call, rows: list[Any], page: int, size: int) -> list[Any]:
    """One page, with the duplicate/reorder faults applied."""
    start = (page - 1) * size
    chunk = rows[start : start + size]
    if start > 0 and chunk and call.faults.draw("duplicate_pages", call.method):
        chunk = rows[max(0, start - 2) : start] + chunk
    if len(chunk) > 1 and call.faults.draw("reorder_pages", call.method):
        chunk = list(chunk)
        call.faults.shuffle(chunk)
    return chunk


def parse_ae_time(value: Any, name: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        parsed = datetime.strptime(str(value), "%Y-%m-%d %H:%M:%S")
        return parsed.replace(tzinfo=PACIFIC).astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: 9999-12-31 23:59:59 Pacific is past year 9999 UTC
        raise IopError("ISV", "InvalidParameter", f"{name} must be 'yyyy-MM-dd HH:mm:ss'") from None


def _wrapped(key: str, rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    return {key: rows}


# -------------------------------------------------------------------------------- orders


def _order_flags(world: World, order: Order, now: datetime) -> tuple[str, str]:
    issue = world.accounts[order.account].issues.get(order.issue_id or "")
    open_issue = issue is not None and issue.opened_at <= now and issue.closed_at is None
    return ("IN_FROZEN" if open_issue else "NO_FROZEN"), ("IN_ISSUE" if open_issue else "NO_ISSUE")


def order_item(world: World, order: Order, now: datetime) -> dict[str, Any]:
    status, modified, end_reason = world.order_state(order, now)
    frozen, issue = _order_flags(world, order, now)
    shipped = order.shipped_at is not None and order.shipped_at <= now
    end = order.protection_end()
    item: dict[str, Any] = {
        "order_id": int(order.id),
        "order_status": status,
        "gmt_create": ae_time(order.created_at),
        "gmt_update": ae_time(modified),
        "frozen_status": frozen,
        "issue_status": issue,
        "buyer_login_id": order.buyer.login_id,
        "buyer_signer_fullname": order.buyer.name,
        "pay_amount": money(order.total, order.currency),
        "product_list": _wrapped(
            "order_product_dto",
            [
                {
                    "product_id": 1005000000000000 + i,
                    "product_name": it.title,
                    "product_count": it.quantity,
                    "product_unit_price": money(it.price, order.currency),
                    "sku_code": it.sku,
                    "freight_commit_day": str(order.promised_days),
                    "logistics_service_name": order.service.name,
                }
                for i, it in enumerate(order.items)
            ],
        ),
    }
    if end_reason:
        item["end_reason"] = end_reason
    if order.paid_at and order.paid_at <= now:
        item["gmt_pay_time"] = ae_time(order.paid_at)
    if shipped and order.shipped_at is not None:
        item["gmt_send_goods_time"] = ae_time(order.shipped_at)
    if status == "WAIT_BUYER_ACCEPT_GOODS" and end is not None:
        item["timeout_left_time"] = max(0, millis(end) - millis(now))
    return item


def order_list(call: Call) -> dict[str, Any]:
    query = json_param(call, ae.ORDER_QUERY_PARAM)
    page, size = paging(query)
    start = parse_ae_time(query.get("modified_date_start"), "modified_date_start")
    end = parse_ae_time(query.get("modified_date_end"), "modified_date_end")
    rows = []
    for order in call.world.visible_orders(call.account, call.now):
        _, modified, _ = call.world.order_state(order, call.now)
        # The API works to the second; compare on that grain like the real filter does.
        modified = modified.replace(microsecond=0)
        if (start is None or modified >= start) and (end is None or modified <= end):
            rows.append((modified, order))
    rows.sort(key=lambda r: (r[0], r[1].id), reverse=True)
    chunk = page_of(call, [o for _, o in rows], page, size)
    return {
        "target_list": _wrapped("aeop_order_item_dto", [order_item(call.world, o, call.now) for o in chunk]),
        "total_count": len(rows),
        "current_page": page,
        "page_size": size,
        "total_page": math.ceil(len(rows) / size) if rows else 0,
        "success": True,
    }


def _order_of(call: Call, order_id: Any) -> Order:
    order = call.account.orders.get(str(order_id))
    if order is None or order.created_at > call.now:
        raise IopError("ISV", "isv.order-not-found", f"order {order_id} does not exist for this seller")
    return order


def order_detail(call: Call) -> dict[str, Any]:
    query = json_param(call, ae.ORDER_DETAIL_PARAM)
    order = _order_of(call, str_param(query, "order_id"))
    status, modified, end_reason = call.world.order_state(order, call.now)
    frozen, issue = _order_flags(call.world, order, call.now)
    first_name, _, last_name = order.buyer.name.partition(" ")
    detail: dict[str, Any] = {
        "id": int(order.id),
        "order_status": status,
        "gmt_create": ae_time(order.created_at),
        "gmt_modified": ae_time(modified),
        "buyer_login_id": order.buyer.login_id,
        "buyer_info": {
            "login_id": order.buyer.login_id,
            "first_name": first_name,
            "last_name": last_name,
            "country": order.buyer.country,
        },
        "receipt_address": {
            "country": order.buyer.country,
            "city": order.buyer.city,
            "contact_person": order.buyer.name,
        },
        "order_amount": money(order.total, order.currency),
        "frozen_status": frozen,
        "issue_status": issue,
        "child_order_list": _wrapped(
            "global_aeop_tp_child_order_dto",
            [
                {
                    "product_name": it.title,
                    "product_count": it.quantity,
                    "product_price": money(it.price, order.currency),
                    "sku_code": it.sku,
                    "freight_commit_day": order.promised_days,
                }
                for it in order.items
            ],
        ),
    }
    if end_reason:
        detail["end_reason"] = end_reason
    if status == "FINISH":
        detail["gmt_trade_end"] = ae_time(modified)
    if order.paid_at and order.paid_at <= call.now:
        detail["gmt_pay_success"] = ae_time(order.paid_at)
    if order.parcel is not None and order.shipped_at is not None and order.shipped_at <= call.now:
        detail["logistic_info_list"] = _wrapped(
            "aeop_order_logistic_info",
            [
                {
                    "logistics_no": order.parcel.number,
                    "logistics_service_name": order.service.name,
                    "gmt_send": ae_time(order.shipped_at),
                }
            ],
        )
    return detail


def extend_protection(call: Call) -> dict[str, Any]:
    order = _order_of(call, str_param(call.params, "param0"))
    days = int_param(call.params, "param1")
    status, _, _ = call.world.order_state(order, call.now)
    frozen, _ = _order_flags(call.world, order, call.now)
    if status != "WAIT_BUYER_ACCEPT_GOODS" or frozen != "NO_FROZEN":
        return {
            "is_success": False,
            "sub_error_code": 210,
            "memo": f"order is {status}, {frozen}: cannot extend",
        }
    if days < 1:
        return {"is_success": False, "sub_error_code": 200, "memo": "days must be positive"}
    if order.extended_days + days > MAX_TOTAL_EXTENSION_DAYS:
        return {"is_success": False, "sub_error_code": 201, "memo": "the extension exceeds the time allowed"}
    order.extended_days += days
    order.touches.append(call.now)
    call.ledger.record(
        "extend_protection",
        call.account.name,
        call.now,
        fingerprint("extend", call.account.name, order.id, days),
        request_id=call.request_id,
        order_id=order.id,
        days=days,
    )
    return {"is_success": True}


# ------------------------------------------------------------------------------ messages


def _channel_of(call: Call, channel_id: str) -> Channel:
    """A conversation by id; an order id names that order's message channel (its buyer's here)."""
    channel = call.account.channels.get(channel_id)
    if channel is None:
        order = call.account.orders.get(channel_id)
        if order is not None and order.created_at <= call.now:
            return call.world.channel(call.account, order.buyer)
        raise IopError("ISV", "isv.channel-not-found", f"channel {channel_id} does not exist for this seller")
    return channel


def relation_list(call: Call) -> dict[str, Any]:
    query = json_param(call, ae.RELATION_QUERY_PARAM)
    page, size = paging(query)
    rows: list[tuple[Message, Channel]] = []
    for channel in call.account.channels.values():
        visible = call.world.visible_messages(channel, call.now)
        if visible:
            rows.append((max(visible, key=lambda m: (m.at, m.id)), channel))
    rows.sort(key=lambda r: (r[0].at, r[1].id), reverse=True)
    chunk = page_of(call, rows, page, size)
    return {
        "result_list": _wrapped(
            "message_relation_result",
            [
                {
                    "channel_id": channel.id,
                    "msg_sources": "message_center",
                    "other_login_id": channel.buyer.login_id,
                    "other_name": channel.buyer.name,
                    "last_message_create_time": millis(last.at),
                    "last_message_content": last.content[:100],
                    "last_message_is_own": last.sender_login_id == call.account.seller_login_id,
                    "read_stat": 1 if channel.read else 0,
                    "deal_stat": 1 if channel.processed else 0,
                    "unread_count": 0 if channel.read else 1,
                    "rank": "rank0",
                }
                for last, channel in chunk
            ],
        ),
        "total_count": len(rows),
        "success": True,
    }


def message_row(message: Message) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": int(message.id),
        "gmt_create": millis(message.at),
        "content": message.content,
        "sender_login_id": message.sender_login_id,
        "sender_name": message.sender_name,
        "message_type": message.message_type,
    }
    if message.order_id:
        row["summary"] = {"order_id": message.order_id}
        row["extern_id"] = message.order_id
    return row


def detail_list(call: Call) -> dict[str, Any]:
    channel = _channel_of(call, str_param(call.params, "channel_id"))
    page, size = paging(call.params)
    rows = sorted(call.world.visible_messages(channel, call.now), key=lambda m: (m.at, m.id), reverse=True)
    chunk = page_of(call, rows, page, size)
    return {
        "message_detail_list": _wrapped("message_detail", [message_row(m) for m in chunk]),
        "success": True,
    }


def add_message(call: Call) -> dict[str, Any]:
    create = json_param(call, ae.ADD_MSG_PARAM)
    channel = _channel_of(call, str_param(create, "channel_id"))
    content = str(create.get("content") or "")
    if not content.strip():
        return {"is_success": False, "error_code": "isv.content-empty", "error_msg": "content is empty"}
    if len(content) > MAX_MESSAGE_CHARS:
        return {"is_success": False, "error_code": "isv.content-too-long", "error_msg": "content is too long"}
    if str_param(create, "buyer_id") != channel.buyer.login_id:
        return {
            "is_success": False,
            "error_code": "isv.buyer-mismatch",
            "error_msg": "buyer_id is not in this channel",
        }
    with call.world.lock:
        message = Message(
            id=call.world.new_id(7000000000),
            channel_id=channel.id,
            at=call.now,
            content=content,
            sender_login_id=call.account.seller_login_id,
            sender_name=call.account.name,
            message_type=str(create.get("message_type") or "member"),
            order_id=str(create["extern_id"]) if create.get("extern_id") else None,
        )
        channel.messages.append(message)
    call.ledger.record(
        "message",
        call.account.name,
        call.now,
        fingerprint("message", call.account.name, channel.id, content),
        request_id=call.request_id,
        channel_id=channel.id,
        buyer_id=channel.buyer.login_id,
        order_id=message.order_id,
        message_id=message.id,
        content=content,
    )
    # addmsg is not known to echo the new message's id; the connector reads it back.
    return {"is_success": True}


def mark_read(call: Call) -> dict[str, Any]:
    _channel_of(call, str_param(call.params, "channel_id")).read = True
    return {"is_success": True}


def mark_processed(call: Call) -> dict[str, Any]:
    channel = _channel_of(call, str_param(call.params, "channel_id"))
    channel.processed = int_param(call.params, "deal_stat", 1) == 1
    return {"is_success": True}


# ------------------------------------------------------------------------------ disputes


def _issue_of(call: Call, issue_id: str) -> Issue:
    issue = call.account.issues.get(issue_id)
    if issue is None or issue.opened_at > call.now:
        raise IopError("ISV", "isv.issue-not-found", f"issue {issue_id} does not exist for this seller")
    return issue


def solution_row(solution: Solution) -> dict[str, Any]:
    return {
        "id": int(solution.id),
        "solution_owner": solution.owner,
        "solution_type": solution.solution_type,
        "refund_money": money(solution.amount, solution.currency),
        "status": solution.status,
        "content": solution.content,
        "gmt_create": ae_time(solution.at),
    }


def issue_list(call: Call) -> dict[str, Any]:
    query = json_param(call, ae.ISSUE_QUERY_PARAM)
    page, size = paging(query)
    rows = [i for i in call.account.issues.values() if i.opened_at <= call.now]
    rows.sort(key=lambda i: (i.modified_at, i.id), reverse=True)
    chunk = page_of(call, rows, page, size)
    return {
        "data_list": _wrapped(
            "issue_api_issue_dto",
            [
                {
                    "issue_id": int(i.id),
                    "order_id": int(i.order_id),
                    "parent_order_id": int(i.order_id),
                    "issue_status": i.list_status,
                    "reason_chinese": i.reason_cn,
                    "reason_english": i.reason_en,
                    "gmt_create": ae_time(i.opened_at),
                    "gmt_modified": ae_time(i.modified_at),
                    "buyer_login_id": i.buyer_login_id,
                }
                for i in chunk
            ],
        ),
        "total_item": len(rows),
        "current_page": page,
        "page_size": size,
        "success": True,
    }


def issue_detail(call: Call) -> dict[str, Any]:
    issue = _issue_of(call, str_param(call.params, "issue_id"))
    return {
        "id": int(issue.id),
        "order_id": int(issue.order_id),
        "parent_order_id": int(issue.order_id),
        "issue_status": issue.detail_status,
        "issue_reason": issue.reason_en,
        "gmt_create": ae_time(issue.opened_at),
        "gmt_modified": ae_time(issue.modified_at),
        "buyer_login_id": issue.buyer_login_id,
        "refund_money_max": money(issue.max_refund, issue.currency),
        "refund_money_max_local": money(issue.max_refund, issue.currency),
        "buyer_solution_list": _wrapped("solution_api_dto", [solution_row(s) for s in issue.buyer_solutions]),
        "seller_solution_list": _wrapped(
            "solution_api_dto", [solution_row(s) for s in issue.seller_solutions]
        ),
        "platform_solution_list": _wrapped("solution_api_dto", []),
    }


def _refusal(code: str, text: str) -> dict[str, Any]:
    return {"success": False, "error_code": code, "error_message": text}


def solution_save(call: Call) -> dict[str, Any]:
    issue = _issue_of(call, str_param(call.params, "issue_id"))
    if issue.closed_at is not None:
        return _refusal("isv.issue-closed", "the issue is closed")
    try:
        amount = Decimal(str_param(call.params, "refund_amount"))
    except InvalidOperation:
        raise IopError("ISV", "InvalidParameter", "refund_amount must be a number") from None
    if amount <= 0 or amount > issue.max_refund:
        return _refusal("isv.refund-amount-invalid", f"refund_amount must be within 0..{issue.max_refund}")
    with call.world.lock:
        solution = Solution(
            id=call.world.new_id(9500000000),
            owner="seller",
            solution_type=str(call.params.get("solution_type") or "refund"),
            amount=amount,
            currency=str(call.params.get("refund_amount_currency") or issue.currency),
            status="pending",
            content=str(call.params.get("solution_context") or ""),
            at=call.now,
        )
        issue.seller_solutions.append(solution)
        issue.modified_at = call.now
    call.ledger.record(
        "refund_offer",
        call.account.name,
        call.now,
        fingerprint("refund_offer", call.account.name, issue.id, amount),
        request_id=call.request_id,
        issue_id=issue.id,
        order_id=issue.order_id,
        amount=str(amount),
        currency=solution.currency,
        solution_id=solution.id,
    )
    return {"success": True, "solution_id": int(solution.id)}


def solution_agree(call: Call) -> dict[str, Any]:
    issue = _issue_of(call, str_param(call.params, "issue_id"))
    solution_id = str_param(call.params, "solution_id")
    solution = next((s for s in issue.buyer_solutions if s.id == solution_id), None)
    if solution is None:
        return _refusal("isv.solution-not-found", f"solution {solution_id} is not the buyer's")
    if issue.closed_at is not None or solution.status != "pending":
        return _refusal("isv.issue-closed", "the issue is closed")
    with call.world.lock:
        solution.status = "agreed"
        issue.closed_at = issue.modified_at = call.now
        issue.refunded = True
        issue.list_status, issue.detail_status = "finish", "ACCEPTISSUE"
    call.ledger.record(
        "refund_agree",
        call.account.name,
        call.now,
        fingerprint("refund_agree", call.account.name, issue.id, solution.id),
        request_id=call.request_id,
        issue_id=issue.id,
        order_id=issue.order_id,
        amount=str(solution.amount),
        currency=solution.currency,
        solution_id=solution.id,
    )
    return {"success": True}


HANDLERS: dict[str, Callable[[Call], dict[str, Any]]] = {
    ae.ORDER_LIST: order_list,
    ae.ORDER_DETAIL: order_detail,
    ae.EXTEND_ACCEPT_TIME: extend_protection,
    ae.MSG_RELATIONS: relation_list,
    ae.MSG_DETAILS: detail_list,
    ae.MSG_ADD: add_message,
    ae.MSG_READ: mark_read,
    ae.MSG_PROCESSED: mark_processed,
    ae.ISSUE_LIST: issue_list,
    ae.ISSUE_DETAIL: issue_detail,
    ae.SOLUTION_SAVE: solution_save,
    ae.SOLUTION_AGREE: solution_agree,
}


# ---------------------------------------------------------------------------- gateway


def verify_signature(account: Account, api_name: str, params: dict[str, str]) -> None:
    expected = ae.sign(account.app_secret, api_name, params)
    if not hmac.compare_digest(expected, str(params.get("sign", "")).upper()):
        raise IopError(
            "ISV", "IncompleteSignature", "The request signature does not conform to platform standards"
        )


def authenticate(
    world: World, faults: Faults, params: dict[str, str], api_name: str, now: datetime
) -> Account:
    """The calling account, after app key, signature, method and token checks (in the gateway's order)."""
    app_key = params.get("app_key")
    account = world.by_app_key(app_key or "")
    if account is None:
        raise IopError("ISV", "InvalidAppKey", "The specified app key is invalid")
    verify_signature(account, api_name, params)
    if api_name.startswith("/"):
        return account
    if api_name not in HANDLERS:
        raise IopError("ISV", "InvalidApiPath", f"The specified API {api_name!r} does not exist")
    holder = world.account_of_token(params.get("session") or "")
    if holder is None or holder.name != account.name or faults.is_revoked(account.name):
        raise IopError("ISV", "IllegalAccessToken", "The specified access token is invalid or expired")
    if now >= account.expires_at:
        raise IopError("ISV", "IllegalAccessToken", "The specified access token is invalid or expired")
    return account


def refresh_token(
    world: World, faults: Faults, account: Account, params: dict[str, str], now: datetime
) -> dict[str, Any]:
    token = params.get("refresh_token") or ""
    if faults.is_revoked(account.name):
        raise IopError("ISV", "IllegalRefreshToken", "The specified refresh token is invalid or expired")
    try:
        world.refresh(account, token, now)
    except KeyError:
        raise IopError(
            "ISV", "IllegalRefreshToken", "The specified refresh token is invalid or expired"
        ) from None
    return {
        "code": "0",
        "access_token": account.access_token,
        "refresh_token": account.refresh_token,
        "expires_in": int((account.expires_at - now).total_seconds()),
        "expire_time": millis(account.expires_at),
        "refresh_expires_in": int(timedelta(days=180).total_seconds()),
        "refresh_token_valid_time": millis(now + timedelta(days=180)),
        "account": account.seller_login_id,
        "seller_id": account.seller_login_id,
        "account_platform": "seller_center",
    }
