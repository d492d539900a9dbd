"""AliExpress Open Platform (IOP) connector, and the sandbox marketplace that speaks the same dialect.

Facts come from `shared/spec/connectors.md` and public IOP SDKs; field names the public material
does not confirm are read defensively (several candidate keys, lists with or without the TOP-style
wrapper object) and the behaviour around them is a setting (`AliExpressSettings`).

Credentials (`AccountRef.credentials`): `app_key`, `app_secret`, `access_token`, `refresh_token`,
optional `expires_at` (ISO time or epoch milliseconds), optional `seller_login_id` (needed to send:
it tells our messages from the buyer's), optional `gateway_url`.

Token refresh: when `expires_at` is within `refresh_margin_minutes`, or a call is refused with an
expired-token error, the connector calls `/rest/auth/token/refresh` once, keeps using the new token,
stores the new credentials in `connector.refreshed_credentials` and passes them to the
`on_credentials_refreshed` callback: the caller must persist them (AliExpress rotates tokens).

Refunds: AliExpress has no seller-initiated refund API outside disputes, so `refund_full` and
`refund_partial` need `ActionRequest.dispute_external_id`: the connector agrees to the buyer's own
refund proposal when it asks for exactly the amount, and otherwise proposes a seller solution.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
    before_write,
    call_with_retry,
    classify_error,
    json_body,
    retry_after_seconds,
    transport_error,
)
from worker.triage.types import OrderStatus

log = logging.getLogger(__name__)

DEFAULT_GATEWAY = "https://api-sg.aliexpress.com"
SANDBOX_URL_ENV = "SELLERDESK_SANDBOX_URL"
SANDBOX_DEFAULT_URL = "http://127.0.0.1:8765"

# ------------------------------------------------------------------------------ API methods

ORDER_LIST = "aliexpress.trade.seller.orderlist.get"
ORDER_DETAIL = "aliexpress.trade.new.redefining.findorderbyid"
EXTEND_ACCEPT_TIME = "aliexpress.trade.redefining.extendsbuyeracceptgoodstime"
MSG_RELATIONS = "aliexpress.message.redefining.versiontwo.querymsgrelationlist"
MSG_DETAILS = "aliexpress.message.redefining.versiontwo.querymsgdetaillist"
MSG_ADD = "aliexpress.message.redefining.versiontwo.addmsg"
MSG_READ = "aliexpress.message.redefining.versiontwo.updatemsgread"
MSG_PROCESSED = "aliexpress.message.redefining.versiontwo.updatemsgprocessed"
ISSUE_LIST = "aliexpress.issue.issuelist.get"
ISSUE_DETAIL = "aliexpress.issue.detail.get"
SOLUTION_SAVE = "aliexpress.issue.solution.save"
SOLUTION_AGREE = "aliexpress.issue.solution.agree"
TOKEN_REFRESH = "/auth/token/refresh"

# Wrapper parameters that carry a JSON object (as the public SDKs send them).
ORDER_QUERY_PARAM = "param_aeop_order_query"
ORDER_DETAIL_PARAM = "param1"
RELATION_QUERY_PARAM = "query"
ISSUE_QUERY_PARAM = "query_dto"
ADD_MSG_PARAM = "create_param"

# ---------------------------------------------------------------------------- signing


def sign(app_secret: str, api_name: str, params: Mapping[str, str]) -> str:
    """IOP signature: uppercase hex HMAC-SHA256 over [api path] + sorted key+value pairs."""
    prefix = api_name if "/" in api_name else ""
    text = prefix + "".join(f"{key}{params[key]}" for key in sorted(params) if key != "sign")
    return hmac.new(app_secret.encode(), text.encode(), hashlib.sha256).hexdigest().upper()


def param_text(value: Any) -> str:
    """How one parameter travels: objects as compact JSON, booleans in lower case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return str(value)


# ------------------------------------------------------------------------- error table

_ACCOUNT_CODES = re.compile(
    r"^(IllegalAccessToken|AccessTokenExpired|InvalidSession|SessionExpired|IllegalRefreshToken|"
    r"InvalidAppKey|AppKeyNotExist|IncompleteSignature|InvalidSignature|InsufficientPermission|"
    r"AppNotAuthorized|26|27)$",
    re.IGNORECASE,
)
# Codes after which a token refresh may help (the others mean re-authorisation by a human).
_EXPIRED_TOKEN_CODES = frozenset({"IllegalAccessToken", "AccessTokenExpired", "InvalidSession", "27"})

AE_ERROR_RULES: tuple[ErrorRule, ...] = (
    # Throttling: legacy TOP code 7 "App Call Limited", IOP ApiCallLimit (unconfirmed); the text
    # carries "This ban will last for N more seconds", which becomes retry_after.
    ErrorRule(ErrorKind.RETRYABLE, code="7"),
    ErrorRule(ErrorKind.RETRYABLE, code=re.compile(r"^(ApiCallLimit|AppCallLimit|AccessControl)", re.I)),
    ErrorRule(ErrorKind.RETRYABLE, message=re.compile(r"call limited|ban will last|accesscontrol\.", re.I)),
    # The seller's authorisation is gone (revoked, expired beyond refresh, wrong app key/secret):
    # pause the account until someone re-authorises it. Before the ISV row, which they belong to.
    ErrorRule(ErrorKind.ACCOUNT, code=_ACCOUNT_CODES),
    ErrorRule(
        ErrorKind.ACCOUNT,
        message=re.compile(
            r"(access.?token|session|refresh.?token)\W.*(invalid|expired|revoked)|invalid session|"
            r"authori[sz]ation\W.*(cancel|revok|expir)",
            re.I,
        ),
    ),
    # Extension over the allowed limit (extendsbuyeracceptgoodstime sub_error_code 201): a wrong call.
    ErrorRule(ErrorKind.FATAL, code="201", category="BIZ"),
    # Platform-side failures: IOP type ISP / SYSTEM, legacy isp.* sub-codes.
    ErrorRule(ErrorKind.RETRYABLE, category="ISP"),
    ErrorRule(ErrorKind.RETRYABLE, category="SYSTEM"),
    # Validation of our request: IOP type ISV, legacy isv.* sub-codes, business refusals.
    ErrorRule(ErrorKind.FATAL, category="ISV"),
    ErrorRule(ErrorKind.FATAL, category="BIZ"),
    # Legacy TOP "service unavailable" / "remote service error" without a sub-code family.
    ErrorRule(
        ErrorKind.RETRYABLE, code=re.compile(r"^(10|15|ServiceUnavailable|SystemError|InternalError)$")
    ),
)


def _category_from_sub_code(sub_code: Any) -> str | None:
    text = str(sub_code or "").lower()
    if text.startswith("isp.") or text.startswith("accesscontrol."):
        return "ISP"
    if text.startswith("isv."):
        return "ISV"
    return None


def envelope_error(body: Mapping[str, Any]) -> tuple[str | None, str, str] | None:
    """(category, code, message) when the body is an IOP or legacy TOP error envelope, else None."""
    legacy = body.get("error_response")
    if isinstance(legacy, Mapping):
        code = str(legacy.get("code", ""))
        text = " ".join(
            str(part)
            for part in (
                legacy.get("msg") or legacy.get("message"),
                legacy.get("sub_code"),
                legacy.get("sub_msg"),
            )
            if part
        )
        category = legacy.get("type") or _category_from_sub_code(legacy.get("sub_code"))
        return (str(category) if category else None), code, text
    code = body.get("code")
    if code is not None and str(code) not in ("0", ""):
        text = str(body.get("message") or body.get("msg") or "")
        category = body.get("type")
        return (str(category) if category else None), str(code), text
    return None


