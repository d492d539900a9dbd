"""The in-process token bucket: burst then rate, per-key isolation, fairness without over-issuing."""

from __future__ import annotations

import threading
import time

import pytest

from connectors.base import ConnectorError, ErrorKind
from connectors.ratelimit import (
    InProcessTokenBucket,
    NullLimiter,
    RedisTokenBucket,
    limiter_from_settings,
)


class FakeClock:
    """A monotonic clock that only moves when the limiter sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_burst_is_free_then_calls_are_spaced_at_the_rate():
    clock = FakeClock()
    bucket = InProcessTokenBucket(clock=clock, sleep=clock.sleep)
    waits = [bucket.acquire("acct:1", rate=2.0, burst=3) for _ in range(6)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3:] == pytest.approx([0.5, 0.5, 0.5])
    assert clock.now == pytest.approx(101.5)


def test_tokens_refill_while_idle_but_never_beyond_burst():
    clock = FakeClock()
    bucket = InProcessTokenBucket(clock=clock, sleep=clock.sleep)
    for _ in range(3):
        bucket.acquire("k", rate=1.0, burst=3)
    clock.now += 60  # a long pause refills to burst, not to 60 tokens
    waits = [bucket.acquire("k", rate=1.0, burst=3) for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.0, 0.0, 1.0])


def test_cost_spends_several_tokens():
    clock = FakeClock()
    bucket = InProcessTokenBucket(clock=clock, sleep=clock.sleep)
    assert bucket.acquire("k", rate=4.0, burst=4, cost=4) == 0.0
    assert bucket.acquire("k", rate=4.0, burst=4, cost=2) == pytest.approx(0.5)


def test_keys_are_independent():
    clock = FakeClock()
    bucket = InProcessTokenBucket(clock=clock, sleep=clock.sleep)
    bucket.acquire("acct:1", rate=1.0, burst=1)
    assert bucket.acquire("acct:2", rate=1.0, burst=1) == 0.0
    assert bucket.acquire("acct:1", rate=1.0, burst=1) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"rate": 0.0, "burst": 1}, "rate"),
        ({"rate": -1.0, "burst": 1}, "rate"),
        ({"rate": float("inf"), "burst": 1}, "rate"),
        ({"rate": 1.0, "burst": 0}, "burst"),
        ({"rate": 1.0, "burst": 2, "cost": 3}, "cost"),
        ({"rate": 1.0, "burst": 2, "cost": 0}, "cost"),
    ],
)
def test_bad_parameters_name_the_field(kwargs, field):
    for limiter in (InProcessTokenBucket(), NullLimiter()):
        with pytest.raises(ValueError, match=field):
            limiter.acquire("k", **kwargs)


def test_null_limiter_never_waits():
    limiter = NullLimiter()
    assert all(limiter.acquire("k", rate=0.001, burst=1) == 0.0 for _ in range(100))


def test_threads_share_fairly_and_never_exceed_burst_plus_rate():
    rate, burst, threads, per_thread = 400.0, 4, 6, 12
    bucket = InProcessTokenBucket()
    start = threading.Barrier(threads)
    grants: list[tuple[float, int]] = []
    grants_lock = threading.Lock()

    def worker(n: int) -> None:
        start.wait()
        for _ in range(per_thread):
            bucket.acquire("shared", rate=rate, burst=burst)
            stamp = time.monotonic()
            with grants_lock:
                grants.append((stamp, n))

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=10)
    assert len(grants) == threads * per_thread
    grants.sort()
    stamps = [s for s, _ in grants]

    # Never over-issued: in any window [a, b] at most burst + rate * (b - a) grants (plus one token of
    # slack for the time between the limiter's clock read and the stamp above).
    for i in range(len(stamps)):
        for j in range(i, len(stamps)):
            assert j - i + 1 <= burst + rate * (stamps[j] - stamps[i]) + 1

    # The whole run took at least as long as the rate demands.
    total = threads * per_thread
    assert stamps[-1] - stamps[0] >= (total - burst) / rate * 0.9

    # Fair: when half the tokens are out, every thread has had a reasonable share of them.
    first_half = [n for _, n in grants[: total // 2]]
    assert all(first_half.count(n) >= per_thread // 4 for n in range(threads))


def test_redis_bucket_reports_an_unreachable_server_as_retryable():
    class BrokenScript:
        def __call__(self, keys, args):
            raise ConnectionError("connection refused")

    class BrokenClient:
        def register_script(self, source):
            assert "TIME" in source  # the server's clock, not the worker's
            return BrokenScript()

    limiter = RedisTokenBucket(BrokenClient())
    with pytest.raises(ConnectorError) as info:
        limiter.acquire("acct:1", rate=1.0, burst=1)
    assert info.value.kind is ErrorKind.RETRYABLE
    assert not info.value.maybe_sent


def test_redis_bucket_sleeps_for_the_wait_the_script_returns_and_asks_again():
    replies = iter([b"0.250000", b"0.100000", b"0.000000"])
    calls: list[tuple[list[str], list[float]]] = []

    class Script:
        def __call__(self, keys, args):
            calls.append((keys, args))
            return next(replies)

    class Client:
        def register_script(self, source):
            return Script()

    slept: list[float] = []
    limiter = RedisTokenBucket(Client(), sleep=slept.append)
    assert limiter.acquire("ebay:7:message", rate=2.0, burst=5) == pytest.approx(0.35)
    assert slept == pytest.approx([0.25, 0.1])
    assert calls[0][0] == ["sellerdesk:rl:ebay:7:message"]
    rate, burst, cost, ttl_ms = calls[0][1]
    assert (rate, burst, cost) == (2.0, 5, 1.0)
    assert ttl_ms >= 2500  # a full refill (burst / rate) before the key may expire


def test_limiter_from_settings_without_redis_is_in_process_and_shared():
    first = limiter_from_settings(None)
    assert isinstance(first, InProcessTokenBucket)
    assert limiter_from_settings("") is first
