"""Russian, French and German templates: every variant renders, keeps the facts and the house style.

The grid crosses the switches the brief names (dispute open or not, buyer name or none, tracking or
none, 1/3/5/21 days left for Russian plural agreement); expected words are written out by hand so a
wrong plural or a lost fact fails here, not in a buyer's inbox.
"""

from __future__ import annotations

import itertools
import re
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from worker.render import REPO_ROOT, LifecycleContext, Renderer
from worker.triage.types import Item, LastEvent, ReplyContext

TEMPLATES = REPO_ROOT / "templates"
RENDERER = Renderer(TEMPLATES)
LANGS = ("ru", "fr", "de")
REPLIES = RENDERER.reply_names()
LIFECYCLE = RENDERER.lifecycle_kinds()

TRACKING = "LP000000777CN"
CARRIER = "China Post"
EVENT = LastEvent(time=datetime(2026, 2, 26, 9, 30), location="Curitiba", description="Arrived at facility")
SHIPPED_AT = datetime(2026, 1, 30, 12, 0)
NOW = datetime(2026, 3, 1, 12, 0)
REFUND = Decimal("31.90")
# Both the refund and the coupon in the sample use a decimal comma in all three locales.
REFUND_DIGITS = "31,90"
COUPON_DIGITS = "3,00"

# Long dates as a native reader expects them (Babel's CLDR long format).
DEADLINE_DATES = {
    1: {"ru": "2 марта 2026\u202fг.", "fr": "2 mars 2026", "de": "2. März 2026"},
    3: {"ru": "4 марта 2026\u202fг.", "fr": "4 mars 2026", "de": "4. März 2026"},
    5: {"ru": "6 марта 2026\u202fг.", "fr": "6 mars 2026", "de": "6. März 2026"},
    21: {"ru": "22 марта 2026\u202fг.", "fr": "22 mars 2026", "de": "22. März 2026"},
}
EVENT_DATE = {"ru": "26 февраля 2026\u202fг.", "fr": "26 février 2026", "de": "26. Februar 2026"}
PASSED_DEADLINE = datetime(2026, 2, 20, 12, 0)
PASSED_DEADLINE_DATE = {"ru": "20 февраля 2026\u202fг.", "fr": "20 février 2026", "de": "20. Februar 2026"}
# "N days", agreeing with N: Russian has three forms (1 день, 3 дня, 5 дней, 21 день).
DAYS = {
    "ru": {1: "1 день", 3: "3 дня", 5: "5 дней", 21: "21 день", 30: "30 дней"},
    "fr": {1: "1 jour", 3: "3 jours", 5: "5 jours", 21: "21 jours", 30: "30 jours"},
    "de": {1: "1 Tag", 3: "3 Tage", 5: "5 Tage", 21: "21 Tage", 30: "30 Tage"},
}
BUSINESS_DAYS = {
    "ru": {1: "1 рабочий день", 3: "3 рабочих дня", 5: "5 рабочих дней"},
    "fr": {1: "1 jour ouvré", 3: "3 jours ouvrés", 5: "5 jours ouvrés"},
    "de": {1: "1 Werktag", 3: "3 Werktage", 5: "5 Werktage"},
}
SIGN_OFF = {"ru": "С уважением,", "fr": "Bien cordialement,", "de": "Freundliche Grüße"}
NAMELESS_GREETING = {"ru": "Здравствуйте!", "fr": "Bonjour,", "de": "Guten Tag,"}
NAMED_GREETING = {"ru": "Здравствуйте, {}!", "fr": "Bonjour {},", "de": "Hallo {},"}
# Asking to cancel a dispute that is open, and asking not to open one.
CANCEL_DISPUTE = {
    "ru": re.compile(r"(закрыть|закройте)( текущий)? спор|закрытия спора"),
    "fr": re.compile(r"annuler (d'abord )?le litige|le litige annulé"),
    "de": re.compile(r"zurückzuziehen|den Streitfall zurück|Streitfall zurückgezogen"),
}
BEFORE_OPENING_DISPUTE = {
    "ru": re.compile(r"открывать спор"),
    "fr": re.compile(r"ouvrir (un|de) litige"),
    "de": re.compile(r"bevor Sie einen Streitfall|statt einen Streitfall|keinen Streitfall"),
}
# The marketplace term for the buyer-protection period.
PROTECTION = {"ru": "защиту покупателя", "fr": "protection acheteur", "de": "Käuferschutz"}

