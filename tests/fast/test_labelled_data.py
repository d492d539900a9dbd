"""The held-out labelled sets are well formed and cover every intent; bench.accuracy scores correctly."""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from worker.triage.types import Intent

REPO_ROOT = Path(__file__).resolve().parents[2]
# bench/ is a folder of scripts run from the checkout, not an installed package.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench import accuracy  # noqa: E402

LABELLED = REPO_ROOT / "tests" / "data" / "labelled"
SHARED_EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "spec" / "triage-examples.jsonl"
LANGUAGES = ("en", "es", "pt", "ru", "fr", "de")
ALL_INTENTS = [i.value for i in Intent]
# These dominate real traffic, so each set holds clearly more of them than the minimum of 4.
DOMINANT = ("not_received", "quality_issue", "wrong_item")


def _normalise(text: str) -> str:
    return " ".join(text.casefold().split())


def _raw_rows(lang: str) -> list[dict]:
    """Parse a file with plain json, independently of bench.accuracy's own validation."""
    rows = []
    for number, line in enumerate((LABELLED / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines(), 1):
        assert line.strip(), f"{lang}.jsonl:{number}: blank line"
        row = json.loads(line)
        assert isinstance(row, dict), f"{lang}.jsonl:{number}: not an object"
        rows.append(row)
    return rows


# --- the data files ---------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_line_is_a_valid_labelled_message(lang: str) -> None:
    for number, row in enumerate(_raw_rows(lang), 1):
        where = f"{lang}.jsonl:{number}"
        assert set(row) <= {"text", "intent", "language", "note"}, where
        assert isinstance(row["text"], str) and row["text"].strip(), where
        assert row["intent"] in ALL_INTENTS, f"{where}: {row['intent']!r}"
        assert row["language"] in (lang, None), f"{where}: {row['language']!r}"
        if row["language"] is None:
            assert not accuracy.has_letters(row["text"]), f"{where}: null language on a text with letters"
        assert isinstance(row.get("note", ""), str), where


@pytest.mark.parametrize("lang", LANGUAGES)
def test_each_language_has_enough_messages_for_every_intent(lang: str) -> None:
    rows = _raw_rows(lang)
    counts = Counter(row["intent"] for row in rows)
    assert len(rows) >= 70
    thin = {intent: counts[intent] for intent in ALL_INTENTS if counts[intent] < 4}
    assert not thin, f"{lang}: intents with fewer than 4 messages: {thin}"
    for intent in DOMINANT:
        assert counts[intent] >= 8, f"{lang}: only {counts[intent]} {intent}"


def test_no_text_appears_twice_across_the_sets() -> None:
    seen: dict[str, str] = {}
    duplicates = []
    for lang in LANGUAGES:
        for number, row in enumerate(_raw_rows(lang), 1):
            key = _normalise(row["text"])
            if key in seen:
                duplicates.append(f"{lang}.jsonl:{number} repeats {seen[key]}")
            seen.setdefault(key, f"{lang}.jsonl:{number}")
    assert not duplicates


@pytest.mark.skipif(not SHARED_EXAMPLES.is_file(), reason="shared spec examples not mounted")
def test_no_text_is_taken_from_the_shared_examples() -> None:
    shared = {
        _normalise(json.loads(line)["case"]["message"]["text"])
        for line in SHARED_EXAMPLES.read_text(encoding="utf-8").splitlines()
        if line.strip() and (json.loads(line)["case"].get("message") or {}).get("text")
    }
    assert shared, "the shared examples file has no message texts to compare against"
    copied = [
        row["text"] for lang in LANGUAGES for row in _raw_rows(lang) if _normalise(row["text"]) in shared
    ]
    assert not copied


def test_readme_gives_a_rule_for_every_intent() -> None:
    readme = (LABELLED / "README.md").read_text(encoding="utf-8")
    missing = [intent for intent in ALL_INTENTS if f"**`{intent}`.**" not in readme]
    assert not missing


def test_bench_loader_accepts_the_committed_sets() -> None:
    samples = accuracy.load_samples(LABELLED)
    assert len(samples) == sum(len(_raw_rows(lang)) for lang in LANGUAGES)
    assert {s.source for s in samples} == set(LANGUAGES)


# --- bench.accuracy: validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "names"),
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "expected a JSON object"),
        ('{"text": "hi", "intent": "other", "language": "en", "intnet": "x"}', "intnet"),
        ('{"text": "  ", "intent": "other", "language": "en"}', "'text'"),
        ('{"text": "hi", "intent": "where_is_it", "language": "en"}', "'intent'"),
        ('{"text": "hi", "intent": "other"}', "'language'"),
        ('{"text": "hi", "intent": "other", "language": "de"}', "'language'"),
        ('{"text": "hi", "intent": "other", "language": null}', "'language'"),
        ('{"text": "hi", "intent": "other", "language": "en", "note": 3}', "'note'"),
    ],
)
def test_parse_line_names_the_place_and_field(line: str, names: str) -> None:
    with pytest.raises(accuracy.LabelledDataError) as err:
        accuracy.parse_line(line, "en", "en.jsonl:7", 7)
    assert "en.jsonl:7" in str(err.value)
    assert names in str(err.value)


