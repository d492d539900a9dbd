"""Cost and accuracy of the classifier on its own labelled sets (development or validation).

    .venv/bin/python bench/classify.py [--data dev|validation|<folder>] [--repeat N]

Prints microseconds per message (cold: first sight of each text, lingua's cache empty; warm:
the same texts again) and the share of messages that needed lingua, then accuracy per language
and per intent, and the auto-send figures: coverage (share of messages confident enough to be
answered without a human: confidence >= 0.6, not `other`, no runner-up) and confident-wrong (the
share of those with the wrong intent). Runs on one core.

`tests/data/dev/` is what the lexicons and the model were built on; `tests/data/validation/` was
written before the classifier was improved and is never tuned on, so its figures are the honest ones.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from worker.triage import language
from worker.triage.classify import classify
from worker.triage.types import Classification, Intent

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
# What the policy's auto-send guard requires by default (worker/policy/guards.py, guard 4).
AUTO_SEND_CONFIDENCE = 0.6


@dataclass(frozen=True)
class Figures:
    """Accuracy and auto-send safety of a set of classifications against their labels."""

    messages: int
    intent_accuracy: float
    language_accuracy: float
    auto_eligible: int
    confident_wrong: int

    @property
    def coverage(self) -> float:
        return self.auto_eligible / self.messages if self.messages else 0.0

    @property
    def confident_wrong_rate(self) -> float:
        return self.confident_wrong / self.auto_eligible if self.auto_eligible else 0.0


def auto_eligible(c: Classification, threshold: float = AUTO_SEND_CONFIDENCE) -> bool:
    """True when guard 4 would let this reading be answered without a human."""
    return c.confidence >= threshold and c.intent != Intent.other and c.runner_up is None


def figures(rows: Sequence[dict], results: Sequence[Classification]) -> Figures:
    """Figures of classifications against labelled rows ({"text", "intent", "language"})."""
    if len(rows) != len(results):
        raise ValueError(f"{len(rows)} rows but {len(results)} results")
    right = sum(c.intent.value == r["intent"] for r, c in zip(rows, results, strict=True))
    lang = sum(c.language == r["language"] for r, c in zip(rows, results, strict=True))
    eligible = [(r, c) for r, c in zip(rows, results, strict=True) if auto_eligible(c)]
    wrong = sum(c.intent.value != r["intent"] for r, c in eligible)
    n = len(rows)
    return Figures(n, right / n if n else 0.0, lang / n if n else 0.0, len(eligible), wrong)


def load_rows(folder: Path) -> list[dict]:
    """Every line of every `<lang>.jsonl` in a folder; a bad line fails naming file and line."""
    rows: list[dict] = []
    paths = sorted(folder.glob("*.jsonl"))
    if not paths:
        raise FileNotFoundError(f"{folder}: no <lang>.jsonl file")
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path.name}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise ValueError(f"{path.name}:{number}: field 'text' must be a string")
            if row.get("intent") not in Intent.__members__:
                raise ValueError(f"{path.name}:{number}: field 'intent' is {row.get('intent')!r}")
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="dev", help="dev, validation, or a folder of <lang>.jsonl")
    parser.add_argument("--repeat", type=int, default=20, help="warm passes over the set")
    args = parser.parse_args()
    folder = DATA / args.data if args.data in ("dev", "validation") else Path(args.data)
    rows = load_rows(folder)
    for r in rows:  # loads the lexicons, the model and every lingua model the texts need
        classify(r["text"])

    language._lingua_scores.cache_clear()
    start = time.perf_counter()
    results = [classify(r["text"]) for r in rows]
    cold = (time.perf_counter() - start) / len(rows)
    lingua_calls = language._lingua_scores.cache_info().misses

    start = time.perf_counter()
    for _ in range(args.repeat):
        for r in rows:
            classify(r["text"])
    warm = (time.perf_counter() - start) / (len(rows) * args.repeat)

    print(f"{len(rows)} messages: cold {cold * 1e6:.0f} us/message, warm {warm * 1e6:.0f} us/message")
    print(f"lingua consulted for {lingua_calls} of {len(rows)} texts ({lingua_calls / len(rows):.0%})")
    total, good = Counter(), Counter()
    for r, c in zip(rows, results, strict=True):
        for key in (f"lang {r['language']}", f"intent {r['intent']}"):
            total[key] += 1
            good[key] += c.intent.value == r["intent"]
    f = figures(rows, results)
    print(f"intent accuracy {f.intent_accuracy:.3f}, language accuracy {f.language_accuracy:.3f}")
    print(
        f"auto-send: coverage {f.coverage:.3f} ({f.auto_eligible}/{f.messages}), "
        f"confident-wrong {f.confident_wrong_rate:.3f} ({f.confident_wrong}/{f.auto_eligible})"
    )
    for key in sorted(total):
        print(f"  {key:<24} {good[key] / total[key]:.3f}  ({good[key]}/{total[key]})")


if __name__ == "__main__":
    main()
