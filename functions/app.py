"""The Starlette application: routes, error pages that never leak, and (locally) the web UI."""

from __future__ import annotations

import logging
from pathlib import Path

import asyncpg
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from functions import (
    accounts_api,
    bounces_api,
    campaigns_api,
    openapi,
    send_message_api,
    senders_api,
    suppressions_api,
    unsubscribe_api,
    uploads_api,
)
from functions.errors import ApiError, error_response, input_error, language
from functions.security_headers import SecurityHeaders
from shared.errors import InputError
from shared.settings import get_settings

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


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(request, exc.status, exc.code, exc.field, exc.headers, **exc.params)


async def _input_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InputError)
    return input_error(request, exc)


async def _changed_meanwhile(request: Request, exc: Exception) -> Response:
    # Two requests of one user raced (a sender deleted while a draft named it): checked a moment
    # before, gone at the write. Nothing was stored; trying again gives the proper answer.
    return error_response(request, 409, "changed_meanwhile")


async def _database_away(request: Request, exc: Exception) -> Response:
    # Postgres restarting or failing over: the request did nothing, and a retry in a moment works.
    log.warning("database unavailable", extra={"path": request.url.path, "error": type(exc).__name__})
    what = "база данных недоступна" if language(request) == "ru" else "the database is unavailable"
    return error_response(request, 503, "unavailable", headers={"Retry-After": "2"}, what=what)


async def _server_error(request: Request, exc: Exception) -> Response:
    # The traceback goes to the log only: a page must never echo request data or secrets.
    log.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
    message = "Внутренняя ошибка сервера." if language(request) == "ru" else "Internal server error."
    return JSONResponse({"error": {"code": "internal", "message": message}}, status_code=500)


