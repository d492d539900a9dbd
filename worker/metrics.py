"""Prometheus metrics: counters kept by the workers, gauges read from the database at scrape time.

Counters live in each worker process; with `PROMETHEUS_MULTIPROC_DIR` set (the `sellerdesk worker`
command sets it) prefork children share them through files. Gauges that describe state (drafts by
state, quarantined items, paused accounts, poll gaps) are computed from the database when scraped,
so every process that serves /metrics tells the same truth.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from worker import models as m
from worker.db import session_scope, utcnow


@dataclass(frozen=True)
class _Metrics:
    polls: Counter
    triage: Counter
    sends: Counter
    actions: Counter
    tracking: Counter
    rate_limit_waits: Counter
    send_seconds: Histogram


METRICS = _Metrics(
    polls=Counter("sellerdesk_polls_total", "Stream polls by outcome", ["stream", "status"]),
    triage=Counter("sellerdesk_triage_total", "Triaged items by outcome", ["outcome"]),
    sends=Counter("sellerdesk_sends_total", "Outbox send attempts by outcome", ["outcome"]),
    actions=Counter("sellerdesk_actions_total", "Action executions by outcome", ["outcome"]),
    tracking=Counter("sellerdesk_tracking_snapshots_total", "Tracking snapshots stored"),
    rate_limit_waits=Counter(
        "sellerdesk_rate_limit_wait_seconds_total", "Seconds spent waiting on rate limits"
    ),
    send_seconds=Histogram("sellerdesk_send_seconds", "Marketplace send latency"),
)


class DatabaseCollector:
    """Gauges computed from the database when scraped."""

    def __init__(self, engine=None, poll_gap: timedelta = timedelta(minutes=30)) -> None:
        self.engine = engine
        self.poll_gap = poll_gap

    def collect(self):
        now = utcnow()
        with session_scope(self.engine) as s:
            drafts = GaugeMetricFamily("sellerdesk_drafts", "Drafts by state", labels=["state"])
            for state, n in s.execute(select(m.Draft.state, func.count()).group_by(m.Draft.state)):
                drafts.add_metric([state], n)
            outbox = GaugeMetricFamily("sellerdesk_outbox", "Outbox rows by state", labels=["state"])
            for state, n in s.execute(select(m.Outbox.state, func.count()).group_by(m.Outbox.state)):
                outbox.add_metric([state], n)
            decisions = GaugeMetricFamily(
                "sellerdesk_decisions", "Decisions by intent and scenario", labels=["intent", "scenario"]
            )
            for intent, scenario, n in s.execute(
                select(m.Decision.intent, m.Decision.scenario, func.count()).group_by(
                    m.Decision.intent, m.Decision.scenario
                )
            ):
                decisions.add_metric([intent, scenario], n)
            quarantined = GaugeMetricFamily("sellerdesk_quarantined", "Items set aside for a human")
            quarantined.add_metric(
                [],
                s.scalar(
                    select(func.count()).select_from(m.Quarantine).where(m.Quarantine.released_at.is_(None))
                )
                or 0,
            )
            paused = GaugeMetricFamily(
                "sellerdesk_account_paused", "1 when the account is paused (alert)", labels=["account"]
            )
            gap = GaugeMetricFamily(
                "sellerdesk_poll_gap",
                "1 when a stream has not polled successfully recently (alert)",
                labels=["account", "stream"],
            )
            for acc in s.scalars(select(m.Account)):
                paused.add_metric([acc.name], 1 if acc.paused else 0)
            for name, stream, last in s.execute(
                select(m.Account.name, m.PollCursor.stream, m.PollCursor.last_success_at).join(
                    m.Account, m.Account.id == m.PollCursor.account_id
                )
            ):
                gap.add_metric([name, stream], 1 if last is None or now - last > self.poll_gap else 0)
        yield from (drafts, outbox, decisions, quarantined, paused, gap)


def render_metrics(engine=None) -> bytes:
    """The text exposition of every metric: this process's (or all workers') counters plus DB gauges."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        for collector in list(REGISTRY._collector_to_names):  # noqa: SLF001 - the default registry's collectors
            registry.register(collector)
    registry.register(DatabaseCollector(engine))
    return generate_latest(registry)
