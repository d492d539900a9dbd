"""The sandbox marketplace: start-up, seeded data, phrase bank, IOP checks, faults, admin API, CLI."""

from __future__ import annotations

import string
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from typer.testing import CliRunner

from connectors.aliexpress import MSG_ADD, ORDER_LIST, SandboxConnector, sign
from connectors.base import ConnectorError, ErrorKind, RetryPolicy
from connectors.sandbox import SandboxAdmin, SandboxServer
from connectors.sandbox.phrases import LANGUAGES, PHRASES, SITUATION_STATES, SITUATION_WEIGHTS
from worker.cli.sandbox import app

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def sb():
    with SandboxServer(seed=1, port=0, speed=0, start=START) as server:
        yield server


def signed(sb: SandboxServer, method: str, **params: str) -> dict[str, str]:
    creds = sb.credentials()
    form = {
        "app_key": creds["app_key"],
        "method": method,
        "session": creds["access_token"],
        "timestamp": str(int(time.time() * 1000)),
        "sign_method": "sha256",
        **params,
    }
    form["sign"] = sign(creds["app_secret"], method, form)
    return form


def test_starts_well_under_a_second_on_an_ephemeral_port():
    began = time.monotonic()
    with SandboxServer(seed=1, port=0) as sb:
        assert httpx.get(f"{sb.url}/_sandbox/clock").status_code == 200
        assert sb.port > 0
    assert time.monotonic() - began < 10.0  # no fixed port to wait for, no sleeping start-up


def test_same_seed_same_world():
    texts = []
    for _ in range(2):
        with SandboxServer(seed=42, port=0, speed=0, start=START) as sb:
            sb.add_buyer_messages(15)
            sb.open_disputes(3)
            texts.append([(m["situation"], m["language"], m["content"]) for m in sb.messages()])
    assert texts[0] == texts[1] and len(texts[0]) >= 15


def test_phrase_bank_covers_every_situation_in_six_languages():
    assert set(LANGUAGES) == {"en", "es", "pt", "ru", "fr", "de"}
    assert set(PHRASES) == set(SITUATION_STATES) == set(SITUATION_WEIGHTS)
    fields = {"order", "item", "days"}
    for situation, by_language in PHRASES.items():
        assert set(by_language) == set(LANGUAGES), situation
        for language, phrasings in by_language.items():
            assert len(phrasings) >= 2, (situation, language)
            for text in phrasings:
                used = {name for _, name, _, _ in string.Formatter().parse(text) if name}
                assert used <= fields, (situation, language, text)


def test_every_situation_can_be_generated_with_fitting_order_facts(sb):
    for situation in PHRASES:
        sb.add_buyer_messages(1, situations=[situation])
    seen = {(m["situation"], m["language"]) for m in sb.messages() if m["situation"]}
    assert {s for s, _ in seen} == set(PHRASES)
    conn = SandboxConnector(sb.account_ref())
    orders = {}
    cursor, more = None, True
    while more:
        batch = conn.fetch("orders", cursor)
        orders.update({o.external_id: o for o in batch.rows})
        cursor, more = batch.cursor, batch.more
    by_situation = {m["situation"]: orders[m["order_id"]] for m in sb.messages() if m["situation"]}
    assert by_situation["payment"].status.value == "unpaid"
    assert by_situation["nr_not_shipped"].status.value == "paid"
    assert (
        by_situation["nr_in_transit"].status.value == "shipped"
        and by_situation["nr_in_transit"].protection_open
    )
    assert by_situation["nr_in_transit"].tracking_number


def test_many_messages_spread_over_languages(sb):
    sb.add_buyer_messages(120)
    languages = {m["language"] for m in sb.messages() if m["language"]}
    assert languages == set(LANGUAGES)


def test_wrong_signature_gets_the_iop_error_envelope(sb):
    form = signed(sb, ORDER_LIST, param_aeop_order_query='{"current_page":1,"page_size":1}')
    form["sign"] = "0" * 64
    body = httpx.post(f"{sb.url}/sync", data=form).json()
    assert body["type"] == "ISV" and body["code"] == "IncompleteSignature" and body["request_id"]


def test_a_good_signature_is_served(sb):
    form = signed(sb, ORDER_LIST, param_aeop_order_query='{"current_page":1,"page_size":1}')
    body = httpx.post(f"{sb.url}/sync", data=form).json()
    assert body["aliexpress_trade_seller_orderlist_get_response"]["result"]["success"] is True


def test_unknown_app_key_and_method(sb):
    form = signed(sb, "aliexpress.no.such.method")
    assert httpx.post(f"{sb.url}/sync", data=form).json()["code"] == "InvalidApiPath"
    form["app_key"] = "nope"
    assert httpx.post(f"{sb.url}/sync", data=form).json()["code"] == "InvalidAppKey"


def test_revoked_token_gets_illegal_access_token_and_cannot_refresh(sb):
    sb.faults.revoke_token(sb.accounts[0].name)
    form = signed(sb, ORDER_LIST, param_aeop_order_query="{}")
    assert httpx.post(f"{sb.url}/sync", data=form).json()["code"] == "IllegalAccessToken"
    conn = SandboxConnector(sb.account_ref())
    with pytest.raises(ConnectorError) as info:
        conn.refresh_access_token()
    assert info.value.kind is ErrorKind.ACCOUNT and info.value.code == "IllegalRefreshToken"


