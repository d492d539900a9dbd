"""People who review drafts: argon2 password hashes, roles, the accounts each may see, and API tokens.

Functions here take a session and change rows in the caller's transaction; they raise `UserError`
with a message naming the field when an input is refused. Every change is written to the audit log.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from worker import models as m
from worker.drafts import audit

# argon2id with the library's defaults (RFC 9106 low-memory profile). Tests swap in a cheaper hasher.
_hasher = PasswordHasher()

ROLE_RANK = {m.Role.agent: 1, m.Role.supervisor: 2, m.Role.admin: 3}
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,99}$")
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024
TOKEN_PREFIX = "sd_"


class UserError(Exception):
    """A user operation refused; the message names the field or says what is missing."""


def hash_password(password: str) -> str:
    """An argon2id hash of `password` (refused when shorter than MIN_PASSWORD_CHARS)."""
    check_password_strength(password)
    return _hasher.hash(password)


def check_password_strength(password: str) -> None:
    """Raise UserError when `password` is too short, too long or blank."""
    if len(password) < MIN_PASSWORD_CHARS or not password.strip():
        raise UserError(f"password: use at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise UserError(f"password: at most {MAX_PASSWORD_CHARS} characters")


def verify_password(password_hash: str, password: str) -> bool:
    """True when `password` matches `password_hash`; a malformed hash never matches."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# Verified against when the username is unknown, so a wrong name costs as long as a wrong password.
_dummy_hash: str | None = None


def _burn_time(password: str) -> None:
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash(secrets.token_urlsafe(16))
    verify_password(_dummy_hash, password)


def normalise_username(username: str) -> str:
    """Usernames compare case-insensitively: they are stored lower-case."""
    name = username.strip().lower()
    if not USERNAME_PATTERN.match(name):
        raise UserError("username: 2 to 100 characters among letters, digits and . _ @ -")
    return name


def parse_role(role: str) -> m.Role:
    """The Role named `role`, or UserError listing the roles."""
    try:
        return m.Role(role.strip().lower())
    except ValueError:
        raise UserError(f"role: {role!r} is not one of {', '.join(r.value for r in m.Role)}") from None


def role_at_least(role: str, minimum: m.Role) -> bool:
    """True when `role` ranks at or above `minimum` (agent < supervisor < admin)."""
    return ROLE_RANK.get(m.Role(role), 0) >= ROLE_RANK[minimum]


def money_cap(caps: dict[str, Decimal], role: str) -> Decimal:
    """The largest money action `role` may approve (0 when the role has no cap)."""
    return caps.get(role, Decimal("0"))


def find_user(s: Session, username: str) -> m.User | None:
    """The user called `username` (any case), or None."""
    return s.scalar(select(m.User).where(m.User.username == username.strip().lower()))


def get_user(s: Session, username: str) -> m.User:
    """The user called `username`, or UserError."""
    user = find_user(s, username)
    if user is None:
        raise UserError(f"username: no user {username.strip().lower()!r}")
    return user


def _accounts(s: Session, account_ids: Iterable[int]) -> list[m.Account]:
    wanted = sorted(set(account_ids))
    found = s.scalars(select(m.Account).where(m.Account.id.in_(wanted))).all() if wanted else []
    missing = sorted(set(wanted) - {a.id for a in found})
    if missing:
        raise UserError(f"accounts: no account with id {', '.join(map(str, missing))}")
    return list(found)


def create_user(
    s: Session,
    username: str,
    password: str,
    role: str,
    account_ids: Iterable[int] = (),
    *,
    actor: str = "system",
) -> m.User:
    """Add an active user with a hashed password, a role and the accounts they may see (`actor` is audited)."""
    name = normalise_username(username)
    parsed = parse_role(role)
    if find_user(s, name) is not None:
        raise UserError(f"username: {name!r} exists already")
    accounts = _accounts(s, account_ids)
    user = m.User(username=name, password_hash=hash_password(password), role=parsed.value, active=True)
    s.add(user)
    s.flush()
    for account in accounts:
        s.add(m.UserAccount(user_id=user.id, account_id=account.id))
    s.flush()
    s.refresh(user)
    audit(
        s,
        actor,
        "user.add",
        "user",
        user.id,
        username=name,
        role=parsed.value,
        accounts=[a.id for a in accounts],
    )
    return user


