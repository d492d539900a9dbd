"""One worker, three marketplaces' accounts at once: AliExpress, eBay and the sandbox, each with its own
cursors, its own rate-limit bucket and its own capabilities (eBay cannot extend buyer protection)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import func, select

from connectors.base import RateLimiter
from connectors.ratelimit import InProcessTokenBucket
from connectors.sandbox.server import SandboxServer
from connectors.sandbox_ebay import EbaySandbox
from worker import models as m
from worker.connections import Connections
from worker.crypto import set_credentials
from worker.db import session_scope
from worker.decide import Engines, triage_messages
from worker.polling import poll_stream

EBAY = {
    "client_id": "Shop-cli-PRD-1",
    "client_secret": "secret-1",
    "refresh_token": "v^1.1#refresh",
    "seller_username": "gadget.corner.shop",
}


class RecordingLimiter(RateLimiter):
    def __init__(self) -> None:
        self.inner = InProcessTokenBucket()
        self.keys: set[str] = set()

    def acquire(self, key: str, rate: float, burst: int, cost: float = 1.0) -> float:
        self.keys.add(key)
        return self.inner.acquire(key, rate, burst, cost)


class WithEbayTransport(Connections):
    """Connections whose eBay accounts talk to an in-memory eBay (everything else is the real path)."""

    def __init__(self, *args, ebay: EbaySandbox, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ebay = ebay

    def _build(self, ref):
        if ref.marketplace != "ebay":
            return super()._build(ref)
        from connectors.ebay import EbayConnector

        return EbayConnector(
            ref,
            http=httpx.Client(transport=httpx.MockTransport(self.ebay.handle)),
            limiter=self.limiter,
            now=self.clock,
        )


@pytest.fixture
def ebay_world():
    now = datetime.now(UTC)
    world = EbaySandbox(
        client_id=EBAY["client_id"],
        client_secret=EBAY["client_secret"],
        refresh_token=EBAY["refresh_token"],
        seller_username=EBAY["seller_username"],
    )
    for n in range(1, 4):
        world.add_order(
            f"12-00000-0000{n}",
            buyer=f"buyer{n}",
            buyer_name=f"Buyer {n}",
            country="DE",
            title="Phone case",
            sku=f"C-{n}",
            quantity=1,
            unit_price=Decimal("9.90"),
            currency="EUR",
            created=now - timedelta(days=20),
            max_estimated_delivery=now + timedelta(days=20),
        )
        world.ship(
            f"12-00000-0000{n}",
            tracking=f"LP0099988877{n}CN",
            carrier="CHINA_POST",
            at=now - timedelta(days=18),
        )
        world.buyer_writes(
            f"conv-{n}", f"buyer{n}", "Wo ist mein Paket? Es ist schon 18 Tage her.", now - timedelta(hours=n)
        )
    return world


def test_one_worker_runs_aliexpress_ebay_and_sandbox_accounts(engine, settings, ebay_world):
    with SandboxServer(seed=5, port=0, accounts=2, orders=10, speed=0) as sb:
        ae_name, sb_name = sb.accounts[0].name, sb.accounts[1].name
        sb.add_buyer_messages(8, ae_name)
        sb.add_buyer_messages(8, sb_name)
        fast = {"rate_per_second": 1000, "burst": 1000}
        ids = {}
        with session_scope(engine) as s:
            for marketplace, name, creds in (
                ("aliexpress", ae_name, sb.credentials(ae_name)),  # the real connector, gateway = sandbox
                ("sandbox", sb_name, sb.credentials(sb_name)),
                ("ebay", "gadget-corner", EBAY),
            ):
                acc = m.Account(marketplace=marketplace, name=name, settings_json=fast)
                set_credentials(acc, creds, settings.secret_key)
                s.add(acc)
                s.flush()
                ids[marketplace] = acc.id
        limiter = RecordingLimiter()
        conns = WithEbayTransport(engine, settings, limiter=limiter, ebay=ebay_world)
        new = []
        for account_id in ids.values():
            for stream in ("orders", "messages", "disputes"):
                for _ in range(20):
                    result = poll_stream(account_id, stream, conns, engine=engine)
                    assert result.status == "ok", (account_id, stream, result.error)
                    new += result.new_messages
                    if not result.more:
                        break
        outcome = triage_messages(new, engines=Engines(), engine=engine)
        assert outcome["error"] == 0 and outcome["quarantined"] == 0

    with session_scope(engine) as s:
        cursors = s.execute(select(m.PollCursor.account_id, m.PollCursor.stream, m.PollCursor.cursor)).all()
        assert {(a, st) for a, st, _ in cursors} == {
            (a, st) for a in ids.values() for st in ("orders", "messages", "disputes")
        }
        per_account = dict(
            s.execute(select(m.Decision.account_id, func.count()).group_by(m.Decision.account_id)).all()
        )
        assert all(per_account.get(a, 0) >= 3 for a in ids.values()), per_account
        ebay_decisions = list(s.scalars(select(m.Decision).where(m.Decision.account_id == ids["ebay"])))
        assert all(a["type"] != "extend_protection" for d in ebay_decisions for a in d.actions_json)
    # One bucket per account (keys name marketplace and account), so one cannot starve another.
    assert {f"aliexpress:{ids['aliexpress']}", f"sandbox:{ids['sandbox']}"} <= limiter.keys
    assert any(str(ids["ebay"]) in key and "ebay" in key for key in limiter.keys), limiter.keys
