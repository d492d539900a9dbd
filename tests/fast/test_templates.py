"""The shipped templates (`templates/`): complete in every language, clean, and carrying the facts."""

from __future__ import annotations

from decimal import Decimal

import pytest
from typer.testing import CliRunner

from worker.cli.templates import app as templates_app
from worker.render import (
    LANGUAGES,
    REPO_ROOT,
    Renderer,
    make_filters,
    sample_lifecycle_contexts,
    sample_reply_contexts,
)

TEMPLATES = REPO_ROOT / "templates"
RENDERER = Renderer(TEMPLATES)
REPLIES = RENDERER.reply_names()
LIFECYCLE = RENDERER.lifecycle_kinds()
# Scenarios where policy guard 1 forbids a refund: the reply must not mention any refund amount.
NO_REFUND_SCENARIOS = (
    "not_received/in_transit",
    "not_received/delivered_not_received",
    "not_received/customs_held",
    "not_received/awaiting_pickup",
)
MAX_REPLY_CHARS = 1500  # "short": a marketplace message the buyer reads on a phone


def reply_ctx(language: str, label: str = "full", **changes):
    ctx = dict(sample_reply_contexts(language))[label]
    return ctx.model_copy(update=changes) if changes else ctx


def fmt(language: str):
    """The same Babel filters the templates use, to state expectations in each language."""
    return make_filters(language)


def test_the_reference_set_is_complete():
    expected_replies = {
        "not_received/not_shipped_yet",
        "not_received/no_tracking_info",
        "not_received/in_transit",
        "not_received/overdue",
        "not_received/delivered_not_received",
        "not_received/customs_held",
        "not_received/lost",
        "not_received/returned_to_sender",
        "not_received/awaiting_pickup",
        "quality_issue/default",
        "quality_issue/stain",
        "wrong_item/default",
        "missing_item/default",
        "customs_tax/default",
        "empty_package/default",
        "shipping_method/default",
        "cancel_order/default",
        "change_address/default",
        "payment/default",
        "refund_request/default",
        "thanks/default",
        "other/default",
    }
    assert set(REPLIES) == expected_replies
    assert set(LIFECYCLE) == {
        "unpaid_reminder",
        "payment_confirmed",
        "shipped",
        "delivered",
        "feedback_request",
    }


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind_dir", ["replies", "lifecycle"])
def test_every_language_has_exactly_the_files_of_english(kind_dir, language):
    def files(lang):
        root = TEMPLATES / kind_dir / lang
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    assert files(language) == files("en")


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", REPLIES)
def test_reply_renders_cleanly_with_every_sample_context(name, language):
    assert RENDERER.check_template("replies", name, language) == []


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", LIFECYCLE)
def test_lifecycle_mail_renders_cleanly_with_every_sample_context(kind, language):
    assert RENDERER.check_template("lifecycle", kind, language) == []


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", REPLIES)
def test_reply_greets_by_name_signs_with_the_shop_and_names_the_order(name, language):
    for label, ctx in sample_reply_contexts(language):
        text = RENDERER.render_reply(name, ctx)
        lines = text.splitlines()
        if ctx.buyer_name:
            assert ctx.buyer_name in lines[0], (label, lines[0])
        assert lines[-1] == ctx.shop_name, label
        assert ctx.order_id in text, label
        assert len(text) <= MAX_REPLY_CHARS, (label, len(text))


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", LIFECYCLE)
def test_lifecycle_mail_names_the_order_and_the_shop(kind, language):
    for label, ctx in sample_lifecycle_contexts(language):
        text = RENDERER.render_lifecycle(kind, ctx)
        assert ctx.order_id in text, label
        assert text.splitlines()[-1] == ctx.shop_name, label
        if ctx.buyer_name:
            assert ctx.buyer_name in text.splitlines()[0], label


@pytest.mark.parametrize("language", LANGUAGES)
def test_in_transit_states_the_facts(language):
    ctx = reply_ctx(language)
    f = fmt(language)
    text = RENDERER.render_reply("not_received/in_transit", ctx)
    for fact in (
        ctx.tracking_number,
        ctx.carrier_label,
        f["date"](ctx.shipped_at),
        f["date"](ctx.deadline),
        f["days"](ctx.days_left),
        f["date"](ctx.last_event.time),
        ctx.last_event.location,
        ctx.last_event.description,
        str(ctx.usual_days_min),
    ):
        assert fact in text, fact


@pytest.mark.parametrize("language", LANGUAGES)
def test_in_transit_one_day_left_uses_the_singular(language):
    text = RENDERER.render_reply("not_received/in_transit", reply_ctx(language, days_left=1))
    assert fmt(language)["days"](1) in text


@pytest.mark.parametrize("language", LANGUAGES)
def test_overdue_offers_the_refund_amount(language):
    ctx = reply_ctx(language, "overdue")
    text = RENDERER.render_reply("not_received/overdue", ctx)
    assert fmt(language)["money"](ctx.refund_amount, ctx.currency) in text
    assert fmt(language)["date"](ctx.deadline) in text


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", ["not_received/lost", "not_received/returned_to_sender"])
def test_refund_scenarios_state_the_amount(name, language):
    ctx = reply_ctx(language)
    assert fmt(language)["money"](ctx.refund_amount, ctx.currency) in RENDERER.render_reply(name, ctx)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", ["not_received/no_tracking_info", "not_received/lost"])
def test_protection_extension_is_stated(name, language):
    ctx = reply_ctx(language)
    assert fmt(language)["days"](ctx.extension_days) in RENDERER.render_reply(name, ctx)


@pytest.mark.parametrize("language", LANGUAGES)
def test_delivered_not_received_gives_the_delivery_date(language):
    ctx = reply_ctx(language)
    text = RENDERER.render_reply("not_received/delivered_not_received", ctx)
    assert fmt(language)["date"](ctx.last_event.time) in text
    assert ctx.tracking_number in text


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", NO_REFUND_SCENARIOS)
def test_no_refund_scenarios_never_mention_a_refund_amount(name, language):
    ctx = reply_ctx(language, refund_amount=Decimal("31.90"), offer_refund=True)
    assert fmt(language)["money"](ctx.refund_amount, ctx.currency) not in RENDERER.render_reply(name, ctx)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(
    "name", [n for n in REPLIES if "dispute_open" in (TEMPLATES / "replies/en" / f"{n}.j2").read_text()]
)
def test_dispute_variant_differs_where_the_template_has_one(name, language):
    for label in ("full", "all optional None"):
        calm = RENDERER.render_reply(name, reply_ctx(language, label, dispute_open=False))
        disputed = RENDERER.render_reply(name, reply_ctx(language, label, dispute_open=True))
        assert calm != disputed, (name, label)


@pytest.mark.parametrize("language", LANGUAGES)
def test_buyer_name_with_template_syntax_prints_literally(language):
    hostile = "{{ 7*7 }} <script>alert(1)</script>"
    for name in REPLIES:
        text = RENDERER.render_reply(name, reply_ctx(language, buyer_name=hostile))
        assert hostile in text and "49" not in text, name


def test_templates_check_command_passes_on_the_shipped_templates():
    result = CliRunner().invoke(templates_app, ["check", "--templates-dir", str(TEMPLATES)])
    assert result.exit_code == 0, result.output
    assert (
        f"{len(LANGUAGES)} languages x {len(REPLIES)} replies + {len(LIFECYCLE)} lifecycle: all rendered"
        in (result.output)
    )
