"""The triage job: claim new messages and disputes, decide them, store decision + draft atomically.

The attempt counter is committed before any work, so a worker killed mid-triage (SIGKILL, OOM)
still counts; past `max_attempts` the message is quarantined for a human instead of crashing
workers forever. A batch is one transaction that loads its facts up front (worker/cases.py) and
decides its items in turn; if one fails once it has begun writing, the batch is decided again with a
savepoint per item, so one bad message never blocks a batch.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from connectors import capabilities_for
from worker import models as m
from worker.cases import (
    CaseUnavailable,
    Facts,
    case_for_dispute,
    case_for_message,
    latest_order_of_buyer,
    load_facts,
    load_messages,
)
from worker.db import LOCK_CONVERSATION, LOCK_ORDER, lock_keys, session_scope, utcnow
from worker.drafts import Source, record_decision
from worker.policy.load import load_policy, policy_from_overrides
from worker.policy.model import Policy
from worker.render import default_renderer
from worker.triage.pipeline import Triage
from worker.triage.types import Decision as TriageDecision
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
    return _triage(
        engine, m.Message, "message", _message_batch, ids, engines, clock, max_attempts, undo_window
    )


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
    return _triage(
        engine, m.Dispute, "dispute", _dispute_batch, ids, engines, clock, max_attempts, undo_window
    )


def _triage(
    engine: Engine | None,
    model: type[m.Message] | type[m.Dispute],
    kind: str,
    batch: Callable[..., Counter[str]],
    ids: Sequence[int],
    engines: Engines,
    clock: Callable[[], datetime],
    max_attempts: int,
    undo_window: timedelta,
) -> Counter[str]:
    """Claim the items, then decide those still to do in one transaction with `batch`."""
    outcome: Counter[str] = Counter()
    todo = _claim_todo(engine, model, kind, ids, max_attempts, outcome)
    if todo:
        run = partial(batch, todo=todo, engines=engines, now=clock(), undo_window=undo_window)
        outcome.update(_in_one_transaction(engine, run))
    return outcome


def _claim_todo(
    engine: Engine | None,
    model: type[m.Message] | type[m.Dispute],
    kind: str,
    ids: Sequence[int],
    max_attempts: int,
    outcome: Counter[str],
) -> list[int]:
    """Claim the items and quarantine those past `max_attempts`; the rest are to be decided."""
    claimed = _claim(engine, model, ids)
    outcome["not-claimed"] += len(set(ids) - set(claimed))
    todo = []
    for item_id, attempts in claimed.items():
        if attempts > max_attempts:
            _quarantine(engine, model, kind, item_id, attempts, "triage failed or its worker died repeatedly")
            outcome["quarantined"] += 1
        else:
            todo.append(item_id)
    return todo


class _WriteFailed(Exception):
    """An item failed after it began writing, in a batch run without savepoints."""


def _in_one_transaction(engine: Engine | None, run: Callable[..., Counter[str]]) -> Counter[str]:
    """Run a batch in one transaction; first without a savepoint per item (two statements each).

    If an item fails once it has begun writing, that transaction is rolled back whole and the batch
    runs again with a savepoint per item, so one bad item still never blocks the others.
    """
    try:
        with session_scope(engine) as s:
            return run(s, isolated=False)
    except _WriteFailed as exc:
        log.warning("%s (%r): deciding the batch again, one savepoint per item", exc, exc.__cause__)
    with session_scope(engine) as s:
        return run(s, isolated=True)


def _one_item(s, isolated: bool, plan: Callable[[], Any], write: Callable[[Any], Any], what: str) -> Any:
    """Plan an item (reads only, may raise) then write it: in a savepoint, or raising _WriteFailed."""
    if isolated:
        with s.begin_nested():
            return write(plan())
    try:
        planned = plan()  # reads only: a Python exception here leaves the transaction as it was
    except SQLAlchemyError as exc:
        raise _WriteFailed(f"{what}: the database failed while planning") from exc
    try:
        result = write(planned)
        s.flush()  # this item's writes fail here, not in the next item's autoflush
    except Exception as exc:
        raise _WriteFailed(f"{what} failed while writing") from exc
    return result


class _EngineCache:
    """The triage engine per account of one batch (its settings cannot change within the batch)."""

    def __init__(self, engines: Engines) -> None:
        self.engines = engines
        self.by_account: dict[int, Triage] = {}

    def __call__(self, account: m.Account) -> Triage:
        engine = self.by_account.get(account.id)
        if engine is None:
            engine = self.by_account[account.id] = self.engines.for_account(account)
        return engine


@dataclass
class _Plan:
    """What one item will write: the decision (None: a blank message, a dispute answered already)."""

    account: m.Account | None = None
    decision: TriageDecision | None = None


def _message_batch(
    s, *, todo: list[int], engines: Engines, now: datetime, undo_window: timedelta, isolated: bool
) -> Counter[str]:
    outcome: Counter[str] = Counter()
    _lock_message_batch(s, todo)
    messages = load_messages(s, todo)
    convs = [msg.conversation for msg in messages.values()]
    facts = load_facts(
        s,
        {c.account_id for c in convs},
        {c.order_id for c in convs if c.order_id is not None},
        conversation_ids={c.id for c in convs},
    )
    triage = _EngineCache(engines)
    # The messages' own columns, written in one statement at the end: nothing in the batch reads them.
    states: list[dict[str, Any]] = []
    for mid in todo:
        msg = messages.get(mid)
        try:
            result, state = _one_item(
                s,
                isolated,
                partial(_plan_message, mid, msg, facts, triage, now),
                partial(_write_message, s, msg, facts, now=now, undo_window=undo_window),
                f"message {mid}",
            )
        except CaseUnavailable as exc:
            # Waiting for facts is not a failure: give the attempt back and try on a later sweep.
            s.execute(
                update(m.Message)
                .where(m.Message.id == mid)
                .values(triage_state=m.TriageState.new, triage_attempts=m.Message.triage_attempts - 1)
            )
            log.info("%s", exc)
            outcome["waiting"] += 1
        except _WriteFailed:
            raise
        except Exception:  # noqa: BLE001 - isolate the bad item; its attempt counter decides
            log.exception("triage of message %s failed", mid)
            outcome["error"] += 1
        else:
            outcome[result] += 1
            states.append(state)
    if states:
        s.execute(update(m.Message), states)
    return outcome


def _lock_message_batch(s, todo: list[int]) -> None:
    """Lock the batch's conversations and orders before reading any fact, and link late orders.

    Facts are read once per batch: a worker deciding another message of the same conversation or order
    at the same time (an automatic-reply slot, identical drafts, one refund per order) must wait for this
    batch's commit, not decide from what it read before. Disputes take the same order locks."""
    rows = s.execute(
        select(
            m.Conversation.id,
            m.Conversation.account_id,
            m.Conversation.order_id,
            m.Conversation.order_external_id,
            m.Conversation.buyer_id,
        )
        .join(m.Message, m.Message.conversation_id == m.Conversation.id)
        .where(m.Message.id.in_(todo))
        .distinct()
    ).all()
    late = _late_orders(s, [r for r in rows if r.order_id is None])
    lock_keys(
        s,
        [(LOCK_CONVERSATION, r.id) for r in rows]
        + [(LOCK_ORDER, r.order_id or late.get(r.id)) for r in rows],
    )
    for conversation_id, order_id in late.items():
        # The order's poll committed while this conversation's poll was storing it: link it now.
        s.execute(
            update(m.Conversation)
            .where(m.Conversation.id == conversation_id, m.Conversation.order_id.is_(None))
            .values(order_id=order_id)
        )


