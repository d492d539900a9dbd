"""The connector contract: normalised records, capabilities, classified errors, retry and streams.

Every marketplace module implements `Connector` and normalises to the dataclasses below, so the
rest of Sellerdesk never sees a marketplace's wire format. Like a Singer tap, a connector declares
its streams explicitly; each stream is fetched incrementally from a cursor that the caller saves
in the same transaction as the rows.
"""

from __future__ import annotations

import abc
import enum
import json
import random
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Generic, TypeVar

import httpx
import tenacity

from worker.triage.types import OrderStatus, TrackingStatus

T = TypeVar("T")

# Stream names, shared by every connector and the poll cursor table.
ORDERS = "orders"
MESSAGES = "messages"
DISPUTES = "disputes"


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class NormItem:
    sku: str | None
    title: str
    quantity: int
    price: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class NormOrder:
    external_id: str
    status: OrderStatus
    total: Decimal
    currency: str
    modified_at: datetime
    buyer_id: str | None = None
    buyer_name: str | None = None
    buyer_country: str | None = None
    buyer_language: str | None = None
    paid_at: datetime | None = None
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None
    completed_at: datetime | None = None
    cancelled_at: datetime | None = None
    shipping_method: str | None = None
    tracking_number: str | None = None
    carrier: str | None = None
    promised_delivery_days: int | None = None
    handling_days: int | None = None
    # Buyer protection still running (AliExpress WAIT_BUYER_ACCEPT_GOODS, not frozen by a dispute).
    protection_open: bool = False
    items: tuple[NormItem, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class NormMessage:
    external_id: str
    conversation_external_id: str
    direction: str  # buyer | seller | system
    body: str
    sent_at: datetime
    buyer_id: str | None = None
    buyer_name: str | None = None
    order_external_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class NormDispute:
    external_id: str
    order_external_id: str
    reason: str
    status: str
    opened_at: datetime
    is_open: bool
    buyer_request: str | None = None  # refund | return | resend
    amount: Decimal | None = None
    currency: str | None = None
    response_due_at: datetime | None = None
    closed_at: datetime | None = None
    modified_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class NormTrackingEvent:
    time: datetime
    location: str | None
    description: str


@dataclass(frozen=True, slots=True)
class NormTracking:
    tracking_number: str
    status: TrackingStatus
    sub_status: str | None
    last_event_at: datetime | None
    events: tuple[NormTrackingEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class Batch(Generic[T]):
    """One bounded slice of a stream: the rows, the cursor to save with them, and whether more wait."""

    rows: list[T]
    cursor: str | None
    more: bool


@dataclass(frozen=True, slots=True)
class SendResult:
    marketplace_message_id: str
    sent_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """An approved action to execute; `idempotency_key` is ours, echoed where the API allows."""

    type: str  # extend_protection | refund_full | refund_partial | resend | coupon
    order_external_id: str
    idempotency_key: str
    amount: Decimal | None = None
    currency: str | None = None
    days: int | None = None
    dispute_external_id: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ActionResult:
    external_ref: str
    done: bool = True


# ----------------------------------------------------------------------- capabilities


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a marketplace lets a seller do through its API; the policy never proposes the rest."""

    send_message: bool = True
    extend_protection: bool = False
    refund_full: bool = False
    refund_partial: bool = False
    resend: bool = False  # recorded by us and shipped by the warehouse; no API call needed
    coupon: bool = False
    review_solicitation: bool = False
    max_extend_days: int | None = None

    def allows(self, action_type: str) -> bool:
        return bool(getattr(self, action_type, False))


# ----------------------------------------------------------------------------- errors


class ErrorKind(enum.StrEnum):
    RETRYABLE = "retryable"  # timeouts, 5xx, throttling: wait and try again
    FATAL = "fatal"  # this call is wrong (validation): do not retry it
    ACCOUNT = "account"  # revoked token, suspended shop: pause the account


class ConnectorError(Exception):
    """A classified failure of a marketplace call. Messages never contain secrets."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        maybe_sent: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.status = status
        self.retry_after = retry_after
        # True when the request may have reached the marketplace (read timeout, 5xx after send):
        # a send or an action with this error must be reconciled, never blindly retried.
        self.maybe_sent = maybe_sent

    def __str__(self) -> str:
        bits = [self.kind.value]
        if self.status is not None:
            bits.append(f"http {self.status}")
        if self.code:
            bits.append(f"code {self.code}")
        return f"{super().__str__()} ({', '.join(bits)})"


@dataclass(frozen=True, slots=True)
class ErrorRule:
    """One row of a connector's error table; the first matching row decides."""

    kind: ErrorKind
    status: int | range | None = None
    code: str | re.Pattern[str] | None = None
    message: re.Pattern[str] | None = None
    # The API's own error family when it has one (AliExpress IOP `type`: ISV/ISP/SYSTEM; eBay `category`).
    category: str | None = None

    def matches(
        self, status: int | None, code: str | None, message: str, category: str | None = None
    ) -> bool:
        if self.category is not None and (category or "").upper() != self.category.upper():
            return False
        if self.status is not None:
            if status is None:
                return False
            if isinstance(self.status, range) and status not in self.status:
                return False
            if isinstance(self.status, int) and status != self.status:
                return False
        if self.code is not None:
            if code is None:
                return False
            if isinstance(self.code, str) and code != self.code:
                return False
            if isinstance(self.code, re.Pattern) and not self.code.search(code):
                return False
        if self.message is not None and not self.message.search(message or ""):
            return False
        return True


# Rows every connector shares after its own: transport-level facts true of any HTTP API.
COMMON_ERROR_RULES: tuple[ErrorRule, ...] = (
    ErrorRule(ErrorKind.ACCOUNT, status=401),
    ErrorRule(ErrorKind.RETRYABLE, status=408),
    ErrorRule(ErrorKind.RETRYABLE, status=429),
    ErrorRule(ErrorKind.RETRYABLE, status=range(500, 600)),
    ErrorRule(ErrorKind.FATAL, status=range(400, 500)),
)

_BAN_SECONDS = re.compile(r"ban will last for (\d+) more seconds", re.IGNORECASE)


def classify_error(
    rules: Sequence[ErrorRule],
    *,
    status: int | None,
    code: str | None,
    message: str,
    category: str | None = None,
) -> ErrorKind:
    """Look a failure up in a connector's table, then in the common rows; unknown is fatal."""
    for rule in (*rules, *COMMON_ERROR_RULES):
        if rule.matches(status, code, message, category):
            return rule.kind
    return ErrorKind.FATAL


def retry_after_seconds(headers: httpx.Headers | dict[str, str] | None, message: str = "") -> float | None:
    """Seconds to wait from a Retry-After header or a "ban will last for N more seconds" text."""
    if headers is not None:
        value = headers.get("retry-after") or headers.get("Retry-After")
        if value:
            try:
                return max(0.0, float(value))
            except ValueError:
                pass  # an HTTP date: rare on these APIs; fall through to the text and backoff
    if message:
        m = _BAN_SECONDS.search(message)
        if m:
            return float(m.group(1))
    return None


def transport_error(exc: httpx.TransportError) -> ConnectorError:
    """Map an httpx transport failure; only a failure to connect proves nothing was sent."""
    maybe_sent = not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
    return ConnectorError(
        ErrorKind.RETRYABLE, f"transport failure: {type(exc).__name__}", maybe_sent=maybe_sent
    )


# ---------------------------------------------------------------------------- parsing

# Amounts are stored as NUMERIC(12, 2) and never rounded (worker/db.py Money): refuse what cannot fit.
MAX_AMOUNT = Decimal("9999999999.99")


def json_body(response: httpx.Response) -> Any:
    """The answer's JSON. Invalid UTF-8 bytes read as U+FFFD (one bad byte in a buyer's text must not
    make a whole page unreadable); JSON nested deeper than the decoder goes is a ValueError like bad JSON."""
    try:
        return json.loads(response.content.decode("utf-8", errors="replace"))
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def amount(value: Any, what: str) -> Decimal:
    """A money amount that fits NUMERIC(12, 2) exactly; anything else is FATAL naming the field."""
    if isinstance(value, bool | dict | list):
        raise ConnectorError(ErrorKind.FATAL, f"{what} is not an amount: {value!r:.60}")
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ConnectorError(ErrorKind.FATAL, f"{what} is not an amount: {value!r:.60}") from None
    if not result.is_finite() or abs(result) > MAX_AMOUNT:
        raise ConnectorError(ErrorKind.FATAL, f"{what} is not an amount in range: {value!r:.60}")
    if result != result.quantize(Decimal("0.01")):
        raise ConnectorError(ErrorKind.FATAL, f"{what} has fractions of a cent: {value!r:.60}")
    return result


def optional_text(value: Any, what: str) -> str | None:
    """A string field that may be absent; any other type is FATAL naming the field."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ConnectorError(ErrorKind.FATAL, f"{what} is not text but {type(value).__name__}")
    return value


# ---------------------------------------------------------------------------- fencing


class LeaseLost(Exception):
    """The send or action was taken over (its lease expired) before the write: nothing was written."""


# The check the caller of a write wants made right before the request goes out. Per thread (and
# per task), so cached connectors shared by a threads pool stay safe.
_BEFORE_WRITE: ContextVar[Callable[[], None] | None] = ContextVar("sellerdesk_before_write", default=None)


@contextmanager
def fenced(check: Callable[[], None]) -> Iterator[None]:
    """Run a connector call whose writes first call `check()` (which raises LeaseLost to stop them)."""
    token = _BEFORE_WRITE.set(check)
    try:
        yield
    finally:
        _BEFORE_WRITE.reset(token)


def before_write() -> None:
    """Connectors call this immediately before every request that changes something on the marketplace."""
    check = _BEFORE_WRITE.get()
    if check is not None:
        check()


# ------------------------------------------------------------------------------ retry


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5
    initial: float = 0.5
    maximum: float = 60.0
    # A ban longer than this is not waited out inside a task: the error goes up and the poll
    # is rescheduled, so a worker is never parked for minutes.
    max_ban_wait: float = 120.0


class _WaitHonouringServer(tenacity.wait.wait_base):
    """Exponential backoff with full jitter, but never shorter than what the server asked for."""

    def __init__(self, policy: RetryPolicy, sleep_jitter: Callable[[float], float]) -> None:
        self.policy = policy
        self.jitter = sleep_jitter

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        backoff = min(self.policy.maximum, self.policy.initial * 2 ** (retry_state.attempt_number - 1))
        wait = self.jitter(backoff)
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, ConnectorError) and exc.retry_after is not None:
            wait = max(wait, exc.retry_after)
        return wait


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, ConnectorError) and exc.kind is ErrorKind.RETRYABLE


def call_with_retry(
    fn: Callable[[], T],
    policy: RetryPolicy = RetryPolicy(),
    *,
    sleep: Callable[[float], None] | None = None,
    jitter: Callable[[float], float] | None = None,
) -> T:
    """Run an idempotent read with retries on RETRYABLE errors. Never wrap a send in this."""

    def stop(state: tenacity.RetryCallState) -> bool:
        if state.attempt_number >= policy.attempts:
            return True
        exc = state.outcome.exception() if state.outcome else None
        return (
            isinstance(exc, ConnectorError)
            and exc.retry_after is not None
            and exc.retry_after > policy.max_ban_wait
        )

    kwargs: dict[str, Any] = {}
    if sleep is not None:
        kwargs["sleep"] = sleep
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(_is_retryable),
        stop=stop,
        wait=_WaitHonouringServer(policy, jitter or (lambda b: random.uniform(0, b))),
        reraise=True,
        **kwargs,
    )
    return retrying(fn)


# -------------------------------------------------------------------------- connector


@dataclass(frozen=True, slots=True)
class AccountRef:
    """What a connector needs of an account: its id (rate-limit key) and decrypted credentials."""

    id: int
    marketplace: str
    name: str
    credentials: dict[str, Any] = field(repr=False)  # decrypted secrets: never in a repr or a log
    settings: dict[str, Any] = field(default_factory=dict)


class RateLimiter(abc.ABC):
    """Token bucket keyed per account and API; shared by all workers when backed by Redis."""

    @abc.abstractmethod
    def acquire(self, key: str, rate: float, burst: int, cost: float = 1.0) -> float:
        """Block until `cost` tokens are available; return the seconds waited."""


class Connector(abc.ABC):
    """One marketplace account. Reads are retried; sends and actions are called once."""

    marketplace: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    streams: ClassVar[tuple[str, ...]] = (ORDERS, MESSAGES, DISPUTES)
    error_rules: ClassVar[tuple[ErrorRule, ...]] = ()
    # Actions whose effect the marketplace shows nowhere: `find_action` cannot tell "not done" from
    # "done", so an unknown outcome goes to a human instead of being executed again.
    unconfirmable_actions: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        account: AccountRef,
        *,
        http: httpx.Client | None = None,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy = RetryPolicy(),
        now: Callable[[], datetime] | None = None,
    ) -> None:

        self.account = account
        self.http = http or httpx.Client(timeout=httpx.Timeout(20.0, connect=5.0))
        self.limiter = limiter
        self.retry = retry
        self.now = now or (lambda: datetime.now(UTC))

    def close(self) -> None:
        self.http.close()

    # -- reads (incremental, cursor in / cursor out)
    @abc.abstractmethod
    def check_credentials(self) -> None:
        """Raise ConnectorError(ACCOUNT) when the credentials no longer work."""

    @abc.abstractmethod
    def fetch(self, stream: str, cursor: str | None) -> Batch[Any]:
        """Fetch the next bounded batch of `stream` after `cursor`."""

    def fetch_tracking(self, tracking_numbers: Sequence[str]) -> list[NormTracking]:
        """Marketplace-side tracking, for connectors that have it; default: none."""
        return []

    # -- writes (never blind-retried; see worker/outbox.py)
    @abc.abstractmethod
    def send_message(
        self, conversation_external_id: str, body: str, *, order_external_id: str | None
    ) -> SendResult:
        """Send one message; raises ConnectorError with maybe_sent when the outcome is unknown."""

    @abc.abstractmethod
    def find_sent_message(
        self,
        conversation_external_id: str,
        body: str,
        since: datetime,
        *,
        exclude: frozenset[str] = frozenset(),
    ) -> str | None:
        """Reconcile: the id of a seller message with this body sent since `since`, not in `exclude`.

        `exclude` holds the ids already attributed to other sends, so two identical texts in one
        conversation are never both taken for the same message.
        """

    def perform_action(self, request: ActionRequest) -> ActionResult:
        """Execute an approved action the capabilities allow."""
        raise ConnectorError(ErrorKind.FATAL, f"{self.marketplace} cannot perform {request.type}")

    def find_action(self, request: ActionRequest) -> ActionResult | None:
        """Reconcile: the result of an earlier attempt of this action, if it took effect."""
        return None


def chunks(seq: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    """Split `seq` into consecutive slices of at most `size`."""
    for start in range(0, len(seq), size):
        yield seq[start : start + size]
