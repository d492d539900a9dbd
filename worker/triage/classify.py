"""What a buyer message is about: one of the 13 intents, with evidence and a calibrated confidence.

Evidence comes from the lexicon of the message's language (`lexicons/<lang>.toml`): every pattern
found adds its weight to its intent, unless a negation cue governs it ("not damaged") or a longer,
at least as heavy pattern of another intent covers it ("haven't received my refund" is about the
refund, not the parcel). Per intent, the strongest hit counts in full and each further hit on other
words for half (overlapping hits count once). Two more kinds of evidence come from the lexicon's
data rather than its phrases:

- contrast: after the last contrast marker ("but", "unfortunately", "leider") that has evidence
  after it, praise before it is dropped and a problem before it counts for BEFORE_CONTRAST, so
  "thanks for the fast shipping, unfortunately the left earbud is silent" is quality_issue;
- structure: once a message says what was ordered or chosen, two different values of one
  attribute ("chose red, pink came", sizes 38 and 40, "case for S21, I ordered S22", UK and EU
  plugs) are wrong_item evidence, and fewer pieces than ordered ("bought 3, received 2")
  missing_item evidence (`_structure_hits`).

Several problems at once: the one that needs action wins, by tier. When a problem (parcel,
item, customs, shipping) has clear evidence, a refund demand counts for REQUEST_DAMPING of its
score, as do other requests (cancel, address, payment) named no more firmly than the problem, and
courtesy (thanks, other) counts for COURTESY_DAMPING; a decisive phrase (weight 4) is never damped.
An explicit cancel outranks "it has not come" (the reason for cancelling). So "thanks, but the size
is wrong" is wrong_item, "where is my parcel? also can I change the address" is not_received
(change_address as runner-up, which sends it to a human), "it never came, I want my money back" is
not_received with the signal wants_refund, and "still not shipped after 12 days, cancel it" is
cancel_order.

Confidence is a softmax over the intents found plus a fixed "nothing clear" baseline, so one weak
hint stays below 0.5, one clear phrase gives about 0.88, and two close intents share it. It is then
calibrated for auto-send (`Classifier._calibrate`): a statistical second opinion
(worker/triage/model/) caps readings it clearly disagrees with, and one-phrase readings it does not
back, below the auto-send level; short messages and foreign-lexicon readings are capped too.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache

from worker.triage.language import LanguageDetector, LanguageGuess, default_detector
from worker.triage.lexicon import (
    KIND_ATTRIBUTE,
    KIND_CONTRAST,
    KIND_HEAD,
    KIND_INTENT,
    KIND_MEASURE,
    KIND_ORDERED,
    KIND_SIGNAL,
    KIND_UNIT,
    SIZE_LETTERS_RE,
    Hit,
    Lexicon,
    Pattern,
    Text,
    load_lexicons,
)
from worker.triage.model.naive_bayes import NaiveBayes, default_model
from worker.triage.types import Classification, Intent

PROBLEMS = frozenset(
    {
        Intent.not_received,
        Intent.quality_issue,
        Intent.wrong_item,
        Intent.missing_item,
        Intent.customs_tax,
        Intent.empty_package,
        Intent.shipping_method,
    }
)
REQUESTS = frozenset({Intent.cancel_order, Intent.change_address, Intent.payment, Intent.refund_request})
COURTESY = frozenset({Intent.thanks, Intent.other})
# Equal scores go to the more specific reading: an empty box that is also torn is empty_package,
# a wrong item that is also "too small" is wrong_item.
TIE_ORDER = (
    Intent.empty_package,
    Intent.missing_item,
    Intent.wrong_item,
    Intent.customs_tax,
    Intent.quality_issue,
    Intent.shipping_method,
    Intent.not_received,
    Intent.cancel_order,
    Intent.change_address,
    Intent.payment,
    Intent.refund_request,
    Intent.thanks,
    Intent.other,
)

CLEAR_EVIDENCE = 1.5  # a tier "has clear evidence" from this score on
DECISIVE = 4.0  # an intent with a hit this heavy is not outranked by the priority of tiers
REQUEST_DAMPING = 0.6
COURTESY_DAMPING = 0.3
BASELINE = 1.0  # score of "nothing clear"; an intent must beat it to pass 0.5
SHARPNESS = 2.0  # softmax inverse temperature
MIN_INTENT_SCORE = 1.0  # below this (weak words only) the message is `other`
NO_EVIDENCE_CONFIDENCE = 0.3
RUNNER_UP_MIN = 0.2  # a second intent with this probability, and at least a third of the winner's
SECOND_REQUEST_SCORE = 3.0  # ...or a request with a strong phrase of its own
CANCEL_OVER_WAIT = 3.0  # a cancel this clear outranks "it has not come" (the reason to cancel)
MAX_SCORE = 8.0
SURE_LANGUAGE = 0.8  # a detected language this sure is read with its own lexicon only
# Second opinion (see Classifier._calibrate). Measured on fresh messages the lexicons were not
# tuned on: doubting cut confidently wrong auto-sends from 13% to 3% (coverage 0.71 -> 0.60), and
# asking the model to back one-phrase readings brought them under 2% (coverage about 0.56).
DOUBT_TOP = 0.3  # the model's own reading is at least this likely...
DOUBT_WINNER = 0.15  # ...and the lexicon's reading at most this likely: doubt it
DOUBT_CAP = 0.55  # confidence of a doubted, suggested or short reading: below auto-send (0.6)
DOUBT_BELOW_SCORE = 3.5  # a reading with a strong phrase and more besides is not doubted
SUPPORT_SINGLE = 0.3  # a reading resting on one phrase needs the model at least this sure of it
SUGGEST_MIN = 0.45  # a model reading offered when no lexicon pattern fired
SUGGEST_MIN_WORDS = 3
SHORT_WORDS = 3  # fewer words than this: too little text to auto-send on
# Evidence before a contrast marker that has evidence after it counts this much ("it took 6 weeks,
# but the case is for the wrong phone").
BEFORE_CONTRAST = 0.5
MIN_WORDS_AFTER_CONTRAST = 2
MAX_REASONS = 12
# Shouting: this share of upper-case letters over at least this many letters reads as a complaint.
SHOUT_SHARE = 0.7
SHOUT_MIN_LETTERS = 12
_LETTER_RE = re.compile(r"[^\W\d_]")
_DIGIT_RE = re.compile(r"\d")
_UPPER_RE = re.compile(r"[A-ZÀ-ÖØ-ÞА-ЯЁ]")


@dataclass
class _Scored:
    lexicon: Lexicon
    scores: dict[Intent, float]
    evidence: dict[Intent, list[Hit]]
    signals: dict[str, Hit]
    negated: list[Hit]
    contrast: bool = False  # a contrast marker ("but", "leider") was found

    @property
    def top(self) -> float:
        return max(self.scores.values(), default=0.0)


class Classifier:
    """Scores a message against the lexicons; build once, reuse for every message."""

    def __init__(
        self, lexicons: dict[str, Lexicon], detector: LanguageDetector, model: NaiveBayes | None = None
    ) -> None:
        self.lexicons = lexicons
        self.detector = detector
        self.model = model

    def classify(self, text: str, *, language: str | None = None) -> Classification:
        if not isinstance(text, str):
            raise TypeError(f"text: expected str, got {type(text).__name__}")
        if not text.strip():
            raise ValueError("text: the message is empty")
        prepared = Text.of(text)
        if language is not None:
            if not isinstance(language, str) or len(language) != 2 or not language.isalpha():
                raise ValueError(f"language: expected a two-letter ISO 639-1 code, got {language!r}")
            guess = LanguageGuess(language.lower(), 1.0, "given")
        else:
            guess = self.detector.detect(prepared)
        reasons = [f"language {guess.language or 'unknown'} ({guess.method}, {guess.confidence:.2f})"]

        scored = self._score_best(prepared, guess, reasons)
        intent, confidence, runner_up, explain = _decide(scored.scores, "wants_cancel" in scored.signals)
        reasons.extend(explain)
        intent, confidence, runner_up = self._calibrate(
            prepared, guess, scored, intent, confidence, runner_up, reasons
        )
        for it, hits in sorted(scored.evidence.items(), key=lambda kv: -scored.scores[kv[0]]):
            for h in sorted(hits, key=lambda h: -h.pattern.weight):
                reasons.append(
                    f"intent {it.value}: '{h.pattern.source}' ({scored.lexicon.code}, +{h.pattern.weight:g})"
                )
        for h in scored.negated:
            reasons.append(f"negated: '{h.pattern.source}' (by '{h.negated_by}')")

        signals = set(scored.signals)
        if _shouting(prepared.raw):
            signals.add("complaint")
            reasons.append("signal complaint: written in capitals")
        for name, h in sorted(scored.signals.items()):
            reasons.append(f"signal {name}: '{h.pattern.source}'")
        if "auto_reply" in signals:
            # An auto-responder is nobody to answer: never let it look like a buyer's request.
            intent, confidence, runner_up = Intent.other, 0.9, None
            reasons.append("auto-reply: routed as other")
        return Classification(
            language=guess.language,
            intent=intent,
            confidence=round(confidence, 3),
            runner_up=runner_up,
            reasons=tuple(reasons[: MAX_REASONS + 1]),
            signals=tuple(sorted(signals)),
        )

    def _calibrate(
        self,
        text: Text,
        guess: LanguageGuess,
        scored: _Scored,
        intent: Intent,
        confidence: float,
        runner_up: Intent | None,
        reasons: list[str],
    ) -> tuple[Intent, float, Intent | None]:
        """Confidence that is safe to auto-send on: the lexicon's reading, doubted where it is thin.

        The lexicons are sure of phrasings they know and can be wrong on new ones; the statistical
        model (worker/triage/model/) reads any wording. When the lexicons find nothing, a clear model
        reading is offered at low confidence (a human checks it). When the model clearly prefers
        another intent, the reading is capped below the auto-send level and the model's intent is
        named as runner-up, unless the lexicons found more than one strong phrase for it; a reading
        resting on a single phrase is capped unless the model backs it. Very short messages and
        readings from another language's lexicon are capped too: too little to go on.
        """
        words = sum(1 for t in text.tokens if t.isalpha())
        # A reading with a strong phrase and more besides is neither doubted nor in need of
        # backing: the model is not asked (it costs a fifth of the time of a message).
        firm = (
            scored.scores.get(intent, 0.0) >= DOUBT_BELOW_SCORE and len(scored.evidence.get(intent, ())) > 1
        )
        post = self.model.posterior(text.tokens) if self.model is not None and not firm else {}
        if post:
            top = max(post, key=post.__getitem__)
            reasons.append(f"model: {top.value} ({post[top]:.2f})")
            # Praise followed by "but" is not thanks, whatever the model makes of the praise.
            praise_then_but = top == Intent.thanks and scored.contrast
            if (
                not scored.scores
                and top != Intent.other
                and not praise_then_but
                and post[top] >= SUGGEST_MIN
                and words >= SUGGEST_MIN_WORDS
            ):
                reasons.append(f"no lexicon evidence: model reading {top.value}, for a human to check")
                return top, min(post[top], DOUBT_CAP), None
            if (
                intent != Intent.other
                and scored.scores.get(intent, 0.0) < DOUBT_BELOW_SCORE
                and top != intent
                and post[top] >= DOUBT_TOP
                and post.get(intent, 0.0) <= DOUBT_WINNER
            ):
                reasons.append(f"model doubts {intent.value} ({post.get(intent, 0.0):.2f}): capped")
                confidence = min(confidence, DOUBT_CAP)
                if runner_up is None and top != Intent.other:
                    runner_up = top
            elif (
                intent != Intent.other
                and len(scored.evidence.get(intent, ())) == 1
                and top != intent
                and post.get(intent, 0.0) < SUPPORT_SINGLE
            ):
                # One phrase and no backing from the model: right most of the time, but not
                # often enough to answer without a human.
                reasons.append(
                    f"one phrase, model unsure of {intent.value} ({post.get(intent, 0.0):.2f}): capped"
                )
                confidence = min(confidence, DOUBT_CAP)
        elif (
            self.model is not None
            and not firm
            and intent != Intent.other
            and len(scored.evidence.get(intent, ())) == 1
        ):
            reasons.append("one phrase, no word the model knows: capped")
            confidence = min(confidence, DOUBT_CAP)
        if intent != Intent.other and words < SHORT_WORDS:
            confidence = min(confidence, DOUBT_CAP)
            reasons.append(f"short message ({words} words): capped")
        if scored.lexicon.code != guess.language and intent != Intent.other:
            confidence = min(confidence, DOUBT_CAP)
        return intent, confidence, runner_up

    def _score_best(self, text: Text, guess: LanguageGuess, reasons: list[str]) -> _Scored:
        """The lexicon of the message's language; every lexicon when that one finds nothing clear
        and the language itself is in doubt (another language, or a weak guess)."""
        primary = self.lexicons.get(guess.language or "")
        best: _Scored | None = None
        if primary is not None:
            best = _score(primary, text)
            if best.top >= CLEAR_EVIDENCE or guess.confidence >= SURE_LANGUAGE:
                # A foreign lexicon reading a message surely in this language only finds false
                # friends ("set" is German for a set, English for anything).
                return best
        for lex in self.lexicons.values():
            if lex is primary:
                continue
            candidate = _score(lex, text)
            if best is None or candidate.top > best.top:
                best = candidate
        assert best is not None
        if best.lexicon is not primary and best.top > 0:
            reasons.append(f"mixed-language fallback: {best.lexicon.code} lexicon matched best")
        return best


def _score(lex: Lexicon, text: Text) -> _Scored:
    hits, tokens = lex.scan(text)
    hits.extend(_structure_hits(lex, tokens, text.raw, hits))
    kept, negated = _resolve(hits)
    factors = _contrast_factors(kept, tokens)
    evidence: dict[Intent, list[Hit]] = {}
    signals: dict[str, Hit] = {}
    for h in kept:
        if h.pattern.kind == KIND_SIGNAL:
            signals.setdefault(h.pattern.target[7:], h)
        elif h.pattern.kind == KIND_INTENT and factors.get(id(h), 1.0) > 0:
            evidence.setdefault(Intent(h.pattern.target), []).append(h)
    scores: dict[Intent, float] = {}
    for intent, hs in evidence.items():
        # The same words count once: of overlapping hits ("my money", "money back") the heaviest.
        counted: list[Hit] = []
        for h in sorted(hs, key=lambda h: -h.pattern.weight * factors.get(id(h), 1.0)):
            if not any(h.start < c.end and c.start < h.end for c in counted):
                counted.append(h)
        evidence[intent] = counted
        weights = [h.pattern.weight * factors.get(id(h), 1.0) for h in counted]
        scores[intent] = min(MAX_SCORE, weights[0] + 0.5 * sum(weights[1:]))
    contrast = any(h.pattern.kind == KIND_CONTRAST for h in kept)
    return _Scored(lex, scores, evidence, signals, negated, contrast)


def _contrast_factors(hits: list[Hit], tokens: list[str]) -> dict[int, float]:
    """Weight factors (by hit id) from the last contrast marker that has evidence after it.

    "Thanks for the fast shipping! Unfortunately the left earbud is silent": what follows a contrast
    marker is the point. Praise before it is dropped, a problem before it (a settled complaint: "it
    took 6 weeks, but...") counts for BEFORE_CONTRAST; requests keep their weight. A hit spanning
    the marker ("ordered M but got L") is after it.
    """
    markers = sorted((h for h in hits if h.pattern.kind == KIND_CONTRAST), key=lambda h: h.start)
    if not markers:
        return {}
    intents = [h for h in hits if h.pattern.kind == KIND_INTENT]
    chosen: Hit | None = None
    for m in reversed(markers):
        if any(h.end > m.end and Intent(h.pattern.target) not in COURTESY for h in intents):
            chosen = m
            break
    factors: dict[int, float] = {}
    if chosen is None:
        # Nothing recognised after the marker: praise before it still is not the point
        # ("thanks, but the strap smells odd" must not be answered with "glad you like it").
        last = markers[-1]
        if sum(1 for t in tokens[last.end :] if t[0].isalnum()) >= MIN_WORDS_AFTER_CONTRAST:
            for h in intents:
                if h.end <= last.start and h.pattern.target == Intent.thanks.value:
                    factors[id(h)] = 0.0
        return factors
    for h in intents:
        if h.end <= chosen.start:
            intent = Intent(h.pattern.target)
            if intent == Intent.thanks:
                factors[id(h)] = 0.0
            elif intent in PROBLEMS:  # a settled complaint; requests before it still stand
                factors[id(h)] = BEFORE_CONTRAST
    return factors


# Model or variant codes: letters and digits mixed ("s21", "a52", "128gb", "2m"), but not ordinals
# ("14th", "3eme") nor order and tracking numbers (more than four digits).
_CODE_RE = re.compile(r"(?=[a-z]*\d)(?=\d*[a-z])[a-z\d]{2,8}")
_ORDINAL_RE = re.compile(r"\d+(?:st|nd|rd|th|er|eme|e|o|a|h|go|ye|ya|i|x)")
_SENTENCE_END = frozenset({".", "!", "?", ";"})
# A bare number in this range, not a price or a duration, is a clothing or shoe size ("38 vs 40").
SIZE_NUMBERS = range(16, 61)
# A bare number below this is a quantity ("ordered 3, got 2").
QUANTITY_LIMIT = 16
STRUCTURE_WEIGHT = 3.0


def _structure_hits(lex: Lexicon, tokens: list[str], raw: str, hits: list[Hit]) -> list[Hit]:
    """Evidence from the message's structure rather than its words, once it says what was ordered.

    Two different values of one attribute (colours, plug types, sizes 38 and 40, codes S21 and S22)
    read as "ordered X, got Y" (wrong_item); fewer pieces than ordered ("bought 3 shirts, received
    2", "20 pens instead of 24") as missing_item.
    """
    ordered = [h for h in hits if h.pattern.kind == KIND_ORDERED and h.negated_by is None]
    if not ordered:
        return []
    if (
        not any(h.pattern.kind == KIND_ATTRIBUTE for h in hits)
        and not _DIGIT_RE.search(raw)
        and not any(t in lex.numbers for t in tokens)
        and not SIZE_LETTERS_RE.search(raw)
    ):
        return []  # nothing to compare: no attribute value, number, code or size
    first_order = min(h.start for h in ordered)
    order_ends = {h.end for h in ordered}
    by_kind: dict[str, dict[int, Hit]] = {}
    structural: set[int] = set()  # token positions of cue words: never the thing a number counts
    for h in hits:
        if h.pattern.kind not in (KIND_INTENT, KIND_SIGNAL):
            by_kind.setdefault(h.pattern.kind, {})[h.start] = h
            structural.update(range(h.start, h.end))
    units = by_kind.get(KIND_UNIT, {})
    unit_ends = {h.end for h in units.values()}
    heads = by_kind.get(KIND_HEAD, {})
    head_ends = {h.end for h in heads.values()}
    measures = by_kind.get(KIND_MEASURE, {})

    values: dict[str, list[tuple[int, str]]] = {}
    for h in by_kind.get(KIND_ATTRIBUTE, {}).values():
        _, name, value = h.pattern.target.split(":", 2)
        values.setdefault(name, []).append((h.start, value))
    capitals = {m.group().lower() for m in SIZE_LETTERS_RE.finditer(raw)}
    bare: list[tuple[int, int, bool]] = []  # position, value, written in digits
    in_head = False
    for i, tok in enumerate(tokens):
        if tok in _SENTENCE_END:
            in_head = False
            continue
        if i in head_ends:
            in_head = True
        if tok in capitals:
            values.setdefault("size", []).append((i, tok))
        elif tok.isdigit():
            if len(tok) > 3 or i + 1 in units or i in unit_ends or _decimal(tokens, i):
                continue
            measure = measures.get(i + 1)
            if measure is not None:  # "2 m" and "1 m", "64 GB" and "32 GB": a variant
                values.setdefault("measure", []).append((i, f"{int(tok)} {measure.pattern.source}"))
            elif in_head or i + 1 in heads:  # "size 42", "iPhone 13", "42 размер"
                values.setdefault("size", []).append((i, str(int(tok))))
            else:
                bare.append((i, int(tok), True))
        elif tok in lex.numbers:
            if i + 1 not in units:
                bare.append((i, lex.numbers[tok], False))
        elif (
            _CODE_RE.fullmatch(tok) and not _ORDINAL_RE.fullmatch(tok) and sum(c.isdigit() for c in tok) <= 4
        ):
            values.setdefault("code", []).append((i, tok))

    # Bare numbers count things when one of them is followed by the thing ("20 pens"); otherwise
    # a number in the size range is a size ("ordered 42 but got 40") and a small one a quantity.
    counting = any(digits and _names_a_thing(tokens, i, structural, lex) for i, _, digits in bare)
    quantities: list[tuple[int, int]] = []
    for i, n, digits in bare:
        if not counting and digits and n in SIZE_NUMBERS:
            values.setdefault("size", []).append((i, str(n)))
        elif counting or n < QUANTITY_LIMIT:
            quantities.append((i, n))

    out: list[Hit] = []
    for name, found in sorted(values.items()):
        distinct = _distinct_values(found, tokens)
        if len(distinct) >= 2:
            start = min(first_order, *(i for i, _ in found))
            end = max(max(i for i, _ in found), first_order) + 1
            label = "/".join(sorted(distinct))
            p = Pattern(f"ordered X, got Y ({name}: {label})", Intent.wrong_item.value, STRUCTURE_WEIGHT)
            out.append(Hit(p, start, end, None))
            break
    shortfall = _shortfall(quantities, order_ends)
    if shortfall is not None:
        (i, n), (j, m) = shortfall
        p = Pattern(f"ordered {n}, got {m}", Intent.missing_item.value, STRUCTURE_WEIGHT)
        out.append(Hit(p, min(first_order, i, j), max(i, j) + 1, None))
    return out


def _names_a_thing(tokens: list[str], i: int, structural: set[int], lex: Lexicon) -> bool:
    """True when the number at i is followed by a noun it counts ("3 shirts", "20 Stifte")."""
    if i + 1 >= len(tokens) or i + 1 in structural:
        return False
    nxt = tokens[i + 1]
    return (
        len(nxt) >= 4  # shorter words after a number are mostly function words ("que", "and")
        and nxt.isalpha()
        and nxt not in _JOINERS
        and nxt not in lex.boundaries
        and nxt not in lex.negation_cues
        and nxt not in lex.numbers
        and nxt not in lex.markers  # common words of the language ("que", "the"): not a noun
    )


def _shortfall(
    quantities: list[tuple[int, int]], order_ends: set[int]
) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The ordered quantity and a smaller one received, if the message has such a pair.

    The ordered quantity is the one right after an "ordered" cue ("bought 3", "instead of 24");
    without one, the first quantity is taken as ordered and a smaller later one as received.
    """
    if len(quantities) < 2:
        return None
    for i, n in quantities:
        if i in order_ends:
            fewer = [(j, m) for j, m in quantities if j != i and m < n]
            return ((i, n), fewer[0]) if fewer else None
    for k, (i, n) in enumerate(quantities):
        fewer = [(j, m) for j, m in quantities[k + 1 :] if m < n]
        if fewer:
            return (i, n), fewer[0]
    return None


def _decimal(tokens: list[str], i: int) -> bool:
    """True when tokens[i] is part of a decimal number ("19.99", "24,90")."""
    after = i + 2 < len(tokens) and tokens[i + 1] in {".", ","} and tokens[i + 2].isdigit()
    before = i >= 2 and tokens[i - 1] in {".", ","} and tokens[i - 2].isdigit()
    return after or before


# Words joining two values into one ("black and white", "M + L"): such a pair is one choice.
_JOINERS = frozenset({"and", "y", "e", "et", "und", "и", "&", "+", "/", "-", "or", "o", "ou", "oder", "или"})


def _distinct_values(found: list[tuple[int, str]], tokens: list[str]) -> set[str]:
    """The distinct values of one attribute, with values joined by "and" merged into one."""
    found = sorted(set(found))
    groups: list[list[str]] = []
    last = -10
    for i, value in found:
        joined = groups and (i == last + 1 or (i == last + 2 and tokens[last + 1] in _JOINERS))
        if joined:
            groups[-1].append(value)
        else:
            groups.append([value])
        last = i
    return {"+".join(sorted(set(g))) for g in groups}


def _resolve(hits: list[Hit]) -> tuple[list[Hit], list[Hit]]:
    """Drop negated hits, and intent hits lying inside a longer, at least as heavy hit of another intent."""
    negated = [h for h in hits if h.negated_by is not None and h.pattern.kind in (KIND_INTENT, KIND_SIGNAL)]
    live = [h for h in hits if h.negated_by is None or h.pattern.kind not in (KIND_INTENT, KIND_SIGNAL)]
    intents = [h for h in live if h.pattern.kind == KIND_INTENT]
    kept: list[Hit] = []
    for h in live:
        if h.pattern.kind == KIND_INTENT and any(
            o.pattern.target != h.pattern.target
            and o.start <= h.start
            and h.end <= o.end
            and (o.end - o.start) > (h.end - h.start)
            and o.pattern.weight >= h.pattern.weight
            for o in intents
        ):
            continue
        kept.append(h)
    return kept, negated


def _decide(
    scores: dict[Intent, float], explicit_cancel: bool = False
) -> tuple[Intent, float, Intent | None, list[str]]:
    """Winner, calibrated confidence and close runner-up from the per-intent scores."""
    if not scores:
        return Intent.other, NO_EVIDENCE_CONFIDENCE, None, ["no intent evidence"]
    explain: list[str] = []
    eff = dict(scores)
    best_problem = max((s for i, s in scores.items() if i in PROBLEMS), default=0.0)
    best_request = max((s for i, s in scores.items() if i in REQUESTS), default=0.0)
    item_problem = max(
        (s for i, s in scores.items() if i in PROBLEMS and i != Intent.not_received), default=0.0
    )
    # "Still not shipped after 12 days, cancel it": for a parcel that has not come, an explicit
    # cancel is the action asked for; a problem with the item itself still outranks it.
    cancel_first = (
        explicit_cancel
        and scores.get(Intent.cancel_order, 0.0) >= CANCEL_OVER_WAIT
        and item_problem < CLEAR_EVIDENCE
    )
    for intent in eff:
        if cancel_first and intent == Intent.not_received:
            eff[intent] *= REQUEST_DAMPING  # however much it says about the wait
            continue
        if scores[intent] >= DECISIVE:
            continue  # a phrase that settles it alone ("still no refund") is never outranked
        if (
            best_problem >= CLEAR_EVIDENCE
            and intent in REQUESTS
            and not (cancel_first and intent == Intent.cancel_order)
            # Money back is what a problem's reply already offers: always outranked. Another
            # request outranks a problem named less firmly than the request itself ("can I pay
            # by transfer instead of card?" is not a wrong item).
            and (intent == Intent.refund_request or best_problem >= scores[intent])
        ):
            eff[intent] *= REQUEST_DAMPING
        if (best_problem >= CLEAR_EVIDENCE or best_request >= CLEAR_EVIDENCE) and intent in COURTESY:
            # A pre-sale question with stronger words than a stray problem word stays a question
            # ("any discount if I take 50 pieces?").
            if intent == Intent.thanks or max(best_problem, best_request) >= scores[intent]:
                eff[intent] *= COURTESY_DAMPING
    damped = [i.value for i in eff if eff[i] < scores[i]]
    if damped:
        explain.append(f"priority: a problem or request outranks {', '.join(sorted(damped))}")
    z = math.exp(SHARPNESS * BASELINE) + sum(math.exp(SHARPNESS * s) for s in eff.values())
    probs = {i: math.exp(SHARPNESS * s) / z for i, s in eff.items()}
    ranked = sorted(probs, key=lambda i: (eff[i], -TIE_ORDER.index(i)), reverse=True)
    winner = ranked[0]
    if eff[winner] < MIN_INTENT_SCORE:
        return Intent.other, NO_EVIDENCE_CONFIDENCE, None, explain + ["only weak hints"]
    runner_up = None
    if len(ranked) > 1:
        second = ranked[1]
        if probs[second] >= RUNNER_UP_MIN and probs[second] >= probs[winner] / 3:
            runner_up = second
            explain.append(f"conflict: {second.value} close behind ({probs[second]:.2f})")
    if runner_up is None:
        # A strong second request is outranked, not answered: "where is my parcel? also change my
        # address" needs both, so a human sees it. Asking for the money back is not a second
        # request: it is what a problem intent's reply already handles (signal wants_refund).
        extra = [
            i
            for i, s in scores.items()
            if i in REQUESTS and i != Intent.refund_request and i != winner and s >= SECOND_REQUEST_SCORE
        ]
        if extra:
            runner_up = max(extra, key=scores.__getitem__)
            explain.append(f"conflict: {runner_up.value} also asked for")
    return winner, probs[winner], runner_up, explain


def _shouting(raw: str) -> bool:
    head = raw[:2000]
    letters = len(_LETTER_RE.findall(head))
    if letters < SHOUT_MIN_LETTERS:
        return False
    return len(_UPPER_RE.findall(head)) / letters >= SHOUT_SHARE


@cache
def default_classifier() -> Classifier:
    """The classifier over the shipped lexicons, built once per process."""
    return Classifier(load_lexicons(), default_detector(), default_model())


def classify(text: str, *, language: str | None = None) -> Classification:
    """Language, intent, confidence, runner-up, reasons and signals of a buyer message."""
    return default_classifier().classify(text, language=language)
