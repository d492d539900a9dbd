"""Render buyer replies and lifecycle mails from the Jinja2 templates under `templates/`.

Layout: `templates/replies/<lang>/<name>.j2` (name like `not_received/in_transit`) and
`templates/lifecycle/<lang>/<kind>.j2`; every language holds exactly the files of `en`.
Templates are plain text, rendered in a sandbox with StrictUndefined: buyer text is context data,
never template source, and a missing variable is an error instead of "Dear ,".

Filters, formatted with Babel in the template's own language:
  `{{ dt | date }}`               long date: "3 April 2026", "3 de abril de 2026", "3 апреля 2026 г."
  `{{ amount | money(currency) }}` "US$25.00", "25,00 US$", "25,00 $US"
  `{{ n | days }}`                "1 day" / "5 days"; ru "1 день" / "3 дня" / "5 дней"
  `{{ n | business_days }}`       "1 business day" / "3 business days"; de "3 Werktage"
Babel's spaces are kept as CLDR has them (no-break / narrow no-break, e.g. before "US$" or "г.").

Whitespace: trim_blocks eats the newline after ANY block tag, also one ending a text line; write
`{% endif +%}` there to keep the line break. Output is normalised (see `normalise`), so blank lines
left by skipped `{% if %}` blocks do not matter.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import babel
import jinja2
from babel.dates import format_date
from babel.numbers import format_currency
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ConfigDict

from worker.triage.types import Item, LastEvent, ReplyContext

LANGUAGES = ("en", "es", "pt", "ru", "fr", "de")
FALLBACK_LANGUAGE = "en"

# Babel locale per template language. English uses en_GB because "3 April 2026" and "US$25.00"
# cannot be misread by buyers outside the US; Portuguese is Brazilian (most pt buyers are there).
LOCALES = {"en": "en_GB", "es": "es", "pt": "pt_BR", "ru": "ru", "fr": "fr", "de": "de"}

# Word for "day(s)" per CLDR plural category. Integers never hit Russian "other" (fractions only),
# it is listed so every category Babel may return has a word.
DAY_WORDS: dict[str, dict[str, str]] = {
    "en": {"one": "day", "other": "days"},
    "es": {"one": "día", "many": "días", "other": "días"},
    "pt": {"one": "dia", "many": "dias", "other": "dias"},
    "ru": {"one": "день", "few": "дня", "many": "дней", "other": "дня"},
    "fr": {"one": "jour", "many": "jours", "other": "jours"},
    "de": {"one": "Tag", "other": "Tage"},
}
BUSINESS_DAY_WORDS: dict[str, dict[str, str]] = {
    "en": {"one": "business day", "other": "business days"},
    "es": {"one": "día hábil", "many": "días hábiles", "other": "días hábiles"},
    "pt": {"one": "dia útil", "many": "dias úteis", "other": "dias úteis"},
    "ru": {"one": "рабочий день", "few": "рабочих дня", "many": "рабочих дней", "other": "рабочего дня"},
    "fr": {"one": "jour ouvré", "many": "jours ouvrés", "other": "jours ouvrés"},
    "de": {"one": "Werktag", "other": "Werktage"},
}

TEMPLATE_SUFFIX = ".j2"
TEMPLATES_ENV_VAR = "SELLERDESK_TEMPLATES_DIR"
REPO_ROOT = Path(__file__).resolve().parents[1]

_TRAILING_SPACES = re.compile(r"[ \t]+$", re.MULTILINE)
_BLANK_RUNS = re.compile(r"\n{3,}")
# What a rendered text must never contain: leaked None, unrendered Jinja, playbook-style "XX" blanks.
_PROBLEM_PATTERNS = (
    ("contains 'None'", re.compile(r"\bNone\b")),
    ("contains '{{'", re.compile(r"\{\{")),
    ("contains '{%'", re.compile(r"\{%")),
    ("contains '{#'", re.compile(r"\{#")),
    ("contains a placeholder 'XX'", re.compile(r"\bXX")),
)


class RenderError(Exception):
    """A template is missing or failed to render; names the template and the language."""

    def __init__(self, name: str, language: str, message: str) -> None:
        super().__init__(f"template {name!r} ({language}): {message}")
        self.name = name
        self.language = language
        self.message = message


class LifecycleContext(BaseModel):
    """Every variable a lifecycle mail template may use (unpaid, paid, shipped, delivered, feedback)."""

    model_config = ConfigDict(frozen=True)

    language: str
    shop_name: str
    buyer_name: str | None
    marketplace: str
    marketplace_label: str
    order_id: str
    items: list[Item]
    order_total: Decimal
    currency: str
    handling_days: int
    tracking_number: str | None
    carrier_label: str | None
    tracking_url: str | None
    shipped_at: datetime | None
    delivered_at: datetime | None


def normalise(text: str) -> str:
    """Strip trailing spaces on lines, collapse runs of blank lines to one, strip the ends."""
    return _BLANK_RUNS.sub("\n\n", _TRAILING_SPACES.sub("", text)).strip()


def _plural_word(words: dict[str, str], locale: babel.Locale, n: int) -> str:
    # The word agrees with the magnitude: "-3 days" and "3 days" take the same form.
    return words.get(locale.plural_form(abs(n)), words["other"])


@lru_cache(maxsize=4096)
def _format_date(value: date, locale: str) -> str:
    return format_date(value, format="long", locale=locale)


@lru_cache(maxsize=4096)
def _format_money(amount: Decimal, currency: str, locale: str) -> str:
    return format_currency(amount, currency, locale=locale)


def make_filters(language: str) -> dict[str, Callable[..., str]]:
    """The Babel-backed filters bound to one template language."""
    locale_name = LOCALES[language]
    locale = babel.Locale.parse(locale_name)
    day_words = DAY_WORDS[language]
    business_words = BUSINESS_DAY_WORDS[language]

    def date_filter(value: date | datetime) -> str:
        if not isinstance(value, date):
            raise TypeError(f"date filter needs a date or datetime, got {type(value).__name__}")
        # Datetimes in contexts are UTC; the calendar day shown is the UTC one, like the deadline.
        return _format_date(value.date() if isinstance(value, datetime) else value, locale_name)

    def money_filter(amount: Decimal | int | float, currency: str) -> str:
        if isinstance(amount, bool) or not isinstance(amount, Decimal | int | float):
            raise TypeError(f"money filter needs a number, got {type(amount).__name__}")
        if not isinstance(currency, str) or len(currency) != 3:
            raise TypeError(f"money filter needs a 3-letter currency code, got {currency!r}")
        return _format_money(Decimal(str(amount)), currency.upper(), locale_name)

    def count_filter(words: dict[str, str]) -> Callable[[int], str]:
        def count(n: int) -> str:
            if isinstance(n, bool) or not isinstance(n, int):
                raise TypeError(f"day count must be an integer, got {type(n).__name__}")
            return f"{n} {_plural_word(words, locale, n)}"

        return count

    return {
        "date": date_filter,
        "money": money_filter,
        "days": count_filter(day_words),
        "business_days": count_filter(business_words),
    }


class Renderer:
    """Compiles each template once per language and renders it with a typed context."""

    def __init__(self, templates_dir: Path) -> None:
        self.templates_dir = Path(templates_dir)
        self._envs = {lang: self._make_env(lang) for lang in LANGUAGES}
        self._compiled: dict[tuple[str, str], jinja2.Template] = {}

    def _make_env(self, language: str) -> ImmutableSandboxedEnvironment:
        env = ImmutableSandboxedEnvironment(
            loader=jinja2.FileSystemLoader(self.templates_dir),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # plain text: the web UI escapes on display
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            # Files do not change under a running worker; skip the per-render mtime check.
            auto_reload=False,
            cache_size=-1,
        )
        env.filters.update(make_filters(language))
        return env

    def _template(self, kind_dir: str, name: str, language: str) -> jinja2.Template:
        key = (f"{kind_dir}/{name}", language)
        template = self._compiled.get(key)
        if template is None:
            path = f"{kind_dir}/{language}/{name}{TEMPLATE_SUFFIX}"
            try:
                template = self._envs[language].get_template(path)
            except jinja2.TemplateNotFound:
                raise RenderError(name, language, f"no template file {path}") from None
            except jinja2.TemplateSyntaxError as exc:
                raise RenderError(name, language, f"syntax error line {exc.lineno}: {exc.message}") from None
            self._compiled[key] = template
        return template

    def _render(self, kind_dir: str, name: str, language: str, variables: dict[str, Any]) -> str:
        template = self._template(kind_dir, name, language)
        try:
            text = template.render(variables)
        except jinja2.UndefinedError as exc:
            raise RenderError(name, language, f"undefined variable: {exc.message}") from None
        except jinja2.exceptions.SecurityError as exc:
            raise RenderError(name, language, f"refused by the sandbox: {exc}") from None
        except Exception as exc:  # a filter or a comparison failing on bad data
            raise RenderError(name, language, f"{type(exc).__name__}: {exc}") from None
        return normalise(text)

    @staticmethod
    def resolve_language(language: str) -> str:
        """The template language for a buyer language ("pt", "pt-BR", "PT"): itself if supported, else English."""
        primary = language.replace("_", "-").split("-", 1)[0].lower()
        return primary if primary in LANGUAGES else FALLBACK_LANGUAGE

    def render_reply(self, name: str, ctx: ReplyContext) -> str:
        """Render reply `name` (e.g. `not_received/in_transit`) in the context's language."""
        language = self.resolve_language(ctx.language)
        # Shallow: nested models (items, last_event) stay objects, attributes work in templates.
        variables = dict(ctx)
        variables["language"] = language
        return self._render("replies", name, language, variables)

    def render_lifecycle(self, kind: str, ctx: LifecycleContext) -> str:
        """Render lifecycle mail `kind` (e.g. `shipped`) in the context's language."""
        language = self.resolve_language(ctx.language)
        variables = dict(ctx)
        variables["language"] = language
        return self._render("lifecycle", kind, language, variables)

    def _names(self, kind_dir: str, language: str = FALLBACK_LANGUAGE) -> list[str]:
        root = self.templates_dir / kind_dir / language
        if not root.is_dir():
            return []
        return sorted(
            p.relative_to(root).as_posix()[: -len(TEMPLATE_SUFFIX)] for p in root.rglob(f"*{TEMPLATE_SUFFIX}")
        )

    def reply_names(self) -> list[str]:
        """Reply template names, as found in English (the reference set)."""
        return self._names("replies")

    def lifecycle_kinds(self) -> list[str]:
        """Lifecycle mail kinds, as found in English (the reference set)."""
        return self._names("lifecycle")

    def check(self) -> list[str]:
        """Render every template in every language with sample contexts; return the problems found."""
        problems: list[str] = []
        for kind_dir, names in (("replies", self.reply_names()), ("lifecycle", self.lifecycle_kinds())):
            if not names:
                problems.append(f"{kind_dir}: no templates in {self.templates_dir / kind_dir / 'en'}")
            for language in LANGUAGES:
                present = set(self._names(kind_dir, language))
                for extra in sorted(present - set(names)):
                    problems.append(
                        f"{kind_dir}/{language}/{extra}: not in en (every language has en's files)"
                    )
                for name in names:
                    if name not in present:
                        problems.append(f"{kind_dir}/{language}/{name}: missing")
                        continue
                    problems.extend(self.check_template(kind_dir, name, language))
        return problems

    def check_template(self, kind_dir: str, name: str, language: str) -> list[str]:
        """Problems of one template (`kind_dir` is "replies" or "lifecycle") over the sample contexts."""
        if kind_dir == "replies":
            return _check_one(kind_dir, name, language, sample_reply_contexts(language), self.render_reply)
        if kind_dir == "lifecycle":
            return _check_one(
                kind_dir, name, language, sample_lifecycle_contexts(language), self.render_lifecycle
            )
        raise ValueError(f"kind_dir must be 'replies' or 'lifecycle', not {kind_dir!r}")