def _late_orders(s, unlinked: list[Any]) -> dict[int, int]:
    """Conversation id -> its order, for conversations stored without one although the order exists."""
    found: dict[int, int] = {}
    by_external = {(r.account_id, r.order_external_id): r.id for r in unlinked if r.order_external_id}
    if by_external:
        for order_id, account_id, external_id in s.execute(
            select(m.Order.id, m.Order.account_id, m.Order.external_id).where(
                m.Order.external_id.in_([e for _, e in by_external])
            )
        ):
            conversation_id = by_external.get((account_id, external_id))
            if conversation_id is not None:
                found[conversation_id] = order_id
    for r in unlinked:
        if not r.order_external_id and r.buyer_id:
            # eBay conversations name a listing, not an order: linked as ingest links them.
            order_id = latest_order_of_buyer(s, r.account_id, r.buyer_id)
            if order_id is not None:
                found[r.id] = order_id
    return found


def _plan_message(
    mid: int, msg: m.Message | None, facts: Facts, triage: _EngineCache, now: datetime
) -> _Plan:
    if msg is None:
        raise LookupError(f"message {mid} does not exist")
    if not msg.body.strip():
        return _Plan()
    account = facts.accounts[msg.conversation.account_id]
    case = case_for_message(msg, account.marketplace, now, facts)
    return _Plan(account, triage(account).decide(case, capabilities_for(account.marketplace)))


