"""Per-account policy: the default, then the installation's file, the account's file, its inline overrides."""

from __future__ import annotations

import pytest

from worker import models as m
from worker.decide import Engines
from worker.policy.load import PolicyError


def test_layers_apply_in_order(tmp_path):
    base = tmp_path / "shop.toml"
    base.write_text("[protection]\nextension_days = 20\n[orders]\nhandling_days = 5\n", encoding="utf-8")
    account_file = tmp_path / "account.toml"
    account_file.write_text("[protection]\nextension_days = 10\n", encoding="utf-8")
    engines = Engines(base_policy_file=str(base))
    assert engines.policy_for({}).protection.extension_days == 20
    assert engines.policy_for({"policy_file": str(account_file)}).protection.extension_days == 10
    inline = engines.policy_for({"policy": {"money": {"auto_allowed": True, "auto_cap": "4"}}})
    assert inline.protection.extension_days == 20 and inline.orders.handling_days == 5
    assert inline.money.auto_allowed and str(inline.money.auto_cap) == "4"


def test_a_bad_account_override_names_the_key():
    with pytest.raises(PolicyError, match="auto_send.treshold"):
        Engines().policy_for({"policy": {"auto_send": {"treshold": 0.2}}})


def test_engines_are_cached_per_account_settings():
    engines = Engines(shop_name="Shop")
    a = m.Account(id=1, marketplace="sandbox", name="a", settings_json={})
    first = engines.for_account(a)
    assert engines.for_account(a) is first
    a.settings_json = {"shop_name": "Other", "policy": {"orders": {"handling_days": 7}}}
    changed = engines.for_account(a)
    assert changed is not first and changed.shop_name == "Other" and changed.policy.orders.handling_days == 7
