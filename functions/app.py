"""The Starlette application: routes, error pages that never leak, and (locally) the web UI."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from functions import seed_api
from functions.http import language

log = logging.getLogger("sendpy.api")

WEB_DIR = Path(__file__).resolve().parent.parent / "web"


async def health(request: Request) -> Response:
    return JSONResponse({"ok": True})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    texts = {404: ("Not found.", "Не найдено."), 405: ("Method not allowed.", "Метод не поддерживается.")}
    en, ru = texts.get(exc.status_code, (str(exc.detail), str(exc.detail)))
    message = ru if language(request) == "ru" else en
    return JSONResponse({"error": {"code": "http_" + str(exc.status_code), "message": message}},
                        status_code=exc.status_code)


async def _server_error(request: Request, exc: Exception) -> Response:
    # The traceback goes to the log only: a page must never echo request data or secrets.
    log.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
    message = "Внутренняя ошибка сервера." if language(request) == "ru" else "Internal server error."
    return JSONResponse({"error": {"code": "internal", "message": message}}, status_code=500)


def create_app(serve_web: bool | None = None) -> Starlette:
    routes: list[BaseRoute] = [
        Route("/api/health", health, methods=["GET"]),
        Route("/api/send-message", seed_api.send_message, methods=["POST"]),
        Route("/api/campaigns/{campaign_id}", seed_api.campaign_status, methods=["GET"]),
    ]
    if serve_web is None:
        serve_web = os.environ.get("SENDPY_SERVE_WEB", "").lower() in ("1", "true", "yes")
    if serve_web and WEB_DIR.is_dir():
        routes.append(Mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web"))
    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )


app = create_app()
