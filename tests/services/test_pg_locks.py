"""`lock_keys` on a real PostgreSQL: a second holder waits for the first's commit; no deadlock in any order."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from worker.db import LOCK_CONVERSATION, LOCK_ORDER, lock_keys, session_scope


def test_second_holder_waits_until_the_first_commits(pg_engine: Engine) -> None:
    events: list[str] = []
    first_holds = threading.Event()

    def first() -> None:
        with session_scope(pg_engine) as s:
            lock_keys(s, [(LOCK_CONVERSATION, 7)])
            first_holds.set()
            time.sleep(0.5)
            events.append("first commits")

    def second() -> None:
        first_holds.wait(5)
        with session_scope(pg_engine) as s:
            lock_keys(s, [(LOCK_CONVERSATION, 7)])
            events.append("second holds")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert events == ["first commits", "second holds"]


def test_other_keys_do_not_wait(pg_engine: Engine) -> None:
    with session_scope(pg_engine) as outer:
        lock_keys(outer, [(LOCK_CONVERSATION, 7)])
        with session_scope(pg_engine) as inner:
            # Same id in another namespace, another id in the same one: both free (a wait would time out).
            inner.execute(text("SET LOCAL lock_timeout = '2s'"))
            lock_keys(inner, [(LOCK_ORDER, 7), (LOCK_CONVERSATION, 8), (LOCK_ORDER, None)])
        with pytest.raises(OperationalError), session_scope(pg_engine) as blocked:
            blocked.execute(text("SET LOCAL lock_timeout = '200ms'"))
            lock_keys(blocked, [(LOCK_CONVERSATION, 7)])


def test_overlapping_sets_in_opposite_orders_never_deadlock(pg_engine: Engine) -> None:
    errors: list[BaseException] = []
    keys = [(LOCK_CONVERSATION, i) for i in range(1, 30)] + [(LOCK_ORDER, i) for i in range(1, 30)]

    def worker(reverse: bool) -> None:
        try:
            for _ in range(20):
                with session_scope(pg_engine) as s:
                    lock_keys(s, reversed(keys) if reverse else keys)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i % 2 == 1,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and not any(t.is_alive() for t in threads)
