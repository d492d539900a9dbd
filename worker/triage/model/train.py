"""Train the naive Bayes second opinion on labelled development messages and write `nb.json`.

    python -m worker.triage.model.train                  # tests/data/dev -> worker/triage/model/nb.json
    python -m worker.triage.model.train --folds 5        # also print cross-validated accuracy

Only the development sets are used (never `tests/data/labelled/`, the held-out evaluation, nor
`tests/data/validation/`, which measures what the classifier does on text it was not built on).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from worker.triage.lexicon import Text
from worker.triage.model.naive_bayes import MODEL_PATH, NaiveBayes, dump, train_counts

ROOT = Path(__file__).resolve().parents[3]
DEV_DIR = ROOT / "tests" / "data" / "dev"
ALPHA = 0.3
# Softens the posterior: naive Bayes multiplies correlated evidence and is far too sure of itself.
TEMPERATURE = 4.0
MIN_COUNT = 2


def read_samples(directory: Path) -> list[tuple[tuple[str, ...], str]]:
    """(folded tokens, intent) for every line of every `<lang>.jsonl` in a directory."""
    out: list[tuple[tuple[str, ...], str]] = []
    paths = sorted(directory.glob("*.jsonl"))
    if not paths:
        raise FileNotFoundError(f"{directory}: no <lang>.jsonl file")
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            if not isinstance(row.get("text"), str) or not isinstance(row.get("intent"), str):
                raise ValueError(f"{path.name}:{number}: fields 'text' and 'intent' must be strings")
            out.append((Text.of(row["text"]).tokens, row["intent"]))
    return out


def fit(
    samples: Sequence[tuple[Sequence[str], str]], alpha: float = ALPHA, temperature: float = TEMPERATURE
) -> NaiveBayes:
    counts, totals = train_counts(samples, MIN_COUNT)
    return NaiveBayes.from_counts(counts, totals, alpha, temperature)


def cross_validate(
    samples: Sequence[tuple[Sequence[str], str]], folds: int, alpha: float, temperature: float
) -> float:
    """Accuracy of the model's top intent, each message scored by a model not trained on it."""
    right = 0
    for k in range(folds):
        train = [s for n, s in enumerate(samples) if n % folds != k]
        model = fit(train, alpha, temperature)
        for tokens, intent in samples[k::folds]:
            post = model.posterior(tokens)
            right += bool(post) and max(post, key=post.__getitem__).value == intent
    return right / len(samples)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m worker.triage.model.train", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--dev", type=Path, default=DEV_DIR, help="folder with <lang>.jsonl")
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    parser.add_argument("--folds", type=int, default=0, help="print k-fold cross-validated accuracy")
    args = parser.parse_args(argv)
    samples = read_samples(args.dev)
    if args.folds > 1:
        print(f"{args.folds}-fold accuracy: {cross_validate(samples, args.folds, ALPHA, TEMPERATURE):.3f}")
    counts, totals = train_counts(samples, MIN_COUNT)
    dump(args.out, counts, totals, ALPHA, TEMPERATURE)
    print(f"{len(samples)} messages, {len(counts)} features -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
