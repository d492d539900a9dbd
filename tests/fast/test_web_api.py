"""The JSON API: authentication on every route, roles, account isolation, CSRF, and each decision's effect."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select

from tests.fast import web_world as ww
from worker import models as m
from worker import users as um
from worker.db import session_scope
from worker.web import api

API_PREFIX = "/api/"


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
    return ww.make_client(app)


@pytest.fixture
def tokens(engine, world):
    return {name: ww.token_for(engine, name) for name in world.users}


def as_user(client, tokens, name):
    """Headers for `name`'s bearer token."""
    return ww.bearer(tokens[name])


def api_routes(app) -> list[tuple[str, str]]:
    """Every (method, path) of the JSON API, read from its router so a new route is covered at once."""
    out = []
    for route in api.router.routes:
        if isinstance(route, APIRoute) and route.path.startswith(API_PREFIX):
            for method in sorted(route.methods):
                out.append((method, route.path))
    return out


def fill(path: str, world: ww.World, draft: str = "plain", action: str = "dispute:refund_full") -> str:
    return (
        path.replace("{draft_id}", str(world.drafts[draft]))
        .replace("{action_id}", str(world.actions[action]))
        .replace("{user_id}", str(world.users["agent"]))
    )


# Authentication on every route.


def test_every_api_route_is_listed(app):
    # A new route must show up in the loops below; this pins the set they walk.
    paths = {path for _, path in api_routes(app)}
    assert paths >= {
        "/api/drafts",
        "/api/drafts/{draft_id}",
        "/api/drafts/{draft_id}/approve",
        "/api/drafts/{draft_id}/reject",
        "/api/drafts/{draft_id}/snooze",
        "/api/drafts/{draft_id}/undo",
        "/api/drafts/bulk-approve",
        "/api/actions/{action_id}/approve",
        "/api/actions/{action_id}/reject",
        "/api/stats",
        "/api/me",
        "/api/users",
        "/api/users/{user_id}",
    }


def test_every_api_route_without_auth_is_401(app, client, world, engine):
    for method, path in api_routes(app):
        response = client.request(method, fill(path, world), json={})
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
    assert (
        ww.count(engine, m.Outbox) == 0
        and ww.count(engine, m.AuditLog, m.AuditLog.action.like("draft.%")) == 0
    )


@pytest.mark.parametrize(
    "header",
    ["Bearer sd_not-a-real-token", "Bearer ", "Basic YWRtaW46YWRtaW4=", "Bearer wrong-prefix"],
)
def test_bad_credentials_are_401(client, world, header):
    response = client.get("/api/drafts", headers={"Authorization": header})
    assert response.status_code == 401


def test_token_auth_works_and_records_its_use(client, world, engine, clock):
    token = ww.token_for(engine, "agent")
    response = client.get("/api/me", headers=ww.bearer(token))
    assert response.status_code == 200
    assert response.json() == {
        "user_id": world.users["agent"],
        "username": "agent",
        "role": "agent",
        "account_ids": [world.accounts["A"]],
        "money_cap": "20",
    }
    with session_scope(engine) as s:
        row = s.scalar(select(m.ApiToken).where(m.ApiToken.token_hash == um.token_hash(token)))
        assert row.last_used_at == clock.t
        # Only the hash is stored.
        assert token not in row.token_hash


def test_disabled_user_token_is_401(client, world, engine):
    token = ww.token_for(engine, "agent")
    with session_scope(engine) as s:
        um.set_active(s, um.get_user(s, "agent"), False, actor="test")
    assert client.get("/api/drafts", headers=ww.bearer(token)).status_code == 401


# Roles: 403.


