"""Hostile buyer text in the approval UI: escaped in every page, exact in the API, and a 1 MB message renders.

The drafts come from the shared `pipeline` (the real data path); the app is `create_app(settings)` on
that database, driven through FastAPI's TestClient as a user created with worker/users.py.
"""

from __future__ import annotations

import re
import time
import warnings
from html.parser import HTMLParser

import pytest
from markupsafe import escape

from tests.hostile.payloads import ALL_TEXTS, LONG_TEXTS, blank
from tests.hostile.pipeline import NAME_LIMIT, draft_of
from worker import users
from worker.db import session_scope
from worker.ingest import clean_text

pytestmark = pytest.mark.timeout(60)

USERNAME = "hostile-admin"
PASSWORD = "correct horse battery staple 42"
HTML_SPECIAL = set("<>&\"'")


class Markup(HTMLParser):
    """Every element and attribute a browser would build from the page (text stays text)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.foreign: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script" and not (values.get("src") or "").startswith("/static/"):
            self.foreign.append(f"<script {values}>")
        if tag in ("img", "iframe", "style", "object", "embed", "base"):
            self.foreign.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):  # (our templates use hx-* themselves: the escaping check covers those)
                self.foreign.append(f"{tag} {name}=")
            if name in ("href", "src", "action", "formaction") and (value or "").strip().lower().startswith(
                "javascript:"
            ):
                self.foreign.append(f"{tag} {name}={value}")


def foreign_markup(html: str) -> list[str]:
    """Elements or attributes that no template of ours writes: they could only come from data."""
    parser = Markup()
    parser.feed(html)
    parser.close()
    return parser.foreign


def _client(app):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx2.*")  # Starlette's note about httpx, not ours
        from fastapi.testclient import TestClient
    return TestClient(app, follow_redirects=False)


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match[1]


@pytest.fixture(scope="module")
def client(pipeline):
    from worker.web.app import create_app

    with session_scope(pipeline.engine) as s:
        if users.find_user(s, USERNAME) is None:
            users.create_user(s, USERNAME, PASSWORD, "admin", actor="test")
    with _client(create_app(pipeline.settings)) as browser:
        login = browser.post(
            "/login",
            data={
                "username": USERNAME,
                "password": PASSWORD,
                "csrf_token": _csrf(browser.get("/login").text),
                "next": "/",
            },
        )
        assert login.status_code == 303, login.text[:500]
        yield browser


@pytest.fixture(scope="module")
def api(pipeline):
    from worker.web.app import create_app

    with session_scope(pipeline.engine) as s:
        user = users.find_user(s, USERNAME) or users.create_user(s, USERNAME, PASSWORD, "admin", actor="test")
        _, token = users.create_token(s, user, "hostile", actor="test")
    with _client(create_app(pipeline.settings)) as browser:
        browser.headers["Authorization"] = f"Bearer {token}"
        yield browser


def assert_shown_escaped(html: str, text: str) -> None:
    assert str(escape(text)) in html
    if HTML_SPECIAL & set(text):
        assert text not in html, "the text appears unescaped"
    assert foreign_markup(html) == []


DECIDED = sorted(n for n, t in ALL_TEXTS.items() if not blank(t))


@pytest.mark.parametrize("name", DECIDED)
def test_draft_page_shows_the_buyer_message_escaped(pipeline, client, name):
    draft = draft_of(pipeline, pipeline.message_ids[name])
    started = time.monotonic()
    page = client.get(f"/drafts/{draft.id}")
    elapsed = time.monotonic() - started
    assert page.status_code == 200, page.text[:300]
    assert_shown_escaped(page.text, clean_text(ALL_TEXTS[name]))
    if name in LONG_TEXTS:
        assert elapsed < 5, f"a 1 MB message took {elapsed:.1f} s to render"


@pytest.mark.parametrize("name", sorted(n for n, t in ALL_TEXTS.items() if len(t) <= NAME_LIMIT))
def test_draft_page_shows_a_hostile_buyer_name_escaped(pipeline, client, name):
    draft = draft_of(pipeline, pipeline.name_message_ids[name])
    page = client.get(f"/drafts/{draft.id}")
    assert page.status_code == 200, page.text[:300]
    text = ALL_TEXTS[name]
    if not blank(text):
        assert_shown_escaped(page.text, clean_text(text))
    assert foreign_markup(page.text) == []


@pytest.mark.parametrize("name", DECIDED)
def test_api_returns_the_buyer_message_exactly(pipeline, api, name):
    draft = draft_of(pipeline, pipeline.message_ids[name])
    answer = api.get(f"/api/drafts/{draft.id}")
    assert answer.status_code == 200, answer.text[:300]
    assert answer.headers["content-type"].startswith("application/json")
    # Exactly as stored: the documented normalisation (NUL, lone surrogates -> U+FFFD) only.
    assert answer.json()["buyer_message"]["body"] == clean_text(ALL_TEXTS[name])


def test_every_queue_page_shows_the_hostile_drafts_escaped(client):
    shown = 0
    for number in range(1, 20):
        page = client.get(f"/?state=all&page={number}")
        assert page.status_code == 200, page.text[:300]
        assert foreign_markup(page.text) == []
        rows = page.text.count('class="row"')
        if rows == 0:
            break
        shown += rows
    assert shown >= len(DECIDED)
