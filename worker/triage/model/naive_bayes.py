"""A small multinomial naive Bayes over words, word pairs and word beginnings: a second opinion.

The lexicons are precise on phrasings they know and silent on the others. This model, trained on
the labelled development messages (`tests/data/dev/`, see `worker/triage/model/train.py`), reads
any wording by its words and their first letters ("leckt", "leaking", "vaza"), so it can name an
intent when no lexicon pattern fires and flag a lexicon reading it disagrees with. It never
decides alone with high confidence: the classifier uses it to suggest and to doubt.

The shipped file (`nb.json`) holds plain counts, so it is readable and reproducible: per feature,
how many training messages of each intent held it. Scoring is sparse: a feature only touches the
intents it was seen with, which keeps a message under ~15 microseconds in pure Python.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from worker.triage.types import Intent

MODEL_PATH = Path(__file__).parent / "nb.json"
FORMAT = "sellerdesk-nb/1"
# Words longer than this also count by their beginning, a cheap stem ("defectuoso" -> "defec").
PREFIX_CHARS = 5
MAX_FEATURES_PER_MESSAGE = 400
INTENTS: tuple[Intent, ...] = tuple(Intent)


class ModelError(ValueError):
    """The model file is missing or malformed; the message names the file and the field."""


def features(tokens: Sequence[str]) -> list[str]:
    """Features of a folded, tokenised message: words, adjacent word pairs and word beginnings."""
    words = [("#" if t.isdigit() else t) for t in tokens if t[0].isalnum() or t[0] == "_"]
    out = list(words)
    out.extend(f"{a} {b}" for a, b in zip(words, words[1:], strict=False))
    out.extend(f"{w[:PREFIX_CHARS]}~" for w in words if len(w) > PREFIX_CHARS and w != "#")
    return out[:MAX_FEATURES_PER_MESSAGE]


@dataclass(frozen=True)
class NaiveBayes:
    """Log-space multinomial naive Bayes with additive smoothing, stored sparse."""

    alpha: float
    temperature: float
    # Per intent: log prior + the log likelihood of a feature never seen with that intent is
    # `unseen[i]`; a feature seen with it adds `boost[f][i]` on top.
    prior: tuple[float, ...]
    unseen: tuple[float, ...]
    boost: dict[str, tuple[tuple[int, float], ...]]

    @classmethod
    def from_counts(
        cls, counts: dict[str, dict[str, int]], totals: dict[str, int], alpha: float, temperature: float
    ) -> NaiveBayes:
        """Build from feature -> intent -> count and intent -> total feature count (uniform prior)."""
        vocab = len(counts)
        index = {intent.value: k for k, intent in enumerate(INTENTS)}
        unseen = tuple(math.log(alpha / (totals.get(i.value, 0) + alpha * vocab)) for i in INTENTS)
        boost: dict[str, tuple[tuple[int, float], ...]] = {}
        for feature, per_intent in counts.items():
            boost[feature] = tuple(
                sorted((index[i], math.log((n + alpha) / alpha)) for i, n in per_intent.items() if n > 0)
            )
        prior = tuple(0.0 for _ in INTENTS)
        return cls(alpha=alpha, temperature=temperature, prior=prior, unseen=unseen, boost=boost)

    def posterior(self, tokens: Sequence[str]) -> dict[Intent, float]:
        """Probability of each intent for a message (folded tokens); empty when no feature is known."""
        scores = list(self.prior)
        known = 0
        for f in features(tokens):
            hits = self.boost.get(f)
            if hits is None:
                continue
            known += 1
            for k, value in hits:
                scores[k] += value
        if not known:
            return {}
        # Every known feature also adds its "unseen" likelihood to every intent.
        scores = [(s + known * u) / self.temperature for s, u in zip(scores, self.unseen, strict=True)]
        top = max(scores)
        exp = [math.exp(s - top) for s in scores]
        z = sum(exp)
        return {intent: e / z for intent, e in zip(INTENTS, exp, strict=True)}


def train_counts(
    samples: Iterable[tuple[Sequence[str], str]], min_count: int = 2
) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Feature counts per intent from (tokens, intent) pairs; features seen fewer times are dropped.

    A feature counts once per message, so a word repeated in one message does not outweigh the rest.
    """
    counts: dict[str, dict[str, int]] = {}
    for tokens, intent in samples:
        if intent not in Intent.__members__:
            raise ValueError(f"intent: {intent!r} is not one of the 13 intents")
        for f in set(features(tokens)):
            per = counts.setdefault(f, {})
            per[intent] = per.get(intent, 0) + 1
    kept = {f: per for f, per in counts.items() if sum(per.values()) >= min_count}
    totals: dict[str, int] = {}
    for per in kept.values():
        for intent, n in per.items():
            totals[intent] = totals.get(intent, 0) + n
    return kept, totals


def dump(
    path: Path, counts: dict[str, dict[str, int]], totals: dict[str, int], alpha: float, temperature: float
) -> None:
    """Write the counts as the shipped JSON model (sorted, one feature per line, diff-friendly)."""
    lines = [
        "{",
        f'  "format": "{FORMAT}",',
        f'  "alpha": {alpha},',
        f'  "temperature": {temperature},',
        f'  "totals": {json.dumps(dict(sorted(totals.items())))},',
        '  "counts": {',
    ]
    items = sorted(counts.items())
    for n, (feature, per) in enumerate(items):
        comma = "," if n < len(items) - 1 else ""
        lines.append(
            f"    {json.dumps(feature, ensure_ascii=False)}: {json.dumps(dict(sorted(per.items())))}{comma}"
        )
    lines += ["  }", "}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def load(path: Path = MODEL_PATH) -> NaiveBayes:
    """Read a model file written by `dump`; ModelError names the file and the bad field."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: model file not found (run python -m worker.triage.model.train)") from None
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path.name}: invalid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelError(f"{path.name}: format: expected {FORMAT!r}")
    alpha, temperature = data.get("alpha"), data.get("temperature")
    for name, value in (("alpha", alpha), ("temperature", temperature)):
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ModelError(f"{path.name}: {name}: expected a positive number, got {value!r}")
    counts, totals = data.get("counts"), data.get("totals")
    if not isinstance(counts, dict) or not isinstance(totals, dict):
        raise ModelError(f"{path.name}: counts/totals: expected objects")
    for feature, per in counts.items():
        if not isinstance(per, dict) or not all(
            i in Intent.__members__ and isinstance(n, int) and n >= 0 for i, n in per.items()
        ):
            raise ModelError(f"{path.name}: counts[{feature!r}]: expected intent -> count")
    return NaiveBayes.from_counts(counts, totals, float(alpha), float(temperature))


@cache
def default_model() -> NaiveBayes:
    """The shipped model, read once per process."""
    return load(MODEL_PATH)
