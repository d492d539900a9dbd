"""Language knowledge as data: loading, validating and matching the lexicon files.

A lexicon (`worker/triage/lexicons/<lang>.toml`) holds, for one language, weighted patterns per
intent, signal patterns, negation cues, contrast markers ("but", "unfortunately"), the cue words of
the "ordered X, got Y" structure and attribute values (colours, plug types), token rewrites for
typos/slang and the marker words used by language detection. The file format is documented at the top of each lexicon file. This module
turns a file into a compiled `Lexicon` once, and matches it against a `Text` (the folded, tokenised
message) without any regex alternation over all patterns: plain words and stems are dictionary
look-ups, so matching costs a few microseconds per token whatever the size of the lexicon.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from worker.triage.types import Intent

LEXICON_DIR = Path(__file__).parent / "lexicons"

# Only this much of a message is read: the facts a buyer gives are in the first lines, and a 1 MB
# paste must cost the same as a long email, not hang a worker.
MAX_SCAN_CHARS = 4000

SIGNALS = (
    "auto_reply",
    "stain",
    "serious_defect",
    "minor_defect",
    "wants_refund",
    "wants_resend",
    "wants_cancel",
    "dispute_threat",
    "complaint",
)

# A phrase element `..` skips up to this many tokens ("not .. received" matches "not yet received");
# `...` up to LONG_GAP_TOKENS, for the two ends of one clause ("refund ... haven't got").
GAP_TOKENS = 3
LONG_GAP_TOKENS = 8
MIN_STEM_CHARS = 3
MAX_WEIGHT = 10.0
# Distinct words whose candidate patterns are remembered per lexicon (a few MB at most).
CANDIDATE_CACHE_SIZE = 50_000

_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")
# Emoji decorations that would otherwise split one emoji into several tokens.
_EMOJI_MODIFIERS_RE = re.compile("[\ufe0e\ufe0f\u200d\U0001f3fb-\U0001f3ff]")
_COMBINING_RE = re.compile(r"[\u0300-\u036f]")
_APOSTROPHES_RE = re.compile(r"['’‘`´ʼ]")
# "pleaseeee" -> "pleasee", "nooooo" -> "noo": keeps real double letters, tames shouting.
_ELONGATION_RE = re.compile(r"([^\W\d_])\1{2,}")
_URL_RE = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_EMAIL_RE = re.compile(r"\S+@\S+\.\w+")
_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
# Clothing sizes written in capitals and standing alone ("ordered M and L, got two M"); lower case
# "s"/"m" are not read as sizes ("it's", "I'm"), nor a letter before an apostrophe ("L'envoi").
SIZE_LETTERS_RE = re.compile(r"(?<![\w'’])(?:XXS|XS|S|M|L|XL|XXL|XXXL|[2-6]XL)(?![\w'’])")


class LexiconError(ValueError):
    """A lexicon file is malformed; the message names the file and the key."""


def fold(text: str) -> str:
    """Lowercase and strip accents so "NÃO RECEBI" and "nao recebi" read the same."""
    text = _CONTROL_RE.sub(" ", text).casefold()
    text = _COMBINING_RE.sub("", unicodedata.normalize("NFKD", text))
    text = _EMOJI_MODIFIERS_RE.sub("", text)
    text = _APOSTROPHES_RE.sub(" ", text)
    return _ELONGATION_RE.sub(r"\1\1", text)


@dataclass(frozen=True, slots=True)
class Text:
    """A message prepared once for every lexicon: folded text and its tokens with offsets."""

    raw: str
    folded: str
    tokens: tuple[str, ...]
    starts: tuple[int, ...]

    @classmethod
    def of(cls, raw: str) -> Text:
        raw = raw[:MAX_SCAN_CHARS]
        # URLs and e-mail addresses are noise for both language and intent ("/orders/", ".de").
        cleaned = _EMAIL_RE.sub(" ", _URL_RE.sub(" ", raw))
        folded = fold(cleaned)
        tokens: list[str] = []
        starts: list[int] = []
        for m in _TOKEN_RE.finditer(folded):
            tokens.append(m.group())
            starts.append(m.start())
        return cls(raw=raw, folded=folded, tokens=tuple(tokens), starts=tuple(starts))

    def token_at(self, offset: int) -> int:
        return max(0, bisect_right(self.starts, offset) - 1)


# What a pattern is, besides evidence for an intent ("intent") or a signal ("signal"): a contrast
# marker, or a cue of the "ordered X, got Y" structure (see [structure] and [attributes]).
KIND_INTENT = "intent"
KIND_SIGNAL = "signal"
KIND_CONTRAST = "contrast"
KIND_ORDERED = "ordered"
KIND_UNIT = "unit"
KIND_HEAD = "head"
KIND_MEASURE = "measure"
KIND_RECEIVED = "received"
_ONCE_KINDS = frozenset({KIND_INTENT, KIND_SIGNAL})
# Kinds whose meaning a negation cue reverses ("didn't order" is no order); units, sizes and the
# like are what they are.
_NEGATABLE = frozenset({KIND_INTENT, KIND_SIGNAL, KIND_ORDERED})
KIND_ATTRIBUTE = "attribute"


@dataclass(frozen=True, slots=True)
class Pattern:
    """One lexicon entry: what it matches, what it is evidence for and how much."""

    source: str
    # An intent value, "signal:<name>", or for the other kinds the kind itself; attributes are
    # "attribute:<attribute>:<value>" (value = the entry's first spelling).
    target: str
    weight: float
    # Phrase elements: ("w", token) exact word, ("s", prefix) stem, ("g", "") gap of <= GAP_TOKENS,
    # ("G", "") gap of <= LONG_GAP_TOKENS.
    elements: tuple[tuple[str, str], ...] = ()
    regex: re.Pattern[str] | None = None
    # A pattern that itself starts with a negation cue ("not received") is never negated.
    starts_negated: bool = False
    kind: str = KIND_INTENT


@dataclass(frozen=True, slots=True)
class Hit:
    pattern: Pattern
    start: int  # token index of the first matched token
    end: int  # token index after the last matched token
    negated_by: str | None


@dataclass
class Lexicon:
    """One language's compiled knowledge."""

    code: str
    name: str
    path: str
    markers: frozenset[str]
    normalize: dict[str, tuple[str, ...]]
    negation_cues: frozenset[str]
    negation_window: int
    boundaries: frozenset[str]
    # Number words ("two" = 2) read as quantities by the "ordered 3, got 2" structure.
    numbers: dict[str, int] = field(default_factory=dict)
    patterns: list[Pattern] = field(default_factory=list)
    _by_word: dict[str, list[Pattern]] = field(default_factory=dict)
    _by_stem: dict[str, list[Pattern]] = field(default_factory=dict)
    _stem_lengths: tuple[int, ...] = ()
    _regexes: list[Pattern] = field(default_factory=list)
    _candidates: dict[str, tuple[Pattern, ...]] = field(default_factory=dict)

    def _index(self) -> None:
        for p in self.patterns:
            if p.regex is not None:
                self._regexes.append(p)
                continue
            kind, value = p.elements[0]
            table = self._by_word if kind == "w" else self._by_stem
            table.setdefault(value, []).append(p)
        self._stem_lengths = tuple(sorted({len(s) for s in self._by_stem}))

    def tokens(self, text: Text) -> tuple[list[str], list[int]]:
        """The message tokens after this language's typo/slang rewrites, with their text offsets."""
        out: list[str] = []
        offs: list[int] = []
        norm = self.normalize
        for tok, off in zip(text.tokens, text.starts, strict=True):
            repl = norm.get(tok)
            if repl is None:
                out.append(tok)
                offs.append(off)
            else:
                out.extend(repl)
                offs.extend([off] * len(repl))
        return out, offs

    def match(self, text: Text) -> list[Hit]:
        """Every pattern found in the text, with its negation verdict: intent and signal patterns at
        most once, structure cues (units, attribute values) at every place they occur."""
        return self.scan(text)[0]

    def scan(self, text: Text) -> tuple[list[Hit], list[str]]:
        """Like `match`, and the rewritten tokens the hits' indices refer to."""
        tokens, offs = self.tokens(text)
        seen: set[int] = set()
        hits: list[Hit] = []
        cues = self.negation_cues
        # Which tokens a gap may skip, worked out once per message rather than per attempt.
        skippable = [_gap_can_skip(t, cues) for t in tokens]
        cache = self._candidates
        n = len(tokens)
        for i, tok in enumerate(tokens):
            found = cache.get(tok)
            if found is None:
                found = self._candidates_of(tok)
            for p in found:
                if id(p) in seen:
                    continue
                elements = p.elements
                if len(elements) == 1:
                    end = i + 1
                else:
                    # Most candidates fail on their second word: check it before the full match.
                    kind, value = elements[1]
                    if kind != "G" and kind != "g":
                        if i + 1 >= n:
                            continue
                        nxt = tokens[i + 1]
                        if not (nxt == value if kind == "w" else nxt.startswith(value)):
                            continue
                    end = _match_rest(elements, 1, tokens, i + 1, skippable)
                if end >= 0:
                    if p.kind in _ONCE_KINDS:
                        seen.add(id(p))
                    negated = (
                        None if p.starts_negated or p.kind not in _NEGATABLE else self._negation(tokens, i)
                    )
                    hits.append(Hit(p, i, end, negated))
        for p in self._regexes:
            assert p.regex is not None
            m = p.regex.search(text.folded)
            if m:
                i = max(0, bisect_right(offs, m.start()) - 1)
                end = max(i + 1, bisect_right(offs, max(m.start(), m.end() - 1)))
                hits.append(Hit(p, i, end, None if p.starts_negated else self._negation(tokens, i)))
        return hits, tokens

    def _candidates_of(self, tok: str) -> tuple[Pattern, ...]:
        """Patterns whose first element matches this token; memoised, buyers reuse their words."""
        found = list(self._by_word.get(tok, ()))
        for n in self._stem_lengths:
            if n > len(tok):
                break
            found.extend(self._by_stem.get(tok[:n], ()))
        if len(self._candidates) >= CANDIDATE_CACHE_SIZE:
            self._candidates.clear()
        self._candidates[tok] = result = tuple(found)
        return result

    def _negation(self, tokens: list[str], start: int) -> str | None:
        """The negation cue governing the token at `start`, if one precedes it in the same clause."""
        cues, bounds = self.negation_cues, self.boundaries
        for j in range(start - 1, max(-1, start - 1 - self.negation_window), -1):
            tok = tokens[j]
            # Punctuation, emojis and contrast words ("but") end the clause a cue can reach.
            if not _is_word(tok) or tok in bounds:
                return None
            if tok in cues:
                return tok
        return None

    def marker_count(self, tokens: tuple[str, ...]) -> int:
        markers = self.markers
        return sum(1 for t in tokens if t in markers)


