"""The UI's Jinja2 environment: autoescaping always on, and the few filters the pages use for times and money."""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from worker.settings import Settings

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"


def _span(seconds: float) -> str:
    seconds = abs(int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 48 * 3600:
        hours, minutes = divmod(seconds // 60, 60)
        return f"{hours} h {minutes:02d}" if hours < 10 and minutes else f"{hours} h"
    return f"{seconds // 86400} d"


def ago(value: datetime | None, now: datetime) -> str:
    """'3 h ago' style age of a past moment ('in 5 min' for a future one)."""
    if value is None:
        return "—"
    delta = (now - value).total_seconds()
    return f"{_span(delta)} ago" if delta >= 0 else f"in {_span(delta)}"


def until(value: datetime | None, now: datetime) -> str:
    """'in 5 h' for a future moment, '2 h overdue' for a past one."""
    if value is None:
        return "—"
    delta = (value - now).total_seconds()
    return f"in {_span(delta)}" if delta >= 0 else f"{_span(delta)} overdue"


def money(amount: Decimal | None, currency: str | None = None) -> str:
    """'24.90 USD'."""
    if amount is None:
        return "—"
    return f"{Decimal(amount):,.2f} {currency or ''}".strip()


def percent(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def label(value: str | None) -> str:
    """'not_received' -> 'not received'."""
    return "" if value is None else str(value).replace("_", " ")


def static_version() -> str:
    """A short digest of the static files, appended to their URLs so browsers fetch new versions."""
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.glob("*")):
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def make_templates(settings: Settings) -> Jinja2Templates:
    """The Jinja2Templates the pages render with (autoescape on for every template)."""
    zone = ZoneInfo(settings.timezone)

    def when(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return "—" if value is None else value.astimezone(zone).strftime(fmt)

    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ago=ago, until=until, money=money, percent=percent, label=label, when=when)
    env.globals.update(
        shop_name=settings.shop_name, timezone=settings.timezone, static_version=static_version()
    )
    return Jinja2Templates(env=env)
