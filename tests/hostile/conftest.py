"""Shared pieces of the hostile-input suite: the decision core, a valid case to spoil, the contract checks."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from connectors import capabilities_for
from connectors.base import ConnectorError, ErrorKind
from worker.policy.load import load_policy
from worker.render import default_renderer
from worker.triage.dryrun import decide_line
from worker.triage.pipeline import Triage

# One valid contract line (shared/spec/triage.md): an in-transit parcel whose reply quotes the buyer's
# name, the tracking number and the carrier's latest event, so hostile text there shows up in the reply.
BASE_CASE: dict[str, Any] = {
    "id": "hostile-1",
    "now": "2026-03-01T12:00:00Z",
    "marketplace": "aliexpress",
    "message": {
        "text": "Hello, it's been a month, still no parcel. Any news?",
        "sent_at": "2026-03-01T11:00:00Z",
    },
    "dispute": None,
    "order": {
        "id": "90000501",
        "status": "shipped",
        "total": 24.9,
        "currency": "USD",
        "buyer_name": "Alex",
        "buyer_country": "US",
        "paid_at": "2026-01-28T12:00:00Z",
        "shipped_at": "2026-01-30T12:00:00Z",
        "shipping_method": "china_post_small_packet",
        "promised_delivery_days": None,
        "tracking_number": "LP000000501CN",
        "items": [{"sku": "SKU-501", "title": "Summer dress", "quantity": 1, "price": 24.9}],
    },
    "tracking": {
        "status": "in_transit",
        "last_event_at": "2026-02-26T12:00:00Z",
        "events": [{"time": "2026-02-26T12:00:00Z", "location": "Sort center", "description": "Processed"}],
    },
}


def base_case() -> dict[str, Any]:
    """A fresh deep copy of BASE_CASE to spoil."""
    return copy.deepcopy(BASE_CASE)


@pytest.fixture(scope="session")
def triage() -> Triage:
    """The decision core on the default policy, exactly as `sellerdesk triage` builds it."""
    return Triage(policy=load_policy(None), renderer=default_renderer(), shop_name="Hostile Test Shop")


@pytest.fixture(scope="session")
def decide(triage: Triage) -> Callable[[str], dict[str, Any]]:
    """One contract line in, one output object out, through the CLI's own `decide_line`."""

    def run(line: str) -> dict[str, Any]:
        out = decide_line(line, 1, triage, capabilities_for)
        # Every output line must be writable as UTF-8 JSON (the CLI prints it).
        json.dumps(out, ensure_ascii=False).encode("utf-8")
        return out

    return run


def assert_classified(exc: BaseException, *, field: str | None = None) -> None:
    """The connector contract for bad input: a ConnectorError of a known kind, naming `field` if given."""
    assert isinstance(exc, ConnectorError), f"unclassified {type(exc).__name__}: {exc}"
    assert exc.kind in (ErrorKind.FATAL, ErrorKind.RETRYABLE), exc.kind
    if field is not None:
        assert field in str(exc), f"error does not name {field!r}: {exc}"


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory, _migrated_sqlite):
    """Every hostile text through sandbox -> connector -> poll -> ingest -> triage (see pipeline.py)."""
    from tests.hostile.pipeline import build_pipeline

    pipe = build_pipeline(tmp_path_factory.mktemp("hostile-pipeline"), _migrated_sqlite)
    yield pipe
    pipe.engine.dispose()