def _is_word(tok: str) -> bool:
    return tok[0].isalnum() or tok[0] == "_"


def _gap_can_skip(tok: str, cues: frozenset[str]) -> bool:
    """A gap skips words and commas ("nicht das, was ich bestellt habe"), not sentence ends, and
    never a negation cue: "ordered .. but .. received" must not match "ordered, but not received"."""
    return (_is_word(tok) or tok == ",") and tok not in cues


def _match_rest(
    elements: tuple[tuple[str, str], ...], k: int, tokens: list[str], i: int, skippable: list[bool]
) -> int:
    """Token index after the match of elements[k:] from index i on, or -1 if they do not match;
    `skippable[j]` says whether a gap may pass over tokens[j] (`_gap_can_skip`)."""
    n = len(tokens)
    while k < len(elements):
        kind, value = elements[k]
        if kind in ("g", "G"):
            # A gap is always followed by a word or stem (checked when compiling): look for it
            # directly rather than trying every split.
            after_kind, after = elements[k + 1]
            limit = min(n, i + (GAP_TOKENS if kind == "g" else LONG_GAP_TOKENS) + 1)
            for j in range(i, limit):
                if j > i and not skippable[j - 1]:
                    return -1
                tok = tokens[j]
                if tok == after if after_kind == "w" else tok.startswith(after):
                    end = _match_rest(elements, k + 2, tokens, j + 1, skippable)
                    if end >= 0:
                        return end
            return -1
        if i >= n:
            return -1
        tok = tokens[i]
        if not (tok == value if kind == "w" else tok.startswith(value)):
            return -1
        k += 1
        i += 1
    return i