# Templates that give the tracking number whenever there is one (the others do not need it).
STATES_TRACKING = {
    "not_received/no_tracking_info",
    "not_received/in_transit",
    "not_received/overdue",
    "not_received/delivered_not_received",
    "not_received/customs_held",
    "not_received/lost",
    "not_received/returned_to_sender",
    "not_received/awaiting_pickup",
    "shipping_method/default",
    "cancel_order/default",
    "change_address/default",
    "refund_request/default",
}
# Templates that state the refund amount the decision offers.
STATES_REFUND = {
    "not_received/not_shipped_yet",
    "not_received/no_tracking_info",
    "not_received/overdue",
    "not_received/lost",
    "not_received/returned_to_sender",
    "quality_issue/default",
    "wrong_item/default",
    "customs_tax/default",
    "shipping_method/default",
    "refund_request/default",
}
# Policy guard 1: no refund in these scenarios, so no amount either.
NO_REFUND = {
    "not_received/in_transit",
    "not_received/delivered_not_received",
    "not_received/customs_held",
    "not_received/awaiting_pickup",
}
# Templates that give the latest tracking event in full (date, place, carrier's words).
STATES_LAST_EVENT = {
    "not_received/in_transit",
    "not_received/customs_held",
    "not_received/returned_to_sender",
}
# ...and those that give at least when and where (delivered there, waiting there).
STATES_EVENT_WHEN_WHERE = STATES_LAST_EVENT | {
    "not_received/delivered_not_received",
    "not_received/awaiting_pickup",
}

_JINJA_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)


def greeting(language: str, buyer_name: str | None) -> str:
    return NAMED_GREETING[language].format(buyer_name) if buyer_name else NAMELESS_GREETING[language]


def has_phrase(text: str, phrase: str) -> bool:
    """`phrase` as whole words: "1 Tag" is not in "1 Tage", "1 день" is not in "21 день"."""
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text) is not None


def reply_ctx(language: str, **changes) -> ReplyContext:
    """A complete, consistent reply context: shipped order, refund and resend offered."""
    days_left = changes.pop("days_left", 21)
    values = dict(
        language=language,
        shop_name="Lotus Fashion Store",
        buyer_name="Ana",
        marketplace="aliexpress",
        order_id="90000777",
        order_status="shipped",
        order_total=REFUND,
        currency="USD",
        items=[Item(sku="DR-RED-M", title="Summer dress", quantity=1, price=REFUND)],
        tracking_number=TRACKING,
        shipping_method="china_post_small_packet",
        carrier_label=CARRIER,
        shipped_at=SHIPPED_AT,
        deadline=NOW + timedelta(days=days_left) if days_left is not None else None,
        days_left=days_left,
        days_since_shipment=30,
        usual_days_min=20,
        usual_days_max=40,
        tracking_status="in_transit",
        last_event=EVENT,
        dispute_open=False,
        handling_days=3,
        extension_days=30,
        offer_resend=True,
        offer_refund=True,
        refund_amount=REFUND,
        coupon_amount=Decimal("3.00"),
        photo_requested=True,
        buyer_prefers=None,
    )
    values.update(changes)
    return ReplyContext(**values)


def without_tracking(ctx: ReplyContext) -> ReplyContext:
    return ctx.model_copy(update={"tracking_number": None, "carrier_label": None, "last_event": None})