def test_parse_line_allows_null_language_only_without_letters() -> None:
    sample = accuracy.parse_line(
        '{"text": "?!?", "intent": "other", "language": null}', "fr", "fr.jsonl:1", 1
    )
    assert sample.language is None and sample.source == "fr"
    assert accuracy.has_letters("ок?") and accuracy.has_letters("é") and not accuracy.has_letters("?? 123 😡")


def test_load_samples_reports_a_missing_file(tmp_path: Path) -> None:
    (tmp_path / "en.jsonl").write_text(
        '{"text": "hi", "intent": "other", "language": "en"}\n', encoding="utf-8"
    )
    assert len(accuracy.load_samples(tmp_path, ["en"])) == 1
    with pytest.raises(accuracy.LabelledDataError, match="es.jsonl"):
        accuracy.load_samples(tmp_path, ["en", "es"])


# --- bench.accuracy: scoring with fake classifiers --------------------------------------------


@dataclass(frozen=True)
class FakeClassification:
    intent: str
    confidence: float


def _sample(text: str, intent: str, source: str, language: str | None = "") -> accuracy.Sample:
    return accuracy.Sample(text, intent, source if language == "" else language, None, source, 1)


def test_score_counts_accuracy_precision_and_misses() -> None:
    samples = [
        _sample("where is it", "not_received", "en"),
        _sample("broken", "quality_issue", "en"),
        _sample("donde esta", "not_received", "es"),
        _sample("??", "other", "es", language=None),
    ]
    predictions = [
        accuracy.Prediction("not_received", 0.9, "en", 0.99),
        accuracy.Prediction("not_received", 0.4, "en", 0.99),  # intent miss
        accuracy.Prediction("not_received", 0.8, "pt", 0.6),  # language miss
        accuracy.Prediction("other", 0.5, None, 0.0),  # None expected and None detected: a hit
    ]
    result = accuracy.score(samples, predictions)
    assert result["messages"] == 4
    assert result["intent_accuracy"] == 0.75
    assert result["language_accuracy"] == 0.75
    assert result["per_language"] == {
        "en": {"messages": 2, "intent_accuracy": 0.5, "language_accuracy": 1.0},
        "es": {"messages": 2, "intent_accuracy": 1.0, "language_accuracy": 0.5},
    }
    assert result["per_intent"]["not_received"] == {
        "messages": 2,
        "intent_accuracy": 1.0,
        "language_accuracy": 0.5,
        "predicted": 3,
        "precision": 0.6667,
    }
    assert result["per_intent"]["quality_issue"]["intent_accuracy"] == 0.0
    assert result["per_intent"]["quality_issue"]["precision"] is None
    assert "payment" not in result["per_intent"]
    assert [(m["text"], m["expected"], m["got"], m["confidence"]) for m in result["intent_misses"]] == [
        ("broken", "quality_issue", "not_received", 0.4)
    ]
    assert [(m["text"], m["expected"], m["got"]) for m in result["language_misses"]] == [
        ("donde esta", "es", "pt")
    ]
    assert result["confusion"] == [["quality_issue", "not_received", 1]]
    assert result["errors"] == 0


