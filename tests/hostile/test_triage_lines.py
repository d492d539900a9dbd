"""Hostile contract lines for `sellerdesk triage`: each bad line is an error line naming the problem.

spec/triage.md: one output object per input line, same order, same id; a malformed line yields
`{"id": ..., "error": ...}` and the run goes on. Blank lines carry no case and yield nothing (the
dry run's documented behaviour), so "same count" below counts the non-blank lines.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connectors import capabilities_for
from tests.hostile.conftest import base_case
from worker.triage.dryrun import run

pytestmark = pytest.mark.timeout(60)

Spoil = Callable[[dict[str, Any]], Any]


def _drop(*path: str | int) -> Spoil:
    def spoil(case: dict[str, Any]) -> None:
        target: Any = case
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return spoil


def _put(value: Any, *path: str | int) -> Spoil:
    def spoil(case: dict[str, Any]) -> None:
        target: Any = case
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return spoil


def _nested(depth: int) -> Spoil:
    return _put(json.loads("[" * depth + "]" * depth), "extra")


# name -> (how to spoil the valid case, the field the error line must name).
REFUSED: dict[str, tuple[Spoil, str]] = {
    "missing_id": (_drop("id"), "id"),
    "missing_now": (_drop("now"), "now"),
    "missing_order": (_drop("order"), "order"),
    "missing_order_id": (_drop("order", "id"), "order.id"),
    "missing_order_status": (_drop("order", "status"), "order.status"),
    "missing_order_total": (_drop("order", "total"), "order.total"),
    "missing_order_currency": (_drop("order", "currency"), "order.currency"),
    "missing_message_text": (_drop("message", "text"), "message.text"),
    "missing_tracking_status": (_drop("tracking", "status"), "tracking.status"),
    "missing_event_time": (_drop("tracking", "events", 0, "time"), "tracking.events.0.time"),
    "missing_dispute_reason": (_put({"opened_at": None}, "dispute"), "dispute.reason"),
    "null_id": (_put(None, "id"), "id"),
    "null_now": (_put(None, "now"), "now"),
    "null_order": (_put(None, "order"), "order"),
    "null_order_status": (_put(None, "order", "status"), "order.status"),
    "null_order_total": (_put(None, "order", "total"), "order.total"),
    "null_order_currency": (_put(None, "order", "currency"), "order.currency"),
    "null_message_text": (_put(None, "message", "text"), "message.text"),
    "null_items": (_put(None, "order", "items"), "order.items"),
    "null_item": (_put([None], "order", "items"), "order.items.0"),
    "null_events": (_put(None, "tracking", "events"), "tracking.events"),
    "id_number": (_put(17, "id"), "id"),
    "id_empty": (_put("", "id"), "id"),
    "id_one_megabyte": (_put("i" * 1_000_000, "id"), "id"),
    "now_list": (_put([2026, 3, 1], "now"), "now"),
    "now_bool": (_put(True, "now"), "now"),
    "now_words": (_put("yesterday", "now"), "now"),
    "now_month_13": (_put("2026-13-45T00:00:00Z", "now"), "now"),
    "now_year_0": (_put("0000-01-01T00:00:00Z", "now"), "now"),
    "now_epoch_beyond_9999": (_put(1e20, "now"), "now"),
    "now_epoch_before_year_0": (_put(-1e20, "now"), "now"),
    "shipped_at_words": (_put("last tuesday", "order", "shipped_at"), "order.shipped_at"),
    "shipped_at_object": (_put({"value": "2026-01-30"}, "order", "shipped_at"), "order.shipped_at"),
    "marketplace_number": (_put(5, "marketplace"), "marketplace"),
    "marketplace_unknown": (_put("<script>alert(1)</script>", "marketplace"), "marketplace"),
    "order_string": (_put("90000501", "order"), "order"),
    "order_list": (_put([], "order"), "order"),
    "order_id_number": (_put(90000501, "order", "id"), "order.id"),
    "order_status_unknown": (_put("teleported", "order", "status"), "order.status"),
    "order_status_upper_case": (_put("SHIPPED", "order", "status"), "order.status"),
    "total_words": (_put("twenty", "order", "total"), "order.total"),
    "total_negative": (_put(-5, "order", "total"), "order.total"),
    "total_nan_string": (_put("NaN", "order", "total"), "order.total"),
    "total_infinity_string": (_put("Infinity", "order", "total"), "order.total"),
    "total_list": (_put([24.9], "order", "total"), "order.total"),
    "total_object": (_put({"amount": 24.9}, "order", "total"), "order.total"),
    "currency_number": (_put(840, "order", "currency"), "order.currency"),
    "currency_too_long": (_put("DOLLARS", "order", "currency"), "order.currency"),
    "country_too_long": (_put("USA", "order", "buyer_country"), "order.buyer_country"),
    "items_object": (_put({"sku": "x"}, "order", "items"), "order.items"),
    "item_quantity_negative": (_put(-1, "order", "items", 0, "quantity"), "order.items.0.quantity"),
    "item_price_words": (_put("cheap", "order", "items", 0, "price"), "order.items.0.price"),
    "promised_days_zero": (_put(0, "order", "promised_delivery_days"), "order.promised_delivery_days"),
    "promised_days_huge": (_put(10**20, "order", "promised_delivery_days"), "order.promised_delivery_days"),
    "promised_days_words": (_put("ten", "order", "promised_delivery_days"), "order.promised_delivery_days"),
    "message_string": (_put("where is it", "message"), "message"),
    "message_text_number": (_put(42, "message", "text"), "message.text"),
    "message_text_blank": (_put(" \t\n", "message", "text"), "message.text"),
    "message_text_one_megabyte": (_put("x" * 1_000_000, "message", "text"), "message.text"),
    "message_text_lone_surrogate": (_put("\ud800 where is it", "message", "text"), "message.text"),
    "message_direction_unknown": (_put("robot", "message", "direction"), "message.direction"),
    "tracking_status_unknown": (_put("teleported", "tracking", "status"), "tracking.status"),
    "tracking_list": (_put([], "tracking"), "tracking"),
    "events_object": (_put({"time": "2026-02-26T12:00:00Z"}, "tracking", "events"), "tracking.events"),
    "dispute_string": (_put("refund now", "dispute"), "dispute"),
    "dispute_amount_words": (_put({"reason": "x", "amount": "lots"}, "dispute"), "dispute.amount"),
    "dispute_amount_nan": (_put({"reason": "x", "amount": "NaN"}, "dispute"), "dispute.amount"),
    "dispute_reason_too_long": (_put({"reason": "r" * 201}, "dispute"), "dispute.reason"),
    "dispute_request_unknown": (
        _put({"reason": "x", "buyer_request": "gold"}, "dispute"),
        "dispute.buyer_request",
    ),
    "complaint_flag_words": (_put("maybe", "complaint_in_conversation"), "complaint_in_conversation"),
}

# name -> spoiling that the contract tolerates: the case is still decided.
TOLERATED: dict[str, Spoil] = {
    "extra_top_level_fields": _put({"anything": [1, {"deep": None}]}, "extra"),
    "extra_nested_fields": _put("ignored", "order", "internal_note"),
    "extra_nested_moderately": _nested(200),
    "now_without_timezone": _put("2026-03-01T12:00:00", "now"),
    "now_date_only": _put("2026-03-01", "now"),
    "now_epoch_seconds": _put(1772366400, "now"),
    "now_far_timezone": _put("2026-03-01T12:00:00+14:00", "now"),
    "now_year_1": _put("0001-01-01T00:00:00Z", "now"),
    "now_year_9999": _put("9999-12-31T23:59:59Z", "now"),
    "total_string_number": _put("24.90", "order", "total"),
    "total_huge": _put("99999999999999999999.99", "order", "total"),
    "promised_days_max": _put(365, "order", "promised_delivery_days"),
    "quantity_huge": _put(10**30, "order", "items", 0, "quantity"),
    "ten_thousand_events": _put(
        [{"time": "2026-02-20T00:00:00Z", "description": "scan"}] * 10_000, "tracking", "events"
    ),
    "ten_thousand_items": _put([{"title": "x"}] * 10_000, "order", "items"),
    "null_optionals": lambda case: case.update(message=None, dispute=None, tracking=None),
    "null_order_optionals": lambda case: case["order"].update(
        buyer_name=None, buyer_country=None, paid_at=None, shipping_method=None, tracking_number=None
    ),
    "message_text_20000_chars": _put("where is my order " * 1111, "message", "text"),
    "duplicate_json_keys": _put("first", "id"),  # the line below repeats "id"; the last one wins
}


def _line(spoil: Spoil) -> str:
    case = base_case()
    spoil(case)
    return json.dumps(case)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_bad_field_is_an_error_line_naming_it(decide, name):
    spoil, field = REFUSED[name]
    out = decide(_line(spoil))
    assert set(out) == {"id", "error"}, out
    assert out["error"].startswith("line 1: "), out
    assert f"{field}:" in out["error"] or f"{field} " in out["error"], out["error"]
    case = base_case()
    spoil(case)
    if isinstance(case.get("id"), str) and case["id"]:
        assert out["id"] == case["id"]


@pytest.mark.parametrize("name", sorted(TOLERATED))
def test_tolerated_oddities_are_decided(decide, name):
    line = _line(TOLERATED[name])
    if name == "duplicate_json_keys":
        line = line[:-1] + ', "id": "hostile-1"}'
    out = decide(line)
    assert "error" not in out, out
    assert out["id"] == "hostile-1"
    assert "{{" not in out["reply"]


# Lines that are not a case at all.
NOT_A_CASE: dict[str, str] = {
    "plain_words": "where is my order",
    "truncated_object": '{"id": "x", "now": ',
    "single_quoted": "{'id': 'x'}",
    "trailing_comma": '{"id": "x",}',
    "json_array": '[{"id": "x"}]',
    "json_string": '"a case"',
    "json_number": "42",
    "json_null": "null",
    "json_true": "true",
    "nul_byte": "\x00",
    "html_page": "<html><body>502 Bad Gateway</body></html>",
    "nan_literal_total": _line(_put(float("nan"), "order", "total")),
    "infinity_literal_total": _line(_put(float("inf"), "order", "total")),
    "overflowing_exponent_total": _line(_put(0, "order", "total")).replace('"total": 0', '"total": 1e309'),
}


@pytest.mark.parametrize("name", sorted(NOT_A_CASE))
def test_a_line_that_is_not_a_case_is_an_error_line(decide, name):
    out = decide(NOT_A_CASE[name])
    assert set(out) == {"id", "error"}, out
    assert out["error"].startswith("line 1: "), out
    if name.endswith("_total"):
        assert "order.total" in out["error"]


def test_a_batch_keeps_one_line_out_per_line_in_and_decides_the_good_ones(triage):
    good = _line(lambda case: None)
    bad = [NOT_A_CASE[n] for n in sorted(NOT_A_CASE)] + [_line(REFUSED[n][0]) for n in sorted(REFUSED)]
    lines = []
    for i, line in enumerate(bad):
        lines += [line, good.replace("hostile-1", f"good-{i}"), "", "   \t"]
    out = list(run(lines, triage, capabilities_for))
    non_blank = [line for line in lines if line.strip()]
    assert len(out) == len(non_blank)
    assert ["error" in o for o in out] == [True, False] * len(bad)
    alone = triage_one(triage, good)
    for i in range(len(bad)):
        decided = out[2 * i + 1]
        assert decided["id"] == f"good-{i}"
        assert {k: v for k, v in decided.items() if k != "id"} == alone


def triage_one(triage, line: str) -> dict[str, Any]:
    (out,) = run([line], triage, capabilities_for)
    return {k: v for k, v in out.items() if k != "id"}


# ------------------------------------------------------------------------ found bugs (fixed)


def test_shipped_at_in_year_9999_is_an_error_line(decide):
    out = decide(_line(_put("9999-12-31T00:00:00Z", "order", "shipped_at")))
    assert "order.shipped_at" in out.get("error", ""), out


@pytest.mark.parametrize(
    "spoil",
    [
        _put("9999-12-31T23:59:59-14:00", "now"),
        _put("0001-01-01T00:00:00+14:00", "last_auto_reply_at"),
        _put("9999-12-31T23:59:59-12:00", "tracking", "events", 0, "time"),
    ],
    ids=["now", "last_auto_reply_at", "event_time"],
)
def test_a_time_beyond_utc_range_is_an_error_line(decide, spoil):
    out = decide(_line(spoil))
    assert "error" in out, out


def test_deeply_nested_line_is_an_error_line(decide):
    out = decide('{"id": "deep", "extra": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert out.get("error"), out


def test_deadline_in_year_1_is_iso_8601(decide):
    out = decide(_line(lambda case: case["order"].update(shipped_at="0001-01-01T00:00:00Z")))
    assert out["deadline"] == "0001-03-02T00:00:00Z", out["deadline"]


# ------------------------------------------------------------------------- the command itself


def _sellerdesk(
    tmp_path: Path, args: list[str], stdin: bytes | None, **env: str
) -> subprocess.CompletedProcess:
    command = Path(sys.executable).with_name("sellerdesk")
    return subprocess.run(
        [str(command), "triage", *args],
        input=stdin,
        capture_output=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
        timeout=60,
    )


def _lines(stdout: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.decode("utf-8").splitlines()]


def test_command_with_bad_bytes_in_a_file_decides_every_line(tmp_path):
    good = _line(lambda case: None).encode()
    spoiled = good.replace(b"Hello", b"He\xff\xfe\xc0llo")  # invalid UTF-8 inside the message text
    source = tmp_path / "cases.jsonl"
    source.write_bytes(b"\n".join([spoiled, b"not json", b"", good]) + b"\n")
    done = _sellerdesk(tmp_path, [str(source)], None)
    assert done.returncode == 0, done.stderr[-2000:]
    out = _lines(done.stdout)
    assert len(out) == 3
    assert out[1]["error"].startswith("line 2: invalid JSON")
    assert out[0]["id"] == out[2]["id"] == "hostile-1" and "error" not in out[2]
    # Documented normalisation: the file is read with errors="replace", so the bad bytes become U+FFFD.
    assert "error" not in out[0]


def test_command_with_bad_bytes_on_stdin_under_a_utf8_locale_answers_every_line(tmp_path):
    good = _line(lambda case: None).encode()
    spoiled = good.replace(b"Hello", b"He\xffllo")
    done = _sellerdesk(tmp_path, ["-"], spoiled + b"\n" + good + b"\n", LC_ALL="C.UTF-8")
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(_lines(done.stdout)) == 2


def test_command_with_bad_bytes_on_a_strict_stdin_answers_every_line(tmp_path):
    good = _line(lambda case: None).encode()
    spoiled = good.replace(b"Hello", b"He\xffllo")
    done = _sellerdesk(tmp_path, ["-"], spoiled + b"\n" + good + b"\n", PYTHONIOENCODING="utf-8:strict")
    assert done.returncode == 0, done.stderr[-500:]
    assert len(_lines(done.stdout)) == 2


def test_command_with_a_lone_surrogate_id_answers_every_line(tmp_path):
    good = _line(lambda case: None)
    spoiled = good.replace('"hostile-1"', '"x\\ud800y"')
    done = _sellerdesk(tmp_path, ["-"], f"{spoiled}\n{good}\n".encode(), LC_ALL="C.UTF-8")
    assert done.returncode == 0, done.stderr[-500:]
    out = _lines(done.stdout)
    assert len(out) == 2 and "error" in out[0] and "error" not in out[1]


def test_command_with_a_bom_decides_the_first_case(tmp_path):
    good = _line(lambda case: None).encode()
    source = tmp_path / "cases.jsonl"
    source.write_bytes(b"\xef\xbb\xbf" + good + b"\n" + good + b"\n")
    done = _sellerdesk(tmp_path, [str(source)], None)
    out = _lines(done.stdout)
    assert len(out) == 2
    assert "error" not in out[0], out[0]
