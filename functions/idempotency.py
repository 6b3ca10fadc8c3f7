"""`Idempotency-Key`: the same key and body get the first answer again, without doing it twice."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from functions import resources
from functions.http import ApiError, Caller

MAX_KEY = 200


async def idempotent(
    request: Request, who: Caller, operation: str, act: Callable[[], Awaitable[JSONResponse]]
) -> Response:
    key = request.headers.get("idempotency-key")
    if key is None:
        return await act()
    if not key.strip() or len(key) > MAX_KEY:
        raise ApiError(400, "idempotency_key_invalid", "Idempotency-Key", limit=MAX_KEY)
    request_hash = hashlib.sha256(request.url.path.encode() + b"\n" + await request.body()).digest()
    pool = await resources.db()
    async with pool.acquire() as conn, conn.transaction():
        # Serialise concurrent retries of one key; the loser then finds the stored answer.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"{who.user_id}:{operation}:{key}")
        stored = await conn.fetchrow(
            "SELECT request_hash, status_code, response FROM idempotency_keys"
            " WHERE user_id = $1 AND operation = $2 AND key = $3",
            who.user_id, operation, key,
        )
        if stored is not None:
            if bytes(stored["request_hash"]) != request_hash:
                raise ApiError(422, "idempotency_key_reused", "Idempotency-Key")
            return JSONResponse(json.loads(stored["response"]), status_code=stored["status_code"],
                                headers={"Idempotent-Replayed": "true"})
        response = await act()
        if response.status_code < 500:
            await conn.execute(
                "INSERT INTO idempotency_keys (user_id, key, operation, request_hash, status_code, response)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                who.user_id, key, operation, request_hash, response.status_code, bytes(response.body).decode(),
            )
        return response
