"""The connector contract's shared machinery: error table lookup, Retry-After, transport errors, retry."""

from __future__ import annotations

import re

import httpx
import pytest

from connectors.base import (
    COMMON_ERROR_RULES,
    Capabilities,
    ConnectorError,
    ErrorKind,
    ErrorRule,
    RetryPolicy,
    call_with_retry,
    chunks,
    classify_error,
    retry_after_seconds,
    transport_error,
)

RULES = (
    ErrorRule(ErrorKind.ACCOUNT, code="IllegalAccessToken"),
    ErrorRule(ErrorKind.RETRYABLE, code=re.compile(r"^Api")),
    ErrorRule(ErrorKind.RETRYABLE, message=re.compile(r"ban will last")),
    ErrorRule(ErrorKind.RETRYABLE, category="ISP"),
    ErrorRule(ErrorKind.FATAL, status=range(400, 410), code="x"),
)


@pytest.mark.parametrize(
    ("status", "code", "message", "category", "kind"),
    [
        (200, "IllegalAccessToken", "", None, ErrorKind.ACCOUNT),
        (200, "ApiCallLimit", "", None, ErrorKind.RETRYABLE),
        (200, "7", "This ban will last for 3 more seconds", None, ErrorKind.RETRYABLE),
        (200, "isp.whatever", "", "isp", ErrorKind.RETRYABLE),  # category compared case-insensitively
        (200, "isp.whatever", "", "ISV", ErrorKind.FATAL),  # another category: no match, unknown is fatal
        (401, None, "", None, ErrorKind.ACCOUNT),  # common rows after the connector's own
        (429, None, "", None, ErrorKind.RETRYABLE),
        (503, None, "", None, ErrorKind.RETRYABLE),
        (408, None, "", None, ErrorKind.RETRYABLE),
        (404, None, "", None, ErrorKind.FATAL),
        (200, "never-seen", "", None, ErrorKind.FATAL),
    ],
)
def test_classify_error_first_matching_row_decides(status, code, message, category, kind):
    assert classify_error(RULES, status=status, code=code, message=message, category=category) is kind


def test_connector_rows_win_over_common_rows():
    rules = (ErrorRule(ErrorKind.RETRYABLE, status=401),)
    assert classify_error(rules, status=401, code=None, message="") is ErrorKind.RETRYABLE
    assert classify_error((), status=401, code=None, message="") is ErrorKind.ACCOUNT
    assert COMMON_ERROR_RULES[0].kind is ErrorKind.ACCOUNT


def test_rule_with_status_range_needs_a_status():
    rule = ErrorRule(ErrorKind.FATAL, status=range(400, 500))
    assert not rule.matches(None, None, "")
    assert rule.matches(404, None, "")
    assert not rule.matches(500, None, "")


@pytest.mark.parametrize(
    ("headers", "message", "expected"),
    [
        ({"Retry-After": "12"}, "", 12.0),
        (httpx.Headers({"retry-after": "3.5"}), "", 3.5),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, "", None),
        (None, "App Call Limited: This ban will last for 71 more seconds", 71.0),
        ({"Retry-After": "-4"}, "", 0.0),
        (None, "nothing to see", None),
    ],
)
def test_retry_after_seconds(headers, message, expected):
    assert retry_after_seconds(headers, message) == expected


def test_transport_error_only_connect_failures_prove_nothing_was_sent():
    request = httpx.Request("POST", "http://x")
    assert transport_error(httpx.ConnectError("no", request=request)).maybe_sent is False
    assert transport_error(httpx.ConnectTimeout("no", request=request)).maybe_sent is False
    read = transport_error(httpx.ReadTimeout("late", request=request))
    assert read.maybe_sent is True and read.kind is ErrorKind.RETRYABLE
    assert transport_error(httpx.RemoteProtocolError("gone", request=request)).maybe_sent is True


def _flaky(errors: list[ConnectorError], value: str = "ok"):
    calls = []

    def fn() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return value

    return fn, calls


def test_call_with_retry_waits_the_ban_out():
    sleeps: list[float] = []
    fn, calls = _flaky([ConnectorError(ErrorKind.RETRYABLE, "ban", retry_after=7.0)])
    assert call_with_retry(fn, RetryPolicy(initial=0.5), sleep=sleeps.append, jitter=lambda b: b) == "ok"
    assert len(calls) == 2
    assert sleeps == [7.0]


def test_call_with_retry_backoff_is_exponential_with_jitter_bound():
    sleeps: list[float] = []
    errors = [ConnectorError(ErrorKind.RETRYABLE, "5xx") for _ in range(3)]
    fn, _ = _flaky(errors)
    call_with_retry(
        fn, RetryPolicy(attempts=5, initial=1.0, maximum=3.0), sleep=sleeps.append, jitter=lambda b: b
    )
    assert sleeps == [1.0, 2.0, 3.0]


def test_call_with_retry_gives_up_on_a_long_ban_at_once():
    sleeps: list[float] = []
    fn, calls = _flaky([ConnectorError(ErrorKind.RETRYABLE, "ban", retry_after=600.0)])
    with pytest.raises(ConnectorError) as info:
        call_with_retry(fn, RetryPolicy(max_ban_wait=120), sleep=sleeps.append)
    assert info.value.retry_after == 600.0
    assert len(calls) == 1 and sleeps == []


@pytest.mark.parametrize("kind", [ErrorKind.FATAL, ErrorKind.ACCOUNT])
def test_call_with_retry_never_retries_fatal_or_account(kind):
    fn, calls = _flaky([ConnectorError(kind, "no")])
    with pytest.raises(ConnectorError):
        call_with_retry(fn, sleep=lambda s: None)
    assert len(calls) == 1


def test_call_with_retry_stops_after_the_attempts():
    errors = [ConnectorError(ErrorKind.RETRYABLE, "5xx") for _ in range(5)]
    fn, calls = _flaky(errors)
    with pytest.raises(ConnectorError):
        call_with_retry(fn, RetryPolicy(attempts=3, initial=0), sleep=lambda s: None)
    assert len(calls) == 3


def test_connector_error_text_names_kind_status_and_code():
    text = str(ConnectorError(ErrorKind.ACCOUNT, "revoked", code="IllegalAccessToken", status=200))
    assert text == "revoked (account, http 200, code IllegalAccessToken)"


def test_chunks_and_capabilities():
    assert [list(c) for c in chunks(list(range(85)), 40)] == [
        list(range(40)),
        list(range(40, 80)),
        list(range(80, 85)),
    ]
    caps = Capabilities(extend_protection=True)
    assert caps.allows("extend_protection") and caps.allows("send_message")
    assert not caps.allows("refund_full") and not caps.allows("no_such_action")
