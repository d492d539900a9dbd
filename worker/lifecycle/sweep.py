"""The lifecycle mailer's database side: plan events when orders change, sweep the due ones into the outbox.

Scheduling model:
- `plan_events` runs in the poller's transaction whenever an order is ingested or updated. It inserts
  one `lifecycle_events` row per mail the order has reached (state `due`, `due_at` computed by
  `rules.plan`). `INSERT ... ON CONFLICT DO NOTHING` on the (order_id, kind) unique constraint makes
  re-planning a no-op: each (order, kind) exists once, whatever the poller repeats.
- `sweep` (on beat) selects `state='due' AND due_at <= now` through `ix_lifecycle_events_state_due`,
  so its cost grows with the events due, not with the orders. Each event is handled in its own short
  transaction that starts by claiming it (`UPDATE ... WHERE state='due' AND due_at <= now`, rowcount
  1), so two sweeps racing never both handle one event. It then re-checks every condition
  (`rules.evaluate`), and either closes the event (`skipped`, with the reason), leaves it `due` for
  later (quiet hours, daily cap, a moved moment), or enqueues it: the rendered mail goes into the
  outbox (kind `lifecycle`, key `lifecycle:<order_id>:<kind>`) in the same transaction that marks the
  event `enqueued` and links `outbox_id`. The outbox sender marks the event `sent` or `failed`.
- Approval mode: the sweep re-checks everything, then parks the event as `enqueued` with no outbox
  row; `pending_approvals` lists those. `approve_lifecycle` re-checks again, renders and writes the
  outbox row (`pending`), in the caller's transaction; `reject_lifecycle` closes the event. The daily
  cap limits automatic sends only: an approved mail counts towards it but is never held back by it.
- Amazon cannot message buyers: its only lifecycle mail, the feedback request, becomes an outbox row
  whose body is `REVIEW_SOLICITATION_BODY`; the Amazon connector's `send_message` turns exactly that
  body into a Solicitations call, so the outbox's exactly-once machinery applies to it too.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import quote

from sqlalchemy import Select, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connectors.amazon import REVIEW_SOLICITATION_BODY
from worker import models as m
from worker.cases import conversation_for_order
from worker.db import session_scope, utcnow
from worker.decide import Engines
from worker.drafts import audit
from worker.lifecycle import rules
from worker.lifecycle.config import Kind, LifecycleConfig, LifecycleConfigError, Mode, lifecycle_config
from worker.policy.model import Policy
from worker.render import LifecycleContext, Renderer, RenderError, default_renderer
from worker.settings import get_settings
from worker.triage.types import Item, OrderStatus

log = logging.getLogger(__name__)

# An event that cannot be handled (bad settings, an unexpected error) is retried this much later,
# so it never sits at the head of the due queue starving the others.
RETRY_LATER = timedelta(minutes=30)
# Outbox states that count as "sent today" for the daily cap (everything but a cancelled row).
CAP_STATES = tuple(s.value for s in m.OutboxState if s is not m.OutboxState.cancelled)


class LifecycleError(Exception):
    """A lifecycle operation that cannot happen (unknown event, not awaiting approval); says why."""


def idempotency_key(order_id: int, kind: Kind | str) -> str:
    """The outbox key of one lifecycle mail: a second enqueue of the same (order, kind) fails on it."""
    return f"lifecycle:{order_id}:{Kind(kind).value}"


def order_facts(order: m.Order, marketplace: str) -> rules.OrderFacts:
    """The rules' view of an order row."""
    return rules.OrderFacts(
        marketplace=marketplace,
        status=OrderStatus(order.status),
        created_at=order.created_at,
        total=order.total,
        refunded=order.refunded_total or 0,
        paid_at=order.paid_at,
        shipped_at=order.shipped_at,
        delivered_at=order.delivered_at,
        completed_at=order.completed_at,
        cancelled_at=order.cancelled_at,
        promised_delivery_days=order.promised_delivery_days,
        buyer_id=order.buyer_id,
        buyer_country=order.buyer_country,
    )


