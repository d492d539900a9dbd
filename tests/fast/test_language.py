"""Language detection: shared examples, one-liners, cues, unsupported languages, bad input."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from worker.triage import language
from worker.triage.language import SUPPORTED, detect_language

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT.parent / "shared" / "spec" / "triage-examples.jsonl"
DEV = ROOT / "tests" / "data" / "dev"


def _examples() -> list[tuple[str, str]]:
    if not EXAMPLES.exists():
        return []
    rows = [json.loads(line) for line in EXAMPLES.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(r["case"]["message"]["text"], r["expect"]["language"]) for r in rows if r["case"].get("message")]


@pytest.mark.skipif(not EXAMPLES.exists(), reason="shared/spec not beside the checkout")
@pytest.mark.parametrize(("text", "expected"), _examples())
def test_shared_examples_language(text: str, expected: str) -> None:
    assert detect_language(text)[0] == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Obrigado!", "pt"),
        ("danke", "de"),
        ("merci", "fr"),
        ("gracias", "es"),
        ("thanks!", "en"),
        ("Спасибо", "ru"),
        ("nao recebi", "pt"),
        ("¿Dónde está?", "es"),
        ("Où est mon colis ?", "fr"),
        ("Wo bleibt mein Paket?", "de"),
        ("where is my order", "en"),
        ("ГДЕ МОЯ ПОСЫЛКА", "ru"),
        ("NÃO RECEBI MEU PEDIDO!!!", "pt"),
        ("Okay.", "en"),  # lingua alone reads Turkish
        ("holaaa", "es"),  # a drawn-out greeting is still a marker word
        ("escolhi o tamanho M e o L e vieram dois M", "pt"),  # sizes M and L are no French "m'", "l'"
    ],
)
def test_one_liners(text: str, expected: str) -> None:
    lang, conf = detect_language(text)
    assert lang == expected
    assert 0.0 < conf <= 1.0


def test_order_numbers_urls_and_emojis_do_not_sway_detection() -> None:
    text = "Pedido 8123456789 😡😡 https://www.aliexpress.com/item/1005.html ainda não chegou LP00123456789CN"
    assert detect_language(text)[0] == "pt"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Buongiorno, non ho ancora ricevuto il mio ordine, grazie", "it"),
        ("Ik heb mijn bestelling nog niet ontvangen", "nl"),
        ("我的包裹还没有到", "zh"),
        ("荷物がまだ届いていません", "ja"),
        ("주문한 물건을 아직 받지 못했습니다", "ko"),
        ("Я ще не отримав своє замовлення, де посилка?", "uk"),
    ],
)
def test_unsupported_languages_are_reported_as_themselves(text: str, expected: str) -> None:
    lang, _ = detect_language(text)
    assert lang == expected
    assert lang not in SUPPORTED


@pytest.mark.parametrize("text", ["", "   ", "???", "12345 678", "😡😡😡", "ok"])
def test_no_usable_letters_gives_unknown(text: str) -> None:
    assert detect_language(text) == (None, 0.0)


def test_short_ambiguous_text_has_lower_confidence_than_a_sentence() -> None:
    _, short = detect_language("merci")
    _, long = detect_language("Bonjour, je n'ai toujours pas reçu ma commande, pouvez-vous vérifier ?")
    assert short < 0.7 < long


def test_clear_cues_skip_lingua(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(_: str) -> dict[str, float]:
        raise AssertionError("lingua should not be consulted")

    monkeypatch.setattr(language, "_lingua_scores", boom)
    assert detect_language("Hallo, ich habe meine Bestellung immer noch nicht erhalten")[0] == "de"
    assert detect_language("Здравствуйте, где мой заказ?")[0] == "ru"


def test_lingua_results_are_cached_per_text() -> None:
    text = "Obrigado!"  # one marker word: not conclusive, lingua is asked
    detect_language(text)
    before = language._lingua_scores.cache_info().hits
    detect_language(text)
    assert language._lingua_scores.cache_info().hits == before + 1


def test_huge_and_control_character_input_is_handled_quickly() -> None:
    text = ("where is my order \x00\x07\u202e " * 60_000)[:1_000_000]
    start = time.perf_counter()
    lang, _ = detect_language(text)
    assert lang == "en"
    assert time.perf_counter() - start < 10.0  # milliseconds normally; quadratic work would take minutes


def test_non_string_is_refused_with_the_field_named() -> None:
    with pytest.raises(TypeError, match="text"):
        detect_language(None)  # type: ignore[arg-type]


def test_dev_set_language_accuracy() -> None:
    rows = [json.loads(line) for p in sorted(DEV.glob("*.jsonl")) for line in p.open(encoding="utf-8")]
    assert len(rows) >= 240
    right = sum(detect_language(r["text"])[0] == r["language"] for r in rows)
    # Achieved: 1.000 on the development set; the margin leaves room for lexicon edits.
    assert right / len(rows) >= 0.97


def test_spanish_and_portuguese_without_a_portuguese_sign_read_as_spanish() -> None:
    """Portuguese nearly always shows ã/õ/ç or "não"/"você"; lingua's slight lean to it does not."""
    lang, conf = detect_language("Reembolso por favor.")
    assert lang == "es"
    assert conf < 0.6  # two words: a guess, and said to be one
    assert detect_language("Tudo bem, obrigado")[0] == "pt"
    assert detect_language("Reembolso, não recebi nada")[0] == "pt"
