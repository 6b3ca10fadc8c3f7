"""Serve the API with uvicorn outside AWS (the local stack, a self-hosted install).

In AWS, API Gateway reads whole requests before Lambda sees them. uvicorn alone waits for a
request's head and body as long as bytes keep trickling in, so a few hundred slow clients
("slowloris") would hold every connection the process can open. Here each request's head must
arrive within HEAD_SECONDS of the connection opening (or of the previous response, on a kept-alive
connection); bodies are bounded in functions/parsing.py; and one client address may hold at most
`api_connections_per_client` connections (measured: 19,900 connections trickling bodies from one
address made `/api/health` slow for everyone; a browser opens six).

    python -m functions.serve --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from shared.settings import load_settings

HEAD_SECONDS = 10.0


class HeadDeadlineProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, closing connections whose request head is too slow to arrive
    and those over the per-client cap."""

    head_seconds = HEAD_SECONDS
    _head_timer: asyncio.TimerHandle | None = None
    _client: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        if isinstance(self.config, GuardedConfig) and self.config.per_client and isinstance(peer, tuple):
            self._client = str(peer[0])
            self.config.open_by_client[self._client] += 1
            if self.config.open_by_client[self._client] > self.config.per_client:
                transport.close()  # before reading anything: the cheapest refusal there is
                return
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()  # the next request on this connection gets the same deadline

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a whole request head arrived
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._client is not None and isinstance(self.config, GuardedConfig):
            self.config.open_by_client[self._client] -= 1
            if self.config.open_by_client[self._client] <= 0:
                del self.config.open_by_client[self._client]
            self._client = None
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.head_seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _too_slow(self) -> None:
        self._head_timer = None
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()


class GuardedConfig(uvicorn.Config):
    """uvicorn's settings plus the per-client cap and the count of each client's open connections."""

    def __init__(self, app: Any, *, per_client: int, **options: Any) -> None:
        super().__init__(app, **options)
        self.per_client = per_client
        self.open_by_client: Counter[str] = Counter()


def config(host: str, port: int, app: Any = "functions.app:app", *, per_client: int | None = None,
           **options: Any) -> GuardedConfig:
    cap = load_settings().api_connections_per_client if per_client is None else per_client
    return GuardedConfig(app, per_client=cap, host=host, port=port, http=HeadDeadlineProtocol,
                         access_log=False, timeout_keep_alive=5, **options)


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the Sendpy API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvicorn.Server(config(args.host, args.port)).run()


if __name__ == "__main__":
    main()
