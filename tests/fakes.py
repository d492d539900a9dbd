"""A recording fake connector and database seeds for daemon-side tests."""

from __future__ import annotations

import itertools
import threading
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from connectors.base import (
    AccountRef,
    ActionRequest,
    ActionResult,
    Batch,
    Capabilities,
    Connector,
    ConnectorError,
    ErrorKind,
    SendResult,
    before_write,
)
from worker import models as m


class FakeConnector(Connector):
    """Records every send and action the way a marketplace would, with scriptable failures.

    `fail_next` is a list of modes consumed one per call: "timeout_after_send" (the marketplace got
    it, we did not hear back), "timeout_before_send", "retryable", "fatal", "account", "crash_after_send".
    """

    marketplace = "fake"
    capabilities = Capabilities(
        extend_protection=True, refund_full=True, refund_partial=True, resend=True, coupon=True
    )

    def __init__(self, account_id: int = 1) -> None:
        super().__init__(AccountRef(account_id, "fake", "fake", {}), http=None)
        self.sent: list[dict[str, Any]] = []
        self.actions: list[ActionRequest] = []
        self.fail_next: list[str] = []
        self.lock = threading.Lock()
        self.ids = itertools.count(1)

    def check_credentials(self) -> None:  # pragma: no cover - not used here
        pass

    def fetch(self, stream: str, cursor: str | None) -> Batch[Any]:  # pragma: no cover
        return Batch(rows=[], cursor=cursor, more=False)

    def _fail(self) -> str | None:
        with self.lock:
            return self.fail_next.pop(0) if self.fail_next else None

    def _raise_before(self, mode: str | None) -> None:
        if mode == "timeout_before_send":
            raise ConnectorError(ErrorKind.RETRYABLE, "connect timeout", maybe_sent=False)
        if mode == "retryable":
            raise ConnectorError(ErrorKind.RETRYABLE, "503", status=503)
        if mode == "fatal":
            raise ConnectorError(ErrorKind.FATAL, "bad request", status=400)
        if mode == "account":
            raise ConnectorError(ErrorKind.ACCOUNT, "token revoked", status=401)

    def _raise_after(self, mode: str | None) -> None:
        if mode == "timeout_after_send":
            raise ConnectorError(ErrorKind.RETRYABLE, "read timeout", maybe_sent=True)
        if mode == "crash_after_send":
            raise RuntimeError("worker died")

    def send_message(
        self, conversation_external_id: str, body: str, *, order_external_id: str | None
    ) -> SendResult:
        mode = self._fail()
        self._raise_before(mode)
        before_write()
        with self.lock:
            mid = f"m{next(self.ids)}"
            self.sent.append(
                {"id": mid, "conversation": conversation_external_id, "body": body, "at": self.now()}
            )
        self._raise_after(mode)
        return SendResult(marketplace_message_id=mid)

    def find_sent_message(
        self,
        conversation_external_id: str,
        body: str,
        since: datetime,
        *,
        exclude: frozenset[str] = frozenset(),
    ) -> str | None:
        with self.lock:
            for msg in self.sent:
                if (
                    msg["conversation"] == conversation_external_id
                    and msg["body"] == body
                    and msg["id"] not in exclude
                ):
                    return msg["id"]
        return None

    def perform_action(self, request: ActionRequest) -> ActionResult:
        mode = self._fail()
        self._raise_before(mode)
        before_write()
        with self.lock:
            self.actions.append(request)
        self._raise_after(mode)
        return ActionResult(external_ref=f"ref-{request.idempotency_key}")

    def find_action(self, request: ActionRequest) -> ActionResult | None:
        with self.lock:
            for a in self.actions:
                if a.idempotency_key == request.idempotency_key:
                    return ActionResult(external_ref=f"ref-{a.idempotency_key}")
        return None


def seed_order(
    s, *, total: str = "24.90", refunded: str = "0", now: datetime
) -> tuple[m.Account, m.Order, m.Conversation, m.Message]:
    """One account with one shipped order, a conversation and a buyer message."""
    acc = m.Account(marketplace="sandbox", name=f"shop-{now.timestamp()}")
    s.add(acc)
    s.flush()
    order = m.Order(
        account_id=acc.id,
        external_id="8000001",
        status="shipped",
        total=Decimal(total),
        currency="USD",
        refunded_total=Decimal(refunded),
        buyer_name="Alex",
        buyer_country="US",
        paid_at=now - timedelta(days=22),
        shipped_at=now - timedelta(days=20),
        shipping_method="epacket",
        tracking_number="LX123CN",
    )
    s.add(order)
    s.flush()
    conv = m.Conversation(account_id=acc.id, external_id="conv-1", order_id=order.id, buyer_name="Alex")
    s.add(conv)
    s.flush()
    msg = m.Message(
        conversation_id=conv.id, external_id="b1", direction="buyer", body="where is it?", sent_at=now
    )
    s.add(msg)
    s.flush()
    return acc, order, conv, msg
