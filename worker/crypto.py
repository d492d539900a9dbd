"""Marketplace credentials encrypted at rest: Fernet with a key derived from the settings' secret key."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr

from worker.settings import get_settings

if TYPE_CHECKING:
    from worker.models import Account

# Domain separation: a key derived for credentials is useless for anything else derived from the same secret.
_CREDENTIALS_INFO = b"sellerdesk/account-credentials/v1"


class CredentialsError(Exception):
    """Stored credentials cannot be decrypted (the secret key changed) or are not a JSON object."""


def derive_key(secret_key: SecretStr | str, info: bytes = _CREDENTIALS_INFO) -> bytes:
    """A Fernet key (urlsafe base64 of 32 bytes) derived from `secret_key` with HKDF-SHA256 for `info`."""
    secret = secret_key.get_secret_value() if isinstance(secret_key, SecretStr) else secret_key
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret.encode("utf-8"))
    return base64.urlsafe_b64encode(raw)


def _fernet(secret_key: SecretStr | str | None) -> Fernet:
    return Fernet(derive_key(secret_key if secret_key is not None else get_settings().secret_key))


def encrypt_json(data: dict[str, Any], secret_key: SecretStr | str | None = None) -> bytes:
    """Encrypt a JSON object (default key: the settings' secret key)."""
    return _fernet(secret_key).encrypt(json.dumps(data, sort_keys=True).encode("utf-8"))


def decrypt_json(token: bytes, secret_key: SecretStr | str | None = None) -> dict[str, Any]:
    """Decrypt what encrypt_json produced; CredentialsError if the key is wrong or the data is damaged."""
    try:
        data = json.loads(_fernet(secret_key).decrypt(token))
    except InvalidToken:
        raise CredentialsError("cannot decrypt: wrong secret key or damaged data") from None
    if not isinstance(data, dict):
        raise CredentialsError("decrypted credentials are not a JSON object")
    return data


def set_credentials(
    account: Account, credentials: dict[str, Any], secret_key: SecretStr | str | None = None
) -> None:
    """Store `credentials` on the account, encrypted (the caller commits)."""
    if not isinstance(credentials, dict):
        raise TypeError(f"credentials must be a dict, got {type(credentials).__name__}")
    account.credentials_encrypted = encrypt_json(credentials, secret_key)


def get_credentials(account: Account, secret_key: SecretStr | str | None = None) -> dict[str, Any]:
    """The account's decrypted credentials; {} when none are stored."""
    if account.credentials_encrypted is None:
        return {}
    try:
        return decrypt_json(account.credentials_encrypted, secret_key)
    except CredentialsError as exc:
        raise CredentialsError(f"credentials of account {account.id} ({account.name}): {exc}") from None
