"""A stand-in for the bank's ACD: an aiohttp server on loopback that queues handoffs."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web


class FakeAcd:
    """POST /handoffs queues a call (201 + ticket id). ``fail_first`` answers 503 first;
    ``status`` forces an answer; ``delay_s`` makes it slow."""

    def __init__(self, fail_first: int = 0, status: int | None = None,
                 delay_s: float = 0.0) -> None:
        self.fail_first = fail_first
        self.status = status
        self.delay_s = delay_s
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handoff(self, request: web.Request) -> web.Response:
        self.headers.append(dict(request.headers))
        body = await request.json()
        self.requests.append(body)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if len(self.requests) <= self.fail_first:
            return web.json_response({"error": "busy"}, status=503)
        if self.status:
            return web.json_response({"error": "refused"}, status=self.status)
        return web.json_response({"id": f"T{len(self.requests):04d}"}, status=201)

    async def __aenter__(self) -> FakeAcd:
        app = web.Application()
        app.router.add_post("/handoffs", self._handoff)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/handoffs"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner
        await self._runner.cleanup()
