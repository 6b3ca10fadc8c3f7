"""Answers other than 2xx, worded for a person in the caller's language (texts: shared/errors.py)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from shared.errors import InputError, translate


class ApiError(Exception):
    """Raised by a handler; the app turns it into `{"error": {"code", "field", "message"}}`."""

    def __init__(self, status: int, code: str, field: str | None = None,
                 headers: dict[str, str] | None = None, **params: Any) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.field = field
        self.headers = headers
        self.params = params


def language(request: Request) -> str:
    """'ru' when the browser prefers Russian over English, else 'en'."""
    best, best_q = "en", -1.0
    for part in request.headers.get("accept-language", "").split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        base = tag.strip().lower()[:2]
        if base in ("ru", "en") and q > best_q:
            best, best_q = base, q
    return best


def error_response(request: Request, status: int, code: str, field: str | None = None,
                   headers: dict[str, str] | None = None, **params: Any) -> JSONResponse:
    message = translate(code, language(request), field=field, **params)
    return JSONResponse({"error": {"code": code, "field": field, "message": message}},
                        status_code=status, headers=headers)


def input_error(request: Request, exc: InputError, status: int = 400) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": exc.code, "field": exc.field, "message": exc.message(language(request))}},
        status_code=status,
    )
