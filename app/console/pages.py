"""The console's few routes, the offline `/docs`, and the headers every such page carries."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.settings import Settings

HERE = Path(__file__).parent
STATIC = HERE / "static"
DOCS_ASSETS = HERE / "docs"

# No inline script or style anywhere, no other host, never framed. Swagger UI's stylesheet
# draws a few icons as data: images; `img-src` lets those (and only images) through.
CONSOLE_CSP = "default-src 'self'; frame-ancestors 'none'"
DOCS_CSP = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"

# The fastest the page polls, and the slowest: never faster than FinSync's data expires.
MIN_REFRESH_SECONDS = 2.0
MAX_REFRESH_SECONDS = 15.0


def page_headers(csp: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": csp,
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        # A new tesoro's page is picked up at once; the assets revalidate by ETag.
        "Cache-Control": "no-cache",
    }


class WithHeaders:
    """Adds `headers` to every answer of the wrapped app (a static-files mount)."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in self.headers}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": kept + self.headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


_templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def page_config(settings: Settings) -> dict[str, Any]:
    """What the page needs to know about this tesoro and cannot ask the API: whether to ask
    for a key, and how often to look again. Never a key, a hash or a scope list."""
    refresh = min(max(settings.finsync_ttl_seconds, MIN_REFRESH_SECONDS), MAX_REFRESH_SECONDS)
    return {
        "auth_required": settings.auth_required,
        "sandbox": settings.sandbox,
        "version": version("tesoro"),
        "refresh_seconds": refresh,
    }


def install_console(app: FastAPI, settings: Settings) -> None:
    """`/` leads to `/console/`, served from this package; nothing at all when it is off."""
    if not settings.console_enabled:
        return
    headers = page_headers(CONSOLE_CSP)
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def home() -> Response:
        # Relative, so it works behind any prefix and is never built from `Host`.
        return RedirectResponse("console/", status_code=302)

    @router.get("/console")
    async def console_no_slash() -> Response:
        return RedirectResponse("console/", status_code=302)

    @router.get("/console/")
    async def console_page() -> Response:
        html = _templates.get_template("console.html").render(version=version("tesoro"))
        return HTMLResponse(html, headers=headers)

    @router.get("/console/config.json")
    async def console_config() -> Response:
        return JSONResponse(page_config(settings), headers=headers)

    app.include_router(router)
    app.mount(
        "/console/static",
        WithHeaders(StaticFiles(directory=STATIC), headers),
        name="console-static",
    )


def install_docs(app: FastAPI) -> None:
    """`/docs`: Swagger UI from the vendored swagger-ui-dist, its start-up in a file of ours
    (the CSP forbids inline script). `/redoc` is not served: Redoc's bundle injects inline
    styles and workers the CSP forbids, and /docs already covers the reference."""
    headers = page_headers(DOCS_CSP)

    @app.get("/docs", include_in_schema=False)
    async def docs_page() -> Response:
        html = _templates.get_template("docs.html").render(title=f"{app.title} — API")
        return HTMLResponse(html, headers=headers)

    app.mount("/docs/assets", WithHeaders(StaticFiles(directory=DOCS_ASSETS), headers), name="docs")
