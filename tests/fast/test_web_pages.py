"""The HTML pages: login, sessions, CSRF on every form, throttling, escaping, and each form's effect."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select

from tests.fast import web_world as ww
from worker import models as m
from worker import users as um
from worker.db import session_scope
from worker.web import pages
from worker.web.auth import LOGIN_MAX_FAILURES, SESSION_COOKIE


@pytest.fixture
def world(engine, monkeypatch):
    monkeypatch.setattr(um, "_hasher", ww.FAST_HASHER)
    monkeypatch.setattr(um, "_dummy_hash", None)
    return ww.build_world(engine)


@pytest.fixture
def clock():
    return ww.Clock()


@pytest.fixture
def app(settings, world, clock):
    return ww.make_app(settings, clock)


@pytest.fixture
def client(app):
    return ww.make_client(app, follow_redirects=False)


def page_routes(method: str) -> list[str]:
    return sorted(
        route.path for route in pages.router.routes if isinstance(route, APIRoute) and method in route.methods
    )


def fill(path: str, world: ww.World) -> str:
    return (
        path.replace("{draft_id}", str(world.drafts["plain"]))
        .replace("{action_id}", str(world.actions["coupon:coupon"]))
        .replace("{user_id}", str(world.users["agent"]))
    )


def state_of(engine, draft_id: int) -> str:
    with session_scope(engine) as s:
        return s.get(m.Draft, draft_id).state


# Login, sessions, throttling.


def test_pages_send_strangers_to_the_login_page(client, world):
    for path in page_routes("GET"):
        if path == "/login":
            continue
        response = client.get(fill(path, world) + "?state=all")
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=%2F"), path
    assert "/" in page_routes("GET") and "/drafts/{draft_id}" in page_routes("GET")


def test_every_form_post_without_login_is_401(client, world, engine):
    posts = [p for p in page_routes("POST") if p != "/login"]
    assert {"/drafts/{draft_id}/approve", "/bulk-approve", "/actions/{action_id}/approve", "/users"} <= set(
        posts
    )
    for path in posts:
        response = client.post(fill(path, world), data={"reason": "x", "draft_ids": world.drafts["plain"]})
        assert response.status_code == 401, path
    assert state_of(engine, world.drafts["plain"]) == "pending"


def test_every_form_post_without_the_csrf_token_is_403(client, world, engine):
    ww.login(client, "admin")
    for path in page_routes("POST"):
        data = {"reason": "x", "role": "admin", "draft_ids": world.drafts["plain"], "username": "admin"}
        response = client.post(fill(path, world), data=data)
        assert response.status_code == 403, path
        forged = client.post(fill(path, world), data={**data, "csrf_token": "forged"})
        assert forged.status_code == 403, path
    assert state_of(engine, world.drafts["plain"]) == "pending"
    assert ww.count(engine, m.Outbox) == 0
    with session_scope(engine) as s:
        assert um.get_user(s, "agent").role == "agent"


def test_login_and_logout(client, world, engine):
    page = client.get("/login?next=/dashboard")
    assert page.status_code == 200 and 'name="next" value="/dashboard"' in page.text
    csrf = ww.csrf_in(page.text)
    response = client.post(
        "/login",
        data={"username": "Agent", "password": ww.PASSWORD, "csrf_token": csrf, "next": "/dashboard"},
    )
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http in the test
    # The session after login has a new CSRF token: one planted before login is worthless.
    assert ww.csrf_in(client.get("/").text) != csrf
    home = client.get("/")
    assert home.status_code == 200 and "agent · agent" in home.text
    logout = client.post("/logout", data={"csrf_token": ww.csrf_in(home.text)})
    assert logout.status_code == 303 and logout.headers["location"] == "/login"
    assert client.get("/").status_code == 303
    with session_scope(engine) as s:
        actions = [a.action for a in s.scalars(select(m.AuditLog).where(m.AuditLog.object_type == "login"))]
    assert actions == ["login.success"]


def test_session_cookie_is_secure_over_https(app, world):
    client = ww.make_client(app, base_url="https://queue.example", follow_redirects=False)
    page = client.get("/login")
    assert "Secure" in page.headers["set-cookie"]
    response = client.post(
        "/login", data={"username": "agent", "password": ww.PASSWORD, "csrf_token": ww.csrf_in(page.text)}
    )
    assert response.status_code == 303 and "Secure" in response.headers["set-cookie"]


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"]
)
def test_login_only_returns_to_local_pages(client, world, target):
    page = client.get("/login")
    response = client.post(
        "/login",
        data={
            "username": "agent",
            "password": ww.PASSWORD,
            "csrf_token": ww.csrf_in(page.text),
            "next": target,
        },
    )
    assert response.headers["location"] == "/"


def test_login_form_needs_its_csrf_token(client, world):
    response = client.post("/login", data={"username": "agent", "password": ww.PASSWORD})
    assert response.status_code == 403 and "expired" in response.text
    assert client.get("/").status_code == 303


def test_wrong_password_then_throttled(client, world, engine, clock, app):
    csrf = ww.csrf_in(client.get("/login").text)
    for _ in range(LOGIN_MAX_FAILURES):
        wrong = client.post(
            "/login", data={"username": "agent", "password": "nope nope nope", "csrf_token": csrf}
        )
        assert wrong.status_code == 401 and "Wrong username or password" in wrong.text
    # Even the right password is refused now, for this name from this address.
    blocked = client.post("/login", data={"username": "agent", "password": ww.PASSWORD, "csrf_token": csrf})
    assert blocked.status_code == 429 and "Too many failed logins" in blocked.text
    # Another address is not blocked.
    other = ww.make_client(app, client=("10.9.8.7", 4000), follow_redirects=False)
    ww.login(other, "agent")
    # Nor another user from the same address.
    ww.login(ww.make_client(app, follow_redirects=False), "super")
    # After the window, the first address may try again.
    clock.advance(minutes=16)
    ok = client.post("/login", data={"username": "agent", "password": ww.PASSWORD, "csrf_token": csrf})
    assert ok.status_code == 303
    assert ww.count(engine, m.AuditLog, m.AuditLog.action == "login.failure") == LOGIN_MAX_FAILURES


def test_unknown_user_is_throttled_too(client, world):
    csrf = ww.csrf_in(client.get("/login").text)
    statuses = [
        client.post(
            "/login", data={"username": "ghost", "password": "whatever1234", "csrf_token": csrf}
        ).status_code
        for _ in range(LOGIN_MAX_FAILURES + 1)
    ]
    assert statuses == [401] * LOGIN_MAX_FAILURES + [429]


def test_password_change_ends_other_sessions(client, world, engine):
    ww.login(client, "agent")
    assert client.get("/").status_code == 200
    with session_scope(engine) as s:
        um.set_password(s, um.get_user(s, "agent"), "a brand new password", actor="test")
    assert client.get("/").status_code == 303


def test_disabled_user_loses_the_session(client, world, engine):
    ww.login(client, "agent")
    with session_scope(engine) as s:
        um.set_active(s, um.get_user(s, "agent"), False, actor="test")
    assert client.get("/").status_code == 303


def test_a_forged_session_cookie_is_ignored(client, world):
    client.cookies.set(SESSION_COOKIE, '{"c": "x", "u": 1}')
    assert client.get("/").status_code == 303


# The queue and the draft page.


def test_queue_shows_only_my_accounts_with_escaped_text(client, world):
    ww.login(client, "agent")
    page = client.get("/")
    assert page.status_code == 200
    ids = [int(x) for x in re.findall(r'<tr class="row" data-id="(\d+)"', page.text)]
    order = ["dispute", "plain", "forbidden", "second", "script", "coupon"]
    assert ids == [world.drafts[k] for k in order]
    assert "Bob" not in page.text and "shop-b" not in page.text
    assert (
        "<script>alert" not in page.text
        and "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in page.text
    )
    assert "dispute in 20 h" in page.text


def test_queue_filters_and_bad_filter(client, world):
    ww.login(client, "admin")
    page = client.get("/?intent=quality_issue")
    ids = [int(x) for x in re.findall(r'data-id="(\d+)"', page.text)]
    assert ids == [world.drafts["coupon"]]
    assert 'class="on" data-facet="intent" data-value="quality_issue"' in page.text
    assert client.get("/?state=nonsense").status_code == 422


def test_draft_page_shows_everything_escaped(client, world):
    ww.login(client, "agent")
    page = client.get(f"/drafts/{world.drafts['script']}")
    assert page.status_code == 200
    text = page.text
    assert "<script>alert" not in text and "<b>bold</b>" not in text
    assert (
        "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt; &lt;b&gt;bold&lt;/b&gt; &amp; where is my parcel?"
        in text
    )
    for fact in (
        "Arrived at hub",
        "Frankfurt",
        "SKU-script",
        "tracking in_transit",
        "90%",
        "not_received/in_transit",
    ):
        assert fact in text, fact
    assert text.count("<script") == 2  # htmx and app.js, nothing else


def test_draft_of_another_account_is_404(client, world):
    ww.login(client, "agent")
    response = client.get(f"/drafts/{world.drafts['other-shop']}")
    assert response.status_code == 404 and "Bob" not in response.text
    assert client.get("/drafts/99999").status_code == 404


def test_approve_form_goes_to_the_next_draft_and_offers_undo(client, world, engine):
    csrf = ww.login(client, "agent")
    response = client.post(f"/drafts/{world.drafts['plain']}/approve", data={"csrf_token": csrf})
    assert response.status_code == 303
    # The next draft in urgency order after "plain" is "forbidden".
    assert response.headers["location"] == f"/drafts/{world.drafts['forbidden']}"
    following = client.get(response.headers["location"])
    assert f"Draft #{world.drafts['plain']} approved" in following.text
    assert f'hx-post="/drafts/{world.drafts["plain"]}/undo"' in following.text
    # The flash shows once.
    assert "approved; it goes out" not in client.get(response.headers["location"]).text
    undo = client.post(
        f"/drafts/{world.drafts['plain']}/undo", data={"csrf_token": csrf}, headers={"HX-Request": "true"}
    )
    assert undo.status_code == 200 and "Sending cancelled" in undo.text and 'id="flash"' in undo.text
    assert state_of(engine, world.drafts["plain"]) == "pending"
    too_late = client.post(
        f"/drafts/{world.drafts['plain']}/undo", data={"csrf_token": csrf}, headers={"HX-Request": "true"}
    )
    assert too_late.status_code == 200 and "flash-error" in too_late.text


def test_edit_then_approve_and_send_now(client, world, engine, clock):
    csrf = ww.login(client, "agent")
    draft_id = world.drafts["second"]
    response = client.post(
        f"/drafts/{draft_id}/approve?language=es",
        data={"csrf_token": csrf, "edited_text": "Hola Maria, ya salió.", "send_now": "1"},
    )
    assert response.status_code == 303 and response.headers["location"] == "/?language=es"
    with session_scope(engine) as s:
        draft = s.get(m.Draft, draft_id)
        out = s.scalar(select(m.Outbox).where(m.Outbox.draft_id == draft_id))
        assert draft.edited_text == "Hola Maria, ya salió." and out.body == draft.edited_text
        assert out.not_before == clock.t


def test_refused_approve_shows_the_reason_and_keeps_the_edit(client, world, engine):
    csrf = ww.login(client, "agent")
    draft_id = world.drafts["dispute"]
    response = client.post(f"/drafts/{draft_id}/approve", data={"csrf_token": csrf, "edited_text": "My edit"})
    assert response.status_code == 409
    assert "money action" in response.text and ">My edit</textarea>" in response.text
    assert state_of(engine, draft_id) == "pending"


def test_reject_form(client, world, engine):
    csrf = ww.login(client, "agent")
    draft_id = world.drafts["plain"]
    missing = client.post(f"/drafts/{draft_id}/reject", data={"csrf_token": csrf, "reason": " "})
    assert missing.status_code == 422 and "give a reason" in missing.text
    done = client.post(f"/drafts/{draft_id}/reject", data={"csrf_token": csrf, "reason": "duplicate"})
    assert done.status_code == 303
    assert state_of(engine, draft_id) == "rejected"


def test_snooze_form(client, world, engine, clock):
    csrf = ww.login(client, "agent")
    draft_id = world.drafts["plain"]
    assert client.post(f"/drafts/{draft_id}/snooze", data={"csrf_token": csrf, "hours": 0}).status_code == 422
    assert (
        client.post(f"/drafts/{draft_id}/snooze", data={"csrf_token": csrf, "hours": 24}).status_code == 303
    )
    with session_scope(engine) as s:
        draft = s.get(m.Draft, draft_id)
        assert draft.state == "snoozed" and draft.snoozed_until == clock.t + timedelta(hours=24)


def test_queue_shortcut_approve_returns_to_the_queue(client, world, engine):
    csrf = ww.login(client, "agent")
    response = client.post(
        f"/drafts/{world.drafts['plain']}/approve", data={"csrf_token": csrf, "return_to": "queue"}
    )
    assert response.status_code == 303 and response.headers["location"] == "/"
    refused = client.post(
        f"/drafts/{world.drafts['dispute']}/approve", data={"csrf_token": csrf, "return_to": "queue"}
    )
    assert refused.status_code == 303
    assert "money action" in client.get("/").text


def test_bulk_approve_form(client, world, engine):
    csrf = ww.login(client, "agent")
    ids = [world.drafts[k] for k in ("plain", "second", "dispute")]
    response = client.post("/bulk-approve", data={"csrf_token": csrf, "draft_ids": ids})
    assert response.status_code == 303
    page = client.get("/")
    assert "Approved 2 drafts" in page.text and f"#{world.drafts['dispute']}" in page.text
    assert [state_of(engine, i) for i in ids] == ["approved", "approved", "pending"]
    assert client.post("/bulk-approve", data={"csrf_token": csrf}).status_code == 303


def test_money_action_cards(client, world, engine, app):
    csrf = ww.login(client, "agent")
    action_id = world.actions["coupon:coupon"]
    htmx = {"HX-Request": "true"}
    page = client.get(f"/drafts/{world.drafts['coupon']}")
    assert "I confirm this coupon of 2.00 USD" in page.text and 'id="approve-button" disabled' in page.text
    unconfirmed = client.post(f"/actions/{action_id}/approve", data={"csrf_token": csrf}, headers=htmx)
    assert unconfirmed.status_code == 200 and "tick the confirmation" in unconfirmed.text
    confirmed = client.post(
        f"/actions/{action_id}/approve", data={"csrf_token": csrf, "confirm": "1"}, headers=htmx
    )
    assert confirmed.status_code == 200 and "coupon approved" in confirmed.text
    # The reply gate is open again in the same answer (htmx swaps it out of band).
    assert 'id="approve-button"' in confirmed.text and 'id="approve-button" disabled' not in confirmed.text
    # Without htmx: a redirect back to the draft, or the page with the error and its status.
    over_cap = client.post(
        f"/actions/{world.actions['dispute:refund_full']}/approve", data={"csrf_token": csrf, "confirm": "1"}
    )
    assert over_cap.status_code == 403 and "higher role" in over_cap.text
    rejected = client.post(
        f"/actions/{world.actions['forbidden:refund_partial']}/reject", data={"csrf_token": csrf}
    )
    assert rejected.status_code == 303 and rejected.headers["location"].endswith("#actions")
    other = ww.make_client(app, follow_redirects=False)
    hidden = other.post(
        f"/actions/{world.actions['coupon:coupon']}/reject", data={"csrf_token": ww.login(other, "agent-b")}
    )
    assert hidden.status_code == 404


def test_forbidden_refund_form_asks_for_the_override(client, world, engine):
    csrf = ww.login(client, "super")
    action_id = world.actions["forbidden:refund_partial"]
    page = client.get(f"/drafts/{world.drafts['forbidden']}")
    assert 'name="override_reason"' in page.text
    refused = client.post(f"/actions/{action_id}/approve", data={"csrf_token": csrf, "confirm": "1"})
    assert refused.status_code == 422
    ok = client.post(
        f"/actions/{action_id}/approve", data={"csrf_token": csrf, "confirm": "1", "override_reason": "VIP"}
    )
    assert ok.status_code == 303
    history = client.get(f"/drafts/{world.drafts['forbidden']}").text
    assert "action.approve: override “VIP”" in history


def test_dashboard(client, world, engine):
    ww.login(client, "admin")
    page = client.get("/dashboard?days=7")
    assert page.status_code == 200
    assert page.text.count('<svg class="chart"') == 3 and "not received" in page.text
    assert "Edit rate" in page.text and "oldest 6 h ago" in page.text


def test_users_page_is_for_admins(client, world, engine):
    csrf = ww.login(client, "super")
    assert client.get("/users").status_code == 403
    created = client.post(
        "/users", data={"csrf_token": csrf, "username": "eve", "password": "long password 1"}
    )
    assert created.status_code == 403
    assert ww.count(engine, m.User, m.User.username == "eve") == 0


def test_admin_manages_users_in_the_page(client, world, engine):
    csrf = ww.login(client, "admin")
    assert "agent-b" in client.get("/users").text
    created = client.post(
        "/users",
        data={
            "csrf_token": csrf,
            "username": "eve",
            "password": "long password 1",
            "role": "agent",
            "account_ids": [world.accounts["B"]],
        },
    )
    assert created.status_code == 303
    short = client.post("/users", data={"csrf_token": csrf, "username": "zed", "password": "short"})
    assert short.status_code == 422 and "password" in short.text
    with session_scope(engine) as s:
        eve = um.get_user(s, "eve")
        eve_id = eve.id
        assert [a.id for a in eve.accounts] == [world.accounts["B"]]
    saved = client.post(
        f"/users/{eve_id}",
        data={"csrf_token": csrf, "role": "supervisor", "account_ids": [world.accounts["A"]], "active": "1"},
    )
    assert saved.status_code == 303
    token_page = client.post(f"/users/{eve_id}/token", data={"csrf_token": csrf, "name": "script"})
    token = re.search(r'<code class="token" id="new-token">([^<]+)</code>', token_page.text)[1]
    assert client.get("/api/me", headers=ww.bearer(token)).json()["role"] == "supervisor"
    # Admins cannot demote themselves.
    self_demote = client.post(
        f"/users/{world.users['admin']}", data={"csrf_token": csrf, "role": "agent", "active": "1"}
    )
    assert self_demote.status_code == 422


def test_security_headers(client, world):
    response = client.get("/login")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert "script-src 'self';" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    static = client.get("/static/htmx.min.js")
    assert static.status_code == 200 and static.text.startswith("/*! htmx 2.0.11")
    assert "Zero-Clause BSD" in static.text[:400]
