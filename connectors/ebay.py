"""eBay: OAuth refresh grant, Message API, Fulfillment orders and refunds, Post-Order inquiries and returns.

Wire formats follow eBay's published OpenAPI contracts (`shared/contracts/ebay/`); the Post-Order
response shapes are not in those contracts and are read defensively (see `_inquiry_dispute`).

Identifiers the rest of Sellerdesk sees:
- a Message API conversation keeps eBay's `conversationId`;
- disputes are `inquiry:<inquiryId>` (item not received) and `return:<returnId>`; those ids also work
  as a conversation id for `send_message`, which then posts to the Post-Order case instead.

Token handling: the access token is refreshed `token_refresh_margin_seconds` before it expires. After a
refresh, `connector.refreshed_credentials` holds the account's whole credentials dict with the new
`access_token` and `access_token_expires_at` (ISO 8601), and the optional `on_credentials_refreshed`
callback gets a copy: the caller stores it encrypted (same pattern as the AliExpress connector). eBay
does not rotate the refresh token.
"""

from __future__ import annotations

import base64
import json
import math
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx

from connectors.base import (
    DISPUTES,
    MESSAGES,
    ORDERS,
    AccountRef,
    ActionRequest,
    ActionResult,
    Batch,
    Capabilities,
    Connector,
    ConnectorError,
    ErrorKind,
    ErrorRule,
    NormDispute,
    NormItem,
    NormMessage,
    NormOrder,
    RateLimiter,
    RetryPolicy,
    SendResult,
    amount,
    before_write,
    call_with_retry,
    classify_error,
    json_body,
    retry_after_seconds,
    transport_error,
)
from worker.triage.types import OrderStatus

TOKEN_PATH = "/identity/v1/oauth2/token"
MESSAGE_BASE = "/commerce/message/v1"
FULFILLMENT_BASE = "/sell/fulfillment/v1"
POST_ORDER_BASE = "/post-order/v2"

DEFAULT_SCOPES: tuple[str, ...] = (
    "https://api.ebay.com/oauth/api_scope",
    "https://api.ebay.com/oauth/api_scope/sell.fulfillment",
    "https://api.ebay.com/oauth/api_scope/sell.finances",  # issueRefund
    "https://api.ebay.com/oauth/api_scope/commerce.message",
)

INQUIRY_PREFIX = "inquiry:"
RETURN_PREFIX = "return:"
MAX_MESSAGE_CHARS = 2000  # SendMessageRequest.messageText: "Max length: 2000 characters"
MAX_REFUND_COMMENT = 100  # IssueRefundRequest.comment: "Max Length: 100"

# -------------------------------------------------------------------------------- error table
# First matching row wins, then base.COMMON_ERROR_RULES (401 account, 408/429/5xx retryable, 4xx fatal).
# eBay's envelope is {errors: [{errorId, domain, category, message, longMessage}]}; the token endpoint
# answers {error, error_description}. After the specific rows, eBay's category decides: REQUEST or
# BUSINESS with a 4xx is this call's fault (fatal), APPLICATION with a 5xx is eBay's (retryable).
EBAY_ERROR_RULES: tuple[ErrorRule, ...] = (
    # Token endpoint: the refresh token is revoked or expired, the app keys are wrong, or the consent
    # lacks a scope we ask for. Only the seller can fix these: pause the account.
    ErrorRule(ErrorKind.ACCOUNT, code="invalid_grant"),
    ErrorRule(ErrorKind.ACCOUNT, code="invalid_client"),
    ErrorRule(ErrorKind.ACCOUNT, code="invalid_scope"),
    # 1001 "Invalid access token" still returned after one forced refresh: the grant is gone.
    ErrorRule(ErrorKind.ACCOUNT, status=401),
    # Throttling: HTTP 429 (errorId 2001 "Too many requests"), or a call-limit text on any status.
    ErrorRule(ErrorKind.RETRYABLE, status=429),
    ErrorRule(ErrorKind.RETRYABLE, code="2001"),
    ErrorRule(
        ErrorKind.RETRYABLE, message=re.compile(r"call limit|too many requests|usage limit", re.IGNORECASE)
    ),
    # issueRefund answers that say "try again later" (sell_fulfillment_v1_oas3.json, issueRefund 400/409).
    ErrorRule(ErrorKind.RETRYABLE, code="34922"),  # a previous refund is still processing
    ErrorRule(ErrorKind.RETRYABLE, code="34929"),  # buyer payment not processed yet
    ErrorRule(ErrorKind.RETRYABLE, code="34930"),  # default payment method limit exceeded for now
    ErrorRule(ErrorKind.FATAL, status=range(400, 500), category="REQUEST"),
    ErrorRule(ErrorKind.FATAL, status=range(400, 500), category="BUSINESS"),
    ErrorRule(ErrorKind.RETRYABLE, status=range(500, 600), category="APPLICATION"),
    # No envelope (a proxy's HTML page, an empty body): the status alone, as in base.COMMON_ERROR_RULES.
    ErrorRule(ErrorKind.RETRYABLE, status=range(500, 600)),
    ErrorRule(ErrorKind.FATAL, status=range(400, 500)),
)

# Post-Order inquiry statuses (InquiryStatusEnum); anything else (OTHER, new values) counts as open so
# it stays visible to a human.
INQUIRY_CLOSED = frozenset({"CLOSED", "CLOSED_WITH_ESCALATION", "CS_CLOSED"})
RETURN_CLOSED = frozenset({"CLOSED", "REPLACEMENT_CLOSED"})

# Fulfillment ReasonForRefundEnum value sent with a refund, by where the refund comes from.
REFUND_REASON_INQUIRY = "ITEM_NOT_RECEIVED"
REFUND_REASON_RETURN = "BUYER_RETURN"
REFUND_REASON_OTHER = "OTHER"


# ---------------------------------------------------------------------------- configuration


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_time(value: Any, what: str) -> datetime:
    """An eBay timestamp (ISO 8601 string, or Post-Order's {"value": ...}) as aware UTC; bad -> FATAL."""
    raw = value.get("value") if isinstance(value, dict) else value
    if isinstance(raw, str) and raw:
        try:
            return _utc(datetime.fromisoformat(raw))
        except (ValueError, OverflowError):  # OverflowError: year 9999 in a zone west of UTC
            pass
    shown = raw[:80] if isinstance(raw, str) else raw
    raise ConnectorError(ErrorKind.FATAL, f"ebay: {what} is not an ISO 8601 timestamp: {shown!r:.100}")


def _maybe_time(value: Any, what: str) -> datetime | None:
    if value is None or (isinstance(value, dict) and value.get("value") is None):
        return None
    return parse_time(value, what)


