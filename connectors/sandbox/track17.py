"""The 17TRACK v2.2 dialect of the sandbox, fed by the parcels of the sandbox's orders."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.sandbox.world import Order, ParcelEvent, World, status_of
from connectors.seventeentrack import (
    ALREADY_REGISTERED,
    MAX_NUMBERS_PER_CALL,
    NOT_REGISTERED,
    OVER_40_NUMBERS,
)

OPERATIONS = ("register", "gettrackinfo", "stoptrack", "retrack")
RETRACK_NOT_ALLOWED = -18019904
INVALID_FORMAT = -18010012


class TrackRegistry:
    """Which numbers the seller registered (and stopped), as 17TRACK keeps them per account."""

    def __init__(self) -> None:
        self._numbers: dict[str, bool] = {}  # number -> stopped
        self._lock = threading.Lock()

    def handle(
        self, world: World, operation: str, entries: list[dict[str, Any]], now: datetime
    ) -> dict[str, Any]:
        if len(entries) > MAX_NUMBERS_PER_CALL:
            return {
                "code": OVER_40_NUMBERS,
                "data": {
                    "errors": [
                        {"code": OVER_40_NUMBERS, "message": "The submitted numbers exceed the 40 limit."}
                    ]
                },
            }
        accepted: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        with self._lock:
            for entry in entries:
                raw_number = entry.get("number") if isinstance(entry, dict) else None
                number = raw_number.strip() if isinstance(raw_number, str) else ""
                if not number:
                    rejected.append(_reject(number, INVALID_FORMAT, "The format of 'number' is invalid."))
                    continue
                if not _valid_carrier(entry.get("carrier")):
                    rejected.append(_reject(number, INVALID_FORMAT, "The format of 'carrier' is invalid."))
                    continue
                known = number in self._numbers
                if operation == "register":
                    if known:
                        rejected.append(
                            _reject(number, ALREADY_REGISTERED, "The tracking number is already registered.")
                        )
                    else:
                        self._numbers[number] = False
                        accepted.append({"number": number, "carrier": _carrier(world, number, entry)})
                elif not known:
                    rejected.append(_reject(number, NOT_REGISTERED, "The tracking number is not registered."))
                elif operation == "stoptrack":
                    self._numbers[number] = True
                    accepted.append({"number": number, "carrier": _carrier(world, number, entry)})
                elif operation == "retrack":
                    if not self._numbers[number]:
                        rejected.append(
                            _reject(number, RETRACK_NOT_ALLOWED, "Retrack is only allowed once stopped.")
                        )
                    else:
                        self._numbers[number] = False
                        accepted.append({"number": number, "carrier": _carrier(world, number, entry)})
                else:
                    accepted.append(track_entry(world, number, now))
        return {"code": 0, "data": {"accepted": accepted, "rejected": rejected}}


def _valid_carrier(value: Any) -> bool:
    """A carrier code is absent or a positive integer (17TRACK's carrier keys)."""
    return value in (None, "") or (
        isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31
    )


def _reject(number: str, code: int, message: str) -> dict[str, Any]:
    return {"number": number, "error": {"code": code, "message": message}}


def _carrier(world: World, number: str, entry: dict[str, Any]) -> int:
    order = world.parcels.get(number)
    if entry.get("carrier"):
        return int(entry["carrier"])
    return order.service.carrier_key if order else 0


def _event(event: ParcelEvent, country: str) -> dict[str, Any]:
    local = event.at.astimezone(UTC) + timedelta(hours=8 if country == "CN" else 0)
    return {
        "time_iso": local.strftime("%Y-%m-%dT%H:%M:%S") + ("+08:00" if country == "CN" else "+00:00"),
        "time_utc": event.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "time_raw": {
            "date": local.strftime("%Y-%m-%d"),
            "time": local.strftime("%H:%M:%S"),
            "timezone": None,
        },
        "description": event.description,
        "location": event.location,
        "stage": event.status,
        "sub_status": event.sub_status,
        "address": {"country": event.location.rsplit(", ", 1)[-1], "city": event.location.split(", ")[0]},
    }


def track_entry(world: World, number: str, now: datetime) -> dict[str, Any]:
    """One gettrackinfo `accepted` entry for a number, as of `now`."""
    with world.lock:
        order: Order | None = world.parcels.get(number)
        parcel = order.parcel if order else None
        visible = parcel.visible(now) if parcel else []
        status, sub_status = status_of(parcel, now)
    events = [_event(e, "CN" if e.location.endswith("CN") else "XX") for e in reversed(visible)]
    provider = {
        "provider": {
            "key": parcel.service.carrier_key if parcel else 0,
            "name": parcel.service.carrier_name if parcel else None,
            "alias": parcel.service.carrier_name if parcel else None,
            "country": "CN",
        },
        "service_type": None,
        "latest_sync_status": "Success",
        "latest_sync_time": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "events_hash": len(events),
        "events": events,
    }
    return {
        "number": number,
        "carrier": parcel.service.carrier_key if parcel else 0,
        "param": None,
        "tag": order.id if order else "",
        "track_info": {
            "shipping_info": {
                "shipper_address": {"country": "CN"},
                "recipient_address": {"country": parcel.destination_country if parcel else None},
            },
            "latest_status": {"status": status, "sub_status": sub_status, "sub_status_descr": None},
            "latest_event": events[0] if events else None,
            "time_metrics": {
                "days_after_order": (now - order.created_at).days if order else 0,
                "days_of_transit": (now - order.shipped_at).days if order and order.shipped_at else 0,
            },
            "milestone": [],
            "misc_info": {},
            "tracking": {"providers_hash": 0, "providers": [provider] if events else []},
        },
    }
