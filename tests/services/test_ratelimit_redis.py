"""The Redis token bucket against a real Redis (`redis_url` from tests/conftest.py): processes share one
bucket and never over-issue."""

from __future__ import annotations

import multiprocessing
import time
import uuid

import pytest

pytestmark = pytest.mark.services

redis = pytest.importorskip("redis")

from connectors.ratelimit import RedisTokenBucket, limiter_from_settings  # noqa: E402


@pytest.fixture
def bucket_key(redis_url):
    key = f"test:{uuid.uuid4().hex}"
    yield key
    client = redis.Redis.from_url(redis_url)
    client.delete(f"sellerdesk:rl:{key}")
    client.close()


def _grab(url: str, key: str, rate: float, burst: int, count: int, start_at: float, out) -> None:
    """Child process: wait for the common start, then take `count` tokens, reporting each grant time."""
    client = redis.Redis.from_url(url)
    limiter = RedisTokenBucket(client)
    while time.time() < start_at:
        time.sleep(0.001)
    for _ in range(count):
        limiter.acquire(key, rate=rate, burst=burst)
        out.put(time.time())
    client.close()


def test_processes_sharing_a_bucket_never_exceed_burst_plus_rate(redis_url, bucket_key):
    rate, burst, processes, per_process = 40.0, 5, 3, 12
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 1.5  # spawn start-up takes a moment; all children begin together
    children = [
        ctx.Process(target=_grab, args=(redis_url, bucket_key, rate, burst, per_process, start_at, out))
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    stamps = sorted(out.get(timeout=30) for _ in range(processes * per_process))
    for child in children:
        child.join(timeout=10)
        assert child.exitcode == 0

    # In any window [a, b], grants <= burst + rate * (b - a), with one token of slack for the time
    # between Redis granting a token and the child stamping it.
    for i in range(len(stamps)):
        for j in range(i, len(stamps)):
            assert j - i + 1 <= burst + rate * (stamps[j] - stamps[i]) + 1
    total = processes * per_process
    assert stamps[-1] - stamps[0] >= (total - burst) / rate * 0.9


def test_bucket_key_has_the_documented_name_and_expires(redis_url, bucket_key):
    client = redis.Redis.from_url(redis_url)
    limiter = RedisTokenBucket(client)
    assert limiter.try_acquire(bucket_key, rate=10.0, burst=2) == 0.0
    name = f"sellerdesk:rl:{bucket_key}"
    assert client.exists(name)
    ttl_ms = client.pttl(name)
    assert 0 < ttl_ms <= 1200  # burst / rate = 0.2 s to refill, plus a one-second margin
    assert limiter.try_acquire(bucket_key, rate=10.0, burst=2) == 0.0
    wait = limiter.try_acquire(bucket_key, rate=10.0, burst=2)
    assert 0.05 < wait <= 0.1  # the third token within the burst window must wait ~1/rate
    client.close()


def test_factory_with_a_url_is_redis_backed(redis_url, bucket_key):
    limiter = limiter_from_settings(redis_url)
    assert isinstance(limiter, RedisTokenBucket)
    assert limiter.acquire(bucket_key, rate=5.0, burst=1) == 0.0
