"""Hostile input through the daemon's data path: stored byte for byte, decided, quoted literally, never lost.

The shared `pipeline` fixture ran every payload through sandbox -> SandboxConnector -> poll_stream ->
ingest -> triage_messages. Here each payload's own rows are checked; then a bad row in a page shows
what "nothing lost" means for a poll: the whole page is refused, the cursor stays, the next poll of
the mended page stores every row of it, once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import func, select

from connectors.aliexpress import MSG_DETAILS, ORDER_LIST, SandboxConnector
from connectors.base import Batch, NormOrder, RetryPolicy
from connectors.sandbox.server import SandboxServer
from tests.fakes import FakeConnector
from tests.hostile.payloads import ALL_TEXTS, TEXTS, blank
from tests.hostile.pipeline import NAME_LIMIT, NAME_MESSAGE, draft_of, stored_message
from tests.hostile.spoil import Spoiled as SpoiledIop
from tests.hostile.spoil import first_row, put, raw
from worker import models as m
from worker.crypto import set_credentials
from worker.db import session_scope
from worker.ingest import clean_text
from worker.polling import poll_stream
from worker.render import normalise
from worker.triage.types import OrderStatus

pytestmark = pytest.mark.timeout(60)

DECIDED = (m.TriageState.done, m.TriageState.skipped)


@pytest.mark.parametrize("name", sorted(ALL_TEXTS))
def test_buyer_text_is_stored_byte_for_byte(pipeline, name):
    stored = stored_message(pipeline, pipeline.message_ids[name])
    # Byte for byte, except the documented normalisation: NUL and lone surrogates become U+FFFD.
    assert stored.body == clean_text(ALL_TEXTS[name])
    assert stored.direction == m.MessageDirection.buyer


@pytest.mark.parametrize("name", sorted(n for n, t in ALL_TEXTS.items() if not blank(t)))
def test_buyer_message_is_decided_into_a_draft_that_does_not_echo_it(pipeline, name):
    external_id = pipeline.message_ids[name]
    assert stored_message(pipeline, external_id).triage_state in DECIDED
    draft = draft_of(pipeline, external_id)
    assert draft is not None
    reply = draft.original_text
    assert reply and "{{" not in reply and "{%" not in reply
    if len(ALL_TEXTS[name].strip()) >= 12:
        assert ALL_TEXTS[name].strip()[:200] not in reply


@pytest.mark.parametrize("name", sorted(n for n, t in ALL_TEXTS.items() if blank(t)))
def test_blank_buyer_message_is_settled_on_the_first_triage(pipeline, name):
    assert stored_message(pipeline, pipeline.message_ids[name]).triage_state in DECIDED


NAME_CASES = sorted(n for n, t in TEXTS.items() if len(t) <= NAME_LIMIT)


@pytest.mark.parametrize("name", NAME_CASES)
def test_hostile_buyer_name_is_stored_and_greeted_literally(pipeline, name):
    external_id = pipeline.name_message_ids[name]
    text = ALL_TEXTS[name]
    message = stored_message(pipeline, external_id)
    assert message.body == NAME_MESSAGE
    with session_scope(pipeline.engine) as s:
        conv = s.get(m.Conversation, message.conversation_id)
        order = s.get(m.Order, conv.order_id)
        assert order.buyer_name == clean_text(text)
    draft = draft_of(pipeline, external_id)
    assert draft is not None
    if blank(text):
        assert "Dear customer" in draft.original_text
    else:
        assert normalise(clean_text(text).strip()) in draft.original_text


# ------------------------------------------------------------------ a bad row in a page


@pytest.fixture
def sandbox():
    with SandboxServer(seed=31, port=0, orders=6, speed=0) as sb:
        sb.add_buyer_messages(4, sb.accounts[0].name)
        yield sb


@pytest.fixture
def account_id(engine, settings, sandbox):
    with session_scope(engine) as s:
        account = m.Account(
            marketplace="sandbox",
            name=sandbox.accounts[0].name,
            settings_json={"rate_per_second": 1000, "burst": 1000, "fetch_order_detail": False},
        )
        set_credentials(account, sandbox.credentials(account.name), settings.secret_key)
        s.add(account)
        s.flush()
        return account.id


def connector_for(sandbox, methods=(), spoil=None):
    transport = SpoiledIop(tuple(methods), spoil or (lambda body: body))
    ref = sandbox.account_ref(settings={"rate_per_second": 1000, "burst": 1000, "fetch_order_detail": False})
    conn = SandboxConnector(ref, http=httpx.Client(transport=transport), retry=RetryPolicy(attempts=1))
    return lambda account_id: conn


def cursor_row(engine, account_id, stream):
    with session_scope(engine) as s:
        return s.scalars(
            select(m.PollCursor).where(m.PollCursor.account_id == account_id, m.PollCursor.stream == stream)
        ).one()


def count(engine, model) -> int:
    with session_scope(engine) as s:
        return s.scalar(select(func.count()).select_from(model))


def drain(engine, account_id, stream, conns) -> None:
    for _ in range(50):
        result = poll_stream(account_id, stream, conns, engine=engine)
        assert result.status == "ok", result.error
        if not result.more:
            return
    raise AssertionError("never drained")


def test_a_bad_order_in_a_page_refuses_the_page_and_the_next_poll_stores_all_of_it(
    engine, sandbox, account_id
):
    nan_total = first_row("target_list", put(pay_amount={"amount": "NaN", "currency_code": "USD"}))
    refused = poll_stream(
        account_id, "orders", connector_for(sandbox, [ORDER_LIST], nan_total), engine=engine
    )
    assert refused.status == "error" and "pay_amount" in refused.error
    cur = cursor_row(engine, account_id, "orders")
    assert cur.cursor is None and cur.leased_until is None and "pay_amount" in cur.last_error
    assert count(engine, m.Order) == 0  # nothing half-stored: the good rows wait with the bad one
    # The marketplace mends the row: the same window is read again and every order is stored once.
    drain(engine, account_id, "orders", connector_for(sandbox))
    with session_scope(engine) as s:
        stored = sorted(s.scalars(select(m.Order.external_id)))
    assert stored == sorted(o.id for o in sandbox.world.visible_orders(sandbox.accounts[0], sandbox.now()))
    assert cursor_row(engine, account_id, "orders").last_error is None


def test_a_bad_message_in_a_page_refuses_the_page_and_the_next_poll_stores_all_of_it(
    engine, sandbox, account_id
):
    drain(engine, account_id, "orders", connector_for(sandbox))
    no_time = first_row("message_detail_list", put(gmt_create="the day after tomorrow"))
    refused = poll_stream(
        account_id, "messages", connector_for(sandbox, [MSG_DETAILS], no_time), engine=engine
    )
    assert refused.status == "error" and "gmt_create" in refused.error
    assert count(engine, m.Message) == 0
    drain(engine, account_id, "messages", connector_for(sandbox))
    expected = {msg["id"] for msg in sandbox.messages(sandbox.accounts[0].name)}
    with session_scope(engine) as s:
        assert set(s.scalars(select(m.Message.external_id))) == expected
    assert count(engine, m.Message) == len(expected)


def test_bad_utf8_in_one_message_costs_nothing_but_the_bad_bytes(engine, sandbox, account_id):
    drain(engine, account_id, "orders", connector_for(sandbox))
    spoil = raw(lambda content: content.replace(b'"content": "', b'"content": "\xff\xfeBAD ', 1))
    drain(engine, account_id, "messages", connector_for(sandbox, [MSG_DETAILS], spoil))
    with session_scope(engine) as s:
        bodies = list(s.scalars(select(m.Message.body)))
    assert len(bodies) == len(sandbox.messages(sandbox.accounts[0].name))
    # Documented normalisation (connectors: json_body): invalid bytes read as U+FFFD, the rest intact.
    assert sum(body.startswith("\ufffd\ufffdBAD ") for body in bodies) >= 1


def test_a_lone_surrogate_in_a_message_is_stored_as_a_replacement_character(engine, sandbox, account_id):
    drain(engine, account_id, "orders", connector_for(sandbox))
    spoil = raw(lambda content: content.replace(b'"content": "', b'"content": "\\ud800 ', 1))
    result = poll_stream(account_id, "messages", connector_for(sandbox, [MSG_DETAILS], spoil), engine=engine)
    assert result.status == "ok", result.error
    with session_scope(engine) as s:
        assert any(body.startswith("\ufffd ") for body in s.scalars(select(m.Message.body)))


class _OneOrder(FakeConnector):
    """A connector whose orders page holds one record the database refuses (what Amazon's parser
    produces from an OrderTotal.Amount of "12.345", see test_amazon_json.py)."""

    def fetch(self, stream, cursor):
        order = NormOrder(
            external_id="111-2223334-5556667",
            status=OrderStatus.shipped,
            total=Decimal("12.345"),
            currency="USD",
            modified_at=datetime(2026, 3, 1, tzinfo=UTC),
        )
        return Batch(rows=[order], cursor="next", more=False)


def test_a_record_the_database_refuses_is_a_poll_error_naming_it(engine, account_id):
    conn = _OneOrder(account_id)
    result = poll_stream(account_id, "orders", lambda _id: conn, engine=engine)
    assert result.status == "error" and "111-2223334-5556667" in (result.error or "")
    cur = cursor_row(engine, account_id, "orders")
    assert cur.leased_until is None and cur.last_error