def test_17track_checks_the_token_and_the_batch_size(sb):
    url = f"{sb.url}/track/v2.2/register"
    assert httpx.post(url, json=[{"number": "X"}], headers={"17token": "bad"}).status_code == 401
    body = httpx.post(
        url, json=[{"number": str(n)} for n in range(41)], headers={"17token": "sandbox-17token"}
    ).json()
    assert body["code"] == -18010014


def test_throttle_and_5xx_faults(sb):
    sb.faults.set(ban_seconds=11)
    sb.faults.force("throttle")
    sb.faults.force("error_5xx")
    form = signed(sb, ORDER_LIST, param_aeop_order_query="{}")
    throttled = httpx.post(f"{sb.url}/sync", data=form)
    assert throttled.status_code == 429 and "ban will last for 11 more seconds" in throttled.json()["message"]
    failed = httpx.post(f"{sb.url}/sync", data=form)
    assert failed.status_code == 500 and failed.json()["type"] == "SYSTEM"
    assert httpx.post(f"{sb.url}/sync", data=form).status_code == 200
    assert sb.faults.snapshot()["injected"]["throttle"] == 1


def test_timeout_fault_answers_after_the_client_gave_up(sb):
    sb.faults.set(timeout_seconds=1.0)
    sb.faults.force("timeout", method=ORDER_LIST)
    conn = SandboxConnector(sb.account_ref(), http=httpx.Client(timeout=0.2), retry=RetryPolicy(attempts=1))
    with pytest.raises(ConnectorError) as info:
        conn.check_credentials()
    assert info.value.kind is ErrorKind.RETRYABLE and info.value.maybe_sent


def test_lost_answer_drops_the_connection_after_doing_the_work(sb):
    sb.add_buyer_messages(1)
    channel = next(iter(sb.accounts[0].channels.values()))
    sb.faults.force("lose_answer", method=MSG_ADD)
    create = f'{{"channel_id":"{channel.id}","buyer_id":"{channel.buyer.login_id}","content":"hi"}}'
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(f"{sb.url}/sync", data=signed(sb, MSG_ADD, create_param=create))
    (entry,) = sb.ledger.entries("message")
    assert entry["answer"] == "lost" and entry["content"] == "hi"


def test_advancing_the_clock_completes_orders(sb):
    sb.add_buyer_messages(1, situations=["nr_in_transit"])
    conn = SandboxConnector(sb.account_ref())
    first = conn.fetch("orders", None)
    (order,) = first.rows
    assert order.status.value == "shipped"
    sb.advance(days=120)
    # The next window (from where the last one ended) sees the order's completion.
    (later,) = [o for o in conn.fetch("orders", first.cursor).rows if o.external_id == order.external_id]
    assert later.status.value == "completed" and later.modified_at > order.modified_at


def test_fresh_orders_ship_later(sb):
    (order_id,) = sb.add_orders(1, fresh=True)
    order = sb.accounts[0].orders[order_id]
    assert sb.world.order_state(order, sb.now())[0] == "PLACE_ORDER_SUCCESS"
    sb.advance(days=5)
    assert sb.world.order_state(order, sb.now())[0] == "WAIT_BUYER_ACCEPT_GOODS"


def test_admin_api_drives_a_sandbox_from_another_process(sb):
    admin = SandboxAdmin(sb.url)
    made = admin.generate(orders=3, messages=4, disputes=1, account="shop2")
    assert len(made["orders"]) == 3 and len(made["messages"]) == 4 and len(made["disputes"]) == 1
    assert admin.state()["accounts"]["shop2"]["disputes"] == 1
    assert {a["name"] for a in admin.accounts()} == {"shop1", "shop2"}
    before = datetime.fromisoformat(admin.clock()["now"])
    after = datetime.fromisoformat(admin.advance(hours=6)["now"])
    assert after - before == timedelta(hours=6)
    assert admin.set_faults(throttle=0.5)["rates"]["throttle"] == 0.5
    assert admin.revoke_token("shop1")["revoked"] == ["shop1"]
    assert admin.set_faults(clear=True)["revoked"] == []
    assert admin.ledger() == [] and admin.duplicate_sends() == 0
    with pytest.raises(httpx.HTTPStatusError):
        admin.set_faults(lightning=0.1)


def test_bad_fault_settings_are_named(sb):
    with pytest.raises(ValueError, match="'lightning'"):
        sb.faults.set(lightning=0.5)
    with pytest.raises(ValueError, match="within 0..1"):
        sb.faults.set(throttle=2)


def test_background_traffic_generates_messages():
    with SandboxServer(seed=2, port=0) as sb:
        sb.start_traffic(messages_per_minute=600, orders_per_minute=0, disputes_per_minute=0)
        deadline = time.monotonic() + 3
        while not sb.messages() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sb.messages()


def test_cli_runs_and_stops_cleanly():
    result = CliRunner().invoke(
        app,
        [
            "--port",
            "0",
            "--orders",
            "5",
            "--messages",
            "2",
            "--disputes",
            "1",
            "--rate",
            "0",
            "--duration",
            "0.2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "sandbox marketplace at http://127.0.0.1:" in result.output
    assert '"app_secret"' in result.output and "sandbox stopped" in result.output
