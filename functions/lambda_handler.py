"""AWS Lambda entry point: API Gateway HTTP API ($default stage) → Mangum → Starlette."""

from __future__ import annotations

from mangum import Mangum

from functions.app import create_app

# lifespan="off": Mangum would otherwise open and close clients around every invocation.
handler = Mangum(create_app(serve_web=False), lifespan="off")
