"""The triage job: claim new messages and disputes, decide them, store decision + draft atomically.

The attempt counter is committed before any work, so a worker killed mid-triage (SIGKILL, OOM)
still counts; past `max_attempts` the message is quarantined for a human instead of crashing
workers forever. Each item is decided in its own savepoint: one bad message never blocks a batch.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from connectors import capabilities_for
from worker import models as m
from worker.cases import CaseUnavailable, case_for_dispute, case_for_message, conversation_for_order
from worker.db import session_scope, utcnow
from worker.drafts import Source, record_decision
from worker.policy.load import load_policy, policy_from_overrides
from worker.policy.model import Policy
from worker.render import default_renderer
from worker.triage.pipeline import Triage
from worker.triage.types import Intent

log = logging.getLogger(__name__)

# Intents that mean the buyer is unhappy: no feedback request for this order (guard 6).
COMPLAINTS = frozenset(
    {
        Intent.quality_issue,
        Intent.wrong_item,
        Intent.missing_item,
        Intent.empty_package,
        Intent.customs_tax,
        Intent.refund_request,
        Intent.not_received,
    }
)


@dataclass
class Engines:
    """Triage engines per account, built from the account's policy and cached by its settings."""

    base_policy_file: str | None = None
    shop_name: str = "Our store"
    _cache: dict[tuple[int, str], Triage] = field(default_factory=dict)

    def policy_for(self, account_settings: dict[str, Any]) -> Policy:
        """Default policy <- installation file <- the account's file <- the account's inline overrides."""
        path = account_settings.get("policy_file") or self.base_policy_file
        policy = load_policy(path)
        inline = account_settings.get("policy")
        if inline:
            base = policy.model_dump(mode="json")
            policy = policy_from_overrides(
                _deep_merge(base, inline), f"account overrides over {path or 'default'}"
            )
        return policy

    def for_account(self, account: m.Account) -> Triage:
        key = (account.id, json.dumps(account.settings_json or {}, sort_keys=True, default=str))
        engine = self._cache.get(key)
        if engine is None:
            settings = account.settings_json or {}
            engine = Triage(
                policy=self.policy_for(settings),
                renderer=default_renderer(),
                shop_name=settings.get("shop_name") or self.shop_name,
            )
            self._cache[key] = engine
        return engine


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _claim(
    engine: Engine | None, model: type[m.Message] | type[m.Dispute], ids: Sequence[int]
) -> dict[int, int]:
    """Mark items processing and count the attempt, committed before any work; id -> attempts."""
    if not ids:
        return {}
    with session_scope(engine) as s:
        rows = s.execute(
            update(model)
            .where(
                model.id.in_(list(ids)), model.triage_state.in_([m.TriageState.new, m.TriageState.processing])
            )
            .values(triage_state=m.TriageState.processing, triage_attempts=model.triage_attempts + 1)
            .returning(model.id, model.triage_attempts)
        ).all()
    return {row[0]: row[1] for row in rows}


def _quarantine(engine: Engine | None, model, kind: str, item_id: int, attempts: int, reason: str) -> None:
    with session_scope(engine) as s:
        s.execute(update(model).where(model.id == item_id).values(triage_state=m.TriageState.quarantined))
        try:
            with s.begin_nested():
                s.add(
                    m.Quarantine(kind=kind, object_id=str(item_id), reason=reason[:2000], attempts=attempts)
                )
        except IntegrityError:
            pass
    log.error("%s %s quarantined after %s attempts: %s", kind, item_id, attempts, reason)


def triage_messages(
    ids: Sequence[int],
    *,
    engines: Engines,
    engine: Engine | None = None,
    clock: Callable[[], datetime] = utcnow,
    max_attempts: int = 3,
    undo_window: timedelta = timedelta(minutes=2),
) -> Counter[str]:
    """Decide each new buyer message once; returns counts of what happened."""
    outcome: Counter[str] = Counter()
    claimed = _claim(engine, m.Message, ids)
    outcome["not-claimed"] += len(set(ids) - set(claimed))
    todo = []
    for mid, attempts in claimed.items():
        if attempts > max_attempts:
            _quarantine(
                engine, m.Message, "message", mid, attempts, "triage failed or its worker died repeatedly"
            )
            outcome["quarantined"] += 1
        else:
            todo.append(mid)
    if not todo:
        return outcome
    now = clock()
    with session_scope(engine) as s:
        for mid in todo:
            try:
                with s.begin_nested():
                    outcome[_decide_message(s, mid, engines, now, undo_window)] += 1
            except CaseUnavailable as exc:
                # Waiting for facts is not a failure: give the attempt back and try on a later sweep.
                s.execute(
                    update(m.Message)
                    .where(m.Message.id == mid)
                    .values(triage_state=m.TriageState.new, triage_attempts=m.Message.triage_attempts - 1)
                )
                log.info("%s", exc)
                outcome["waiting"] += 1
            except Exception:  # noqa: BLE001 - isolate the bad item; its attempt counter decides
                log.exception("triage of message %s failed", mid)
                outcome["error"] += 1
    return outcome


