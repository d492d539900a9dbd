"""Spoiling IOP answers in flight: the sandbox answers over real HTTP, one method's answers get changed.

Used by the AliExpress parsing suite and the data-path suite, so a hostile answer reaches the real
connector (and the real poll) exactly as a broken or malicious gateway would send it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx

Body = dict[str, Any]
Spoil = Callable[[Body], Body | bytes]


class Spoiled(httpx.BaseTransport):
    """Forwards every request to the sandbox over HTTP, then spoils the answers of some IOP methods."""

    def __init__(self, methods: tuple[str, ...], spoil: Spoil) -> None:
        self.inner = httpx.HTTPTransport()
        self.methods, self.spoil = methods, spoil

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        called = (
            dict(parse_qsl(request.content.decode())).get("method") if request.url.path == "/sync" else None
        )
        if called not in self.methods:
            return response
        response.read()
        spoiled = self.spoil(json.loads(response.content))
        content = spoiled if isinstance(spoiled, bytes) else json.dumps(spoiled).encode()
        return httpx.Response(
            response.status_code, content=content, headers={"content-type": "application/json"}
        )

    def close(self) -> None:
        self.inner.close()


def result(change: Callable[[Body], Any]) -> Spoil:
    """Spoil the `result` object of a business answer in place."""

    def spoil(body: Body) -> Body:
        (envelope,) = body.values()
        change(envelope["result"])
        return body

    return spoil


def first_row(list_key: str, change: Callable[[Body], Any]) -> Spoil:
    """Spoil the first row of a TOP-wrapped list (`{"list_key": {"some_dto": [row, ...]}}`)."""

    def on_result(res: Body) -> None:
        (rows,) = res[list_key].values()
        change(rows[0])

    return result(on_result)


def listed(res: Body, list_key: str) -> list[Body]:
    """The rows of a TOP-wrapped list, or none when the key is absent."""
    return next(iter(res[list_key].values())) if isinstance(res.get(list_key), dict) else []


def put(**values: Any) -> Callable[[Body], None]:
    return lambda row: row.update(values)


def drop(*keys: str) -> Callable[[Body], None]:
    return lambda row: [row.pop(k, None) for k in keys]


def raw(change: Callable[[bytes], bytes]) -> Spoil:
    """Spoil the answer's bytes themselves."""
    return lambda body: change(json.dumps(body, ensure_ascii=False).encode())
