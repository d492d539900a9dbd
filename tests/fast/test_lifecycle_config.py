"""Lifecycle settings: defaults, per-account overrides, and errors that name the bad key."""

from __future__ import annotations

from datetime import time

import pytest

from worker.lifecycle.config import DEFAULTS, Kind, LifecycleConfigError, Mode, lifecycle_config


def test_defaults_cover_every_kind():
    config = lifecycle_config({})
    assert config.enabled
    for kind in Kind:
        settings = config.kind(kind)
        assert settings.enabled and settings.mode is Mode.auto
    assert config.unpaid_reminder.delay_hours == 24
    assert config.feedback_request.delay_hours == 7 * 24
    assert config.quiet_hours.start == time(21) and config.quiet_hours.end == time(8)
    assert config.daily_cap == 500 and config.timezone == "UTC" and config.blocklist == frozenset()
    assert lifecycle_config(None) == config


def test_overrides_merge_deeply_and_leave_the_rest():
    config = lifecycle_config(
        {
            "shop_name": "ignored: not a lifecycle key",
            "lifecycle": {
                "feedback_request": {"mode": "approval"},
                "shipped": {"enabled": False},
                "quiet_hours": {"start": "22:30"},
                "daily_cap": None,
                "blocklist": ["buyer-9"],
                "timezone": "Europe/Berlin",
            },
        }
    )
    assert config.feedback_request.mode is Mode.approval
    assert config.feedback_request.delay_hours == 7 * 24  # kept from the defaults
    assert not config.shipped.enabled and config.shipped.delay_hours == 0
    assert config.quiet_hours.start == time(22, 30) and config.quiet_hours.end == time(8)
    assert config.daily_cap is None
    assert config.blocklist == frozenset({"buyer-9"})
    assert config.zone.key == "Europe/Berlin"
    # The defaults themselves are never mutated by a merge.
    assert DEFAULTS["feedback_request"]["mode"] == "auto"


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"feedback_request": {"delay_hours": -1}}, "lifecycle.feedback_request.delay_hours"),
        ({"feedback_request": {"mode": "sometimes"}}, "lifecycle.feedback_request.mode"),
        ({"unpaid_reminder": {"delay": 3}}, "lifecycle.unpaid_reminder.delay"),
        ({"thank_you": {"enabled": True}}, "lifecycle.thank_you"),
        ({"quiet_hours": {"start": "25:00"}}, "lifecycle.quiet_hours.start"),
        ({"quiet_hours": {"start": "08:00", "end": "08:00"}}, "lifecycle.quiet_hours"),
        ({"timezone": "Mars/Olympus"}, "lifecycle.timezone"),
        ({"daily_cap": -5}, "lifecycle.daily_cap"),
        ({"tracking_url": "https://t.example/track"}, "lifecycle.tracking_url"),
        ({"stale_after_hours": 0}, "lifecycle.stale_after_hours"),
    ],
)
def test_bad_values_name_the_key(overrides, named):
    with pytest.raises(LifecycleConfigError) as err:
        lifecycle_config({"lifecycle": overrides})
    assert named in str(err.value)


def test_lifecycle_section_must_be_an_object():
    with pytest.raises(LifecycleConfigError, match="lifecycle: must be an object"):
        lifecycle_config({"lifecycle": ["auto"]})
