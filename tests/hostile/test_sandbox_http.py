"""Hostile requests to the sandbox marketplace itself: every one gets a JSON answer, none drops the line.

The chaos bench and the demo drive the sandbox over HTTP; a request that killed its handler thread
would look like a network fault and hide the real bug. Invalid UTF-8, numbers too big for a date,
JSON nested past the decoder and wrong types are the client's fault (an error answer), not a crash.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from connectors.aliexpress import ISSUE_DETAIL, MSG_ADD, MSG_DETAILS, ORDER_DETAIL, ORDER_LIST, sign
from connectors.sandbox.server import DEFAULT_17TOKEN, SandboxServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def sandbox():
    with SandboxServer(seed=9, port=0, orders=3, speed=0) as sb:
        yield sb


@pytest.fixture(scope="module")
def http():
    with httpx.Client(timeout=10) as client:
        yield client


def signed(sandbox: SandboxServer, method: str, **params: str) -> dict[str, str]:
    creds = sandbox.credentials(sandbox.accounts[0].name)
    form = {
        "app_key": creds["app_key"],
        "method": method,
        "session": creds["access_token"],
        "timestamp": "1700000000000",
        "sign_method": "sha256",
        **params,
    }
    form["sign"] = sign(creds["app_secret"], method, form)
    return form


def query(**values: Any) -> str:
    return json.dumps(values)


TRACK = {"17token": DEFAULT_17TOKEN}

# name -> (verb, path, request keyword arguments), `signed` forms filled in by the test.
REQUESTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "sync_bad_utf8_body": ("POST", "/sync", {"content": b"method=\xff\xfe&a=1"}),
    "sync_body_over_limit": ("POST", "/sync", {"content": b"a" * 1_000_001}),
    "sync_unsigned": ("POST", "/sync", {"data": {"method": ORDER_LIST}}),
    "sync_get": ("GET", "/sync?method=<script>", {}),
    "sync_query_not_json": ("POST", "/sync", {"form": (ORDER_LIST, {"param_aeop_order_query": "{not json"})}),
    "sync_query_a_list": ("POST", "/sync", {"form": (ORDER_LIST, {"param_aeop_order_query": "[1, 2]"})}),
    "sync_query_nested_too_deep": (
        "POST",
        "/sync",
        {"form": (ORDER_LIST, {"param_aeop_order_query": "[" * 50_000 + "]" * 50_000})},
    ),
    "sync_page_words": (
        "POST",
        "/sync",
        {"form": (ORDER_LIST, {"param_aeop_order_query": query(current_page="x")})},
    ),
    "sync_page_infinite": (
        "POST",
        "/sync",
        {"form": (ORDER_LIST, {"param_aeop_order_query": '{"current_page": 1e999}'})},
    ),
    "sync_page_huge": (
        "POST",
        "/sync",
        {"form": (ORDER_LIST, {"param_aeop_order_query": query(current_page=10**30)})},
    ),
    "sync_date_year_9999": (
        "POST",
        "/sync",
        {"form": (ORDER_LIST, {"param_aeop_order_query": query(modified_date_start="9999-12-31 23:59:59")})},
    ),
    "sync_date_list": (
        "POST",
        "/sync",
        {"form": (ORDER_LIST, {"param_aeop_order_query": query(modified_date_end=[1])})},
    ),
    "sync_order_id_object": ("POST", "/sync", {"form": (ORDER_DETAIL, {"param1": query(order_id={"a": 1})})}),
    "sync_channel_script": (
        "POST",
        "/sync",
        {"form": (MSG_DETAILS, {"channel_id": "<script>alert(1)</script>"})},
    ),
    "sync_channel_nul": ("POST", "/sync", {"form": (MSG_DETAILS, {"channel_id": "a\x00b"})}),
    "sync_issue_id_list": ("POST", "/sync", {"form": (ISSUE_DETAIL, {"issue_id": "[1]"})}),
    "sync_send_to_nowhere": (
        "POST",
        "/sync",
        {"form": (MSG_ADD, {"create_param": query(channel_id="x", content="{{ 7*7 }}")})},
    ),
    "rest_unknown_path": ("POST", "/rest/../../etc/passwd", {"data": {"a": "b"}}),
    "track_wrong_token": (
        "POST",
        "/track/v2.2/gettrackinfo",
        {"json": [{"number": "X"}], "headers": {"17token": "x"}},
    ),
    "track_unknown_operation": ("POST", "/track/v2.2/<script>", {"json": [], "headers": TRACK}),
    "track_not_a_list": ("POST", "/track/v2.2/register", {"json": {"number": "X"}, "headers": TRACK}),
    "track_entries_not_objects": (
        "POST",
        "/track/v2.2/register",
        {"json": ["X1", 1, None], "headers": TRACK},
    ),
    "track_number_object": (
        "POST",
        "/track/v2.2/register",
        {"json": [{"number": {"n": 1}}], "headers": TRACK},
    ),
    "track_carrier_words": (
        "POST",
        "/track/v2.2/register",
        {"json": [{"number": "C1", "carrier": "dhl"}], "headers": TRACK},
    ),
    "track_carrier_infinite": (
        "POST",
        "/track/v2.2/register",
        {"content": b'[{"number": "C2", "carrier": 1e999}]', "headers": TRACK},
    ),
    "track_bad_utf8": (
        "POST",
        "/track/v2.2/register",
        {"content": b'[{"number": "\xff"}]', "headers": TRACK},
    ),
    "track_nested_too_deep": (
        "POST",
        "/track/v2.2/register",
        {"content": b"[" * 100_000 + b"]" * 100_000, "headers": TRACK},
    ),
    "track_41_numbers": (
        "POST",
        "/track/v2.2/register",
        {"json": [{"number": f"N{i}"} for i in range(41)], "headers": TRACK},
    ),
    "admin_not_json": ("POST", "/_sandbox/faults", {"content": b"{x"}),
    "admin_nested_too_deep": ("POST", "/_sandbox/faults", {"content": b"[" * 100_000 + b"]" * 100_000}),
    "admin_rates_list": ("POST", "/_sandbox/faults", {"json": {"rates": [1]}}),
    "admin_rate_words": ("POST", "/_sandbox/faults", {"json": {"rates": {"throttle": "often"}}}),
    "admin_force_garbage": ("POST", "/_sandbox/faults", {"json": {"force": [1]}}),
    "admin_clock_words": ("POST", "/_sandbox/clock", {"json": {"days": "tomorrow"}}),
    "admin_clock_overflow": ("POST", "/_sandbox/clock", {"json": {"days": 1e308}}),
    "admin_revoke_unknown_account": ("POST", "/_sandbox/faults", {"json": {"revoke": ["<script>"]}}),
    "admin_unknown_view": ("GET", "/_sandbox/<script>", {}),
    "unknown_path": ("GET", "/%00/../<svg onload=alert(1)>", {}),
}


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_every_hostile_request_gets_a_json_answer(sandbox, http, name):
    verb, path, kwargs = REQUESTS[name]
    kwargs = dict(kwargs)
    if "form" in kwargs:
        method, params = kwargs.pop("form")
        kwargs["data"] = signed(sandbox, method, **params)
    response = http.request(verb, sandbox.url + path, **kwargs)
    body = response.json()
    if response.status_code == 200 and path == "/sync":
        # An IOP answer: a business result or an error envelope, never a sandbox crash.
        assert isinstance(body, dict) and body
    else:
        assert response.status_code in (200, 400, 401, 404), (response.status_code, body)
    assert "sandbox failure" not in json.dumps(body), body
    assert http.get(f"{sandbox.url}/_sandbox/clock").status_code == 200
