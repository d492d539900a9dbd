"""Polling one stream of one account: lease the cursor, fetch a bounded batch, commit rows + cursor.

The cursor row is leased with `UPDATE ... WHERE leased_until IS NULL OR leased_until < now
RETURNING ...` (a row back), so two workers never poll the same stream at once and a dead worker's
lease expires. Rows and the new cursor are written in one transaction: a crash re-polls from the old
cursor, and dedupe on marketplace ids makes that harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connectors.base import ConnectorError, ErrorKind
from worker import models as m
from worker.db import session_scope, utcnow
from worker.ingest import add_tracking, ingest
from worker.outbox import ConnectorFor, pause_account

log = logging.getLogger(__name__)

# How long a poll may hold its stream. A poll whose worker was SIGKILLed blocks the stream this long,
# so deployments (and the chaos bench, which kills workers) may shorten it; a poll slower than its
# lease is dropped and re-read by the next one (dedupe on marketplace ids makes that harmless).
LEASE = timedelta(minutes=5)


@dataclass
class PollResult:
    status: str  # ok | busy | paused | error | account-paused
    rows: int = 0
    more: bool = False
    new_messages: list[int] = field(default_factory=list)
    new_disputes: list[int] = field(default_factory=list)
    orders: list[int] = field(default_factory=list)
    error: str | None = None


def poll_due(s: Session, account_id: int, stream: str, now: datetime, interval: timedelta) -> bool:
    """Whether a stream should be polled now: not leased by a running poll, not polled within `interval`."""
    row = s.execute(
        select(m.PollCursor.leased_until, m.PollCursor.last_success_at).where(
            m.PollCursor.account_id == account_id, m.PollCursor.stream == stream
        )
    ).first()
    if row is None:
        return True
    leased_until, last_success = row
    if leased_until is not None and leased_until > now:
        return False
    return last_success is None or now - last_success >= interval


def _lease(
    s: Session, account_id: int, stream: str, now: datetime, lease: timedelta
) -> tuple[int, str | None, datetime] | None:
    """Take the stream's lease, creating its cursor row on first use: (cursor id, cursor, lease end) or None."""
    mine = (m.PollCursor.account_id == account_id, m.PollCursor.stream == stream)
    take = (
        update(m.PollCursor)
        .where(*mine, or_(m.PollCursor.leased_until.is_(None), m.PollCursor.leased_until < now))
        .values(leased_until=now + lease)
        .returning(m.PollCursor.id, m.PollCursor.cursor, m.PollCursor.leased_until)
        .execution_options(synchronize_session=False)
    )
    # One statement when the row exists and is free (every poll but a stream's first).
    row = s.execute(take).first()
    if row is None and s.scalar(select(m.PollCursor.id).where(*mine)) is None:
        try:
            with s.begin_nested():
                s.add(m.PollCursor(account_id=account_id, stream=stream, updated_at=now))
        except IntegrityError:
            pass
        row = s.execute(take).first()
    return None if row is None else (row[0], row[1], row[2])


def _release(engine: Engine | None, cursor_id: int, now: datetime, error: str | None) -> None:
    with session_scope(engine) as s:
        s.execute(
            update(m.PollCursor)
            .where(m.PollCursor.id == cursor_id)
            .values(leased_until=None, last_error=error[:2000] if error else None, updated_at=now)
        )


def poll_stream(
    account_id: int,
    stream: str,
    connector_for: ConnectorFor,
    *,
    engine: Engine | None = None,
    clock: Callable[[], datetime] = utcnow,
    on_order: Callable[[Session, m.Order, datetime], None] | None = None,
    min_interval: timedelta | None = None,
    lease: timedelta = LEASE,
) -> PollResult:
    """Fetch and store the next batch of `stream`; the caller re-enqueues while `more` is true.

    With `min_interval`, a stream polled more recently than that is left alone ("not-due"): duplicate
    poll tasks (a slow poll outlasting the beat interval) then cost one query instead of a poll.
    """
    now = clock()
    with session_scope(engine) as s:
        account = s.get(m.Account, account_id)
        if account is None or account.paused:
            return PollResult(status="paused")
        if min_interval is not None and not poll_due(s, account_id, stream, now, min_interval):
            return PollResult(status="not-due")
        leased = _lease(s, account_id, stream, now, lease)
        if leased is None:
            return PollResult(status="busy")
        cursor_id, cursor_text, held = leased
    try:
        batch = connector_for(account_id).fetch(stream, cursor_text)
    except ConnectorError as exc:
        if exc.kind is ErrorKind.ACCOUNT:
            pause_account(engine, account_id, f"{stream} poll: {exc}", clock())
            _release(engine, cursor_id, clock(), str(exc))
            return PollResult(status="account-paused", error=str(exc))
        _release(engine, cursor_id, clock(), str(exc))
        return PollResult(status="error", error=str(exc))
    except Exception as exc:
        _release(engine, cursor_id, clock(), f"{type(exc).__name__}: {exc}")
        raise
    now = clock()
    try:
        return _store(engine, account_id, stream, cursor_id, held, batch, now, on_order)
    except Exception as exc:
        # A record the database refuses: the page is not stored, the cursor stays, the error is visible,
        # and the next poll reads the same page again (nothing skipped, nothing half-stored).
        log.exception("poll %s/%s: storing the batch failed", account_id, stream)
        _release(engine, cursor_id, clock(), f"storing the batch failed: {type(exc).__name__}: {exc}"[:2000])
        return PollResult(status="error", error=f"{type(exc).__name__}: {exc}"[:500])


