"""Held-out accuracy of the buyer-message classifier on `tests/data/labelled/<language>.jsonl`.

Run as `python -m bench.accuracy`: prints per-language and per-intent accuracy of intent and of
language detection, the misses, and last one JSON line with the figures. `evaluate()` returns the
same figures for tests that assert accuracy floors. The scoring helpers are pure: they take the
classifier as plain callables, so they are tested with fakes.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.triage.types import Intent

LABELLED_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "labelled"
LANGUAGES: tuple[str, ...] = ("en", "es", "pt", "ru", "fr", "de")
INTENTS: tuple[str, ...] = tuple(i.value for i in Intent)
FIELDS = frozenset({"text", "intent", "language", "note"})
# What a prediction holds in place of an intent or language when the function raised.
ERROR = "<error>"

# A letter in any script; a text without one ("????", "?!") carries no language at all.
_LETTER = re.compile(r"[^\W\d_]")

ClassifyFn = Callable[[str], Any]
DetectFn = Callable[[str], tuple[str | None, float]]


class LabelledDataError(ValueError):
    """A labelled file is missing or a line breaks the format; the message names file, line, field."""


class ClassifierUnavailable(RuntimeError):
    """The classifier modules cannot be imported yet."""


@dataclass(frozen=True)
class Sample:
    """One labelled buyer message; `source` is the language of the file it came from."""

    text: str
    intent: str
    language: str | None
    note: str | None
    source: str
    line: int


@dataclass(frozen=True)
class Prediction:
    """What the classifier said about one sample; `error` is set when it raised instead."""

    intent: str
    confidence: float
    language: str | None
    language_confidence: float
    error: str | None = None


def has_letters(text: str) -> bool:
    """True when the text holds at least one letter of any script."""
    return _LETTER.search(text) is not None


def parse_line(raw: str, source: str, where: str, line: int) -> Sample:
    """One JSONL line -> Sample; raises LabelledDataError naming `where` (file:line) and the field."""
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise LabelledDataError(f"{where}: not valid JSON ({exc.msg})") from exc
    if not isinstance(obj, dict):
        raise LabelledDataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - FIELDS)
    if unknown:
        raise LabelledDataError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(FIELDS)}")
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        raise LabelledDataError(f"{where}: field 'text' must be a non-blank string")
    intent = obj.get("intent")
    if intent not in INTENTS:
        raise LabelledDataError(f"{where}: field 'intent' is {intent!r}, not one of {list(INTENTS)}")
    if "language" not in obj:
        raise LabelledDataError(f"{where}: field 'language' is missing")
    language = obj["language"]
    # The file decides the language; null is only for texts that have no letters to detect.
    if language is None:
        if has_letters(text):
            raise LabelledDataError(f"{where}: field 'language' is null but the text has letters")
    elif language != source:
        raise LabelledDataError(f"{where}: field 'language' is {language!r} in the {source!r} file")
    note = obj.get("note")
    if note is not None and not isinstance(note, str):
        raise LabelledDataError(f"{where}: field 'note' must be a string")
    return Sample(text=text, intent=intent, language=language, note=note or None, source=source, line=line)


def load_samples(directory: Path = LABELLED_DIR, languages: Sequence[str] = LANGUAGES) -> list[Sample]:
    """Read and validate `<directory>/<language>.jsonl` for each language, in that order."""
    samples: list[Sample] = []
    for lang in languages:
        path = directory / f"{lang}.jsonl"
        if not path.is_file():
            raise LabelledDataError(f"{path}: labelled file is missing")
        for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if raw.strip():
                samples.append(parse_line(raw, lang, f"{path.name}:{number}", number))
    return samples


def predict(sample: Sample, classify_fn: ClassifyFn, detect_fn: DetectFn) -> Prediction:
    """Run both functions on one sample without a language hint, as the pipeline sees a new message."""
    # A crash on one message is scored as a miss and listed, rather than hiding the other figures.
    errors: list[str] = []
    intent, confidence = ERROR, 0.0
    language: str | None = ERROR
    language_confidence = 0.0
    try:
        result = classify_fn(sample.text)
        intent, confidence = str(result.intent), float(result.confidence)
    except Exception as exc:
        errors.append(f"classify: {type(exc).__name__}: {exc}")
    try:
        language, language_confidence = detect_fn(sample.text)
        language_confidence = float(language_confidence)
    except Exception as exc:
        errors.append(f"detect_language: {type(exc).__name__}: {exc}")
    return Prediction(intent, confidence, language, language_confidence, "; ".join(errors) or None)


def _ratio(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def _group_scores(pairs: Iterable[tuple[Sample, Prediction]]) -> dict[str, Any]:
    pairs = list(pairs)
    intent_hits = sum(p.intent == s.intent for s, p in pairs)
    language_hits = sum(p.language == s.language for s, p in pairs)
    return {
        "messages": len(pairs),
        "intent_accuracy": _ratio(intent_hits, len(pairs)),
        "language_accuracy": _ratio(language_hits, len(pairs)),
    }


def score(samples: Sequence[Sample], predictions: Sequence[Prediction]) -> dict[str, Any]:
    """Accuracy overall, per file language and per expected intent, plus the misses and confusions."""
    if len(samples) != len(predictions):
        raise ValueError(f"{len(samples)} samples but {len(predictions)} predictions")
    pairs = list(zip(samples, predictions, strict=True))
    per_language = {
        lang: _group_scores((s, p) for s, p in pairs if s.source == lang)
        for lang in dict.fromkeys(s.source for s in samples)
    }
    predicted = Counter(p.intent for p in predictions)
    per_intent: dict[str, Any] = {}
    for intent in INTENTS:
        group = [(s, p) for s, p in pairs if s.intent == intent]
        if not group:
            continue
        scores = _group_scores(group)
        # Precision: of the messages the classifier put in this intent, how many belong there.
        hits = sum(p.intent == s.intent for s, p in group)
        scores["predicted"] = predicted[intent]
        scores["precision"] = _ratio(hits, predicted[intent])
        per_intent[intent] = scores
    intent_misses = [
        {
            "language": s.source,
            "text": s.text,
            "expected": s.intent,
            "got": p.intent,
            "confidence": round(p.confidence, 3),
            "note": s.note,
            "error": p.error,
        }
        for s, p in pairs
        if p.intent != s.intent
    ]
    language_misses = [
        {
            "text": s.text,
            "expected": s.language,
            "got": p.language,
            "confidence": round(p.language_confidence, 3),
            "error": p.error,
        }
        for s, p in pairs
        if p.language != s.language
    ]
    confusion = Counter((m["expected"], m["got"]) for m in intent_misses)
    overall = _group_scores(pairs)
    return {
        "messages": overall["messages"],
        "intent_accuracy": overall["intent_accuracy"],
        "language_accuracy": overall["language_accuracy"],
        "per_language": per_language,
        "per_intent": per_intent,
        "errors": sum(p.error is not None for p in predictions),
        "confusion": [[e, g, n] for (e, g), n in confusion.most_common()],
        "intent_misses": intent_misses,
        "language_misses": language_misses,
    }


def load_classifier() -> tuple[ClassifyFn, DetectFn]:
    """The real classify and detect_language; raises ClassifierUnavailable saying what is missing."""
    try:
        from worker.triage.classify import classify
        from worker.triage.language import detect_language
    except ImportError as exc:
        raise ClassifierUnavailable(
            "bench.accuracy needs worker.triage.classify.classify and "
            f"worker.triage.language.detect_language, which cannot be imported: {exc}"
        ) from exc
    return classify, detect_language


def evaluate(
    directory: Path = LABELLED_DIR,
    classify_fn: ClassifyFn | None = None,
    detect_fn: DetectFn | None = None,
) -> dict[str, Any]:
    """Score the classifier (the real one unless both functions are given) on the labelled sets."""
    if classify_fn is None or detect_fn is None:
        classify_fn, detect_fn = load_classifier()
    samples = load_samples(directory)
    predictions = [predict(s, classify_fn, detect_fn) for s in samples]
    return score(samples, predictions)


SUMMARY_KEYS = ("messages", "intent_accuracy", "language_accuracy", "per_language", "per_intent")


def _pct(value: float | None) -> str:
    return "   -  " if value is None else f"{value * 100:5.1f}%"


def format_report(result: dict[str, Any]) -> str:
    """Human-readable report; its last line is the JSON summary (SUMMARY_KEYS only)."""
    out: list[str] = ["per language            n   intent  language"]
    for lang, s in result["per_language"].items():
        out.append(
            f"  {lang:<18} {s['messages']:>5}  {_pct(s['intent_accuracy'])}  {_pct(s['language_accuracy'])}"
        )
    out.append("per intent              n   intent  language  precision")
    for intent, s in result["per_intent"].items():
        out.append(
            f"  {intent:<18} {s['messages']:>5}  {_pct(s['intent_accuracy'])}  "
            f"{_pct(s['language_accuracy'])}    {_pct(s['precision'])}"
        )
    out.append(
        f"overall {result['messages']} messages: intent {_pct(result['intent_accuracy'])}, "
        f"language {_pct(result['language_accuracy'])}, errors {result['errors']}"
    )
    if result["confusion"]:
        out.append("confusion (expected -> got: count)")
        out.extend(f"  {e} -> {g}: {n}" for e, g, n in result["confusion"])
    out.append(f"intent misses ({len(result['intent_misses'])})")
    for m in result["intent_misses"]:
        why = f"  [{m['error']}]" if m["error"] else ""
        out.append(
            f"  [{m['language']}] expected {m['expected']}, got {m['got']} ({m['confidence']:.2f}): "
            f"{m['text']!r}{why}"
        )
    out.append(f"language misses ({len(result['language_misses'])})")
    for m in result["language_misses"]:
        out.append(f"  expected {m['expected']}, got {m['got']} ({m['confidence']:.2f}): {m['text']!r}")
    out.append(json.dumps({k: result[k] for k in SUMMARY_KEYS}, ensure_ascii=False, sort_keys=False))
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry: 0 on success, 1 on invalid labelled data, 2 when the classifier is missing."""
    parser = argparse.ArgumentParser(prog="python -m bench.accuracy", description=__doc__)
    parser.add_argument("--dir", type=Path, default=LABELLED_DIR, help="folder with <language>.jsonl")
    args = parser.parse_args(argv)
    try:
        result = evaluate(args.dir)
    except ClassifierUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except LabelledDataError as exc:
        print(f"error: invalid labelled data: {exc}", file=sys.stderr)
        return 1
    print(format_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
