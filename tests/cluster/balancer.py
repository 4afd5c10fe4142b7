"""A round-robin HTTP balancer for the cluster tests: no session affinity, responses streamed as they come.

Each request goes to the next backend in turn, unless ``route`` (given the request) names one; ``served``
records which backend took each request, so a test can check that a session really rotated.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import aiohttp
from aiohttp import web

from tests.support import free_port

HOP_BY_HOP = frozenset({"host", "content-length", "transfer-encoding", "connection", "keep-alive"})


class Balancer:
    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self.route: Callable[[web.Request], int | None] = lambda request: None
        self.served: list[tuple[str, int]] = []
        self._turn = itertools.cycle(range(len(backends)))
        self._client: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, path: str = "/mcp") -> Balancer:
        self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}{path}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._client is not None:
            await self._client.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert self._client is not None
        chosen = self.route(request)
        index = next(self._turn) if chosen is None else chosen
        self.served.append((request.method, index))
        headers = {name: value for name, value in request.headers.items() if name.lower() not in HOP_BY_HOP}
        body = await request.read()
        target = self.backends[index] + request.path_qs
        async with self._client.request(request.method, target, headers=headers, data=body or None) as upstream:
            response = web.StreamResponse(
                status=upstream.status,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP},
            )
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
