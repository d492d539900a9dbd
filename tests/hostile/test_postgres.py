"""The hostile texts on PostgreSQL, which refuses what SQLite lets by: NUL in text and over-long VARCHARs.

Services tier (SELLERDESK_TEST_DATABASE_URL; skipped without it, required in CI).
"""

from __future__ import annotations

import pytest

from tests.hostile.payloads import ALL_TEXTS, TEXTS
from tests.hostile.pipeline import NAME_LIMIT, feed, stored_message

pytestmark = [pytest.mark.services, pytest.mark.timeout(120)]

STORABLE = {name: text for name, text in ALL_TEXTS.items() if "\x00" not in text}


def test_every_hostile_text_without_nul_is_stored_byte_for_byte(pg_engine, pg_settings):
    names = {name: text for name, text in TEXTS.items() if len(text) <= NAME_LIMIT and "\x00" not in text}
    pipe = feed(pg_engine, pg_settings, STORABLE, names)
    wrong = [
        name for name, text in STORABLE.items() if stored_message(pipe, pipe.message_ids[name]).body != text
    ]
    assert wrong == []
    assert pipe.outcome["error"] <= sum(1 for text in STORABLE.values() if not text.strip())


def test_a_nul_in_a_buyer_message_is_stored_on_postgresql(pg_engine, pg_settings):
    pipe = feed(pg_engine, pg_settings, {"nul": TEXTS["nul_character"]}, {})
    assert stored_message(pipe, pipe.message_ids["nul"]).body == TEXTS["nul_character"].replace(
        "\x00", "\ufffd"
    )


def test_a_buyer_name_longer_than_its_column_is_kept_on_postgresql(pg_engine, pg_settings):
    name = "\U0001f4e6" * (NAME_LIMIT + 1)
    pipe = feed(pg_engine, pg_settings, {}, {"long_name": name})
    assert stored_message(pipe, pipe.name_message_ids["long_name"]) is not None