def _check_one(
    kind_dir: str,
    name: str,
    language: str,
    contexts: Iterable[tuple[str, BaseModel]],
    render: Callable[[str, Any], str],
) -> list[str]:
    """Problems of one template over the sample contexts; one line per distinct problem."""
    found: dict[str, str] = {}
    for label, ctx in contexts:
        where = f"{kind_dir}/{language}/{name} [{label}]"
        try:
            text = render(name, ctx)
        except RenderError as exc:
            found.setdefault(exc.message, f"{where}: {exc.message}")
            continue
        if not text:
            found.setdefault("empty", f"{where}: empty output")
        # The buyer's name is data and may legitimately hold "{{" or "None"; scan only our own text.
        buyer_name = getattr(ctx, "buyer_name", None)
        scanned = text.replace(buyer_name, "") if buyer_name else text
        for problem, pattern in _PROBLEM_PATTERNS:
            match = pattern.search(scanned)
            if match:
                line = scanned[: match.start()].count("\n") + 1
                found.setdefault(problem, f"{where}: {problem} on line {line}")
    return list(found.values())


_SAMPLE_NOW = datetime(2026, 3, 1, 12, 0)


def sample_reply_contexts(language: str) -> list[tuple[str, ReplyContext]]:
    """Labelled reply contexts that together hit every optional field as None and as set."""
    shipped = datetime(2026, 1, 30, 12, 0)
    event = LastEvent(
        time=datetime(2026, 2, 26, 9, 30), location="São Paulo", description="Arrived at facility"
    )
    items = [
        Item(sku="SKU-501", title="Cotton summer dress", quantity=1, price=Decimal("24.90")),
        Item(sku=None, title="Belt", quantity=2, price=Decimal("3.50")),
    ]
    full = dict(
        language=language,
        shop_name="Lotus Fashion Store",
        buyer_name="Ana",
        marketplace="aliexpress",
        order_id="90000501",
        order_status="shipped",
        order_total=Decimal("31.90"),
        currency="USD",
        items=items,
        tracking_number="LP000000501CN",
        shipping_method="china_post_small_packet",
        carrier_label="China Post",
        shipped_at=shipped,
        deadline=datetime(2026, 3, 31, 12, 0),
        days_left=30,
        days_since_shipment=30,
        usual_days_min=20,
        usual_days_max=40,
        tracking_status="in_transit",
        last_event=event,
        dispute_open=False,
        handling_days=3,
        extension_days=30,
        offer_resend=True,
        offer_refund=True,
        refund_amount=Decimal("31.90"),
        coupon_amount=Decimal("3.00"),
        photo_requested=True,
        buyer_prefers=None,
    )
    bare = dict(
        full,
        buyer_name=None,
        order_status="paid",
        items=[],
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
    )
    variants = {
        "full": full,
        "full, dispute open": dict(full, dispute_open=True, buyer_prefers="resend"),
        "deadline today, no name": dict(
            full, buyer_name=None, days_left=0, dispute_open=True, handling_days=1
        ),
        "overdue": dict(full, days_left=-12, currency="EUR"),
        "one day left, event without location": dict(
            full,
            days_left=1,
            last_event=LastEvent(time=datetime(2026, 2, 20), description="Departed from origin country"),
            extension_days=None,
            refund_amount=Decimal("2"),
            offer_refund=False,
            buyer_prefers="refund",
        ),
        "tracking but no events, unusual days unknown": dict(
            full, last_event=None, usual_days_min=None, usual_days_max=None, carrier_label=None, days_left=21
        ),
        "hostile buyer name": dict(
            full, buyer_name="{{ 7*7 }} <script>alert(1)</script>", order_status="unpaid"
        ),
        "all optional None": bare,
        "all optional None, dispute open": dict(bare, dispute_open=True, order_status="unpaid"),
        "all optional None, shipped": dict(
            bare, order_status="shipped", offer_resend=True, offer_refund=True
        ),
    }
    for values in variants.values():
        # Keep the facts coherent, as the situation resolver would: deadline = now + days left.
        if values["deadline"] is not None and values["days_left"] is not None:
            values["deadline"] = _SAMPLE_NOW + timedelta(days=values["days_left"])
    return [(label, ReplyContext(**values)) for label, values in variants.items()]


