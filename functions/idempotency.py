"""`Idempotency-Key`: the same key and body get the first answer again, without doing it twice."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from functions import resources
from functions.auth import Caller
from functions.errors import ApiError
from functions.parsing import read_body
from shared import idempotency as stored_answers

MAX_KEY = 200


async def idempotent(
    request: Request, who: Caller, operation: str, act: Callable[[], Awaitable[JSONResponse]]
) -> Response:
    key = request.headers.get("idempotency-key")
    if key is None:
        return await act()
    if not key.strip() or len(key) > MAX_KEY:
        raise ApiError(400, "idempotency_key_invalid", "Idempotency-Key", limit=MAX_KEY)
    # Bounded in size and time like every body (a start has none to speak of, yet 1 GB was read).
    request_hash = hashlib.sha256(request.url.path.encode() + b"\n" + await read_body(request)).digest()
    pool = await resources.db()
    async with pool.acquire() as conn:
        stored = await stored_answers.claim(conn, who.user_id, operation, key, request_hash)
    if stored is not None:
        if stored.request_hash != request_hash:
            raise ApiError(422, "idempotency_key_reused", "Idempotency-Key")
        if stored.status_code == stored_answers.IN_PROGRESS:
            raise ApiError(409, "idempotency_in_progress", "Idempotency-Key",
                           seconds=stored_answers.CLAIM_SECONDS)
        return JSONResponse(json.loads(stored.body), status_code=stored.status_code,
                            headers={"Idempotent-Replayed": "true"})
    try:
        response = await act()
    except BaseException:
        async with pool.acquire() as conn:
            await stored_answers.release(conn, who.user_id, operation, key)
        raise
    async with pool.acquire() as conn:
        if response.status_code < 500:
            answer = stored_answers.StoredAnswer(request_hash, response.status_code, bytes(response.body).decode())
            await stored_answers.remember(conn, who.user_id, operation, key, answer)
        else:
            await stored_answers.release(conn, who.user_id, operation, key)
    return response
