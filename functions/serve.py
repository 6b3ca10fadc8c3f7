"""Serve the API with uvicorn outside AWS (the local stack, a self-hosted install).

In AWS, API Gateway reads whole requests before Lambda sees them. uvicorn alone waits for a
request's head and body as long as bytes keep trickling in, so a few hundred slow clients
("slowloris") would hold every connection the process can open. Here each request's head must
arrive within HEAD_SECONDS of the connection opening (or of the previous response, on a kept-alive
connection); bodies are bounded in functions/parsing.py.

    python -m functions.serve --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_SECONDS = 10.0


class HeadDeadlineProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, closing connections whose request head is too slow to arrive."""

    head_seconds = HEAD_SECONDS
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
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


def config(host: str, port: int, app: Any = "functions.app:app", **options: Any) -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, http=HeadDeadlineProtocol, access_log=False,
                          timeout_keep_alive=5, **options)


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the Sendpy API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvicorn.Server(config(args.host, args.port)).run()


if __name__ == "__main__":
    main()
