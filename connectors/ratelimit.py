"""Token-bucket rate limiters: in-process (embedded mode), Redis (shared by every worker), and none.

A bucket holds at most `burst` tokens and refills at `rate` tokens per second; a call spends `cost`
tokens. Buckets are keyed by the caller (per account and API), so one noisy account never slows
another.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connectors.base import ConnectorError, ErrorKind, RateLimiter

REDIS_KEY_PREFIX = "sellerdesk:rl:"


def _check_args(key: str, rate: float, burst: int, cost: float) -> None:
    """Refuse parameters that would make a bucket meaningless, naming the bad one."""
    if not key:
        raise ValueError("rate limiter: key must not be empty")
    if not (isinstance(rate, int | float) and math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate limiter: rate must be a positive number of tokens per second, got {rate!r}")
    if not (isinstance(burst, int) and burst >= 1):
        raise ValueError(f"rate limiter: burst must be an integer >= 1, got {burst!r}")
    if not (isinstance(cost, int | float) and 0 < cost <= burst):
        raise ValueError(f"rate limiter: cost must be > 0 and <= burst ({burst}), got {cost!r}")


class NullLimiter(RateLimiter):
    """Never waits: for tests and for APIs without a documented rate."""

    def acquire(self, key: str, rate: float, burst: int, cost: float = 1.0) -> float:
        _check_args(key, rate, burst, cost)
        return 0.0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class InProcessTokenBucket(RateLimiter):
    """A thread-safe token bucket per key, on a monotonic clock, for the embedded single-process mode.

    Callers reserve their tokens under the lock and then sleep outside it: the balance may go below
    zero, and each caller waits until its own share has refilled. Reservations are served in arrival
    order, so threads are treated fairly and no more than `burst + rate * t` tokens are ever issued
    within any `t` seconds.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}

    def acquire(self, key: str, rate: float, burst: int, cost: float = 1.0) -> float:
        """Reserve `cost` tokens now and sleep until they exist; return the seconds waited."""
        _check_args(key, rate, burst, cost)
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(tokens=float(burst), stamp=now)
            elapsed = max(0.0, now - bucket.stamp)
            bucket.tokens = min(float(burst), bucket.tokens + elapsed * rate)
            bucket.stamp = now
            bucket.tokens -= cost
            wait = -bucket.tokens / rate if bucket.tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


# One atomic step on Redis: refill from the server's own clock (so every worker agrees on time),
# spend the tokens if they are there, otherwise say how long until they will be. Nothing is reserved
# on a miss: the caller sleeps and asks again. Numbers go back as strings because Redis truncates a
# Lua number reply to an integer.
_LUA_TOKEN_BUCKET = """
if redis.replicate_commands then redis.replicate_commands() end
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local ttl_ms = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(state[1])
local stamp = tonumber(state[2])
if tokens == nil or stamp == nil then
  tokens = burst
  stamp = now
end
local elapsed = now - stamp
if elapsed < 0 then elapsed = 0 end
tokens = math.min(burst, tokens + elapsed * rate)
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
else
  wait = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.9f', tokens), 'stamp', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], ttl_ms)
return string.format('%.6f', wait)
"""


class RedisTokenBucket(RateLimiter):
    """A token bucket in Redis shared by every worker process; one Lua script call per attempt.

    Keys are `sellerdesk:rl:<key>` and expire once a bucket would be full again (a missing key is a
    full bucket), so idle accounts leave nothing behind.
    """

    def __init__(
        self,
        client: Any,
        *,
        sleep: Callable[[float], None] = time.sleep,
        prefix: str = REDIS_KEY_PREFIX,
    ) -> None:
        self._client = client
        self._sleep = sleep
        self._prefix = prefix
        self._script = client.register_script(_LUA_TOKEN_BUCKET)

    def redis_key(self, key: str) -> str:
        return f"{self._prefix}{key}"

    def try_acquire(self, key: str, rate: float, burst: int, cost: float = 1.0) -> float:
        """Spend `cost` tokens if available and return 0, else return the seconds until they are."""
        _check_args(key, rate, burst, cost)
        ttl_ms = int(math.ceil(burst / rate * 1000)) + 1000
        try:
            reply = self._script(keys=[self.redis_key(key)], args=[rate, burst, cost, ttl_ms])
        except Exception as exc:  # redis.RedisError and connection failures alike
            # Nothing was sent to the marketplace yet, so the caller may safely try again later.
            raise ConnectorError(
                ErrorKind.RETRYABLE, f"rate limiter unavailable: {type(exc).__name__}"
            ) from exc
        if isinstance(reply, bytes):
            reply = reply.decode("ascii")
        return max(0.0, float(reply))

    def acquire(self, key: str, rate: float, burst: int, cost: float = 1.0) -> float:
        """Block until `cost` tokens are spent; return the seconds slept."""
        waited = 0.0
        while True:
            wait = self.try_acquire(key, rate, burst, cost)
            if wait <= 0:
                return waited
            self._sleep(wait)
            waited += wait


_shared_lock = threading.Lock()
_shared: dict[str | None, RateLimiter] = {}


def limiter_from_settings(redis_url: str | None) -> RateLimiter:
    """The process-wide limiter: Redis-backed for a URL, in-process for None (the embedded mode)."""
    redis_url = redis_url or None
    with _shared_lock:
        limiter = _shared.get(redis_url)
        if limiter is None:
            if redis_url:
                import redis  # imported here so the embedded mode never needs a Redis client

                limiter = RedisTokenBucket(redis.Redis.from_url(redis_url))
            else:
                limiter = InProcessTokenBucket()
            _shared[redis_url] = limiter
        return limiter