def _write_message(
    s, msg: m.Message, facts: Facts, plan: _Plan, *, now: datetime, undo_window: timedelta
) -> tuple[str, dict[str, Any]]:
    """Store the message's decision; returns the outcome and the message's new column values."""
    decision = plan.decision
    if decision is None:
        # Only an attachment (a photo of the damage, say): nothing to classify, but a person must see it.
        s.add(
            m.Quarantine(
                kind="message",
                object_id=str(msg.id),
                reason="no text (attachment only?): for a human",
                attempts=msg.triage_attempts,
            )
        )
        return "blank", {"id": msg.id, "triage_state": m.TriageState.skipped}
    conv = msg.conversation
    record_decision(
        s,
        Source(
            account_id=plan.account.id, order_id=conv.order_id, message_id=msg.id, conversation_id=conv.id
        ),
        decision,
        now=now,
        undo_window=undo_window,
        with_drafts=facts.with_drafts,
    )
    if decision.intent in COMPLAINTS and not decision.reply_suppressed:
        conv.complaint = True
    state = {
        "id": msg.id,
        "language": decision.language,
        "is_auto_reply": "auto_reply" in decision.signals,
        "triage_state": m.TriageState.skipped if decision.reply_suppressed else m.TriageState.done,
    }
    return "suppressed" if decision.reply_suppressed else ("auto" if decision.auto_send else "draft"), state


def _dispute_batch(
    s, *, todo: list[int], engines: Engines, now: datetime, undo_window: timedelta, isolated: bool
) -> Counter[str]:
    outcome: Counter[str] = Counter()
    lock_keys(
        s, ((LOCK_ORDER, o) for o in s.scalars(select(m.Dispute.order_id).where(m.Dispute.id.in_(todo))))
    )
    disputes = {d.id: d for d in s.scalars(select(m.Dispute).where(m.Dispute.id.in_(todo)))}
    order_ids = {d.order_id for d in disputes.values()}
    facts = load_facts(s, {d.account_id for d in disputes.values()}, order_ids, conversations=True)
    answered = _message_decided_at(s, order_ids)
    triage = _EngineCache(engines)
    for did in todo:
        dispute = disputes.get(did)
        try:
            result = _one_item(
                s,
                isolated,
                partial(_plan_dispute, did, dispute, facts, answered, triage, now),
                partial(_write_dispute, s, dispute, facts, now=now, undo_window=undo_window),
                f"dispute {did}",
            )
        except _WriteFailed:
            raise
        except Exception:  # noqa: BLE001
            log.exception("triage of dispute %s failed", did)
            outcome["error"] += 1
        else:
            outcome[result] += 1
    return outcome


def _message_decided_at(s, order_ids: set[int]) -> dict[int, datetime]:
    """Order id -> when its newest decision about a buyer message was taken."""
    if not order_ids:
        return {}
    rows = s.execute(
        select(m.Decision.order_id, func.max(m.Decision.created_at))
        .where(m.Decision.order_id.in_(list(order_ids)), m.Decision.message_id.is_not(None))
        .group_by(m.Decision.order_id)
    )
    return {order_id: at for order_id, at in rows}


def _plan_dispute(
    did: int,
    dispute: m.Dispute | None,
    facts: Facts,
    answered: dict[int, datetime],
    triage: _EngineCache,
    now: datetime,
) -> _Plan:
    if dispute is None:
        raise LookupError(f"dispute {did} does not exist")
    account = facts.accounts[dispute.account_id]
    decided_at = answered.get(dispute.order_id)
    if decided_at is not None and decided_at >= (dispute.opened_at or dispute.created_at):
        return _Plan(account)
    case = case_for_dispute(dispute, account.marketplace, now, facts)
    return _Plan(account, triage(account).decide(case, capabilities_for(account.marketplace)))


def _write_dispute(
    s, dispute: m.Dispute, facts: Facts, plan: _Plan, *, now: datetime, undo_window: timedelta
) -> str:
    if plan.decision is None:
        # The buyer also wrote, and that decision already saw the dispute: one answer, not two.
        dispute.triage_state = m.TriageState.skipped
        return "answered-by-message"
    conv = facts.conversations.get(dispute.order_id)
    record_decision(
        s,
        Source(
            account_id=plan.account.id,
            order_id=dispute.order_id,
            dispute_id=dispute.id,
            conversation_id=conv.id if conv else None,
        ),
        plan.decision,
        now=now,
        undo_window=undo_window,
        with_drafts=facts.with_drafts,
    )
    dispute.triage_state = m.TriageState.done
    if conv is not None:
        conv.complaint = True
    return "auto" if plan.decision.auto_send else "draft"
