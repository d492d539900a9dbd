"""The dry run behind `sellerdesk triage`: JSON lines in, decision lines out, errors per line.

Each input line is decided independently; a bad line becomes `{"id": ..., "error": ...}` and the
run goes on. The decisions come from `Triage.decide`, the same code the Celery tasks call.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from connectors.base import Capabilities
from worker.render import RenderError
from worker.triage.pipeline import Triage
from worker.triage.types import Case


def printable(text: str) -> str:
    """Text that can be written as UTF-8: lone surrogates (valid in JSON escapes) become U+FFFD."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming every bad field, e.g. `order.total: Input should be a valid decimal`."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(case)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


@dataclass
class Summary:
    """Counts for `--summary`: what a policy does to a batch of cases, at a glance."""

    cases: int = 0
    errors: int = 0
    auto_send: int = 0
    intents: Counter[str] = field(default_factory=Counter)
    scenarios: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    refund_allowed: int = 0

    def add(self, out: dict[str, Any]) -> None:
        self.cases += 1
        if "error" in out:
            self.errors += 1
            return
        self.intents[out["intent"]] += 1
        self.scenarios[out["scenario"]] += 1
        self.auto_send += bool(out["auto_send"])
        self.refund_allowed += bool(out["refund_allowed"])
        for a in out["actions"]:
            self.actions[a["type"]] += 1

    def lines(self) -> list[str]:
        def fmt(c: Counter[str]) -> str:
            return ", ".join(f"{k} {v}" for k, v in c.most_common()) or "-"

        ok = self.cases - self.errors
        return [
            f"cases: {self.cases} ({ok} decided, {self.errors} errors)",
            f"auto-send: {self.auto_send}, refund allowed: {self.refund_allowed}",
            f"intents: {fmt(self.intents)}",
            f"scenarios: {fmt(self.scenarios)}",
            f"actions: {fmt(self.actions)}",
        ]


def decide_line(
    line: str, lineno: int, triage: Triage, caps_for: Callable[[str], Capabilities]
) -> dict[str, Any]:
    """Decide one input line; every failure becomes an error object naming the problem."""
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        return {"id": None, "error": f"line {lineno}: invalid JSON: {exc.msg} at column {exc.colno}"}
    except RecursionError:
        return {"id": None, "error": f"line {lineno}: invalid JSON: nested too deeply"}
    if not isinstance(raw, dict):
        return {"id": None, "error": f"line {lineno}: expected a JSON object, got {type(raw).__name__}"}
    case_id = printable(raw.get("id")) if isinstance(raw.get("id"), str) else None
    try:
        case = Case.model_validate(raw)
    except ValidationError as exc:
        return {"id": case_id, "error": f"line {lineno}: {describe_validation_error(exc)}"}
    try:
        caps = caps_for(case.marketplace)
    except ValueError as exc:
        return {"id": case_id, "error": f"line {lineno}: marketplace: {exc}"}
    try:
        return triage.decide(case, caps).to_json()
    except RecursionError:
        return {"id": case_id, "error": f"line {lineno}: case nested too deeply"}
    except RenderError as exc:
        return {"id": case_id, "error": f"line {lineno}: reply: {exc}"}
    except ValueError as exc:
        return {"id": case_id, "error": f"line {lineno}: {exc}"}


def run(
    lines: Iterable[str],
    triage: Triage,
    caps_for: Callable[[str], Capabilities],
    summary: Summary | None = None,
) -> Iterator[dict[str, Any]]:
    """Decide every non-blank line in order, yielding one output object per line."""
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        out = decide_line(line, lineno, triage, caps_for)
        if summary is not None:
            summary.add(out)
        yield out