def sample_lifecycle_contexts(language: str) -> list[tuple[str, LifecycleContext]]:
    """Labelled lifecycle contexts: every optional field set, then every one None."""
    full = dict(
        language=language,
        shop_name="Lotus Fashion Store",
        buyer_name="Ana",
        marketplace="aliexpress",
        marketplace_label="AliExpress",
        order_id="90000501",
        items=[Item(sku="SKU-501", title="Cotton summer dress", quantity=1, price=Decimal("24.90"))],
        order_total=Decimal("24.90"),
        currency="USD",
        handling_days=3,
        tracking_number="LP000000501CN",
        carrier_label="China Post",
        tracking_url="https://t.17track.net/en#nums=LP000000501CN",
        shipped_at=datetime(2026, 1, 30, 12, 0),
        delivered_at=datetime(2026, 2, 26, 9, 30),
    )
    bare = dict(
        full,
        buyer_name=None,
        items=[],
        tracking_number=None,
        carrier_label=None,
        tracking_url=None,
        shipped_at=None,
        delivered_at=None,
    )
    variants = {
        "full": full,
        "ebay, one business day": dict(full, marketplace="ebay", marketplace_label="eBay", handling_days=1),
        "amazon, several items": dict(
            full,
            marketplace="amazon",
            marketplace_label="Amazon",
            currency="EUR",
            items=[*full["items"], Item(title="Belt", quantity=2, price=Decimal("3.50"))],
        ),
        "hostile buyer name": dict(full, buyer_name="{{ 7*7 }} <script>alert(1)</script>"),
        "all optional None": bare,
    }
    return [(label, LifecycleContext(**values)) for label, values in variants.items()]


@lru_cache(maxsize=1)
def default_renderer() -> Renderer:
    """The process-wide renderer on the repo's `templates/` (or `$SELLERDESK_TEMPLATES_DIR`)."""
    override = os.environ.get(TEMPLATES_ENV_VAR)
    return Renderer(Path(override) if override else REPO_ROOT / "templates")
