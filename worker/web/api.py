"""The JSON API, mirroring the UI: the queue, one draft, decisions on drafts and actions, stats and users.

Scripts authenticate with `Authorization: Bearer <token>` (`sellerdesk users token`); the UI's session
cookie works too, and then a state-changing call must send the `X-CSRF-Token` header. Errors answer
`{"detail": "..."}`: 401 unauthenticated, 403 not allowed (role, money cap), 404 not found or not
yours, 409 the draft or action is not in a state that allows it, 422 a bad field (named).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select

from worker import models as m
from worker import users as um
from worker.web import review
from worker.web.auth import api_admin, api_admin_reader, api_reader, api_writer, db, now_of, settings_of
from worker.web.queue import (
    ActionOut,
    DraftDetail,
    FacetValue,
    FilterError,
    Filters,
    QueueItem,
    action_out,
    draft_detail,
    facet_counts,
    list_queue,
)
from worker.web.review import Reviewer, ReviewError
from worker.web.stats import Stats, dashboard

router = APIRouter(prefix="/api")

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated: send Authorization: Bearer <token>"},
    403: {"description": "Not allowed for your role (or CSRF header missing with a cookie session)"},
    404: {"description": "Not found, or not in an account you may see"},
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    409: {"description": "Not possible in the current state (already approved, too late to undo...)"},
    422: {"description": "A field is missing or invalid; the message names it"},
}


class Me(BaseModel):
    user_id: int | None
    username: str
    role: str
    account_ids: list[int] | None
    money_cap: str | None


class DraftList(BaseModel):
    items: list[QueueItem]
    total: int
    limit: int
    offset: int
    counts: dict[str, list[FacetValue]]


class ApproveBody(BaseModel):
    edited_text: str | None = Field(
        default=None, description="The reply as edited; omit to send the draft as is"
    )
    send_now: bool = Field(default=False, description="Skip the undo window and send at once")


class ApproveResult(BaseModel):
    draft_id: int
    state: str
    outbox_id: int
    send_after: datetime


class RejectBody(BaseModel):
    reason: str = Field(min_length=1, max_length=review.MAX_REASON_CHARS)


class SnoozeBody(BaseModel):
    until: datetime | None = Field(default=None, description="Aware time to snooze until")
    minutes: int | None = Field(default=None, ge=1, le=int(review.MAX_SNOOZE.total_seconds() // 60))

    @model_validator(mode="after")
    def _one(self) -> SnoozeBody:
        if (self.until is None) == (self.minutes is None):
            raise ValueError("give exactly one of until and minutes")
        return self


class DraftState(BaseModel):
    draft_id: int
    state: str
    snoozed_until: datetime | None = None


class BulkBody(BaseModel):
    draft_ids: list[int] = Field(min_length=1, max_length=200)


class BulkResult(BaseModel):
    approved: list[int]
    skipped: dict[int, str]


class ActionApproveBody(BaseModel):
    confirm: bool = Field(default=False, description="Required for money actions (refund, resend, coupon)")
    override_reason: str | None = Field(
        default=None,
        max_length=review.MAX_REASON_CHARS,
        description="Required for a refund the policy forbids",
    )


class ActionRejectBody(BaseModel):
    reason: str = Field(default="", max_length=review.MAX_REASON_CHARS)


class UserOut(BaseModel):
    id: int
    username: str
    role: str
    active: bool
    account_ids: list[int]
    created_at: datetime


class UserCreate(BaseModel):
    username: str
    password: str
    role: str = "agent"
    account_ids: list[int] = Field(default_factory=list)


class UserUpdate(BaseModel):
    role: str | None = None
    account_ids: list[int] | None = None
    active: bool | None = None
    password: str | None = None


def _fail(exc: ReviewError | um.UserError) -> HTTPException:
    status = exc.status if isinstance(exc, ReviewError) else 422
    return HTTPException(status_code=status, detail=str(exc))


@router.get("/me", response_model=Me, responses=ERRORS, tags=["users"])
def me(reviewer: Reviewer = Depends(api_reader)) -> Me:
    """Who the token or session belongs to, the accounts they see (null: all) and their money cap."""
    return Me(
        user_id=reviewer.user_id,
        username=reviewer.username,
        role=reviewer.role,
        account_ids=sorted(reviewer.account_ids) if reviewer.account_ids is not None else None,
        money_cap=str(reviewer.money_cap) if reviewer.money_cap is not None else None,
    )


@router.get("/drafts", response_model=DraftList, responses=ERRORS, tags=["drafts"])
def list_drafts(
    request: Request,
    state: str = Query("pending", description="A draft state, or all"),
    account: str | None = Query(None, description="Account id"),
    marketplace: str | None = None,
    intent: str | None = None,
    scenario: str | None = None,
    language: str | None = None,
    auto: str | None = Query(None, description="auto or manual"),
    limit: int = Query(50, ge=1, le=200),
    offset: int = Query(0, ge=0),
    reviewer: Reviewer = Depends(api_reader),
) -> DraftList:
    """The queue, most urgent first (open dispute deadline, then age), with counts per filter value."""
    try:
        filters = Filters.parse(
            {
                "state": state,
                "account": account,
                "marketplace": marketplace,
                "intent": intent,
                "scenario": scenario,
                "language": language,
                "auto": auto,
            }
        )
    except FilterError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    with db(request) as s:
        page = list_queue(s, filters, reviewer.account_ids, limit=limit, offset=offset)
        counts = facet_counts(s, filters, reviewer.account_ids)
    return DraftList(items=page.items, total=page.total, limit=page.limit, offset=page.offset, counts=counts)


@router.get("/drafts/{draft_id}", response_model=DraftDetail, responses=ERRORS, tags=["drafts"])
def get_draft(request: Request, draft_id: int, reviewer: Reviewer = Depends(api_reader)) -> DraftDetail:
    """One draft with its decision, buyer message, conversation, order, tracking, actions and audit trail."""
    with db(request) as s:
        detail = draft_detail(s, draft_id, reviewer.account_ids)
    if detail is None:
        raise HTTPException(status_code=404, detail=f"draft {draft_id} not found")
    return detail


@router.post(
    "/drafts/{draft_id}/approve", response_model=ApproveResult, responses=WRITE_ERRORS, tags=["drafts"]
)
def approve_draft(
    request: Request, draft_id: int, body: ApproveBody | None = None, reviewer: Reviewer = Depends(api_writer)
) -> ApproveResult:
    """Approve a draft (optionally edited). It is sent after the undo window, or at once with send_now.
    Money actions of the draft must be approved or rejected first."""
    body = body or ApproveBody()
    try:
        with db(request) as s:
            out = review.approve(
                s,
                reviewer,
                draft_id,
                now=now_of(request),
                undo_window=timedelta(seconds=settings_of(request).undo_window_seconds),
                edited_text=body.edited_text,
                send_now=body.send_now,
            )
            return ApproveResult(
                draft_id=draft_id, state=m.DraftState.approved, outbox_id=out.id, send_after=out.not_before
            )
    except ReviewError as exc:
        raise _fail(exc) from None


@router.post("/drafts/bulk-approve", response_model=BulkResult, responses=WRITE_ERRORS, tags=["drafts"])
def bulk_approve(request: Request, body: BulkBody, reviewer: Reviewer = Depends(api_writer)) -> BulkResult:
    """Approve several drafts as they stand; those that cannot be approved are listed with the reason."""
    with db(request) as s:
        result = review.bulk_approve(
            s,
            reviewer,
            body.draft_ids,
            now=now_of(request),
            undo_window=timedelta(seconds=settings_of(request).undo_window_seconds),
        )
    return BulkResult(approved=result.approved, skipped=result.skipped)


@router.post("/drafts/{draft_id}/reject", response_model=DraftState, responses=WRITE_ERRORS, tags=["drafts"])
def reject_draft(
    request: Request, draft_id: int, body: RejectBody, reviewer: Reviewer = Depends(api_writer)
) -> DraftState:
    """Reject a draft with a reason; its proposed actions are rejected with it."""
    try:
        with db(request) as s:
            draft = review.reject(s, reviewer, draft_id, reason=body.reason, now=now_of(request))
            return DraftState(draft_id=draft.id, state=draft.state)
    except ReviewError as exc:
        raise _fail(exc) from None


@router.post("/drafts/{draft_id}/snooze", response_model=DraftState, responses=WRITE_ERRORS, tags=["drafts"])
def snooze_draft(
    request: Request, draft_id: int, body: SnoozeBody, reviewer: Reviewer = Depends(api_writer)
) -> DraftState:
    """Hide a draft from the queue until a time (or for some minutes)."""
    now = now_of(request)
    until = body.until if body.until is not None else now + timedelta(minutes=body.minutes or 0)
    try:
        with db(request) as s:
            draft = review.snooze(s, reviewer, draft_id, until=until, now=now)
            return DraftState(draft_id=draft.id, state=draft.state, snoozed_until=draft.snoozed_until)
    except ReviewError as exc:
        raise _fail(exc) from None


@router.post("/drafts/{draft_id}/undo", response_model=DraftState, responses=WRITE_ERRORS, tags=["drafts"])
def undo_draft(request: Request, draft_id: int, reviewer: Reviewer = Depends(api_writer)) -> DraftState:
    """Cancel an approved reply still waiting in the outbox; the draft is pending again."""
    try:
        with db(request) as s:
            draft = review.undo(s, reviewer, draft_id, now=now_of(request))
            return DraftState(draft_id=draft.id, state=draft.state)
    except ReviewError as exc:
        raise _fail(exc) from None


def _action_view(s: Any, action: m.ProposedAction) -> ActionOut:
    return action_out(action, s.get(m.Order, action.order_id), s.get(m.Decision, action.decision_id))


@router.post(
    "/actions/{action_id}/approve", response_model=ActionOut, responses=WRITE_ERRORS, tags=["actions"]
)
def approve_action(
    request: Request,
    action_id: int,
    body: ActionApproveBody | None = None,
    reviewer: Reviewer = Depends(api_writer),
) -> ActionOut:
    """Approve an action. Money (refund, resend, coupon) needs confirm=true and a role whose cap covers it
    (403 otherwise); a refund the policy does not allow needs an override_reason, which is audited."""
    body = body or ActionApproveBody()
    try:
        with db(request) as s:
            action = review.approve_action(
                s,
                reviewer,
                action_id,
                now=now_of(request),
                confirm=body.confirm,
                override_reason=body.override_reason,
            )
            return _action_view(s, action)
    except ReviewError as exc:
        raise _fail(exc) from None


@router.post(
    "/actions/{action_id}/reject", response_model=ActionOut, responses=WRITE_ERRORS, tags=["actions"]
)
def reject_action(
    request: Request,
    action_id: int,
    body: ActionRejectBody | None = None,
    reviewer: Reviewer = Depends(api_writer),
) -> ActionOut:
    """Reject a proposed action."""
    body = body or ActionRejectBody()
    try:
        with db(request) as s:
            review.reject_action(s, reviewer, action_id, now=now_of(request), reason=body.reason)
            return _action_view(s, s.get(m.ProposedAction, action_id, populate_existing=True))
    except ReviewError as exc:
        raise _fail(exc) from None


@router.get("/stats", response_model=Stats, responses=ERRORS, tags=["stats"])
def stats(
    request: Request, days: int = Query(30, ge=1, le=365), reviewer: Reviewer = Depends(api_reader)
) -> Stats:
    """Dashboard figures over the last `days` days, for the accounts you see."""
    with db(request) as s:
        return dashboard(s, reviewer.account_ids, now=now_of(request), days=days)


def _user_out(user: m.User) -> UserOut:
    return UserOut(
        id=user.id,
        username=user.username,
        role=user.role,
        active=user.active,
        account_ids=[a.id for a in user.accounts],
        created_at=user.created_at,
    )


@router.get("/users", response_model=list[UserOut], responses=ERRORS, tags=["users"])
def list_users(request: Request, reviewer: Reviewer = Depends(api_admin_reader)) -> list[UserOut]:
    """Every user (admins only)."""
    with db(request) as s:
        return [_user_out(u) for u in s.scalars(select(m.User).order_by(m.User.username))]


@router.post("/users", response_model=UserOut, status_code=201, responses=WRITE_ERRORS, tags=["users"])
def create_user(request: Request, body: UserCreate, reviewer: Reviewer = Depends(api_admin)) -> UserOut:
    """Add a user (admins only)."""
    try:
        with db(request) as s:
            user = um.create_user(
                s, body.username, body.password, body.role, body.account_ids, actor=reviewer.actor
            )
            return _user_out(user)
    except um.UserError as exc:
        raise _fail(exc) from None


@router.patch("/users/{user_id}", response_model=UserOut, responses=WRITE_ERRORS, tags=["users"])
def update_user(
    request: Request, user_id: int, body: UserUpdate, reviewer: Reviewer = Depends(api_admin)
) -> UserOut:
    """Change a user's role, accounts, active flag or password (admins only)."""
    try:
        with db(request) as s:
            user = s.get(m.User, user_id)
            if user is None:
                raise HTTPException(status_code=404, detail=f"user {user_id} not found")
            if user.id == reviewer.user_id and (
                (body.role is not None and body.role != m.Role.admin) or body.active is False
            ):
                raise um.UserError("role: you cannot demote or disable yourself (ask another admin)")
            if body.role is not None:
                um.set_role(s, user, body.role, actor=reviewer.actor)
            if body.account_ids is not None:
                um.set_accounts(s, user, body.account_ids, actor=reviewer.actor)
            if body.active is not None:
                um.set_active(s, user, body.active, actor=reviewer.actor)
            if body.password is not None:
                um.set_password(s, user, body.password, actor=reviewer.actor)
            return _user_out(user)
    except um.UserError as exc:
        raise _fail(exc) from None
