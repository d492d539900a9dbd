"""Typed policy settings. Every number is a setting; the guards in `guards.py` are not."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    # Unknown keys are errors: a typo in a shop's file must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid", frozen=True)


class ShippingMethod(_Strict):
    label: str | None = None
    promised_days: int = Field(ge=1, le=365)
    usual_days: tuple[int, int] | None = None
    countries: dict[str, int] = Field(default_factory=dict)

    @field_validator("countries")
    @classmethod
    def _countries(cls, v: dict[str, int]) -> dict[str, int]:
        out = {}
        for code, days in v.items():
            if len(code) != 2 or not code.isalpha():
                raise ValueError(f"country code {code!r} is not ISO 3166-1 alpha-2")
            if not 1 <= days <= 365:
                raise ValueError(f"promised days for {code} must be 1..365, got {days}")
            out[code.upper()] = days
        return out

    @field_validator("usual_days")
    @classmethod
    def _usual(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        if v is not None and not 0 < v[0] <= v[1]:
            raise ValueError("usual_days must be [min, max] with 0 < min <= max")
        return v


class Deadlines(_Strict):
    no_scan_lost_after_days: int = Field(ge=1, le=120)


class Protection(_Strict):
    extension_days: int = Field(ge=1, le=180)


class Orders(_Strict):
    handling_days: int = Field(ge=0, le=60)


class Compensation(_Strict):
    minor_quality_refund: Decimal = Field(ge=0)
    customs_tax_coupon: Decimal = Field(ge=0)
    shipping_method_refund: Decimal = Field(ge=0)
    keep_wrong_item_refund: Decimal = Field(ge=0)


class AutoSend(_Strict):
    enabled: bool
    confidence_threshold: float = Field(ge=0.0, le=1.0)
    period_hours: float = Field(ge=0)
    templates: frozenset[str]


class Money(_Strict):
    auto_allowed: bool
    auto_cap: Decimal = Field(ge=0)


class Policy(_Strict):
    deadlines: Deadlines
    shipping: dict[str, ShippingMethod]
    protection: Protection
    orders: Orders
    compensation: Compensation
    auto_send: AutoSend
    money: Money

    @model_validator(mode="after")
    def _has_default_method(self) -> Policy:
        if "default" not in self.shipping:
            raise ValueError("shipping.default is required (the fallback for unknown methods)")
        return self

    def method(self, shipping_method: str | None) -> ShippingMethod:
        """The settings for a shipping method code, falling back to `shipping.default`."""
        key = normalise_method(shipping_method)
        return self.shipping.get(key, self.shipping["default"])

    def promised_days(self, shipping_method: str | None, country: str | None) -> int:
        """Promised delivery days from the policy table (used when the order has none)."""
        m = self.method(shipping_method)
        if country and country.upper() in m.countries:
            return m.countries[country.upper()]
        return m.promised_days


def normalise_method(code: str | None) -> str:
    """`"China Post Small-Packet"` and `"china_post_small_packet"` name the same method."""
    if not code:
        return "default"
    out = []
    for ch in code.strip().lower():
        out.append(ch if ch.isalnum() else "_")
    return "_".join(filter(None, "".join(out).split("_")))
