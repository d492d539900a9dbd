"""Which language a buyer wrote in: cheap cues first, lingua when the cues do not settle it.

Order of evidence: the writing system (Cyrillic, CJK, Arabic...) settles most non-Latin text at
once; for Latin text, marker words from the lexicons (`[language] markers`, plus
`lexicons/_detect_only.toml` for languages we detect but do not answer in) and letters such as
ñ/ã/ß/œ. When those give a clear winner, lingua is skipped: it costs 60-300 microseconds a
message, more than the whole rest of triage. Otherwise lingua (restricted to a fixed set of
languages, so an Italian message is reported as "it" rather than forced into Spanish) is combined
with the cues, which rescues one-word messages lingua cannot read ("merci", "danke").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING

from worker.triage.lexicon import SIZE_LETTERS_RE, Text, load_detect_only_markers, load_lexicons

if TYPE_CHECKING:
    from lingua import LanguageDetector as LinguaDetector

# Languages we classify and answer in; any other detected language gets English replies.
SUPPORTED = ("en", "es", "pt", "ru", "fr", "de")
# What lingua may answer: ours, plus the languages buyers most often write in otherwise.
LINGUA_LANGUAGES = SUPPORTED + ("it", "nl", "pl", "tr", "uk", "zh", "ja", "ko", "ar", "he")

# Marker evidence that makes lingua unnecessary: this many points, this far ahead of the next.
FAST_MIN_SCORE = 2.5
FAST_MIN_MARGIN = 2.0
# ...or this many points with no other language scoring at all.
FAST_ALONE_SCORE = 2.0
# Weight of the cues against lingua's own confidence when both are consulted.
CUE_SHARE = 0.4
LINGUA_MAX_CHARS = 1000
# A Latin text this short without any marker word or telling letter is reported as unknown.
SHORT_LETTERS = 3
# Portuguese ahead of Spanish by less than this, without one Portuguese cue: read as Spanish.
ES_PT_MARGIN = 0.15

# Letters that (nearly) only one of the languages uses; presence counts once per letter.
LETTER_CUES: dict[str, dict[str, float]] = {
    "ñ": {"es": 2},
    "¿": {"es": 2},
    "¡": {"es": 2},
    "ã": {"pt": 2},
    "õ": {"pt": 2},
    "ç": {"pt": 1, "fr": 1, "tr": 0.5},
    "ß": {"de": 2},
    "ä": {"de": 1.5},
    "ö": {"de": 1, "tr": 1},
    "ü": {"de": 1, "tr": 1},
    "œ": {"fr": 2},
    "è": {"fr": 1, "it": 1},
    "ù": {"fr": 1, "it": 0.5},
    "ê": {"fr": 1, "pt": 1},
    "â": {"fr": 0.5, "pt": 1},
    "ô": {"fr": 1, "pt": 1},
    "î": {"fr": 1},
    "û": {"fr": 1},
    "à": {"fr": 1, "it": 1, "pt": 0.5},
    "ì": {"it": 1.5},
    "ò": {"it": 1.5},
    "á": {"es": 0.5, "pt": 0.5},
    "í": {"es": 0.5, "pt": 0.5},
    "ó": {"es": 0.5, "pt": 0.5, "pl": 0.5},
    "ú": {"es": 0.5, "pt": 0.5},
    "é": {"fr": 0.5, "es": 0.3, "pt": 0.3, "it": 0.3},
    "ł": {"pl": 2},
    "ą": {"pl": 2},
    "ę": {"pl": 2},
    "ś": {"pl": 2},
    "ż": {"pl": 2},
    "ź": {"pl": 2},
    "ğ": {"tr": 2},
    "ı": {"tr": 2},
    "ş": {"tr": 2},
}
_CUE_CHARS = frozenset(LETTER_CUES)

# Writing systems that name their language outright.
_SCRIPTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("latin", re.compile(r"[a-zA-Z\u00c0-\u024f]")),
    ("cyrillic", re.compile(r"[\u0400-\u04ff]")),
    ("hangul", re.compile(r"[\uac00-\ud7af\u1100-\u11ff]")),
    ("kana", re.compile(r"[\u3040-\u30ff]")),
    ("han", re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")),
    ("arabic", re.compile(r"[\u0600-\u06ff]")),
    ("hebrew", re.compile(r"[\u0590-\u05ff]")),
    ("greek", re.compile(r"[\u0370-\u03ff]")),
    ("thai", re.compile(r"[\u0e00-\u0e7f]")),
)
_SCRIPT_LANGUAGE = {
    "hangul": "ko",
    "kana": "ja",
    "han": "zh",
    "arabic": "ar",
    "hebrew": "he",
    "greek": "el",
    "thai": "th",
}
_TRAILING_RE = re.compile(r"([^\W\d_])\1+$")
_UKRAINIAN_RE = re.compile(r"[іїєґІЇЄҐ]")
_NOT_LETTERS_RE = re.compile(r"(?:https?://|www\.)\S+|\S+@\S+|[\d_]+|[^\w\s'’.,!?¿¡-]")


@dataclass(frozen=True)
class LanguageGuess:
    language: str | None
    confidence: float
    method: str  # "script", "cues" or "lingua+cues": shown in reasons


class LanguageDetector:
    """Detects the language of a prepared `Text` from marker words, letters and lingua."""

    def __init__(self, markers: dict[str, frozenset[str]]) -> None:
        self.markers = markers
        self._any_marker = frozenset().union(*markers.values())

    def detect(self, text: Text) -> LanguageGuess:
        counts = {name: len(rx.findall(text.raw)) for name, rx in _SCRIPTS}
        total = sum(counts.values())
        if total == 0:
            return LanguageGuess(None, 0.0, "no letters")
        script = max(counts, key=counts.__getitem__)
        share = counts[script] / total
        if script == "cyrillic":
            lang = "uk" if _UKRAINIAN_RE.search(text.raw) else "ru"
            return LanguageGuess(lang, round(min(0.99, 0.6 + 0.04 * counts[script]) * share, 3), "script")
        if script != "latin":
            if script == "han" and counts["kana"]:
                script = "kana"
            return LanguageGuess(
                _SCRIPT_LANGUAGE[script], round(min(0.99, 0.7 + 0.1 * counts[script]) * share, 3), "script"
            )

        scores = self._cue_scores(text)
        if not scores and counts["latin"] <= SHORT_LETTERS:
            # "ok", "no": nothing to tell the languages apart; a guess would only mislead.
            return LanguageGuess(None, 0.0, "too short")
        ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
        top_lang, top = ranked[0] if ranked else (None, 0.0)
        second = ranked[1][1] if len(ranked) > 1 else 0.0
        if (top >= FAST_MIN_SCORE and top - second >= FAST_MIN_MARGIN) or (
            top >= FAST_ALONE_SCORE and not second
        ):
            return LanguageGuess(top_lang, round(min(0.99, 0.5 + 0.1 * (top - second)), 3), "cues")

        lingua = _lingua_scores(_NOT_LETTERS_RE.sub(" ", text.raw[:LINGUA_MAX_CHARS]))
        cue_total = sum(scores.values())
        combined: dict[str, float] = {}
        for lang in set(lingua) | set(scores):
            p = lingua.get(lang, 0.0)
            if cue_total:
                p = (1 - CUE_SHARE) * p + CUE_SHARE * scores.get(lang, 0.0) / cue_total
            combined[lang] = p
        if not combined or max(combined.values()) <= 0.0:
            return LanguageGuess(None, 0.0, "lingua+cues")
        best = max(combined, key=combined.__getitem__)
        if best == "pt" and not scores.get("pt") and combined["pt"] - combined.get("es", 0.0) < ES_PT_MARGIN:
            # Portuguese nearly always shows itself (ã, õ, ç, "não", "você"); a short text with no
            # such sign that lingua finds barely more Portuguese than Spanish is Spanish
            # ("Reembolso por favor.").
            best = "es"
        return LanguageGuess(best, round(combined[best], 3), "lingua+cues")

    def _cue_scores(self, text: Text) -> dict[str, float]:
        scores: dict[str, float] = {}
        # "holaa", "hii": a drawn-out last letter still names the word.
        # A size in capitals ("M", "L") is no French "m'"/"l'".
        sizes = {m.lower() for m in SIZE_LETTERS_RE.findall(text.raw)}
        tokens = [
            _TRAILING_RE.sub(r"\1", t) if len(t) > 2 and t[-1] == t[-2] and t not in self._any_marker else t
            for t in text.tokens
            if t not in sizes
        ]
        for lang, words in self.markers.items():
            n = sum(1 for t in tokens if t in words)
            if n:
                scores[lang] = float(n)
        for ch in _CUE_CHARS.intersection(text.raw.lower()):
            for lang, w in LETTER_CUES[ch].items():
                scores[lang] = scores.get(lang, 0.0) + w
        return scores


@cache
def _lingua() -> LinguaDetector:
    """Built once per process; lingua loads each language model lazily on first use."""
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

    langs = [Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())) for code in LINGUA_LANGUAGES]
    return LanguageDetectorBuilder.from_languages(*langs).build()


@lru_cache(maxsize=4096)
def _lingua_scores(cleaned: str) -> dict[str, float]:
    """Lingua's confidence per language; cached because the same short texts come back often."""
    if not cleaned.strip():
        return {}
    values = _lingua().compute_language_confidence_values(cleaned)
    return {v.language.iso_code_639_1.name.lower(): v.value for v in values if v.value > 0.001}


@cache
def default_detector() -> LanguageDetector:
    markers = {code: lex.markers for code, lex in load_lexicons().items()}
    markers.update(load_detect_only_markers())
    return LanguageDetector(markers)


def detect_language(text: str) -> tuple[str | None, float]:
    """ISO 639-1 code of the text's language (None if it has no letters) and a confidence in [0, 1]."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected str, got {type(text).__name__}")
    guess = default_detector().detect(Text.of(text))
    return guess.language, guess.confidence
