"""17TRACK v2.2 client: status mapping (exhaustive), batches of 40, error codes, events, sandbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from connectors.base import ConnectorError, ErrorKind, RetryPolicy
from connectors.sandbox import DEFAULT_17TOKEN, SandboxServer
from connectors.seventeentrack import (
    KNOWN_SUB_STATUSES,
    SeventeenTrackClient,
    TrackNumber,
    map_status,
    normalise_track,
)
from worker.triage.types import TrackingStatus as T

# Written out by hand from triage.md and the brief, independently of the module's tables.
EXPECTED: dict[str, T] = {
    "NotFound_Other": T.not_found,
    "NotFound_InvalidCode": T.not_found,
    "InfoReceived": T.info_received,
    "InTransit_PickedUp": T.in_transit,
    "InTransit_Other": T.in_transit,
    "InTransit_Departure": T.in_transit,
    "InTransit_Arrival": T.in_transit,
    "InTransit_CustomsProcessing": T.customs_hold,
    "InTransit_CustomsReleased": T.in_transit,
    "InTransit_CustomsRequiringInformation": T.customs_hold,
    "Expired_Other": T.expired,
    "AvailableForPickup_Other": T.available_for_pickup,
    "OutForDelivery_Other": T.out_for_delivery,
    "DeliveryFailure_Other": T.delivery_failure,
    "DeliveryFailure_NoBody": T.delivery_failure,
    "DeliveryFailure_Security": T.delivery_failure,
    "DeliveryFailure_Rejected": T.delivery_failure,
    "DeliveryFailure_InvalidAddress": T.delivery_failure,
    "Delivered_Other": T.delivered,
    "Exception_Other": T.exception,
    "Exception_Returning": T.returning,
    "Exception_Returned": T.returned,
    "Exception_NoBody": T.exception,
    "Exception_Security": T.exception,
    "Exception_Damage": T.exception,
    "Exception_Rejected": T.exception,
    "Exception_Delayed": T.exception,
    "Exception_Lost": T.lost,
    "Exception_Destroyed": T.exception,
    "Exception_Cancel": T.exception,
}


def test_every_documented_sub_status_is_mapped_as_expected():
    pairs = [(main, sub) for main, subs in KNOWN_SUB_STATUSES.items() for sub in subs]
    assert {sub for _, sub in pairs} == set(EXPECTED)
    for main, sub in pairs:
        assert map_status(main, sub) is EXPECTED[sub], sub


@pytest.mark.parametrize(
    ("main", "expected"),
    [
        ("NotFound", T.not_found),
        ("InfoReceived", T.info_received),
        ("InTransit", T.in_transit),
        ("Expired", T.expired),
        ("AvailableForPickup", T.available_for_pickup),
        ("OutForDelivery", T.out_for_delivery),
        ("DeliveryFailure", T.delivery_failure),
        ("Delivered", T.delivered),
        ("Exception", T.exception),
        (None, T.not_found),
    ],
)
def test_main_status_without_sub_status(main, expected):
    assert map_status(main, None) is expected


def test_every_normalised_status_is_reachable():
    reached = {map_status(main, sub) for main, subs in KNOWN_SUB_STATUSES.items() for sub in subs}
    assert reached == set(T)


def test_unknown_main_status_is_named():
    with pytest.raises(ValueError, match="'Teleported'"):
        map_status("Teleported", "Teleported_Other")


# ------------------------------------------------------------------------------- fakes


def accepted(number: str, status: str = "InTransit", sub: str = "InTransit_Other") -> dict[str, Any]:
    return {
        "number": number,
        "carrier": 3011,
        "track_info": {
            "latest_status": {"status": status, "sub_status": sub},
            "latest_event": {
                "time_utc": "2026-02-20T08:00:00Z",
                "description": "Arrived",
                "location": "Curitiba",
            },
            "tracking": {
                "providers": [
                    {
                        "events": [  # newest first, as 17TRACK sends them
                            {
                                "time_utc": "2026-02-20T08:00:00Z",
                                "description": "Arrived",
                                "location": "Curitiba",
                            },
                            {
                                "time_iso": "2026-02-10T18:00:00+08:00",
                                "description": "Departed",
                                "location": "Shenzhen",
                            },
                        ]
                    },
                    {
                        "events": [
                            {
                                "time_utc": "2026-02-20T08:00:00Z",
                                "description": "Arrived",
                                "location": "Curitiba",
                            }
                        ]
                    },
                ]
            },
        },
    }


class Fake17:
    def __init__(self, handler) -> None:
        self.handler = handler
        self.calls: list[tuple[str, list[dict[str, Any]], str | None]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        operation = request.url.path.rsplit("/", 1)[-1]
        self.calls.append((operation, body, request.headers.get("17token")))
        answer = self.handler(operation, body)
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, json=answer)


def client(fake: Fake17, retry: RetryPolicy = RetryPolicy(attempts=1), sleeps: list[float] | None = None):
    return SeventeenTrackClient(
        "tok17",
        base_url="https://api.17track.net",
        http=httpx.Client(transport=httpx.MockTransport(fake)),
        retry=retry,
        sleep=(sleeps.append if sleeps is not None else None),
    )


def ok(accepted_rows=(), rejected_rows=()) -> dict[str, Any]:
    return {"code": 0, "data": {"accepted": list(accepted_rows), "rejected": list(rejected_rows)}}


def rejected(number: str, code: int) -> dict[str, Any]:
    return {"number": number, "error": {"code": code, "message": "x"}}


def test_85_numbers_take_3_calls_of_at_most_40():
    fake = Fake17(lambda op, body: ok([accepted(n["number"]) for n in body]))
    numbers = [f"RB{n:09d}CN" for n in range(85)]
    result = client(fake).get_track_info(numbers)
    assert [len(body) for _, body, _ in fake.calls] == [40, 40, 5]
    assert all(token == "tok17" and op == "gettrackinfo" for op, _, token in fake.calls)
    assert [t.tracking_number for t in result.tracks] == numbers


def test_duplicate_and_carrier_numbers_are_sent_once_with_the_carrier():
    fake = Fake17(lambda op, body: ok([{"number": n["number"]} for n in body]))
    client(fake).register(["A1", TrackNumber("B2", carrier=3011), "A1"])
    assert fake.calls[0][1] == [{"number": "A1"}, {"number": "B2", "carrier": 3011}]


def test_register_treats_already_registered_as_fine():
    fake = Fake17(
        lambda op, body: ok([{"number": "A"}], [rejected("B", -18019901), rejected("C", -18019903)])
    )
    result = client(fake).register(["A", "B", "C"])
    assert result.accepted == ["A", "B"]
    assert [(r.number, r.code) for r in result.rejected] == [("C", -18019903)]


def test_unregistered_numbers_are_registered_then_asked_again_once():
    registered: set[str] = set()

    def handler(op, body):
        if op == "register":
            registered.update(n["number"] for n in body)
            return ok([{"number": n["number"]} for n in body])
        rows = [accepted(n["number"]) for n in body if n["number"] in registered or n["number"] == "OLD"]
        missing = [
            rejected(n["number"], -18019902)
            for n in body
            if n["number"] not in registered and n["number"] != "OLD"
        ]
        return ok(rows, missing)

    fake = Fake17(handler)
    result = client(fake).get_track_info(["OLD", "NEW"])
    assert [op for op, _, _ in fake.calls] == ["gettrackinfo", "register", "gettrackinfo"]
    assert fake.calls[1][1] == [{"number": "NEW"}] and fake.calls[2][1] == [{"number": "NEW"}]
    assert sorted(t.tracking_number for t in result.tracks) == ["NEW", "OLD"] and result.rejected == []


def test_over_40_is_a_fatal_bug():
    fake = Fake17(
        lambda op, body: {"code": -18010014, "data": {"errors": [{"code": -18010014, "message": "over 40"}]}}
    )
    with pytest.raises(ConnectorError) as info:
        client(fake, retry=RetryPolicy(attempts=3, initial=0)).get_track_info(["A"])
    assert info.value.kind is ErrorKind.FATAL and len(fake.calls) == 1


def test_more_than_40_in_one_raw_call_is_refused_before_sending():
    fake = Fake17(lambda op, body: ok())
    with pytest.raises(ValueError, match="at most 40"):
        client(fake)._post("register", [TrackNumber(str(n)) for n in range(41)])
    assert fake.calls == []


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (
            httpx.Response(
                401, json={"code": -18010002, "data": {"errors": [{"code": -18010002, "message": "bad key"}]}}
            ),
            ErrorKind.ACCOUNT,
        ),
        (
            {"code": -18010004, "data": {"errors": [{"code": -18010004, "message": "disabled"}]}},
            ErrorKind.ACCOUNT,
        ),
        (
            {"code": -18010003, "data": {"errors": [{"code": -18010003, "message": "internal"}]}},
            ErrorKind.RETRYABLE,
        ),
        (httpx.Response(503, text="down"), ErrorKind.RETRYABLE),
        (
            {"code": -18010013, "data": {"errors": [{"code": -18010013, "message": "invalid"}]}},
            ErrorKind.FATAL,
        ),
    ],
)
def test_envelope_errors_are_classified(answer, kind):
    fake = Fake17(lambda op, body: answer)
    with pytest.raises(ConnectorError) as info:
        client(fake).get_track_info(["A"])
    assert info.value.kind is kind


def test_throttling_is_waited_out():
    answers = [httpx.Response(429, headers={"Retry-After": "2"}, json={"code": 429}), ok([accepted("A")])]
    fake = Fake17(lambda op, body: answers.pop(0))
    sleeps: list[float] = []
    result = client(fake, retry=RetryPolicy(attempts=3, initial=0.1), sleeps=sleeps).get_track_info(["A"])
    assert sleeps == [2.0] and len(result.tracks) == 1


def test_events_are_merged_deduped_and_oldest_first():
    track = normalise_track(accepted("A", "Exception", "Exception_Returning"))
    assert track.status is T.returning and track.sub_status == "Exception_Returning"
    assert [e.description for e in track.events] == ["Departed", "Arrived"]
    assert track.events[0].time == datetime(2026, 2, 10, 10, 0, tzinfo=UTC)
    assert track.last_event_at == datetime(2026, 2, 20, 8, 0, tzinfo=UTC)


def test_a_number_without_events_has_no_last_event():
    track = normalise_track(
        {
            "number": "X",
            "track_info": {"latest_status": {"status": "NotFound", "sub_status": "NotFound_Other"}},
        }
    )
    assert track.status is T.not_found and track.events == () and track.last_event_at is None


def test_blank_token_or_number_is_refused():
    with pytest.raises(ValueError, match="token"):
        SeventeenTrackClient("")
    with pytest.raises(ValueError, match="blank"):
        client(Fake17(lambda op, body: ok())).register([" "])


# ----------------------------------------------------------------------------- sandbox


def test_sandbox_parcels_move_along_with_the_clock():
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with SandboxServer(seed=5, port=0, speed=0, start=start) as sb:
        sb.add_buyer_messages(1, situations=["nr_in_transit"])
        order = next(iter(sb.accounts[0].orders.values()))
        number = order.parcel.number
        track = SeventeenTrackClient(DEFAULT_17TOKEN, base_url=sb.url)
        (first,) = track.get_track_info([number]).tracks
        assert first.status is T.in_transit and first.events
        assert first.events == tuple(sorted(first.events, key=lambda e: e.time))
        sb.advance(days=90)
        (later,) = track.get_track_info([number]).tracks
        assert later.status is T.delivered and later.last_event_at > first.last_event_at
        assert track.stop_track([number]).accepted == [number]
        assert track.retrack([number]).accepted == [number]
        with pytest.raises(ConnectorError) as info:
            SeventeenTrackClient("wrong", base_url=sb.url).register([number])
        assert info.value.kind is ErrorKind.ACCOUNT


def test_sandbox_tracking_matches_each_not_received_situation():
    expected = {
        "nr_customs": T.customs_hold,
        "nr_lost": T.lost,
        "nr_returned": T.returning,
        "nr_pickup": T.available_for_pickup,
        "nr_no_tracking": T.not_found,
        "nr_delivered": T.delivered,
        "nr_overdue": T.in_transit,
    }
    with SandboxServer(seed=9, port=0, speed=0) as sb:
        numbers = {}
        for situation in expected:
            sb.add_buyer_messages(1, situations=[situation])
            order = list(sb.accounts[0].orders.values())[-1]
            numbers[order.parcel.number] = situation
        tracks = SeventeenTrackClient(DEFAULT_17TOKEN, base_url=sb.url).get_track_info(list(numbers)).tracks
        got = {numbers[t.tracking_number]: t.status for t in tracks}
        assert got == expected
        overdue = next(o for o in sb.accounts[0].orders.values() if o.state_label == "overdue")
        assert sb.now() - overdue.shipped_at > timedelta(days=overdue.promised_days)