def test_score_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="1 samples but 0 predictions"):
        accuracy.score([_sample("x", "other", "en")], [])


def test_predict_turns_a_crash_into_a_listed_miss() -> None:
    def crashing(text: str) -> FakeClassification:
        raise RuntimeError("lexicon not loaded")

    prediction = accuracy.predict(_sample("hello", "other", "en"), crashing, lambda t: ("en", 0.9))
    assert prediction.intent == accuracy.ERROR
    assert prediction.language == "en"
    assert prediction.error == "classify: RuntimeError: lexicon not loaded"
    result = accuracy.score([_sample("hello", "other", "en")], [prediction])
    assert result["errors"] == 1 and result["intent_accuracy"] == 0.0 and result["language_accuracy"] == 1.0


def test_evaluate_with_an_oracle_and_a_constant_classifier() -> None:
    samples = accuracy.load_samples(LABELLED)
    truth = {s.text: s for s in samples}

    def oracle_classify(text: str) -> FakeClassification:
        return FakeClassification(truth[text].intent, 1.0)

    def oracle_detect(text: str) -> tuple[str | None, float]:
        return truth[text].language, 1.0

    perfect = accuracy.evaluate(LABELLED, oracle_classify, oracle_detect)
    assert perfect["messages"] == len(samples)
    assert perfect["intent_accuracy"] == 1.0 and perfect["language_accuracy"] == 1.0
    assert perfect["intent_misses"] == [] and perfect["language_misses"] == []

    constant = accuracy.evaluate(LABELLED, lambda t: FakeClassification("other", 0.3), lambda t: ("en", 0.5))
    share_other = sum(s.intent == "other" for s in samples) / len(samples)
    assert constant["intent_accuracy"] == round(share_other, 4)
    assert constant["per_language"]["en"]["language_accuracy"] < 1.0  # "????" must not be English
    assert constant["per_language"]["ru"]["language_accuracy"] == 0.0
    assert constant["per_intent"]["other"]["intent_accuracy"] == 1.0
    assert constant["per_intent"]["other"]["precision"] == round(share_other, 4)


def test_load_classifier_explains_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes that import fail, whether or not the module exists yet.
    monkeypatch.setitem(sys.modules, "worker.triage.classify", None)
    with pytest.raises(accuracy.ClassifierUnavailable, match=r"worker\.triage\.classify\.classify"):
        accuracy.load_classifier()


def test_main_fails_clearly_without_the_classifier(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "worker.triage.language", None)
    assert accuracy.main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "worker.triage.language.detect_language" in captured.err


def test_main_prints_the_report_and_a_json_summary_last(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fake_classify(text: str) -> FakeClassification:
        return FakeClassification("not_received", 0.7)

    monkeypatch.setattr(accuracy, "load_classifier", lambda: (fake_classify, lambda t: ("en", 0.8)))
    assert accuracy.main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    summary = json.loads(lines[-1])
    assert list(summary) == ["messages", "intent_accuracy", "language_accuracy", "per_language", "per_intent"]
    assert set(summary["per_language"]) == set(LANGUAGES)
    assert set(summary["per_intent"]) == set(ALL_INTENTS)
    assert any("expected quality_issue, got not_received (0.70)" in line for line in lines)
    assert any(line.strip().startswith("quality_issue -> not_received:") for line in lines)


def test_main_rejects_invalid_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(accuracy, "load_classifier", lambda: (None, None))
    (tmp_path / "en.jsonl").write_text(
        '{"text": "hi", "intent": "nope", "language": "en"}\n', encoding="utf-8"
    )
    assert accuracy.main(["--dir", str(tmp_path)]) == 1
    assert "en.jsonl:1" in capsys.readouterr().err
