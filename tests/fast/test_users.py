"""Users: argon2 hashes, roles, visible accounts, API tokens, and the `sellerdesk users` commands."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.fast import web_world as ww
from worker import models as m
from worker import users as um
from worker.cli.users import app as users_cli
from worker.db import session_scope

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def fast_hashes(monkeypatch):
    monkeypatch.setattr(um, "_hasher", ww.FAST_HASHER)
    monkeypatch.setattr(um, "_dummy_hash", None)


@pytest.fixture
def accounts(engine):
    with session_scope(engine) as s:
        rows = [m.Account(marketplace="aliexpress", name="main"), m.Account(marketplace="ebay", name="eu")]
        s.add_all(rows)
        s.flush()
        return [a.id for a in rows]


def test_production_hashes_are_argon2id():
    hashed = um.hash_password("a long enough password")
    assert hashed.startswith("$argon2id$")
    assert um.verify_password(hashed, "a long enough password")
    assert not um.verify_password(hashed, "a long enough passworD")
    assert not um.verify_password("not a hash", "anything at all")


@pytest.mark.parametrize("password", ["short", " " * 12, "x" * 1025])
def test_weak_passwords_are_refused(password):
    with pytest.raises(um.UserError, match="^password:"):
        um.hash_password(password)


def test_create_and_authenticate(engine, accounts, fast_hashes):
    with session_scope(engine) as s:
        user = um.create_user(
            s, "  Alice@Shop ", "a long enough password", "Supervisor", [accounts[0]], actor="cli:me"
        )
        assert (user.username, user.role) == ("alice@shop", "supervisor")
        assert user.password_hash.startswith("$argon2id$") and "long enough" not in user.password_hash
    with session_scope(engine) as s:
        assert um.authenticate(s, "ALICE@shop", "a long enough password").username == "alice@shop"
        assert um.authenticate(s, "alice@shop", "wrong password!") is None
        assert um.authenticate(s, "nobody", "a long enough password") is None
        alice = um.get_user(s, "alice@shop")
        assert um.visible_account_ids(alice) == frozenset({accounts[0]})
        entry = s.scalar(select(m.AuditLog).where(m.AuditLog.action == "user.add"))
        assert entry.actor == "cli:me" and entry.details_json["accounts"] == [accounts[0]]
        um.set_active(s, alice, False, actor="t")
    with session_scope(engine) as s:
        assert um.authenticate(s, "alice@shop", "a long enough password") is None


@pytest.mark.parametrize(
    ("username", "role", "account_ids", "field"),
    [
        ("a", "agent", [], "username"),
        ("bad name", "agent", [], "username"),
        ("ok-name", "root", [], "role"),
        ("ok-name", "agent", [999], "accounts"),
    ],
)
def test_create_refuses_bad_input(engine, accounts, fast_hashes, username, role, account_ids, field):
    with session_scope(engine) as s, pytest.raises(um.UserError, match=f"^{field}:"):
        um.create_user(s, username, "a long enough password", role, account_ids, actor="t")


def test_duplicate_username(engine, fast_hashes):
    with session_scope(engine) as s:
        um.create_user(s, "bob", "a long enough password", "agent", actor="t")
        with pytest.raises(um.UserError, match="exists already"):
            um.create_user(s, "BOB", "a long enough password", "agent", actor="t")


def test_roles_accounts_and_caps(engine, accounts, fast_hashes, settings):
    with session_scope(engine) as s:
        user = um.create_user(s, "carol", "a long enough password", "agent", accounts, actor="t")
        um.set_accounts(s, user, [accounts[1]], actor="t")
        assert um.visible_account_ids(user) == frozenset({accounts[1]})
        um.set_role(s, user, "admin", actor="t")
        # Admins see every account, whatever their list says.
        assert um.visible_account_ids(user) is None
    assert um.role_at_least("admin", m.Role.supervisor) and not um.role_at_least("agent", m.Role.supervisor)
    assert um.money_cap(settings.money_caps, "agent") == 20
    assert um.money_cap(settings.money_caps, "supervisor") == 200


def test_password_upgrade_on_login(engine, fast_hashes, monkeypatch):
    with session_scope(engine) as s:
        um.create_user(s, "dave", "a long enough password", "agent", actor="t")
    # The production parameters are stronger than the test ones: logging in upgrades the stored hash.
    monkeypatch.setattr(um, "_hasher", um.PasswordHasher())
    with session_scope(engine) as s:
        assert um.authenticate(s, "dave", "a long enough password") is not None
    with session_scope(engine) as s:
        assert "m=65536" in um.get_user(s, "dave").password_hash


def test_tokens(engine, fast_hashes):
    with session_scope(engine) as s:
        user = um.create_user(s, "erin", "a long enough password", "agent", actor="t")
        row, token = um.create_token(s, user, "nightly export", actor="t")
        token_id = row.id
        assert token.startswith("sd_") and len(token) > 40 and row.token_hash == um.token_hash(token)
        with pytest.raises(um.UserError, match="^name:"):
            um.create_token(s, user, "  ", actor="t")
    with session_scope(engine) as s:
        assert um.user_for_token(s, token, NOW).username == "erin"
        assert s.get(m.ApiToken, token_id).last_used_at == NOW
        assert um.user_for_token(s, token + "x", NOW) is None
        assert um.user_for_token(s, "not-ours", NOW) is None
        um.revoke_token(s, token_id, actor="t")
    with session_scope(engine) as s:
        assert um.user_for_token(s, token, NOW) is None
        with pytest.raises(um.UserError, match="^token:"):
            um.revoke_token(s, token_id, actor="t")


# The CLI.


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(users_cli, list(args), input=input)


def test_cli_add_list_and_change(engine, accounts, fast_hashes, tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("a long enough password\n")
    added = run(
        "add", "Frank", "--role", "supervisor", "-a", "aliexpress/main", "--password-file", str(secret)
    )
    assert added.exit_code == 0, added.output
    assert "added user" in added.output and "frank (supervisor)" in added.output
    prompted = run(
        "add",
        "grace",
        "--account",
        f"{accounts[0]},{accounts[1]}",
        input="another long pw\nanother long pw\n",
    )
    assert prompted.exit_code == 0, prompted.output
    with session_scope(engine) as s:
        assert um.authenticate(s, "frank", "a long enough password") is not None
        assert um.authenticate(s, "grace", "another long pw") is not None
    listed = run("list", "--json")
    rows = {r["username"]: r for r in json.loads(listed.output)}
    assert rows["frank"]["accounts"] == ["aliexpress/main"] and rows["grace"]["accounts"] == [
        "aliexpress/main",
        "ebay/eu",
    ]
    table = run("list").output
    assert "frank" in table and "supervisor" in table
    assert run("set-role", "frank", "admin").output.strip() == "frank is now admin"
    assert run("set-accounts", "grace", "ebay/eu").output.strip() == "grace sees: ebay/eu"
    assert run("set-accounts", "grace").output.strip() == "grace sees: none"
    changed = run("set-password", "grace", "--password-file", "-", input="third long password\n")
    assert changed.exit_code == 0
    with session_scope(engine) as s:
        assert um.authenticate(s, "grace", "third long password") is not None
        actors = {a.actor for a in s.scalars(select(m.AuditLog).where(m.AuditLog.object_type == "user"))}
    assert len(actors) == 1 and actors.pop().startswith("cli:")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("add", "henry", "--role", "boss"), "role:"),
        (("add", "henry", "-a", "nope"), "not an account reference"),
        (("add", "henry", "-a", "ebay/missing"), "no account ebay/missing"),
        (("set-role", "nobody", "agent"), "no user 'nobody'"),
        (("token", "nobody"), "no user 'nobody'"),
    ],
)
def test_cli_errors_name_the_problem(engine, accounts, fast_hashes, tmp_path, args, message):
    secret = tmp_path / "pw"
    secret.write_text("a long enough password")
    extra = ("--password-file", str(secret)) if args[0] == "add" else ()
    result = CliRunner().invoke(users_cli, [*args, *extra])
    assert result.exit_code == 1
    assert message in result.output


def test_cli_token_prints_it_once(engine, fast_hashes, tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("a long enough password")
    run("add", "ivy", "--password-file", str(secret))
    result = CliRunner().invoke(users_cli, ["token", "ivy", "--name", "reports"])
    assert result.exit_code == 0
    token = result.stdout.strip()
    with session_scope(engine) as s:
        assert um.user_for_token(s, token, NOW).username == "ivy"
        token_id, name = s.execute(select(m.ApiToken.id, m.ApiToken.name)).one()
    assert name == "reports" and f"token {token_id} for ivy" in result.stderr
    listed = run("tokens", "ivy").output.splitlines()
    assert listed[0].split() == ["ID", "NAME", "CREATED", "LAST", "USED"]
    assert listed[1].split()[:2] == [str(token_id), "reports"]
    assert listed[1].endswith(NOW.strftime("%Y-%m-%d %H:%M"))
    assert run("revoke-token", str(token_id)).output.strip() == f"revoked token {token_id}"
    assert run("tokens", "ivy").output.strip() == "ivy has no API token"
    assert run("revoke-token", str(token_id)).exit_code == 1
    with session_scope(engine) as s:
        assert um.user_for_token(s, token, NOW) is None