# ----------------------------------------------------------------------- status tables

ORDER_STATUSES: dict[str, OrderStatus] = {
    "PLACE_ORDER_SUCCESS": OrderStatus.unpaid,
    "WAIT_BUYER_PAY": OrderStatus.unpaid,
    "RISK_CONTROL": OrderStatus.paid,
    "WAIT_SELLER_EXAMINE_MONEY": OrderStatus.paid,
    "WAIT_GROUP_SUCCESS": OrderStatus.paid,
    "WAIT_SELLER_SEND_GOODS": OrderStatus.paid,
    "SELLER_PART_SEND_GOODS": OrderStatus.shipped,
    "WAIT_BUYER_ACCEPT_GOODS": OrderStatus.shipped,
    "IN_ISSUE": OrderStatus.shipped,
    "IN_FROZEN": OrderStatus.shipped,
    "FUND_PROCESSING": OrderStatus.completed,
    "FINISH": OrderStatus.completed,
    "IN_CANCEL": OrderStatus.cancelled,
    "CANCELLED": OrderStatus.cancelled,
    "CANCEL": OrderStatus.cancelled,
}
# A FINISH order closed for one of these reasons was cancelled, not completed.
CANCEL_END_REASONS = frozenset(
    {
        "buyer_cancel_order",
        "buyer_cancel_notpay_order",
        "buyer_pay_timeout",
        "seller_cancel_order",
        "seller_send_goods_timeout",
        "cancel_order_close_trade",
        "risk_reject_closed",
        "buyer_refund_before_send",
    }
)
_FROZEN = frozenset({"IN_FROZEN", "FROZEN"})
_IN_ISSUE = frozenset({"IN_ISSUE"})

# AliExpress logistics service names -> the shipping_method vocabulary of triage.md.
SHIPPING_METHODS: dict[str, str] = {
    "CPAM": "china_post_small_packet",
    "CHINA_POST_AIR_MAIL": "china_post_small_packet",
    "CHINAPOST": "china_post_small_packet",
    "YANWEN_JYT": "china_post_small_packet",
    "EMS_ZX_ZX_US": "epacket",
    "E_EMS": "epacket",
    "EPACKET": "epacket",
    "CAINIAO_STANDARD": "aliexpress_standard",
    "AE_STANDARD": "aliexpress_standard",
    "CAINIAO_PREMIUM": "aliexpress_premium",
    "DHL": "dhl",
    "FEDEX_IE": "fedex",
    "FEDEX": "fedex",
    "UPS": "ups",
    "UPSE": "ups",
    "EMS": "ems",
    "TNT": "tnt",
}

# Dispute statuses after which the seller has nothing left to do (list and detail vocabularies).
CLOSED_ISSUE_STATUSES = frozenset(
    {"FINISH", "CANCELED_ISSUE", "CANCELLED_ISSUE", "CLOSE", "CLOSED", "CANCEL", "ACCEPTISSUE"}
)
BUYER_REQUESTS: dict[str, str] = {
    "refund": "refund",
    "return_and_refund": "return",
    "return": "return",
    "resend": "resend",
    "exchange": "resend",
}
# Solution statuses meaning the buyer's proposal was accepted (reconciling an agree).
_AGREED_SOLUTION = frozenset({"agree", "agreed", "accepted", "reached", "finish"})


def map_order_status(order_status: str, end_reason: str | None = None) -> OrderStatus:
    """Normalise an AliExpress order status; ValueError names the unknown value."""
    key = (order_status or "").strip().upper()
    try:
        status = ORDER_STATUSES[key]
    except KeyError:
        raise ValueError(f"unknown AliExpress order_status {order_status!r}") from None
    if status is OrderStatus.completed and (end_reason or "").strip().lower() in CANCEL_END_REASONS:
        return OrderStatus.cancelled
    return status


def normalise_shipping_method(service_name: str | None) -> str | None:
    """Map a logistics service name onto triage's vocabulary; unknown names become snake case."""
    if not service_name:
        return None
    key = service_name.strip().upper()
    if key in SHIPPING_METHODS:
        return SHIPPING_METHODS[key]
    return re.sub(r"[^a-z0-9]+", "_", service_name.strip().lower()).strip("_") or None


# ---------------------------------------------------------------------------- settings


class AliExpressSettings(BaseModel):
    """Per-account tunables, read from `AccountRef.settings` (unknown keys are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    page_size: int = Field(50, ge=1, le=100)
    # List pages read per fetch() call; the cursor resumes where the call stopped.
    max_pages_per_call: int = Field(5, ge=1, le=1000)
    # Message pages read per conversation and window (newest first).
    max_detail_pages: int = Field(20, ge=1, le=1000)
    # Each window starts this much before the previous one ended (clock skew, late writes).
    overlap_minutes: float = Field(10.0, ge=0, le=24 * 60)
    # Without a cursor, start this far back.
    initial_lookback_days: float = Field(30.0, gt=0, le=365)
    # One findorderbyid per listed order for promised days, country and tracking number.
    fetch_order_detail: bool = True
    max_extend_days: int = Field(30, ge=1, le=90)
    rate_per_second: float = Field(5.0, gt=0)
    burst: int = Field(10, ge=1)
    refresh_margin_minutes: float = Field(360.0, ge=0)
    # Order times in requests and answers are US Pacific (connectors.md).
    api_timezone: str = "America/Los_Angeles"
    # Sender ids (lower case) and message types that are AliExpress itself, not the buyer.
    system_senders: tuple[str, ...] = ("aliexpress", "system", "aliexpress_system")
    system_message_types: tuple[str, ...] = ("system", "notice", "system_notice")
    # The issue list is assumed newest-modified first, so a poll stops at the first older page;
    # set False to scan every page each window (unconfirmed ordering).
    issue_list_sorted_by_modified: bool = True
    # How far before `since` reconciliation looks for our message (marketplace clock skew).
    reconcile_skew_seconds: float = Field(120.0, ge=0)
    solution_context: str = "We have proposed a refund for your order."

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> AliExpressSettings:
        try:
            return cls.model_validate(dict(values or {}))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"invalid AliExpress setting {field!r}: {first['msg']}") from None

    @property
    def overlap(self) -> timedelta:
        return timedelta(minutes=self.overlap_minutes)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.api_timezone)


# ------------------------------------------------------------------------------ cursor


@dataclass(frozen=True, slots=True)
class WindowCursor:
    """Where a stream stands: the window [since - overlap, until] being paged, and the next page.

    `until` is None between windows; the next fetch opens [since - overlap, now]. `total` is the
    row count the server last reported for this window (orders), to notice rows leaving it.
    """

    since: datetime
    until: datetime | None = None
    page: int = 1
    total: int | None = None

    @classmethod
    def load(cls, text: str | None, default_since: datetime) -> WindowCursor:
        """Parse a saved cursor; a malformed one raises ValueError naming the field."""
        if not text:
            return cls(since=default_since)
        try:
            data = json.loads(text)
        except ValueError:
            raise ValueError(f"cursor is not JSON: {text[:80]!r}") from None
        if not isinstance(data, dict):
            raise ValueError("cursor must be a JSON object")
        since = _cursor_time(data, "since")
        if since is None:
            raise ValueError("cursor field 'since' is missing")
        page = data.get("page", 1)
        if not isinstance(page, int) or page < 1:
            raise ValueError(f"cursor field 'page' must be a positive integer, got {page!r}")
        total = data.get("total")
        if total is not None and (not isinstance(total, int) or total < 0):
            raise ValueError(f"cursor field 'total' must be a non-negative integer, got {total!r}")
        return cls(since=since, until=_cursor_time(data, "until"), page=page, total=total)

    def dump(self) -> str:
        data: dict[str, Any] = {"since": self.since.isoformat(), "page": self.page}
        if self.until is not None:
            data["until"] = self.until.isoformat()
        if self.total is not None:
            data["total"] = self.total
        return json.dumps(data, sort_keys=True)


def _cursor_time(data: Mapping[str, Any], key: str) -> datetime | None:
    value = data.get(key)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"cursor field {key!r} is not an ISO time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# ----------------------------------------------------------------------- field readers


def first(row: Mapping[str, Any] | None, *keys: str) -> Any:
    """The first present, non-empty value among `keys`."""
    if not row:
        return None
    for key in keys:
        value = row.get(key)
        if value not in (None, "", [], {}):
            return value
    return None


def as_list(value: Any, name: str = "list") -> list[Any]:
    """A list, unwrapping the TOP-style `{"some_dto": [...]}` object that AliExpress puts around lists."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        if len(value) == 1:
            (inner,) = value.values()
            if isinstance(inner, list):
                return inner
            if isinstance(inner, dict):
                return [inner]
        return [value]
    raise ValueError(f"field {name!r}: expected a list, got {type(value).__name__}")