def exclusions(s: Session, order: m.Order) -> rules.Exclusions:
    """Open disputes and returns of the order, a complaint in its conversations, the buyer's opt-out."""
    open_requests = list(
        s.scalars(
            select(m.Dispute.buyer_request).where(
                m.Dispute.order_id == order.id, m.Dispute.closed_at.is_(None)
            )
        )
    )
    flags = s.execute(
        select(m.Conversation.complaint, m.Conversation.opted_out).where(m.Conversation.order_id == order.id)
    ).all()
    complaint = any(row.complaint for row in flags)
    opted_out = any(row.opted_out for row in flags)
    if not opted_out and order.buyer_id:
        # An opt-out is the buyer's, not one conversation's: it holds for their other orders too.
        opted_out = (
            s.scalar(
                select(m.Conversation.id)
                .where(
                    m.Conversation.account_id == order.account_id,
                    m.Conversation.buyer_id == order.buyer_id,
                    m.Conversation.opted_out.is_(True),
                )
                .limit(1)
            )
            is not None
        )
    return rules.Exclusions(
        dispute_open=any(r != m.BuyerRequest.return_ for r in open_requests),
        return_open=any(r == m.BuyerRequest.return_ for r in open_requests),
        complaint=complaint,
        opted_out=opted_out,
    )


# ---------------------------------------------------------------------------------- planning


def _insert(s: Session):
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert
    if dialect == "sqlite":
        return sqlite.insert
    raise LifecycleError(f"lifecycle planning supports PostgreSQL and SQLite, not {dialect}")


def plan_events(session: Session, order: m.Order, now: datetime) -> list[Kind]:
    """Insert the due lifecycle events the order has reached (idempotent); returns the kinds newly planned.

    Runs in the caller's transaction (the poll that ingested the order). Bad lifecycle settings plan
    nothing and are logged, so they never break ingestion.
    """
    if order.id is None:
        session.flush()
    account = session.get(m.Account, order.account_id)
    if account is None:
        raise LifecycleError(f"order {order.id} has no account {order.account_id}")
    # The identity map holds objects weakly: keeping the account here lets the poll's next order find
    # it there (no SELECT per order); `get` still reloads it once a commit has expired it.
    session.info.setdefault("lifecycle_accounts", {})[account.id] = account
    try:
        config = lifecycle_config(account.settings_json)
    except LifecycleConfigError as exc:
        log.error(
            "account %s: lifecycle settings invalid, nothing planned for order %s: %s",
            account.id,
            order.id,
            exc,
        )
        return []
    planned = rules.plan(order_facts(order, account.marketplace), config, now)
    if not planned:
        return []
    rows = [
        {
            "order_id": order.id,
            "kind": p.kind.value,
            "state": m.LifecycleState.skipped if p.skip_reason else m.LifecycleState.due,
            "due_at": p.due_at,
            "skip_reason": p.skip_reason,
            "created_at": now,
            "updated_at": now,
        }
        for p in planned
    ]
    # The rows go as parameters of one cached statement (sent as a single multi-row INSERT), not as
    # literal VALUES, which would be compiled anew for every order.
    table = m.LifecycleEvent.__table__
    stmt = (
        _insert(session)(table)
        .on_conflict_do_nothing(index_elements=["order_id", "kind"])
        .returning(table.c.kind)
    )
    return [Kind(kind) for kind in session.scalars(stmt, rows)]


# ---------------------------------------------------------------------------------- rendering


@dataclass
class _Account:
    """Per-account things one sweep needs, loaded once per account and run."""

    config: LifecycleConfig
    policy: Policy
    shop_name: str


@dataclass
class Mailer:
    """Turns an event into the text the outbox sends: our rendered template, or Amazon's solicitation."""

    renderer: Renderer
    shop_name: str
    engines: Engines
    _accounts: dict[int, _Account] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, renderer: Renderer | None = None, shop_name: str | None = None) -> Mailer:
        """A mailer on the process settings: the default templates, shop name and policy file."""
        settings = get_settings()
        base = str(settings.policy_file) if settings.policy_file else None
        return cls(
            renderer=renderer or default_renderer(),
            shop_name=shop_name or settings.shop_name,
            engines=Engines(base_policy_file=base, shop_name=shop_name or settings.shop_name),
        )

    def account(self, account: m.Account) -> _Account:
        """Lifecycle settings, policy and shop name of an account; LifecycleConfigError for bad settings."""
        cached = self._accounts.get(account.id)
        if cached is None:
            settings = account.settings_json or {}
            cached = self._accounts[account.id] = _Account(
                config=lifecycle_config(settings),
                policy=self.engines.policy_for(settings),
                shop_name=settings.get("shop_name") or self.shop_name,
            )
        return cached

    def context(self, order: m.Order, account: m.Account) -> LifecycleContext:
        """Everything a lifecycle template may say about this order."""
        acc = self.account(account)
        method = acc.policy.method(order.shipping_method)
        url_template = acc.config.tracking_url
        tracking_url = (
            url_template.replace("{number}", quote(order.tracking_number, safe=""))
            if url_template and order.tracking_number
            else None
        )
        handling = order.handling_days if order.handling_days is not None else acc.policy.orders.handling_days
        # The carrier the marketplace names, else the policy's label for the shipping method.
        carrier = order.carrier or (method.label if order.shipping_method else None) or order.shipping_method
        return LifecycleContext(
            language=rules.mail_language(order.buyer_language, order.buyer_country),
            shop_name=acc.shop_name,
            buyer_name=(order.buyer_name or "").strip() or None,
            marketplace=account.marketplace,
            marketplace_label=rules.MARKETPLACE_LABELS.get(account.marketplace, account.marketplace.title()),
            order_id=order.external_id,
            items=[
                Item(sku=i.sku, title=i.title or "", quantity=i.quantity, price=i.price) for i in order.items
            ],
            order_total=order.total,
            currency=order.currency,
            handling_days=handling,
            tracking_number=order.tracking_number,
            carrier_label=carrier,
            tracking_url=tracking_url,
            shipped_at=order.shipped_at,
            delivered_at=order.delivered_at,
        )

    def body(self, kind: Kind, order: m.Order, account: m.Account) -> str:
        """The outbox body for this mail; RenderError when a template fails."""
        if rules.marketplace_rule(account.marketplace).review_solicitation:
            return REVIEW_SOLICITATION_BODY
        return self.renderer.render_lifecycle(kind.value, self.context(order, account))


