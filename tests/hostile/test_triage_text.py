"""Hostile text through the decision core: every payload in every field a reply quotes, and as the message.

Nothing executed: a field the reply template quotes comes out literally, the rest of the reply is exactly
what an ordinary value gives (so `{{ 7*7 }}` never becomes 49 and `<script>` is just text). Nothing crashes:
a value over a contract limit is an error line naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.hostile.conftest import base_case
from tests.hostile.payloads import ALL_TEXTS, EVALUATED, LONG_TEXTS, TEXTS, blank
from worker.render import normalise
from worker.triage.types import MAX_MESSAGE_CHARS

pytestmark = pytest.mark.timeout(60)

TOKEN = "QQPLACEHOLDERQQ"


def _set(path: tuple[str | int, ...]) -> Callable[[dict[str, Any], str], None]:
    def put(case: dict[str, Any], value: str) -> None:
        target: Any = case
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return put


# Fields the in-transit reply quotes, with the contract's length limit (None: unlimited).
QUOTED: dict[str, tuple[Callable[[dict[str, Any], str], None], int | None]] = {
    "buyer_name": (_set(("order", "buyer_name")), 200),
    "order_id": (_set(("order", "id")), 100),
    "tracking_number": (_set(("order", "tracking_number")), None),
    "event_location": (_set(("tracking", "events", 0, "location")), None),
    "event_description": (_set(("tracking", "events", 0, "description")), None),
}
FIELD_NAMES = {"buyer_name": "order.buyer_name", "order_id": "order.id"}


@pytest.fixture(scope="module")
def baseline(decide) -> dict[str, str]:
    """Per quoted field, the reply with TOKEN in it (and the reply without a buyer name)."""
    out = {}
    for sink, (put, _) in QUOTED.items():
        case = base_case()
        put(case, TOKEN)
        reply = decide(json.dumps(case))["reply"]
        assert reply.count(TOKEN) >= 1, f"the {sink} is not quoted by the reply any more"
        out[sink] = reply
    nameless = base_case()
    nameless["order"]["buyer_name"] = None
    out["no_name"] = decide(json.dumps(nameless))["reply"]
    return out


@pytest.mark.parametrize("sink", sorted(QUOTED))
@pytest.mark.parametrize("name", sorted(ALL_TEXTS))
def test_quoted_field_comes_out_literally(decide, baseline, sink, name):
    text = ALL_TEXTS[name]
    put, limit = QUOTED[sink]
    case = base_case()
    put(case, text)
    out = decide(json.dumps(case))
    if limit is not None and len(text) > limit:
        assert out["id"] == "hostile-1"
        assert FIELD_NAMES[sink] in out["error"], out
        return
    assert "error" not in out, out
    if sink == "buyer_name":
        # The greeting trims the name; a name of only spaces greets "customer".
        expected = baseline["no_name"] if blank(text) else baseline[sink].replace(TOKEN, text.strip())
    else:
        expected = baseline[sink].replace(TOKEN, text)
    assert out["reply"] == normalise(expected)


@pytest.mark.parametrize("name", sorted(ALL_TEXTS))
def test_message_text_is_classified_never_rendered(decide, baseline, name):
    text = ALL_TEXTS[name]
    case = base_case()
    case["message"]["text"] = text
    out = decide(json.dumps(case))
    if blank(text) or len(text) > MAX_MESSAGE_CHARS:
        assert "message.text" in out["error"], out
        return
    assert "error" not in out, out
    assert out["intent"] and out["template"]
    for marker in EVALUATED:
        assert marker not in out["reply"], (marker, out["reply"][:300])
    # Replies are our templates: the buyer's words are never echoed back to them.
    if len(text.strip()) >= 12:
        assert text.strip() not in out["reply"]


def test_the_long_texts_really_are_over_the_limit():
    assert all(len(t) > MAX_MESSAGE_CHARS for t in LONG_TEXTS.values())
    assert all(len(t) <= MAX_MESSAGE_CHARS for t in TEXTS.values())