def list_field(row: Mapping[str, Any], *keys: str) -> list[dict[str, Any]]:
    items = as_list(first(row, *keys), keys[0])
    return [item for item in items if isinstance(item, dict)]


def pick(row: Mapping[str, Any] | None, *keys: str) -> tuple[str | None, Any]:
    """Like `first`, with the key that held the value (so an error names the field really sent)."""
    if not row:
        return None, None
    for key in keys:
        value = row.get(key)
        if value not in (None, "", [], {}):
            return key, value
    return None, None


def object_field(row: Mapping[str, Any] | None, *keys: str) -> Mapping[str, Any]:
    """A nested object (buyer_info, summary...); absent is empty, any other type is a ValueError naming it."""
    value = first(row, *keys)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"field {keys[0]!r}: expected an object, got {type(value).__name__}")
    return value


def parse_time(value: Any, tz: ZoneInfo) -> datetime | None:
    """Epoch milliseconds/seconds, ISO 8601, or "YYYY-MM-DD HH:MM:SS" in the API's zone -> aware UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    try:
        if isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().isdigit()):
            number = float(value)
            seconds = number / 1000 if number > 1e11 else number
            return datetime.fromtimestamp(seconds, UTC)
        text = str(value).strip()
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
            for fmt in ("%Y-%m-%d %H:%M:%S", "%Y%m%d%H%M%S", "%m/%d/%Y %H:%M:%S"):
                try:
                    parsed = datetime.strptime(text, fmt)
                    break
                except ValueError:
                    continue
            if parsed is None:
                raise ValueError(f"unparseable time {text[:80]!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=tz)
        return parsed.astimezone(UTC)
    except (OverflowError, OSError):
        # Year 9999 in a zone west of UTC, epoch 1e30, infinity: no datetime can hold them.
        raise ValueError(f"time out of range: {str(value)[:80]!r}") from None


def format_api_time(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


# Amounts are stored as NUMERIC(12, 2) and never rounded (worker/db.py Money): refuse what cannot fit.
MAX_AMOUNT = Decimal("9999999999.99")
CENT = Decimal("0.01")


def parse_money(value: Any, name: str = "amount") -> tuple[Decimal | None, str | None]:
    """`{"amount": "1.50", "currency_code": "USD"}` or `{"cent": 150, ...}` -> (Decimal, currency).

    A ValueError names `name` when the amount is not a finite number of whole cents within range.
    """
    if value is None:
        return None, None
    if not isinstance(value, Mapping):
        return _amount(_decimal(value, name), name), None
    currency = first(value, "currency_code", "currencyCode", "currency")
    if currency is not None and not (
        isinstance(currency, str) and len(currency) == 3 and currency.isascii() and currency.isalpha()
    ):
        raise ValueError(f"field {name!r}: currency is not a currency code: {currency!r:.40}")
    amount = first(value, "amount")
    if amount is None and first(value, "cent") is not None:
        cents = _decimal(value["cent"], name)
        return _amount(cents / 100 if cents is not None else None, name), currency
    return _amount(_decimal(amount, name), name), currency


def _amount(value: Decimal | None, name: str) -> Decimal | None:
    if value is None:
        return None
    if not value.is_finite() or abs(value) > MAX_AMOUNT:
        raise ValueError(f"field {name!r}: amount out of range: {value}")
    if value < 0:
        raise ValueError(f"field {name!r}: amount is negative: {value}")
    if value != value.quantize(CENT):
        raise ValueError(f"field {name!r}: amount has fractions of a cent: {value}")
    return value


def _decimal(value: Any, name: str = "value") -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"field {name!r}: not a number: {value!r}")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"field {name!r}: not a number: {str(value)[:40]!r}") from None


def _int(value: Any, name: str = "value", low: int = 0, high: int = 2**31 - 1) -> int | None:
    """An integer within [low, high] (database INTEGER range by default); ValueError names the field."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
        raise ValueError(f"field {name!r}: not an integer: {value!r}")
    try:
        number = int(value) if isinstance(value, float) else int(str(value).strip())
    except (ValueError, OverflowError):
        raise ValueError(f"field {name!r}: not an integer: {str(value)[:40]!r}") from None
    if not low <= number <= high:
        raise ValueError(f"field {name!r}: {number} is outside {low}..{high}")
    return number


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


# --------------------------------------------------------------------------- connector


