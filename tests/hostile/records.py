"""What "parsed" must mean for a normalised record: every field of its declared type, storable as is.

A connector that lets garbage through (a dict where a name goes, NaN money, a 10**30 quantity) only
moves the crash to ingest, where one bad row fails the whole poll's transaction. `problems` lists
every field of a Norm* record that the database could not hold.
"""

from __future__ import annotations

import dataclasses
import typing
from datetime import datetime
from decimal import Decimal
from typing import Any

import connectors.base as base

INT_RANGE = range(-(2**31), 2**31)  # INTEGER columns (PostgreSQL int4)


def _allowed(hint: Any) -> tuple[type, ...]:
    args = typing.get_args(hint) or (hint,)
    return tuple(a for a in args if isinstance(a, type) and a is not type(None))


def problems(record: Any, where: str = "record") -> list[str]:
    """Fields of a Norm* dataclass that do not hold their declared type or do not fit the database."""
    found: list[str] = []
    hints = typing.get_type_hints(type(record), vars(base))
    for f in dataclasses.fields(record):
        if f.name == "raw":
            continue
        value, hint = getattr(record, f.name), hints[f.name]
        label = f"{where}.{f.name}"
        if value is None:
            if type(None) not in typing.get_args(hint):
                found.append(f"{label} is None")
            continue
        if typing.get_origin(hint) is tuple:
            for i, item in enumerate(value):
                found += problems(item, f"{label}[{i}]")
            continue
        allowed = _allowed(hint)
        if allowed and (not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)):
            found.append(f"{label} is {type(value).__name__}: {value!r:.60}")
        elif isinstance(value, Decimal):
            if not value.is_finite() or value.as_tuple().exponent < -2 or value.adjusted() >= 10:
                found.append(f"{label} is not NUMERIC(12, 2): {value}")
        elif isinstance(value, int) and not isinstance(value, bool) and value not in INT_RANGE:
            found.append(f"{label} is out of INTEGER range: {value}")
        elif isinstance(value, datetime) and value.tzinfo is None:
            found.append(f"{label} is a naive datetime")
    return found
