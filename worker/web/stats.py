"""Dashboard figures: volume by intent and scenario, auto-send and edit rates, the oldest pending draft,
send failures and paused accounts, over a period and over the accounts the viewer may see."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from worker import models as m

HUMAN_APPROVED_STATES = (m.DraftState.approved.value, m.DraftState.sent.value, m.DraftState.failed.value)
SEND_FAILURE_STATES = (m.OutboxState.failed.value, m.OutboxState.uncertain.value)
RECENT_FAILURES = 10


class Count(BaseModel):
    label: str
    count: int


class Failure(BaseModel):
    outbox_id: int
    draft_id: int | None
    account_id: int
    state: str
    last_error: str | None
    at: datetime


class PausedAccount(BaseModel):
    id: int
    marketplace: str
    name: str
    reason: str | None
    since: datetime | None


class Stats(BaseModel):
    since: datetime
    days: int
    decisions: int
    by_intent: list[Count]
    by_scenario: list[Count]
    by_state: list[Count]
    drafts: int
    auto_drafts: int
    # Share of drafts that went out without a human (None when there were no drafts).
    auto_send_rate: float | None
    human_approved: int
    edited: int
    # Share of human-approved drafts whose text the reviewer changed: the quality signal of the templates.
    edit_rate: float | None
    pending: int
    oldest_pending_at: datetime | None
    oldest_pending_seconds: int | None
    send_failures: int
    recent_failures: list[Failure]
    paused_accounts: list[PausedAccount]


def _visible(column: Any, account_ids: frozenset[int] | None) -> list[ColumnElement[bool]]:
    return [] if account_ids is None else [column.in_(sorted(account_ids))]


def _counts(s: Session, column: Any, *where: ColumnElement[bool]) -> list[Count]:
    rows = s.execute(select(column, func.count()).where(*where).group_by(column)).all()
    return sorted(
        (Count(label=str(v), count=c) for v, c in rows if v is not None), key=lambda x: (-x.count, x.label)
    )


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def dashboard(s: Session, account_ids: frozenset[int] | None, *, now: datetime, days: int = 30) -> Stats:
    """The dashboard's figures for the last `days` days."""
    since = now - timedelta(days=days)
    decisions_where = [m.Decision.created_at >= since, *_visible(m.Decision.account_id, account_ids)]
    drafts_where = [m.Draft.created_at >= since, *_visible(m.Draft.account_id, account_ids)]
    decisions = s.scalar(select(func.count()).select_from(m.Decision).where(*decisions_where)) or 0
    total_drafts = s.scalar(select(func.count()).select_from(m.Draft).where(*drafts_where)) or 0
    auto_drafts = (
        s.scalar(select(func.count()).select_from(m.Draft).where(*drafts_where, m.Draft.auto.is_(True))) or 0
    )
    human_where = [
        *drafts_where,
        m.Draft.auto.is_(False),
        m.Draft.reviewed_at.is_not(None),
        m.Draft.state.in_(HUMAN_APPROVED_STATES),
    ]
    human = s.scalar(select(func.count()).select_from(m.Draft).where(*human_where)) or 0
    edited = (
        s.scalar(
            select(func.count()).select_from(m.Draft).where(*human_where, m.Draft.edited_text.is_not(None))
        )
        or 0
    )
    pending_where = [m.Draft.state == m.DraftState.pending, *_visible(m.Draft.account_id, account_ids)]
    pending = s.scalar(select(func.count()).select_from(m.Draft).where(*pending_where)) or 0
    oldest = s.scalar(select(func.min(m.Draft.created_at)).where(*pending_where))
    failures_where = [
        m.Outbox.state.in_(SEND_FAILURE_STATES),
        m.Outbox.updated_at >= since,
        *_visible(m.Outbox.account_id, account_ids),
    ]
    failures = s.scalar(select(func.count()).select_from(m.Outbox).where(*failures_where)) or 0
    recent = s.scalars(
        select(m.Outbox).where(*failures_where).order_by(m.Outbox.updated_at.desc()).limit(RECENT_FAILURES)
    ).all()
    paused = s.scalars(
        select(m.Account)
        .where(m.Account.paused.is_(True), *_visible(m.Account.id, account_ids))
        .order_by(m.Account.id)
    ).all()
    return Stats(
        since=since,
        days=days,
        decisions=decisions,
        by_intent=_counts(s, m.Decision.intent, *decisions_where),
        by_scenario=_counts(s, m.Decision.scenario, *decisions_where),
        by_state=_counts(s, m.Draft.state, *drafts_where),
        drafts=total_drafts,
        auto_drafts=auto_drafts,
        auto_send_rate=_rate(auto_drafts, total_drafts),
        human_approved=human,
        edited=edited,
        edit_rate=_rate(edited, human),
        pending=pending,
        oldest_pending_at=oldest,
        oldest_pending_seconds=int((now - oldest).total_seconds()) if oldest else None,
        send_failures=failures,
        recent_failures=[
            Failure(
                outbox_id=o.id,
                draft_id=o.draft_id,
                account_id=o.account_id,
                state=o.state,
                last_error=o.last_error,
                at=o.updated_at,
            )
            for o in recent
        ],
        paused_accounts=[
            PausedAccount(
                id=a.id, marketplace=a.marketplace, name=a.name, reason=a.paused_reason, since=a.paused_at
            )
            for a in paused
        ],
    )


class Bar(BaseModel):
    label: str
    count: int
    # Bar length relative to the largest count, 0..1.
    fraction: float


def bars(counts: list[Count], limit: int = 12) -> list[Bar]:
    """The largest `limit` counts as bars scaled to the largest one (the rest summed as "other")."""
    shown = counts[:limit]
    rest = sum(c.count for c in counts[limit:])
    if rest:
        shown = [*shown, Count(label="(other)", count=rest)]
    top = max((c.count for c in shown), default=0)
    return [Bar(label=c.label, count=c.count, fraction=(c.count / top) if top else 0.0) for c in shown]
