"""SQLite in the embedded mode: concurrent units of work queue on the lock, never 'database is locked'."""

from __future__ import annotations

import threading
import time

from sqlalchemy import func, select

from worker import models as m
from worker.db import session_scope


def test_read_then_write_units_of_work_do_not_trip_over_each_other(engine):
    with session_scope(engine) as s:
        s.add(m.Account(marketplace="sandbox", name="a"))
    errors: list[BaseException] = []

    def unit(i: int) -> None:
        try:
            with session_scope(engine) as s:
                s.scalar(select(func.count()).select_from(m.Account))  # read first...
                time.sleep(0.05)  # ...while the other threads want to write too...
                s.add(m.AuditLog(actor="test", action="touch", object_type="account", object_id=str(i)))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=unit, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(m.AuditLog)) == 8


def test_a_plain_read_session_does_not_block_a_writer(engine, session):
    session.scalar(select(func.count()).select_from(m.Account))  # a long-lived read (a page, a test)
    with session_scope(engine) as s:
        s.add(m.Account(marketplace="sandbox", name="b"))
    session.rollback()
    assert session.scalar(select(func.count()).select_from(m.Account)) == 1
