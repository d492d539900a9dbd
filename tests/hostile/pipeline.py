"""Every hostile text through the daemon's real data path once: sandbox -> connector -> poll -> ingest -> triage.

Built once per test session (about a second) and shared by the data-path and web suites, which then
check each payload's own rows. Each payload is a buyer message on its own order; the short ones are
also a buyer's name on another order, so the reply greets them by it.
"""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine

from connectors.ratelimit import InProcessTokenBucket
from connectors.sandbox.server import SandboxServer
from tests.hostile.payloads import ALL_TEXTS, TEXTS
from worker import models as m
from worker.connections import Connections
from worker.crypto import set_credentials
from worker.db import make_engine, session_scope
from worker.decide import Engines, triage_messages
from worker.polling import poll_stream
from worker.settings import Settings, load_settings

SHOP = "Hostile Test Shop"
NAME_LIMIT = 200  # orders.buyer_name is VARCHAR(200)
NAME_MESSAGE = "Hello, where is my order? It has been weeks."


@dataclass
class Pipeline:
    settings: Settings
    engine: Engine
    account_id: int
    # payload name -> the marketplace id of the buyer message carrying it
    message_ids: dict[str, str] = field(default_factory=dict)
    # payload name -> the marketplace id of the message whose buyer is named by it
    name_message_ids: dict[str, str] = field(default_factory=dict)
    outcome: Counter[str] = field(default_factory=Counter)


def drain(pipe: Pipeline, conns: Connections, stream: str) -> list[int]:
    new: list[int] = []
    for _ in range(200):
        result = poll_stream(pipe.account_id, stream, conns, engine=pipe.engine)
        assert result.status == "ok", result.error
        new += result.new_messages
        if not result.more:
            return new
    raise AssertionError(f"{stream} never drained")


def build_pipeline(root: Path, migrated_db: Path) -> Pipeline:
    """The shared SQLite pipeline: every payload as a message, the short ones also as a buyer's name."""
    settings = load_settings(_env_file=None, data_dir=root / "data", shop_name=SHOP)
    target = settings.data_dir / "sellerdesk.db"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(migrated_db, target)
    names = {name: text for name, text in TEXTS.items() if len(text) <= NAME_LIMIT}
    return feed(make_engine(settings.database_url), settings, ALL_TEXTS, names)


def feed(engine: Engine, settings: Settings, texts: dict[str, str], names: dict[str, str]) -> Pipeline:
    """Put each text in a buyer message and each name on a buyer, in the sandbox; poll and triage them all."""
    with SandboxServer(seed=21, port=0, speed=0) as sandbox:
        shop = sandbox.accounts[0]
        now = sandbox.now()
        with session_scope(engine) as s:
            account = m.Account(
                marketplace="sandbox", name=shop.name, settings_json={"rate_per_second": 1000, "burst": 1000}
            )
            set_credentials(account, sandbox.credentials(shop.name), settings.secret_key)
            s.add(account)
            s.flush()
            pipe = Pipeline(settings, engine, account.id)
        for name, text in texts.items():
            order = sandbox.world.make_order(shop, "in_transit", now, touch=True)
            msg = sandbox.world.add_message(shop, order, now, situation=None, text=text, language=None)
            pipe.message_ids[name] = msg.id
        for name, text in names.items():
            order = sandbox.world.make_order(shop, "in_transit", now, touch=True)
            order.buyer.name = text
            msg = sandbox.world.add_message(
                shop, order, now, situation=None, text=NAME_MESSAGE, language="en"
            )
            pipe.name_message_ids[name] = msg.id
        conns = Connections(engine, settings, limiter=InProcessTokenBucket())
        drain(pipe, conns, "orders")
        new = drain(pipe, conns, "messages")
    pipe.outcome = triage_messages(new, engines=Engines(shop_name=SHOP), engine=engine)
    return pipe


def stored_message(pipe: Pipeline, external_id: str) -> m.Message:
    with session_scope(pipe.engine) as s:
        return s.scalars(select(m.Message).where(m.Message.external_id == external_id)).one()


def draft_of(pipe: Pipeline, external_id: str) -> m.Draft | None:
    with session_scope(pipe.engine) as s:
        return s.scalar(
            select(m.Draft)
            .join(m.Decision, m.Decision.id == m.Draft.decision_id)
            .join(m.Message, m.Message.id == m.Decision.message_id)
            .where(m.Message.external_id == external_id)
        )
