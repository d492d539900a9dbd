"""The approval queue in a real browser: Debian's Chromium, headless, driven by Playwright.

One server (uvicorn in a thread, ephemeral port on 127.0.0.1) and one browser serve the whole module;
each test gets its own browser context (cookies) and works on drafts no other test touches. A failing
test leaves a screenshot in test-artifacts/.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.fast import web_world as ww
from worker import db as dbm
from worker import models as m
from worker import users as um
from worker.db import session_scope
from worker.settings import SOURCE_ROOT, load_settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = SOURCE_ROOT / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: apt-get install chromium"),
]


class Live:
    """The running app: its URL, database engine and seeded world."""

    def __init__(self, url: str, engine, world: ww.World) -> None:
        self.url = url
        self.engine = engine
        self.world = world

    def draft(self, key: str) -> m.Draft:
        with session_scope(self.engine) as s:
            return s.get(m.Draft, self.world.drafts[key])


@pytest.fixture(scope="module")
def live(tmp_path_factory, _migrated_sqlite) -> Iterator[Live]:
    import uvicorn

    data_dir = tmp_path_factory.mktemp("browser") / "data"
    data_dir.mkdir()
    shutil.copyfile(_migrated_sqlite, data_dir / "sellerdesk.db")
    settings = load_settings(_env_file=None, data_dir=data_dir)
    # The module's own engine: the per-test fixtures dispose the shared ones between tests.
    engine = dbm.make_engine(settings.database_url)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(um, "_hasher", ww.FAST_HASHER)
        world = ww.build_world(engine)
        with session_scope(engine) as s:
            for key in ("bulk-1", "bulk-2", "keys"):
                ww.add_case(s, world, key, "A", buyer=f"Buyer {key}", created=ww.T0 - timedelta(hours=8))
        app = ww.make_app(settings)
        app.state.engine = engine
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield Live(f"http://127.0.0.1:{port}", engine, world)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            engine.dispose()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live, request):
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    current = context.new_page()
    current.set_default_timeout(5000)
    dialogs: list[str] = []
    current.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    current.dialogs = dialogs
    failed_before = request.session.testsfailed
    yield current
    # The call phase's report is counted before teardown runs: a new failure means this test failed.
    if request.session.testsfailed > failed_before:
        ARTIFACTS.mkdir(exist_ok=True)
        current.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def log_in(page, live: Live, username: str) -> None:
    page.goto(f"{live.url}/login")
    page.fill("#username", username)
    page.fill("#password", ww.PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live.url}/")


def row_ids(page) -> list[int]:
    return [
        int(x) for x in page.locator("#queue-rows tr.row").evaluate_all("rows => rows.map(r => r.dataset.id)")
    ]


def test_log_in_and_see_the_queue(page, live):
    page.goto(f"{live.url}/")
    assert page.url.startswith(f"{live.url}/login")
    page.fill("#username", "agent")
    page.fill("#password", "wrong password")
    page.click("button[type=submit]")
    assert "Wrong username or password" in page.locator(".alert-error").inner_text()
    log_in(page, live, "agent")
    ids = row_ids(page)
    assert ids[0] == live.world.drafts["dispute"] and live.world.drafts["other-shop"] not in ids
    assert page.locator("#pending-total").inner_text() == str(len(ids))


def test_approve(page, live):
    log_in(page, live, "agent")
    page.goto(f"{live.url}/drafts/{live.world.drafts['plain']}")
    page.click("#approve-button")
    page.wait_for_selector("#flash")
    assert "approved" in page.locator("#flash").inner_text()
    draft = live.draft("plain")
    assert draft.state == "approved" and draft.edited_text is None
    # The next draft of the queue is open now.
    assert re.search(r"/drafts/\d+$", page.url) and page.url != f"{live.url}/drafts/{draft.id}"


def test_edit_then_approve(page, live):
    log_in(page, live, "agent")
    page.goto(f"{live.url}/drafts/{live.world.drafts['second']}")
    page.fill("#reply", "Hola Maria,\nsu pedido ya salió.")
    assert page.locator("#edit-state").inner_text() == "edited"
    page.click("#approve-button")
    page.wait_for_selector("#flash")
    assert live.draft("second").edited_text == "Hola Maria,\nsu pedido ya salió."


def test_reject(page, live):
    log_in(page, live, "agent")
    page.goto(f"{live.url}/drafts/{live.world.drafts['forbidden']}")
    page.fill("#reject-reason", "buyer already got a refund")
    page.click("#reject-button")
    page.wait_for_selector("#flash")
    draft = live.draft("forbidden")
    assert draft.state == "rejected" and draft.reject_reason == "buyer already got a refund"


def test_bulk_approve(page, live):
    log_in(page, live, "agent")
    assert page.locator("#bulk-approve").is_disabled()
    for key in ("bulk-1", "bulk-2"):
        page.check(f'#queue-rows input[value="{live.world.drafts[key]}"]')
    assert page.locator("#selected-count").inner_text() == "2"
    page.click("#bulk-approve")
    page.wait_for_selector("#flash")
    assert "Approved 2 drafts" in page.locator("#flash").inner_text()
    assert live.draft("bulk-1").state == "approved" and live.draft("bulk-2").state == "approved"
    assert live.world.drafts["bulk-1"] not in row_ids(page)


def test_keyboard_shortcuts(page, live):
    log_in(page, live, "agent")
    ids = row_ids(page)
    target = ids.index(live.world.drafts["keys"])
    assert page.locator("#queue-rows tr.current").get_attribute("data-id") == str(ids[0])
    for _ in range(target):
        page.keyboard.press("j")
    page.keyboard.press("k")
    page.keyboard.press("j")
    assert page.locator("#queue-rows tr.current").get_attribute("data-id") == str(live.world.drafts["keys"])
    page.keyboard.press("?")
    assert page.locator("#help").is_visible()
    page.keyboard.press("Escape")
    assert not page.locator("#help").is_visible()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"/drafts/{live.world.drafts['keys']}$"))
    page.keyboard.press("e")
    assert page.evaluate("document.activeElement.id") == "reply"
    page.keyboard.press("End")
    page.keyboard.type(" Thanks!")
    page.keyboard.press("Escape")
    page.keyboard.press("r")
    assert page.evaluate("document.activeElement.id") == "reject-reason"
    page.keyboard.press("Escape")
    page.keyboard.press("a")
    page.wait_for_selector("#undo-button")
    draft = live.draft("keys")
    assert draft.state == "approved" and draft.edited_text.endswith(" Thanks!")
    # u: undo through htmx, in place.
    page.keyboard.press("u")
    page.wait_for_selector("#flash.flash-ok >> text=Sending cancelled")
    assert live.draft("keys").state == "pending"


def test_money_action_then_reply(page, live):
    log_in(page, live, "agent")
    page.goto(f"{live.url}/drafts/{live.world.drafts['coupon']}")
    assert page.locator("#approve-button").is_disabled()
    card = page.locator(f'[data-action-id="{live.world.actions["coupon:coupon"]}"]')
    card.locator("button", has_text="Approve action").click()
    page.wait_for_selector("#actions-panel .alert-error")
    assert "confirmation" in page.locator("#actions-panel .alert-error").inner_text()
    card = page.locator(f'[data-action-id="{live.world.actions["coupon:coupon"]}"]')
    card.locator('input[name="confirm"]').check()
    card.locator("button", has_text="Approve action").click()
    page.wait_for_selector("#actions-panel .alert-ok")
    # The reply gate opened in the same swap, and the reply text survived it.
    assert page.locator("#approve-button").is_enabled()
    page.click("#approve-button")
    page.wait_for_selector("#flash")
    assert live.draft("coupon").state == "approved"


def test_script_in_a_message_is_shown_as_text(page, live):
    log_in(page, live, "agent")
    page.goto(f"{live.url}/drafts/{live.world.drafts['script']}")
    assert page.locator("#buyer-message").inner_text() == ww.SCRIPT_MESSAGE
    assert (
        page.locator("#buyer-message b").count() == 0 and page.locator("#buyer-message script").count() == 0
    )
    page.goto(f"{live.url}/")
    assert "<script>alert('pwned')</script>" in page.locator("#queue-rows").inner_text()
    assert page.dialogs == []


def test_a_user_is_kept_out_of_another_accounts_drafts(page, live):
    log_in(page, live, "agent-b")
    assert row_ids(page) == [live.world.drafts["other-shop"]]
    response = page.goto(f"{live.url}/drafts/{live.world.drafts['dispute']}")
    assert response.status == 404 and "Dmitri" not in page.content()
    api = page.request.get(f"{live.url}/api/drafts/{live.world.drafts['dispute']}")
    assert api.status == 404


def test_a_csrf_less_post_is_refused(page, live):
    log_in(page, live, "agent")
    draft_id = live.world.drafts["script"]
    status = page.evaluate(
        """async (id) => {
            const body = new URLSearchParams({reason: "forged"});
            const response = await fetch(`/drafts/${id}/reject`, {method: "POST", body});
            return response.status;
        }""",
        draft_id,
    )
    assert status == 403
    api_status = page.evaluate(
        "async (id) => (await fetch(`/api/drafts/${id}/approve`, {method: 'POST'})).status", draft_id
    )
    assert api_status == 403
    assert live.draft("script").state == "pending"
    with session_scope(live.engine) as s:
        assert s.scalar(select(m.Outbox).where(m.Outbox.draft_id == draft_id)) is None