class AliExpressConnector(Connector):
    """One AliExpress seller account through the IOP gateway."""

    marketplace: ClassVar[str] = "aliexpress"
    capabilities: ClassVar[Capabilities] = Capabilities(
        send_message=True,
        extend_protection=True,
        refund_full=True,  # through the buyer's dispute only (see module docstring)
        refund_partial=True,  # idem
        resend=True,  # recorded for the warehouse; no API call
        coupon=False,
        review_solicitation=False,
        max_extend_days=30,
    )
    streams: ClassVar[tuple[str, ...]] = (ORDERS, MESSAGES, DISPUTES)
    error_rules: ClassVar[tuple[ErrorRule, ...]] = AE_ERROR_RULES
    # An extension leaves no trace AliExpress shows (find_action returns None for it).
    unconfirmable_actions: ClassVar[frozenset[str]] = frozenset({"extend_protection"})

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
        self.settings = AliExpressSettings.from_mapping(account.settings)
        self.credentials: dict[str, Any] = dict(account.credentials)
        for key in ("app_key", "app_secret", "access_token"):
            if not self.credentials.get(key):
                raise ValueError(
                    f"{self.marketplace} account {account.name!r}: credential {key!r} is missing"
                )
        self.gateway = str(self.credentials.get("gateway_url") or self.default_gateway()).rstrip("/")
        self.sleep = sleep
        self.on_credentials_refreshed = on_credentials_refreshed
        # Set after a token refresh: the caller persists it (encrypted) in place of the old ones.
        self.refreshed_credentials: dict[str, Any] | None = None
        self.capabilities = dataclasses.replace(  # type: ignore[misc]
            type(self).capabilities, max_extend_days=self.settings.max_extend_days
        )

    @classmethod
    def default_gateway(cls) -> str:
        return DEFAULT_GATEWAY

    @property
    def _limit_key(self) -> str:
        return f"{self.marketplace}:{self.account.id}"

    # ------------------------------------------------------------------ transport

    def _call(self, method: str, params: Mapping[str, Any], *, write: bool = False) -> dict[str, Any]:
        """One signed business call; a refused expired token is refreshed once and the call repeated."""
        self._refresh_if_due()
        try:
            return self._call_once(method, params, write=write)
        except ConnectorError as exc:
            if not (
                exc.kind is ErrorKind.ACCOUNT
                and exc.code in _EXPIRED_TOKEN_CODES
                and self.credentials.get("refresh_token")
            ):
                raise
            log.info("aliexpress account %s: access token refused, refreshing", self.account.id)
        # An explicit refusal means nothing was done, so repeating a write here is safe.
        self.refresh_access_token()
        return self._call_once(method, params, write=write)

    def _call_once(self, method: str, params: Mapping[str, Any], *, write: bool) -> dict[str, Any]:
        if self.limiter is not None:
            self.limiter.acquire(self._limit_key, self.settings.rate_per_second, self.settings.burst)
        form = {
            "app_key": str(self.credentials["app_key"]),
            "method": method,
            "session": str(self.credentials["access_token"]),
            # The gateway checks the signature time against its own clock: always the wall clock.
            "timestamp": str(int(time.time() * 1000)),
            "sign_method": "sha256",
        }
        form.update({key: param_text(value) for key, value in params.items() if value is not None})
        form["sign"] = sign(str(self.credentials["app_secret"]), method, form)
        try:
            response = self.http.post(f"{self.gateway}/sync", data=form)
        except httpx.TransportError as exc:
            raise transport_error(exc) from None
        body = self._envelope(method, response, write=write)
        payload = body.get(method.replace(".", "_") + "_response", body)
        if not isinstance(payload, dict):
            raise ConnectorError(ErrorKind.FATAL, f"{method}: unexpected response shape")
        return payload

    def _envelope(self, what: str, response: httpx.Response, *, write: bool) -> dict[str, Any]:
        """The JSON body, or a classified ConnectorError for an HTTP or envelope error."""
        status = response.status_code
        try:
            body = json_body(response)
        except ValueError:
            body = None
        error = envelope_error(body) if isinstance(body, dict) else None
        if error is None and status < 400:
            if isinstance(body, dict):
                return body
            # A 200 that is not JSON is a gateway hiccup; for a write it may have been done.
            raise ConnectorError(
                ErrorKind.RETRYABLE, f"{what}: response is not a JSON object", status=status, maybe_sent=write
            )
        category, code, text = error or (None, None, f"http {status}")
        kind = classify_error(self.error_rules, status=status, code=code, message=text, category=category)
        retry_after = retry_after_seconds(response.headers, text) if kind is ErrorKind.RETRYABLE else None
        raise ConnectorError(
            kind,
            f"{what}: {text}"[:500],
            code=code,
            status=status,
            retry_after=retry_after,
            # An error envelope is an explicit refusal; only a server failure leaves a write unknown.
            maybe_sent=write and status >= 500,
        )

    def _result(self, method: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The `result` object, raising a classified error when it reports a business failure."""
        result = payload.get("result", payload)
        if not isinstance(result, dict):
            return {"value": result}
        ok = first(result, "success", "is_success", "result_success")
        if ok is False or (isinstance(ok, str) and ok.lower() == "false"):
            code = first(
                result, "sub_error_code", "error_code", "result_code", "err_code", "result_error_code"
            )
            text = str(
                first(
                    result, "error_message", "error_msg", "memo", "result_error_desc", "error_desc", "err_msg"
                )
                or "refused"
            )
            code_text = str(code) if code is not None else None
            kind = classify_error(self.error_rules, status=None, code=code_text, message=text, category="BIZ")
            raise ConnectorError(kind, f"{method}: {text}"[:500], code=code_text)
        return result

    @staticmethod
    def _page_rows(
        method: str,
        result: Mapping[str, Any],
        list_keys: tuple[str, ...],
        total_keys: tuple[str, ...] = (),
    ) -> tuple[list[dict[str, Any]], int | None]:
        """A list page's rows and reported total; a malformed page is refused (FATAL), naming the field."""
        try:
            rows = list_field(result, *list_keys)
            total = _int(first(result, *total_keys), total_keys[0]) if total_keys else None
        except ValueError as exc:
            raise ConnectorError(ErrorKind.FATAL, f"{method}: {exc}") from None
        return rows, total

    def _read(self, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """An idempotent read with retries; returns the `result` object."""
        return call_with_retry(
            lambda: self._result(method, self._call(method, params)), self.retry, sleep=self.sleep
        )

    def _write(self, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """A write, called exactly once: never retried here (the outbox reconciles)."""
        before_write()
        return self._result(method, self._call(method, params, write=True))

    # ------------------------------------------------------------------ tokens

    def _expires_at(self) -> datetime | None:
        value = self.credentials.get("expires_at")
        try:
            return parse_time(value, ZoneInfo("UTC"))
        except ValueError:
            raise ValueError(
                f"account {self.account.name!r}: credential 'expires_at' is not a time"
            ) from None

    def _refresh_if_due(self) -> None:
        expires_at = self._expires_at()
        if expires_at is None or not self.credentials.get("refresh_token"):
            return
        if self.now() + timedelta(minutes=self.settings.refresh_margin_minutes) >= expires_at:
            self.refresh_access_token()

    def refresh_access_token(self) -> dict[str, Any]:
        """Exchange the refresh token for new tokens (called once, not retried); returns the new credentials."""
        refresh_token = self.credentials.get("refresh_token")
        if not refresh_token:
            raise ConnectorError(ErrorKind.ACCOUNT, "access token expired and no refresh_token is stored")
        form = {
            "app_key": str(self.credentials["app_key"]),
            "timestamp": str(int(time.time() * 1000)),
            "sign_method": "sha256",
            "refresh_token": str(refresh_token),
        }
        form["sign"] = sign(str(self.credentials["app_secret"]), TOKEN_REFRESH, form)
        try:
            response = self.http.post(f"{self.gateway}/rest{TOKEN_REFRESH}", data=form)
        except httpx.TransportError as exc:
            raise transport_error(exc) from None
        body = self._envelope(TOKEN_REFRESH, response, write=False)
        access_token = body.get("access_token")
        if not access_token:
            raise ConnectorError(ErrorKind.RETRYABLE, f"{TOKEN_REFRESH}: answer has no access_token")
        updated = dict(self.credentials)
        updated["access_token"] = access_token
        if body.get("refresh_token"):
            updated["refresh_token"] = body["refresh_token"]
        expires = parse_time(body.get("expire_time"), ZoneInfo("UTC"))
        if expires is None and body.get("expires_in") is not None:
            expires = self.now() + timedelta(seconds=float(body["expires_in"]))
        if expires is not None:
            updated["expires_at"] = expires.isoformat()
        refresh_valid = parse_time(body.get("refresh_token_valid_time"), ZoneInfo("UTC"))
        if refresh_valid is not None:
            updated["refresh_expires_at"] = refresh_valid.isoformat()
        self.credentials = updated
        self.refreshed_credentials = dict(updated)
        if self.on_credentials_refreshed is not None:
            self.on_credentials_refreshed(dict(updated))
        return dict(updated)

    # ------------------------------------------------------------------ reads

    def check_credentials(self) -> None:
        """A one-row order query: raises ConnectorError(ACCOUNT) when the authorisation is gone."""
        now = self.now()
        tz = self.settings.tz
        self._read(
            ORDER_LIST,
            {
                ORDER_QUERY_PARAM: {
                    "modified_date_start": format_api_time(now - timedelta(days=1), tz),
                    "modified_date_end": format_api_time(now, tz),
                    "current_page": 1,
                    "page_size": 1,
                }
            },
        )

    def fetch(self, stream: str, cursor: str | None) -> Batch[Any]:
        """The next bounded batch of orders, messages or disputes after `cursor` (JSON text)."""
        if stream == ORDERS:
            return self._fetch_orders(cursor)
        if stream == MESSAGES:
            return self._fetch_messages(cursor)
        if stream == DISPUTES:
            return self._fetch_disputes(cursor)
        raise ValueError(f"unknown stream {stream!r} (streams: {', '.join(self.streams)})")

    def _open_window(self, cursor: str | None) -> WindowCursor:
        now = self.now()
        default_since = now - timedelta(days=self.settings.initial_lookback_days)
        current = WindowCursor.load(cursor, default_since)
        if current.until is None:
            current = WindowCursor(since=current.since, until=max(now, current.since), page=1)
        return current

    # orders ------------------------------------------------------------------

    def _fetch_orders(self, cursor: str | None) -> Batch[NormOrder]:
        window = self._open_window(cursor)
        assert window.until is not None
        tz = self.settings.tz
        size = self.settings.page_size
        rows: dict[str, NormOrder] = {}
        page, total = window.page, window.total
        for _ in range(self.settings.max_pages_per_call):
            result = self._read(
                ORDER_LIST,
                {
                    ORDER_QUERY_PARAM: {
                        "modified_date_start": format_api_time(window.since - self.settings.overlap, tz),
                        "modified_date_end": format_api_time(window.until, tz),
                        "current_page": page,
                        "page_size": size,
                    }
                },
            )
            items, page_total = self._page_rows(
                ORDER_LIST, result, ("target_list", "order_list"), ("total_count", "total_item")
            )
            if not items and page_total is not None and (page - 1) * size < page_total:
                # The server says rows remain but sent none: retry this page later, never skip it.
                raise ConnectorError(ErrorKind.RETRYABLE, f"{ORDER_LIST}: empty page {page} of {page_total}")
            for item in items:
                order = self._order(item)
                rows[order.external_id] = order
            next_page = page + 1
            if page_total is not None and total is not None and page_total < total:
                # Rows left the window while we paged (modified after `until`): the rows behind them
                # moved up by as many places, so step back far enough not to skip any.
                consumed = (page - 1) * size
                next_page = min(next_page, max(1, (consumed - (total - page_total)) // size + 1))
            if page_total is not None:
                total = page_total
            last = not items or (page * size >= total if total is not None else len(items) < size)
            if last and next_page > page:
                return Batch(_by(rows, "modified_at"), WindowCursor(since=window.until).dump(), more=False)
            page = next_page
        cursor_out = WindowCursor(since=window.since, until=window.until, page=page, total=total)
        return Batch(_by(rows, "modified_at"), cursor_out.dump(), more=True)

    def _order(self, item: Mapping[str, Any]) -> NormOrder:
        order_id = first(item, "order_id", "id")
        if order_id is None:
            raise ConnectorError(ErrorKind.FATAL, f"{ORDER_LIST}: a listed order has no order_id")
        order_id = str(order_id)
        detail: dict[str, Any] = {}
        if self.settings.fetch_order_detail:
            detail = self._read(ORDER_DETAIL, {ORDER_DETAIL_PARAM: {"order_id": order_id}})
        try:
            return self._norm_order(order_id, item, detail)
        except ValueError as exc:
            raise ConnectorError(ErrorKind.FATAL, f"order {order_id}: {exc}") from None

    def _norm_order(self, order_id: str, item: Mapping[str, Any], detail: Mapping[str, Any]) -> NormOrder:
        tz = self.settings.tz

        def when(*keys: str) -> datetime | None:
            for source in (detail, item):
                for key in keys:
                    value = source.get(key)
                    if value not in (None, ""):
                        try:
                            return parse_time(value, tz)
                        except ValueError as exc:
                            raise ValueError(f"field {key!r}: {exc}") from None
            return None

        raw_status = first(detail, "order_status") or first(item, "order_status")
        if not raw_status:
            raise ValueError("field 'order_status' is missing")
        end_reason = first(detail, "end_reason") or first(item, "end_reason")
        status = map_order_status(str(raw_status), end_reason)
        total_key, total_value = pick(item, "pay_amount", "order_amount")
        if total_value is None:
            total_key, total_value = pick(detail, "order_amount", "pay_amount")
        total, currency = parse_money(total_value, total_key or "pay_amount")
        if total is None or not currency:
            raise ValueError("field 'pay_amount' is missing")
        modified_at = when("gmt_update", "gmt_modified") or when("gmt_create")
        if modified_at is None:
            raise ValueError("field 'gmt_update' is missing")
        buyer = object_field(detail, "buyer_info")
        address = object_field(detail, "receipt_address")
        products = list_field(item, "product_list")
        children = list_field(detail, "child_order_list")
        logistics = list_field(detail, "logistic_info_list", "logistics_info_list") or list_field(
            item, "logistics_info_list"
        )
        last_logistics = logistics[-1] if logistics else {}
        service = first(last_logistics, "logistics_service_name", "logistics_type_code") or first(
            products[0] if products else {}, "logistics_service_name", "logistics_type"
        )
        commit_days = [
            _int(value, key, 0, 365)
            for p in (*products, *children)
            for key, value in [pick(p, "freight_commit_day", "freightCommitDay")]
        ]
        promised = max((d for d in commit_days if d), default=None)
        country = first(buyer, "country") or first(address, "country")
        first_name, last_name = first(buyer, "first_name"), first(buyer, "last_name")
        buyer_name = first(item, "buyer_signer_fullname") or (
            " ".join(p for p in (first_name, last_name) if p) or None
        )
        trade_end = when("gmt_trade_end")
        frozen = str(first(detail, "frozen_status") or first(item, "frozen_status") or "").upper()
        issue = str(first(detail, "issue_status") or first(item, "issue_status") or "").upper()
        protection_open = (
            str(raw_status).upper() == "WAIT_BUYER_ACCEPT_GOODS"
            and frozen not in _FROZEN
            and issue not in _IN_ISSUE
        )
        items = tuple(self._norm_item(p, currency) for p in (children or products))
        return NormOrder(
            external_id=order_id,
            status=status,
            total=total,
            currency=str(currency).upper(),
            modified_at=modified_at,
            buyer_id=_str_or_none(first(item, "buyer_login_id") or first(detail, "buyer_login_id"))
            or _str_or_none(first(buyer, "login_id")),
            buyer_name=_str_or_none(buyer_name),
            buyer_country=str(country).upper()[:2] if country else None,
            paid_at=when("gmt_pay_time", "gmt_pay_success"),
            shipped_at=when("gmt_send_goods_time") or _first_time(logistics, "gmt_send", tz),
            completed_at=trade_end if status is OrderStatus.completed else None,
            cancelled_at=trade_end if status is OrderStatus.cancelled else None,
            shipping_method=normalise_shipping_method(_str_or_none(service)),
            tracking_number=_str_or_none(first(last_logistics, "logistics_no", "tracking_number")),
            carrier=_str_or_none(service),
            promised_delivery_days=promised,
            protection_open=protection_open,
            items=items,
            raw={"list": dict(item), "detail": dict(detail)},
        )

    @staticmethod
    def _norm_item(product: Mapping[str, Any], currency: str) -> NormItem:
        price_key, price_value = pick(product, "product_unit_price", "product_price", "init_order_amt")
        price, item_currency = parse_money(price_value, price_key or "product_unit_price")
        count_key, count = pick(product, "product_count", "quantity")
        return NormItem(
            sku=_str_or_none(first(product, "sku_code", "sku_id")),
            title=str(first(product, "product_name", "product_title") or ""),
            quantity=_int(count, count_key or "product_count") or 1,
            price=price if price is not None else Decimal("0"),
            currency=str(item_currency or currency).upper(),
        )

    # messages ----------------------------------------------------------------

    def _fetch_messages(self, cursor: str | None) -> Batch[NormMessage]:
        window = self._open_window(cursor)
        assert window.until is not None
        low = window.since - self.settings.overlap
        size = self.settings.page_size
        rows: dict[str, NormMessage] = {}
        page = window.page
        for _ in range(self.settings.max_pages_per_call):
            result = self._read(
                MSG_RELATIONS, {RELATION_QUERY_PARAM: {"page_size": size, "current_page": page}}
            )
            channels, total = self._page_rows(
                MSG_RELATIONS,
                result,
                ("result_list", "relation_list", "message_relation_list"),
                ("total_count", "total_item"),
            )
            newest: datetime | None = None
            for channel in channels:
                last = self._time(channel, "last_message_create_time", "gmt_modified", "last_message_time")
                newest = last if newest is None or (last is not None and last > newest) else newest
                # Channels are listed newest conversation first; a page may come shuffled, so
                # each one is judged on its own and the page as a whole decides when to stop.
                if last is None or last >= low:
                    for message in self._channel_messages(channel, low):
                        rows[message.external_id] = message
            last_page = (
                not channels
                or (newest is not None and newest < low)
                or (page * size >= total if total is not None else len(channels) < size)
            )
            if last_page:
                return Batch(_by(rows, "sent_at"), WindowCursor(since=window.until).dump(), more=False)
            page += 1
        return Batch(_by(rows, "sent_at"), WindowCursor(window.since, window.until, page).dump(), more=True)

    def _detail_page(self, channel_id: str, page: int) -> list[dict[str, Any]]:
        result = self._read(
            MSG_DETAILS,
            {"channel_id": channel_id, "current_page": page, "page_size": self.settings.page_size},
        )
        rows, _ = self._page_rows(MSG_DETAILS, result, ("message_detail_list", "result_list", "detail_list"))
        return rows

    def _channel_messages(self, channel: Mapping[str, Any], low: datetime) -> list[NormMessage]:
        channel_id = _str_or_none(first(channel, "channel_id"))
        if channel_id is None:
            raise ConnectorError(ErrorKind.FATAL, f"{MSG_RELATIONS}: a conversation has no channel_id")
        out: list[NormMessage] = []
        for page in range(1, self.settings.max_detail_pages + 1):
            details = self._detail_page(channel_id, page)
            newest: datetime | None = None
            for detail in details:
                message = self._norm_message(channel, channel_id, detail)
                newest = message.sent_at if newest is None or message.sent_at > newest else newest
                if message.sent_at >= low:
                    out.append(message)
            if not details or (newest is not None and newest < low) or len(details) < self.settings.page_size:
                return out
        log.warning(
            "aliexpress account %s: conversation %s has more than %d pages in one window",
            self.account.id,
            channel_id,
            self.settings.max_detail_pages,
        )
        return out

    def _direction(self, sender: str | None, message_type: str | None, buyer_id: str | None) -> str:
        sender_key = (sender or "").strip().lower()
        if (message_type or "").lower() in self.settings.system_message_types or (
            sender_key and sender_key in self.settings.system_senders
        ):
            return "system"
        seller = _str_or_none(self.credentials.get("seller_login_id"))
        if seller and sender_key == seller.lower():
            return "seller"
        if buyer_id and sender_key == buyer_id.lower():
            return "buyer"
        if seller:
            return "buyer"
        if buyer_id:
            return "seller"
        raise ValueError("cannot tell the sender's side: no seller_login_id credential nor buyer id")

    def _norm_message(
        self, channel: Mapping[str, Any], channel_id: str, detail: Mapping[str, Any]
    ) -> NormMessage:
        message_id = _str_or_none(first(detail, "id", "message_id", "msg_id"))
        try:
            sent_at = self._time(detail, "gmt_create", "create_time")
            if message_id is None or sent_at is None:
                raise ValueError("field 'id' or 'gmt_create' is missing")
            buyer_id = _str_or_none(first(channel, "other_login_id", "buyer_login_id"))
            direction = self._direction(
                _str_or_none(first(detail, "sender_login_id", "sender_id")),
                _str_or_none(first(detail, "message_type")),
                buyer_id,
            )
            summary = object_field(detail, "summary")
            content = first(detail, "content")
            if content is not None and not isinstance(content, str | int | float):
                raise ValueError(f"field 'content' is not text but {type(content).__name__}")
        except ValueError as exc:
            raise ConnectorError(ErrorKind.FATAL, f"conversation {channel_id} message: {exc}") from None
        order_id = first(summary, "order_id", "orderId")
        if order_id is None and str(first(detail, "message_type") or "").lower() == "order":
            order_id = first(detail, "extern_id")
        if order_id is None and str(first(channel, "msg_sources", "message_type") or "") == "order_msg":
            order_id = channel_id
        return NormMessage(
            external_id=message_id,
            conversation_external_id=channel_id,
            direction=direction,
            body=str(content or ""),
            sent_at=sent_at,
            buyer_id=buyer_id,
            buyer_name=_str_or_none(first(channel, "other_name")),
            order_external_id=_str_or_none(order_id),
            raw=dict(detail),
        )

    def _time(self, row: Mapping[str, Any], *keys: str) -> datetime | None:
        value = first(row, *keys)
        try:
            return parse_time(value, self.settings.tz)
        except ValueError as exc:
            raise ConnectorError(ErrorKind.FATAL, f"field {keys[0]!r}: {exc}") from None

    def mark_read(self, conversation_external_id: str) -> None:
        """Mark a conversation read on AliExpress (idempotent, so retried)."""
        self._read(MSG_READ, {"channel_id": conversation_external_id, "msg_sources": "message_center"})

    def mark_processed(self, conversation_external_id: str, processed: bool = True) -> None:
        """Mark a conversation processed (deal_stat 1) or not (0) (idempotent, so retried)."""
        self._read(
            MSG_PROCESSED, {"channel_id": conversation_external_id, "deal_stat": 1 if processed else 0}
        )

    # disputes ----------------------------------------------------------------

    def _fetch_disputes(self, cursor: str | None) -> Batch[NormDispute]:
        window = self._open_window(cursor)
        assert window.until is not None
        low = window.since - self.settings.overlap
        size = self.settings.page_size
        rows: dict[str, NormDispute] = {}
        page = window.page
        for _ in range(self.settings.max_pages_per_call):
            result = self._read(ISSUE_LIST, {ISSUE_QUERY_PARAM: {"current_page": page, "page_size": size}})
            issues, total = self._page_rows(
                ISSUE_LIST, result, ("data_list", "issue_list", "result_list"), ("total_item", "total_count")
            )
            newest: datetime | None = None
            for issue in issues:
                modified = self._time(issue, "gmt_modified", "gmt_create")
                newest = modified if newest is None or (modified and modified > newest) else newest
                if modified is None or modified >= low:
                    dispute = self._dispute(issue)
                    rows[dispute.external_id] = dispute
            last_page = (
                not issues
                or (self.settings.issue_list_sorted_by_modified and newest is not None and newest < low)
                or (page * size >= total if total is not None else len(issues) < size)
            )
            if last_page:
                return Batch(_by(rows, "opened_at"), WindowCursor(since=window.until).dump(), more=False)
            page += 1
        return Batch(_by(rows, "opened_at"), WindowCursor(window.since, window.until, page).dump(), more=True)

    def _issue_detail(self, issue_id: str, buyer_login_id: str | None = None) -> dict[str, Any]:
        return self._read(ISSUE_DETAIL, {"issue_id": issue_id, "buyer_login_id": buyer_login_id})

    def _dispute(self, issue: Mapping[str, Any]) -> NormDispute:
        issue_id = _str_or_none(first(issue, "issue_id", "id"))
        if issue_id is None:
            raise ConnectorError(ErrorKind.FATAL, f"{ISSUE_LIST}: a listed dispute has no issue_id")
        detail = self._issue_detail(issue_id, _str_or_none(first(issue, "buyer_login_id")))
        try:
            return self._norm_dispute(issue_id, issue, detail)
        except ValueError as exc:
            raise ConnectorError(ErrorKind.FATAL, f"dispute {issue_id}: {exc}") from None

    def _norm_dispute(
        self, issue_id: str, issue: Mapping[str, Any], detail: Mapping[str, Any]
    ) -> NormDispute:
        order_id = first(issue, "order_id", "parent_order_id") or first(detail, "order_id", "parent_order_id")
        if order_id is None:
            raise ValueError("field 'order_id' is missing")
        status = str(first(detail, "issue_status") or first(issue, "issue_status") or "")
        if not status:
            raise ValueError("field 'issue_status' is missing")
        opened_at = self._time(issue, "gmt_create") or self._time(detail, "gmt_create")
        if opened_at is None:
            raise ValueError("field 'gmt_create' is missing")
        modified_at = self._time(detail, "gmt_modified") or self._time(issue, "gmt_modified")
        is_open = status.strip().upper() not in CLOSED_ISSUE_STATUSES
        solution = _latest(list_field(detail, "buyer_solution_list"))
        amount, currency = parse_money(first(solution, "refund_money", "refund_amount"), "refund_money")
        if amount is None:
            amount, currency = parse_money(first(detail, "refund_money_max"), "refund_money_max")
        request_type = str(first(solution, "solution_type") or "").lower()
        return NormDispute(
            external_id=issue_id,
            order_external_id=str(order_id),
            reason=str(
                first(issue, "reason_english", "issue_reason")
                or first(detail, "issue_reason", "reason_english")
                or first(issue, "reason_chinese")
                or "unknown"
            ),
            status=status,
            opened_at=opened_at,
            is_open=is_open,
            buyer_request=BUYER_REQUESTS.get(request_type),
            amount=amount,
            currency=str(currency).upper() if currency else None,
            response_due_at=self._time(detail, "seller_response_deadline", "respond_deadline", "gmt_expire"),
            closed_at=None if is_open else (modified_at or opened_at),
            modified_at=modified_at,
            raw={"list": dict(issue), "detail": dict(detail)},
        )

    # ------------------------------------------------------------------ writes

    def _buyer_of(self, channel_id: str, order_external_id: str | None) -> str:
        """The buyer a reply goes to: from the order when writing into an order's own channel
        (AliExpress order messages use the order id as channel id), else from the conversation."""
        seller = _str_or_none(self.credentials.get("seller_login_id"))
        if not seller:
            raise ConnectorError(
                ErrorKind.FATAL,
                f"{self.marketplace} account {self.account.name!r}: credential 'seller_login_id' is needed to send",
            )
        if order_external_id and channel_id == order_external_id:
            detail = self._read(ORDER_DETAIL, {ORDER_DETAIL_PARAM: {"order_id": order_external_id}})
            try:
                buyer_info = object_field(detail, "buyer_info")
            except ValueError as exc:
                raise ConnectorError(ErrorKind.FATAL, f"order {order_external_id}: {exc}") from None
            buyer = _str_or_none(first(detail, "buyer_login_id")) or _str_or_none(
                first(buyer_info, "login_id")
            )
            if buyer is None:
                raise ConnectorError(
                    ErrorKind.FATAL, f"order {order_external_id}: no buyer_login_id to write to"
                )
            return buyer
        for page in range(1, self.settings.max_detail_pages + 1):
            details = self._detail_page(channel_id, page)
            for detail in details:
                sender = _str_or_none(first(detail, "sender_login_id", "sender_id"))
                kind = self._direction(sender, _str_or_none(first(detail, "message_type")), None)
                if sender and kind == "buyer":
                    return sender
            if len(details) < self.settings.page_size:
                break
        raise ConnectorError(ErrorKind.FATAL, f"conversation {channel_id}: no buyer message to reply to")

    def send_message(
        self, conversation_external_id: str, body: str, *, order_external_id: str | None
    ) -> SendResult:
        """Send one message with addmsg, once; an unknown outcome raises with maybe_sent=True."""
        if not body.strip():
            raise ValueError("message body is blank")
        buyer_id = self._buyer_of(conversation_external_id, order_external_id)  # a read: nothing sent yet
        started = self.now()
        create = {
            "channel_id": conversation_external_id,
            "buyer_id": buyer_id,
            "content": body,
            "message_type": "order" if order_external_id else "member",
            "extern_id": order_external_id,
            "seller_id": self.credentials.get("seller_login_id"),
        }
        result = self._write(MSG_ADD, {ADD_MSG_PARAM: {k: v for k, v in create.items() if v is not None}})
        message_id = _str_or_none(first(result, "msg_id", "message_id", "id"))
        if message_id is None:
            # addmsg may not echo an id (unconfirmed): read it back; the send itself is done.
            try:
                message_id = self.find_sent_message(conversation_external_id, body, started)
            except ConnectorError as exc:
                # The message went out: a failed read-back must not look like "nothing sent" (the row
                # would be sent again). Uncertain: reconcile reads the id back later.
                raise ConnectorError(
                    ErrorKind.RETRYABLE,
                    f"addmsg accepted, reading its id back failed: {exc}",
                    maybe_sent=True,
                ) from exc
        if message_id is None:
            message_id = f"addmsg:{conversation_external_id}:{int(started.timestamp() * 1000)}"
        return SendResult(marketplace_message_id=message_id, sent_at=started)

    def find_sent_message(
        self,
        conversation_external_id: str,
        body: str,
        since: datetime,
        *,
        exclude: frozenset[str] = frozenset(),
    ) -> str | None:
        """The id of a seller message with this body sent since `since` (allowing clock skew), or None."""
        low = since - timedelta(seconds=self.settings.reconcile_skew_seconds)
        for page in range(1, self.settings.max_detail_pages + 1):
            details = self._detail_page(conversation_external_id, page)
            newest: datetime | None = None
            for detail in details:
                sent_at = self._time(detail, "gmt_create", "create_time")
                newest = sent_at if newest is None or (sent_at and sent_at > newest) else newest
                sender = _str_or_none(first(detail, "sender_login_id", "sender_id"))
                try:
                    side = self._direction(sender, _str_or_none(first(detail, "message_type")), None)
                except ValueError:
                    side = "seller"  # no seller id stored: an identical text is taken as ours
                found = _str_or_none(first(detail, "id", "message_id", "msg_id"))
                if (
                    side == "seller"
                    and sent_at is not None
                    and sent_at >= low
                    and found not in exclude
                    and _same_text(str(first(detail, "content") or ""), body)
                ):
                    return found
            if not details or (newest is not None and newest < low) or len(details) < self.settings.page_size:
                return None
        return None

    def perform_action(self, request: ActionRequest) -> ActionResult:
        """Execute one approved action, once (never retried here)."""
        if not self.capabilities.allows(request.type):
            raise ConnectorError(ErrorKind.FATAL, f"{self.marketplace} cannot perform {request.type}")
        if request.type == "extend_protection":
            days = request.days
            max_days = self.capabilities.max_extend_days or 0
            if days is None or not 1 <= days <= max_days:
                raise ConnectorError(
                    ErrorKind.FATAL, f"extend_protection: days must be 1..{max_days}, got {days}"
                )
            self._write(EXTEND_ACCEPT_TIME, {"param0": request.order_external_id, "param1": days})
            return ActionResult(external_ref=f"extend:{request.order_external_id}:{days}")
        if request.type in ("refund_full", "refund_partial"):
            return self._refund(request)
        if request.type == "resend":
            # The warehouse ships the replacement; recording the approved action is the whole action.
            return ActionResult(external_ref=f"resend:{request.idempotency_key}")
        raise ConnectorError(ErrorKind.FATAL, f"{self.marketplace} cannot perform {request.type}")

    def _refund_plan(self, request: ActionRequest) -> tuple[str, dict[str, Any], Decimal, str | None]:
        """(issue id, dispute detail, amount, currency) for a refund request, validated."""
        issue_id = request.dispute_external_id
        if not issue_id:
            raise ConnectorError(
                ErrorKind.FATAL,
                "AliExpress refunds go through the buyer's dispute: dispute_external_id is required",
            )
        detail = self._issue_detail(issue_id)
        status = str(first(detail, "issue_status") or "").upper()
        if status in CLOSED_ISSUE_STATUSES:
            raise ConnectorError(ErrorKind.FATAL, f"dispute {issue_id} is closed ({status})")
        maximum, max_currency = parse_money(first(detail, "refund_money_max"))
        amount = request.amount
        if amount is None and request.type == "refund_full":
            amount = maximum
        if amount is None or amount <= 0:
            raise ConnectorError(ErrorKind.FATAL, f"{request.type}: a positive amount is required")
        if maximum is not None and amount > maximum:
            raise ConnectorError(
                ErrorKind.FATAL, f"{request.type}: {amount} exceeds what the buyer paid ({maximum})"
            )
        return issue_id, detail, amount, request.currency or max_currency

    def _refund(self, request: ActionRequest) -> ActionResult:
        issue_id, detail, amount, currency = self._refund_plan(request)
        buyer_login_id = _str_or_none(first(detail, "buyer_login_id"))
        proposal = _pending_buyer_refund(detail)
        if proposal is not None:
            proposed, _ = parse_money(first(proposal, "refund_money", "refund_amount"))
            solution_id = _str_or_none(first(proposal, "id", "solution_id"))
            if proposed == amount and solution_id:
                self._write(
                    SOLUTION_AGREE,
                    {"issue_id": issue_id, "buyer_login_id": buyer_login_id, "solution_id": solution_id},
                )
                return ActionResult(external_ref=f"agree:{issue_id}:{solution_id}")
        result = self._write(
            SOLUTION_SAVE,
            {
                "issue_id": issue_id,
                "buyer_login_id": buyer_login_id,
                "add_solution_type": "add",
                "solution_type": "refund",
                "refund_amount": str(amount),
                "refund_amount_currency": currency,
                "solution_context": request.note or self.settings.solution_context,
            },
        )
        solution_id = _str_or_none(first(result, "solution_id", "id"))
        return ActionResult(external_ref=f"solution:{issue_id}:{solution_id or amount}")

    def find_action(self, request: ActionRequest) -> ActionResult | None:
        """Reconcile: the earlier attempt's result if it took effect, else None.

        extend_protection leaves no trace AliExpress shows, so it returns None (unknown); repeating
        one is bounded by the platform's limit (sub_error_code 201).
        """
        if request.type == "resend":
            return ActionResult(external_ref=f"resend:{request.idempotency_key}")
        if request.type not in ("refund_full", "refund_partial") or not request.dispute_external_id:
            return None
        issue_id = request.dispute_external_id
        detail = self._issue_detail(issue_id)
        maximum, _ = parse_money(first(detail, "refund_money_max"))
        amount = request.amount if request.amount is not None else maximum
        for solution in list_field(detail, "seller_solution_list"):
            offered, _ = parse_money(first(solution, "refund_money", "refund_amount"))
            if offered == amount:
                solution_id = _str_or_none(first(solution, "id", "solution_id"))
                return ActionResult(external_ref=f"solution:{issue_id}:{solution_id or amount}")
        for solution in list_field(detail, "buyer_solution_list"):
            proposed, _ = parse_money(first(solution, "refund_money", "refund_amount"))
            state = str(first(solution, "status", "solution_status") or "").lower()
            if proposed == amount and state in _AGREED_SOLUTION:
                return ActionResult(external_ref=f"agree:{issue_id}:{first(solution, 'id', 'solution_id')}")
        return None


def _pending_buyer_refund(detail: Mapping[str, Any]) -> dict[str, Any] | None:
    for solution in list_field(detail, "buyer_solution_list"):
        kind = str(first(solution, "solution_type") or "").lower()
        state = str(first(solution, "status", "solution_status") or "").lower()
        if kind in ("refund", "return_and_refund") and state not in _AGREED_SOLUTION | {
            "refused",
            "canceled",
        }:
            return solution
    return None


def _latest(solutions: list[dict[str, Any]]) -> dict[str, Any]:
    return max(solutions, key=lambda s: str(first(s, "gmt_create") or ""), default={})


def _first_time(rows: Iterable[Mapping[str, Any]], key: str, tz: ZoneInfo) -> datetime | None:
    times = [parse_time(row.get(key), tz) for row in rows if row.get(key)]
    return min((t for t in times if t is not None), default=None)


def _str_or_none(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _by(rows: Mapping[str, Any], attribute: str) -> list[Any]:
    """Rows in time order (stable on the marketplace id), the order the pipeline processes them."""
    return sorted(
        rows.values(),
        key=lambda r: (getattr(r, attribute) or datetime.min.replace(tzinfo=UTC), r.external_id),
    )


# ----------------------------------------------------------------------------- sandbox


class SandboxConnector(AliExpressConnector):
    """The local sandbox marketplace: the AliExpress dialect at `SELLERDESK_SANDBOX_URL`.

    Without an explicit `now`, it reads the sandbox's clock, so simulated time (advanced in tests,
    sped up in the demo) drives its polling windows and token expiry like real time would.
    """

    marketplace: ClassVar[str] = "sandbox"

    def __init__(self, account: AccountRef, **kwargs: Any) -> None:
        now = kwargs.pop("now", None)
        super().__init__(account, now=now or self._sandbox_now, **kwargs)

    @classmethod
    def default_gateway(cls) -> str:
        return os.environ.get(SANDBOX_URL_ENV) or SANDBOX_DEFAULT_URL

    def _sandbox_now(self) -> datetime:
        try:
            response = self.http.get(f"{self.gateway}/_sandbox/clock")
        except httpx.TransportError as exc:
            raise transport_error(exc) from None
        body = self._envelope("sandbox clock", response, write=False)
        moment = parse_time(body.get("now"), ZoneInfo("UTC"))
        if moment is None:
            raise ConnectorError(ErrorKind.RETRYABLE, "sandbox clock: answer has no 'now'")
        return moment
