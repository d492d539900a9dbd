"""The web application: pages, JSON API, static files, `/healthz`, and the security headers on every answer."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker.db import get_engine, utcnow
from worker.settings import Settings, get_settings
from worker.web import api, pages
from worker.web.auth import CsrfRejected, LoginRequired, SessionCodec
from worker.web.templating import STATIC_DIR, make_templates

# Pages load scripts and styles from /static only; nothing may frame them.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
# FastAPI's Swagger UI page loads its script and style from a CDN and starts with an inline script.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "frame-ancestors 'none'"
)


class SecurityHeaders:
    """Adds CSP, nosniff, referrer and framing headers to every HTTP answer (pure ASGI, no buffering)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = DOCS_CSP if scope["path"] == "/api/docs" else PAGE_CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", csp)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "same-origin")
                if scope["path"] not in ("/healthz", "/metrics") and not scope["path"].startswith("/static/"):
                    # Pages and API answers hold buyer data: never kept by shared caches or the back button.
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/healthz"


def create_app(settings: Settings | None = None) -> FastAPI:
    """The FastAPI application on `settings` (default: the process-wide settings)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="Sellerdesk approval queue",
        summary="Review, edit and approve reply drafts and the money actions they propose.",
        version="1",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
        swagger_ui_oauth2_redirect_url="/api/docs/oauth2-redirect",
    )
    app.state.settings = settings
    app.state.engine = get_engine(settings.database_url)
    app.state.clock = utcnow
    app.state.session_codec = SessionCodec(settings.secret_key.get_secret_value())
    app.state.templates = make_templates(settings)
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(api.router)
    app.include_router(pages.router)

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    def metrics(request: Request) -> Response:
        """Prometheus metrics without login: counts and states only, never buyer data."""
        from worker.metrics import render_metrics

        return Response(render_metrics(request.app.state.engine), media_type="text/plain; version=0.0.4")

    @app.get("/healthz", tags=["health"])
    def healthz(request: Request) -> JSONResponse:
        """Liveness without login: answers 200 when the database answers, 503 when it does not."""
        try:
            with request.app.state.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:  # any database failure means "not healthy", reported as such
            return JSONResponse(
                {"status": "error", "database": False, "error": type(exc).__name__}, status_code=503
            )
        return JSONResponse({"status": "ok", "database": True})

    @app.exception_handler(LoginRequired)
    def _login_required(request: Request, exc: LoginRequired) -> Response:
        if request.method == "GET":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        headers = {"HX-Redirect": "/login"} if request.headers.get("HX-Request") else None
        return HTMLResponse(
            "Your session has ended: <a href='/login'>log in again</a>.", status_code=401, headers=headers
        )

    @app.exception_handler(CsrfRejected)
    def _csrf_rejected(request: Request, exc: CsrfRejected) -> Response:
        return pages.error_page(
            request,
            403,
            "Request refused",
            "The form's security token is missing or out of date. Reload the page and try again.",
        )

    @app.exception_handler(StarletteHTTPException)
    def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        titles = {403: "Not allowed", 404: "Not found", 405: "Not allowed"}
        detail = exc.detail if isinstance(exc.detail, str) else "Something went wrong."
        return pages.error_page(request, exc.status_code, titles.get(exc.status_code, "Error"), detail)

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = [_describe(error) for error in exc.errors()]
        if _wants_json(request):
            return JSONResponse(
                {"detail": "; ".join(problems), "errors": jsonable(exc.errors())}, status_code=422
            )
        return pages.error_page(request, 422, "Invalid request", "; ".join(problems))

    return app


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(
        str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path", "form")
    )
    return f"{where or 'request'}: {error.get('msg', 'invalid')}"


def jsonable(errors: Any) -> Any:
    """Validation errors without their (possibly non-JSON) context objects."""
    return [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in errors]
