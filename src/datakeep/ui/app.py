"""The web view's application: the pages of :mod:`.pages` as HTML and as JSON under
``/api/``, downloads, static files, errors as pages, and the headers that keep a
browser from running anything a keep holds.

Everything it does is a read: the keep is opened read-only (:mod:`.readonly`), and the
only routes are GET (and HEAD).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._version import __version__
from ..errors import (
    DatakeepError,
    IntegrityError,
    InvalidDigest,
    InvalidInput,
    InvalidPath,
    NotFound,
)
from ..keep import Keep
from . import svg
from .display import FILTERS, with_param
from .download import download
from .pages import PAGES, Page, Served

__all__ = ["LOOPBACK_HOSTS", "create_app"]

_HERE = Path(__file__).parent
_log = logging.getLogger("datakeep.ui")
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]

# no script runs on any page (there is none), nothing is framed, and a kept file served
# by mistake with an active type still cannot run
_SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class _SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + _SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,  # every value is escaped unless it is Markup made by svg.py
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    env.globals.update(
        status_bar=svg.status_bar,
        stacked_columns=svg.stacked_columns,
        line_chart=svg.line_chart,
        graph=svg.graph,
        colours=svg.STATUS_COLOURS,
        version=__version__,
        with_param=with_param,
    )
    return Jinja2Templates(env=env)


def _status_of(exc: DatakeepError) -> int:
    """404 for what a URL names that is not there or cannot be named (a bad digest, a
    path with ``..``), 400 for other bad parameters, 500 for damage and failures."""
    if isinstance(exc, NotFound | InvalidPath | InvalidDigest):
        return 404
    if isinstance(exc, InvalidInput):
        return 400
    return 500


def create_app(
    keep: Keep, allowed_hosts: Sequence[str] | None = None, close_keep: bool = False
) -> Starlette:
    """The web view of ``keep`` (open it with :func:`~datakeep.ui.open_read_only`).

    ``allowed_hosts``: the Host headers answered (default: loopback names only, so a web
    page elsewhere cannot reach this server through DNS rebinding); ``["*"]`` for any.
    ``close_keep``: close the keep when the application shuts down.
    """
    templates = _templates()
    served = Served(keep)

    def html(page: Page) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            found = page.query(served, request)
            if page.template.endswith(".svg"):
                return templates.TemplateResponse(
                    request, page.template, found, media_type="image/svg+xml"
                )
            return templates.TemplateResponse(request, page.template, found)

        return endpoint

    def api(page: Page) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            return JSONResponse(page.query(served, request))

        return endpoint

    def error_page(request: Request, status: int, message: str, title: str = "") -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message, "status": status}, status_code=status)
        found = {"status": status, "message": message, "title": title}
        return templates.TemplateResponse(request, "error.html", found, status_code=status)

    def datakeep_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DatakeepError)
        status = _status_of(exc)
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        title = ""
        if isinstance(exc, IntegrityError):
            title = "Damaged content"
            message = f"damaged content: {message} (nothing of it was sent)"
        if status == 500:
            _log.warning("%s %s: %s", request.method, request.url.path, exc)
        return error_page(request, status, message, title)

    def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error_page(request, exc.status_code, str(exc.detail))

    routes: list[Any] = [Route("/", lambda request: RedirectResponse("/content"))]
    for page in PAGES:
        routes.append(Route(page.path, html(page)))
        routes.append(Route("/api" + page.path, api(page)))
    routes += [
        Route("/raw/{name}", lambda request: download(served, request)),
        Route("/raw/{name}/{path:path}", lambda request: download(served, request)),
        Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if close_keep:
            keep.close()

    hosts = list(allowed_hosts) if allowed_hosts is not None else LOOPBACK_HOSTS
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(_SecurityHeaders),
            Middleware(TrustedHostMiddleware, allowed_hosts=hosts),
        ],
        exception_handlers={DatakeepError: datakeep_error, HTTPException: http_error},
        lifespan=lifespan,
    )
    app.state.served = served
    return app