@pytest.mark.parametrize("name", ["agent", "super"])
def test_user_management_by_a_non_admin_is_403(client, world, tokens, name, engine):
    headers = as_user(client, tokens, name)
    assert client.get("/api/users", headers=headers).status_code == 403
    created = client.post(
        "/api/users", headers=headers, json={"username": "mallory", "password": "x" * 12, "role": "admin"}
    )
    assert created.status_code == 403
    patched = client.patch(f"/api/users/{world.users[name]}", headers=headers, json={"role": "admin"})
    assert patched.status_code == 403
    assert ww.count(engine, m.User, m.User.username == "mallory") == 0
    with session_scope(engine) as s:
        assert um.get_user(s, name).role != "admin"


def test_agent_approving_a_refund_above_the_cap_is_403(client, world, tokens, engine):
    action_id = world.actions["dispute:refund_full"]  # 24.90 USD, agent cap 20
    response = client.post(
        f"/api/actions/{action_id}/approve", headers=as_user(client, tokens, "agent"), json={"confirm": True}
    )
    assert response.status_code == 403
    assert "cap" in response.json()["detail"]
    with session_scope(engine) as s:
        assert s.get(m.ProposedAction, action_id).state == "proposed"


def test_agent_may_approve_money_under_the_cap_with_confirmation(client, world, tokens, engine):
    action_id = world.actions["coupon:coupon"]  # 2.00 USD
    headers = as_user(client, tokens, "agent")
    unconfirmed = client.post(f"/api/actions/{action_id}/approve", headers=headers, json={})
    assert unconfirmed.status_code == 422 and "confirm" in unconfirmed.json()["detail"]
    response = client.post(f"/api/actions/{action_id}/approve", headers=headers, json={"confirm": True})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"] == "approved" and body["approved_by"] == world.users["agent"]
    again = client.post(f"/api/actions/{action_id}/approve", headers=headers, json={"confirm": True})
    assert again.status_code == 409


def test_supervisor_approves_the_refund_and_it_is_audited(client, world, tokens, engine):
    action_id = world.actions["dispute:refund_full"]
    response = client.post(
        f"/api/actions/{action_id}/approve", headers=as_user(client, tokens, "super"), json={"confirm": True}
    )
    assert response.status_code == 200, response.text
    with session_scope(engine) as s:
        entry = s.scalar(select(m.AuditLog).where(m.AuditLog.action == "action.approve"))
        assert entry.actor == str(world.users["super"]) and entry.object_id == str(action_id)
        assert entry.details_json["amount"] == "24.90"


def test_refund_the_policy_forbids_needs_an_audited_override(client, world, tokens, engine):
    action_id = world.actions["forbidden:refund_partial"]  # 10.00 USD, refund_allowed false
    headers = as_user(client, tokens, "super")
    refused = client.post(f"/api/actions/{action_id}/approve", headers=headers, json={"confirm": True})
    assert refused.status_code == 422 and "override_reason" in refused.json()["detail"]
    blank = client.post(
        f"/api/actions/{action_id}/approve", headers=headers, json={"confirm": True, "override_reason": "   "}
    )
    assert blank.status_code == 422
    ok = client.post(
        f"/api/actions/{action_id}/approve",
        headers=headers,
        json={"confirm": True, "override_reason": "buyer is a repeat customer, goodwill"},
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["override_reason"] == "buyer is a repeat customer, goodwill"
    with session_scope(engine) as s:
        entry = s.scalar(select(m.AuditLog).where(m.AuditLog.action == "action.approve"))
        assert entry.details_json["override_reason"] == "buyer is a repeat customer, goodwill"


def test_reject_action(client, world, tokens, engine):
    action_id = world.actions["dispute:refund_full"]
    headers = as_user(client, tokens, "agent")
    response = client.post(
        f"/api/actions/{action_id}/reject", headers=headers, json={"reason": "resend instead"}
    )
    assert response.status_code == 200 and response.json()["state"] == "rejected"
    assert client.post(f"/api/actions/{action_id}/reject", headers=headers).status_code == 409


# Accounts: another account's drafts do not exist for you.


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/drafts/{draft_id}", None),
        ("POST", "/api/drafts/{draft_id}/approve", {}),
        ("POST", "/api/drafts/{draft_id}/reject", {"reason": "no"}),
        ("POST", "/api/drafts/{draft_id}/snooze", {"minutes": 60}),
        ("POST", "/api/drafts/{draft_id}/undo", None),
    ],
)
def test_another_accounts_draft_is_404(client, world, tokens, engine, method, path, body):
    headers = as_user(client, tokens, "agent")
    url = fill(path, world, draft="other-shop")
    response = client.request(method, url, headers=headers, json=body)
    assert response.status_code == 404
    # The same answer as for a draft that does not exist at all.
    missing = client.request(method, path.replace("{draft_id}", "99999"), headers=headers, json=body)
    assert missing.status_code == 404 and missing.json()["detail"] == "draft 99999 not found"
    assert response.json()["detail"] == f"draft {world.drafts['other-shop']} not found"
    with session_scope(engine) as s:
        assert s.get(m.Draft, world.drafts["other-shop"]).state == "pending"


