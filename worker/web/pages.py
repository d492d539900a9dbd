"""The UI's pages: login, the queue, one draft, the dashboard and (for admins) users.

Forms post and redirect (they work without JavaScript); htmx swaps only the parts that should not
reload the page (money action cards, the undo banner). Every form carries the session's CSRF token;
the `page_writer` dependency refuses a state-changing request without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import func, select

from worker import models as m
from worker import users as um
from worker.web import review
from worker.web.auth import (
    clear_session,
    client_address,
    csrf_matches,
    db,
    login_throttled,
    new_session,
    now_of,
    page_user,
    page_writer,
    read_session,
    record_login,
    require_admin,
    session_reviewer,
    settings_of,
    write_session,
)
from worker.web.queue import FACETS, FilterError, Filters, draft_detail, facet_counts, list_queue, neighbours
from worker.web.review import Reviewer, ReviewError
from worker.web.stats import bars, dashboard

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
FLASH_COOKIE = "sellerdesk_flash"
FLASH_MAX_AGE_SECONDS = 120
SNOOZE_CHOICES = ((1, "1 hour"), (4, "4 hours"), (24, "1 day"), (72, "3 days"), (168, "1 week"))
MAX_SNOOZE_HOURS = 720


@dataclass(frozen=True)
class Flash:
    """A one-shot message shown on the next page (after a redirect); `undo_draft` offers an undo button."""

    kind: str
    text: str
    undo_draft: int | None = None


def _flash_serializer(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        settings_of(request).secret_key.get_secret_value(), salt="sellerdesk.web.flash"
    )


def set_flash(response: Response, request: Request, flash: Flash) -> None:
    """Carry `flash` to the next page in a short-lived signed cookie."""
    value = _flash_serializer(request).dumps([flash.kind, flash.text, flash.undo_draft])
    response.set_cookie(
        FLASH_COOKIE,
        value,
        max_age=FLASH_MAX_AGE_SECONDS,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


def _read_flash(request: Request) -> Flash | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        kind, text, undo_draft = _flash_serializer(request).loads(raw, max_age=FLASH_MAX_AGE_SECONDS)
    except (BadSignature, ValueError, TypeError):
        return None
    return Flash(str(kind), str(text), undo_draft if isinstance(undo_draft, int) else None)


def _pending_count(request: Request, me: Reviewer) -> int:
    with db(request) as s:
        stmt = select(func.count()).select_from(m.Draft).where(m.Draft.state == m.DraftState.pending)
        if me.account_ids is not None:
            stmt = stmt.where(m.Draft.account_id.in_(sorted(me.account_ids)))
        return s.scalar(stmt) or 0


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    """Render a page with what every page needs: the user, the CSRF token, the clock, a pending flash."""
    me: Reviewer | None = getattr(request.state, "reviewer", None)
    session = read_session(request)
    flash = _read_flash(request)
    base = {
        "me": me,
        "csrf_token": session.csrf if session else "",
        "now": now_of(request),
        "flash": flash,
        "pending_total": _pending_count(request, me) if me else 0,
        "nav": "",
    }
    response = request.app.state.templates.TemplateResponse(
        request, name, {**base, **context}, status_code=status
    )
    if flash is not None:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def redirect(url: str, request: Request | None = None, flash: Flash | None = None) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    if flash is not None and request is not None:
        set_flash(response, request, flash)
    return response


def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    return render(request, "error.html", {"title": title, "message": message}, status=status)


def safe_next(value: str | None) -> str:
    """A local path to go to after login; anything else (another site, //host) becomes '/'."""
    if (
        value
        and value.startswith("/")
        and not value.startswith("//")
        and not any(c in value for c in "\\\r\n")
    ):
        return value
    return "/"


def _is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def _filters(request: Request) -> Filters:
    try:
        return Filters.parse(request.query_params)
    except FilterError:
        return Filters()


def queue_url(filters: Filters, **extra: Any) -> str:
    params = {**filters.params(), **{k: str(v) for k, v in extra.items() if v is not None}}
    return "/?" + urlencode(params) if params else "/"


def draft_url(draft_id: int, filters: Filters) -> str:
    params = filters.params()
    return f"/drafts/{draft_id}" + ("?" + urlencode(params) if params else "")


def _facet_value(facet: str, raw: str | None) -> Any:
    if raw is None:
        return None
    if facet == "account":
        return int(raw)
    if facet == "auto":
        return raw == "auto"
    if facet == "state" and raw == "all":
        return None
    return raw


# Login and logout.


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    if session_reviewer(request) is not None:
        return redirect(safe_next(next))
    session = read_session(request)
    if session is None or session.user_id is not None:
        session = new_session()
    response = render(
        request, "login.html", {"next": safe_next(next), "error": None, "csrf_token": session.csrf}
    )
    write_session(response, request, session)
    return response


@router.post("/login")
def login(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),
    csrf_token: str = Form(""),
    next: str = Form("/"),
) -> Response:
    target = safe_next(next)

    def again(error: str, status: int) -> Response:
        session = read_session(request) or new_session()
        response = render(
            request,
            "login.html",
            {"next": target, "error": error, "csrf_token": session.csrf, "username": username},
            status=status,
        )
        write_session(response, request, session)
        return response

    if not csrf_matches(request, csrf_token):
        # The session stays as it was: a forged cross-site post must not even log the user out.
        return again("The login form had expired. Please try again.", 403)
    now, address = now_of(request), client_address(request)
    with db(request) as s:
        if login_throttled(s, username, address, now):
            return again("Too many failed logins. Wait 15 minutes and try again.", 429)
        user = um.authenticate(s, username, password) if username.strip() and password else None
        if username.strip():
            record_login(s, username, address, user, now)
        session = new_session(user) if user else None
    if session is None:
        return again("Wrong username or password.", 401)
    response = redirect(target)
    # A new session (and CSRF token) at login: a token planted before login is worthless after it.
    write_session(response, request, session)
    return response