def _store(
    engine: Engine | None,
    account_id: int,
    stream: str,
    cursor_id: int,
    held: datetime,
    batch,
    now: datetime,
    on_order: Callable[[Session, m.Order, datetime], None] | None,
) -> PollResult:
    with session_scope(engine) as s:
        result = ingest(s, account_id, batch.rows, now, on_order=on_order)
        res = s.execute(
            update(m.PollCursor)
            # Our lease exactly: another poll's lease (a takeover) does not let us move the cursor.
            .where(m.PollCursor.id == cursor_id, m.PollCursor.leased_until == held)
            .values(
                cursor=batch.cursor, last_success_at=now, last_error=None, leased_until=None, updated_at=now
            )
        )
        if res.rowcount != 1:
            # Our lease was taken over (this poll outlasted it: bans, retries). The rows are kept (ingest
            # dedupes on marketplace ids, so the other poll storing them too is harmless) but the cursor is
            # left to the lease holder: work always progresses and the cursor never moves under another poll.
            log.warning("poll %s/%s outlasted its lease: rows kept, cursor not moved", account_id, stream)
            return PollResult(
                status="ok",
                rows=len(batch.rows),
                more=False,
                new_messages=result.new_messages,
                new_disputes=result.new_disputes,
                orders=result.orders,
            )
    log.info(
        "poll %s/%s: %d rows, %d new messages, %d new disputes%s",
        account_id,
        stream,
        len(batch.rows),
        len(result.new_messages),
        len(result.new_disputes),
        " (more)" if batch.more else "",
    )
    return PollResult(
        status="ok",
        rows=len(batch.rows),
        more=batch.more,
        new_messages=result.new_messages,
        new_disputes=result.new_disputes,
        orders=result.orders,
    )


def orders_to_track(
    engine: Engine | None, now: datetime, every: timedelta, limit: int = 400
) -> list[tuple[int, str]]:
    """Shipped, undelivered orders whose tracking was not checked for `every` (order id, number)."""
    with session_scope(engine) as s:
        rows = s.execute(
            select(m.Order.id, m.Order.tracking_number)
            .join(m.Account, m.Account.id == m.Order.account_id)
            .where(
                m.Order.status == "shipped",
                m.Order.tracking_number.is_not(None),
                m.Account.paused.is_(False),
                or_(m.Order.tracking_checked_at.is_(None), m.Order.tracking_checked_at < now - every),
            )
            .order_by(m.Order.tracking_checked_at.nulls_first())
            .limit(limit)
        ).all()
    return [(r[0], r[1]) for r in rows]


def store_tracking(
    engine: Engine | None, checked: list[int], by_order: dict[int, object], now: datetime
) -> int:
    """Store carrier lookups (order id -> NormTracking) and mark every asked order as checked."""
    with session_scope(engine) as s:
        for order_id, tracking in by_order.items():
            order = s.get(m.Order, order_id)
            if order is not None:
                add_tracking(s, order, tracking, now)  # type: ignore[arg-type]
        # Numbers the carrier rejected are asked again after the refresh interval, not in a hot loop.
        s.execute(update(m.Order).where(m.Order.id.in_(checked)).values(tracking_checked_at=now))
    return len(by_order)


def refresh_tracking(engine: Engine | None, settings, now: datetime, limit: int = 400) -> int:
    """Ask 17TRACK about shipped orders not checked recently and store what it says; returns how many."""
    if settings.tracking_api_token is None:
        return 0
    todo = orders_to_track(engine, now, timedelta(hours=settings.tracking_refresh_hours), limit)
    if not todo:
        return 0
    from connectors.ratelimit import limiter_from_settings
    from connectors.seventeentrack import SeventeenTrackClient

    client = SeventeenTrackClient(
        settings.tracking_api_token.get_secret_value(),
        base_url=settings.tracking_api_url,
        limiter=limiter_from_settings(settings.redis_url),
    )
    try:
        result = client.get_track_info([number for _, number in todo])
    finally:
        client.close()
    by_number = {t.tracking_number: t for t in result.tracks}
    return store_tracking(
        engine, [oid for oid, _ in todo], {oid: by_number[n] for oid, n in todo if n in by_number}, now
    )
