"""Celery tasks: thin, named explicitly, taking ids, safe to run twice.

Each task calls one function of the modules that do the work (polling, decide, outbox, actions,
lifecycle); the database state those functions claim makes a repeated or redelivered task a no-op.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import lru_cache

from sqlalchemy import select, text

from connectors import connector_class
from worker import actions as actions_mod
from worker import dispatch, outbox
from worker import models as m
from worker.celery_app import app
from worker.connections import Connections
from worker.db import get_engine, session_scope, utcnow
from worker.decide import Engines, triage_disputes, triage_messages
from worker.drafts import wake_snoozed
from worker.lifecycle.sweep import plan_events, sweep
from worker.metrics import METRICS
from worker.polling import poll_due, poll_stream, refresh_tracking
from worker.settings import get_settings

log = logging.getLogger(__name__)

TRIAGE_BATCH = 50


def _timings() -> dict[str, timedelta]:
    s = get_settings()
    return {
        "lease": timedelta(seconds=s.send_lease_seconds),
        "reconcile_delay": timedelta(seconds=s.reconcile_delay_seconds),
    }


def _retry_base() -> timedelta:
    return timedelta(seconds=get_settings().send_retry_seconds)


@lru_cache(maxsize=1)
def connections() -> Connections:
    return Connections()


@lru_cache(maxsize=1)
def engines() -> Engines:
    s = get_settings()
    return Engines(base_policy_file=str(s.policy_file) if s.policy_file else None, shop_name=s.shop_name)


def _chunks(ids: list[int], size: int = TRIAGE_BATCH) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def _poll_interval() -> timedelta:
    # A little under the beat interval, so beat's own rhythm is never refused as "not due".
    return timedelta(seconds=get_settings().poll_interval_seconds * 0.8)


@app.task(name="sellerdesk.schedule_polls")
def schedule_polls_task() -> int:
    """Enqueue a poll of every active account's streams that is due."""
    now = utcnow()
    with session_scope() as s:
        accounts = list(
            s.execute(select(m.Account.id, m.Account.marketplace).where(m.Account.paused.is_(False)))
        )
        due = [
            (account_id, stream)
            for account_id, marketplace in accounts
            for stream in connector_class(marketplace).streams
            if poll_due(s, account_id, stream, now, _poll_interval())
        ]
    for account_id, stream in due:
        poll_stream_task.delay(account_id, stream)
    return len(due)


@app.task(name="sellerdesk.poll_stream")
def poll_stream_task(account_id: int, stream: str, continuation: bool = False) -> str:
    """Poll one batch of one stream; enqueue triage for what is new; continue while more remains."""
    result = poll_stream(
        account_id,
        stream,
        connections(),
        on_order=plan_events,
        min_interval=None if continuation else _poll_interval(),
        lease=timedelta(seconds=get_settings().poll_lease_seconds),
    )
    METRICS.polls.labels(stream=stream, status=result.status).inc()
    for chunk in _chunks(result.new_messages):
        triage_messages_task.delay(chunk)
    for chunk in _chunks(result.new_disputes):
        triage_disputes_task.delay(chunk)
    if result.status == "ok" and result.more:
        poll_stream_task.delay(account_id, stream, continuation=True)
    return result.status


def _after_triage(outcome) -> None:
    for key, n in outcome.items():
        METRICS.triage.labels(outcome=key).inc(n)


@app.task(name="sellerdesk.triage_messages")
def triage_messages_task(message_ids: list[int]) -> dict[str, int]:
    s = get_settings()
    outcome = triage_messages(
        message_ids,
        engines=engines(),
        max_attempts=s.triage_max_attempts,
        undo_window=timedelta(seconds=s.undo_window_seconds),
    )
    _after_triage(outcome)
    return dict(outcome)


@app.task(name="sellerdesk.triage_disputes")
def triage_disputes_task(dispute_ids: list[int]) -> dict[str, int]:
    s = get_settings()
    outcome = triage_disputes(
        dispute_ids,
        engines=engines(),
        max_attempts=s.triage_max_attempts,
        undo_window=timedelta(seconds=s.undo_window_seconds),
    )
    _after_triage(outcome)
    return dict(outcome)


