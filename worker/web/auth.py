"""Who is asking: signed session cookies for the UI, bearer tokens for scripts, CSRF and login throttling.

The session cookie is an itsdangerous-signed (not encrypted) document holding the user id, the CSRF
token bound to the session and a fingerprint of the user's password hash, so changing a password ends
the user's other sessions. Login failures are counted per username and client address from the audit
log, which every web process shares.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import Depends, HTTPException, Request
from fastapi.responses import Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from worker import models as m
from worker.db import session_scope
from worker.drafts import audit
from worker.settings import Settings
from worker.users import money_cap, role_at_least, user_for_token, visible_account_ids
from worker.web.review import Reviewer

SESSION_COOKIE = "sellerdesk_session"
SESSION_MAX_AGE_SECONDS = 12 * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOGIN_MAX_FAILURES = 5
LOGIN_WINDOW = timedelta(minutes=15)


@dataclass(frozen=True)
class WebSession:
    """What the session cookie holds; an anonymous session (login page) has only the CSRF token."""

    csrf: str
    user_id: int | None = None
    fingerprint: str | None = None


class LoginRequired(Exception):
    """A page needs a logged-in user; GET requests are sent to the login page."""


class CsrfRejected(Exception):
    """A state-changing request from the UI came without the session's CSRF token."""


def new_session(user: m.User | None = None) -> WebSession:
    """A fresh session with a new CSRF token (for `user`, or anonymous)."""
    token = secrets.token_urlsafe(32)
    if user is None:
        return WebSession(csrf=token)
    return WebSession(csrf=token, user_id=user.id, fingerprint=password_fingerprint(user.password_hash))


def password_fingerprint(password_hash: str) -> str:
    """A short digest of the stored hash; a session whose fingerprint no longer matches is over."""
    return hashlib.sha256(password_hash.encode("utf-8")).hexdigest()[:24]


class SessionCodec:
    """Signs and reads session cookies with the settings' secret key; expired or forged cookies read as None."""

    def __init__(self, secret_key: str) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt="sellerdesk.web.session")

    def dumps(self, session: WebSession) -> str:
        return self._serializer.dumps({"c": session.csrf, "u": session.user_id, "f": session.fingerprint})

    def loads(self, value: str) -> WebSession | None:
        try:
            data = self._serializer.loads(value, max_age=SESSION_MAX_AGE_SECONDS)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        user_id, fingerprint = data.get("u"), data.get("f")
        if user_id is not None and (not isinstance(user_id, int) or not isinstance(fingerprint, str)):
            return None
        return WebSession(csrf=data["c"], user_id=user_id, fingerprint=fingerprint)


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def now_of(request: Request) -> datetime:
    """The application's clock (tests replace `app.state.clock`)."""
    return request.app.state.clock()


def db(request: Request) -> AbstractContextManager[Session]:
    """A session_scope on the application's engine (commits at the end of the block)."""
    return session_scope(request.app.state.engine)


def read_session(request: Request) -> WebSession | None:
    """The request's session cookie, verified, or None."""
    if not hasattr(request.state, "web_session"):
        raw = request.cookies.get(SESSION_COOKIE)
        codec: SessionCodec = request.app.state.session_codec
        request.state.web_session = codec.loads(raw) if raw else None
    return request.state.web_session


def write_session(response: Response, request: Request, session: WebSession) -> None:
    """Set the session cookie: HttpOnly, SameSite=Lax, Secure when the request came over https."""
    codec: SessionCodec = request.app.state.session_codec
    response.set_cookie(
        SESSION_COOKIE,
        codec.dumps(session),
        max_age=SESSION_MAX_AGE_SECONDS,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    request.state.web_session = session


def clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, httponly=True, samesite="lax", secure=request.url.scheme == "https", path="/"
    )


def reviewer_for(user: m.User, settings: Settings) -> Reviewer:
    """The Reviewer a logged-in user acts as: audit actor is the user id, money cap from the role."""
    cap = money_cap(settings.money_caps, user.role)
    return Reviewer(
        actor=str(user.id),
        user_id=user.id,
        username=user.username,
        role=user.role,
        account_ids=visible_account_ids(user),
        money_cap=cap if cap > 0 else None,
    )


def _session_user(s: Session, session: WebSession | None) -> m.User | None:
    if session is None or session.user_id is None:
        return None
    user = s.get(m.User, session.user_id)
    if user is None or not user.active:
        return None
    if not hmac.compare_digest(password_fingerprint(user.password_hash), session.fingerprint or ""):
        return None
    return user


def session_reviewer(request: Request) -> Reviewer | None:
    """The reviewer behind the session cookie, or None."""
    session = read_session(request)
    if session is None or session.user_id is None:
        return None
    with db(request) as s:
        user = _session_user(s, session)
        return reviewer_for(user, settings_of(request)) if user else None


