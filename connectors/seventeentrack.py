"""17TRACK API v2.2: a tracking provider (not a marketplace connector).

POST `{base}/track/v2.2/{register,gettrackinfo,stoptrack,retrack}` with a JSON list of
`{"number": ..., "carrier"?: ...}` (at most 40), header `17token`, about 3 requests/s.
Envelope `{code: 0, data: {accepted: [...], rejected: [{number, error: {code, message}}]}}`.
Status in `track_info.latest_status.{status, sub_status}`; events per provider in
`track_info.tracking.providers[].events[]` (newest first there; oldest first here).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from connectors.base import (
    ConnectorError,
    ErrorKind,
    ErrorRule,
    NormTracking,
    NormTrackingEvent,
    RateLimiter,
    RetryPolicy,
    call_with_retry,
    chunks,
    classify_error,
    retry_after_seconds,
    transport_error,
)
from worker.triage.types import TrackingStatus

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.17track.net"
API_PREFIX = "/track/v2.2"
MAX_NUMBERS_PER_CALL = 40

# Per-number (rejected[].error.code) and envelope codes this client acts on.
ALREADY_REGISTERED = -18019901
NOT_REGISTERED = -18019902
OVER_40_NUMBERS = -18010014
# Ours, not 17TRACK's: the answer for this number could not be read; it is asked again next refresh.
UNREADABLE_ENTRY = -1

# ---------------------------------------------------------------------- status mapping

# Main status -> normalised status; a sub-status listed below wins over its main status.
MAIN_STATUSES: dict[str, TrackingStatus] = {
    "NotFound": TrackingStatus.not_found,
    "InfoReceived": TrackingStatus.info_received,
    "InTransit": TrackingStatus.in_transit,
    "Expired": TrackingStatus.expired,
    "AvailableForPickup": TrackingStatus.available_for_pickup,
    "OutForDelivery": TrackingStatus.out_for_delivery,
    "DeliveryFailure": TrackingStatus.delivery_failure,
    "Delivered": TrackingStatus.delivered,
    "Exception": TrackingStatus.exception,
}
SUB_STATUSES: dict[str, TrackingStatus] = {
    "InTransit_CustomsProcessing": TrackingStatus.customs_hold,
    "InTransit_CustomsRequiringInformation": TrackingStatus.customs_hold,
    "Exception_Returning": TrackingStatus.returning,
    "Exception_Returned": TrackingStatus.returned,
    "Exception_Lost": TrackingStatus.lost,
}
# Every sub-status 17TRACK v2.2 documents, for the exhaustive mapping test and the sandbox.
KNOWN_SUB_STATUSES: dict[str, tuple[str, ...]] = {
    "NotFound": ("NotFound_Other", "NotFound_InvalidCode"),
    "InfoReceived": ("InfoReceived",),
    "InTransit": (
        "InTransit_PickedUp",
        "InTransit_Other",
        "InTransit_Departure",
        "InTransit_Arrival",
        "InTransit_CustomsProcessing",
        "InTransit_CustomsReleased",
        "InTransit_CustomsRequiringInformation",
    ),
    "Expired": ("Expired_Other",),
    "AvailableForPickup": ("AvailableForPickup_Other",),
    "OutForDelivery": ("OutForDelivery_Other",),
    "DeliveryFailure": (
        "DeliveryFailure_Other",
        "DeliveryFailure_NoBody",
        "DeliveryFailure_Security",
        "DeliveryFailure_Rejected",
        "DeliveryFailure_InvalidAddress",
    ),
    "Delivered": ("Delivered_Other",),
    "Exception": (
        "Exception_Other",
        "Exception_Returning",
        "Exception_Returned",
        "Exception_NoBody",
        "Exception_Security",
        "Exception_Damage",
        "Exception_Rejected",
        "Exception_Delayed",
        "Exception_Lost",
        "Exception_Destroyed",
        "Exception_Cancel",
    ),
}


def json_body(response: httpx.Response) -> Any:
    """The answer's JSON. Invalid UTF-8 bytes read as U+FFFD (one bad byte in a buyer's text must not
    make a whole page unreadable); JSON nested deeper than the decoder goes is a ValueError like bad JSON."""
    try:
        return json.loads(response.content.decode("utf-8", errors="replace"))
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def map_status(status: str | None, sub_status: str | None = None) -> TrackingStatus:
    """17TRACK main status + sub-status -> normalised status; ValueError names an unknown status."""
    if sub_status and sub_status in SUB_STATUSES:
        return SUB_STATUSES[sub_status]
    if not status:
        # No status yet is what 17TRACK calls NotFound.
        return TrackingStatus.not_found
    try:
        return MAIN_STATUSES[status]
    except KeyError:
        raise ValueError(f"unknown 17TRACK status {status!r}") from None


# ------------------------------------------------------------------------ error table

SEVENTEENTRACK_ERROR_RULES: tuple[ErrorRule, ...] = (
    # More than 40 numbers in one call: our batching is broken, never retry it.
    ErrorRule(ErrorKind.FATAL, code=str(OVER_40_NUMBERS)),
    # Token invalid, account disabled or unauthorised: tracking is off until the token is fixed.
    ErrorRule(ErrorKind.ACCOUNT, code=re.compile(r"^-1801000[245]$")),
    # Internal service error, "please retry later".
    ErrorRule(ErrorKind.RETRYABLE, code="-18010003"),
    ErrorRule(ErrorKind.RETRYABLE, message=re.compile(r"retry later|too many requests|rate limit", re.I)),
)


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class TrackNumber:
    """A number to track, with 17TRACK's carrier code when known (else auto-detected)."""

    number: str
    carrier: int | None = None

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {"number": self.number}
        if self.carrier is not None:
            out["carrier"] = self.carrier
        return out