@app.task(name="sellerdesk.send_outbox")
def send_outbox_task(outbox_id: int) -> str:
    started = utcnow()
    result = outbox.deliver(
        outbox_id, connections(), reconcile_delay=_timings()["reconcile_delay"], retry_base=_retry_base()
    )
    METRICS.sends.labels(outcome=result).inc()
    if result == "sent":
        METRICS.send_seconds.observe((utcnow() - started).total_seconds())
    return result


@app.task(name="sellerdesk.reconcile_outbox")
def reconcile_outbox_task(outbox_id: int) -> str:
    result = outbox.reconcile(outbox_id, connections(), **_timings())
    METRICS.sends.labels(outcome=result).inc()
    return result


@app.task(name="sellerdesk.execute_action")
def execute_action_task(action_id: int) -> str:
    result = actions_mod.execute(action_id, connections())
    METRICS.actions.labels(outcome=result).inc()
    return result


@app.task(name="sellerdesk.reconcile_action")
def reconcile_action_task(action_id: int) -> str:
    result = actions_mod.reconcile(action_id, connections(), **_timings())
    METRICS.actions.labels(outcome=result).inc()
    return result


@app.task(name="sellerdesk.dispatch")
def dispatch_task() -> dict[str, int]:
    """Find due work in the database and enqueue it: the safety net under every lost message."""
    now = utcnow()
    s = get_settings()
    t = _timings()
    again = timedelta(seconds=s.redispatch_after_seconds)
    counts: dict[str, int] = {}
    plan = (
        ("send", dispatch.due_sends(None, now, again), send_outbox_task),
        ("reconcile_send", dispatch.stale_sends(None, now, t["lease"], again), reconcile_outbox_task),
        ("actions", dispatch.due_actions(None, now, again), execute_action_task),
        (
            "reconcile_actions",
            dispatch.stale_actions(None, now, t["lease"], t["reconcile_delay"], again),
            reconcile_action_task,
        ),
    )
    for name, ids, task in plan:
        for item in ids:
            task.delay(item)
        counts[name] = len(ids)
    stuck_after = timedelta(seconds=s.stuck_after_seconds)
    for name, model, task in (
        ("stuck_messages", m.Message, triage_messages_task),
        ("stuck_disputes", m.Dispute, triage_disputes_task),
    ):
        ids = dispatch.stuck_triage(None, model, now, stuck_after)
        for chunk in _chunks(ids):
            task.delay(chunk)
        counts[name] = len(ids)
    with session_scope() as session:
        counts["woken"] = wake_snoozed(session, now)
    _prune_embedded_broker()
    return counts


def _prune_embedded_broker() -> None:
    """kombu's SQLAlchemy transport keeps consumed messages (visible = false): delete old ones."""
    url = app.conf.broker_url or ""
    if not url.startswith("sqla+"):
        return
    from sqlalchemy import create_engine

    eng = create_engine(url.removeprefix("sqla+"), connect_args={"timeout": 30})
    try:
        with eng.begin() as conn:
            conn.execute(
                text("DELETE FROM kombu_message WHERE visible = 0 AND timestamp < :cutoff"),
                {"cutoff": (utcnow() - timedelta(hours=1)).replace(tzinfo=None)},
            )
    except Exception:  # noqa: BLE001 - the table appears on first use; pruning is best effort
        log.debug("embedded broker prune skipped", exc_info=True)
    finally:
        eng.dispose()


@app.task(name="sellerdesk.refresh_tracking")
def refresh_tracking_task() -> int:
    """Refresh carrier tracking of shipped orders through 17TRACK (batches of 40)."""
    stored = refresh_tracking(None, get_settings(), utcnow())
    METRICS.tracking.inc(stored)
    return stored


@app.task(name="sellerdesk.lifecycle_sweep")
def lifecycle_sweep_task() -> int:
    result = sweep(get_engine(), utcnow())
    return result.enqueued
