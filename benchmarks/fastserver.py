"""The benchmark's MCP server: an echo tool, written for speed with orjson and no SDK.

It speaks MCP for real, in both protocol eras: ``initialize`` (the client's
``protocolVersion`` is echoed when supported), ``notifications/initialized``,
``tools/list`` (one tool, ``echo``), ``tools/call`` of ``echo``, ``ping``, and
``server/discover`` for 2026-07-28 (a request that names that version in its
``_meta`` gets a 2026-07-28 result: ``resultType`` and the cache hints).

Three front ends share :func:`handle`:

* ``stdio``: newline-delimited JSON; reads whatever is available and answers a
  whole chunk with one write, so a pipelining client is answered in batches.
* ``http``: a minimal aiohttp Streamable HTTP endpoint, ``POST /mcp`` answering
  ``application/json``, issuing an ``Mcp-Session-Id`` on ``initialize``.
* ``raw-http``: the same endpoint on a bare asyncio protocol; the harness uses
  it to show the load client's own ceiling.

Run it as a script (``python benchmarks/fastserver.py stdio``) so that a proxy
can spawn it from any working directory; it imports nothing from this repository.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from typing import Any, cast

import orjson

HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
MODERN_VERSION = "2026-07-28"
VERSION_META = "io.modelcontextprotocol/protocolVersion"
SERVER_INFO = {"name": "shadowproxy-bench-echo", "version": "1.0.0"}
ECHO_TOOL = {
    "name": "echo",
    "description": "Echo the given text.",
    "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
}
CAPABILITIES = {"tools": {"listChanged": False}}

METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
PARSE_ERROR = -32700
INVALID_REQUEST = -32600


class RpcError(Exception):
    """A JSON-RPC error to send back to the request's sender."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _modern(params: dict[str, Any]) -> bool:
    meta = params.get("_meta")
    return isinstance(meta, dict) and meta.get(VERSION_META) == MODERN_VERSION


def _result(method: str, params: dict[str, Any]) -> dict[str, Any]:
    if method == "tools/call":
        if params.get("name") != "echo":
            raise RpcError(INVALID_PARAMS, f"unknown tool: {params.get('name')!r}")
        text = (params.get("arguments") or {}).get("text")
        if not isinstance(text, str):
            raise RpcError(INVALID_PARAMS, 'the echo tool needs a string argument "text"')
        result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": False}
    elif method == "tools/list":
        result = {"tools": [ECHO_TOOL]}
    elif method == "ping":
        result = {}
    elif method == "initialize":
        asked = params.get("protocolVersion")
        version = asked if asked in HANDSHAKE_VERSIONS else HANDSHAKE_VERSIONS[-1]
        return {"protocolVersion": version, "capabilities": CAPABILITIES, "serverInfo": SERVER_INFO}
    elif method == "server/discover":
        return {
            "supportedVersions": [MODERN_VERSION],
            "capabilities": CAPABILITIES,
            "cacheScope": "public",
            "ttlMs": 0,
            "resultType": "complete",
            "_meta": {"io.modelcontextprotocol/serverInfo": SERVER_INFO},
        }
    else:
        raise RpcError(METHOD_NOT_FOUND, f"method not found: {method}")
    if _modern(params):
        result["resultType"] = "complete"
        if method == "tools/list":
            result["cacheScope"] = "public"
            result["ttlMs"] = 0
    return result


def handle(line: bytes) -> bytes | None:
    """Answer one JSON-RPC message (without its newline); ``None`` for a notification or a response."""
    return answer(line)[1]


def answer(line: bytes) -> tuple[str | None, bytes | None]:
    """The method of one message and the reply to it (``None`` when it needs none)."""
    try:
        message = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return None, _error(None, PARSE_ERROR, f"parse error: {exc}")
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return None, _error(None, INVALID_REQUEST, "not a JSON-RPC 2.0 message")
    method = message.get("method")
    if "id" not in message or not isinstance(method, str):
        return None, None
    request_id = message["id"]
    params = message.get("params") or {}
    try:
        result = _result(method, params)
    except RpcError as exc:
        return method, _error(request_id, exc.code, exc.message)
    return method, orjson.dumps({"jsonrpc": "2.0", "id": request_id, "result": result})


def _error(request_id: Any, code: int, message: str) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}})


def serve_stdio() -> None:
    """Answer newline-delimited JSON on stdin/stdout until stdin closes."""
    pending = b""
    while chunk := os.read(0, 1 << 16):
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        replies = [reply for line in lines if line.strip() and (reply := handle(line)) is not None]
        if replies:
            replies.append(b"")
            out = memoryview(b"\n".join(replies))
            while out:
                out = out[os.write(1, out) :]


async def serve_aiohttp(host: str, port: int) -> None:
    """The minimal aiohttp Streamable HTTP endpoint: ``POST /mcp``, JSON answers, sessions on initialize."""
    from aiohttp import web

    sessions: set[str] = set()

    async def post(request: web.Request) -> web.StreamResponse:
        session = request.headers.get("Mcp-Session-Id")
        if session is not None and session not in sessions:
            return web.Response(status=404, text="unknown session")
        method, reply = answer(await request.read())
        if reply is None:
            return web.Response(status=202)
        headers = {"Content-Type": "application/json"}
        if method == "initialize" and session is None:
            session = uuid.uuid4().hex
            sessions.add(session)
            headers["Mcp-Session-Id"] = session
        return web.Response(body=reply, headers=headers)

    async def delete(request: web.Request) -> web.StreamResponse:
        sessions.discard(request.headers.get("Mcp-Session-Id", ""))
        return web.Response(status=204)

    async def no_stream(request: web.Request) -> web.StreamResponse:
        return web.Response(status=405, headers={"Allow": "POST, DELETE"})

    app = web.Application()
    app.router.add_post("/mcp", post)
    app.router.add_delete("/mcp", delete)
    app.router.add_get("/mcp", no_stream)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    await asyncio.Event().wait()


class RawHttpProtocol(asyncio.Protocol):
    """``POST /mcp`` with keep-alive on a bare protocol: HTTP answers at almost no server cost."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        out = []
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            length = _content_length(self.buffer[:end])
            if len(self.buffer) < end + 4 + length:
                break
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            method, reply = answer(body) if body else (None, None)
            if reply is None:
                out.append(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
                continue
            session = b"Mcp-Session-Id: %s\r\n" % uuid.uuid4().hex.encode() if method == "initialize" else b""
            out.append(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s"
                % (session, len(reply), reply)
            )
        if out and self.transport is not None:
            self.transport.write(b"".join(out))


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


async def serve_raw_http(host: str, port: int) -> None:
    server = await asyncio.get_running_loop().create_server(RawHttpProtocol, host, port)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["stdio", "http", "raw-http"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args(argv)
    if args.mode == "stdio":
        serve_stdio()
        return
    serve = serve_aiohttp if args.mode == "http" else serve_raw_http
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.host, args.port))
    else:
        uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    sys.exit(main())
