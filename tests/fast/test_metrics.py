"""Prometheus metrics: database gauges (alert signals included) and process counters, without login."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from tests.fakes import seed_order
from worker import models as m
from worker.db import session_scope, utcnow
from worker.metrics import METRICS, render_metrics
from worker.web.app import create_app


def test_metrics_show_states_and_alert_signals(engine, settings):
    now = utcnow()
    with session_scope(engine) as s:
        acc, order, conv, msg = seed_order(s, now=now)
        acc.paused, acc.paused_reason = True, "token revoked"
        s.add(m.PollCursor(account_id=acc.id, stream="messages", last_success_at=now - timedelta(hours=2)))
        s.add(m.Quarantine(kind="message", object_id="1", reason="poison", attempts=4))
    METRICS.sends.labels(outcome="sent").inc()
    text = render_metrics(engine).decode()
    assert f'sellerdesk_account_paused{{account="{acc.name}"}} 1.0' in text
    assert f'sellerdesk_poll_gap{{account="{acc.name}",stream="messages"}} 1.0' in text
    assert "sellerdesk_quarantined 1.0" in text
    assert 'sellerdesk_sends_total{outcome="sent"}' in text


def test_metrics_endpoint_needs_no_login(engine, settings):
    client = TestClient(create_app(settings))
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    assert "sellerdesk_drafts" in answer.text
