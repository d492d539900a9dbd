"""Tracking refresh: shipped orders are looked up on 17TRACK (the sandbox's dialect) and stored."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from connectors.ratelimit import InProcessTokenBucket
from connectors.sandbox.server import DEFAULT_17TOKEN, SandboxServer
from worker import models as m
from worker.connections import Connections
from worker.crypto import set_credentials
from worker.db import session_scope, utcnow
from worker.polling import poll_stream, refresh_tracking
from worker.settings import load_settings, set_settings
from worker.triage.types import TrackingStatus


def test_shipped_orders_get_tracking_and_delivered_ones_move_on(engine, settings):
    with SandboxServer(seed=3, port=0, orders=40, speed=0) as sb:
        name = sb.accounts[0].name
        with session_scope(engine) as s:
            acc = m.Account(
                marketplace="sandbox", name=name, settings_json={"rate_per_second": 1000, "burst": 1000}
            )
            set_credentials(acc, sb.credentials(name), settings.secret_key)
            s.add(acc)
            s.flush()
            account_id = acc.id
        conns = Connections(engine, settings, limiter=InProcessTokenBucket())
        while poll_stream(account_id, "orders", conns, engine=engine).more:
            pass
        with session_scope(engine) as s:
            shipped = s.scalar(
                select(func.count())
                .select_from(m.Order)
                .where(m.Order.status == "shipped", m.Order.tracking_number.is_not(None))
            )
        assert shipped > 0
        tracked = load_settings(
            _env_file=None,
            data_dir=settings.data_dir,
            tracking_api_token=DEFAULT_17TOKEN,
            tracking_api_url=sb.url,
        )
        set_settings(tracked)
        now = utcnow()
        stored = refresh_tracking(engine, tracked, now)
        assert 0 < stored <= shipped
        assert refresh_tracking(engine, tracked, now + timedelta(minutes=5)) == 0  # checked recently
        with session_scope(engine) as s:
            statuses = dict(
                s.execute(
                    select(m.TrackingSnapshot.status, func.count()).group_by(m.TrackingSnapshot.status)
                ).all()
            )
            unchecked = s.scalar(
                select(func.count())
                .select_from(m.Order)
                .where(m.Order.status == "shipped", m.Order.tracking_checked_at.is_(None))
            )
            delivered_now = s.scalar(
                select(func.count())
                .select_from(m.Order)
                .where(m.Order.delivered_at.is_not(None), m.Order.status == "delivered")
            )
        assert sum(statuses.values()) == stored and unchecked == 0
        assert set(statuses) <= {status.value for status in TrackingStatus}
        if "delivered" in statuses:
            assert delivered_now >= 1


def test_no_token_no_lookups(engine, settings):
    assert refresh_tracking(engine, settings, utcnow()) == 0
