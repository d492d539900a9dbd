"""Drive a sandbox running in another process through its admin endpoints (tests, demo, chaos bench)."""

from __future__ import annotations

from typing import Any

import httpx


class SandboxAdmin:
    """A thin client of `/_sandbox/...`; errors raise httpx.HTTPStatusError."""

    def __init__(self, url: str, *, http: httpx.Client | None = None) -> None:
        self.url = url.rstrip("/")
        self.http = http or httpx.Client(timeout=10.0)

    def _get(self, name: str) -> Any:
        response = self.http.get(f"{self.url}/_sandbox/{name}")
        response.raise_for_status()
        return response.json()

    def _post(self, name: str, payload: dict[str, Any]) -> Any:
        response = self.http.post(f"{self.url}/_sandbox/{name}", json=payload)
        response.raise_for_status()
        return response.json()

    def clock(self) -> dict[str, Any]:
        return self._get("clock")

    def advance(self, **delta: float) -> dict[str, Any]:
        """Move simulated time by days/hours/minutes/seconds."""
        return self._post("clock", delta)

    def ledger(self) -> list[dict[str, Any]]:
        return self._get("ledger")["entries"]

    def duplicate_sends(self) -> int:
        return int(self._get("ledger")["duplicate_sends"])

    def accounts(self) -> list[dict[str, Any]]:
        return self._get("accounts")

    def state(self) -> dict[str, Any]:
        return self._get("state")

    def messages(self) -> list[dict[str, Any]]:
        return self._get("messages")

    def set_faults(self, clear: bool = False, **rates: float) -> dict[str, Any]:
        """Set fault rates (e.g. throttle=0.1, error_5xx=0.1); `clear` first removes every fault."""
        return self._post("faults", {"clear": clear, "rates": rates})

    def revoke_token(self, account: str) -> dict[str, Any]:
        return self._post("faults", {"revoke": [account]})

    def force(self, kind: str, count: int = 1, method: str | None = None) -> dict[str, Any]:
        return self._post("faults", {"force": [{"kind": kind, "count": count, "method": method}]})

    def generate(
        self,
        *,
        orders: int = 0,
        messages: int = 0,
        disputes: int = 0,
        account: str | None = None,
        fresh: bool = False,
    ) -> dict[str, list[str]]:
        payload: dict[str, Any] = {
            "orders": orders,
            "messages": messages,
            "disputes": disputes,
            "fresh": fresh,
        }
        if account:
            payload["account"] = account
        return self._post("generate", payload)