def grid(language: str):
    """Every combination the brief asks for, labelled for assertion messages."""
    for dispute_open, name, tracked, days_left in itertools.product(
        (False, True), ("Ana", None), (True, False), (1, 3, 5, 21)
    ):
        ctx = reply_ctx(language, dispute_open=dispute_open, buyer_name=name, days_left=days_left)
        if not tracked:
            ctx = without_tracking(ctx)
        label = f"dispute={dispute_open} name={name} tracking={tracked} days_left={days_left}"
        yield label, ctx


def lifecycle_ctx(language: str, **changes) -> LifecycleContext:
    values = dict(
        language=language,
        shop_name="Lotus Fashion Store",
        buyer_name="Ana",
        marketplace="ebay",
        marketplace_label="eBay",
        order_id="90000777",
        items=[
            Item(sku="DR-RED-M", title="Summer dress", quantity=1, price=Decimal("24.90")),
            Item(sku=None, title="Leather belt", quantity=2, price=Decimal("3.50")),
        ],
        order_total=Decimal("31.90"),
        currency="EUR",
        handling_days=3,
        tracking_number=TRACKING,
        carrier_label=CARRIER,
        tracking_url=f"https://t.17track.net/en#nums={TRACKING}",
        shipped_at=SHIPPED_AT,
        delivered_at=EVENT.time,
    )
    values.update(changes)
    return LifecycleContext(**values)


def assert_clean(text: str, language: str, where: str) -> None:
    """Problems a careful writer would never send, whatever the variables held."""
    assert text.strip(), f"{where}: empty"
    for leak in ("None", "{{", "{%", "}}", "%}"):
        assert leak not in text, f"{where}: contains {leak!r}"
    assert "\n\n\n" not in text, f"{where}: run of blank lines"
    assert not re.search(r"[ \t]$", text, re.M), f"{where}: trailing space"
    assert "  " not in text, f"{where}: double space"
    assert not re.search(r" [,.]", text), f"{where}: space before a comma or full stop"
    # A date ending a sentence gives "2026 г.." in Russian; any doubled stop is a template slip.
    assert ".." not in text, f"{where}: doubled full stop"
    assert not re.search(r"\(\s*\)", text), f"{where}: empty parentheses"
    if language == "ru":
        # Letters to one person capitalise the polite pronoun: Вы, Вас, Вам, Ваш...
        lower = re.search(r"\b(вы|вас|вам|вами|ваш\w*)\b", text)
        assert lower is None, f"{where}: lowercase polite pronoun {lower.group(0)!r}"
    if language == "de":
        # After "Hallo Ana," the letter goes on in lower case unless a noun or "Sie/Ihr" follows.
        first = text.split("\n\n")[1]
        assert first[0].islower() or first.split()[0] in {"Ihre", "Ihr", "Sie"}, f"{where}: {first[:30]!r}"


@pytest.mark.parametrize("language", LANGS)
@pytest.mark.parametrize("kind_dir", ["replies", "lifecycle"])
def test_language_has_exactly_the_english_file_set(kind_dir, language):
    def files(lang):
        root = TEMPLATES / kind_dir / lang
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.j2"))

    assert files(language) == files("en")
    assert files(language), "no templates at all"


@pytest.mark.parametrize("language", LANGS)
@pytest.mark.parametrize("name", REPLIES)
def test_reply_renders_every_grid_variant_with_its_facts(name, language):
    for label, ctx in grid(language):
        where = f"{language}/{name} [{label}]"
        text = RENDERER.render_reply(name, ctx)
        assert_clean(text, language, where)
        lines = text.splitlines()
        assert lines[0] == greeting(language, ctx.buyer_name), where
        assert lines[-2:] == [SIGN_OFF[language], ctx.shop_name], where
        assert ctx.order_id in text, where
        if name in STATES_TRACKING and ctx.tracking_number:
            assert ctx.tracking_number in text, f"{where}: tracking number missing"
        if name in STATES_REFUND:
            assert REFUND_DIGITS in text, f"{where}: refund amount missing"
        if name in NO_REFUND:
            assert REFUND_DIGITS not in text, f"{where}: refund amount in a no-refund scenario"
        if name in STATES_EVENT_WHEN_WHERE and ctx.last_event:
            for fact in (EVENT_DATE[language], EVENT.location):
                assert fact in text, f"{where}: last event {fact!r} missing"
        if name in STATES_LAST_EVENT and ctx.last_event:
            assert EVENT.description in text, f"{where}: carrier's event description missing"


