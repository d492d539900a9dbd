"""The sandbox's simulated time: frozen or running at a speed factor, and advanced on demand."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


class SandboxClock:
    """Simulated now = start + advanced + real seconds elapsed x speed (0 freezes it)."""

    def __init__(self, start: datetime | None = None, speed: float = 1.0) -> None:
        if speed < 0:
            raise ValueError(f"clock speed must be >= 0, got {speed}")
        base = start or datetime.now(UTC).replace(microsecond=0)
        self._base = base if base.tzinfo else base.replace(tzinfo=UTC)
        self._anchor = time.monotonic()
        self._speed = speed
        self._lock = threading.Lock()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> datetime:
        with self._lock:
            elapsed = (time.monotonic() - self._anchor) * self._speed
            return self._base + timedelta(seconds=elapsed)

    def _reanchor(self) -> None:
        elapsed = (time.monotonic() - self._anchor) * self._speed
        self._base += timedelta(seconds=elapsed)
        self._anchor = time.monotonic()

    def advance(self, delta: timedelta) -> datetime:
        """Jump forward (never back: the marketplace's past does not change)."""
        if delta < timedelta(0):
            raise ValueError("the sandbox clock only moves forward")
        with self._lock:
            self._reanchor()
            self._base += delta
            return self._base

    def set_speed(self, speed: float) -> None:
        if speed < 0:
            raise ValueError(f"clock speed must be >= 0, got {speed}")
        with self._lock:
            self._reanchor()
            self._speed = speed