# --- loading and validation ------------------------------------------------------------------------


def _fail(path: Path, key: str, problem: str) -> LexiconError:
    return LexiconError(f"{path.name}: {key}: {problem}")


def _tokenize_piece(piece: str) -> list[str]:
    return [m.group() for m in _TOKEN_RE.finditer(fold(piece))]


def compile_pattern(
    source: str,
    target: str,
    weight: float,
    cues: frozenset[str],
    where: str,
    normalize: dict[str, tuple[str, ...]] | None = None,
) -> Pattern:
    """Compile one lexicon entry; raises ValueError with `where` (file and key) on a bad entry.

    Pattern words go through the same rewrites as message words, so a pattern written with a
    shorthand the [normalize] table expands still matches.
    """
    norm = normalize or {}
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"{where}: a pattern must be a non-empty string, got {source!r}")
    if source.startswith("re:"):
        body = _COMBINING_RE.sub("", unicodedata.normalize("NFKD", source[3:]))
        try:
            rx = re.compile(body)
        except re.error as exc:
            raise ValueError(f"{where}: regex {source!r} does not compile: {exc}") from None
        if rx.search(""):
            raise ValueError(f"{where}: regex {source!r} matches the empty string")
        return Pattern(source=source, target=target, weight=weight, regex=rx)
    elements: list[tuple[str, str]] = []
    for piece in source.split():
        if piece in ("..", "..."):
            if not elements or elements[-1][0] in ("g", "G"):
                raise ValueError(f"{where}: {source!r}: '{piece}' must sit between two words")
            elements.append(("g" if piece == ".." else "G", ""))
            continue
        stem = piece.endswith("*")
        toks = _tokenize_piece(piece[:-1] if stem else piece)
        if not toks:
            raise ValueError(f"{where}: {source!r}: {piece!r} holds no word")
        words = toks[:-1] if stem else toks
        elements.extend(("w", w) for t in words for w in norm.get(t, (t,)))
        if stem:
            if len(toks[-1]) < MIN_STEM_CHARS:
                raise ValueError(
                    f"{where}: {source!r}: stem {piece!r} is shorter than {MIN_STEM_CHARS} letters"
                )
            elements.append(("s", toks[-1]))
    if elements[-1][0] in ("g", "G"):
        raise ValueError(f"{where}: {source!r}: a gap must sit between two words")
    starts_negated = elements[0][0] == "w" and elements[0][1] in cues
    return Pattern(
        source=source, target=target, weight=weight, elements=tuple(elements), starts_negated=starts_negated
    )


