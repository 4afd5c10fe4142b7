"""The mock server's transports: stdio (one client on stdin and stdout) and Streamable HTTP (``--port``)."""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import Awaitable, Callable
from typing import BinaryIO

from aiohttp import web

from shadowproxy.core import sse
from shadowproxy.core.errors import JsonRpcError
from shadowproxy.core.jsonrpc import Message, decode, error_response
from shadowproxy.core.protocol import SESSION_HEADER
from shadowproxy.tapes.mock import Mock

LINE_LIMIT = 16 * 1024 * 1024


async def serve_stdio(mock: Mock, reader: asyncio.StreamReader | None = None, out: BinaryIO | None = None) -> None:
    """Answer one client on stdin and stdout until stdin closes."""
    if reader is None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=LINE_LIMIT)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = out if out is not None else sys.stdout.buffer
    while line := await reader.readline():
        if not line.strip():
            continue
        for message in _answers(mock, line):
            out.write(message.to_bytes() + b"\n")
        out.flush()


def _answers(mock: Mock, raw: bytes) -> list[Message]:
    try:
        decoded = decode(raw)
    except JsonRpcError as exc:
        return [error_response(None, exc)]
    if isinstance(decoded, list):
        return [error_response(None, JsonRpcError(-32600, "batches are not served from a tape"))]
    return mock.answer(decoded)


def http_app(mock: Mock, path: str = "/mcp") -> web.Application:
    """A Streamable HTTP endpoint at ``path``: a JSON answer, or an SSE stream when messages come before it."""

    async def post(request: web.Request) -> web.StreamResponse:
        try:
            message = decode(await request.read())
        except JsonRpcError as exc:
            return web.json_response(error_response(None, exc).data, status=400)
        if isinstance(message, list):
            return web.json_response({"error": "batches are not served from a tape"}, status=400)
        answers = mock.answer(message)
        if not answers:
            return web.Response(status=202)
        headers = {}
        if message.method == "initialize":
            headers[SESSION_HEADER] = secrets.token_urlsafe(16)
        if len(answers) == 1:
            return web.Response(body=answers[0].to_bytes(), content_type="application/json", headers=headers)
        response = web.StreamResponse(headers={**headers, "Content-Type": "text/event-stream"})
        await response.prepare(request)
        for answer in answers:
            await response.write(sse.encode(answer.to_bytes()))
        await response.write_eof()
        return response

    async def other(request: web.Request) -> web.Response:
        if request.method == "DELETE":
            return web.Response(status=200)
        return web.Response(status=405, headers={"Allow": "POST, DELETE"})

    app = web.Application()
    app.router.add_post(path, post)
    app.router.add_route("*", path, other)
    return app


async def serve_http(mock: Mock, host: str, port: int, path: str, ready: Callable[[str], Awaitable[None]]) -> None:
    """Serve until cancelled; ``ready`` gets the URL once it listens."""
    runner = web.AppRunner(http_app(mock, path), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    await ready(f"http://{host}:{bound}{path}")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
