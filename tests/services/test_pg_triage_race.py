"""Two workers deciding messages of one conversation or order at the same time, on a real PostgreSQL:
the batch locks make the second decide from what the first wrote (one automatic reply, one refund)."""

from __future__ import annotations

import threading
import time

from sqlalchemy import Engine, select

from tests.fakes import seed_order
from tests.fast.test_triage_batch import T0, FakeEngines, FakeTriage
from worker import models as m
from worker.db import session_scope
from worker.decide import triage_messages


class SlowTriage(FakeTriage):
    """Takes its time deciding, so two workers' batches overlap."""

    def decide(self, case, capabilities):
        time.sleep(0.4)
        return super().decide(case, capabilities)


class SlowEngines(FakeEngines):
    def __init__(self) -> None:
        super().__init__()
        self.fake = SlowTriage()


def _two_messages(engine: Engine, first: str, second: str) -> tuple[int, int, int]:
    with session_scope(engine) as s:
        _acc, _order, conv, seeded = seed_order(s, now=T0)
        seeded.triage_state = m.TriageState.done
        ids = []
        for n, body in enumerate((first, second)):
            msg = m.Message(
                conversation_id=conv.id, external_id=f"r{n}", direction="buyer", body=body, sent_at=T0
            )
            s.add(msg)
            s.flush()
            ids.append(msg.id)
        return conv.id, ids[0], ids[1]


def _at_once(engine: Engine, *batches: list[int]) -> None:
    start = threading.Barrier(len(batches))
    errors: list[BaseException] = []

    def work(ids: list[int]) -> None:
        try:
            start.wait(5)
            triage_messages(ids, engines=SlowEngines(), engine=engine, clock=lambda: T0)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(ids,)) for ids in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []


def test_one_automatic_reply_per_conversation_across_workers(pg_engine: Engine) -> None:
    conv, a, b = _two_messages(pg_engine, "auto:On its way.", "auto:Your parcel is moving.")
    _at_once(pg_engine, [a], [b])
    with session_scope(pg_engine) as s:
        drafts = list(s.scalars(select(m.Draft).where(m.Draft.conversation_id == conv)))
        outbox = list(s.scalars(select(m.Outbox).where(m.Outbox.conversation_id == conv)))
    assert sorted(d.auto for d in drafts) == [False, True]
    assert len(outbox) == 1


def test_identical_drafts_across_workers_leave_one_open(pg_engine: Engine) -> None:
    conv, a, b = _two_messages(pg_engine, "draft:Hello again", "draft:Hello again")
    _at_once(pg_engine, [a], [b])
    with session_scope(pg_engine) as s:
        states = sorted(s.scalars(select(m.Draft.state).where(m.Draft.conversation_id == conv)))
    assert states == ["cancelled", "pending"]


def test_one_refund_per_order_across_workers(pg_engine: Engine) -> None:
    _conv, a, b = _two_messages(pg_engine, "refund:Sorry", "refund:So sorry")
    _at_once(pg_engine, [a], [b])
    with session_scope(pg_engine) as s:
        refunds = list(s.scalars(select(m.ProposedAction.type)))
    assert refunds == ["refund_full"]