def _str_list(path: Path, key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _fail(path, key, "must be a list of non-empty strings")
    return value


def _table(path: Path, data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise _fail(path, key, "missing table" if value is None else "must be a table")
    return value


def parse_lexicon(path: Path, data: dict[str, Any]) -> Lexicon:
    """Validate a decoded lexicon file and compile it."""
    known = {
        "language",
        "weights",
        "normalize",
        "negation",
        "intents",
        "signals",
        "contrast",
        "structure",
        "attributes",
    }
    for key in data:
        if key not in known:
            raise _fail(path, key, f"unknown table (expected one of {', '.join(sorted(known))})")
    lang = _table(path, data, "language")
    code = lang.get("code")
    if not isinstance(code, str) or not re.fullmatch(r"[a-z]{2}", code):
        raise _fail(path, "language.code", "must be a two-letter ISO 639-1 code")
    if path.stem != code:
        raise _fail(path, "language.code", f"{code!r} does not match the file name")
    name = lang.get("name", code)
    markers = frozenset(fold(m).strip() for m in _str_list(path, "language.markers", lang.get("markers")))

    weights: dict[str, float] = {}
    for level, w in _table(path, data, "weights").items():
        if isinstance(w, bool) or not isinstance(w, int | float) or not 0 < w <= MAX_WEIGHT:
            raise _fail(path, f"weights.{level}", f"must be a number in (0, {MAX_WEIGHT:g}], got {w!r}")
        weights[level] = float(w)

    normalize: dict[str, tuple[str, ...]] = {}
    for typo, canonical in data.get("normalize", {}).items():
        if not isinstance(canonical, str) or not canonical.strip():
            raise _fail(path, f"normalize.{typo}", "must map to a non-empty string")
        src = _tokenize_piece(typo)
        if len(src) != 1:
            raise _fail(path, f"normalize.{typo}", "the left side must be a single word")
        normalize[src[0]] = tuple(_tokenize_piece(canonical))

    neg = _table(path, data, "negation")
    cues = frozenset(t for c in _str_list(path, "negation.cues", neg.get("cues")) for t in _tokenize_piece(c))
    window = neg.get("window", 3)
    if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= 8:
        raise _fail(path, "negation.window", "must be an integer from 1 to 8")
    boundaries = frozenset(
        fold(b).strip() for b in _str_list(path, "negation.boundaries", neg.get("boundaries", []))
    )

    lex = Lexicon(
        code=code,
        name=str(name),
        path=str(path),
        markers=markers,
        normalize=normalize,
        negation_cues=cues,
        negation_window=window,
        boundaries=boundaries,
    )
    intents = _table(path, data, "intents")
    for key in intents:
        if key not in Intent.__members__:
            raise _fail(path, f"intents.{key}", "unknown intent")
    for intent in Intent:
        table = intents.get(intent.value)
        if not isinstance(table, dict) or not table:
            raise _fail(path, f"intents.{intent.value}", "missing (every intent needs at least one pattern)")
        for level, entries in table.items():
            key = f"intents.{intent.value}.{level}"
            if level not in weights:
                raise _fail(path, key, f"unknown weight level (defined: {', '.join(weights)})")
            for n, src in enumerate(_str_list(path, key, entries)):
                lex.patterns.append(_compile(path, f"{key}[{n}]", src, intent.value, weights[level], lex))
    _parse_structure(path, data, lex)
    signals = _table(path, data, "signals")
    for key in signals:
        if key not in SIGNALS:
            raise _fail(path, f"signals.{key}", f"unknown signal (known: {', '.join(SIGNALS)})")
    for sig in SIGNALS:
        if sig not in signals:
            raise _fail(path, f"signals.{sig}", "missing")
        for n, src in enumerate(_str_list(path, f"signals.{sig}", signals[sig])):
            lex.patterns.append(_compile(path, f"signals.{sig}[{n}]", src, f"signal:{sig}", 1.0, lex))
    lex._index()
    return lex


def _parse_structure(path: Path, data: dict[str, Any], lex: Lexicon) -> None:
    """The optional [contrast], [structure] and [attributes] tables (see the lexicon file header)."""
    contrast = data.get("contrast", {})
    if not isinstance(contrast, dict):
        raise _fail(path, "contrast", "must be a table")
    for key in contrast:
        if key != "markers":
            raise _fail(path, f"contrast.{key}", "unknown key (expected markers)")
    for n, src in enumerate(_str_list(path, "contrast.markers", contrast.get("markers", []))):
        lex.patterns.append(
            _compile(path, f"contrast.markers[{n}]", src, KIND_CONTRAST, 1.0, lex, KIND_CONTRAST)
        )

    structure = data.get("structure", {})
    if not isinstance(structure, dict):
        raise _fail(path, "structure", "must be a table")
    kinds = {
        "ordered": KIND_ORDERED,
        "received": KIND_RECEIVED,
        "units": KIND_UNIT,
        "heads": KIND_HEAD,
        "measures": KIND_MEASURE,
    }
    for key, value in structure.items():
        if key == "numbers":
            if not isinstance(value, dict):
                raise _fail(path, "structure.numbers", "must be a table of word = number")
            for word, number in value.items():
                toks = _tokenize_piece(word)
                if len(toks) != 1:
                    raise _fail(path, f"structure.numbers.{word}", "the left side must be a single word")
                if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= 1000:
                    raise _fail(path, f"structure.numbers.{word}", f"must be a whole number, got {number!r}")
                lex.numbers[toks[0]] = number
            continue
        kind = kinds.get(key)
        if kind is None:
            raise _fail(
                path,
                f"structure.{key}",
                "unknown key (expected ordered, received, units, measures, heads, numbers)",
            )
        for n, src in enumerate(_str_list(path, f"structure.{key}", value)):
            lex.patterns.append(_compile(path, f"structure.{key}[{n}]", src, kind, 1.0, lex, kind))

    attributes = data.get("attributes", {})
    if not isinstance(attributes, dict):
        raise _fail(path, "attributes", "must be a table")
    for name, values in attributes.items():
        if not re.fullmatch(r"[a-z_]+", name):
            raise _fail(path, f"attributes.{name}", "attribute names are lower-case words")
        for n, entry in enumerate(_str_list(path, f"attributes.{name}", values)):
            # "grey / gray": spellings of one value; the first names it.
            spellings = [s.strip() for s in entry.split("/")]
            if not all(spellings):
                raise _fail(path, f"attributes.{name}[{n}]", f"empty spelling in {entry!r}")
            target = f"{KIND_ATTRIBUTE}:{name}:{spellings[0]}"
            for src in spellings:
                lex.patterns.append(
                    _compile(path, f"attributes.{name}[{n}]", src, target, 1.0, lex, KIND_ATTRIBUTE)
                )


def _compile(
    path: Path, key: str, src: str, target: str, weight: float, lex: Lexicon, kind: str | None = None
) -> Pattern:
    try:
        p = compile_pattern(src, target, weight, lex.negation_cues, key, lex.normalize)
    except ValueError as exc:
        raise LexiconError(f"{path.name}: {exc}") from None
    if kind is None:
        kind = KIND_SIGNAL if target.startswith("signal:") else KIND_INTENT
    return replace(p, kind=kind)


def load_lexicon(path: Path) -> Lexicon:
    """Read and compile one lexicon file; LexiconError names the file and the bad key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise LexiconError(f"{path.name}: invalid TOML: {exc}") from None
    return parse_lexicon(path, data)


def load_lexicons(directory: Path = LEXICON_DIR) -> dict[str, Lexicon]:
    """Every `<lang>.toml` lexicon in a directory, keyed by language code."""
    out: dict[str, Lexicon] = {}
    for path in sorted(directory.glob("*.toml")):
        if re.fullmatch(r"[a-z]{2}", path.stem):
            out[path.stem] = load_lexicon(path)
    if not out:
        raise LexiconError(f"{directory}: no <lang>.toml lexicon found")
    return out


def load_detect_only_markers(path: Path = LEXICON_DIR / "_detect_only.toml") -> dict[str, frozenset[str]]:
    """Marker words of languages we detect but do not answer in (so they are not mistaken for ours)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise LexiconError(f"{path.name}: invalid TOML: {exc}") from None
    out: dict[str, frozenset[str]] = {}
    for code, table in data.items():
        if not re.fullmatch(r"[a-z]{2}", code) or not isinstance(table, dict):
            raise _fail(path, code, "expected a [<two-letter code>] table")
        out[code] = frozenset(
            fold(m).strip() for m in _str_list(path, f"{code}.markers", table.get("markers"))
        )
    return out
