"""Ingest: normalised connector records become rows, deduplicated on the marketplace's own ids.

Called inside the poll's transaction, so the rows and the stream cursor commit together. A
re-poll of an overlapping window changes nothing that did not change on the marketplace.
A batch is stored with a few statements per table (rows looked up by marketplace id in IN lists,
inserted together); a batch the database refuses is stored again record by record to name the culprit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import zip_longest
from typing import Any

from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.orm import Session, selectinload

from connectors.base import NormDispute, NormMessage, NormOrder, NormTracking
from worker import models as m
from worker.cases import latest_order_of_buyer

log = logging.getLogger(__name__)

# Marketplace ids per IN list: well inside SQLite's and PostgreSQL's bind-parameter limits.
CHUNK = 500

ORDER_FIELDS = (
    "status",
    "total",
    "currency",
    "buyer_id",
    "buyer_name",
    "buyer_country",
    "buyer_language",
    "paid_at",
    "shipped_at",
    "delivered_at",
    "completed_at",
    "cancelled_at",
    "shipping_method",
    "carrier",
    "tracking_number",
    "promised_delivery_days",
    "handling_days",
)
# Fields a later poll must not blank out when the marketplace omits them from a summary page.
STICKY = frozenset(
    {
        "buyer_country",
        "buyer_language",
        "buyer_name",
        "tracking_number",
        "shipping_method",
        "promised_delivery_days",
        "handling_days",
        "carrier",
    }
)


@dataclass
class IngestResult:
    """What a batch changed: ids the next steps (triage, lifecycle) care about."""

    orders: list[int] = field(default_factory=list)
    new_messages: list[int] = field(default_factory=list)
    new_disputes: list[int] = field(default_factory=list)
    duplicates: int = 0


def clean_text(value: str | None, limit: int | None = None) -> str | None:
    """Text every database stores: lone surrogates and NUL become U+FFFD; display fields are clipped."""
    if value is None:
        return None
    text = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace").replace("\x00", "\ufffd")
    return text[:limit] if limit is not None else text


# Column sizes of the free-text fields a marketplace fills in (see worker/models.py).
TEXT_LIMITS = {
    "buyer_name": 200,
    "buyer_id": 200,
    "shipping_method": 100,
    "carrier": 100,
    "tracking_number": 100,
}


def _apply_order(row: m.Order | None, account_id: int, o: NormOrder, now: datetime) -> tuple[m.Order, bool]:
    """Copy a marketplace order onto its row (a new one when `row` is None); True when anything changed."""
    created = row is None
    if row is None:
        row = m.Order(account_id=account_id, external_id=o.external_id, created_at=now)
    changed = created
    for name in ORDER_FIELDS:
        value = getattr(o, name)
        if isinstance(value, str):
            value = clean_text(value, TEXT_LIMITS.get(name))
        if value is None and name in STICKY:
            continue
        if getattr(row, name, None) != value:
            setattr(row, name, value)
            changed = True
    if o.raw:
        row.raw_json = o.raw
    if o.items and (created or not row.items):
        row.items = [
            m.OrderItem(
                sku=clean_text(i.sku, 100),
                title=clean_text(i.title) or "",
                quantity=i.quantity,
                price=i.price,
                currency=i.currency,
            )
            for i in o.items
        ]
        changed = True
    if changed:
        row.updated_at = now
    return row, changed


def _apply_dispute(row: m.Dispute, d: NormDispute, fresh: bool, now: datetime) -> bool:
    """Copy a marketplace dispute onto its row; True when it is new (or reopened) and needs a decision."""
    reopened = not fresh and row.closed_at is not None and d.is_open
    row.reason = clean_text(d.reason, 200) or ""
    row.status = d.status
    row.buyer_request = d.buyer_request
    row.amount = d.amount
    row.currency = d.currency
    row.opened_at = d.opened_at
    row.response_due_at = d.response_due_at
    row.closed_at = None if d.is_open else (d.closed_at or now)
    row.raw_json = d.raw or None
    row.updated_at = now
    if reopened:
        row.triage_state = m.TriageState.new
    if fresh and not d.is_open:
        row.triage_state = m.TriageState.skipped  # closed before we ever saw it: nothing to answer
    if (fresh and d.is_open) or reopened:
        row.dispatched_at = now
    return (fresh and d.is_open) or reopened


def add_tracking(s: Session, order: m.Order, t: NormTracking, now: datetime) -> m.TrackingSnapshot:
    """Record a carrier lookup; the order learns its delivery time from it."""
    snap = m.TrackingSnapshot(
        order_id=order.id,
        tracking_number=t.tracking_number,
        status=t.status.value,
        sub_status=t.sub_status,
        last_event_at=t.last_event_at,
        events_json=[
            {"time": e.time.isoformat(), "location": e.location, "description": e.description}
            for e in t.events
        ],
        fetched_at=now,
    )
    s.add(snap)
    order.tracking_checked_at = now
    if t.status.value == "delivered" and order.delivered_at is None:
        order.delivered_at = t.last_event_at or now
        if order.status == "shipped":
            order.status = "delivered"
        order.updated_at = now
    return snap


class IngestError(Exception):
    """A record the database refused; the message names it by the marketplace's id."""