def set_role(s: Session, user: m.User, role: str, *, actor: str) -> m.User:
    """Change a user's role."""
    parsed = parse_role(role)
    before = user.role
    user.role = parsed.value
    s.flush()
    audit(s, actor, "user.set_role", "user", user.id, before=before, after=parsed.value)
    return user


def set_accounts(s: Session, user: m.User, account_ids: Iterable[int], *, actor: str) -> m.User:
    """Replace the accounts a user may see (admins see every account whatever this says)."""
    accounts = _accounts(s, account_ids)
    s.execute(delete(m.UserAccount).where(m.UserAccount.user_id == user.id))
    for account in accounts:
        s.add(m.UserAccount(user_id=user.id, account_id=account.id))
    s.flush()
    s.refresh(user)
    audit(s, actor, "user.set_accounts", "user", user.id, accounts=[a.id for a in accounts])
    return user


def set_password(s: Session, user: m.User, password: str, *, actor: str) -> m.User:
    """Replace a user's password; their open web sessions end (the session carries a hash fingerprint)."""
    user.password_hash = hash_password(password)
    s.flush()
    audit(s, actor, "user.set_password", "user", user.id)
    return user


def set_active(s: Session, user: m.User, active: bool, *, actor: str) -> m.User:
    """Enable or disable a user; a disabled user can neither log in nor use a token."""
    user.active = active
    s.flush()
    audit(s, actor, "user.activate" if active else "user.deactivate", "user", user.id)
    return user


def authenticate(s: Session, username: str, password: str) -> m.User | None:
    """The active user whose name and password match, else None (same cost whether the name exists or not)."""
    user = find_user(s, username)
    if user is None or not user.active:
        _burn_time(password)
        return None
    if not verify_password(user.password_hash, password):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        # Parameters were raised since this hash was made: upgrade it while we know the password.
        user.password_hash = _hasher.hash(password)
    return user


def token_hash(token: str) -> str:
    """The stored form of an API token. Tokens are 256 random bits, so a plain SHA-256 is enough."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(s: Session, user: m.User, name: str, *, actor: str) -> tuple[m.ApiToken, str]:
    """A new API token for `user`; returns the row and the token itself, which is never stored."""
    label = name.strip()
    if not label or len(label) > 100:
        raise UserError("name: the token needs a name of 1 to 100 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = m.ApiToken(user_id=user.id, token_hash=token_hash(token), name=label)
    s.add(row)
    s.flush()
    audit(s, actor, "token.create", "user", user.id, token_id=row.id, name=label)
    return row, token


def user_for_token(s: Session, token: str, now: datetime) -> m.User | None:
    """The active user owning `token` (its last use is recorded), or None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = s.scalar(select(m.ApiToken).where(m.ApiToken.token_hash == token_hash(token)))
    if row is None:
        return None
    user = s.get(m.User, row.user_id)
    if user is None or not user.active:
        return None
    row.last_used_at = now
    return user


def revoke_token(s: Session, token_id: int, *, actor: str) -> None:
    """Delete an API token."""
    row = s.get(m.ApiToken, token_id)
    if row is None:
        raise UserError(f"token: no token with id {token_id}")
    s.delete(row)
    audit(s, actor, "token.revoke", "user", row.user_id, token_id=token_id)


def list_tokens(s: Session, user: m.User) -> list[m.ApiToken]:
    """A user's API tokens (hashes only), oldest first."""
    return list(s.scalars(select(m.ApiToken).where(m.ApiToken.user_id == user.id).order_by(m.ApiToken.id)))


def visible_account_ids(user: m.User) -> frozenset[int] | None:
    """The accounts `user` may see: None means every account (admins)."""
    if user.role == m.Role.admin:
        return None
    return frozenset(a.id for a in user.accounts)