def _decide_message(s, mid: int, engines: Engines, now: datetime, undo_window: timedelta) -> str:
    msg = s.get(m.Message, mid)
    if not msg.body.strip():
        # Only an attachment (a photo of the damage, say): nothing to classify, but a person must see it.
        msg.triage_state = m.TriageState.skipped
        s.add(
            m.Quarantine(
                kind="message",
                object_id=str(mid),
                reason="no text (attachment only?): for a human",
                attempts=msg.triage_attempts,
            )
        )
        return "blank"
    conv = msg.conversation
    account = s.get(m.Account, conv.account_id)
    case = case_for_message(s, msg, account.marketplace, now)
    decision = engines.for_account(account).decide(case, capabilities_for(account.marketplace))
    record_decision(
        s,
        Source(account_id=account.id, order_id=conv.order_id, message_id=msg.id, conversation_id=conv.id),
        decision,
        now=now,
        undo_window=undo_window,
    )
    msg.language = decision.language
    msg.is_auto_reply = "auto_reply" in decision.signals
    msg.triage_state = m.TriageState.skipped if decision.reply_suppressed else m.TriageState.done
    if decision.intent in COMPLAINTS and not decision.reply_suppressed:
        conv.complaint = True
    return "suppressed" if decision.reply_suppressed else ("auto" if decision.auto_send else "draft")


def triage_disputes(
    ids: Sequence[int],
    *,
    engines: Engines,
    engine: Engine | None = None,
    clock: Callable[[], datetime] = utcnow,
    max_attempts: int = 3,
    undo_window: timedelta = timedelta(minutes=2),
) -> Counter[str]:
    """Decide each newly opened dispute once (unless a buyer message about it was just decided)."""
    outcome: Counter[str] = Counter()
    claimed = _claim(engine, m.Dispute, ids)
    outcome["not-claimed"] += len(set(ids) - set(claimed))
    now = clock()
    for did, attempts in claimed.items():
        if attempts > max_attempts:
            _quarantine(
                engine, m.Dispute, "dispute", did, attempts, "triage failed or its worker died repeatedly"
            )
            outcome["quarantined"] += 1
            continue
        try:
            with session_scope(engine) as s:
                outcome[_decide_dispute(s, did, engines, now, undo_window)] += 1
        except Exception:  # noqa: BLE001
            log.exception("triage of dispute %s failed", did)
            outcome["error"] += 1
    return outcome


def _decide_dispute(s, did: int, engines: Engines, now: datetime, undo_window: timedelta) -> str:
    dispute = s.get(m.Dispute, did)
    account = s.get(m.Account, dispute.account_id)
    conv = conversation_for_order(s, dispute.order_id)
    since = dispute.opened_at or dispute.created_at
    answered = s.scalar(
        select(m.Decision.id)
        .where(
            m.Decision.order_id == dispute.order_id,
            m.Decision.message_id.is_not(None),
            m.Decision.created_at >= since,
        )
        .limit(1)
    )
    if answered is not None:
        # The buyer also wrote, and that decision already saw the dispute: one answer, not two.
        dispute.triage_state = m.TriageState.skipped
        return "answered-by-message"
    case = case_for_dispute(s, dispute, account.marketplace, now)
    decision = engines.for_account(account).decide(case, capabilities_for(account.marketplace))
    record_decision(
        s,
        Source(
            account_id=account.id,
            order_id=dispute.order_id,
            dispute_id=dispute.id,
            conversation_id=conv.id if conv else None,
        ),
        decision,
        now=now,
        undo_window=undo_window,
    )
    dispute.triage_state = m.TriageState.done
    if conv is not None:
        conv.complaint = True
    return "auto" if decision.auto_send else "draft"
