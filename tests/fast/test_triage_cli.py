"""`sellerdesk triage`, the dry run of shared/spec/triage.md, through the installed command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "spec" / "triage-examples.jsonl"
OUTPUT_KEYS = {
    "id",
    "language",
    "intent",
    "confidence",
    "scenario",
    "deadline",
    "days_left",
    "refund_allowed",
    "actions",
    "auto_send",
    "template",
    "reply_language",
    "reply",
    "reasons",
}


def examples() -> list[dict]:
    if not EXAMPLES.exists():
        pytest.skip(f"{EXAMPLES} is not beside the repository")
    return [json.loads(line) for line in EXAMPLES.open(encoding="utf-8")]


def run(sellerdesk, tmp_path, lines: list[str], *args: str):
    path = tmp_path / "cases.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = sellerdesk("triage", str(path), *args, cwd=tmp_path, SELLERDESK_DATA_DIR=str(tmp_path / "d"))
    return result, [json.loads(line) for line in result.stdout.splitlines()]


def test_shared_examples_are_decided_as_expected(sellerdesk, tmp_path):
    rows = examples()
    result, out = run(sellerdesk, tmp_path, [json.dumps(r["case"]) for r in rows])
    assert result.returncode == 0, result.stderr
    assert [o["id"] for o in out] == [r["case"]["id"] for r in rows]
    for row, decision in zip(rows, out, strict=True):
        assert set(decision) == OUTPUT_KEYS
        for key in ("intent", "language", "scenario", "refund_allowed"):
            if row["expect"][key] is not None:
                assert decision[key] == row["expect"][key], (row["case"]["id"], key)
        assert decision["reply"] and "{{" not in decision["reply"]


def test_contract_example_deadline_and_days_left(sellerdesk, tmp_path):
    case = {
        "id": "case-17",
        "now": "2026-03-01T12:00:00Z",
        "marketplace": "aliexpress",
        "message": {"text": "Where is my order??", "sent_at": "2026-03-01T09:00:00Z"},
        "dispute": None,
        "order": {
            "id": "8123",
            "status": "shipped",
            "total": 25.0,
            "currency": "USD",
            "buyer_name": "Ana",
            "buyer_country": "BR",
            "paid_at": "2026-01-02T10:00:00Z",
            "shipped_at": "2026-01-03T10:00:00Z",
            "shipping_method": "china_post_small_packet",
            "promised_delivery_days": None,
            "tracking_number": "LP00123456789CN",
            "items": [{"sku": "DR-RED-M", "title": "Summer dress", "quantity": 1, "price": 25.0}],
        },
        "tracking": {
            "status": "in_transit",
            "last_event_at": "2026-02-20T08:00:00Z",
            "events": [
                {"time": "2026-02-20T08:00:00Z", "location": "Curitiba", "description": "Arrived at facility"}
            ],
        },
    }
    _, [d] = run(sellerdesk, tmp_path, [json.dumps(case)])
    assert (d["scenario"], d["deadline"], d["days_left"], d["refund_allowed"]) == (
        "in_transit",
        "2026-04-03T10:00:00Z",
        33,
        False,
    )
    assert d["template"] == "not_received/in_transit" and d["actions"] == []
    assert "LP00123456789CN" in d["reply"] and "Curitiba" in d["reply"]


def test_bad_lines_become_error_lines_and_the_run_goes_on(sellerdesk, tmp_path):
    good = json.dumps(examples()[0]["case"])
    lines = [good, "{not json", json.dumps({"id": "x1", "now": "2026-03-01T12:00:00Z"}), "[1, 2]", good]
    result, out = run(sellerdesk, tmp_path, lines)
    assert result.returncode == 0 and len(out) == 5
    assert "error" not in out[0] and "error" not in out[4]
    assert "invalid JSON" in out[1]["error"]
    assert out[2]["id"] == "x1" and "order: Field required" in out[2]["error"]
    assert "expected a JSON object" in out[3]["error"]


def test_policy_file_changes_the_decision(sellerdesk, tmp_path):
    ex = next(r for r in examples() if r["expect"]["scenario"] == "no_tracking_info")
    policy = tmp_path / "shop.toml"
    policy.write_text("[deadlines]\nno_scan_lost_after_days = 40\n", encoding="utf-8")
    _, [default] = run(sellerdesk, tmp_path, [json.dumps(ex["case"])])
    _, [shop] = run(sellerdesk, tmp_path, [json.dumps(ex["case"])], "--policy", str(policy))
    assert default["scenario"] == "no_tracking_info" and shop["scenario"] == "in_transit"
    assert shop["refund_allowed"] is False


def test_bad_policy_file_stops_with_the_key_named(sellerdesk, tmp_path):
    policy = tmp_path / "shop.toml"
    policy.write_text("[protection]\nextension_dayz = 3\n", encoding="utf-8")
    result, out = run(sellerdesk, tmp_path, ["{}"], "--policy", str(policy))
    assert result.returncode == 2 and out == []
    assert "protection.extension_dayz" in result.stderr


def test_summary_counts_on_stderr(sellerdesk, tmp_path):
    result, out = run(sellerdesk, tmp_path, [json.dumps(r["case"]) for r in examples()], "--summary")
    assert "cases: 14 (14 decided, 0 errors)" in result.stderr
    assert "intents: not_received 7" in result.stderr and "scenarios:" in result.stderr
    assert len(out) == 14


def test_unreadable_input_is_exit_2(sellerdesk, tmp_path):
    result = sellerdesk(
        "triage", str(tmp_path / "missing.jsonl"), cwd=tmp_path, SELLERDESK_DATA_DIR=str(tmp_path)
    )
    assert result.returncode == 2 and "cannot read" in result.stderr