def csrf_matches(request: Request, supplied: str | None) -> bool:
    """True when `supplied` is this session's CSRF token."""
    session = read_session(request)
    if session is None or not supplied:
        return False
    return hmac.compare_digest(session.csrf.encode("utf-8"), supplied.encode("utf-8"))


async def check_csrf(request: Request) -> None:
    """Raise CsrfRejected unless the request carries the session's token (form field or X-CSRF-Token)."""
    supplied = request.headers.get(CSRF_HEADER)
    if not supplied:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            supplied = value if isinstance(value, str) else None
    if not csrf_matches(request, supplied):
        raise CsrfRejected()


# FastAPI dependencies.


def page_user(request: Request) -> Reviewer:
    """The logged-in user of a page; LoginRequired otherwise."""
    reviewer = session_reviewer(request)
    if reviewer is None:
        raise LoginRequired()
    request.state.reviewer = reviewer
    return reviewer


async def page_writer(request: Request, reviewer: Reviewer = Depends(page_user)) -> Reviewer:
    """The logged-in user of a state-changing page request, once its CSRF token is checked."""
    await check_csrf(request)
    return reviewer


def _unauthorised(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


@dataclass(frozen=True)
class ApiIdentity:
    reviewer: Reviewer
    # "token" (Authorization: Bearer) or "session" (the UI's cookie, which needs the CSRF header to write).
    via: str


def api_identity(request: Request) -> ApiIdentity:
    """The caller of an API route: a bearer token, else the session cookie; 401 otherwise."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorised("use Authorization: Bearer <token>")
        with db(request) as s:
            user = user_for_token(s, token.strip(), now_of(request))
            if user is None:
                raise _unauthorised("unknown or revoked token")
            return ApiIdentity(reviewer_for(user, settings_of(request)), "token")
    reviewer = session_reviewer(request)
    if reviewer is None:
        raise _unauthorised("log in or send Authorization: Bearer <token>")
    return ApiIdentity(reviewer, "session")


def api_reader(identity: ApiIdentity = Depends(api_identity)) -> Reviewer:
    """The caller of a read-only API route."""
    return identity.reviewer


def api_writer(request: Request, identity: ApiIdentity = Depends(api_identity)) -> Reviewer:
    """The caller of a state-changing API route; a cookie session must also send X-CSRF-Token."""
    if identity.via == "session" and not csrf_matches(request, request.headers.get(CSRF_HEADER)):
        raise HTTPException(
            status_code=403, detail=f"CSRF token missing or wrong: send the {CSRF_HEADER} header"
        )
    return identity.reviewer


def require_admin(reviewer: Reviewer) -> None:
    """403 unless `reviewer` is an admin (user management)."""
    if not role_at_least(reviewer.role, m.Role.admin):
        raise HTTPException(status_code=403, detail="only an admin may manage users")


def api_admin(reviewer: Reviewer = Depends(api_writer)) -> Reviewer:
    """An admin calling a state-changing user-management route; 403 for other roles."""
    require_admin(reviewer)
    return reviewer


def api_admin_reader(reviewer: Reviewer = Depends(api_reader)) -> Reviewer:
    """An admin reading the users; 403 for other roles."""
    require_admin(reviewer)
    return reviewer


# Login throttling.


def login_key(username: str) -> str:
    """How a login attempt's username is recorded (lower-case, at most 100 characters)."""
    return username.strip().lower()[:100]


def client_address(request: Request) -> str:
    # Behind a reverse proxy uvicorn rewrites the client from X-Forwarded-For (its --proxy-headers).
    return request.client.host if request.client else "unknown"


def login_throttled(s: Session, username: str, address: str, now: datetime) -> bool:
    """True when this username failed LOGIN_MAX_FAILURES times from this address within LOGIN_WINDOW
    (a success from the same address starts the count again)."""
    rows = s.execute(
        select(m.AuditLog.action, m.AuditLog.details_json)
        .where(
            m.AuditLog.object_type == "login",
            m.AuditLog.object_id == login_key(username),
            m.AuditLog.at >= now - LOGIN_WINDOW,
        )
        .order_by(m.AuditLog.at, m.AuditLog.id)
    ).all()
    failures = 0
    for action, details in rows:
        if (details or {}).get("ip") != address:
            continue
        failures = 0 if action == "login.success" else failures + 1
    return failures >= LOGIN_MAX_FAILURES


def record_login(
    s: Session, username: str, address: str, user: m.User | None, now: datetime, **details: Any
) -> None:
    """Audit a login attempt (the throttle counts these rows)."""
    s.add(
        m.AuditLog(
            at=now,
            actor=str(user.id) if user else "anonymous",
            action="login.success" if user else "login.failure",
            object_type="login",
            object_id=login_key(username),
            details_json={"ip": address, **details},
        )
    )


def audit_logout(s: Session, reviewer: Reviewer, now: datetime) -> None:
    audit(s, reviewer.actor, "logout", "user", reviewer.user_id)