@pytest.mark.parametrize("language", LANGS)
@pytest.mark.parametrize("name", REPLIES)
def test_dispute_wording_follows_dispute_open(name, language):
    for label, ctx in grid(language):
        where = f"{language}/{name} [{label}]"
        text = RENDERER.render_reply(name, ctx)
        asks_to_cancel = CANCEL_DISPUTE[language].search(text)
        if ctx.dispute_open:
            # `other` is a holding reply: it acknowledges the dispute without asking anything.
            if name != "other/default":
                assert asks_to_cancel, f"{where}: no request to cancel the open dispute"
            assert not BEFORE_OPENING_DISPUTE[language].search(text), f"{where}: asks not to open one"
        else:
            assert not asks_to_cancel, f"{where}: asks to cancel a dispute that is not open"
            if name != "thanks/default":
                assert BEFORE_OPENING_DISPUTE[language].search(text), f"{where}: no word about disputes"


@pytest.mark.parametrize("language", LANGS)
@pytest.mark.parametrize("days_left", [1, 3, 5, 21])
def test_in_transit_gives_deadline_and_days_left_in_agreement(language, days_left):
    for dispute_open in (False, True):
        ctx = reply_ctx(language, days_left=days_left, dispute_open=dispute_open)
        text = RENDERER.render_reply("not_received/in_transit", ctx)
        assert DEADLINE_DATES[days_left][language] in text
        assert has_phrase(text, DAYS[language][days_left])
        for fact in (TRACKING, CARRIER, EVENT_DATE[language], EVENT.location, EVENT.description):
            assert fact in text, fact


@pytest.mark.parametrize("language", LANGS)
def test_in_transit_states_the_usual_transit_time(language):
    usual = {"ru": "20–40 дней", "fr": "de 20 à 40 jours", "de": "20–40 Tage"}[language]
    assert usual in RENDERER.render_reply("not_received/in_transit", reply_ctx(language))
    unknown = reply_ctx(language, usual_days_min=None, usual_days_max=None)
    text = RENDERER.render_reply("not_received/in_transit", unknown)
    assert usual not in text
    assert_clean(text, language, "in_transit without usual transit time")


@pytest.mark.parametrize("language", LANGS)
def test_in_transit_on_the_deadline_day_and_after_it(language):
    today = reply_ctx(language, days_left=0)
    text = RENDERER.render_reply("not_received/in_transit", today)
    assert {"ru": "сегодня", "fr": "aujourd'hui", "de": "heute"}[language] in text
    assert not has_phrase(text, {"ru": "0 дней", "fr": "0 jour", "de": "0 Tage"}[language])

    passed = reply_ctx(language, days_left=-9, deadline=PASSED_DEADLINE)
    text = RENDERER.render_reply("not_received/in_transit", passed)
    assert PASSED_DEADLINE_DATE[language] in text
    # No "N more days" and no "we cannot refund before the deadline" once it is behind us.
    assert not re.search(r"-?9 ", text)
    assert {"ru": "истекает", "fr": "court jusqu'au", "de": "endet am"}[language] not in text
    assert_clean(text, language, "in_transit past deadline")


