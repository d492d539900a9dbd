"""Typed per-account lifecycle settings: the defaults below, deep-merged with `settings_json["lifecycle"]`.

Every timing and switch of the lifecycle mailer lives here, so a shop can change any of them without
code. Unknown keys are errors (a typo must not silently fall back to a default); a bad value is an
error naming the key, e.g. `lifecycle.feedback_request.delay_hours: Input should be >= 0`.
"""

from __future__ import annotations

from datetime import time
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SETTINGS_KEY = "lifecycle"


class Kind(StrEnum):
    """The lifecycle mails, in the order an order lives through them; the names are the template names."""

    unpaid_reminder = "unpaid_reminder"
    payment_confirmed = "payment_confirmed"
    shipped = "shipped"
    delivered = "delivered"
    feedback_request = "feedback_request"


class Mode(StrEnum):
    auto = "auto"  # the sweep writes the outbox row itself
    approval = "approval"  # the sweep parks the mail until an agent approves it (see sweep.approve_lifecycle)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KindSettings(_Strict):
    enabled: bool
    # Hours after the kind's moment (order placed, paid, shipped, delivered) before the mail is due.
    delay_hours: float = Field(ge=0, le=24 * 90)
    mode: Mode


class QuietHours(_Strict):
    """A window of the buyer's local day in which nothing is sent; may wrap midnight (21:00-08:00)."""

    enabled: bool
    start: time
    end: time

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet_hours start and end are equal (an empty or a whole-day window)")
        return self


class LifecycleConfig(_Strict):
    enabled: bool
    unpaid_reminder: KindSettings
    payment_confirmed: KindSettings
    shipped: KindSettings
    delivered: KindSettings
    feedback_request: KindSettings
    quiet_hours: QuietHours
    # Lifecycle mails per account and day (the shop's day, in `timezone`); null means no cap.
    daily_cap: int | None = Field(ge=0)
    # The shop's zone: its day for the cap, and the buyer's zone when the country is unknown.
    timezone: str
    # Buyer ids (as the marketplace names them) who never get a lifecycle mail.
    blocklist: frozenset[str]
    # A mail whose moment passed longer ago than this is not sent at all (first poll of an old
    # order, a sweep that was down for days): late "payment confirmed" mails confuse buyers.
    stale_after_hours: float = Field(gt=0, le=24 * 60)
    # Tracking link in the shipped mail; `{number}` is replaced by the tracking number. null: no link.
    tracking_url: str | None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (expected an IANA name such as Europe/Berlin)"
            ) from None
        return value

    @field_validator("tracking_url")
    @classmethod
    def _has_number(cls, value: str | None) -> str | None:
        if value is not None and ("{number}" not in value or not value.startswith(("https://", "http://"))):
            raise ValueError("tracking_url must be an http(s) URL containing {number}")
        return value

    def kind(self, kind: Kind) -> KindSettings:
        """The settings of one kind."""
        return getattr(self, kind.value)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


# The defaults every account starts from; `settings_json["lifecycle"]` overrides any part of it.
DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "unpaid_reminder": {"enabled": True, "delay_hours": 24, "mode": "auto"},
    "payment_confirmed": {"enabled": True, "delay_hours": 0, "mode": "auto"},
    "shipped": {"enabled": True, "delay_hours": 0, "mode": "auto"},
    # A day after delivery: the buyer has had time to open the parcel.
    "delivered": {"enabled": True, "delay_hours": 24, "mode": "auto"},
    "feedback_request": {"enabled": True, "delay_hours": 7 * 24, "mode": "auto"},
    "quiet_hours": {"enabled": True, "start": "21:00", "end": "08:00"},
    "daily_cap": 500,
    "timezone": "UTC",
    "blocklist": [],
    "stale_after_hours": 72,
    "tracking_url": "https://t.17track.net/en#nums={number}",
}


class LifecycleConfigError(ValueError):
    """Lifecycle settings that cannot be used; the message names every bad key."""


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def lifecycle_config(account_settings: dict[str, Any] | None) -> LifecycleConfig:
    """The defaults merged with an account's `settings_json["lifecycle"]`; LifecycleConfigError names bad keys."""
    overrides = (account_settings or {}).get(SETTINGS_KEY) or {}
    if not isinstance(overrides, dict):
        raise LifecycleConfigError(f"{SETTINGS_KEY}: must be an object, got {type(overrides).__name__}")
    try:
        return LifecycleConfig.model_validate(_merge(DEFAULTS, overrides))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join([SETTINGS_KEY, *(str(p) for p in err['loc'])])}: {err['msg']}" for err in exc.errors()
        )
        raise LifecycleConfigError(problems) from None
