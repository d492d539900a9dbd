"""`python -m bench.instrument worker ...`: the production worker, plus counters the benches read.

Installed only in bench runs (bench/harness.py starts workers through this module when asked):
- every SQL statement any engine of the process sends is counted (a SQLAlchemy `before_cursor_execute`
  listener); the count goes to Redis (`INCRBY bench:sql`) after each task, so the bench can divide it
  by the messages it drained;
- when a triage task has returned (its transaction is committed), the wall time is stored per message id
  (`HSETNX bench:decided <id> <time>`): the end of the "fetched -> draft committed" latency.
"""

from __future__ import annotations

import os
import time

import redis
from celery.signals import task_postrun
from sqlalchemy import event
from sqlalchemy.engine import Engine

SQL_KEY = "bench:sql"
TASKS_KEY = "bench:tasks"
DECIDED_KEY = "bench:decided"

_statements = 0
_client: redis.Redis | None = None
_client_pid = 0


def _redis() -> redis.Redis:
    # One client per process: a forked pool process must not reuse its parent's socket.
    global _client, _client_pid
    if _client is None or _client_pid != os.getpid():
        _client = redis.Redis.from_url(os.environ["SELLERDESK_BROKER_URL"])
        _client_pid = os.getpid()
    return _client


@event.listens_for(Engine, "before_cursor_execute")
def _count(*_: object) -> None:
    global _statements
    _statements += 1


@task_postrun.connect
def _after_task(task=None, args=None, **_: object) -> None:
    global _statements
    done, _statements = _statements, 0
    try:
        pipe = _redis().pipeline(transaction=False)
        pipe.incrby(SQL_KEY, done)
        pipe.incr(TASKS_KEY)
        if task is not None and task.name == "sellerdesk.triage_messages" and args:
            now = repr(time.time())
            for message_id in args[0]:
                pipe.hsetnx(DECIDED_KEY, str(message_id), now)
        pipe.execute()
    except redis.RedisError:  # a Redis restart (chaos bench) loses a few counts, never the run
        _statements += done


if __name__ == "__main__":
    from worker.cli import app

    app(prog_name="sellerdesk")