@router.post("/logout")
def logout(request: Request, me: Reviewer = Depends(page_writer)) -> Response:
    with db(request) as s:
        s.add(
            m.AuditLog(
                at=now_of(request),
                actor=me.actor,
                action="logout",
                object_type="user",
                object_id=str(me.user_id),
            )
        )
    response = redirect("/login")
    clear_session(response, request)
    return response


# The queue.


@router.get("/")
def queue_page(request: Request, page: int = 1, me: Reviewer = Depends(page_user)) -> Response:
    try:
        filters = Filters.parse(request.query_params)
    except FilterError as exc:
        return error_page(request, 422, "Unknown filter", str(exc))
    page = max(1, page)
    with db(request) as s:
        result = list_queue(s, filters, me.account_ids, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        facets = facet_counts(s, filters, me.account_ids)

    def facet_url(facet: str, raw: str | None) -> str:
        return queue_url(filters.with_value(facet, _facet_value(facet, raw)))

    def current(facet: str) -> str | None:
        params = filters.params()
        if facet == "state":
            return params.get("state", "pending")
        return params.get(facet)

    pages = max(1, -(-result.total // PAGE_SIZE))
    return render(
        request,
        "queue.html",
        {
            "nav": "queue",
            "filters": filters,
            "result": result,
            "facets": facets,
            "facet_order": FACETS,
            "facet_url": facet_url,
            "current": current,
            "page": page,
            "pages": pages,
            "query": urlencode(filters.params()),
            "page_url": lambda n: queue_url(filters, page=n if n > 1 else None),
            "draft_href": lambda draft_id: draft_url(draft_id, filters),
            "clear_url": queue_url(Filters(state=filters.state)),
        },
    )


@router.post("/bulk-approve")
def bulk_approve_page(
    request: Request, draft_ids: list[int] = Form(default=[]), me: Reviewer = Depends(page_writer)
) -> Response:
    filters = _filters(request)
    if not draft_ids:
        return redirect(queue_url(filters), request, Flash("error", "Select drafts to approve first."))
    settings = settings_of(request)
    with db(request) as s:
        result = review.bulk_approve(
            s, me, draft_ids, now=now_of(request), undo_window=timedelta(seconds=settings.undo_window_seconds)
        )
    parts = []
    if result.approved:
        parts.append(f"Approved {len(result.approved)} draft{'s' if len(result.approved) > 1 else ''}.")
    if result.skipped:
        reasons = "; ".join(f"#{draft_id}: {why}" for draft_id, why in list(result.skipped.items())[:5])
        parts.append(f"Skipped {len(result.skipped)} ({reasons}).")
    kind = "ok" if result.approved and not result.skipped else ("error" if not result.approved else "info")
    return redirect(queue_url(filters), request, Flash(kind, " ".join(parts)))


# One draft.


def _actor_names(request: Request, actors: set[str]) -> dict[str, str]:
    ids = sorted(int(a) for a in actors if a.isdigit())
    if not ids:
        return {}
    with db(request) as s:
        return {
            str(uid): name
            for uid, name in s.execute(select(m.User.id, m.User.username).where(m.User.id.in_(ids)))
        }


def draft_view(
    request: Request,
    me: Reviewer,
    draft_id: int,
    filters: Filters,
    *,
    status: int = 200,
    error: str | None = None,
    action_notice: Flash | None = None,
    edited_value: str | None = None,
    reject_value: str = "",
) -> Response:
    """The draft page (also re-rendered with an error after a refused form)."""
    with db(request) as s:
        detail = draft_detail(s, draft_id, me.account_ids)
        prev_id, next_id = neighbours(s, draft_id, filters, me.account_ids) if detail else (None, None)
    if detail is None:
        # Rendered outside the unit of work: the page's own queries open one of their own.
        return error_page(request, 404, "Draft not found", f"There is no draft #{draft_id} you can see.")
    names = _actor_names(request, {a.actor for a in detail.audit} | {str(detail.reviewer_id or "")})
    return render(
        request,
        "draft.html",
        {
            "nav": "queue",
            "d": detail,
            "filters": filters,
            "query": urlencode(filters.params()),
            "prev_url": draft_url(prev_id, filters) if prev_id else None,
            "next_url": draft_url(next_id, filters) if next_id else None,
            "back_url": queue_url(filters),
            "error": error,
            "action_notice": action_notice,
            "reply_value": edited_value if edited_value is not None else detail.reply,
            "reject_value": reject_value,
            "snooze_choices": SNOOZE_CHOICES,
            "actor_names": names,
            "undo_seconds": settings_of(request).undo_window_seconds,
        },
        status=status,
    )


@router.get("/drafts/{draft_id}")
def draft_page(request: Request, draft_id: int, me: Reviewer = Depends(page_user)) -> Response:
    return draft_view(request, me, draft_id, _filters(request))


def _after_decision(request: Request, me: Reviewer, draft_id: int, filters: Filters, return_to: str) -> str:
    """Where to go once a draft leaves the queue: the next one in the same filters, else the queue."""
    if return_to == "queue":
        return queue_url(filters)
    with db(request) as s:
        _, next_id = neighbours(s, draft_id, filters, me.account_ids)
    return draft_url(next_id, filters) if next_id else queue_url(filters)


@router.post("/drafts/{draft_id}/approve")
def approve_page(
    request: Request,
    draft_id: int,
    edited_text: str | None = Form(None),
    send_now: str = Form(""),
    return_to: str = Form("next"),
    me: Reviewer = Depends(page_writer),
) -> Response:
    filters = _filters(request)
    settings = settings_of(request)
    target = _after_decision(request, me, draft_id, filters, return_to)
    try:
        with db(request) as s:
            review.approve(
                s,
                me,
                draft_id,
                now=now_of(request),
                undo_window=timedelta(seconds=settings.undo_window_seconds),
                edited_text=edited_text,
                send_now=bool(send_now),
            )
    except ReviewError as exc:
        if return_to == "queue":
            return redirect(queue_url(filters), request, Flash("error", str(exc)))
        return draft_view(
            request, me, draft_id, filters, status=exc.status, error=str(exc), edited_value=edited_text
        )
    if send_now or settings.undo_window_seconds == 0:
        flash = Flash("ok", f"Draft #{draft_id} approved and queued for sending now.")
    else:
        flash = Flash(
            "ok",
            f"Draft #{draft_id} approved; it goes out in {settings.undo_window_seconds // 60 or 1} min unless you undo.",
            undo_draft=draft_id,
        )
    return redirect(target, request, flash)


@router.post("/drafts/{draft_id}/reject")
def reject_page(
    request: Request,
    draft_id: int,
    reason: str = Form(""),
    return_to: str = Form("next"),
    me: Reviewer = Depends(page_writer),
) -> Response:
    filters = _filters(request)
    target = _after_decision(request, me, draft_id, filters, return_to)
    try:
        with db(request) as s:
            review.reject(s, me, draft_id, reason=reason, now=now_of(request))
    except ReviewError as exc:
        return draft_view(
            request, me, draft_id, filters, status=exc.status, error=str(exc), reject_value=reason
        )
    return redirect(target, request, Flash("ok", f"Draft #{draft_id} rejected."))


@router.post("/drafts/{draft_id}/snooze")
def snooze_page(
    request: Request, draft_id: int, hours: int = Form(4), me: Reviewer = Depends(page_writer)
) -> Response:
    filters = _filters(request)
    if not 1 <= hours <= MAX_SNOOZE_HOURS:
        return draft_view(request, me, draft_id, filters, status=422, error=f"hours: 1 to {MAX_SNOOZE_HOURS}")
    target = _after_decision(request, me, draft_id, filters, "next")
    now = now_of(request)
    try:
        with db(request) as s:
            review.snooze(s, me, draft_id, until=now + timedelta(hours=hours), now=now)
    except ReviewError as exc:
        return draft_view(request, me, draft_id, filters, status=exc.status, error=str(exc))
    return redirect(target, request, Flash("ok", f"Draft #{draft_id} snoozed for {hours} h."))


@router.post("/drafts/{draft_id}/undo")
def undo_page(request: Request, draft_id: int, me: Reviewer = Depends(page_writer)) -> Response:
    filters = _filters(request)
    try:
        with db(request) as s:
            review.undo(s, me, draft_id, now=now_of(request))
    except ReviewError as exc:
        if _is_htmx(request):
            # htmx swaps 2xx answers only: the banner shows the refusal in place.
            return render(
                request, "_undo_result.html", {"ok": False, "message": str(exc), "draft_id": draft_id}
            )
        return redirect(draft_url(draft_id, filters), request, Flash("error", str(exc)))
    if _is_htmx(request):
        return render(
            request,
            "_undo_result.html",
            {
                "ok": True,
                "message": f"Sending cancelled: draft #{draft_id} is back in the queue.",
                "draft_id": draft_id,
            },
        )
    return redirect(
        draft_url(draft_id, filters), request, Flash("ok", "Sending cancelled: the draft is pending again.")
    )


def _draft_of_action(request: Request, me: Reviewer, action_id: int) -> int | None:
    with db(request) as s:
        action = s.get(m.ProposedAction, action_id)
        if action is None or (me.account_ids is not None and action.account_id not in me.account_ids):
            return None
        return s.scalar(select(m.Draft.id).where(m.Draft.decision_id == action.decision_id))


def _action_answer(
    request: Request, me: Reviewer, action_id: int, error: ReviewError | None, done: str
) -> Response:
    filters = _filters(request)
    draft_id = _draft_of_action(request, me, action_id)
    if draft_id is None:
        return error_page(request, 404, "Action not found", f"There is no action #{action_id} you can see.")
    notice = Flash("error", str(error)) if error else Flash("ok", done)
    if _is_htmx(request):
        # The page is rendered whole; htmx picks the actions panel and the reply gate out of it.
        return draft_view(request, me, draft_id, filters, action_notice=notice)
    if error is not None:
        return draft_view(request, me, draft_id, filters, status=error.status, action_notice=notice)
    return redirect(draft_url(draft_id, filters) + "#actions", request, notice)


@router.post("/actions/{action_id}/approve")
def approve_action_page(
    request: Request,
    action_id: int,
    confirm: str = Form(""),
    override_reason: str = Form(""),
    me: Reviewer = Depends(page_writer),
) -> Response:
    try:
        with db(request) as s:
            action = review.approve_action(
                s, me, action_id, now=now_of(request), confirm=bool(confirm), override_reason=override_reason
            )
            kind = action.type
    except review.NotFound as exc:
        return error_page(request, 404, "Action not found", str(exc))
    except ReviewError as exc:
        return _action_answer(request, me, action_id, exc, "")
    return _action_answer(request, me, action_id, None, f"{kind.replace('_', ' ')} approved.")


@router.post("/actions/{action_id}/reject")
def reject_action_page(
    request: Request, action_id: int, reason: str = Form(""), me: Reviewer = Depends(page_writer)
) -> Response:
    try:
        with db(request) as s:
            review.reject_action(s, me, action_id, now=now_of(request), reason=reason)
    except review.NotFound as exc:
        return error_page(request, 404, "Action not found", str(exc))
    except ReviewError as exc:
        return _action_answer(request, me, action_id, exc, "")
    return _action_answer(request, me, action_id, None, "Action rejected.")


# Dashboard.


@router.get("/dashboard")
def dashboard_page(request: Request, days: int = 30, me: Reviewer = Depends(page_user)) -> Response:
    days = min(max(days, 1), 365)
    with db(request) as s:
        stats = dashboard(s, me.account_ids, now=now_of(request), days=days)
    return render(
        request,
        "dashboard.html",
        {
            "nav": "dashboard",
            "stats": stats,
            "intent_bars": bars(stats.by_intent),
            "scenario_bars": bars(stats.by_scenario),
            "state_bars": bars(stats.by_state),
            "period_choices": (1, 7, 30, 90),
        },
    )


# Users (admins only).


def users_view(
    request: Request, *, status: int = 200, error: str | None = None, new_token: str | None = None
) -> Response:
    with db(request) as s:
        users = s.scalars(select(m.User).order_by(m.User.username)).all()
        accounts = s.scalars(select(m.Account).order_by(m.Account.marketplace, m.Account.name)).all()
        tokens = {
            user_id: count
            for user_id, count in s.execute(
                select(m.ApiToken.user_id, func.count()).group_by(m.ApiToken.user_id)
            )
        }
        rows = [
            {
                "id": u.id,
                "username": u.username,
                "role": u.role,
                "active": u.active,
                "account_ids": {a.id for a in u.accounts},
                "tokens": tokens.get(u.id, 0),
                "created_at": u.created_at,
            }
            for u in users
        ]
    return render(
        request,
        "users.html",
        {
            "nav": "users",
            "users": rows,
            "accounts": accounts,
            "roles": [r.value for r in m.Role],
            "error": error,
            "new_token": new_token,
            "caps": settings_of(request).money_caps,
        },
        status=status,
    )


@router.get("/users")
def users_page(request: Request, me: Reviewer = Depends(page_user)) -> Response:
    require_admin(me)
    return users_view(request)


@router.post("/users")
def create_user_page(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),
    role: str = Form("agent"),
    account_ids: list[int] = Form(default=[]),
    me: Reviewer = Depends(page_writer),
) -> Response:
    require_admin(me)
    try:
        with db(request) as s:
            user = um.create_user(s, username, password, role, account_ids, actor=me.actor)
            name = user.username
    except um.UserError as exc:
        return users_view(request, status=422, error=str(exc))
    return redirect("/users", request, Flash("ok", f"User {name} added."))


@router.post("/users/{user_id}")
def update_user_page(
    request: Request,
    user_id: int,
    role: str = Form(...),
    account_ids: list[int] = Form(default=[]),
    active: str = Form(""),
    me: Reviewer = Depends(page_writer),
) -> Response:
    require_admin(me)
    try:
        with db(request) as s:
            user = s.get(m.User, user_id)
            if user is None:
                return error_page(request, 404, "User not found", f"There is no user #{user_id}.")
            if user.id == me.user_id and (role != m.Role.admin or not active):
                raise um.UserError("role: you cannot demote or disable yourself (ask another admin)")
            if user.role != role:
                um.set_role(s, user, role, actor=me.actor)
            if {a.id for a in user.accounts} != set(account_ids):
                um.set_accounts(s, user, account_ids, actor=me.actor)
            if user.active != bool(active):
                um.set_active(s, user, bool(active), actor=me.actor)
            name = user.username
    except um.UserError as exc:
        return users_view(request, status=422, error=str(exc))
    return redirect("/users", request, Flash("ok", f"User {name} saved."))


@router.post("/users/{user_id}/token")
def create_token_page(
    request: Request, user_id: int, name: str = Form(""), me: Reviewer = Depends(page_writer)
) -> Response:
    require_admin(me)
    try:
        with db(request) as s:
            user = s.get(m.User, user_id)
            if user is None:
                return error_page(request, 404, "User not found", f"There is no user #{user_id}.")
            _, token = um.create_token(s, user, name, actor=me.actor)
    except um.UserError as exc:
        return users_view(request, status=422, error=str(exc))
    # Rendered, not redirected: the token is shown once and never travels in a cookie.
    return users_view(request, new_token=token)
