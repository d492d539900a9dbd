"""Counts from the database for `sellerdesk status`: what the daemon has done, at a glance."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from worker import models as m
from worker.db import session_scope


def _by(s, column, *extra) -> dict[str, int]:
    return {str(k): v for k, v in s.execute(select(column, func.count()).group_by(column, *extra)).all()}


def collect(engine: Engine | None = None) -> dict[str, Any]:
    """Orders, messages, decisions by intent and scenario, drafts by state, sends, actions, quarantine, polls."""
    with session_scope(engine) as s:
        count = lambda model: s.scalar(select(func.count()).select_from(model)) or 0  # noqa: E731
        accounts = []
        for acc in s.scalars(select(m.Account).order_by(m.Account.id)):
            cursors = {
                c.stream: {
                    "last_success_at": c.last_success_at.isoformat() if c.last_success_at else None,
                    "last_error": c.last_error,
                }
                for c in s.scalars(select(m.PollCursor).where(m.PollCursor.account_id == acc.id))
            }
            accounts.append(
                {
                    "id": acc.id,
                    "marketplace": acc.marketplace,
                    "name": acc.name,
                    "paused": acc.paused,
                    "paused_reason": acc.paused_reason,
                    "polls": cursors,
                }
            )
        return {
            "orders": count(m.Order),
            "messages": {"total": count(m.Message), "by_triage_state": _by(s, m.Message.triage_state)},
            "disputes": {"total": count(m.Dispute), "by_triage_state": _by(s, m.Dispute.triage_state)},
            "decisions": {
                "total": count(m.Decision),
                "by_intent": _by(s, m.Decision.intent),
                "by_scenario": _by(s, m.Decision.scenario),
                "auto_send": s.scalar(select(func.count()).where(m.Decision.auto_send.is_(True))) or 0,
            },
            "drafts": _by(s, m.Draft.state),
            "sends": _by(s, m.Outbox.state),
            "actions": _by(s, m.ProposedAction.state),
            "quarantined": s.scalar(
                select(func.count()).select_from(m.Quarantine).where(m.Quarantine.released_at.is_(None))
            )
            or 0,
            "lifecycle": _by(s, m.LifecycleEvent.state),
            "accounts": accounts,
        }


def lines(data: dict[str, Any]) -> list[str]:
    """A human-readable rendering of `collect()`."""

    def kv(d: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(d.items(), key=lambda x: -x[1])) or "-"

    out = [
        f"orders: {data['orders']}",
        f"messages: {data['messages']['total']} ({kv(data['messages']['by_triage_state'])})",
        f"disputes: {data['disputes']['total']} ({kv(data['disputes']['by_triage_state'])})",
        f"decisions: {data['decisions']['total']} (auto-send {data['decisions']['auto_send']})",
        f"  by intent: {kv(data['decisions']['by_intent'])}",
        f"  by scenario: {kv(data['decisions']['by_scenario'])}",
        f"drafts: {kv(data['drafts'])}",
        f"sends: {kv(data['sends'])}",
        f"actions: {kv(data['actions'])}",
        f"lifecycle: {kv(data['lifecycle'])}",
        f"quarantined: {data['quarantined']}",
    ]
    for acc in data["accounts"]:
        state = f"PAUSED: {acc['paused_reason']}" if acc["paused"] else "active"
        out.append(f"account {acc['id']} {acc['marketplace']}/{acc['name']}: {state}")
        for stream, info in sorted(acc["polls"].items()):
            err = f" (last error: {info['last_error']})" if info["last_error"] else ""
            out.append(f"  {stream}: last poll {info['last_success_at'] or 'never'}{err}")
    return out