def test_another_accounts_action_is_404(client, world, tokens, engine):
    headers = as_user(client, tokens, "agent-b")
    action_id = world.actions["coupon:coupon"]
    assert (
        client.post(f"/api/actions/{action_id}/approve", headers=headers, json={"confirm": True}).status_code
        == 404
    )
    assert client.post(f"/api/actions/{action_id}/reject", headers=headers).status_code == 404


def test_list_shows_only_visible_accounts_most_urgent_first(client, world, tokens):
    agent = client.get("/api/drafts", headers=as_user(client, tokens, "agent")).json()
    order = ["dispute", "plain", "forbidden", "second", "script", "coupon"]
    assert [i["id"] for i in agent["items"]] == [world.drafts[k] for k in order]
    assert agent["total"] == 6
    assert agent["items"][0]["response_due_at"] is not None and agent["items"][0]["open_money_actions"] == 1
    other = client.get("/api/drafts", headers=as_user(client, tokens, "agent-b")).json()
    assert [i["id"] for i in other["items"]] == [world.drafts["other-shop"]]
    admin = client.get("/api/drafts", headers=as_user(client, tokens, "admin")).json()
    assert admin["total"] == 7
    assert {v["value"] for v in admin["counts"]["account"]} == {
        str(world.accounts["A"]),
        str(world.accounts["B"]),
    }
    assert {v["value"] for v in agent["counts"]["account"]} == {str(world.accounts["A"])}


def test_list_filters_pagination_and_counts(client, world, tokens):
    headers = as_user(client, tokens, "admin")
    quality = client.get("/api/drafts?intent=quality_issue", headers=headers).json()
    assert [i["id"] for i in quality["items"]] == [world.drafts["coupon"]]
    # Counts of a facet ignore that facet's own filter, so the other values stay reachable.
    assert {v["value"]: v["count"] for v in quality["counts"]["intent"]} == {
        "not_received": 6,
        "quality_issue": 1,
    }
    assert {v["value"]: v["count"] for v in quality["counts"]["language"]} == {"en": 1}
    spanish = client.get("/api/drafts?language=es&marketplace=aliexpress&auto=manual", headers=headers).json()
    assert [i["id"] for i in spanish["items"]] == [world.drafts["second"]]
    shop_b = client.get(f"/api/drafts?account={world.accounts['B']}", headers=headers).json()
    assert shop_b["total"] == 1
    page = client.get("/api/drafts?limit=2&offset=2", headers=headers).json()
    assert page["total"] == 7 and page["limit"] == 2 and page["offset"] == 2 and len(page["items"]) == 2
    for bad, field in (
        ("state=bogus", "state"),
        ("intent=nope", "intent"),
        ("account=x", "account"),
        ("auto=maybe", "auto"),
    ):
        response = client.get(f"/api/drafts?{bad}", headers=headers)
        assert response.status_code == 422 and response.json()["detail"].startswith(f"{field}:"), bad
    assert client.get("/api/drafts?limit=500", headers=headers).status_code == 422