def _write_outbox(
    s: Session,
    ev: m.LifecycleEvent,
    order: m.Order,
    account: m.Account,
    body: str,
    not_before: datetime,
    now: datetime,
) -> int:
    """The outbox row of an event, linked to it; an existing row for the same (order, kind) is reused."""
    key = idempotency_key(order.id, ev.kind)
    conv = None
    if not rules.marketplace_rule(account.marketplace).review_solicitation:
        # The order's latest conversation carries the mail; without one the sender addresses the order.
        conv = conversation_for_order(s, order.id)
    row = m.Outbox(
        account_id=order.account_id,
        conversation_id=conv.id if conv else None,
        order_id=order.id,
        idempotency_key=key,
        kind=m.OutboxKind.lifecycle,
        body=body,
        state=m.OutboxState.pending,
        not_before=not_before,
        created_at=now,
        updated_at=now,
    )
    try:
        with s.begin_nested():
            s.add(row)
            s.flush()
        outbox_id = row.id
    except IntegrityError:
        # Only reachable if someone reset the event by hand: the mail was enqueued before, keep that one.
        outbox_id = s.scalar(select(m.Outbox.id).where(m.Outbox.idempotency_key == key))
        if outbox_id is None:
            raise
    ev.outbox_id = outbox_id
    ev.state = m.LifecycleState.enqueued
    ev.skip_reason = None
    ev.updated_at = now
    return outbox_id


# ------------------------------------------------------------------------------------- sweep


@dataclass
class SweepResult:
    """What one sweep did; `reasons` counts why events were skipped or deferred."""

    selected: int = 0
    enqueued: int = 0
    awaiting_approval: int = 0
    skipped: int = 0
    deferred: int = 0
    failed: int = 0
    not_claimed: int = 0
    errors: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


def due_events_query(now: datetime, limit: int) -> Select[tuple[int]]:
    """Due events, oldest first: a range scan of ix_lifecycle_events_state_due, no join."""
    return (
        select(m.LifecycleEvent.id)
        .where(m.LifecycleEvent.state == m.LifecycleState.due, m.LifecycleEvent.due_at <= now)
        .order_by(m.LifecycleEvent.due_at)
        .limit(limit)
    )


def _sent_today(s: Session, account_id: int, config: LifecycleConfig, now: datetime) -> tuple[int, datetime]:
    """Lifecycle outbox rows of the account whose send time falls in the shop's current day; and the day's end.

    The range on (state, not_before) uses ix_outbox_state_not_before, so the count costs the day's rows.
    """
    start, end = rules.day_bounds(now, config.zone)
    used = s.scalar(
        select(func.count(m.Outbox.id)).where(
            m.Outbox.state.in_(CAP_STATES),
            m.Outbox.not_before >= start,
            m.Outbox.not_before < end,
            m.Outbox.account_id == account_id,
            m.Outbox.kind == m.OutboxKind.lifecycle,
        )
    )
    return int(used or 0), end


def _defer(ev: m.LifecycleEvent, until: datetime, now: datetime, note: str | None = None) -> None:
    ev.state = m.LifecycleState.due
    ev.due_at = until
    ev.skip_reason = note
    ev.updated_at = now


