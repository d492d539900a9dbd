"""Intent classification: shared examples, tricky cases per language, dev-set accuracy,
confidence behaviour, hostile input, lexicon files and dispute reasons."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from worker.triage.classify import Classifier, classify, default_classifier
from worker.triage.dispute_reasons import intent_from_dispute
from worker.triage.language import default_detector
from worker.triage.lexicon import LEXICON_DIR, SIGNALS, LexiconError, Text, load_lexicon, load_lexicons
from worker.triage.model import naive_bayes
from worker.triage.model.naive_bayes import ModelError, NaiveBayes, features, train_counts
from worker.triage.types import Intent

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT.parent / "shared" / "spec" / "triage-examples.jsonl"
DEV = ROOT / "tests" / "data" / "dev"
LANGUAGES = ("en", "es", "pt", "ru", "fr", "de")


def _examples() -> list[tuple[str, str]]:
    if not EXAMPLES.exists():
        return []
    rows = [json.loads(line) for line in EXAMPLES.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(r["case"]["message"]["text"], r["expect"]["intent"]) for r in rows if r["case"].get("message")]


@pytest.mark.skipif(not EXAMPLES.exists(), reason="shared/spec not beside the checkout")
@pytest.mark.parametrize(("text", "intent"), _examples())
def test_shared_examples_intent(text: str, intent: str) -> None:
    c = classify(text)
    assert c.intent.value == intent
    assert c.confidence >= 0.8  # each example is a clear single-intent message


TRICKY = [
    # several problems: the one that needs action wins
    ("en", "thanks, but the size is wrong", Intent.wrong_item),
    ("en", "Thanks for the quick delivery, but the shoes are falling apart already", Intent.quality_issue),
    ("en", "It never came, I want my money back", Intent.not_received),
    ("en", "I haven't received my refund yet", Intent.refund_request),
    # negation
    ("en", "not damaged, but the wrong size", Intent.wrong_item),
    ("en", "I did NOT receive my order", Intent.not_received),
    ("en", "no refund needed, just tell me where it is", Intent.not_received),
    # typos, caps, emojis, order numbers
    ("en", "i havent recieved my pakage yet", Intent.not_received),
    ("en", "ITS BROKEN!!! 😡", Intent.quality_issue),
    ("en", "Order #8123456789 - parcel LP00123456789CN never arrived", Intent.not_received),
    ("en", "Got it today 👍", Intent.thanks),
    ("es", "gracias, pero la talla está mal", Intent.wrong_item),
    ("es", "no está roto, pero es la talla equivocada", Intent.wrong_item),
    ("es", "NO recibí mi pedido", Intent.not_received),
    ("es", "no quiero reembolso, solo díganme dónde está mi paquete", Intent.not_received),
    ("es", "donde esta mi pedido?? ya paso un mes", Intent.not_received),
    ("pt", "obrigado, mas o tamanho veio errado", Intent.wrong_item),
    ("pt", "não está quebrado, mas veio a cor errada", Intent.wrong_item),
    ("pt", "NAO RECEBI NADA 😡😡", Intent.not_received),
    ("pt", "não preciso de reembolso, só quero saber onde está", Intent.not_received),
    ("pt", "vc pode me dizer cade meu pedido", Intent.not_received),
    ("ru", "спасибо, но размер не тот", Intent.wrong_item),
    ("ru", "не повреждено, но не тот цвет", Intent.wrong_item),
    ("ru", "Я НЕ получил заказ", Intent.not_received),
    ("ru", "возврат не нужен, скажите где посылка", Intent.not_received),
    ("fr", "merci, mais la taille est mauvaise", Intent.wrong_item),
    ("fr", "pas abîmé, mais la mauvaise taille", Intent.wrong_item),
    ("fr", "je n'ai PAS reçu ma commande", Intent.not_received),
    ("fr", "pas besoin de remboursement, dites-moi où il est", Intent.not_received),
    ("de", "danke, aber die Farbe ist falsch", Intent.wrong_item),
    ("de", "nicht beschädigt, aber die falsche Größe", Intent.wrong_item),
    ("de", "Ich habe das Paket NICHT erhalten", Intent.not_received),
    ("de", "keine Erstattung nötig, wo ist mein Paket?", Intent.not_received),
    # praise, then a contrast marker, then the problem: the problem
    ("en", "Quick delivery, thank you! Sadly the bottle leaks", Intent.quality_issue),
    ("de", "Danke für den schnellen Versand, leider ist das Glas gesprungen", Intent.quality_issue),
    ("fr", "merci beaucoup, mais malheureusement il manque le câble", Intent.missing_item),
    ("ru", "спасибо за быструю доставку, но к сожалению экран треснул", Intent.quality_issue),
    ("es", "gracias por todo, pero lamentablemente la lámpara no enciende", Intent.quality_issue),
    # "ordered X, got Y": colours, sizes, model codes, plugs; fewer pieces than ordered
    ("en", "I chose green and a yellow one came", Intent.wrong_item),
    ("es", "pedí la talla 37 y llegó la 39", Intent.wrong_item),
    ("de", "Hülle für S23 bekommen, bestellt hatte ich S24", Intent.wrong_item),
    ("pt", "escolhi o tamanho M e o L e vieram dois M", Intent.wrong_item),
    ("en", "I picked the EU plug but it has a UK plug", Intent.wrong_item),
    ("fr", "j'ai choisi le rouge et c'est un rose qui est arrivé", Intent.wrong_item),
    ("en", "bought 5 candles, received 3", Intent.missing_item),
    ("ru", "купила 4 стакана, получила 3", Intent.missing_item),
    ("pt", "o drone veio sem a bateria extra que deveria vir junto", Intent.missing_item),
    ("en", "opened it and found only packing paper, no item at all", Intent.empty_package),
    # the explicit request, the carrier, the address
    ("en", "still not dispatched after 10 days, cancel it please", Intent.cancel_order),
    ("en", "please ship it with DHL instead, I will pay extra", Intent.shipping_method),
    ("en", "I typed the wrong postcode, please fix it to 10115", Intent.change_address),
    ("es", "me mudo la semana que viene, envíenlo a mi trabajo por favor", Intent.change_address),
    ("de", "kann ich per Überweisung statt mit Karte bezahlen?", Intent.payment),
    ("en", "I need to collect it at customs and pay the import duty first", Intent.customs_tax),
    # pre-sale, invoices, settled problems
    ("en", "Can you issue an invoice with VAT for my business?", Intent.other),
    ("en", "do you ship to Norway?", Intent.other),
    ("en", "what would the price be for 500 pcs?", Intent.other),
    ("en", "all sorted now, thanks for changing the address", Intent.thanks),
    ("en", "no need to worry, my neighbour had taken it in. Thank you!", Intent.thanks),
]


@pytest.mark.parametrize(("lang", "text", "intent"), TRICKY)
def test_tricky_cases(lang: str, text: str, intent: Intent) -> None:
    c = classify(text)
    assert (c.language, c.intent) == (lang, intent), c.reasons


def test_negated_evidence_is_explained() -> None:
    c = classify("not damaged, but the wrong size")
    assert any(r.startswith("negated: 'damaged'") for r in c.reasons)
    assert any(r.startswith("intent wrong_item: 'wrong size' (en, +") for r in c.reasons)


def test_contrast_drops_praise_before_it() -> None:
    c = classify("Thanks, the parcel came fast, but unfortunately the strap snapped")
    assert c.intent == Intent.quality_issue
    assert not any(r.startswith("intent thanks:") for r in c.reasons)


def test_praise_before_a_contrast_with_an_unknown_problem_is_not_thanks() -> None:
    c = classify("Thank you so much, but the gizmo glorps all night now")
    assert c.intent != Intent.thanks


def test_ordered_x_got_y_is_explained() -> None:
    c = classify("I ordered the red one and a pink one arrived")
    assert c.intent == Intent.wrong_item
    assert any(r.startswith("intent wrong_item: 'ordered X, got Y (color: pink/red)'") for r in c.reasons)


@pytest.mark.parametrize(
    "text",
    [
        "I ordered the black and white dress, when will it arrive?",  # one choice, two colours
        "I ordered 3 weeks ago and paid 25 euros, where is it?",  # durations and prices
        "The price was 19.99 but I was charged 24.99",  # decimals are not sizes
    ],
)
def test_numbers_and_colours_that_are_not_a_mix_up(text: str) -> None:
    assert classify(text).intent != Intent.wrong_item


def test_fewer_pieces_than_ordered_is_missing_item() -> None:
    c = classify("im Set sind 20 Stifte statt 24")
    assert c.intent == Intent.missing_item
    assert any("ordered 24, got 20" in r for r in c.reasons)


def test_explicit_cancel_outranks_the_wait_but_not_an_item_problem() -> None:
    assert classify("12 days and still not shipped. Cancel my order.").intent == Intent.cancel_order
    assert classify("it arrived broken, cancel everything").intent == Intent.quality_issue


def test_short_messages_are_never_confident() -> None:
    c = classify("refund pls")
    assert c.intent == Intent.refund_request
    assert c.confidence < 0.6
    assert any(r.startswith("short message") for r in c.reasons)


def _tiny_model(intent: str, words: list[str]) -> NaiveBayes:
    """A model that has seen `words` only in messages of `intent` (and filler elsewhere)."""
    samples = [(tuple(words), intent)] * 5 + [(("filler", "words"), "other")] * 5
    counts, totals = train_counts(samples)
    return NaiveBayes.from_counts(counts, totals, alpha=0.3, temperature=1.0)


def test_model_doubt_caps_confidence_and_names_a_runner_up() -> None:
    text = "the colour is different"  # one lexicon phrase: wrong_item
    plain = Classifier(load_lexicons(), default_detector()).classify(text)
    assert plain.intent == Intent.wrong_item and plain.confidence >= 0.6
    model = _tiny_model("payment", ["the", "colour", "is", "different"])
    doubted = Classifier(load_lexicons(), default_detector(), model).classify(text)
    assert doubted.intent == Intent.wrong_item
    assert doubted.confidence < 0.6
    assert doubted.runner_up == Intent.payment
    assert any(r.startswith("model doubts wrong_item") for r in doubted.reasons)


def test_model_agreement_keeps_a_one_phrase_reading_confident() -> None:
    text = "the colour is different"
    model = _tiny_model("wrong_item", ["the", "colour", "is", "different"])
    c = Classifier(load_lexicons(), default_detector(), model).classify(text)
    assert c.intent == Intent.wrong_item and c.confidence >= 0.6 and c.runner_up is None


def test_model_suggests_when_no_pattern_fires_but_never_confidently() -> None:
    text = "the gizmo glorps and fizzles"
    assert classify_plain(text).intent == Intent.other
    model = _tiny_model("quality_issue", ["the", "gizmo", "glorps", "and", "fizzles"])
    c = Classifier(load_lexicons(), default_detector(), model).classify(text)
    assert c.intent == Intent.quality_issue
    assert c.confidence < 0.6
    assert any(r.startswith("no lexicon evidence: model reading quality_issue") for r in c.reasons)


def classify_plain(text: str):
    return Classifier(load_lexicons(), default_detector()).classify(text)


def test_two_requests_at_once_pick_the_problem_and_flag_the_conflict() -> None:
    c = classify("where is my parcel? also can I change the address")
    assert c.intent == Intent.not_received
    assert c.runner_up == Intent.change_address
    assert any(r.startswith("conflict: change_address") for r in c.reasons)


def test_accents_and_case_do_not_matter() -> None:
    folded = classify("nao recebi meu pedido")
    accented = classify("NÃO RECEBI MEU PEDIDO")
    assert (folded.intent, folded.confidence) == (accented.intent, accented.confidence)
    assert folded.intent == Intent.not_received


@pytest.mark.parametrize(
    "text",
    [
        "Hello, it's been a month, still no parcel. Any news?",
        "Please cancel my order",
        "Ich musste 20 Euro Zollgebühren zahlen",
        "Le colis est arrivé vide",
        "Me cobraron dos veces el mismo pedido",
    ],
)
def test_clear_messages_are_confident(text: str) -> None:
    c = classify(text)
    assert c.confidence >= 0.8
    assert c.runner_up is None


@pytest.mark.parametrize(
    "text", ["hello?", "???", "I have a problem", "Hola", "Bonjour !", "Здравствуйте", "ok", "Hallo?"]
)
def test_vague_messages_have_low_confidence(text: str) -> None:
    c = classify(text)
    assert c.intent == Intent.other
    assert c.confidence < 0.5


def test_confidence_orders_evidence() -> None:
    weak = classify("the parcel")
    clear = classify("my parcel never arrived")
    assert weak.intent == Intent.other and weak.confidence < 0.5
    assert clear.confidence > 0.9


def test_reasons_name_language_and_evidence() -> None:
    c = classify("The courier made me pay 25 USD of import duty.")
    assert c.reasons[0].startswith("language en")
    assert any(r.startswith("intent customs_tax: ") for r in c.reasons)


@pytest.mark.parametrize(
    ("text", "signal"),
    [
        ("The shirt has a small stain, can I wash it?", "stain"),
        ("The shirt has a small stain, can I wash it?", "minor_defect"),
        ("it is completely broken and does not work", "serious_defect"),
        ("my parcel never arrived, I want a refund", "wants_refund"),
        ("the belt is missing, please send it again", "wants_resend"),
        ("I will open a dispute if you do not answer", "dispute_threat"),
        ("this shop is a scam", "complaint"),
        ("WHERE IS MY ORDER I PAID TWO MONTHS AGO", "complaint"),
    ],
)
def test_signals(text: str, signal: str) -> None:
    assert signal in classify(text).signals


def test_negated_request_gives_no_signal() -> None:
    assert "wants_refund" not in classify("no refund needed, just tell me where it is").signals


def test_auto_reply_is_never_a_buyer_request() -> None:
    c = classify(
        "Thank you for your message. I am out of the office until Monday. This is an automatic reply."
    )
    assert c.intent == Intent.other
    assert "auto_reply" in c.signals


@pytest.mark.parametrize(
    "text", ["{{ 7*7 }}", "<script>alert('x')</script>", "{% for x in y %}{{ x }}{% endfor %}"]
)
def test_template_and_markup_text_is_just_text(text: str) -> None:
    c = classify(text)
    assert c.intent == Intent.other
    assert all("49" not in r for r in c.reasons)


def test_template_text_around_a_real_message() -> None:
    assert classify("<b>where is my order?</b> {{ order.id }}").intent == Intent.not_received


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="text"):
        classify(text)


def test_non_string_and_bad_language_are_refused() -> None:
    with pytest.raises(TypeError, match="text"):
        classify(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="language"):
        classify("where is my order", language="english")


def test_one_megabyte_with_control_characters_is_handled_quickly() -> None:
    text = "My order never arrived.\x00\x1b[31m\u202e " + "x" * 1_000_000
    start = time.perf_counter()
    c = classify(text)
    assert c.intent == Intent.not_received
    assert time.perf_counter() - start < 10.0  # milliseconds normally; quadratic work would take minutes


def test_given_language_is_used_and_reported() -> None:
    c = classify("pedido no llegó", language="ES")
    assert c.language == "es"
    assert c.intent == Intent.not_received


def test_unsupported_language_falls_back_to_every_lexicon() -> None:
    c = classify("Ciao, il mio ordine non è arrivato, where is my package?")
    assert c.language == "it"
    assert c.intent == Intent.not_received
    assert any(r.startswith("mixed-language fallback") for r in c.reasons)


def test_dev_set_accuracy_floor() -> None:
    rows = [json.loads(line) for p in sorted(DEV.glob("*.jsonl")) for line in p.open(encoding="utf-8")]
    per_lang, per_intent, right = Counter(), Counter(), Counter()
    for r in rows:
        ok = classify(r["text"]).intent.value == r["intent"]
        per_lang[r["language"]] += 1
        per_intent[r["intent"]] += 1
        right[("lang", r["language"])] += ok
        right[("intent", r["intent"])] += ok
    print(
        "\nper language:", {k: f"{right[('lang', k)] / n:.3f}" for k, n in sorted(per_lang.items(), key=str)}
    )
    print("per intent:", {k: f"{right[('intent', k)] / n:.3f}" for k, n in sorted(per_intent.items())})
    for lang in LANGUAGES:
        assert per_lang[lang] >= 40
        counted = {r["intent"] for r in rows if r["language"] == lang}
        assert counted == {i.value for i in Intent}, f"{lang} dev set misses intents"
        # Achieved 0.98-1.00 per language on the development set (the lexicons and the model were
        # built on it; fresh probes scored 0.73-0.77 before being tuned on and added): the floor
        # catches regressions from lexicon edits. The honest figures: test_validation_floor.py.
        assert right[("lang", lang)] / per_lang[lang] >= 0.95, lang
    assert sum(right[("lang", k)] for k in per_lang) / len(rows) >= 0.97


def test_typical_message_costs_well_under_a_millisecond() -> None:
    texts = [
        "Hello, it's been a month, still no parcel. Any news?",
        "Todo llegó bien, gracias",
        "Где мой заказ?",
    ]
    for t in texts:
        classify(t)
    start = time.perf_counter()
    for _ in range(200):
        for t in texts:
            classify(t)
    per_message = (time.perf_counter() - start) / 600
    assert per_message < 500e-6  # about 80 us on one core; generous for a loaded CI machine


# --- lexicon files ---------------------------------------------------------------------------


def test_every_language_has_every_intent_and_signal() -> None:
    lexicons = load_lexicons()
    assert set(lexicons) == set(LANGUAGES)
    for code, lex in lexicons.items():
        targets = {p.target for p in lex.patterns}
        assert {i.value for i in Intent} <= targets, code
        assert {f"signal:{s}" for s in SIGNALS} <= targets, code
        assert all(isinstance(p.weight, float) and 0 < p.weight <= 10 for p in lex.patterns), code
        assert lex.markers and lex.negation_cues, code


def test_every_pattern_can_match_its_own_text() -> None:
    """A pattern written in plain words must match a message made of those words."""
    for code, lex in load_lexicons().items():
        for p in lex.patterns:
            if p.regex is not None or any(kind != "w" for kind, _ in p.elements):
                continue
            text = Text.of(" ".join(value for _, value in p.elements))
            assert any(h.pattern is p for h in lex.match(text)), f"{code}: {p.source!r} ({p.target})"


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "en.toml"
    path.write_text(body, encoding="utf-8")
    return path


def _english_with(old: str, new: str) -> str:
    body = (LEXICON_DIR / "en.toml").read_text(encoding="utf-8")
    assert old in body
    return body.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("strong = 3.0", 'strong = "three"', r"en\.toml: weights\.strong: must be a number"),
        ("strong = 3.0", "strong = true", r"en\.toml: weights\.strong: must be a number"),
        ("[intents.payment]", "[intents.paymnet]", r"en\.toml: intents\.paymnet: unknown intent"),
        (
            '"dropship*",',
            '"dropship*", "re:(unclosed",',
            r"en\.toml: intents\.other\.strong\[\d+\]: regex .* does not compile",
        ),
        ('"dropship*",', '"dropship*", "a*",', r"en\.toml: intents\.other\.strong\[\d+\]: .*shorter than 3"),
        ('"dropship*",', '"dropship*", ".. in stock",', r"en\.toml: intents\.other\.strong\[\d+\]: .*'\.\.'"),
        (
            "[intents.other]\nstrong",
            "[intents.other]\nhuge",
            r"en\.toml: intents\.other\.huge: unknown weight level",
        ),
        ('code = "en"', 'code = "english"', r"en\.toml: language\.code"),
        ("window = 3", "window = 30", r"en\.toml: negation\.window"),
        ("[signals]\n", "[signals]\nmood = []\n", r"en\.toml: signals\.mood: unknown signal"),
        ("[intents.thanks]", "[intents.thanks\n", r"en\.toml: invalid TOML"),
    ],
)
def test_malformed_lexicon_names_file_and_key(tmp_path: Path, old: str, new: str, message: str) -> None:
    with pytest.raises(LexiconError, match=message):
        load_lexicon(_write(tmp_path, _english_with(old, new)))


def test_missing_intent_is_reported(tmp_path: Path) -> None:
    body = (LEXICON_DIR / "en.toml").read_text(encoding="utf-8")
    start = body.index("[intents.empty_package]")
    end = body.index("[intents.shipping_method]")
    with pytest.raises(LexiconError, match=r"en\.toml: intents\.empty_package: missing"):
        load_lexicon(_write(tmp_path, body[:start] + body[end:]))


def test_a_seller_can_extend_a_lexicon_without_code(tmp_path: Path) -> None:
    """A word added to a data file changes the decision: no code involved."""
    body = _english_with(
        "[intents.empty_package]\nstrong = [\n", '[intents.empty_package]\nstrong = [\n  "hollow",\n'
    )
    extended = {**load_lexicons(), "en": load_lexicon(_write(tmp_path, body))}
    clf = Classifier(extended, default_detector())
    assert clf.classify("the box was hollow").intent == Intent.empty_package
    assert default_classifier().classify("the box was hollow").intent != Intent.empty_package


# --- dispute reasons -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "intent"),
    [
        ("Product not received", Intent.not_received),
        ("The product was not delivered within the promised time", Intent.not_received),
        ("Quality not as described", Intent.quality_issue),
        ("Shipping method not as described", Intent.shipping_method),
        ("Product is different from the description", Intent.wrong_item),
        ("Package is empty", Intent.empty_package),
        ("Received wrong item", Intent.wrong_item),
        ("Received wrong color", Intent.wrong_item),
        ("Customs duties", Intent.customs_tax),
        ("ITEM_NOT_RECEIVED", Intent.not_received),
        ("NOT_AS_DESCRIBED", Intent.quality_issue),
        ("SIGNIFICANTLY_NOT_AS_DESCRIBED", Intent.quality_issue),
        ("DEFECTIVE_ITEM", Intent.quality_issue),
        ("ARRIVED_DAMAGED", Intent.quality_issue),
        ("WRONG_SIZE", Intent.wrong_item),
        ("MISSING_PARTS", Intent.missing_item),
        ("ORDERED_ACCIDENTALLY", Intent.refund_request),
        ("BUYER_CANCEL_ORDER", Intent.cancel_order),
        ("Item arrived broken in pieces", Intent.quality_issue),
        ("customs fee charged to buyer", Intent.customs_tax),
        ("zzz", Intent.other),
        ("", Intent.other),
    ],
)
def test_dispute_reasons(reason: str, intent: Intent) -> None:
    got, why = intent_from_dispute(reason)
    assert got == intent
    assert why


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("ordered = [\n", "orderd = [\n", r"en\.toml: structure\.orderd: unknown key"),
        ("two = 2", 'two = "2"', r"en\.toml: structure\.numbers\.two: must be a whole number"),
        ("[attributes]\n", '[attributes]\nColour = ["red"]\n', r"en\.toml: attributes\.Colour: .*lower-case"),
        ('color = [\n  "red",', 'color = [\n  "red /",', r"en\.toml: attributes\.color\[0\]: empty spelling"),
        ('markers = [\n  "but",', 'markers = [\n  "... but",', r"en\.toml: .*must sit between two words"),
        ("[contrast]\n", "[contrast]\nwords = []\n", r"en\.toml: contrast\.words: unknown key"),
    ],
)
def test_malformed_structure_tables_name_file_and_key(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    with pytest.raises(LexiconError, match=message):
        load_lexicon(_write(tmp_path, _english_with(old, new)))


def test_every_language_has_contrast_structure_and_attributes() -> None:
    for code, lex in load_lexicons().items():
        kinds = {p.kind for p in lex.patterns}
        assert {"contrast", "ordered", "received", "unit", "head", "measure", "attribute"} <= kinds, code
        assert lex.numbers, code


def test_long_gap_reaches_further_than_the_short_one() -> None:
    lex = load_lexicons()["en"]
    text = Text.of("they agreed to refund me 10 dollars last week, but I haven't got it")
    found = {h.pattern.source for h in lex.match(text)}
    assert "refund* ... haven t got" in found


# --- the statistical model -------------------------------------------------------------------


def test_shipped_model_loads_and_reads_a_plain_message() -> None:
    model = naive_bayes.load()
    post = model.posterior(Text.of("the screen is cracked and it does not turn on").tokens)
    assert abs(sum(post.values()) - 1.0) < 1e-9
    assert max(post, key=post.__getitem__) == Intent.quality_issue
    assert model.posterior(Text.of("zzqx").tokens) == {}


def test_features_are_words_pairs_and_word_beginnings() -> None:
    feats = features(Text.of("Broken screen 42").tokens)
    assert {"broken", "screen", "#", "broken screen", "screen #", "broke~", "scree~"} == set(feats)


def test_model_training_rejects_an_unknown_intent() -> None:
    with pytest.raises(ValueError, match="intent"):
        train_counts([(("a", "b"), "lost_parcel")])


def test_model_round_trip_and_bad_files(tmp_path: Path) -> None:
    counts, totals = train_counts(
        [(("where", "is", "it"), "not_received")] * 3 + [(("thanks",), "thanks")] * 2
    )
    path = tmp_path / "nb.json"
    naive_bayes.dump(path, counts, totals, alpha=0.5, temperature=2.0)
    model = naive_bayes.load(path)
    assert max(model.posterior(("where", "is", "it")).items(), key=lambda kv: kv[1])[0] == Intent.not_received
    with pytest.raises(ModelError, match="not found"):
        naive_bayes.load(tmp_path / "missing.json")
    path.write_text('{"format": "other"}', encoding="utf-8")
    with pytest.raises(ModelError, match="format"):
        naive_bayes.load(path)
    path.write_text(
        json.dumps({"format": naive_bayes.FORMAT, "alpha": 0, "temperature": 1, "counts": {}, "totals": {}}),
        encoding="utf-8",
    )
    with pytest.raises(ModelError, match="alpha"):
        naive_bayes.load(path)
    path.write_text(
        json.dumps(
            {
                "format": naive_bayes.FORMAT,
                "alpha": 1,
                "temperature": 1,
                "counts": {"x": {"lost": 1}},
                "totals": {},
            }
        ),
        encoding="utf-8",
    )
    with pytest.raises(ModelError, match=r"counts\['x'\]"):
        naive_bayes.load(path)


def test_shipped_model_is_trained_on_the_current_development_set() -> None:
    """Adding development messages without retraining would leave the model behind the data."""
    from worker.triage.model.train import ALPHA, MIN_COUNT, TEMPERATURE, read_samples

    counts, totals = train_counts(read_samples(DEV), MIN_COUNT)
    shipped = json.loads(naive_bayes.MODEL_PATH.read_text(encoding="utf-8"))
    assert (shipped["alpha"], shipped["temperature"]) == (ALPHA, TEMPERATURE)
    assert shipped["counts"] == counts and shipped["totals"] == totals, (
        "nb.json is out of date: run python -m worker.triage.model.train"
    )
