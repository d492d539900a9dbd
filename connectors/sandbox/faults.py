"""Faults the sandbox injects on request: by rate (chaos benches) or forced (exact tests).

Kinds, and when they apply:
- `throttle`: answer 429 with an ApiCallLimit envelope, "This ban will last for N more seconds".
- `error_5xx`: answer 500 with a SYSTEM envelope, nothing done.
- `slow`: wait `slow_seconds`, then answer normally.
- `timeout`: do the work, then wait `timeout_seconds` (past the client's timeout) before answering.
- `lose_answer`: writes only; do the work, then close the connection without an answer
  ("sent but answer lost": the seller cannot know the message went out).
- `duplicate_pages`: a list page also repeats the last rows of the previous page.
- `reorder_pages`: a list page comes shuffled.
Revoked accounts get IllegalAccessToken on every call and cannot refresh.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

FAULT_KINDS: tuple[str, ...] = (
    "throttle",
    "error_5xx",
    "slow",
    "timeout",
    "lose_answer",
    "duplicate_pages",
    "reorder_pages",
)


@dataclass
class _Forced:
    kind: str
    remaining: int
    method: str | None


class Faults:
    """Fault settings shared by all request threads."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.rates: dict[str, float] = dict.fromkeys(FAULT_KINDS, 0.0)
        self.ban_seconds = 2
        self.slow_seconds = 0.3
        self.timeout_seconds = 3.0
        self._forced: deque[_Forced] = deque()
        self._revoked: set[str] = set()
        self.injected: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)

    def set(self, **values: Any) -> None:
        """Set rates (0..1) by kind and/or `ban_seconds`, `slow_seconds`, `timeout_seconds`."""
        with self._lock:
            for name, value in values.items():
                if name in ("ban_seconds",):
                    self.ban_seconds = int(value)
                elif name in ("slow_seconds", "timeout_seconds"):
                    setattr(self, name, float(value))
                elif name in self.rates:
                    rate = float(value)
                    if not 0.0 <= rate <= 1.0:
                        raise ValueError(f"fault rate {name!r} must be within 0..1, got {value!r}")
                    self.rates[name] = rate
                else:
                    raise ValueError(f"unknown fault {name!r} (known: {', '.join(FAULT_KINDS)})")

    def clear(self) -> None:
        """No faults at all (revocations included)."""
        with self._lock:
            self.rates = dict.fromkeys(FAULT_KINDS, 0.0)
            self._forced.clear()
            self._revoked.clear()

    def force(self, kind: str, count: int = 1, method: str | None = None) -> None:
        """Inject `kind` on the next `count` requests it applies to (optionally one API method only)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r} (known: {', '.join(FAULT_KINDS)})")
        with self._lock:
            self._forced.append(_Forced(kind, count, method))

    def draw(self, kind: str, method: str) -> bool:
        """Whether to inject `kind` now for `method` (forced faults first, then the rate)."""
        with self._lock:
            for forced in self._forced:
                if forced.kind == kind and (forced.method is None or forced.method == method):
                    forced.remaining -= 1
                    if forced.remaining <= 0:
                        self._forced.remove(forced)
                    self.injected[kind] += 1
                    return True
            hit = self.rates[kind] > 0 and self._rng.random() < self.rates[kind]
            if hit:
                self.injected[kind] += 1
            return hit

    def shuffle(self, items: list[Any]) -> None:
        with self._lock:
            self._rng.shuffle(items)

    def revoke_token(self, account: str) -> None:
        """The seller revoked the app's authorisation: every call of that account now fails."""
        with self._lock:
            self._revoked.add(account)

    def restore_token(self, account: str) -> None:
        with self._lock:
            self._revoked.discard(account)

    def is_revoked(self, account: str) -> bool:
        with self._lock:
            return account in self._revoked

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "rates": dict(self.rates),
                "ban_seconds": self.ban_seconds,
                "slow_seconds": self.slow_seconds,
                "timeout_seconds": self.timeout_seconds,
                "forced": [
                    {"kind": f.kind, "remaining": f.remaining, "method": f.method} for f in self._forced
                ],
                "revoked": sorted(self._revoked),
                "injected": dict(self.injected),
            }