def _cause(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    return str(inner).strip().splitlines()[0][:300] if str(inner).strip() else type(inner).__name__


def _name(rec: Any) -> str:
    return f"{type(rec).__name__.removeprefix('Norm').lower()} {getattr(rec, 'external_id', '?')}"


def ingest(
    s: Session,
    account_id: int,
    rows: Iterable[Any],
    now: datetime,
    on_order: Callable[[Session, m.Order, datetime], None] | None = None,
) -> IngestResult:
    """Store one batch of records of any stream; `on_order` runs for each changed order (lifecycle plan)."""
    records = list(rows)
    try:
        # The batch is stored with a few statements per table; a savepoint lets a refused batch be
        # undone and stored again record by record, which names the record the database refuses.
        with s.begin_nested():
            return _Batch(s, account_id, now, on_order).store(_runs(records))
    except Exception as exc:  # noqa: BLE001 - whatever failed is found again, and named, below
        log.warning("ingest of %d records failed (%s): storing them one by one", len(records), _cause(exc))
    batch = _Batch(s, account_id, now, on_order)
    for rec in records:
        try:
            batch.store([[rec]])
        except Exception as exc:
            raise IngestError(f"{_name(rec)}: {_cause(exc)}") from exc
    return batch.result


def _runs(records: list[Any]) -> list[list[Any]]:
    """Consecutive records of one type; an order seen again starts a new run, so each version is planned."""
    runs: list[list[Any]] = []
    seen: set[str] = set()
    for rec in records:
        if (
            runs
            and type(runs[-1][0]) is type(rec)
            and not (isinstance(rec, NormOrder) and rec.external_id in seen)
        ):
            runs[-1].append(rec)
        else:
            runs.append([rec])
            seen.clear()
        if isinstance(rec, NormOrder):
            seen.add(rec.external_id)
    return runs


def _chunks(values: Iterable[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    items = list(values)
    for i in range(0, len(items), size):
        yield items[i : i + size]


class _Batch:
    """One ingest call: rows looked up once per run by marketplace id, later records see earlier ones."""

    def __init__(
        self,
        s: Session,
        account_id: int,
        now: datetime,
        on_order: Callable[[Session, m.Order, datetime], None] | None,
    ) -> None:
        self.s = s
        self.account_id = account_id
        self.now = now
        self.on_order = on_order
        self.result = IngestResult()
        # By external id; None: looked up and not stored.
        self.orders: dict[str, m.Order | None] = {}
        self.order_ids: dict[str, int | None] = {}
        self.conversations: dict[str, m.Conversation | None] = {}
        self.disputes: dict[str, m.Dispute | None] = {}
        # (conversation external id, message external id) of every message stored or seen stored.
        self.messages: set[tuple[str, str]] = set()
        self.latest_of_buyer: dict[str, int | None] = {}

    def store(self, runs: list[list[Any]]) -> IngestResult:
        for run in runs:
            if isinstance(run[0], NormOrder):
                self._orders(run)
            elif isinstance(run[0], NormMessage):
                self._messages(run)
            elif isinstance(run[0], NormDispute):
                self._disputes(run)
            else:
                raise TypeError(f"cannot ingest {type(run[0]).__name__}")
        return self.result

    # orders ------------------------------------------------------------------

    def _load(self, cache: dict[str, Any], model: Any, keys: Iterable[str], *options: Any) -> None:
        """Fill `cache` with this account's `model` rows by external id, for keys not looked up yet (None: absent)."""
        missing = sorted(set(keys) - cache.keys())
        for chunk in _chunks(missing):
            query = select(model).where(model.account_id == self.account_id, model.external_id.in_(chunk))
            for row in self.s.scalars(query.options(*options)):
                cache[row.external_id] = row
        for k in missing:
            cache.setdefault(k, None)

    def _orders(self, run: list[NormOrder]) -> None:
        s = self.s
        self._load(self.orders, m.Order, (o.external_id for o in run), selectinload(m.Order.items))
        done: list[tuple[m.Order, bool, bool]] = []
        for o in run:
            row = self.orders[o.external_id]
            created = row is None
            row, changed = _apply_order(row, self.account_id, o, self.now)
            if created:
                s.add(row)
                self.orders[o.external_id] = row
            done.append((row, created, changed))
        s.flush()
        for row, _, _ in done:
            self.order_ids[row.external_id] = row.id
        self.latest_of_buyer.clear()  # a new order may be a buyer's latest
        linked = self._link([row for row, created, _ in done if created])
        # A brand-new order that no conversation named has no messages waiting for it: not asked.
        asked = {row.id for row, created, changed in done if changed and (not created or row.id in linked)}
        waiting = self._waiting(asked)
        for row, _, changed in done:
            if not changed:
                self.result.duplicates += 1
                continue
            self.result.orders.append(row.id)
            # Buyer messages that arrived before their order were waiting for it: decide them now.
            self.result.new_messages.extend(waiting.get(row.id, ()))
            if self.on_order is not None:
                self.on_order(s, row, self.now)

    def _link(self, created: list[m.Order]) -> set[int]:
        """Messages that arrived before their order wait for it: link their conversations now.

        A conversation naming the order goes to it; one naming no order goes to the first new order of
        its buyer. Returns the ids of the orders that were given a conversation.
        """
        if not created:
            return set()
        named = sorted({o.external_id for o in created})
        buyers = sorted({o.buyer_id for o in created if o.buyer_id})
        by_order: dict[str, list[int]] = {}
        by_buyer: dict[str, list[int]] = {}
        for ext_chunk, buyer_chunk in zip_longest(_chunks(named), _chunks(buyers), fillvalue=[]):
            unlinked = self.s.execute(
                select(m.Conversation.id, m.Conversation.order_external_id, m.Conversation.buyer_id).where(
                    m.Conversation.account_id == self.account_id,
                    m.Conversation.order_id.is_(None),
                    or_(
                        m.Conversation.order_external_id.in_(ext_chunk),
                        and_(
                            m.Conversation.order_external_id.is_(None),
                            m.Conversation.buyer_id.in_(buyer_chunk),
                        ),
                    ),
                )
            ).all()
            for conv_id, order_external_id, buyer_id in unlinked:
                if order_external_id is not None:
                    by_order.setdefault(order_external_id, []).append(conv_id)
                else:
                    by_buyer.setdefault(buyer_id, []).append(conv_id)
        target: dict[int, int] = {}  # conversation id -> order id
        for order in created:
            conv_ids = by_order.pop(order.external_id, [])
            if order.buyer_id:
                conv_ids += by_buyer.pop(order.buyer_id, [])
            target.update((conv_id, order.id) for conv_id in conv_ids)
        for chunk in _chunks(sorted(target)):
            self.s.execute(
                update(m.Conversation)
                # Still unlinked: a concurrent poll may have linked it since it was read.
                .where(m.Conversation.id.in_(chunk), m.Conversation.order_id.is_(None))
                .values(
                    order_id=case({conv_id: target[conv_id] for conv_id in chunk}, value=m.Conversation.id)
                )
                # Conversations this session holds learn their order (as the per-order updates' did).
                .execution_options(synchronize_session="fetch")
            )
        return set(target.values())

    def _waiting(self, order_ids: set[int]) -> dict[int, list[int]]:
        """New buyer messages in the orders' conversations (they could not be decided without them)."""
        out: dict[int, list[int]] = {}
        for chunk in _chunks(sorted(order_ids)):
            rows = self.s.execute(
                select(m.Conversation.order_id, m.Message.id)
                .join(m.Conversation, m.Conversation.id == m.Message.conversation_id)
                .where(m.Conversation.order_id.in_(chunk), m.Message.triage_state == m.TriageState.new)
                .order_by(m.Message.id)
            )
            for order_id, message_id in rows:
                out.setdefault(order_id, []).append(message_id)
        return out

    # messages ----------------------------------------------------------------

    def _load_order_ids(self, keys: list[str]) -> None:
        missing = [k for k in keys if k not in self.order_ids]
        for chunk in _chunks(missing):
            found = self.s.execute(
                select(m.Order.external_id, m.Order.id).where(
                    m.Order.account_id == self.account_id, m.Order.external_id.in_(chunk)
                )
            )
            self.order_ids.update((ext, order_id) for ext, order_id in found)
        for k in missing:
            self.order_ids.setdefault(k, None)

    def _load_conversations(self, run: list[NormMessage]) -> None:
        self._load(self.conversations, m.Conversation, (msg.conversation_external_id for msg in run))
        # Which of the run's messages the stored conversations already hold.
        names: dict[str, set[str]] = {}
        for msg in run:
            names.setdefault(msg.conversation_external_id, set()).add(msg.external_id)
        stored = {
            conv.id: key
            for key in names
            if (conv := self.conversations[key]) is not None and conv.id is not None
        }
        for conv_chunk in _chunks(sorted(stored)):
            wanted = sorted(set().union(*(names[stored[conv_id]] for conv_id in conv_chunk)))
            for name_chunk in _chunks(wanted):
                found = self.s.execute(
                    select(m.Message.conversation_id, m.Message.external_id).where(
                        m.Message.conversation_id.in_(conv_chunk), m.Message.external_id.in_(name_chunk)
                    )
                )
                self.messages.update((stored[conv_id], name) for conv_id, name in found)

    def _latest_order_of_buyer(self, buyer_id: str) -> int | None:
        if buyer_id not in self.latest_of_buyer:
            self.latest_of_buyer[buyer_id] = latest_order_of_buyer(self.s, self.account_id, buyer_id)
        return self.latest_of_buyer[buyer_id]

    def _conversation(self, msg: NormMessage) -> m.Conversation:
        conv = self.conversations[msg.conversation_external_id]
        if conv is None:
            conv = m.Conversation(
                account_id=self.account_id,
                external_id=msg.conversation_external_id,
                buyer_id=clean_text(msg.buyer_id, 200),
                buyer_name=clean_text(msg.buyer_name, 200),
                order_external_id=msg.order_external_id,
                created_at=self.now,
                updated_at=self.now,
            )
            self.s.add(conv)
            self.conversations[msg.conversation_external_id] = conv
        if msg.order_external_id and conv.order_id is None:
            conv.order_external_id = msg.order_external_id
            conv.order_id = self.order_ids[msg.order_external_id]
        elif conv.order_id is None and conv.buyer_id:
            # eBay conversations name a listing, not an order: the buyer's latest order is the best match.
            conv.order_id = self._latest_order_of_buyer(conv.buyer_id)
        if conv.last_message_at is None or msg.sent_at > conv.last_message_at:
            conv.last_message_at = msg.sent_at
        return conv

    def _messages(self, run: list[NormMessage]) -> None:
        s = self.s
        with s.no_autoflush:
            self._load_conversations(run)
            # Only a conversation without an order looks the order it names up.
            named = {
                msg.order_external_id
                for msg in run
                if msg.order_external_id
                and (
                    (conv := self.conversations[msg.conversation_external_id]) is None
                    or conv.order_id is None
                )
            }
            self._load_order_ids(sorted(named))
            fresh: list[tuple[NormMessage, m.Conversation]] = []
            for msg in run:
                conv = self._conversation(msg)
                key = (msg.conversation_external_id, msg.external_id)
                if key in self.messages:
                    self.result.duplicates += 1  # already stored (a re-polled page)
                    continue
                self.messages.add(key)
                fresh.append((msg, conv))
        s.flush()  # new conversations get their ids
        rows = []
        for msg, conv in fresh:
            # Only buyer messages are triaged: our own and the marketplace's are never answered (guard 5).
            state = m.TriageState.new if msg.direction == m.MessageDirection.buyer else m.TriageState.skipped
            rows.append(
                m.Message(
                    conversation_id=conv.id,
                    external_id=msg.external_id,
                    direction=msg.direction,
                    body=clean_text(msg.body) or "",
                    sent_at=msg.sent_at,
                    triage_state=state,
                    created_at=self.now,
                    # The poll enqueues triage for it as soon as this batch commits.
                    dispatched_at=self.now if state == m.TriageState.new else None,
                )
            )
        s.add_all(rows)
        s.flush()
        self.result.new_messages.extend(row.id for row in rows if row.triage_state == m.TriageState.new)

    # disputes ----------------------------------------------------------------

    def _disputes(self, run: list[NormDispute]) -> None:
        s = self.s
        self._load_order_ids(sorted({d.order_external_id for d in run}))
        self._load(self.disputes, m.Dispute, (d.external_id for d in run))
        decide: list[m.Dispute] = []
        for d in run:
            order_id = self.order_ids[d.order_external_id]
            if order_id is None:
                continue  # the orders stream has not delivered its order yet; the overlap brings it back
            row = self.disputes[d.external_id]
            fresh = row is None
            if row is None:
                row = m.Dispute(
                    account_id=self.account_id,
                    order_id=order_id,
                    external_id=d.external_id,
                    created_at=self.now,
                )
                s.add(row)
                self.disputes[d.external_id] = row
            if _apply_dispute(row, d, fresh, self.now):
                decide.append(row)
        s.flush()
        self.result.new_disputes.extend(row.id for row in decide)