@dataclass(frozen=True, slots=True)
class Rejection:
    number: str
    code: int
    message: str


@dataclass(frozen=True, slots=True)
class TrackResult:
    """Outcome of one client operation over all batches."""

    accepted: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    tracks: list[NormTracking] = field(default_factory=list)


def _numbers(items: Iterable[str | TrackNumber]) -> list[TrackNumber]:
    out: list[TrackNumber] = []
    seen: set[str] = set()
    for item in items:
        entry = item if isinstance(item, TrackNumber) else TrackNumber(str(item))
        number = entry.number.strip()
        if not number:
            raise ValueError("tracking number is blank")
        if number not in seen:
            seen.add(number)
            out.append(TrackNumber(number, entry.carrier))
    return out


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    if not isinstance(value, str):
        raise ValueError(f"not an ISO time: {value!r:.40}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:  # year 9999 in a zone west of UTC
        raise ValueError(f"time out of range: {value[:40]!r}") from None


def _mapping(value: Any, name: str) -> Mapping[str, Any]:
    """A nested object of the answer; absent is empty, any other type is a ValueError naming it."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"field {name!r} is not an object but {type(value).__name__}")
    return value


def _sequence(value: Any, name: str) -> list[Any]:
    """A list of the answer; absent is empty, any other type is a ValueError naming it."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"field {name!r} is not a list but {type(value).__name__}")
    return value


def _event(raw: Any) -> NormTrackingEvent | None:
    raw = _mapping(raw, "events[]")
    try:
        moment = _time(raw.get("time_utc")) or _time(raw.get("time_iso"))
    except ValueError:
        shown = raw.get("time_utc") or raw.get("time_iso")
        raise ValueError(f"event time is not ISO: {shown!r:.60}") from None
    if moment is None:
        return None  # an event with no time cannot be placed on the timeline
    location = raw.get("location")
    if not isinstance(location, str):
        location = None  # a place is a nicety on the timeline: a malformed one is dropped, not fatal
    if not location and isinstance(raw.get("address"), Mapping):
        address = raw["address"]
        location = ", ".join(str(address[k]) for k in ("city", "state", "country") if address.get(k)) or None
    return NormTrackingEvent(
        time=moment, location=location or None, description=str(raw.get("description") or "")
    )


def normalise_track(accepted: Mapping[str, Any]) -> NormTracking:
    """One `data.accepted[]` entry of gettrackinfo -> NormTracking (events oldest first).

    A malformed entry raises ValueError naming the number (when it has one) and the field.
    """
    if not isinstance(accepted, Mapping):
        raise ValueError(f"gettrackinfo: an accepted entry is not an object but {type(accepted).__name__}")
    number = _entry_number(accepted)
    if not number:
        raise ValueError("gettrackinfo: an accepted entry has no 'number'")
    try:
        info = _mapping(accepted.get("track_info"), "track_info")
        latest = _mapping(info.get("latest_status"), "latest_status")
        status, sub_status = latest.get("status"), latest.get("sub_status")
        for name, value in (("status", status), ("sub_status", sub_status)):
            if value is not None and not isinstance(value, str):
                raise ValueError(f"field 'latest_status.{name}' is not a string: {value!r:.40}")
    except ValueError as exc:
        raise ValueError(f"tracking {number}: {exc}") from None
    try:
        normalised = map_status(status, sub_status)
    except ValueError as exc:
        raise ValueError(f"tracking {number}: field 'latest_status.status': {exc}") from None
    events: dict[tuple[datetime, str], NormTrackingEvent] = {}
    try:
        providers = _sequence(_mapping(info.get("tracking"), "tracking").get("providers"), "providers")
        for provider in providers:
            for raw in _sequence(_mapping(provider, "providers[]").get("events"), "events"):
                event = _event(raw)
                if event is not None:
                    events.setdefault((event.time, event.description), event)
        latest_event = _event(info.get("latest_event"))
    except ValueError as exc:
        raise ValueError(f"tracking {number}: {exc}") from None
    if latest_event is not None:
        events.setdefault((latest_event.time, latest_event.description), latest_event)
    ordered = tuple(sorted(events.values(), key=lambda e: e.time))
    return NormTracking(
        tracking_number=number,
        status=normalised,
        sub_status=sub_status or None,
        last_event_at=ordered[-1].time if ordered else None,
        events=ordered,
    )


# ------------------------------------------------------------------------------ client


class SeventeenTrackClient:
    """17TRACK v2.2 with batches of 40, the shared rate limiter and classified errors."""

    error_rules: tuple[ErrorRule, ...] = SEVENTEENTRACK_ERROR_RULES

    def __init__(
        self,
        token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        http: httpx.Client | None = None,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy = RetryPolicy(),
        rate_per_second: float = 3.0,
        burst: int = 3,
        limiter_key: str = "17track",
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if not token:
            raise ValueError("17TRACK setting 'token' is empty")
        self.token = token
        self.base_url = base_url.rstrip("/")
        self.http = http or httpx.Client(timeout=httpx.Timeout(30.0, connect=5.0))
        self.limiter = limiter
        self.retry = retry
        self.rate_per_second = rate_per_second
        self.burst = burst
        self.limiter_key = limiter_key
        self.sleep = sleep

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------------ transport

    def _post_once(self, operation: str, batch: Sequence[TrackNumber]) -> dict[str, Any]:
        if self.limiter is not None:
            self.limiter.acquire(self.limiter_key, self.rate_per_second, self.burst)
        try:
            response = self.http.post(
                f"{self.base_url}{API_PREFIX}/{operation}",
                json=[n.payload() for n in batch],
                headers={"17token": self.token, "Content-Type": "application/json"},
            )
        except httpx.TransportError as exc:
            raise transport_error(exc) from None
        try:
            body = json_body(response)
        except ValueError:
            body = None
        code = body.get("code") if isinstance(body, dict) else None
        if response.status_code < 400 and code == 0:
            data = body.get("data") if isinstance(body, dict) else None
            return data if isinstance(data, dict) else {}
        message = _envelope_message(body) or f"http {response.status_code}"
        code_text = str(code) if code is not None else None
        kind = classify_error(self.error_rules, status=response.status_code, code=code_text, message=message)
        raise ConnectorError(
            kind,
            f"17track {operation}: {message}"[:500],
            code=code_text,
            status=response.status_code,
            retry_after=retry_after_seconds(response.headers, message)
            if kind is ErrorKind.RETRYABLE
            else None,
        )

    def _post(self, operation: str, batch: Sequence[TrackNumber]) -> dict[str, Any]:
        if len(batch) > MAX_NUMBERS_PER_CALL:
            raise ValueError(f"at most {MAX_NUMBERS_PER_CALL} numbers per 17TRACK call, got {len(batch)}")
        # Every v2.2 operation is idempotent on 17TRACK's side (a repeated register is -18019901).
        return call_with_retry(lambda: self._post_once(operation, batch), self.retry, sleep=self.sleep)

    def _each_batch(self, operation: str, numbers: Iterable[str | TrackNumber]) -> TrackResult:
        result = TrackResult()
        for batch in chunks(_numbers(numbers), MAX_NUMBERS_PER_CALL):
            data = self._post(operation, batch)
            for entry in _answer_list(data, "accepted", operation):
                number = _entry_number(entry)
                if number:
                    result.accepted.append(number)
                else:
                    log.warning("17track %s: an accepted entry names no number: %.200r", operation, entry)
            for entry in _answer_list(data, "rejected", operation):
                result.rejected.append(_rejection(entry))
        return result

    # ------------------------------------------------------------------ operations

    def register(self, numbers: Iterable[str | TrackNumber]) -> TrackResult:
        """Register numbers for tracking; an already registered number counts as accepted."""
        raw = self._each_batch("register", numbers)
        accepted = list(raw.accepted)
        rejected: list[Rejection] = []
        for rejection in raw.rejected:
            if rejection.code == ALREADY_REGISTERED:
                accepted.append(rejection.number)
            else:
                rejected.append(rejection)
        return TrackResult(accepted=accepted, rejected=rejected)

    def stop_track(self, numbers: Iterable[str | TrackNumber]) -> TrackResult:
        """Stop tracking numbers (they no longer count against the quota)."""
        return self._each_batch("stoptrack", numbers)

    def retrack(self, numbers: Iterable[str | TrackNumber]) -> TrackResult:
        """Restart tracking of stopped numbers."""
        return self._each_batch("retrack", numbers)

    def get_track_info(self, numbers: Iterable[str | TrackNumber]) -> TrackResult:
        """Current tracking of each number; unregistered numbers are registered, then asked again once."""
        wanted = _numbers(numbers)
        tracks: list[NormTracking] = []
        rejected: list[Rejection] = []
        unregistered: list[TrackNumber] = []
        by_number = {n.number: n for n in wanted}
        for batch in chunks(wanted, MAX_NUMBERS_PER_CALL):
            self._collect(self._post("gettrackinfo", batch), by_number, tracks, rejected, unregistered)
        if unregistered:
            registration = self.register(unregistered)
            rejected.extend(registration.rejected)
            again = [by_number[n] for n in registration.accepted if n in by_number]
            for batch in chunks(again, MAX_NUMBERS_PER_CALL):
                still: list[TrackNumber] = []
                self._collect(self._post("gettrackinfo", batch), by_number, tracks, rejected, still)
                # Registered a moment ago and 17TRACK has nothing yet: report it, do not loop.
                rejected.extend(
                    Rejection(n.number, NOT_REGISTERED, "registered; no information yet") for n in still
                )
        return TrackResult(accepted=[t.tracking_number for t in tracks], rejected=rejected, tracks=tracks)

    @staticmethod
    def _collect(
        data: Mapping[str, Any],
        by_number: Mapping[str, TrackNumber],
        tracks: list[NormTracking],
        rejected: list[Rejection],
        unregistered: list[TrackNumber],
    ) -> None:
        for entry in _answer_list(data, "accepted", "gettrackinfo"):
            try:
                tracks.append(normalise_track(entry))
            except ValueError as exc:
                # One unreadable parcel must not cost the other 39 their refresh: it is reported as
                # rejected (logged) and asked again at the next refresh.
                log.warning("17track gettrackinfo: %s", exc)
                number = _entry_number(entry) if isinstance(entry, Mapping) else ""
                rejected.append(Rejection(number, UNREADABLE_ENTRY, str(exc)[:500]))
        for entry in _answer_list(data, "rejected", "gettrackinfo"):
            rejection = _rejection(entry)
            if rejection.code == NOT_REGISTERED and rejection.number in by_number:
                # Only numbers we asked about are registered: an answer cannot make us track others.
                unregistered.append(by_number[rejection.number])
            else:
                rejected.append(rejection)


def _entry_number(entry: Any) -> str:
    """The tracking number an answer entry is about ("" when it names none)."""
    if not isinstance(entry, Mapping):
        return ""
    number = entry.get("number")
    return number.strip() if isinstance(number, str) else ""


def _answer_list(data: Mapping[str, Any], key: str, operation: str) -> list[Any]:
    """`data.accepted` / `data.rejected`; any other shape than a list is a FATAL answer."""
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConnectorError(
            ErrorKind.FATAL, f"17track {operation}: data.{key} is not a list but {type(value).__name__}"
        )
    return value


def _rejection(entry: Any) -> Rejection:
    error = entry.get("error") if isinstance(entry, Mapping) else None
    error = error if isinstance(error, Mapping) else {}
    try:
        code = int(error.get("code"))
    except (TypeError, ValueError, OverflowError):
        code = 0
    return Rejection(number=_entry_number(entry), code=code, message=str(error.get("message") or ""))


def _envelope_message(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    data = body.get("data")
    if isinstance(data, dict):
        errors = data.get("errors") or []
        if errors and isinstance(errors[0], dict):
            return str(errors[0].get("message") or errors[0].get("code"))
    return str(body.get("message")) if body.get("message") else None