def test_draft_detail(client, world, tokens):
    response = client.get(f"/api/drafts/{world.drafts['script']}", headers=as_user(client, tokens, "agent"))
    assert response.status_code == 200
    d = response.json()
    # JSON carries the buyer's text exactly as written; escaping is the HTML pages' job.
    assert d["buyer_message"]["body"] == ww.SCRIPT_MESSAGE
    assert [msg["direction"] for msg in d["conversation"]] == ["seller", "buyer"]
    assert d["tracking"]["status"] == "in_transit"
    assert [e["description"] for e in d["tracking"]["events"]] == ["Arrived at hub", "Accepted"]
    assert d["decision"]["reasons"] and d["decision"]["confidence"] == 0.9
    assert d["order"]["items"][0]["sku"] == "SKU-script"
    dispute = client.get(
        f"/api/drafts/{world.drafts['dispute']}", headers=as_user(client, tokens, "agent")
    ).json()
    assert dispute["dispute"]["reason"] == "Package not received"
    assert dispute["actions"][0] | {"id": 0} == dispute["actions"][0] | {
        "id": 0,
        "type": "refund_full",
        "amount": "24.90",
        "currency": "USD",
        "is_money": True,
        "value": "24.90",
        "needs_override": False,
        "state": "proposed",
    }


# Decisions on drafts.


def test_approve_writes_exactly_one_outbox_row(client, world, tokens, engine, clock):
    draft_id = world.drafts["plain"]
    response = client.post(f"/api/drafts/{draft_id}/approve", headers=as_user(client, tokens, "agent"))
    assert response.status_code == 200, response.text
    assert ww.count(engine, m.Outbox, m.Outbox.draft_id == draft_id) == 1
    with session_scope(engine) as s:
        out = s.scalar(select(m.Outbox).where(m.Outbox.draft_id == draft_id))
        draft = s.get(m.Draft, draft_id)
        assert out.state == "pending" and out.body == draft.original_text
        # Sent after the undo window, so the agent can still take it back.
        assert out.not_before == clock.t + timedelta(seconds=120)
        assert (
            draft.state == "approved"
            and draft.reviewer_id == world.users["agent"]
            and draft.edited_text is None
        )
        entry = s.scalar(select(m.AuditLog).where(m.AuditLog.action == "draft.approve"))
        assert entry.actor == str(world.users["agent"]) and entry.object_id == str(draft_id)
    assert response.json()["outbox_id"] == out.id


def test_double_approve_is_409_and_writes_nothing_more(client, world, tokens, engine):
    draft_id = world.drafts["plain"]
    headers = as_user(client, tokens, "agent")
    assert client.post(f"/api/drafts/{draft_id}/approve", headers=headers).status_code == 200
    again = client.post(f"/api/drafts/{draft_id}/approve", headers=headers, json={"send_now": True})
    assert again.status_code == 409
    assert "approved" in again.json()["detail"]
    assert ww.count(engine, m.Outbox, m.Outbox.draft_id == draft_id) == 1


def test_edit_and_send_now(client, world, tokens, engine, clock):
    draft_id = world.drafts["plain"]
    response = client.post(
        f"/api/drafts/{draft_id}/approve",
        headers=as_user(client, tokens, "agent"),
        json={"edited_text": "Hi Alex,\r\nit is in Frankfurt now.", "send_now": True},
    )
    assert response.status_code == 200
    with session_scope(engine) as s:
        out = s.scalar(select(m.Outbox).where(m.Outbox.draft_id == draft_id))
        assert out.body == "Hi Alex,\nit is in Frankfurt now." and out.not_before == clock.t
        assert s.get(m.Draft, draft_id).edited_text == "Hi Alex,\nit is in Frankfurt now."


