"""Policy files: the default loads, shop overrides merge key by key, mistakes name the key."""

from __future__ import annotations

from decimal import Decimal

import pytest

from worker.policy.load import PolicyError, default_policy, load_policy, policy_from_overrides


def test_default_policy_matches_policy_md():
    p = default_policy()
    assert p.promised_days("china_post_small_packet", "BR") == 90
    assert p.promised_days("china_post_small_packet", "US") == 60
    assert p.promised_days("epacket", "US") == 27
    assert p.promised_days(None, None) == 60
    assert p.protection.extension_days == 30
    assert p.deadlines.no_scan_lost_after_days == 10
    assert p.money.auto_allowed is False


def test_override_file_merges(tmp_path):
    f = tmp_path / "shop.toml"
    f.write_text(
        "[protection]\nextension_days = 15\n[shipping.epacket]\npromised_days = 20\n", encoding="utf-8"
    )
    p = load_policy(f)
    assert p.protection.extension_days == 15
    assert p.promised_days("epacket", "US") == 20
    assert p.method("epacket").usual_days == (5, 15)  # untouched keys keep the default
    assert p.promised_days("china_post_small_packet", "BR") == 90


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[auto_send]\nconfidnce_threshold = 0.5\n", "auto_send.confidnce_threshold"),
        ("[protection]\nextension_days = -3\n", "protection.extension_days"),
        ('[money]\nauto_cap = "lots"\n', "money.auto_cap"),
        ("[shipping.epacket]\ncountries = { BRA = 40 }\n", "shipping.epacket.countries"),
        ("[shipping.x]\npromised_days = 10\nusual_days = [9, 3]\n", "shipping.x.usual_days"),
        ("[auto_send\n", "invalid TOML"),
    ],
)
def test_bad_policy_names_the_key(tmp_path, text, needle):
    f = tmp_path / "bad.toml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as exc:
        load_policy(f)
    assert needle in str(exc.value) and str(f) in str(exc.value)


def test_missing_file():
    with pytest.raises(PolicyError, match="not found"):
        load_policy("/nonexistent/policy.toml")


def test_overrides_from_account_settings():
    p = policy_from_overrides({"money": {"auto_allowed": True, "auto_cap": "5"}})
    assert p.money.auto_cap == Decimal("5") and p.money.auto_allowed