class PublishedFiles(StaticFiles):
    """web/ as the deployment publishes it (README: the `aws s3 sync` excludes): build tooling,
    npm manifests and node_modules stay private."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        if path.startswith("node_modules") or path.endswith((".json", ".mjs")):
            raise HTTPException(404)
        return await super().get_response(path, scope)


def create_app(serve_web: bool | None = None) -> Starlette:
    routes: list[BaseRoute] = [
        Route("/api/health", health, methods=["GET"]),
        Route("/v1/openapi.json", openapi.openapi, methods=["GET"]),
        Route("/api/send-message", send_message_api.send_message, methods=["POST"]),
        Route("/api/campaigns/{campaign_id}", send_message_api.campaign_status, methods=["GET"]),
        Route("/v1/auth/register", accounts_api.register, methods=["POST"]),
        Route("/v1/auth/login", accounts_api.login, methods=["POST"]),
        Route("/v1/auth/logout", accounts_api.logout, methods=["POST"]),
        Route("/v1/auth/password", accounts_api.change_password, methods=["POST"]),
        Route("/v1/me", accounts_api.me, methods=["GET"]),
        Route("/v1/api-keys", accounts_api.list_keys, methods=["GET"]),
        Route("/v1/api-keys", accounts_api.create_key, methods=["POST"]),
        Route("/v1/api-keys/{key_id}", accounts_api.revoke_key, methods=["DELETE"]),
        Route("/v1/presets", senders_api.presets, methods=["GET"]),
        Route("/v1/senders", senders_api.list_senders, methods=["GET"]),
        Route("/v1/senders", senders_api.create_sender, methods=["POST"]),
        Route("/v1/senders/{sender_id}", senders_api.get_sender, methods=["GET"]),
        Route("/v1/senders/{sender_id}", senders_api.update_sender, methods=["PATCH"]),
        Route("/v1/senders/{sender_id}", senders_api.delete_sender, methods=["DELETE"]),
        Route("/v1/senders/{sender_id}/verify", senders_api.verify_sender, methods=["POST"]),
        Route("/v1/senders/{sender_id}/imap", bounces_api.get_imap, methods=["GET"]),
        Route("/v1/senders/{sender_id}/imap", bounces_api.put_imap, methods=["PUT"]),
        Route("/v1/senders/{sender_id}/imap/verify", bounces_api.verify_imap, methods=["POST"]),
        Route("/v1/uploads", uploads_api.list_uploads, methods=["GET"]),
        Route("/v1/uploads", uploads_api.create_upload, methods=["POST"]),
        Route("/v1/uploads/{upload_id}", uploads_api.get_upload, methods=["GET"]),
        Route("/v1/uploads/{upload_id}", uploads_api.correct_upload, methods=["PATCH"]),
        Route("/v1/uploads/{upload_id}", uploads_api.delete_upload, methods=["DELETE"]),
        Route("/v1/uploads/{upload_id}/complete", uploads_api.complete_upload, methods=["POST"]),
        Route("/v1/uploads/{upload_id}/problems.csv", uploads_api.upload_problems, methods=["GET"]),
        Route("/v1/suppressions", suppressions_api.list_suppressions, methods=["GET"]),
        Route("/v1/suppressions", suppressions_api.add_suppressions, methods=["POST"]),
        Route("/v1/suppressions/import", suppressions_api.import_suppressions, methods=["POST"]),
        Route("/v1/suppressions/export", suppressions_api.export_suppressions, methods=["GET"]),
        Route("/v1/suppressions", suppressions_api.remove_suppression, methods=["DELETE"]),
        Route("/v1/suppressions/{email:path}", suppressions_api.remove_suppression, methods=["DELETE"]),
        Route("/v1/campaigns", campaigns_api.list_campaigns, methods=["GET"]),
        Route("/v1/campaigns", campaigns_api.create_campaign, methods=["POST"]),
        Route("/v1/campaigns/{campaign_id}", campaigns_api.get_campaign, methods=["GET"]),
        Route("/v1/campaigns/{campaign_id}", campaigns_api.update_campaign, methods=["PATCH"]),
        Route("/v1/campaigns/{campaign_id}", campaigns_api.delete_campaign, methods=["DELETE"]),
        Route("/v1/campaigns/{campaign_id}/preview", campaigns_api.preview_campaign, methods=["POST"]),
        Route("/v1/campaigns/{campaign_id}/test", campaigns_api.test_send, methods=["POST"]),
        Route("/v1/campaigns/{campaign_id}/start", campaigns_api.start_campaign, methods=["POST"]),
        Route("/v1/campaigns/{campaign_id}/schedule", campaigns_api.schedule_campaign, methods=["POST"]),
        Route("/v1/campaigns/{campaign_id}/schedule", campaigns_api.unschedule_campaign, methods=["DELETE"]),
        Route("/v1/campaigns/{campaign_id}/pause", campaigns_api.pause_campaign, methods=["POST"]),
        Route("/v1/campaigns/{campaign_id}/resume", campaigns_api.resume_campaign, methods=["POST"]),
        Route("/v1/campaigns/{campaign_id}/cancel", campaigns_api.cancel_campaign, methods=["POST"]),
        Route("/v1/campaigns/{campaign_id}/recipients", campaigns_api.list_recipients, methods=["GET"]),
        Route("/v1/campaigns/{campaign_id}/export.csv", campaigns_api.export_recipients, methods=["GET"]),
        Route("/u/{token}", unsubscribe_api.confirm_page, methods=["GET"]),
        Route("/u/{token}", unsubscribe_api.unsubscribe_now, methods=["POST"]),
    ]
    if serve_web is None:
        serve_web = get_settings().serve_web
    if serve_web and WEB_DIR.is_dir():
        routes.append(Mount("/", PublishedFiles(directory=WEB_DIR, html=True), name="web"))
    return Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={
            HTTPException: _http_error,
            ApiError: _api_error,
            InputError: _input_error,
            asyncpg.ForeignKeyViolationError: _changed_meanwhile,
            **{kind: _database_away for kind in (asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError,
                                                 asyncpg.InterfaceError, asyncpg.InternalClientError)},
            Exception: _server_error,
        },
    )


app = create_app()