def test_an_unchanged_edit_is_not_an_edit(client, world, tokens, engine):
    draft_id = world.drafts["plain"]
    with session_scope(engine) as s:
        original = s.get(m.Draft, draft_id).original_text
    headers = as_user(client, tokens, "agent")
    assert (
        client.post(
            f"/api/drafts/{draft_id}/approve", headers=headers, json={"edited_text": "  "}
        ).status_code
        == 422
    )
    ok = client.post(
        f"/api/drafts/{draft_id}/approve", headers=headers, json={"edited_text": original + "\n"}
    )
    assert ok.status_code == 200
    with session_scope(engine) as s:
        assert s.get(m.Draft, draft_id).edited_text is None


def test_money_actions_are_decided_before_the_reply(client, world, tokens, engine):
    draft_id = world.drafts["dispute"]
    headers = as_user(client, tokens, "super")
    blocked = client.post(f"/api/drafts/{draft_id}/approve", headers=headers)
    assert blocked.status_code == 409 and "money action" in blocked.json()["detail"]
    assert ww.count(engine, m.Outbox) == 0
    action_id = world.actions["dispute:refund_full"]
    assert (
        client.post(f"/api/actions/{action_id}/approve", headers=headers, json={"confirm": True}).status_code
        == 200
    )
    assert client.post(f"/api/drafts/{draft_id}/approve", headers=headers).status_code == 200


def test_non_money_actions_go_with_the_reply(client, world, tokens, engine):
    headers = as_user(client, tokens, "agent")
    coupon = world.actions["coupon:coupon"]
    assert (
        client.post(
            f"/api/actions/{coupon}/reject", headers=headers, json={"reason": "no coupon"}
        ).status_code
        == 200
    )
    assert client.post(f"/api/drafts/{world.drafts['coupon']}/approve", headers=headers).status_code == 200
    with session_scope(engine) as s:
        assert s.get(m.ProposedAction, world.actions["coupon:extend_protection"]).state == "approved"


def test_reject(client, world, tokens, engine):
    draft_id = world.drafts["plain"]
    headers = as_user(client, tokens, "agent")
    assert client.post(f"/api/drafts/{draft_id}/reject", headers=headers, json={}).status_code == 422
    assert (
        client.post(f"/api/drafts/{draft_id}/reject", headers=headers, json={"reason": "   "}).status_code
        == 422
    )
    response = client.post(f"/api/drafts/{draft_id}/reject", headers=headers, json={"reason": "wrong order"})
    assert response.status_code == 200 and response.json()["state"] == "rejected"
    assert client.post(f"/api/drafts/{draft_id}/approve", headers=headers).status_code == 409
    with session_scope(engine) as s:
        assert s.get(m.Draft, draft_id).reject_reason == "wrong order"
    assert ww.count(engine, m.Outbox) == 0


def test_snooze(client, world, tokens, engine, clock):
    draft_id = world.drafts["plain"]
    headers = as_user(client, tokens, "agent")
    both = {"minutes": 5, "until": (clock.t + timedelta(hours=1)).isoformat()}
    assert client.post(f"/api/drafts/{draft_id}/snooze", headers=headers, json=both).status_code == 422
    past = {"until": (clock.t - timedelta(hours=1)).isoformat()}
    assert client.post(f"/api/drafts/{draft_id}/snooze", headers=headers, json=past).status_code == 422
    naive = {"until": "2026-03-05T10:00:00"}
    assert client.post(f"/api/drafts/{draft_id}/snooze", headers=headers, json=naive).status_code == 422
    response = client.post(f"/api/drafts/{draft_id}/snooze", headers=headers, json={"minutes": 90})
    assert response.status_code == 200 and response.json()["state"] == "snoozed"
    pending = client.get("/api/drafts", headers=headers).json()
    assert draft_id not in [i["id"] for i in pending["items"]]
    snoozed = client.get("/api/drafts?state=snoozed", headers=headers).json()
    assert [i["id"] for i in snoozed["items"]] == [draft_id]
    assert snoozed["items"][0]["snoozed_until"].startswith("2026-03-02T10:30:00")


