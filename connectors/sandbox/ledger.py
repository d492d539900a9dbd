"""Everything the sandbox received from the seller: messages and actions, with idempotency facts.

Each entry is a dict with `seq`, `kind` (message | extend_protection | refund_offer | refund_agree),
`account`, `at` (sandbox time), `wall_at`, `request_id`, `fingerprint` (what makes two entries the
same seller intent: account, target and content) and `copies` (how many times that fingerprint
has been received so far, this one included). A `copies` above 1 is a duplicate.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any


def fingerprint(*parts: Any) -> str:
    """A short stable digest of the parts; message text is compared whitespace-normalised."""
    text = "\x1f".join(" ".join(str(p).split()) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Ledger:
    """A thread-safe append-only list of what the seller sent; iterates and indexes like a list of dicts."""

    def __init__(self) -> None:
        self._entries: list[dict[str, Any]] = []
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()

    def record(self, kind: str, account: str, at: datetime, print_: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            copies = self._seen.get(print_, 0) + 1
            self._seen[print_] = copies
            entry = {
                "seq": len(self._entries) + 1,
                "kind": kind,
                "account": account,
                "at": at.isoformat(),
                "wall_at": datetime.now(UTC).isoformat(),
                "fingerprint": print_,
                "copies": copies,
                **fields,
            }
            self._entries.append(entry)
            return dict(entry)

    def annotate(self, seq: int, **fields: Any) -> None:
        """Add facts learnt after recording (e.g. that the answer was dropped by a fault)."""
        with self._lock:
            self._entries[seq - 1].update(fields)

    def entries(self, kind: str | None = None, account: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                dict(e)
                for e in self._entries
                if (kind is None or e["kind"] == kind) and (account is None or e["account"] == account)
            ]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Iterate over a snapshot (copies), so readers never race the request threads."""
        return iter(self.entries())

    def __getitem__(self, index: int) -> dict[str, Any]:
        with self._lock:
            return dict(self._entries[index])

    def duplicates(self, kind: str | None = None) -> int:
        """How many received entries repeat an earlier one (same fingerprint)."""
        with self._lock:
            return sum(1 for e in self._entries if e["copies"] > 1 and (kind is None or e["kind"] == kind))

    def duplicate_sends(self) -> int:
        """Messages received more than once: the same text to the same conversation again."""
        return self.duplicates("message")

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._seen.clear()
