"""`sellerdesk drafts ...` and `sellerdesk web`."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.fast import web_world as ww
from worker import models as m
from worker import users as um
from worker.cli.drafts import app as drafts_cli
from worker.cli.web import app as web_cli
from worker.db import session_scope


@pytest.fixture
def world(engine, monkeypatch):
    monkeypatch.setattr(um, "_hasher", ww.FAST_HASHER)
    return ww.build_world(engine)


def run(*args: str):
    return CliRunner().invoke(drafts_cli, list(args))


def test_list(world):
    result = run("list", "--json")
    assert result.exit_code == 0, result.output
    page = json.loads(result.output)
    assert page["total"] == 7 and page["items"][0]["id"] == world.drafts["dispute"]
    table = run("list", "--limit", "2")
    lines = table.output.splitlines()
    assert lines[0].split()[:3] == ["ID", "AGE", "ACCOUNT"]
    assert lines[1].startswith(str(world.drafts["dispute"])) and "$" in lines[1]
    assert lines[-1] == "... 5 more (use --limit)"
    assert run("list", "--state", "sent").output.strip() == "no sent drafts"
    bad = run("list", "--state", "done")
    assert bad.exit_code == 1 and "state:" in bad.output


def test_show(world):
    result = run("show", str(world.drafts["script"]))
    assert result.exit_code == 0
    assert ww.SCRIPT_MESSAGE in result.output and "reply (not_received/in_transit, en)" in result.output
    detail = json.loads(run("show", str(world.drafts["dispute"]), "--json").output)
    assert detail["actions"][0]["type"] == "refund_full"
    assert run("show", "999").exit_code == 1


def test_approve_with_an_edit_file_as_the_cli_actor(world, engine, tmp_path):
    edit = tmp_path / "reply.txt"
    edit.write_text("Hello Alex,\nit arrives this week.\n", encoding="utf-8")
    result = run("approve", str(world.drafts["plain"]), "--edit-file", str(edit))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"approved draft {world.drafts['plain']}: sends at ")
    with session_scope(engine) as s:
        draft = s.get(m.Draft, world.drafts["plain"])
        out = s.scalar(select(m.Outbox).where(m.Outbox.draft_id == draft.id))
        entry = s.scalar(select(m.AuditLog).where(m.AuditLog.action == "draft.approve"))
    assert draft.state == "approved" and draft.reviewer_id is None
    assert out.body == "Hello Alex,\nit arrives this week.\n"
    assert entry.actor.startswith("cli:")
    again = run("approve", str(world.drafts["plain"]))
    assert again.exit_code == 1 and "approved, not pending" in again.output


def test_approve_refuses_undecided_money_and_missing_files(world, tmp_path):
    money = run("approve", str(world.drafts["dispute"]))
    assert money.exit_code == 1 and "money action" in money.output
    missing = run("approve", str(world.drafts["plain"]), "--edit-file", str(tmp_path / "nope.txt"))
    assert missing.exit_code == 1 and "cannot read" in missing.output
    assert run("approve", "999").exit_code == 1


def test_reject(world, engine):
    assert run("reject", str(world.drafts["plain"])).exit_code == 2  # --reason is required
    assert run("reject", str(world.drafts["plain"]), "--reason", " ").exit_code == 1
    result = run("reject", str(world.drafts["plain"]), "--reason", "duplicate of #2")
    assert result.exit_code == 0 and result.output.strip() == f"rejected draft {world.drafts['plain']}"
    with session_scope(engine) as s:
        assert s.get(m.Draft, world.drafts["plain"]).reject_reason == "duplicate of #2"


def test_web_serves_the_app_with_uvicorn(engine, settings, monkeypatch):
    calls = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: calls.append((app, kw)))
    result = CliRunner().invoke(web_cli, ["--port", "9123"])
    assert result.exit_code == 0, result.output
    app, kw = calls[0]
    assert kw["host"] == settings.web_host and kw["port"] == 9123 and kw["proxy_headers"] is True
    assert app.state.settings is settings
    assert "https reverse proxy" not in result.output
    result = CliRunner().invoke(web_cli, ["--host", "0.0.0.0"])
    assert calls[1][1]["host"] == "0.0.0.0" and calls[1][1]["port"] == settings.web_port
    assert "https reverse proxy" in result.output
    assert CliRunner().invoke(web_cli, ["--port", "0"]).exit_code == 2


def test_web_needs_a_current_schema(settings, monkeypatch):
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: pytest.fail("must not serve"))
    result = CliRunner().invoke(web_cli, [])
    assert result.exit_code == 1 and "sellerdesk db upgrade" in result.output
