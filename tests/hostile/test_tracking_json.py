"""Hostile 17TRACK answers, from the sandbox's 17TRACK dialect spoiled in flight.

Tracking is asked 40 numbers at a time for independent parcels, so here the contract is "skip the bad
row with a logged reason": an unreadable entry becomes a rejection (code UNREADABLE_ENTRY, reason
naming the field) and every other parcel of the batch keeps its fresh tracking. An answer that is not
17TRACK's envelope at all is a classified ConnectorError.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from connectors.base import ErrorKind, RetryPolicy
from connectors.sandbox.server import DEFAULT_17TOKEN, SandboxServer
from connectors.seventeentrack import NOT_REGISTERED, UNREADABLE_ENTRY, SeventeenTrackClient
from tests.hostile.conftest import assert_classified
from tests.hostile.payloads import TEXTS
from tests.hostile.records import problems

pytestmark = pytest.mark.timeout(60)

Body = dict[str, Any]


class Spoiled(httpx.BaseTransport):
    """Forwards to the sandbox over HTTP and spoils every gettrackinfo answer."""

    def __init__(self, spoil: Callable[[Body], Body | bytes]) -> None:
        self.inner = httpx.HTTPTransport()
        self.spoil = spoil

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if not request.url.path.endswith("/gettrackinfo"):
            return response
        response.read()
        spoiled = self.spoil(json.loads(response.content))
        content = spoiled if isinstance(spoiled, bytes) else json.dumps(spoiled).encode()
        return httpx.Response(response.status_code, content=content)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(scope="module")
def sandbox():
    with SandboxServer(seed=5, port=0, orders=40, speed=0) as sb:
        yield sb


@pytest.fixture(scope="module")
def numbers(sandbox) -> list[str]:
    now = sandbox.now()
    shipped = sorted(n for n, o in sandbox.world.parcels.items() if o.shipped_at and o.shipped_at <= now)
    assert len(shipped) >= 3
    chosen = shipped[:3]
    registered = SeventeenTrackClient(DEFAULT_17TOKEN, base_url=sandbox.url).register(chosen)
    assert sorted(registered.accepted) == chosen
    return chosen


def ask(sandbox: SandboxServer, numbers: list[str], spoil: Callable[[Body], Body | bytes]):
    with httpx.Client(transport=Spoiled(spoil)) as http:
        client = SeventeenTrackClient(
            DEFAULT_17TOKEN, base_url=sandbox.url, http=http, retry=RetryPolicy(attempts=1)
        )
        return client.get_track_info(numbers)


def entry(change: Callable[[Body], Any]) -> Callable[[Body], Body]:
    """Spoil the first accepted entry (the parcels after it must keep their tracking)."""

    def spoil(body: Body) -> Body:
        change(body["data"]["accepted"][0])
        return body

    return spoil


def replace_entry(value: Any) -> Callable[[Body], Body]:
    def spoil(body: Body) -> Body:
        body["data"]["accepted"][0] = value
        return body

    return spoil


def at(*path: str | int, value: Any) -> Callable[[Body], None]:
    def change(target: Any) -> None:
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


EVENT = ("track_info", "tracking", "providers", 0, "events", 0)

# name -> (spoil the first entry, the field the rejection must name).
UNREADABLE: dict[str, tuple[Callable[[Body], Body], str]] = {
    "entry_is_a_string": (replace_entry("LP123"), "not an object"),
    "entry_is_null": (replace_entry(None), "not an object"),
    "entry_without_number": (entry(lambda e: e.pop("number")), "no 'number'"),
    "number_is_an_object": (entry(at("number", value={"n": 1})), "no 'number'"),
    "track_info_string": (entry(at("track_info", value="x")), "track_info"),
    "latest_status_list": (entry(at("track_info", "latest_status", value=[1])), "latest_status"),
    "status_unknown": (
        entry(at("track_info", "latest_status", "status", value="Teleported")),
        "latest_status.status",
    ),
    "status_list": (
        entry(at("track_info", "latest_status", "status", value=["InTransit"])),
        "latest_status.status",
    ),
    "sub_status_number": (
        entry(at("track_info", "latest_status", "sub_status", value=7)),
        "latest_status.sub_status",
    ),
    "tracking_string": (entry(at("track_info", "tracking", value="x")), "tracking"),
    "providers_object": (entry(at("track_info", "tracking", "providers", value={"a": 1})), "providers"),
    "provider_number": (entry(at("track_info", "tracking", "providers", 0, value=5)), "providers[]"),
    "events_string": (entry(at("track_info", "tracking", "providers", 0, "events", value="x")), "events"),
    "event_is_a_list": (entry(at(*EVENT, value=[1, 2])), "events[]"),
    "event_time_year_9999_west": (
        entry(at(*EVENT, "time_utc", value="9999-12-31T23:59:59-12:00")),
        "event time",
    ),
    "event_time_number": (entry(at(*EVENT, "time_utc", value=1772366400)), "event time"),
    "event_time_words": (entry(at(*EVENT, "time_utc", value="yesterday")), "event time"),
    "latest_event_string": (entry(at("track_info", "latest_event", value="x")), "events[]"),
}

# name -> (spoil, check of the spoiled parcel's tracking).
READABLE: dict[str, tuple[Callable[[Body], Body], Callable[[Any], None]]] = {
    "event_location_object": (
        entry(at(*EVENT, "location", value={"city": "x"})),
        lambda track: None,
    ),
    "event_without_time": (
        entry(
            lambda e: [
                e["track_info"]["tracking"]["providers"][0]["events"][0].pop(k, None)
                for k in ("time_utc", "time_iso")
            ]
        ),
        lambda track: None,
    ),
    "ten_thousand_events": (
        entry(
            at(
                "track_info",
                "tracking",
                "providers",
                0,
                "events",
                value=[
                    {"time_utc": f"2026-01-{1 + i % 28:02d}T00:00:{i % 60:02d}Z", "description": f"scan {i}"}
                    for i in range(10_000)
                ],
            )
        ),
        lambda track: len(track.events) >= 10_000 or pytest.fail(len(track.events)),
    ),
    "duplicate_events": (
        entry(
            lambda e: e["track_info"]["tracking"]["providers"][0]["events"].extend(
                e["track_info"]["tracking"]["providers"][0]["events"] * 3
            )
        ),
        lambda track: (
            len({(ev.time, ev.description) for ev in track.events}) == len(track.events) or pytest.fail()
        ),
    ),
    "unknown_sub_status": (
        entry(at("track_info", "latest_status", "sub_status", value="InTransit_Teleporting")),
        lambda track: track.sub_status == "InTransit_Teleporting" or pytest.fail(),
    ),
}
for _name in ("xss_script_tag", "jinja_expression", "control_characters", "rtl_override", "emoji_flood"):
    READABLE[f"event_description_{_name}"] = (
        entry(at(*EVENT, "description", value=TEXTS[_name])),
        lambda track, text=TEXTS[_name]: text in [ev.description for ev in track.events] or pytest.fail(),
    )


@pytest.mark.parametrize("name", sorted(UNREADABLE))
def test_an_unreadable_entry_is_rejected_and_the_others_kept(sandbox, numbers, name):
    spoil, field = UNREADABLE[name]
    result = ask(sandbox, numbers, spoil)
    assert len(result.tracks) == len(numbers) - 1
    (rejection,) = [r for r in result.rejected if r.code == UNREADABLE_ENTRY]
    assert field in rejection.message, rejection
    assert rejection.number in ("", *numbers)
    assert not [p for t in result.tracks for p in problems(t)]


@pytest.mark.parametrize("name", sorted(READABLE))
def test_a_readable_oddity_keeps_every_parcel(sandbox, numbers, name):
    spoil, check = READABLE[name]
    result = ask(sandbox, numbers, spoil)
    assert sorted(t.tracking_number for t in result.tracks) == sorted(numbers)
    assert not [p for t in result.tracks for p in problems(t)]
    (spoiled,) = [t for t in result.tracks if t.tracking_number == numbers_in_answer(sandbox, numbers)[0]]
    check(spoiled)


def numbers_in_answer(sandbox: SandboxServer, numbers: list[str]) -> list[str]:
    """The numbers in the order the sandbox answers them (the first is the spoiled one)."""
    seen: list[str] = []
    ask(sandbox, numbers, lambda body: seen.extend(e["number"] for e in body["data"]["accepted"]) or body)
    return seen


WHOLE: dict[str, bytes | Callable[[Body], Body]] = {
    "answer_html": b"<html>502</html>",
    "answer_truncated": b'{"code": 0, "data": {"accepted": [',
    "answer_nested_too_deep": b"[" * 100_000 + b"]" * 100_000,
    "answer_empty": b"",
    "accepted_not_a_list": lambda body: {**body, "data": {"accepted": {"number": "x"}}},
    "rejected_not_a_list": lambda body: {**body, "data": {"accepted": [], "rejected": "x"}},
}


@pytest.mark.parametrize("name", sorted(WHOLE))
def test_an_answer_that_is_not_the_envelope_is_a_classified_error(sandbox, numbers, name):
    spoil = WHOLE[name]
    with pytest.raises(Exception) as info:
        ask(sandbox, numbers, spoil if callable(spoil) else (lambda body, content=spoil: content))
    assert_classified(info.value)
    assert info.value.kind in (ErrorKind.FATAL, ErrorKind.RETRYABLE)


def test_a_not_registered_answer_for_a_number_never_asked_is_not_registered(sandbox, numbers):
    def spoil(body: Body) -> Body:
        body["data"]["rejected"] = [
            {"number": "NOT-OURS-1", "error": {"code": NOT_REGISTERED}},
            {"number": "", "error": {"code": NOT_REGISTERED}},
            "garbage",
        ]
        return body

    result = ask(sandbox, numbers, spoil)
    assert sorted(t.tracking_number for t in result.tracks) == sorted(numbers)
    assert "NOT-OURS-1" in [r.number for r in result.rejected]
    answer = httpx.post(
        f"{sandbox.url}/track/v2.2/gettrackinfo",
        json=[{"number": "NOT-OURS-1"}],
        headers={"17token": DEFAULT_17TOKEN},
    ).json()
    assert answer["data"]["rejected"][0]["error"]["code"] == NOT_REGISTERED  # we never registered it
