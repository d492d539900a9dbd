"""The daemon for real: Redis broker, PostgreSQL, `sellerdesk worker` processes and the sandbox.

Every buyer message gets exactly one decision, every reply reaches the sandbox at most once (and
exactly once when it was meant to), through injected faults, killed workers and a revoked token.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from bench.harness import Daemon, daemon_env, flush_broker, settled, tick, wait_until
from connectors.sandbox.server import SandboxServer
from worker import models as m
from worker.celery_app import app, configure
from worker.crypto import set_credentials
from worker.db import session_scope, utcnow
from worker.drafts import approve_draft
from worker.settings import load_settings, set_settings

BROKER_DB = 13  # a Redis database of this test module's own


@pytest.fixture
def world(tmp_path, pg_url, redis_url):
    broker = redis_url.rsplit("/", 1)[0] + f"/{BROKER_DB}"
    flush_broker(broker)
    data_dir = tmp_path / "data"
    settings = load_settings(
        _env_file=None, data_dir=data_dir, database_url=pg_url, broker_url=broker, redis_url=broker
    )
    set_settings(settings)
    configure(app, settings)
    sb = SandboxServer(seed=11, port=0, accounts=2, orders=15, speed=1.0).start()
    ids = {}
    with session_scope() as s:
        for acc in sb.accounts:
            row = m.Account(
                marketplace="sandbox",
                name=acc.name,
                settings_json={"rate_per_second": 500, "burst": 500, "http_timeout_seconds": 1.5},
            )
            set_credentials(row, sb.credentials(acc.name), settings.secret_key)
            s.add(row)
            s.flush()
            ids[acc.name] = row.id
    daemon = Daemon(env=daemon_env(data_dir, pg_url, broker), log_dir=tmp_path / "logs")
    daemon.start_split()
    try:
        yield sb, daemon, ids
    finally:
        daemon.stop()
        sb.stop()
        flush_broker(broker)


def approve_all_pending() -> int:
    now = utcnow()
    with session_scope() as s:
        pending = list(s.scalars(select(m.Draft.id).where(m.Draft.state == "pending")))
        for draft_id in pending:
            approve_draft(s, draft_id, actor="test", reviewer_id=None, now=now)
    return len(pending)


def buyer_messages_in_sandbox(sb: SandboxServer) -> set[str]:
    return {row["id"] for row in sb.messages() if row["sender"] not in ("seller", "system")}


def assert_exactly_once(sb: SandboxServer) -> None:
    """One decision per buyer message; every send delivered exactly once; repeats only by a human's choice."""
    with session_scope() as s:
        buyer = s.scalar(select(func.count()).select_from(m.Message).where(m.Message.direction == "buyer"))
        decided = s.scalar(
            select(func.count()).select_from(m.Decision).where(m.Decision.message_id.is_not(None))
        )
        quarantined = s.scalar(
            select(func.count())
            .select_from(m.Quarantine)
            .where(m.Quarantine.kind.in_(["message", "dispute"]))
        )
        # Actions set aside for a person: only those the marketplace cannot confirm after an unknown outcome.
        set_aside = list(s.scalars(select(m.Quarantine.reason).where(m.Quarantine.kind == "action")))
        stored = set(s.scalars(select(m.Message.external_id).where(m.Message.direction == "buyer")))
        sent_ids = list(s.scalars(select(m.Outbox.marketplace_message_id).where(m.Outbox.state == "sent")))
        repeats = s.execute(
            select(m.Outbox.conversation_id, m.Outbox.body, m.Draft.auto)
            .join(m.Draft, m.Draft.id == m.Outbox.draft_id)
            .where(m.Outbox.state == "sent", m.Outbox.conversation_id.is_not(None))
        ).all()
    assert quarantined == 0, "no buyer message or dispute was set aside as poison"
    assert all("cannot confirm it" in reason for reason in set_aside), set_aside
    doubled = [
        e
        for kind in ("extend_protection", "refund_offer", "refund_agree")
        for e in sb.ledger.entries(kind)
        if e["copies"] > 1
    ]
    assert doubled == [], "no action reached the marketplace twice"
    assert decided == buyer, "every buyer message has exactly one decision"
    assert buyer_messages_in_sandbox(sb) <= stored, "no buyer message was lost"
    received = [e["message_id"] for e in sb.ledger.entries() if e["kind"] == "message"]
    # Each message the marketplace received belongs to exactly one send we marked sent, and the other way
    # round: a second delivery of the same send would be a ledger entry that no sent row owns.
    assert Counter(received) == Counter(sent_ids), (
        "every send marked sent reached the marketplace exactly once"
    )
    texts = Counter((conv, body) for conv, body, _ in repeats)
    for (conv, body), n in texts.items():
        if n > 1:
            autos = [auto for c, b, auto in repeats if (c, b) == (conv, body)]
            assert autos.count(True) <= 1, (
                f"the same text went out automatically twice to conversation {conv}"
            )


