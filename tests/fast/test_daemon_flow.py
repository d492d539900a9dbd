"""The daemon's data path on the real sandbox and connector, without Celery: poll, triage, draft, send.

The Celery wiring of the same functions runs in tests/services/test_daemon_celery.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from connectors.ratelimit import InProcessTokenBucket
from connectors.sandbox.server import SandboxServer
from worker import dispatch, outbox
from worker import models as m
from worker.connections import Connections
from worker.crypto import set_credentials
from worker.db import session_scope, utcnow
from worker.decide import Engines, triage_disputes, triage_messages
from worker.drafts import approve_draft
from worker.polling import poll_stream


@pytest.fixture
def sandbox():
    with SandboxServer(seed=7, port=0, orders=25, speed=0) as sb:
        yield sb


@pytest.fixture
def account(engine, settings, sandbox):
    name = sandbox.accounts[0].name
    with session_scope(engine) as s:
        # A local sandbox takes far more than AliExpress's real per-account rate.
        acc = m.Account(
            marketplace="sandbox", name=name, settings_json={"rate_per_second": 1000, "burst": 1000}
        )
        set_credentials(acc, sandbox.credentials(name), settings.secret_key)
        s.add(acc)
        s.flush()
        return acc.id


def drain(engine, conns, account_id, stream) -> tuple[list[int], list[int]]:
    msgs, disputes = [], []
    for _ in range(50):
        r = poll_stream(account_id, stream, conns, engine=engine)
        assert r.status == "ok", r.error
        msgs += r.new_messages
        disputes += r.new_disputes
        if not r.more:
            return msgs, disputes
    raise AssertionError("stream never drained")


def poll_all(engine, conns, account_id):
    drain(engine, conns, account_id, "orders")
    msgs, _ = drain(engine, conns, account_id, "messages")
    _, disputes = drain(engine, conns, account_id, "disputes")
    return msgs, disputes


def test_messages_flow_to_one_decision_each_and_sends_reach_the_marketplace(
    engine, settings, sandbox, account
):
    sandbox.add_buyer_messages(30, sandbox.accounts[0].name)
    sandbox.open_disputes(3, sandbox.accounts[0].name)
    conns = Connections(engine, settings, limiter=InProcessTokenBucket())
    msgs, disputes = poll_all(engine, conns, account)
    assert len(msgs) >= 25

    engines = Engines(shop_name="Demo shop")
    out = triage_messages(msgs, engines=engines, engine=engine)
    assert out["error"] == 0 and out["quarantined"] == 0
    triage_disputes(disputes, engines=engines, engine=engine)
    # A second triage of the same ids is a no-op: exactly one decision per message.
    again = triage_messages(msgs, engines=engines, engine=engine)
    assert again["not-claimed"] == len(msgs)
    with session_scope(engine) as s:
        decided = s.scalar(
            select(func.count(func.distinct(m.Decision.message_id))).where(m.Decision.message_id.is_not(None))
        )
        waiting = s.scalar(select(func.count()).select_from(m.Message).where(m.Message.triage_state == "new"))
        assert decided + waiting + out["suppressed"] * 0 >= len(msgs) - out["waiting"]
        assert s.scalar(select(func.count()).select_from(m.Decision)) == s.scalar(
            select(func.count(func.distinct(m.Decision.source_key)))
        )
        pending = list(s.scalars(select(m.Draft.id).where(m.Draft.state == "pending")))
    now = utcnow()
    with session_scope(engine) as s:
        for draft_id in pending:
            approve_draft(s, draft_id, actor="test", reviewer_id=None, now=now)
    # Automatic replies wait for the undo window: send what is due a little later.
    later = now + timedelta(minutes=3)
    due = dispatch.due_sends(engine, later, timedelta(0))
    assert due
    results = [outbox.deliver(oid, conns, engine=engine, clock=lambda: later) for oid in due]
    assert results.count("sent") == len(due), [
        (r, outbox_err(engine, o)) for r, o in zip(results, due, strict=True) if r != "sent"
    ]
    assert [outbox.deliver(oid, conns, engine=engine, clock=lambda: later) for oid in due] == [
        "not-claimed"
    ] * len(due)
    sent = [e for e in sandbox.ledger.entries() if e["kind"] == "message"]
    assert len(sent) == len(due)
    assert sandbox.duplicate_sends() == 0
    # The next poll sees our own replies and never triages them.
    msgs2, _ = drain(engine, conns, account, "messages")
    assert msgs2 == []


def test_revoked_token_pauses_the_account(engine, settings, sandbox, account):
    conns = Connections(engine, settings, limiter=InProcessTokenBucket())
    sandbox.faults.revoke_token(sandbox.accounts[0].name)
    r = poll_stream(account, "orders", conns, engine=engine)
    assert r.status == "account-paused"
    with session_scope(engine) as s:
        acc = s.get(m.Account, account)
        assert acc.paused and acc.paused_reason
    assert poll_stream(account, "orders", conns, engine=engine).status == "paused"


def outbox_err(engine, oid):
    with session_scope(engine) as s:
        row = s.get(m.Outbox, oid)
        return row.state, row.last_error, row.conversation_id, row.order_id


def test_a_poll_that_outlasts_its_lease_keeps_its_rows_but_not_the_cursor(engine, settings, sandbox, account):
    """Under bans and retries a poll can outlast its lease; its work must not be thrown away (livelock)."""
    from sqlalchemy import update as sql_update

    sandbox.add_buyer_messages(5, sandbox.accounts[0].name)
    conns = Connections(engine, settings, limiter=InProcessTokenBucket())
    drain(engine, conns, account, "orders")
    real = conns(account)

    class TakenOver:
        def fetch(self, stream, cursor):
            batch = real.fetch(stream, cursor)
            with session_scope(engine) as s:  # meanwhile another poll took the stream over
                s.execute(
                    sql_update(m.PollCursor)
                    .where(m.PollCursor.account_id == account, m.PollCursor.stream == stream)
                    .values(leased_until=utcnow() + timedelta(minutes=9))
                )
            return batch

    before = None
    with session_scope(engine) as s:
        row = s.scalar(
            select(m.PollCursor).where(m.PollCursor.account_id == account, m.PollCursor.stream == "messages")
        )
        before = row.cursor if row else None
    result = poll_stream(account, "messages", lambda _: TakenOver(), engine=engine)
    assert result.status == "ok" and len(result.new_messages) >= 5
    with session_scope(engine) as s:
        cur = s.scalar(
            select(m.PollCursor).where(m.PollCursor.account_id == account, m.PollCursor.stream == "messages")
        )
        assert cur.cursor == before  # the lease holder moves the cursor, not us