@pytest.mark.parametrize("language", LANGS)
def test_overdue_offers_refund_or_resend_and_names_the_deadline(language):
    ctx = reply_ctx(language, days_left=-9, deadline=PASSED_DEADLINE)
    text = RENDERER.render_reply("not_received/overdue", ctx)
    assert REFUND_DIGITS in text and PASSED_DEADLINE_DATE[language] in text
    # When the buyer already said what they want, we confirm it instead of asking again.
    asks = {"ru": "какой вариант", "fr": "la solution que vous préférez", "de": "was Ihnen lieber ist"}[
        language
    ]
    assert asks in text
    for prefers in ("refund", "resend"):
        chosen = RENDERER.render_reply(
            "not_received/overdue", ctx.model_copy(update={"buyer_prefers": prefers})
        )
        assert asks not in chosen and REFUND_DIGITS in chosen, prefers


@pytest.mark.parametrize("language", LANGS)
@pytest.mark.parametrize("name", ["not_received/no_tracking_info", "not_received/lost"])
def test_protection_extension_is_stated_with_the_marketplace_term(name, language):
    text = RENDERER.render_reply(name, reply_ctx(language))
    assert PROTECTION[language] in text and has_phrase(text, DAYS[language][30])
    assert PROTECTION[language] not in RENDERER.render_reply(name, reply_ctx(language, extension_days=None))


@pytest.mark.parametrize("language", LANGS)
def test_no_tracking_info_gives_days_since_shipment(language):
    text = RENDERER.render_reply("not_received/no_tracking_info", reply_ctx(language, days_since_shipment=21))
    assert has_phrase(text, DAYS[language][21])


@pytest.mark.parametrize("language", LANGS)
@pytest.mark.parametrize("name", ["not_received/not_shipped_yet"])
def test_handling_time_is_in_business_days(name, language):
    for n in (1, 3, 5):
        text = RENDERER.render_reply(name, reply_ctx(language, handling_days=n, order_status="paid"))
        assert has_phrase(text, BUSINESS_DAYS[language][n])


@pytest.mark.parametrize("language", LANGS)
def test_customs_offers_coupon_and_part_refund_when_set_and_a_discount_otherwise(language):
    text = RENDERER.render_reply("customs_tax/default", reply_ctx(language))
    assert COUPON_DIGITS in text and REFUND_DIGITS in text
    bare = RENDERER.render_reply(
        "customs_tax/default", reply_ctx(language, coupon_amount=None, refund_amount=None)
    )
    assert COUPON_DIGITS not in bare and REFUND_DIGITS not in bare
    assert_clean(bare, language, "customs_tax without amounts")
    coupon = RENDERER.render_reply("customs_tax/default", reply_ctx(language, refund_amount=None))
    assert COUPON_DIGITS in coupon and REFUND_DIGITS not in coupon
    part = RENDERER.render_reply("customs_tax/default", reply_ctx(language, coupon_amount=None))
    assert REFUND_DIGITS in part and COUPON_DIGITS not in part


@pytest.mark.parametrize("language", LANGS)
@pytest.mark.parametrize("name", ["cancel_order/default", "change_address/default", "refund_request/default"])
def test_status_dependent_replies_read_well_for_every_order_status(name, language):
    texts = {}
    for status in ("unpaid", "paid", "shipped", "delivered", "completed", "cancelled"):
        for tracked in (True, False):
            ctx = reply_ctx(language, order_status=status)
            ctx = ctx if tracked else without_tracking(ctx)
            text = RENDERER.render_reply(name, ctx)
            assert_clean(text, language, f"{name} {status} tracking={tracked}")
            if tracked:
                texts[status] = text
    # Not shipped yet and already shipped get different answers.
    assert texts["paid"] != texts["shipped"]
    assert TRACKING in texts["shipped"] and TRACKING not in texts["paid"]


@pytest.mark.parametrize("language", LANGS)
@pytest.mark.parametrize("name", REPLIES)
def test_every_optional_field_none_still_reads_cleanly(name, language):
    bare = reply_ctx(
        language,
        buyer_name=None,
        tracking_number=None,
        shipping_method=None,
        carrier_label=None,
        shipped_at=None,
        deadline=None,
        days_left=None,
        days_since_shipment=None,
        usual_days_min=None,
        usual_days_max=None,
        tracking_status=None,
        last_event=None,
        extension_days=None,
        offer_resend=False,
        offer_refund=False,
        refund_amount=None,
        coupon_amount=None,
        photo_requested=False,
        items=[],
    )
    for dispute_open in (False, True):
        text = RENDERER.render_reply(name, bare.model_copy(update={"dispute_open": dispute_open}))
        assert_clean(text, language, f"{language}/{name} bare dispute={dispute_open}")
        assert REFUND_DIGITS not in text


