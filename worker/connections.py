"""Ready connectors per account: decrypted credentials, the shared rate limiter, persisted token refreshes."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from connectors import connector_class
from connectors.base import AccountRef, Connector, RateLimiter
from connectors.ratelimit import limiter_from_settings
from worker import models as m
from worker.crypto import get_credentials, set_credentials
from worker.db import session_scope, utcnow
from worker.settings import Settings, get_settings


class Connections:
    """Connector instances by account id, rebuilt when the account's credentials or settings change."""

    def __init__(
        self,
        engine: Engine | None = None,
        settings: Settings | None = None,
        limiter: RateLimiter | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.settings = settings or get_settings()
        self.limiter = limiter or limiter_from_settings(self.settings.redis_url)
        self.clock = clock
        self._cache: dict[int, tuple[str, Connector]] = {}
        self._lock = threading.Lock()

    def __call__(self, account_id: int) -> Connector:
        with session_scope(self.engine) as s:
            account = s.get(m.Account, account_id)
            if account is None:
                raise LookupError(f"account {account_id} does not exist")
            fingerprint = hashlib.sha256(
                (account.credentials_encrypted or b"")
                + repr(sorted((account.settings_json or {}).items())).encode()
            ).hexdigest()
            with self._lock:
                cached = self._cache.get(account_id)
                if cached is not None and cached[0] == fingerprint:
                    return cached[1]
            ref = AccountRef(
                id=account.id,
                marketplace=account.marketplace,
                name=account.name,
                credentials=get_credentials(account, self.settings.secret_key),
                settings=dict(account.settings_json or {}),
            )
        with self._lock:
            cached = self._cache.get(account_id)
            if cached is not None and cached[0] == fingerprint:
                return cached[1]  # another thread built it meanwhile
            connector = self._build(ref)
            # A replaced connector (rotated credentials) may still be in use by another thread: it is
            # not closed here; its connections go when it is collected.
            self._cache[account_id] = (fingerprint, connector)
        return connector

    def _build(self, ref: AccountRef) -> Connector:
        cls = connector_class(ref.marketplace)
        return cls(
            ref, limiter=self.limiter, now=self.clock, on_credentials_refreshed=self._persister(ref.id)
        )

    def _persister(self, account_id: int) -> Callable[[dict[str, Any]], None]:
        def persist(credentials: dict[str, Any]) -> None:
            # Stored encrypted straight away: a refresh token is single-use on some marketplaces.
            with session_scope(self.engine) as s:
                account = s.get(m.Account, account_id)
                set_credentials(account, credentials, self.settings.secret_key)
            # The fingerprint changed with the stored credentials: the next lookup rebuilds the
            # connector from what is now in the database.

        return persist

    def close(self) -> None:
        with self._lock:
            for _, conn in self._cache.values():
                conn.close()
            self._cache.clear()