def run_until_settled(sb: SandboxServer, timeout: float = 120) -> None:
    def done() -> bool:
        approve_all_pending()
        with session_scope() as s:
            stored = set(s.scalars(select(m.Message.external_id).where(m.Message.direction == "buyer")))
        return buyer_messages_in_sandbox(sb) <= stored and settled()

    if not wait_until(done, timeout, every=1.0):
        from worker.status import collect

        with session_scope() as s:
            stored = set(s.scalars(select(m.Message.external_id).where(m.Message.direction == "buyer")))
            cursors = [
                (c.account_id, c.stream, c.last_error, c.leased_until)
                for c in s.scalars(select(m.PollCursor))
            ]
            open_rows = [
                (o.id, o.state, o.last_error)
                for o in s.scalars(select(m.Outbox).where(m.Outbox.state != "sent"))
            ]
        missing = buyer_messages_in_sandbox(sb) - stored
        pytest.fail(
            f"did not settle: missing {len(missing)} messages, cursors {cursors}, open sends {open_rows[:10]}, "
            f"status {collect()}"
        )


def test_messages_flow_to_drafts_and_sends(world):
    sb, daemon, ids = world
    for acc in sb.accounts:
        sb.add_buyer_messages(15, acc.name)
    sb.open_disputes(2, sb.accounts[0].name)
    run_until_settled(sb)
    assert_exactly_once(sb)
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(m.Outbox).where(m.Outbox.state == "sent")) >= 25
        assert (
            s.scalar(
                select(func.count())
                .select_from(m.PollCursor)
                .where(m.PollCursor.last_success_at.is_not(None))
            )
            == 6
        )


def test_thirty_percent_faults_still_exactly_once(world):
    sb, daemon, ids = world
    sb.faults.set(
        error_5xx=0.1,
        throttle=0.08,
        timeout=0.04,
        lose_answer=0.04,
        duplicate_pages=0.02,
        reorder_pages=0.02,
        ban_seconds=1,
        timeout_seconds=2.0,
    )
    for acc in sb.accounts:
        sb.add_buyer_messages(20, acc.name)
    sb.open_disputes(3, sb.accounts[1].name)
    run_until_settled(sb, timeout=180)
    injected = sb.faults.snapshot()["injected"]
    assert sum(injected.values()) >= 10, injected
    assert_exactly_once(sb)


def test_worker_killed_mid_send_leaves_no_duplicate(world):
    sb, daemon, ids = world
    for acc in sb.accounts:
        sb.add_buyer_messages(10, acc.name)
    run_until_settled(sb)
    # Every send from now on takes a while, so a send is in flight when the worker dies.
    sb.faults.set(slow_seconds=1.5)
    sb.faults.force("slow", count=1000, method="aliexpress.message.redefining.versiontwo.addmsg")
    sb.add_buyer_messages(8, sb.accounts[0].name)

    def sending() -> bool:
        approve_all_pending()
        with session_scope() as s:
            return bool(
                s.scalar(select(func.count()).select_from(m.Outbox).where(m.Outbox.state == "sending"))
            )

    assert wait_until(sending, 90, every=0.3), "no send was ever in flight"
    daemon.kill_worker(daemon.workers[1])  # the worker that sends
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(m.Outbox).where(m.Outbox.state == "sending")) >= 1
    sb.faults.clear()
    time.sleep(1.0)  # the killed request may still land in the sandbox: that is the hard case
    daemon.start_worker("sellerdesk,sellerdesk.send")
    run_until_settled(sb, timeout=120)
    assert_exactly_once(sb)


def test_revoked_token_pauses_that_account_only(world):
    sb, daemon, ids = world
    revoked, healthy = sb.accounts[0].name, sb.accounts[1].name
    sb.faults.revoke_token(revoked)
    sb.add_buyer_messages(6, revoked)
    sb.add_buyer_messages(6, healthy)

    def healthy_done() -> bool:
        with session_scope() as s:
            paused = s.get(m.Account, ids[revoked]).paused
            decided = s.scalar(
                select(func.count())
                .select_from(m.Decision)
                .where(m.Decision.account_id == ids[healthy], m.Decision.message_id.is_not(None))
            )
        return paused and decided >= 6

    assert wait_until(healthy_done, 90)
    with session_scope() as s:
        acc = s.get(m.Account, ids[revoked])
        assert acc.paused and "IllegalAccessToken" in (acc.paused_reason or "") or acc.paused_reason
        assert not s.get(m.Account, ids[healthy]).paused
    tick()
