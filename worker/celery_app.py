"""The Celery application: broker choice, reliability settings, queues and the beat schedule.

With no broker configured (the embedded default) Celery uses kombu's SQLAlchemy transport on a
SQLite file in the data dir: no server to install, messages survive restarts. With Redis the
visibility timeout is set far above any countdown we use, so delayed sends are not redelivered
early. Either way the database, not the broker, is the source of truth: `sellerdesk.dispatch`
re-finds due work in it, so a lost broker message delays work but never loses it.
"""

from __future__ import annotations

from datetime import timedelta

from celery import Celery
from celery.signals import setup_logging, worker_process_init
from kombu import Exchange, Queue

from worker.settings import Settings, get_settings

SEND_QUEUE = "sellerdesk.send"
# Polls can be slow (pages, bans, retries): on their own queue they never hold up sending or triage.
POLL_QUEUE = "sellerdesk.poll"
QUEUES = ("sellerdesk", SEND_QUEUE, POLL_QUEUE)
DEFAULT_QUEUE = "sellerdesk"
# Longest countdown we schedule is the undo window (minutes); two hours leaves a wide margin.
VISIBILITY_TIMEOUT = 2 * 3600
# Every queue is reached through the default (nameless) exchange, routing key = queue name. kombu's
# virtual transports (Redis, SQLAlchemy) then put a message straight into its queue, without the
# `_kombu.binding.<exchange>` table a named exchange needs: a Redis restart that loses that table
# would otherwise make every publish fail ("Table empty or key no longer exists", kombu #1063) until
# each process happens to re-declare, and the chaos bench saw triage stop for good.
DIRECT = Exchange("", type="direct")


def broker_url(settings: Settings) -> str:
    """The configured broker, or the embedded SQLite transport in the data dir."""
    if settings.broker_url:
        return settings.broker_url
    return f"sqla+sqlite:///{settings.data_dir.resolve() / 'broker.sqlite'}"


def configure(app: Celery, settings: Settings) -> None:
    """Apply settings to the app (called at import and again by tests with their own settings)."""
    url = broker_url(settings)
    transport_options: dict[str, object] = {}
    if url.startswith(("redis://", "rediss://")):
        transport_options = {"visibility_timeout": VISIBILITY_TIMEOUT}
    elif url.startswith("sqla+sqlite"):
        # Handed to create_engine by kombu: wait for SQLite's lock rather than fail.
        transport_options = {"connect_args": {"timeout": 30}}
    app.conf.update(
        broker_url=url,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        result_backend=None,
        task_ignore_result=True,
        # Reliability (Celery docs, "Should I use retry or acks_late?"): a task is acknowledged after it
        # ran, and redelivered if its worker process dies; our attempt counters stop poison loops.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=DEFAULT_QUEUE,
        task_default_exchange="",
        task_default_routing_key=DEFAULT_QUEUE,
        task_queues=[Queue(name, DIRECT, routing_key=name) for name in QUEUES],
        task_routes={
            "sellerdesk.poll_stream": {"queue": POLL_QUEUE},
            "sellerdesk.send_outbox": {"queue": SEND_QUEUE},
            "sellerdesk.execute_action": {"queue": SEND_QUEUE},
            "sellerdesk.reconcile_outbox": {"queue": SEND_QUEUE},
            "sellerdesk.reconcile_action": {"queue": SEND_QUEUE},
        },
        task_time_limit=600,
        task_soft_time_limit=540,
        worker_hijack_root_logger=False,
        timezone="UTC",
        enable_utc=True,
        beat_schedule=beat_schedule(settings),
    )


def beat_schedule(settings: Settings) -> dict[str, dict[str, object]]:
    """What beat runs and how often; one beat process only."""
    return {
        "schedule-polls": {
            "task": "sellerdesk.schedule_polls",
            "schedule": float(settings.poll_interval_seconds),
        },
        "dispatch": {"task": "sellerdesk.dispatch", "schedule": float(settings.dispatch_interval_seconds)},
        "refresh-tracking": {
            "task": "sellerdesk.refresh_tracking",
            "schedule": timedelta(minutes=settings.tracking_interval_minutes).total_seconds(),
        },
        "lifecycle-sweep": {"task": "sellerdesk.lifecycle_sweep", "schedule": 60.0},
    }


app = Celery("sellerdesk", include=["worker.tasks"])
configure(app, get_settings())


@setup_logging.connect
def _our_logging(**_: object) -> None:
    # Connecting this signal stops Celery from installing its own handlers: one format for everything.
    from worker.logs import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)


@worker_process_init.connect
def _fresh_connections_after_fork(**_: object) -> None:
    # A forked pool process must not share the parent's database connections.
    from worker.db import dispose_engines

    dispose_engines()
