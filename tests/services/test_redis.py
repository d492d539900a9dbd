"""The Redis the services tier runs against answers and keeps what it is given."""

from __future__ import annotations

import uuid

import redis


def test_redis_round_trip(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    key = f"sellerdesk-test:{uuid.uuid4().hex}"
    try:
        assert client.set(key, "ok", ex=60)
        assert client.get(key) == b"ok"
        assert 0 < client.ttl(key) <= 60
    finally:
        client.delete(key)
        client.close()