def process_event(engine: Engine | None, event_id: int, now: datetime, mailer: Mailer) -> tuple[str, str]:
    """Claim one due event and settle it in one transaction; returns (outcome, reason)."""
    with session_scope(engine) as s:
        claimed = s.execute(
            update(m.LifecycleEvent)
            .where(
                m.LifecycleEvent.id == event_id,
                m.LifecycleEvent.state == m.LifecycleState.due,
                m.LifecycleEvent.due_at <= now,
            )
            .values(state=m.LifecycleState.enqueued, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if claimed != 1:
            return "not-claimed", ""
        ev = s.get(m.LifecycleEvent, event_id, populate_existing=True)
        order = s.get(m.Order, ev.order_id)
        account = s.get(m.Account, order.account_id)
        kind = Kind(ev.kind)
        try:
            config = mailer.account(account).config
        except LifecycleConfigError as exc:
            _defer(ev, now + RETRY_LATER, now, f"waiting: invalid lifecycle settings: {exc}"[:2000])
            return "deferred", "invalid lifecycle settings"
        verdict = rules.evaluate(
            kind, order_facts(order, account.marketplace), exclusions(s, order), config, now
        )
        if verdict.outcome is rules.Outcome.skip:
            ev.state = m.LifecycleState.skipped
            ev.skip_reason = verdict.reason
            ev.updated_at = now
            return "skipped", verdict.reason
        if verdict.outcome is rules.Outcome.wait:
            assert verdict.until is not None
            _defer(ev, verdict.until, now)
            return "deferred", verdict.reason
        if verdict.mode is Mode.approval:
            ev.skip_reason = None  # parked: enqueued without an outbox row until an agent approves
            return "awaiting-approval", ""
        if config.daily_cap is not None:
            # Lock the account row: two sweeps racing for one account's last slot take turns.
            s.execute(select(m.Account.id).where(m.Account.id == account.id).with_for_update())
            used, day_end = _sent_today(s, account.id, config, now)
            if used >= config.daily_cap:
                _defer(ev, day_end, now)
                return "deferred", "daily cap reached"
        try:
            body = mailer.body(kind, order, account)
        except RenderError as exc:
            ev.state = m.LifecycleState.failed
            ev.skip_reason = f"render: {exc}"[:2000]
            ev.updated_at = now
            return "failed", "template failed to render"
        _write_outbox(s, ev, order, account, body, now, now)
        return "enqueued", ""


_COUNTERS = {
    "enqueued": "enqueued",
    "awaiting-approval": "awaiting_approval",
    "skipped": "skipped",
    "deferred": "deferred",
    "failed": "failed",
    "not-claimed": "not_claimed",
}


def sweep(
    engine: Engine | None,
    now: datetime,
    limit: int = 500,
    *,
    renderer: Renderer | None = None,
    shop_name: str | None = None,
) -> SweepResult:
    """Enqueue (or park for approval, defer, skip) up to `limit` due lifecycle events."""
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    result = SweepResult()
    with session_scope(engine) as s:
        ids = list(s.scalars(due_events_query(now, limit)))
    result.selected = len(ids)
    if not ids:
        return result
    mailer = Mailer.from_settings(renderer, shop_name)
    for event_id in ids:
        try:
            outcome, reason = process_event(engine, event_id, now, mailer)
        except Exception as exc:  # noqa: BLE001 - one bad event must not stop the sweep
            log.exception("lifecycle event %s: unexpected failure", event_id)
            result.errors += 1
            _retry_later(engine, event_id, now, f"waiting: {type(exc).__name__}: {exc}")
            continue
        setattr(result, _COUNTERS[outcome], getattr(result, _COUNTERS[outcome]) + 1)
        if reason:
            result.reasons[reason] += 1
    log.info(
        "lifecycle sweep: %s selected, %s enqueued, %s awaiting approval, %s skipped, %s deferred, %s failed",
        result.selected,
        result.enqueued,
        result.awaiting_approval,
        result.skipped,
        result.deferred,
        result.failed,
    )
    return result


def _retry_later(engine: Engine | None, event_id: int, now: datetime, note: str) -> None:
    with session_scope(engine) as s:
        s.execute(
            update(m.LifecycleEvent)
            .where(m.LifecycleEvent.id == event_id, m.LifecycleEvent.state == m.LifecycleState.due)
            .values(due_at=now + RETRY_LATER, skip_reason=note[:2000], updated_at=now)
        )


# ---------------------------------------------------------------------------------- approval


@dataclass(frozen=True)
class PendingApproval:
    """A lifecycle mail waiting for an agent, with the text that would go out."""

    event_id: int
    order_id: int
    order_external_id: str
    kind: Kind
    due_at: datetime
    preview: str


@dataclass(frozen=True)
class ApprovalResult:
    outcome: str  # "enqueued" or "skipped"
    outbox_id: int | None = None
    reason: str = ""


def pending_approvals(
    session: Session, account_id: int, *, renderer: Renderer | None = None, shop_name: str | None = None
) -> list[PendingApproval]:
    """Lifecycle mails of an account parked for approval (enqueued, no outbox row yet), oldest first."""
    mailer = Mailer.from_settings(renderer, shop_name)
    rows = session.execute(
        select(m.LifecycleEvent, m.Order)
        .join(m.Order, m.Order.id == m.LifecycleEvent.order_id)
        .where(
            m.LifecycleEvent.state == m.LifecycleState.enqueued,
            m.LifecycleEvent.outbox_id.is_(None),
            m.Order.account_id == account_id,
        )
        .order_by(m.LifecycleEvent.due_at, m.LifecycleEvent.id)
    ).all()
    account = session.get(m.Account, account_id)
    out = []
    for ev, order in rows:
        try:
            preview = mailer.body(Kind(ev.kind), order, account)
        except (RenderError, LifecycleConfigError) as exc:
            preview = f"(cannot render: {exc})"
        out.append(PendingApproval(ev.id, order.id, order.external_id, Kind(ev.kind), ev.due_at, preview))
    return out


def _awaiting(session: Session, event_id: int, now: datetime) -> m.LifecycleEvent:
    """Take an event awaiting approval (a conditional update: two agents cannot both take it)."""
    taken = session.execute(
        update(m.LifecycleEvent)
        .where(
            m.LifecycleEvent.id == event_id,
            m.LifecycleEvent.state == m.LifecycleState.enqueued,
            m.LifecycleEvent.outbox_id.is_(None),
        )
        .values(updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    ev = session.get(m.LifecycleEvent, event_id, populate_existing=True)
    if ev is None:
        raise LifecycleError(f"lifecycle event {event_id} does not exist")
    if taken != 1:
        raise LifecycleError(
            f"lifecycle event {event_id} is not awaiting approval (state {ev.state}, outbox {ev.outbox_id})"
        )
    return ev


def approve_lifecycle(
    session: Session,
    event_id: int,
    actor: str,
    *,
    now: datetime | None = None,
    renderer: Renderer | None = None,
    shop_name: str | None = None,
) -> ApprovalResult:
    """An agent approves a parked mail: re-check it, then write its outbox row in the caller's transaction.

    Quiet hours still hold (the row waits in the outbox until they end); a condition that changed
    since (paid, dispute, opt-out...) closes the event instead, with the reason.
    """
    now = now or utcnow()
    ev = _awaiting(session, event_id, now)
    order = session.get(m.Order, ev.order_id)
    account = session.get(m.Account, order.account_id)
    mailer = Mailer.from_settings(renderer, shop_name)
    kind = Kind(ev.kind)
    try:
        config = mailer.account(account).config
    except LifecycleConfigError as exc:
        raise LifecycleError(f"account {account.id}: invalid lifecycle settings: {exc}") from None
    verdict = rules.evaluate(
        kind, order_facts(order, account.marketplace), exclusions(session, order), config, now, approved=True
    )
    if verdict.outcome is rules.Outcome.skip:
        ev.state = m.LifecycleState.skipped
        ev.skip_reason = verdict.reason
        audit(
            session, actor, "lifecycle.skip", "lifecycle_event", ev.id, kind=kind.value, reason=verdict.reason
        )
        return ApprovalResult("skipped", reason=verdict.reason)
    not_before = verdict.until if verdict.outcome is rules.Outcome.wait and verdict.until else now
    try:
        body = mailer.body(kind, order, account)
    except RenderError as exc:
        raise LifecycleError(f"lifecycle event {event_id}: {exc}") from None
    outbox_id = _write_outbox(session, ev, order, account, body, not_before, now)
    audit(session, actor, "lifecycle.approve", "lifecycle_event", ev.id, kind=kind.value, outbox_id=outbox_id)
    return ApprovalResult("enqueued", outbox_id=outbox_id, reason=verdict.reason)


def reject_lifecycle(
    session: Session, event_id: int, actor: str, reason: str = "", *, now: datetime | None = None
) -> None:
    """An agent declines a parked mail: the event is closed and never sent."""
    now = now or utcnow()
    ev = _awaiting(session, event_id, now)
    ev.state = m.LifecycleState.skipped
    ev.skip_reason = f"rejected by {actor}" + (f": {reason}" if reason else "")
    audit(session, actor, "lifecycle.reject", "lifecycle_event", ev.id, kind=ev.kind, reason=reason)
