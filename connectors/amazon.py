"""Amazon SP-API: LWA refresh-token flow, Orders v0, and the review solicitation (lifecycle only).

Wire formats follow Amazon's Swagger models (`shared/contracts/amazon/ordersV0.json`,
`solicitations.json`). Amazon does not let a seller message buyers about their orders, so this
connector reads orders and does one thing on the buyer side: ask Amazon to send its own "review
and seller feedback" request (`createProductReviewAndSellerFeedbackSolicitation`), and only when
`getSolicitationActionsForOrder` offers it (Amazon offers it once per order, 5 to 30 days after
delivery).

How the solicitation fits the outbox (which only knows `send_message`): the lifecycle sweep writes
Amazon feedback requests as outbox rows whose body is exactly `REVIEW_SOLICITATION_BODY`, addressed
to the order. `send_message` performs the solicitation for that body and refuses any other text
with a FATAL error; `find_sent_message` answers from `getSolicitationActionsForOrder`: an order for
which the action is no longer offered is taken as already asked (nothing more can be done for it
anyway), so a send whose outcome was lost is never repeated.

Token handling: LWA access tokens live one hour and are refreshed `token_refresh_margin_seconds`
before expiry (and once more on a 403 that may be a stale token). After a refresh the full
credentials, with the new token and expiry, go to the `on_credentials_refreshed` callback for the
caller to store encrypted; the refresh token itself is kept unless LWA returns a new one.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connectors.base import (
    ORDERS,
    AccountRef,
    Batch,
    Capabilities,
    Connector,
    ConnectorError,
    ErrorKind,
    ErrorRule,
    NormOrder,
    RateLimiter,
    RetryPolicy,
    SendResult,
    amount,
    before_write,
    call_with_retry,
    classify_error,
    json_body,
    optional_text,
    retry_after_seconds,
    transport_error,
)
from worker.triage.types import OrderStatus

LWA_TOKEN_URL = "https://api.amazon.com/auth/o2/token"
ORDERS_PATH = "/orders/v0/orders"
SOLICITATIONS_PATH = "/solicitations/v1/orders"
REVIEW_ACTION = "productReviewAndSellerFeedback"
# The only outbox body Amazon accepts: "ask Amazon to send its review request for this order".
REVIEW_SOLICITATION_BODY = "review solicitation"
RATE_LIMIT_HEADER = "x-amzn-RateLimit-Limit"

ENDPOINTS = {
    "na": "https://sellingpartnerapi-na.amazon.com",
    "eu": "https://sellingpartnerapi-eu.amazon.com",
    "fe": "https://sellingpartnerapi-fe.amazon.com",
}


@dataclass(frozen=True, slots=True)
class AmazonMarketplace:
    region: str
    currency: str


# Marketplace id -> region (which endpoint serves it) and currency (for orders Amazon sends without
# an OrderTotal, e.g. Pending ones). From Amazon's "Marketplace IDs" reference.
MARKETPLACES: dict[str, AmazonMarketplace] = {
    "ATVPDKIKX0DER": AmazonMarketplace("na", "USD"),  # United States
    "A2EUQ1WTGCTBG2": AmazonMarketplace("na", "CAD"),  # Canada
    "A1AM78C64UM0Y8": AmazonMarketplace("na", "MXN"),  # Mexico
    "A2Q3Y263D00KWC": AmazonMarketplace("na", "BRL"),  # Brazil
    "A1F83G8C2ARO7P": AmazonMarketplace("eu", "GBP"),  # United Kingdom
    "A1PA6795UKMFR9": AmazonMarketplace("eu", "EUR"),  # Germany
    "A13V1IB3VIYZZH": AmazonMarketplace("eu", "EUR"),  # France
    "APJ6JRA9NG5V4": AmazonMarketplace("eu", "EUR"),  # Italy
    "A1RKKUPIHCS9HS": AmazonMarketplace("eu", "EUR"),  # Spain
    "A1805IZSGTT6HS": AmazonMarketplace("eu", "EUR"),  # Netherlands
    "AMEN7PMS3EDWL": AmazonMarketplace("eu", "EUR"),  # Belgium
    "A2NODRKZP88ZB9": AmazonMarketplace("eu", "SEK"),  # Sweden
    "A1C3SOZRARQ6R3": AmazonMarketplace("eu", "PLN"),  # Poland
    "A33AVAJ2PDY3EV": AmazonMarketplace("eu", "TRY"),  # Turkey
    "A2VIGQ35RCS4UG": AmazonMarketplace("eu", "AED"),  # United Arab Emirates
    "A17E79C6D8DWNP": AmazonMarketplace("eu", "SAR"),  # Saudi Arabia
    "A21TJRUUN4KGV": AmazonMarketplace("eu", "INR"),  # India
    "A1VC38T7YXB528": AmazonMarketplace("fe", "JPY"),  # Japan
    "A39IBJ37TRP1C6": AmazonMarketplace("fe", "AUD"),  # Australia
    "A19VAU5U5O7RUS": AmazonMarketplace("fe", "SGD"),  # Singapore
}

# -------------------------------------------------------------------------------- error table
# First matching row wins, then base.COMMON_ERROR_RULES. SP-API errors are {"errors": [{code, message,
# details}]}; LWA answers {error, error_description}.
AMAZON_ERROR_RULES: tuple[ErrorRule, ...] = (
    # LWA: the refresh token is revoked or expired, or the app credentials are wrong. Only the
    # seller (re-authorising the app) can fix these: pause the account.
    ErrorRule(ErrorKind.ACCOUNT, code="invalid_grant"),
    ErrorRule(ErrorKind.ACCOUNT, code="invalid_client"),
    ErrorRule(ErrorKind.ACCOUNT, code="unauthorized_client"),
    # Throttling: 429 with {"errors":[{"code":"QuotaExceeded",...}]}; the wait comes from
    # x-amzn-RateLimit-Limit (see `throttle_wait`).
    ErrorRule(ErrorKind.RETRYABLE, code="QuotaExceeded"),
    ErrorRule(ErrorKind.RETRYABLE, status=429),
    # 403 Unauthorized: access denied, invalid or revoked token, a role the app lacks. Reached only
    # after one forced token refresh, so the grant itself is the problem.
    ErrorRule(ErrorKind.ACCOUNT, status=403),
    ErrorRule(ErrorKind.ACCOUNT, code="Unauthorized"),
    ErrorRule(ErrorKind.RETRYABLE, code="InternalFailure"),
    ErrorRule(ErrorKind.RETRYABLE, code="ServiceUnavailable"),
    ErrorRule(ErrorKind.RETRYABLE, status=range(500, 600)),
    # InvalidInput, NotFound, 413/415: this call is wrong; repeating it changes nothing.
    ErrorRule(ErrorKind.FATAL, status=range(400, 500)),
)


# ---------------------------------------------------------------------------- configuration


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_time(value: Any, what: str) -> datetime:
    """An SP-API ISO 8601 timestamp as aware UTC; anything else is a FATAL error naming the field."""
    if isinstance(value, str) and value:
        try:
            return _utc(datetime.fromisoformat(value))
        except (ValueError, OverflowError):
            pass
    raise ConnectorError(ErrorKind.FATAL, f"amazon: {what} is not an ISO 8601 timestamp: {value!r}")


def _maybe_time(value: Any, what: str) -> datetime | None:
    return None if value in (None, "") else parse_time(value, what)


def format_time(value: datetime) -> str:
    """SP-API's timestamp format: UTC, whole seconds, e.g. 2026-03-01T12:00:00Z."""
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True, repr=False)
class AmazonCredentials:
    """Decrypted account credentials; secrets stay out of repr and error messages."""

    client_id: str
    client_secret: str
    refresh_token: str
    marketplace_id: str
    endpoint: str
    token_url: str = LWA_TOKEN_URL
    access_token: str | None = None
    access_token_expires_at: datetime | None = None

    def __repr__(self) -> str:
        return (
            f"AmazonCredentials(client_id={self.client_id!r}, marketplace_id={self.marketplace_id!r}, "
            f"endpoint={self.endpoint!r}, access_token_expires_at={self.access_token_expires_at!r}, "
            "secrets=<hidden>)"
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AmazonCredentials:
        """Validate stored credentials; a missing or malformed field is an ACCOUNT error naming it."""

        def bad(name: str, problem: str) -> ConnectorError:
            return ConnectorError(ErrorKind.ACCOUNT, f"amazon credentials: {name!r} {problem}")

        def text(name: str, default: str | None = None) -> str:
            value = data.get(name)
            if value is None or value == "":
                if default is None:
                    raise bad(name, "is missing")
                return default
            if not isinstance(value, str):
                raise bad(name, "must be a string")
            return value.strip()

        marketplace_id = text("marketplace_id")
        known = MARKETPLACES.get(marketplace_id)
        endpoint = data.get("endpoint") or (ENDPOINTS[known.region] if known else None)
        if endpoint is None:
            raise bad("endpoint", f"is missing (marketplace {marketplace_id} is not in the built-in table)")
        if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
            raise bad("endpoint", "must be an http(s) URL")
        token_url = text("token_url", LWA_TOKEN_URL)
        if not token_url.startswith(("https://", "http://")):
            raise bad("token_url", "must be an http(s) URL")
        expires_raw = data.get("access_token_expires_at")
        expires: datetime | None = None
        if isinstance(expires_raw, datetime):
            expires = _utc(expires_raw)
        elif isinstance(expires_raw, str) and expires_raw:
            try:
                expires = _utc(datetime.fromisoformat(expires_raw))
            except ValueError:
                raise bad("access_token_expires_at", "is not an ISO 8601 timestamp") from None
        elif expires_raw not in (None, ""):
            raise bad("access_token_expires_at", "must be an ISO 8601 timestamp")
        access = data.get("access_token")
        if access is not None and not isinstance(access, str):
            raise bad("access_token", "must be a string")
        return cls(
            client_id=text("client_id"),
            client_secret=text("client_secret"),
            refresh_token=text("refresh_token"),
            marketplace_id=marketplace_id,
            endpoint=endpoint.rstrip("/"),
            token_url=token_url,
            access_token=access or None,
            access_token_expires_at=expires,
        )

    def to_dict(self) -> dict[str, Any]:
        """The credentials to store (encrypted) again, with the current access token."""
        out: dict[str, Any] = {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": self.refresh_token,
            "marketplace_id": self.marketplace_id,
            "endpoint": self.endpoint,
            "token_url": self.token_url,
        }
        if self.access_token:
            out["access_token"] = self.access_token
        if self.access_token_expires_at:
            out["access_token_expires_at"] = self.access_token_expires_at.isoformat()
        return out


class Rate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rate: float = Field(gt=0, le=1000)
    burst: int = Field(ge=1, le=1000)


# Default usage plans per operation, from the "Usage Plan" tables of the Swagger models. LWA publishes
# none: a gentle rate keeps a refresh loop from hammering it.
DEFAULT_RATES: dict[str, Rate] = {
    "lwa": Rate(rate=0.5, burst=2),
    "getOrders": Rate(rate=0.0167, burst=20),
    "getSolicitationActionsForOrder": Rate(rate=1.0, burst=5),
    "createProductReviewAndSellerFeedbackSolicitation": Rate(rate=1.0, burst=5),
}


class AmazonSettings(BaseModel):
    """Per-account tuning read from AccountRef.settings (the account's settings); every key optional."""

    # The account's settings hold other sections too (lifecycle, policy...): only these keys are ours.
    model_config = ConfigDict(extra="ignore", frozen=True)

    token_refresh_margin_seconds: int = Field(default=300, ge=0, le=3000)
    overlap_seconds: int = Field(default=600, ge=0, le=86_400)  # re-read before the last pass
    initial_lookback_days: int = Field(default=30, ge=1, le=730)  # first poll of a new account
    orders_page_size: int = Field(default=100, ge=1, le=100)  # getOrders MaxResultsPerPage
    rate_limits: dict[str, Rate] = Field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AmazonSettings:
        """Validate; a bad value is an ACCOUNT error naming the setting."""
        try:
            settings = cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise ConnectorError(ErrorKind.ACCOUNT, f"amazon settings: {problems}") from None
        unknown = set(settings.rate_limits) - set(DEFAULT_RATES)
        if unknown:
            raise ConnectorError(
                ErrorKind.ACCOUNT,
                f"amazon settings: rate_limits has unknown operation(s) {', '.join(sorted(unknown))} "
                f"(known: {', '.join(DEFAULT_RATES)})",
            )
        return settings

    def rate(self, operation: str) -> Rate:
        return self.rate_limits.get(operation) or DEFAULT_RATES[operation]


# --------------------------------------------------------------------------------- cursor


@dataclass(frozen=True, slots=True)
class OrdersCursor:
    """A pass over orders updated since `since`, started at `started`, at page `next_token`.

    When a pass reaches its last page the next one starts from this pass's start minus the overlap,
    so orders updated while we were paging are read again (and deduplicated on AmazonOrderId).
    """

    since: datetime
    started: datetime
    next_token: str | None = None

    def dump(self) -> str:
        return json.dumps(
            {
                "v": 1,
                "since": format_time(self.since),
                "started": format_time(self.started),
                "next_token": self.next_token,
            },
            sort_keys=True,
        )

    @classmethod
    def load(cls, raw: str) -> OrdersCursor:
        try:
            data = json.loads(raw)
            token = data.get("next_token")
            if token is not None and not isinstance(token, str):
                raise TypeError("next_token")
            return cls(
                since=parse_time(data["since"], "cursor since"),
                started=parse_time(data["started"], "cursor started"),
                next_token=token or None,
            )
        except (ValueError, KeyError, TypeError, AttributeError, ConnectorError):
            raise ConnectorError(
                ErrorKind.FATAL, f"amazon orders cursor is not valid: {raw[:80]!r}"
            ) from None


# ------------------------------------------------------------------------------ connector


class AmazonConnector(Connector):
    """One Amazon seller account on one marketplace."""

    marketplace: ClassVar[str] = "amazon"
    capabilities: ClassVar[Capabilities] = Capabilities(
        send_message=False,  # Amazon writes its own review request; we cannot message buyers
        extend_protection=False,
        refund_full=False,
        refund_partial=False,
        resend=False,
        coupon=False,
        review_solicitation=True,
    )
    streams: ClassVar[tuple[str, ...]] = (ORDERS,)
    error_rules: ClassVar[tuple[ErrorRule, ...]] = AMAZON_ERROR_RULES

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
        self.creds = AmazonCredentials.from_dict(account.credentials)
        self.settings = AmazonSettings.from_dict(account.settings)
        self.sleep = sleep
        self.on_credentials_refreshed = on_credentials_refreshed
        # Rates Amazon reported in x-amzn-RateLimit-Limit, per operation: the seller's real usage plan.
        self.observed_rates: dict[str, float] = {}
        self._token_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AmazonConnector(account={self.account.id}, marketplace_id={self.creds.marketplace_id!r})"

    # ---------------------------------------------------------------------------- LWA

    def _token_fresh(self) -> bool:
        creds = self.creds
        if not creds.access_token or creds.access_token_expires_at is None:
            return False
        margin = timedelta(seconds=self.settings.token_refresh_margin_seconds)
        return creds.access_token_expires_at - margin > self.now()

    def access_token(self) -> str:
        """A valid LWA access token, refreshed first when it expires within the margin."""
        if not self._token_fresh():
            self.refresh_access_token(stale=self.creds.access_token)
        assert self.creds.access_token is not None
        return self.creds.access_token

    def refresh_access_token(self, stale: str | None = None) -> None:
        """LWA refresh-token grant. `stale` is the token that failed: skipped if another thread already did it."""
        with self._token_lock:
            if self.creds.access_token != stale and self._token_fresh():
                return
            self._limit("lwa")
            try:
                response = self.http.post(
                    self.creds.token_url,
                    headers={"Accept": "application/json"},
                    data={
                        "grant_type": "refresh_token",
                        "refresh_token": self.creds.refresh_token,
                        "client_id": self.creds.client_id,
                        "client_secret": self.creds.client_secret,
                    },
                )
            except httpx.TransportError as exc:
                error = transport_error(exc)
                error.maybe_sent = False  # a token request changes nothing worth reconciling
                raise error from None
            if response.status_code != 200:
                raise self._error(response, "LWA token refresh")
            body = self._json(response, "LWA token refresh")
            token, expires_in = body.get("access_token"), body.get("expires_in")
            if not isinstance(token, str) or not token or not isinstance(expires_in, int | float):
                raise ConnectorError(
                    ErrorKind.RETRYABLE, "amazon LWA token refresh: answer lacks access_token/expires_in"
                )
            self.creds.access_token = token
            self.creds.access_token_expires_at = self.now() + timedelta(seconds=float(expires_in))
            rotated = body.get("refresh_token")
            if isinstance(rotated, str) and rotated:
                self.creds.refresh_token = rotated
            snapshot = self.creds.to_dict()
        if self.on_credentials_refreshed is not None:
            self.on_credentials_refreshed(snapshot)

    # ----------------------------------------------------------------------------- HTTP

    def _limit(self, operation: str) -> None:
        if self.limiter is not None:
            plan = self.settings.rate(operation)
            rate = self.observed_rates.get(operation, plan.rate)
            self.limiter.acquire(f"amazon:{self.account.id}:{operation}", rate, plan.burst)

    def _observe_rate(self, operation: str, headers: httpx.Headers) -> None:
        rate = _header_rate(headers)
        if rate is not None:
            self.observed_rates[operation] = rate

    @staticmethod
    def _json(response: httpx.Response, what: str) -> dict[str, Any]:
        if not response.content:
            return {}
        try:
            body = json_body(response)
        except ValueError:
            kind = ErrorKind.RETRYABLE if response.status_code >= 500 else ErrorKind.FATAL
            raise ConnectorError(
                kind, f"amazon {what}: answer is not JSON", status=response.status_code
            ) from None
        if not isinstance(body, dict):
            raise ConnectorError(ErrorKind.FATAL, f"amazon {what}: answer is not a JSON object")
        return body

    def _error(self, response: httpx.Response, what: str, *, maybe_sent: bool = False) -> ConnectorError:
        """Classify an error answer through the error table; the message quotes Amazon, never our secrets."""
        status = response.status_code
        code, message = error_code_and_message(response)
        kind = classify_error(self.error_rules, status=status, code=code, message=message)
        wait = retry_after_seconds(response.headers, message)
        if wait is None and status == 429:
            wait = throttle_wait(response.headers)
        return ConnectorError(
            kind,
            f"amazon {what}: {message[:300]}",
            code=code,
            status=status,
            retry_after=wait,
            maybe_sent=maybe_sent and status >= 500,
        )

    def _attempt(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        ok: tuple[int, ...] = (200,),
        write: bool = False,
    ) -> dict[str, Any]:
        """One call (plus one retry after a forced token refresh on 403), classified on failure."""
        refreshed = False
        while True:
            self._limit(operation)
            token = self.access_token()
            headers = {"x-amz-access-token": token, "Accept": "application/json"}
            try:
                response = self.http.request(
                    method, f"{self.creds.endpoint}{path}", params=params, headers=headers
                )
            except httpx.TransportError as exc:
                error = transport_error(exc)
                if not write:
                    error.maybe_sent = False
                raise error from None
            self._observe_rate(operation, response.headers)
            if response.status_code == 403 and not refreshed:
                # A stale or revoked access token is refused before anything happens, so even a
                # solicitation may be repeated once with a fresh token.
                refreshed = True
                self.refresh_access_token(stale=token)
                continue
            if response.status_code not in ok:
                raise self._error(response, operation, maybe_sent=write)
            return self._json(response, operation)

    def _read(self, operation: str, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """An idempotent GET, retried on retryable errors (throttling waits as Amazon says)."""
        return call_with_retry(
            lambda: self._attempt(operation, "GET", path, params=params), self.retry, sleep=self.sleep
        )

    # ------------------------------------------------------------------------ streams

    def check_credentials(self) -> None:
        """Refresh the token if due and read one order; ACCOUNT errors mean pause the account."""
        self._read(
            "getOrders",
            ORDERS_PATH,
            {
                "MarketplaceIds": self.creds.marketplace_id,
                "LastUpdatedAfter": format_time(self.now() - timedelta(days=1)),
                "MaxResultsPerPage": 1,
            },
        )

    def fetch(self, stream: str, cursor: str | None) -> Batch[Any]:
        if stream == ORDERS:
            return self._fetch_orders(cursor)
        raise ValueError(f"amazon has no stream {stream!r} (streams: {', '.join(self.streams)})")

    def _fetch_orders(self, cursor: str | None) -> Batch[NormOrder]:
        now = self.now()
        if cursor is None:
            pc = OrdersCursor(since=now - timedelta(days=self.settings.initial_lookback_days), started=now)
        else:
            pc = OrdersCursor.load(cursor)
            if pc.next_token is None:  # a finished pass: the next one starts now
                pc = OrdersCursor(since=pc.since, started=now)
        params: dict[str, Any] = {
            "MarketplaceIds": self.creds.marketplace_id,
            "LastUpdatedAfter": format_time(pc.since),
            "MaxResultsPerPage": self.settings.orders_page_size,
        }
        if pc.next_token:
            params["NextToken"] = pc.next_token
        page = self._read("getOrders", ORDERS_PATH, params)
        payload = page.get("payload")
        if not isinstance(payload, dict) or not isinstance(payload.get("Orders"), list):
            raise ConnectorError(ErrorKind.FATAL, "amazon getOrders: answer lacks payload.Orders")
        rows = [order_from_amazon(o, self.creds.marketplace_id) for o in payload["Orders"]]
        token = payload.get("NextToken")
        if isinstance(token, str) and token:
            return Batch(rows=rows, cursor=OrdersCursor(pc.since, pc.started, token).dump(), more=True)
        since = pc.started - timedelta(seconds=self.settings.overlap_seconds)
        return Batch(rows=rows, cursor=OrdersCursor(since=since, started=since).dump(), more=False)

    # ------------------------------------------------------------------- solicitations

    def _solicitations_path(self, order_external_id: str) -> str:
        if not order_external_id or not order_external_id.strip():
            raise ConnectorError(ErrorKind.FATAL, "amazon: an order id is required for a solicitation")
        return f"{SOLICITATIONS_PATH}/{quote(order_external_id.strip(), safe='')}"

    def review_offered(self, order_external_id: str) -> bool:
        """Whether Amazon offers the review solicitation for this order now (getSolicitationActionsForOrder)."""
        page = self._read(
            "getSolicitationActionsForOrder",
            self._solicitations_path(order_external_id),
            {"marketplaceIds": self.creds.marketplace_id},
        )
        actions = (page.get("_links") or {}).get("actions") or []
        return any(isinstance(a, dict) and a.get("name") == REVIEW_ACTION for a in actions)

    def request_review(self, order_external_id: str) -> SendResult:
        """Ask Amazon to send its review and seller-feedback request for an order, once, if offered."""
        if not self.review_offered(order_external_id):
            raise ConnectorError(
                ErrorKind.FATAL,
                f"amazon: review solicitation not offered for order {order_external_id} "
                "(already requested, outside 5-30 days after delivery, or not eligible)",
                code="SolicitationNotOffered",
            )
        before_write()
        self._attempt(
            "createProductReviewAndSellerFeedbackSolicitation",
            "POST",
            f"{self._solicitations_path(order_external_id)}/solicitations/{REVIEW_ACTION}",
            params={"marketplaceIds": self.creds.marketplace_id},
            ok=(201,),
            write=True,
        )
        return SendResult(marketplace_message_id=solicitation_id(order_external_id), sent_at=self.now())

    def send_message(
        self, conversation_external_id: str, body: str, *, order_external_id: str | None
    ) -> SendResult:
        """Only the review solicitation: `body` must be REVIEW_SOLICITATION_BODY; any other text is FATAL."""
        if body.strip() != REVIEW_SOLICITATION_BODY:
            raise ConnectorError(
                ErrorKind.FATAL, "amazon cannot message buyers: only the review solicitation can be sent"
            )
        return self.request_review(order_external_id or conversation_external_id)

    def find_sent_message(
        self,
        conversation_external_id: str,
        body: str,
        since: datetime,
        *,
        exclude: frozenset[str] = frozenset(),
    ) -> str | None:
        """Reconcile a solicitation: no longer offered means it was made (or can no longer be)."""
        if body.strip() != REVIEW_SOLICITATION_BODY:
            return None  # nothing but the solicitation can ever have gone out
        if self.review_offered(conversation_external_id):
            return None
        return solicitation_id(conversation_external_id)


# --------------------------------------------------------------------------- pure mapping


def solicitation_id(order_external_id: str) -> str:
    """Our id for the (single) review solicitation of an order."""
    return f"solicitation:{order_external_id.strip()}"


def _header_rate(headers: httpx.Headers | dict[str, str] | None) -> float | None:
    if headers is None:
        return None
    raw = headers.get(RATE_LIMIT_HEADER) or headers.get(RATE_LIMIT_HEADER.lower())
    try:
        rate = float(raw) if raw else None
    except ValueError:
        return None
    return rate if rate is not None and math.isfinite(rate) and rate > 0 else None


def throttle_wait(headers: httpx.Headers | dict[str, str] | None) -> float | None:
    """Seconds until one request is allowed again under the x-amzn-RateLimit-Limit rate, if given."""
    rate = _header_rate(headers)
    return None if rate is None else 1.0 / rate


def error_code_and_message(response: httpx.Response) -> tuple[str | None, str]:
    """The first SP-API error's code and message (or LWA's error), for the error table."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            code = str(first["code"]) if first.get("code") else None
            text = str(first.get("message") or f"HTTP {response.status_code}")
            details = first.get("details")
            return code, f"{text} ({details})" if details else text
        if isinstance(body.get("error"), str):
            return body["error"], str(body.get("error_description") or body["error"])
    return None, f"HTTP {response.status_code}"


# Orders v0 OrderStatus -> ours. Amazon reports no delivery: delivered comes from tracking, never here.
ORDER_STATUSES: dict[str, OrderStatus] = {
    "Pending": OrderStatus.unpaid,  # payment not yet authorised
    "PendingAvailability": OrderStatus.unpaid,  # pre-order: not charged until it is available
    "Unshipped": OrderStatus.paid,
    "PartiallyShipped": OrderStatus.paid,  # something still waits to ship
    "Shipped": OrderStatus.shipped,
    "InvoiceUnconfirmed": OrderStatus.shipped,  # shipped; the invoice confirmation is pending
    "Canceled": OrderStatus.cancelled,
    "Unfulfillable": OrderStatus.cancelled,
}


def _days_between(start: datetime, end: datetime) -> int:
    return math.ceil((end - start).total_seconds() / 86400)


def order_from_amazon(raw: dict[str, Any], marketplace_id: str) -> NormOrder:
    """Map an Orders v0 `Order` onto NormOrder; a malformed field is a FATAL error naming it.

    Promised days run from the purchase to LatestDeliveryDate (EarliestDeliveryDate when that is
    missing); handling days to LatestShipDate. Items are not fetched (getOrderItems is one call per
    order at 0.5 requests/s, and Amazon writes its own review request, so nothing of ours shows them).
    """
    if not isinstance(raw, dict):
        raise ConnectorError(ErrorKind.FATAL, "amazon getOrders: an order is not an object")
    order_id = raw.get("AmazonOrderId")
    if not isinstance(order_id, str) or not order_id:
        raise ConnectorError(ErrorKind.FATAL, "amazon getOrders: an order lacks AmazonOrderId")
    what = f"order {order_id}"
    status_raw = raw.get("OrderStatus")
    status = ORDER_STATUSES.get(status_raw) if isinstance(status_raw, str) else None
    if status is None:
        raise ConnectorError(ErrorKind.FATAL, f"amazon {what}: OrderStatus {status_raw!r} is not one we know")
    purchased = parse_time(raw.get("PurchaseDate"), f"{what} PurchaseDate")
    updated = parse_time(raw.get("LastUpdateDate"), f"{what} LastUpdateDate")

    total_raw = raw.get("OrderTotal")
    if isinstance(total_raw, dict) and total_raw.get("Amount") not in (None, ""):
        total = amount(total_raw["Amount"], f"amazon {what}: OrderTotal.Amount")
        currency = total_raw.get("CurrencyCode")
        if not isinstance(currency, str) or len(currency) != 3:
            raise ConnectorError(ErrorKind.FATAL, f"amazon {what}: OrderTotal.CurrencyCode is missing")
    else:
        # Pending orders often come without a total: zero in the marketplace's currency.
        market = raw.get("MarketplaceId") or marketplace_id
        known = MARKETPLACES.get(market) if isinstance(market, str) else None
        if known is None:
            raise ConnectorError(
                ErrorKind.FATAL,
                f"amazon {what}: OrderTotal is missing and the marketplace currency is unknown",
            )
        total, currency = Decimal("0.00"), known.currency

    latest = _maybe_time(raw.get("LatestDeliveryDate"), f"{what} LatestDeliveryDate") or _maybe_time(
        raw.get("EarliestDeliveryDate"), f"{what} EarliestDeliveryDate"
    )
    promised = min(365, max(1, _days_between(purchased, latest))) if latest else None
    ship_by = _maybe_time(raw.get("LatestShipDate"), f"{what} LatestShipDate")
    handling = max(0, _days_between(purchased, ship_by)) if ship_by else None

    buyer = raw.get("BuyerInfo") if isinstance(raw.get("BuyerInfo"), dict) else {}
    address = raw.get("ShippingAddress") if isinstance(raw.get("ShippingAddress"), dict) else {}
    country = address.get("CountryCode")
    return NormOrder(
        external_id=order_id,
        status=status,
        total=total,
        currency=currency.upper(),
        modified_at=updated,
        # Amazon gives no buyer id; the anonymised buyer e-mail is stable per buyer (blocklists use it).
        buyer_id=optional_text(buyer.get("BuyerEmail"), f"amazon {what}: BuyerInfo.BuyerEmail"),
        buyer_name=optional_text(buyer.get("BuyerName"), f"amazon {what}: BuyerInfo.BuyerName")
        or optional_text(address.get("Name"), f"amazon {what}: ShippingAddress.Name"),
        buyer_country=country.upper() if isinstance(country, str) and len(country) == 2 else None,
        paid_at=None if status is OrderStatus.unpaid else purchased,
        cancelled_at=updated if status is OrderStatus.cancelled else None,
        shipping_method=optional_text(raw.get("ShipServiceLevel"), f"amazon {what}: ShipServiceLevel")
        or optional_text(
            raw.get("ShipmentServiceLevelCategory"), f"amazon {what}: ShipmentServiceLevelCategory"
        ),
        promised_delivery_days=promised,
        handling_days=handling,
        protection_open=False,
        raw=raw,
    )