@pytest.mark.parametrize("language", LANGS)
def test_buyer_name_is_data_not_template(language):
    hostile = "{{ 7*7 }} None"
    for name in REPLIES:
        text = RENDERER.render_reply(name, reply_ctx(language, buyer_name=hostile))
        assert hostile in text.splitlines()[0] and "49" not in text, name


@pytest.mark.parametrize("language", LANGS)
@pytest.mark.parametrize("kind", LIFECYCLE)
def test_lifecycle_mail_renders_with_and_without_optional_facts(kind, language):
    full = lifecycle_ctx(language)
    bare = lifecycle_ctx(
        language,
        buyer_name=None,
        items=[],
        tracking_number=None,
        carrier_label=None,
        tracking_url=None,
        shipped_at=None,
        delivered_at=None,
    )
    for label, ctx in (
        ("full", full),
        ("bare", bare),
        ("one day", full.model_copy(update={"handling_days": 1})),
    ):
        where = f"{language}/{kind} [{label}]"
        text = RENDERER.render_lifecycle(kind, ctx)
        assert_clean(text, language, where)
        assert ctx.order_id in text and text.splitlines()[-2:] == [SIGN_OFF[language], ctx.shop_name], where
        assert text.splitlines()[0] == greeting(language, ctx.buyer_name), where


@pytest.mark.parametrize("language", LANGS)
def test_lifecycle_mails_carry_their_facts(language):
    ctx = lifecycle_ctx(language)
    render = RENDERER.render_lifecycle
    for kind in ("unpaid_reminder", "payment_confirmed"):
        text = render(kind, ctx)
        assert "Summer dress" in text and "Leather belt" in text, kind
    assert has_phrase(render("payment_confirmed", ctx), BUSINESS_DAYS[language][3])
    one_day = ctx.model_copy(update={"handling_days": 1})
    assert has_phrase(render("payment_confirmed", one_day), BUSINESS_DAYS[language][1])
    shipped = render("shipped", ctx)
    assert TRACKING in shipped and CARRIER in shipped and ctx.tracking_url in shipped
    assert {"ru": "30 января 2026\u202fг.", "fr": "30 janvier 2026", "de": "30. Januar 2026"}[
        language
    ] in shipped
    assert EVENT_DATE[language] in render("delivered", ctx)
    for kind in ("delivered", "feedback_request"):
        assert "eBay" in render(kind, ctx), kind


def test_french_punctuation_has_a_narrow_no_break_space_in_every_template():
    """French typography: a narrow no-break space before ; : ! ? and inside « »."""
    sources = sorted(TEMPLATES.glob("*/fr/**/*.j2"))
    assert sources
    for path in sources:
        # Only our own words: the variables may hold URLs or times with colons.
        text = _JINJA_TAG.sub("", path.read_text(encoding="utf-8"))
        for match in re.finditer(r"[;:!?»]", text):
            assert text[match.start() - 1] == "\u202f", f"{path}: {text[match.start() - 20 : match.end()]!r}"
        for match in re.finditer(r"«", text):
            assert text[match.end()] == "\u202f", f"{path}: {text[match.start() : match.end() + 20]!r}"


@pytest.mark.parametrize("language", LANGS)
def test_russian_and_german_quote_the_carrier_event_natively(language):
    text = RENDERER.render_reply("not_received/in_transit", reply_ctx(language))
    quoted = {
        "ru": "«Arrived at facility»",
        "fr": "«\u202fArrived at facility\u202f»",
        "de": "„Arrived at facility“",
    }
    assert quoted[language] in text