def test_undo_during_the_send_window(client, world, tokens, engine):
    draft_id = world.drafts["plain"]
    headers = as_user(client, tokens, "agent")
    client.post(f"/api/drafts/{draft_id}/approve", headers=headers)
    response = client.post(f"/api/drafts/{draft_id}/undo", headers=headers)
    assert response.status_code == 200 and response.json()["state"] == "pending"
    with session_scope(engine) as s:
        assert s.scalar(select(m.Outbox.state).where(m.Outbox.draft_id == draft_id)) == "cancelled"
    assert client.post(f"/api/drafts/{draft_id}/undo", headers=headers).status_code == 409
    # Approved again (a second outbox row under its own key), then claimed by the sender: too late.
    assert client.post(f"/api/drafts/{draft_id}/approve", headers=headers).status_code == 200
    with session_scope(engine) as s:
        out = s.scalar(select(m.Outbox).where(m.Outbox.draft_id == draft_id, m.Outbox.state == "pending"))
        out.state = "sending"
    late = client.post(f"/api/drafts/{draft_id}/undo", headers=headers)
    assert late.status_code == 409 and "too late" in late.json()["detail"]


def test_bulk_approve(client, world, tokens, engine):
    ids = [world.drafts[k] for k in ("plain", "second", "dispute", "other-shop", "plain")]
    response = client.post(
        "/api/drafts/bulk-approve", headers=as_user(client, tokens, "agent"), json={"draft_ids": ids}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["approved"] == [world.drafts["plain"], world.drafts["second"]]
    assert set(body["skipped"]) == {str(world.drafts["dispute"]), str(world.drafts["other-shop"])}
    assert "money action" in body["skipped"][str(world.drafts["dispute"])]
    assert ww.count(engine, m.Outbox) == 2
    assert (
        client.post(
            "/api/drafts/bulk-approve", headers=as_user(client, tokens, "agent"), json={"draft_ids": []}
        ).status_code
        == 422
    )


# CSRF for the UI's cookie session.


def test_cookie_session_on_the_api_needs_the_csrf_header(app, client, world, engine):
    csrf = ww.login(client, "agent")
    assert client.get("/api/drafts").status_code == 200
    for method, path in api_routes(app):
        if method == "GET":
            continue
        response = client.request(method, fill(path, world), json={})
        assert response.status_code == 403, (method, path, response.text)
    assert ww.count(engine, m.Outbox) == 0
    wrong = client.post(f"/api/drafts/{world.drafts['plain']}/approve", headers={"X-CSRF-Token": "forged"})
    assert wrong.status_code == 403
    ok = client.post(f"/api/drafts/{world.drafts['plain']}/approve", headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200


# Stats and users.


def test_stats(client, world, tokens, engine, clock):
    headers = as_user(client, tokens, "agent")
    client.post(
        f"/api/drafts/{world.drafts['plain']}/approve", headers=headers, json={"edited_text": "Changed."}
    )
    client.post(f"/api/drafts/{world.drafts['second']}/approve", headers=headers)
    with session_scope(engine) as s:
        s.add(
            m.Outbox(
                account_id=world.accounts["B"],
                idempotency_key="life:1",
                kind="lifecycle",
                body="x",
                state="failed",
                created_at=clock.t,
                updated_at=clock.t,
            )
        )
        s.get(m.Account, world.accounts["B"]).paused = True
    stats = client.get("/api/stats", headers=headers).json()
    assert stats["human_approved"] == 2 and stats["edited"] == 1 and stats["edit_rate"] == 0.5
    assert stats["drafts"] == 6 and stats["auto_send_rate"] == 0.0 and stats["pending"] == 4
    assert {c["label"]: c["count"] for c in stats["by_intent"]} == {"not_received": 5, "quality_issue": 1}
    # Shop B's failure and pause are not the agent's business.
    assert stats["send_failures"] == 0 and stats["paused_accounts"] == []
    admin = client.get("/api/stats?days=7", headers=as_user(client, tokens, "admin")).json()
    assert admin["send_failures"] == 1 and [a["name"] for a in admin["paused_accounts"]] == ["shop-b"]
    assert admin["oldest_pending_seconds"] == 6 * 3600
    assert client.get("/api/stats?days=0", headers=headers).status_code == 422


def test_admin_manages_users(client, world, tokens, engine):
    headers = as_user(client, tokens, "admin")
    listed = client.get("/api/users", headers=headers).json()
    assert [u["username"] for u in listed] == ["admin", "agent", "agent-b", "super"]
    created = client.post(
        "/api/users",
        headers=headers,
        json={
            "username": "Nina",
            "password": "long enough pw",
            "role": "agent",
            "account_ids": [world.accounts["B"]],
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["username"] == "nina" and created.json()["account_ids"] == [world.accounts["B"]]
    for body, field in (
        ({"username": "nina", "password": "long enough pw"}, "username"),
        ({"username": "x y", "password": "long enough pw"}, "username"),
        ({"username": "olga", "password": "short"}, "password"),
        ({"username": "olga", "password": "long enough pw", "role": "root"}, "role"),
        ({"username": "olga", "password": "long enough pw", "account_ids": [999]}, "accounts"),
    ):
        response = client.post("/api/users", headers=headers, json=body)
        assert response.status_code == 422 and response.json()["detail"].startswith(field), body
    nina = created.json()["id"]
    patched = client.patch(
        f"/api/users/{nina}",
        headers=headers,
        json={"role": "supervisor", "account_ids": [world.accounts["A"]]},
    )
    assert patched.status_code == 200 and patched.json()["role"] == "supervisor"
    assert patched.json()["account_ids"] == [world.accounts["A"]]
    assert client.patch("/api/users/9999", headers=headers, json={"active": False}).status_code == 404
    # An admin cannot lock themselves out.
    me = client.patch(f"/api/users/{world.users['admin']}", headers=headers, json={"role": "agent"})
    assert me.status_code == 422
    with session_scope(engine) as s:
        actions = [a.action for a in s.scalars(select(m.AuditLog).where(m.AuditLog.object_id == str(nina)))]
    assert actions == ["user.add", "user.set_role", "user.set_accounts"]


def test_openapi_documents_the_api(client):
    schema = client.get("/api/openapi.json").json()
    assert "/api/drafts/{draft_id}/approve" in schema["paths"]
    assert "ApproveBody" in schema["components"]["schemas"]
    docs = client.get("/api/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_healthz_answers_without_login(client, app):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok", "database": True}


def test_healthz_reports_an_unreachable_database(client, app, tmp_path):
    from sqlalchemy import create_engine

    app.state.engine = create_engine(f"sqlite:///{tmp_path}/missing/dir/db.sqlite")
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["database"] is False


def test_money_value_of_a_resend_is_the_order_total(client, world, tokens, engine):
    # A resend costs the goods again: the cap is compared with the order total.
    from worker.triage.types import Action, ActionType

    with session_scope(engine) as s:
        ww.add_case(
            s,
            world,
            "resend",
            "A",
            total="30.00",
            actions=[Action(type=ActionType.resend)],
            refund_allowed=True,
        )
    action_id = world.actions["resend:resend"]
    agent = client.post(
        f"/api/actions/{action_id}/approve", headers=as_user(client, tokens, "agent"), json={"confirm": True}
    )
    assert agent.status_code == 403 and "30.00" in agent.json()["detail"]
    supervisor = client.post(
        f"/api/actions/{action_id}/approve", headers=as_user(client, tokens, "super"), json={"confirm": True}
    )
    assert supervisor.status_code == 200 and Decimal(supervisor.json()["value"]) == Decimal("30.00")