def format_time(value: datetime) -> str:
    """eBay's timestamp format: UTC with milliseconds, e.g. 2024-11-06T10:00:00.000Z."""
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%S.") + f"{_utc(value).microsecond // 1000:03d}Z"


def _money(value: Any, what: str) -> Decimal:
    return amount(value, f"ebay: {what}")


def _obj(value: Any, what: str) -> dict[str, Any]:
    """A JSON object field; absent (null) reads as empty, any other type is FATAL naming the field."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConnectorError(ErrorKind.FATAL, f"ebay: {what} is not an object but {type(value).__name__}")
    return value


def _objects(value: Any, what: str) -> list[dict[str, Any]]:
    """The objects of a JSON array field (other members are skipped); a non-array is FATAL."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConnectorError(ErrorKind.FATAL, f"ebay: {what} is not an array but {type(value).__name__}")
    return [v for v in value if isinstance(v, dict)]


def _currency(value: Any, what: str) -> str:
    """An ISO 4217 letter code, upper case; anything else is FATAL naming the field."""
    if not (isinstance(value, str) and len(value) == 3 and value.isascii() and value.isalpha()):
        raise ConnectorError(ErrorKind.FATAL, f"ebay: {what} is not a currency code: {value!r:.40}")
    return value.upper()


def _optional_currency(value: Any, what: str) -> str | None:
    return None if value in (None, "") else _currency(value, what)


def _text(value: Any, what: str) -> str | None:
    """An optional string field (an integer is read as its digits); any other type is FATAL."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ConnectorError(ErrorKind.FATAL, f"ebay: {what} is not a string: {value!r:.60}")


def _cents(amount: Decimal) -> str:
    return str(amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


@dataclass(slots=True, repr=False)
class EbayCredentials:
    """Decrypted account credentials; secrets stay out of repr and error messages."""

    client_id: str
    client_secret: str
    refresh_token: str
    access_token: str | None = None
    access_token_expires_at: datetime | None = None
    # Our own eBay user name: tells the seller's messages from the buyer's in a conversation.
    seller_username: str | None = None
    marketplace_id: str = "EBAY_US"
    api_base: str = "https://api.ebay.com"
    auth_base: str = "https://api.ebay.com"

    def __repr__(self) -> str:
        return (
            f"EbayCredentials(client_id={self.client_id!r}, seller_username={self.seller_username!r}, "
            f"marketplace_id={self.marketplace_id!r}, api_base={self.api_base!r}, "
            f"access_token_expires_at={self.access_token_expires_at!r}, secrets=<hidden>)"
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EbayCredentials:
        """Validate the stored credentials; a missing or malformed field is an ACCOUNT error naming it."""

        def bad(name: str, problem: str) -> ConnectorError:
            return ConnectorError(ErrorKind.ACCOUNT, f"ebay credentials: {name!r} {problem}")

        def text(name: str, required: bool, default: str | None = None) -> str | None:
            value = data.get(name)
            if value is None or value == "":
                if required:
                    raise bad(name, "is missing")
                return default
            if not isinstance(value, str):
                raise bad(name, "must be a string")
            return value.strip()

        expires_raw = data.get("access_token_expires_at")
        expires: datetime | None = None
        if isinstance(expires_raw, int | float) and not isinstance(expires_raw, bool):
            expires = datetime.fromtimestamp(expires_raw, UTC)
        elif isinstance(expires_raw, str) and expires_raw:
            try:
                expires = _utc(datetime.fromisoformat(expires_raw))
            except ValueError:
                raise bad("access_token_expires_at", "is not an ISO 8601 timestamp") from None
        elif isinstance(expires_raw, datetime):
            expires = _utc(expires_raw)
        elif expires_raw not in (None, ""):
            raise bad("access_token_expires_at", "must be an ISO 8601 timestamp")
        creds = cls(
            client_id=text("client_id", True),  # type: ignore[arg-type]
            client_secret=text("client_secret", True),  # type: ignore[arg-type]
            refresh_token=text("refresh_token", True),  # type: ignore[arg-type]
            access_token=text("access_token", False),
            access_token_expires_at=expires,
            seller_username=text("seller_username", False),
            marketplace_id=text("marketplace_id", False, "EBAY_US"),  # type: ignore[arg-type]
            api_base=(text("api_base", False, "https://api.ebay.com") or "").rstrip("/"),
            auth_base=(text("auth_base", False, "https://api.ebay.com") or "").rstrip("/"),
        )
        for name in ("api_base", "auth_base"):
            if not getattr(creds, name).startswith(("https://", "http://")):
                raise bad(name, "must be an http(s) URL")
        return creds


@dataclass(frozen=True, slots=True)
class Rate:
    rate: float
    burst: int


# Requests per second per account and API. eBay publishes daily quotas (Fulfillment getOrders
# 100,000/day, about 1.2/s); the others are unconfirmed, so these defaults stay well below and every
# value can be overridden per account with settings["rate_limits"][api] = {"rate": .., "burst": ..}.
DEFAULT_RATES: dict[str, Rate] = {
    "identity": Rate(0.5, 2),
    "message": Rate(1.0, 5),
    "fulfillment": Rate(1.0, 10),
    "post_order": Rate(1.0, 5),
}


@dataclass(frozen=True, slots=True)
class EbaySettings:
    """Per-account tuning read from AccountRef.settings; every key is optional."""

    token_refresh_margin_seconds: int = 300
    overlap_seconds: int = 600  # re-read this much before the last pass (clock skew, late writes)
    initial_lookback_days: int = 30  # first poll of a new account
    dispute_window_days: int = 60  # disputes re-read every pass: their status changes after creation
    orders_page_size: int = 100  # getOrders allows up to 200
    conversations_page_size: int = 50  # Message API maximum
    messages_page_size: int = 50
    max_message_pages: int = 10  # per conversation and poll
    disputes_page_size: int = 50
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    rates: dict[str, Rate] = field(default_factory=lambda: dict(DEFAULT_RATES))

    _LIMITS: ClassVar[dict[str, tuple[int, int]]] = {
        "token_refresh_margin_seconds": (0, 3600),
        "overlap_seconds": (0, 86_400),
        "initial_lookback_days": (1, 730),
        "dispute_window_days": (1, 540),
        "orders_page_size": (1, 200),
        "conversations_page_size": (1, 50),
        "messages_page_size": (1, 50),
        "max_message_pages": (1, 100),
        "disputes_page_size": (1, 200),
    }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EbaySettings:
        """Validate account settings; a bad value is an ACCOUNT error naming the setting."""
        values: dict[str, Any] = {}
        for name, (low, high) in cls._LIMITS.items():
            if name in data:
                value = data[name]
                if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                    raise ConnectorError(
                        ErrorKind.ACCOUNT, f"ebay setting {name!r} must be an integer in [{low}, {high}]"
                    )
                values[name] = value
        if "scopes" in data:
            scopes = data["scopes"]
            if not (isinstance(scopes, list | tuple) and scopes and all(isinstance(s, str) for s in scopes)):
                raise ConnectorError(ErrorKind.ACCOUNT, "ebay setting 'scopes' must be a list of scope URLs")
            values["scopes"] = tuple(scopes)
        rates = dict(DEFAULT_RATES)
        for api, spec in (data.get("rate_limits") or {}).items():
            if api not in DEFAULT_RATES:
                raise ConnectorError(
                    ErrorKind.ACCOUNT,
                    f"ebay setting 'rate_limits' has unknown API {api!r} (known: {', '.join(DEFAULT_RATES)})",
                )
            try:
                rate, burst = float(spec["rate"]), spec["burst"]
            except (KeyError, TypeError, ValueError):
                raise ConnectorError(
                    ErrorKind.ACCOUNT, f"ebay setting 'rate_limits.{api}' needs numeric 'rate' and 'burst'"
                ) from None
            if not (rate > 0 and isinstance(burst, int) and burst >= 1):
                raise ConnectorError(
                    ErrorKind.ACCOUNT,
                    f"ebay setting 'rate_limits.{api}' needs rate > 0 and integer burst >= 1",
                )
            rates[api] = Rate(rate, burst)
        values["rates"] = rates
        return cls(**values)


# --------------------------------------------------------------------------------- cursors


@dataclass(frozen=True, slots=True)
class PassCursor:
    """Where a stream stands: the lower time bound of the current pass, its start, and the next page.

    A pass reads every page whose rows changed since `since`; when it reaches the end, the next pass
    starts from this pass's start minus the overlap, so rows changed while we were paging are read
    again (and deduplicated on eBay's ids) rather than missed.
    """

    since: datetime
    started: datetime
    offset: int = 0
    phase: str = ""  # disputes: "inquiry" then "return"

    def dump(self) -> str:
        return json.dumps(
            {
                "v": 1,
                "since": format_time(self.since),
                "started": format_time(self.started),
                "offset": self.offset,
                "phase": self.phase,
            },
            sort_keys=True,
        )

    @classmethod
    def load(cls, raw: str, stream: str) -> PassCursor:
        try:
            data = json.loads(raw)
            return cls(
                since=parse_time(data["since"], "cursor since"),
                started=parse_time(data["started"], "cursor started"),
                offset=int(data.get("offset", 0)),
                phase=str(data.get("phase", "")),
            )
        except (ValueError, KeyError, TypeError, ConnectorError):
            raise ConnectorError(
                ErrorKind.FATAL, f"ebay {stream} cursor is not valid: {raw[:80]!r}"
            ) from None


def _next_offset(page: dict[str, Any], offset: int, count: int) -> int | None:
    """The offset of the next page from the `next` href (or offset + count when it has none), or None."""
    nxt = page.get("next")
    if not nxt:
        return None
    if not isinstance(nxt, str):
        raise ConnectorError(ErrorKind.FATAL, f"ebay: the page's 'next' is not a URL: {nxt!r:.60}")
    query = parse_qs(urlsplit(nxt).query)
    try:
        return int(query["offset"][0])
    except (KeyError, IndexError, ValueError):
        return offset + max(count, 1)


# ------------------------------------------------------------------------------- connector


class EbayConnector(Connector):
    """One eBay seller account."""

    marketplace: ClassVar[str] = "ebay"
    capabilities: ClassVar[Capabilities] = Capabilities(
        send_message=True,
        extend_protection=False,  # eBay has no such action: the policy offers what eBay allows instead
        refund_full=True,
        refund_partial=True,
        resend=True,  # recorded by us, shipped by the warehouse
        coupon=False,
        review_solicitation=False,
    )
    streams: ClassVar[tuple[str, ...]] = (ORDERS, MESSAGES, DISPUTES)
    error_rules: ClassVar[tuple[ErrorRule, ...]] = EBAY_ERROR_RULES

    def __init__(
        self,
        account: AccountRef,
        *,
        http: httpx.Client | None = None,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy = RetryPolicy(),
        now: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] | None = None,
        on_credentials_refreshed: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        super().__init__(account, http=http, limiter=limiter, retry=retry, now=now)
        self.creds = EbayCredentials.from_dict(account.credentials)
        self.settings = EbaySettings.from_dict(account.settings)
        self.sleep = sleep
        self.on_credentials_refreshed = on_credentials_refreshed
        # Set after a token refresh: the full credentials with the new access token, to persist encrypted.
        self.refreshed_credentials: dict[str, Any] | None = None
        self._token_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"EbayConnector(account={self.account.id}, name={self.account.name!r})"

    # ----------------------------------------------------------------------------- OAuth

    def _token_fresh(self) -> bool:
        creds = self.creds
        if not creds.access_token or creds.access_token_expires_at is None:
            return False
        margin = timedelta(seconds=self.settings.token_refresh_margin_seconds)
        return creds.access_token_expires_at - margin > self.now()

    def access_token(self) -> str:
        """A valid access token, refreshed first when it expires within the margin."""
        if not self._token_fresh():
            self.refresh_access_token(stale=self.creds.access_token)
        assert self.creds.access_token is not None
        return self.creds.access_token

    def refresh_access_token(self, stale: str | None = None) -> None:
        """Refresh-token grant. `stale` is the token that failed: skipped if another thread already did it."""
        with self._token_lock:
            if self.creds.access_token != stale and self._token_fresh():
                return
            self._limit("identity")
            basic = base64.b64encode(f"{self.creds.client_id}:{self.creds.client_secret}".encode()).decode()
            try:
                response = self.http.post(
                    f"{self.creds.auth_base}{TOKEN_PATH}",
                    headers={
                        "Authorization": f"Basic {basic}",
                        "Content-Type": "application/x-www-form-urlencoded",
                        "Accept": "application/json",
                    },
                    data={
                        "grant_type": "refresh_token",
                        "refresh_token": self.creds.refresh_token,
                        "scope": " ".join(self.settings.scopes),
                    },
                )
            except httpx.TransportError as exc:
                error = transport_error(exc)
                error.maybe_sent = False  # a token request changes nothing worth reconciling
                raise error from None
            if response.status_code != 200:
                raise self._error(response, "oauth token refresh")
            body = self._json(response, "oauth token refresh")
            token, expires_in = body.get("access_token"), body.get("expires_in")
            if not isinstance(token, str) or not token or not isinstance(expires_in, int | float):
                raise ConnectorError(
                    ErrorKind.RETRYABLE, "ebay oauth token refresh: answer lacks access_token/expires_in"
                )
            self.creds.access_token = token
            self.creds.access_token_expires_at = self.now() + timedelta(seconds=float(expires_in))
            self.refreshed_credentials = {
                **(self.refreshed_credentials or self.account.credentials),
                "access_token": token,
                "access_token_expires_at": self.creds.access_token_expires_at.isoformat(),
            }
            refreshed = dict(self.refreshed_credentials)
        if self.on_credentials_refreshed is not None:
            self.on_credentials_refreshed(refreshed)

    # ------------------------------------------------------------------------------ HTTP

    def _limit(self, api: str) -> None:
        if self.limiter is not None:
            rate = self.settings.rates[api]
            self.limiter.acquire(f"ebay:{self.account.id}:{api}", rate.rate, rate.burst)

    @staticmethod
    def _json(response: httpx.Response, what: str) -> dict[str, Any]:
        if not response.content:
            return {}
        try:
            body = json_body(response)
        except ValueError:
            kind = ErrorKind.RETRYABLE if response.status_code >= 500 else ErrorKind.FATAL
            raise ConnectorError(
                kind, f"ebay {what}: answer is not JSON", status=response.status_code
            ) from None
        if not isinstance(body, dict):
            raise ConnectorError(ErrorKind.FATAL, f"ebay {what}: answer is not a JSON object")
        return body

    def _error(self, response: httpx.Response, what: str, *, maybe_sent: bool = False) -> ConnectorError:
        """Classify an error answer through the error table; the message quotes eBay, never our secrets."""
        status = response.status_code
        try:
            body = json_body(response)
        except ValueError:
            body = None
        code: str | None = None
        message = f"HTTP {status}"
        category = ""
        if isinstance(body, dict):
            errors = body.get("errors")
            if errors is None and isinstance(body.get("error"), list):
                errors = body["error"]  # Post-Order's envelope
            if isinstance(errors, list) and errors and isinstance(errors[0], dict):
                first = errors[0]
                if first.get("errorId") is not None:
                    code = str(first["errorId"])
                category = str(first.get("category") or "")
                message = str(first.get("longMessage") or first.get("message") or message)
            elif isinstance(body.get("error"), str):  # the OAuth endpoint
                code = body["error"]
                message = str(body.get("error_description") or code)
        kind = classify_error(
            self.error_rules, status=status, code=code, message=message, category=category or None
        )
        detail = f"{category.lower()}: {message}" if category else message
        return ConnectorError(
            kind,
            f"ebay {what}: {detail[:300]}",
            code=code,
            status=status,
            retry_after=retry_after_seconds(response.headers, message),
            maybe_sent=maybe_sent and status >= 500,
        )

    def _attempt(
        self,
        api: str,
        method: str,
        path: str,
        what: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        write: bool = False,
    ) -> dict[str, Any]:
        """One call (plus one retry after a forced token refresh on 401), classified on failure.

        Any 2xx is success. After a write succeeded, an unreadable answer is reported as maybe sent:
        the change happened, so the caller must reconcile rather than repeat it.
        """
        refreshed = False
        while True:
            self._limit(api)
            token = self.access_token()
            scheme = "IAF" if api == "post_order" else "Bearer"
            headers = {
                "Authorization": f"{scheme} {token}",
                "Accept": "application/json",
                "X-EBAY-C-MARKETPLACE-ID": self.creds.marketplace_id,
            }
            if body is not None:
                headers["Content-Type"] = "application/json"
            try:
                response = self.http.request(
                    method, f"{self.creds.api_base}{path}", params=params, json=body, headers=headers
                )
            except httpx.TransportError as exc:
                error = transport_error(exc)
                if not write:
                    error.maybe_sent = False
                raise error from None
            if response.status_code == 401 and not refreshed:
                # An expired or revoked access token was refused before anything happened, so even a
                # send may be repeated once with a fresh token.
                refreshed = True
                self.refresh_access_token(stale=token)
                continue
            if not 200 <= response.status_code < 300:
                raise self._error(response, what, maybe_sent=write)
            try:
                return self._json(response, what)
            except ConnectorError as exc:
                if not write:
                    raise
                raise ConnectorError(
                    ErrorKind.RETRYABLE, f"{exc.args[0]} (after the change was accepted)", maybe_sent=True
                ) from None

    def _read(self, api: str, path: str, what: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """An idempotent GET, retried on retryable errors."""
        return call_with_retry(
            lambda: self._attempt(api, "GET", path, what, params=params), self.retry, sleep=self.sleep
        )

    def _write(self, api: str, path: str, what: str, body: dict[str, Any]) -> dict[str, Any]:
        """A POST that changes something on eBay: called once, never retried here."""
        before_write()
        return self._attempt(api, "POST", path, what, body=body, write=True)

    # ----------------------------------------------------------------------- credentials

    def check_credentials(self) -> None:
        """Refresh the token if due and make one cheap read; ACCOUNT errors mean pause the account."""
        self._read("fulfillment", f"{FULFILLMENT_BASE}/order", "check credentials", {"limit": "1"})

    # ---------------------------------------------------------------------------- streams

    def fetch(self, stream: str, cursor: str | None) -> Batch[Any]:
        if stream == ORDERS:
            return self._fetch_orders(cursor)
        if stream == MESSAGES:
            return self._fetch_messages(cursor)
        if stream == DISPUTES:
            return self._fetch_disputes(cursor)
        raise ValueError(f"ebay has no stream {stream!r} (streams: {', '.join(self.streams)})")

    def _pass(self, cursor: str | None, stream: str) -> PassCursor:
        """Where to read now: the first pass of a new account, the saved place in a pass, or (after a
        finished pass) a new pass stamped with the current time."""
        first_phase = "inquiry" if stream == DISPUTES else ""
        now = self.now()
        if cursor is None:
            lookback = timedelta(days=self.settings.initial_lookback_days)
            return PassCursor(since=now - lookback, started=now, phase=first_phase)
        saved = PassCursor.load(cursor, stream)
        if saved.offset == 0 and saved.phase == first_phase:
            return PassCursor(since=saved.since, started=now, phase=first_phase)
        return saved

    def _finish_pass(self, current: PassCursor, stream: str) -> str:
        """The cursor after the last page: the next pass re-reads from this pass's start minus overlap."""
        since = current.started - timedelta(seconds=self.settings.overlap_seconds)
        return PassCursor(since=since, started=since, phase="inquiry" if stream == DISPUTES else "").dump()

    # -- orders

    def _fetch_orders(self, cursor: str | None) -> Batch[NormOrder]:
        pc = self._pass(cursor, ORDERS)
        limit = self.settings.orders_page_size
        page = self._read(
            "fulfillment",
            f"{FULFILLMENT_BASE}/order",
            "getOrders",
            {
                "filter": f"lastmodifieddate:[{format_time(pc.since)}..]",
                "limit": str(limit),
                "offset": str(pc.offset),
            },
        )
        raw_orders = page.get("orders") or []
        if not isinstance(raw_orders, list):
            raise ConnectorError(ErrorKind.FATAL, "ebay getOrders: 'orders' is not an array")
        rows = [self._order(o) for o in raw_orders]
        nxt = _next_offset(page, pc.offset, len(raw_orders))
        if nxt is None:
            return Batch(rows=rows, cursor=self._finish_pass(pc, ORDERS), more=False)
        return Batch(rows=rows, cursor=PassCursor(pc.since, pc.started, nxt, pc.phase).dump(), more=True)

    def _fulfillments(self, order_id: str) -> list[dict[str, Any]]:
        page = self._read(
            "fulfillment",
            f"{FULFILLMENT_BASE}/order/{order_id}/shipping_fulfillment",
            "getShippingFulfillments",
        )
        return _objects(page.get("fulfillments"), f"order {order_id} fulfillments")

    def _order(self, raw: dict[str, Any]) -> NormOrder:
        """Map a Fulfillment `Order` (plus its shipping fulfillments) onto NormOrder."""
        order_id = raw.get("orderId") if isinstance(raw, dict) else None
        if not isinstance(order_id, str) or not order_id:
            raise ConnectorError(ErrorKind.FATAL, "ebay getOrders: an order lacks orderId")
        what = f"order {order_id}"
        created = parse_time(raw.get("creationDate"), f"{what} creationDate")
        modified = _maybe_time(raw.get("lastModifiedDate"), f"{what} lastModifiedDate") or created
        total_raw = _obj(
            _obj(raw.get("pricingSummary"), f"{what} pricingSummary").get("total"), f"{what} total"
        )
        if "value" not in total_raw or not total_raw.get("currency"):
            raise ConnectorError(ErrorKind.FATAL, f"ebay {what}: pricingSummary.total is missing")
        total = _money(total_raw["value"], f"{what} pricingSummary.total")

        fulfillments = self._fulfillments(order_id) if raw.get("fulfillmentHrefs") else []
        shipped = [
            (parse_time(f["shippedDate"], f"{what} shippedDate"), f)
            for f in fulfillments
            if f.get("shippedDate")
        ]
        shipped.sort(key=lambda pair: pair[0])
        shipped_at = shipped[0][0] if shipped else None
        latest = shipped[-1][1] if shipped else (fulfillments[-1] if fulfillments else {})
        tracking_number = _text(latest.get("shipmentTrackingNumber"), f"{what} shipmentTrackingNumber")
        carrier = _text(latest.get("shippingCarrierCode"), f"{what} shippingCarrierCode")

        payment_summary = _obj(raw.get("paymentSummary"), f"{what} paymentSummary")
        payments = _objects(payment_summary.get("payments"), f"{what} paymentSummary.payments")
        paid_at = None
        for payment in payments:
            when = _maybe_time(payment.get("paymentDate"), f"{what} paymentDate")
            if when is not None and (paid_at is None or when < paid_at):
                paid_at = when

        cancel = _obj(raw.get("cancelStatus"), f"{what} cancelStatus")
        cancelled_at = _maybe_time(cancel.get("cancelledDate"), f"{what} cancelledDate")
        status = order_status(
            fulfillment=raw.get("orderFulfillmentStatus"),
            payment=raw.get("orderPaymentStatus"),
            cancel_state=cancel.get("cancelState"),
            has_shipment=bool(shipped or tracking_number),
        )

        line_items = _objects(raw.get("lineItems"), f"{what} lineItems")
        currency = _currency(total_raw["currency"], f"{what} pricingSummary.total.currency")
        items = tuple(self._item(li, what, currency) for li in line_items)
        instructions = _objects(
            raw.get("fulfillmentStartInstructions"), f"{what} fulfillmentStartInstructions"
        )
        step = _obj(instructions[0].get("shippingStep"), f"{what} shippingStep") if instructions else {}
        ship_to = _obj(step.get("shipTo"), f"{what} shipTo")
        service = _text(step.get("shippingServiceCode"), f"{what} shippingServiceCode")
        country = _text(
            _obj(ship_to.get("contactAddress"), f"{what} contactAddress").get("countryCode"),
            f"{what} countryCode",
        )
        if country is not None and len(country) != 2:
            raise ConnectorError(ErrorKind.FATAL, f"ebay {what}: countryCode {country[:20]!r} is not a code")

        promised = promised_delivery_days(
            max_estimated=_latest_estimate(line_items, instructions, what),
            shipped_at=shipped_at,
            paid_at=paid_at,
            created_at=created,
        )
        ship_by = [
            parse_time(d, f"{what} shipByDate")
            for li in line_items
            if (
                d := _obj(li.get("lineItemFulfillmentInstructions"), f"{what} instructions").get("shipByDate")
            )
        ]
        handling = max(0, math.ceil((max(ship_by) - created).total_seconds() / 86400)) if ship_by else None

        return NormOrder(
            external_id=order_id,
            status=status,
            total=total,
            currency=currency,
            modified_at=modified,
            buyer_id=_text(_obj(raw.get("buyer"), f"{what} buyer").get("username"), f"{what} buyer.username"),
            buyer_name=_text(ship_to.get("fullName"), f"{what} shipTo.fullName"),
            buyer_country=country,
            paid_at=paid_at,
            shipped_at=shipped_at,
            cancelled_at=cancelled_at,
            shipping_method=service,
            tracking_number=tracking_number,
            carrier=carrier,
            promised_delivery_days=promised,
            handling_days=handling,
            protection_open=False,  # AliExpress's acceptance clock; eBay has nothing a seller can extend
            items=items,
            raw={"order": raw, "fulfillments": fulfillments},
        )

    @staticmethod
    def _item(li: dict[str, Any], what: str, order_currency: str) -> NormItem:
        raw_quantity = li.get("quantity")
        quantity = raw_quantity if isinstance(raw_quantity, int) and not isinstance(raw_quantity, bool) else 1
        if not 0 <= quantity < 2**31:
            raise ConnectorError(
                ErrorKind.FATAL, f"ebay {what}: lineItems.quantity {quantity} is out of range"
            )
        cost = _obj(li.get("lineItemCost"), f"{what} lineItemCost")
        line_total = _money(cost.get("value", "0"), f"{what} lineItemCost")
        # lineItemCost is unit price x quantity; NormItem carries the unit price.
        unit = (line_total / quantity).quantize(Decimal("0.01")) if quantity else line_total
        return NormItem(
            sku=_text(li.get("sku"), f"{what} lineItems.sku"),
            title=str(li.get("title") or ""),
            quantity=quantity,
            price=unit,
            currency=_currency(cost.get("currency") or order_currency, f"{what} lineItemCost.currency"),
        )

    # -- messages

    def _seller(self) -> str:
        if not self.creds.seller_username:
            raise ConnectorError(
                ErrorKind.ACCOUNT,
                "ebay credentials: 'seller_username' is missing (needed to tell our messages from the buyer's)",
            )
        return self.creds.seller_username

    def _fetch_messages(self, cursor: str | None) -> Batch[NormMessage]:
        seller = self._seller()
        pc = self._pass(cursor, MESSAGES)
        limit = self.settings.conversations_page_size
        page = self._read(
            "message",
            f"{MESSAGE_BASE}/conversation",
            "getConversations",
            {
                "conversation_type": "FROM_MEMBERS",
                "start_time": format_time(pc.since),
                "limit": str(limit),
                "offset": str(pc.offset),
            },
        )
        conversations = _objects(page.get("conversations"), "getConversations conversations")
        rows: list[NormMessage] = []
        for conv in conversations:
            conv_id = conv.get("conversationId")
            if not conv_id:
                continue
            latest = _obj(conv.get("latestMessage"), f"conversation {conv_id} latestMessage").get(
                "createdDate"
            )
            if latest and parse_time(latest, f"conversation {conv_id} latestMessage") < pc.since:
                continue  # nothing new here; saves a call if the server ignored start_time
            for msg in self._conversation_messages(conv_id):
                message = self._message(msg, conv, seller)
                if message.sent_at >= pc.since:
                    rows.append(message)
        nxt = _next_offset(page, pc.offset, len(conversations))
        if nxt is None:
            return Batch(rows=rows, cursor=self._finish_pass(pc, MESSAGES), more=False)
        return Batch(rows=rows, cursor=PassCursor(pc.since, pc.started, nxt).dump(), more=True)

    def _conversation_messages(self, conversation_id: str) -> Iterator[dict[str, Any]]:
        """Every message of one conversation, page by page (bounded by max_message_pages)."""
        offset = 0
        limit = self.settings.messages_page_size
        for _ in range(self.settings.max_message_pages):
            page = self._read(
                "message",
                f"{MESSAGE_BASE}/conversation/{conversation_id}",
                "getConversation",
                {"conversation_type": "FROM_MEMBERS", "limit": str(limit), "offset": str(offset)},
            )
            messages = _objects(page.get("messages"), f"conversation {conversation_id} messages")
            yield from messages
            nxt = _next_offset(page, offset, len(messages))
            if nxt is None or not messages:
                return
            offset = nxt

    @staticmethod
    def _message(msg: dict[str, Any], conv: dict[str, Any], seller: str) -> NormMessage:
        conv_id = conv["conversationId"]
        msg_id = msg.get("messageId")
        if not msg_id:
            raise ConnectorError(ErrorKind.FATAL, f"ebay conversation {conv_id}: a message lacks messageId")
        sender = _text(msg.get("senderUsername"), f"message {msg_id} senderUsername") or ""
        ours = sender.casefold() == seller.casefold()
        buyer = _text(msg.get("recipientUsername"), f"message {msg_id} recipientUsername") if ours else sender
        return NormMessage(
            external_id=str(msg_id),
            conversation_external_id=str(conv_id),
            direction="seller" if ours else "buyer",
            body=str(msg.get("messageBody") or ""),
            sent_at=parse_time(msg.get("createdDate"), f"message {msg_id} createdDate"),
            buyer_id=buyer or None,
            buyer_name=buyer or None,
            order_external_id=None,  # conversations reference a listing (referenceId), not an order
            raw={"message": msg, "conversation": {k: v for k, v in conv.items() if k != "latestMessage"}},
        )

    # -- disputes

    def _fetch_disputes(self, cursor: str | None) -> Batch[NormDispute]:
        """INR inquiries, then returns, created within the dispute window: re-read every pass."""
        pc = self._pass(cursor, DISPUTES)
        now = self.now()
        window_from = min(pc.since, now - timedelta(days=self.settings.dispute_window_days))
        limit = self.settings.disputes_page_size
        if pc.phase == "return":
            page = self._read(
                "post_order",
                f"{POST_ORDER_BASE}/return/search",
                "return search",
                {
                    "creation_date_range_from": format_time(window_from),
                    "creation_date_range_to": format_time(now),
                    "limit": str(limit),
                    "offset": str(pc.offset),
                },
            )
            rows = [self._return_dispute(m) for m in _objects(page.get("members"), "return search members")]
        else:
            page = self._read(
                "post_order",
                f"{POST_ORDER_BASE}/inquiry/search",
                "inquiry search",
                {
                    "inquiry_creation_date_range_from": format_time(window_from),
                    "inquiry_creation_date_range_to": format_time(now),
                    "limit": str(limit),
                    "offset": str(pc.offset),
                },
            )
            rows = [self._inquiry_dispute(m) for m in _objects(page.get("members"), "inquiry search members")]
        if _post_order_has_more(page, pc.offset, len(rows)):
            nxt = PassCursor(pc.since, pc.started, pc.offset + len(rows), pc.phase or "inquiry")
            return Batch(rows=rows, cursor=nxt.dump(), more=True)
        if pc.phase != "return":
            return Batch(rows=rows, cursor=PassCursor(pc.since, pc.started, 0, "return").dump(), more=True)
        return Batch(rows=rows, cursor=self._finish_pass(pc, DISPUTES), more=False)

    def _inquiry_dispute(self, summary: dict[str, Any]) -> NormDispute:
        """An INR inquiry (search summary, plus its detail while open) as a NormDispute.

        The Post-Order contract has no response schemas; fields read here are eBay's documented
        InquirySummaryType / InquiryDetailsResponse names, each optional except inquiryId.
        """
        inquiry_id = summary.get("inquiryId")
        if not inquiry_id:
            raise ConnectorError(ErrorKind.FATAL, "ebay inquiry search: a member lacks inquiryId")
        what = f"inquiry {inquiry_id}"
        status = str(summary.get("inquiryStatusEnum") or summary.get("status") or "OTHER")
        detail: dict[str, Any] = {}
        if status not in INQUIRY_CLOSED:
            detail = self._read("post_order", f"{POST_ORDER_BASE}/inquiry/{inquiry_id}", "getInquiry")
            status = str(detail.get("inquiryStatusEnum") or detail.get("status") or status)
        merged = {**summary, **detail}
        details = _obj(merged.get("inquiryDetails"), f"{what} inquiryDetails")
        opened = _maybe_time(
            merged.get("creationDate") or details.get("creationDate"), f"{what} creationDate"
        )
        amount_raw = _obj(merged.get("claimAmount"), f"{what} claimAmount")
        outcome = str(details.get("desiredOutcome") or merged.get("desiredOutcome") or "")
        return NormDispute(
            external_id=f"{INQUIRY_PREFIX}{inquiry_id}",
            order_external_id=_post_order_order_id(merged),
            reason=_reason_text(str(merged.get("creationReason") or "ITEM_NOT_RECEIVED")),
            status=status,
            opened_at=opened or self.now(),
            is_open=status not in INQUIRY_CLOSED,
            buyer_request={"FULL_REFUND": "refund", "STILL_WANT_ITEM": "resend"}.get(outcome),
            amount=_money(amount_raw["value"], f"{what} claimAmount") if "value" in amount_raw else None,
            currency=_optional_currency(amount_raw.get("currency"), f"{what} claimAmount.currency"),
            response_due_at=_maybe_time(
                merged.get("respondByDate") or merged.get("sellerMakeItRightByDate"), f"{what} respondByDate"
            ),
            closed_at=_maybe_time(merged.get("inquiryClosureDate"), f"{what} inquiryClosureDate"),
            modified_at=_maybe_time(merged.get("lastModifiedDate"), f"{what} lastModifiedDate"),
            raw=merged,
        )

    def _return_dispute(self, summary: dict[str, Any]) -> NormDispute:
        """A return request (ReturnSummaryType from the search) as a NormDispute."""
        return_id = summary.get("returnId")
        if not return_id:
            raise ConnectorError(ErrorKind.FATAL, "ebay return search: a member lacks returnId")
        what = f"return {return_id}"
        state = str(summary.get("state") or summary.get("status") or "OTHER")
        creation = _obj(summary.get("creationInfo"), f"{what} creationInfo")
        totals = _obj(
            summary.get("sellerTotalRefund") or summary.get("buyerTotalRefund"), f"{what} totalRefund"
        )
        refund = _obj(totals.get("estimatedRefundAmount"), f"{what} estimatedRefundAmount")
        due = _obj(summary.get("sellerResponseDue"), f"{what} sellerResponseDue").get("respondByDate")
        kind = str(summary.get("currentType") or "MONEY_BACK")
        return NormDispute(
            external_id=f"{RETURN_PREFIX}{return_id}",
            order_external_id=_post_order_order_id({**_obj(creation.get("item"), f"{what} item"), **summary}),
            reason=_reason_text(str(creation.get("reason") or "RETURN")),
            status=state,
            opened_at=_maybe_time(creation.get("creationDate"), f"{what} creationDate") or self.now(),
            is_open=state not in RETURN_CLOSED and summary.get("status") != "CLOSED",
            buyer_request="resend" if kind in ("REPLACEMENT", "EXCHANGE") else "return",
            amount=_money(refund["value"], f"{what} refund amount") if "value" in refund else None,
            currency=_optional_currency(refund.get("currency"), f"{what} refund currency"),
            response_due_at=_maybe_time(due, f"{what} sellerResponseDue"),
            raw=summary,
        )

    # ----------------------------------------------------------------------------- writes

    def send_message(
        self, conversation_external_id: str, body: str, *, order_external_id: str | None
    ) -> SendResult:
        """Send once. A member conversation goes through sendMessage; a dispute id through Post-Order."""
        if not body.strip():
            raise ConnectorError(ErrorKind.FATAL, "ebay send_message: body is empty")
        if conversation_external_id.startswith((INQUIRY_PREFIX, RETURN_PREFIX)):
            kind, _, case_id = conversation_external_id.partition(":")
            self._write(
                "post_order",
                f"{POST_ORDER_BASE}/{kind}/{case_id}/send_message",
                f"{kind} send_message",
                {"message": {"content": body}},
            )
            sent_at = self.now()
            return SendResult(
                marketplace_message_id=f"{conversation_external_id}@{format_time(sent_at)}", sent_at=sent_at
            )
        if len(body) > MAX_MESSAGE_CHARS:
            raise ConnectorError(
                ErrorKind.FATAL,
                f"ebay send_message: body has {len(body)} characters, eBay takes {MAX_MESSAGE_CHARS}",
            )
        answer = self._write(
            "message",
            f"{MESSAGE_BASE}/send_message",
            "sendMessage",
            {"conversationId": conversation_external_id, "messageText": body},
        )
        message_id = answer.get("messageId")
        if not message_id:
            # The message went out but we cannot name it: reconciliation will find it by its body.
            raise ConnectorError(
                ErrorKind.RETRYABLE, "ebay sendMessage: answer lacks messageId", maybe_sent=True
            )
        sent_at = _maybe_time(answer.get("createdDate"), "sendMessage createdDate") or self.now()
        return SendResult(marketplace_message_id=str(message_id), sent_at=sent_at)

    def find_sent_message(
        self,
        conversation_external_id: str,
        body: str,
        since: datetime,
        *,
        exclude: frozenset[str] = frozenset(),
    ) -> str | None:
        """Our message with this body sent since `since` (minus the overlap for clock skew), if any."""
        after = since - timedelta(seconds=self.settings.overlap_seconds)
        wanted = _normalise(body)
        if conversation_external_id.startswith(INQUIRY_PREFIX):
            return self._find_in_inquiry(conversation_external_id, wanted, after, exclude)
        if conversation_external_id.startswith(RETURN_PREFIX):
            return self._find_in_return(conversation_external_id, wanted, after, exclude)
        seller = self._seller()
        for msg in self._conversation_messages(conversation_external_id):
            if (msg.get("senderUsername") or "").casefold() != seller.casefold():
                continue
            if _normalise(str(msg.get("messageBody") or "")) != wanted:
                continue
            when = _maybe_time(msg.get("createdDate"), "message createdDate")
            if (when is None or when >= after) and str(msg.get("messageId")) not in exclude:
                return str(msg.get("messageId"))
        return None

    def _find_in_inquiry(
        self, case: str, wanted: str, after: datetime, exclude: frozenset[str] = frozenset()
    ) -> str | None:
        """Reconcile in the inquiry history (ClaimHistoryEventModel: action, actor, date, description).

        The history is not covered by the contract and may not quote the text (unconfirmed), so a seller
        message event since `after` counts as ours: after a crash we rather skip a reply than send two.
        """
        detail = self._read("post_order", f"{POST_ORDER_BASE}/inquiry/{case.partition(':')[2]}", "getInquiry")
        events = ((detail.get("inquiryHistoryDetails") or {}).get("history")) or []
        return _match_history(
            case, events, wanted, after, text_key="description", who_key="actor", exclude=exclude
        )

    def _find_in_return(
        self, case: str, wanted: str, after: datetime, exclude: frozenset[str] = frozenset()
    ) -> str | None:
        """Reconcile in the return's responseHistory (activity, author, creationDate, notes); see above."""
        detail = self._read(
            "post_order",
            f"{POST_ORDER_BASE}/return/{case.partition(':')[2]}",
            "getReturn",
            {"fieldgroups": "FULL"},
        )
        events = ((detail.get("detail") or {}).get("responseHistory")) or []
        return _match_history(
            case, events, wanted, after, text_key="notes", who_key="author", exclude=exclude
        )

    def perform_action(self, request: ActionRequest) -> ActionResult:
        """Refunds through eBay (called once, never retried here); a resend is only recorded."""
        if request.type == "resend":
            return ActionResult(external_ref=f"resend:{request.idempotency_key}", done=True)
        if request.type not in ("refund_full", "refund_partial"):
            return super().perform_action(request)
        dispute = request.dispute_external_id or ""
        if request.type == "refund_full" and dispute.startswith(INQUIRY_PREFIX):
            # InquiryVoluntaryRefundRequest: a full refund of the missing item, closing the inquiry.
            inquiry_id = dispute.partition(":")[2]
            answer = self._write(
                "post_order",
                f"{POST_ORDER_BASE}/inquiry/{inquiry_id}/issue_refund",
                "inquiry issue_refund",
                {"comments": {"content": (request.note or "Full refund for the item not received.")[:1000]}},
            )
            status = str((answer.get("refundResult") or {}).get("refundStatus") or "")
            if status == "FAILED":
                raise ConnectorError(ErrorKind.FATAL, f"ebay inquiry {inquiry_id}: refund failed")
            return ActionResult(external_ref=f"{dispute}:refund", done=True)
        return self._issue_refund(request, dispute)

    def _issue_refund(self, request: ActionRequest, dispute: str) -> ActionResult:
        """Fulfillment issueRefund at order level (IssueRefundRequest)."""
        amount, currency = request.amount, request.currency
        if request.type == "refund_partial" and (amount is None or amount <= 0):
            raise ConnectorError(ErrorKind.FATAL, "ebay refund_partial: 'amount' must be a positive number")
        if amount is None or currency is None:
            order = self._read(
                "fulfillment", f"{FULFILLMENT_BASE}/order/{request.order_external_id}", "getOrder"
            )
            total = (order.get("pricingSummary") or {}).get("total") or {}
            if "value" not in total:
                raise ConnectorError(
                    ErrorKind.FATAL,
                    f"ebay order {request.order_external_id}: pricingSummary.total is missing",
                )
            amount = amount if amount is not None else _money(total["value"], "pricingSummary.total")
            currency = currency or total.get("currency")
        if dispute.startswith(INQUIRY_PREFIX):
            reason = REFUND_REASON_INQUIRY
        elif dispute.startswith(RETURN_PREFIX):
            reason = REFUND_REASON_RETURN
        else:
            reason = REFUND_REASON_OTHER
        body: dict[str, Any] = {
            "reasonForRefund": reason,
            "orderLevelRefundAmount": {"value": _cents(amount), "currency": str(currency).upper()},
        }
        if request.note:
            body["comment"] = request.note[:MAX_REFUND_COMMENT]
        answer = self._write(
            "fulfillment",
            f"{FULFILLMENT_BASE}/order/{request.order_external_id}/issue_refund",
            "issueRefund",
            body,
        )
        if answer.get("refundStatus") == "FAILED":
            raise ConnectorError(
                ErrorKind.FATAL, f"ebay issueRefund on order {request.order_external_id}: refund FAILED"
            )
        if not answer.get("refundId"):
            # Accepted but unnamed: find_action will see the refund on the order.
            raise ConnectorError(
                ErrorKind.RETRYABLE,
                f"ebay issueRefund on order {request.order_external_id}: answer lacks refundId",
                maybe_sent=True,
            )
        return ActionResult(external_ref=str(answer["refundId"]), done=True)

    def find_action(self, request: ActionRequest) -> ActionResult | None:
        """Reconcile a refund: any refund on the order that did not fail counts (never refund twice)."""
        if request.type == "resend":
            return ActionResult(external_ref=f"resend:{request.idempotency_key}", done=True)
        if request.type not in ("refund_full", "refund_partial"):
            return None
        order = self._read("fulfillment", f"{FULFILLMENT_BASE}/order/{request.order_external_id}", "getOrder")
        refunds = list((order.get("paymentSummary") or {}).get("refunds") or [])
        for li in order.get("lineItems") or []:
            refunds.extend(li.get("refunds") or [])
        for refund in refunds:
            if isinstance(refund, dict) and refund.get("refundStatus") != "FAILED":
                ref = refund.get("refundId") or refund.get("refundReferenceId") or "refund"
                return ActionResult(external_ref=str(ref), done=True)
        return None


# --------------------------------------------------------------------------- pure mapping


def order_status(
    *, fulfillment: str | None, payment: str | None, cancel_state: str | None, has_shipment: bool
) -> OrderStatus:
    """orderFulfillmentStatus / orderPaymentStatus / cancelState -> OrderStatus.

    eBay does not report delivery: delivered and completed come from tracking, never from here. A fully
    refunded order counts as cancelled (the sale no longer stands).
    """
    if cancel_state == "CANCELED" or payment == "FULLY_REFUNDED":
        return OrderStatus.cancelled
    if payment in ("PENDING", "FAILED"):
        return OrderStatus.unpaid
    if fulfillment == "FULFILLED":
        return OrderStatus.shipped
    if fulfillment == "IN_PROGRESS" and has_shipment:
        return OrderStatus.shipped
    return OrderStatus.paid


def _latest_estimate(
    line_items: list[dict[str, Any]], instructions: list[dict[str, Any]], what: str
) -> datetime | None:
    """The latest maxEstimatedDeliveryDate of the line items (or of the fulfillment instructions)."""
    dates = [
        parse_time(d, f"{what} maxEstimatedDeliveryDate")
        for li in line_items
        if (
            d := _obj(li.get("lineItemFulfillmentInstructions"), f"{what} instructions").get(
                "maxEstimatedDeliveryDate"
            )
        )
    ]
    if not dates:
        dates = [
            parse_time(i["maxEstimatedDeliveryDate"], f"{what} maxEstimatedDeliveryDate")
            for i in instructions
            if i.get("maxEstimatedDeliveryDate")
        ]
    return max(dates) if dates else None


def promised_delivery_days(
    *,
    max_estimated: datetime | None,
    shipped_at: datetime | None,
    paid_at: datetime | None,
    created_at: datetime,
) -> int | None:
    """Days from shipment (or payment, or creation, until it ships) to eBay's latest estimated delivery.

    The triage deadline is shipped_at + these days, so it lands on eBay's own promise; rounded up to
    whole days and kept within 1..365 (the Order contract's bounds).
    """
    if max_estimated is None:
        return None
    base = shipped_at or paid_at or created_at
    days = math.ceil((max_estimated - base).total_seconds() / 86400)
    return min(365, max(1, days))


def _post_order_order_id(data: dict[str, Any]) -> str:
    """The order a Post-Order case is about: `orderId` when eBay gives it, else the legacy
    `<itemId>-<transactionId>` order-line id (unconfirmed that inquiry answers carry orderId)."""
    order_id = data.get("orderId")
    if order_id:
        return str(order_id)
    item, txn = data.get("itemId"), data.get("transactionId")
    if item and txn:
        return f"{item}-{txn}"
    raise ConnectorError(
        ErrorKind.FATAL, "ebay post-order case names neither orderId nor itemId+transactionId"
    )


def _post_order_has_more(page: dict[str, Any], offset: int, count: int) -> bool:
    """Post-Order paginationOutput: {limit, offset, totalEntries, totalPages}; the total decides."""
    total = _obj(page.get("paginationOutput"), "post-order paginationOutput").get("totalEntries")
    if total is None:
        total = page.get("totalNumberOfInquiries", page.get("total"))
    if not isinstance(total, int) or count == 0:
        return False
    return offset + count < total


def _reason_text(code: str) -> str:
    """eBay reason codes as words for the triage lexicon: ITEM_NOT_RECEIVED -> 'item not received'."""
    return code.replace("_", " ").strip().lower() or "unknown"


def _normalise(text: str) -> str:
    return " ".join(text.split())


def _match_history(
    case: str,
    events: list[Any],
    wanted: str,
    after: datetime,
    *,
    text_key: str,
    who_key: str,
    exclude: frozenset[str] = frozenset(),
) -> str | None:
    fallback: str | None = None
    for event in events:
        if not isinstance(event, dict) or str(event.get(who_key) or "").upper() != "SELLER":
            continue
        date = event.get("date") or event.get("creationDate")
        when = _maybe_time(date, f"{case} history date") if date else None
        if when is None or when < after:
            continue
        ref = f"{case}@{format_time(when)}"
        if ref in exclude:
            continue
        if _normalise(str(event.get(text_key) or "")) == wanted:
            return ref
        action = str(event.get("action") or event.get("activity") or "").upper()
        if "MESSAGE" in action and fallback is None:
            fallback = ref
    return fallback
