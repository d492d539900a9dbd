"""Accuracy on messages the classifier never trained on: the held-out sets, with floors.

`tests/data/labelled/` and `tests/data/heldout2/` were written by people who never saw the lexicons
or the model, and nothing is tuned on them. The floors sit a little under the measured figures so a
change that makes the classifier worse on unseen text fails here. Figures: `python -m bench.accuracy`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.accuracy import evaluate
from worker.triage.classify import classify

DATA = Path(__file__).resolve().parents[1] / "data"


def auto_eligible(text: str, threshold: float = 0.6):
    c = classify(text)
    return c, c.confidence >= threshold and c.intent.value != "other" and c.runner_up is None


@pytest.mark.parametrize(
    ("folder", "intent_floor", "language_floor", "per_language_floor"),
    [("labelled", 0.90, 0.98, 0.85), ("heldout2", 0.87, 0.98, 0.80)],
)
def test_held_out_accuracy(folder, intent_floor, language_floor, per_language_floor):
    result = evaluate(DATA / folder)
    assert result["intent_accuracy"] >= intent_floor, result["per_intent"]
    assert result["language_accuracy"] >= language_floor
    for lang, figures in result["per_language"].items():
        assert figures["intent_accuracy"] >= per_language_floor, (lang, figures)


@pytest.mark.parametrize("folder", ["labelled", "heldout2"])
def test_confident_readings_are_rarely_wrong(folder):
    """A reply may go out automatically only on a confident reading: those must almost never be wrong."""
    import json

    rows = [
        json.loads(line) for f in sorted((DATA / folder).glob("*.jsonl")) for line in f.open(encoding="utf-8")
    ]
    eligible = wrong = 0
    for row in rows:
        c, auto = auto_eligible(row["text"])
        eligible += auto
        wrong += auto and c.intent.value != row["intent"]
    assert eligible / len(rows) >= 0.65, "too few messages could be answered automatically"
    assert wrong / eligible <= 0.025, f"{wrong} of {eligible} confident readings were wrong"
