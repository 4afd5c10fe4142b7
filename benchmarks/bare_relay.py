"""The proxy-shaped ceiling: relays that do nothing a proxy must do, for the e2e table's ``bare relay`` rows.

``python benchmarks/bare_relay.py stdio -- CMD...`` copies bytes from its stdin
to CMD's stdin and back, undecoded. ``python benchmarks/bare_relay.py http
--port P -- CMD...`` is an aiohttp endpoint in front of one CMD child: it
decodes each POST, rewrites its id onto the child's, and answers with the
child's reply as JSON; no sessions, chain, limits, metrics or logs. ``python
benchmarks/bare_relay.py http-http --port P --upstream URL`` is an aiohttp
endpoint that forwards each POST's bytes and MCP headers to URL over
ShadowProxy's own keep-alive client and answers with the reply's bytes. Whatever
these lose against the direct rows is the price of the extra hop itself, in
Python, on this machine; what ShadowProxy loses beyond them is its own.
A standalone script, like the fast server, so that it runs from any directory.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
from typing import Any

import orjson
import uvloop
from aiohttp import web


class ChildOutput(asyncio.SubprocessProtocol):
    def __init__(self, on_data: Any, exited: asyncio.Future[None]) -> None:
        self.on_data = on_data
        self.exited = exited

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 1:
            self.on_data(data)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


async def spawn(command: list[str], on_data: Any) -> tuple[asyncio.WriteTransport, asyncio.Future[None]]:
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()
    transport, _ = await loop.subprocess_exec(
        lambda: ChildOutput(on_data, exited), *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    stdin = transport.get_pipe_transport(0)
    assert stdin is not None
    return stdin, exited  # type: ignore[return-value]


async def stdio(command: list[str]) -> None:
    loop = asyncio.get_running_loop()
    out, _ = await loop.connect_write_pipe(asyncio.Protocol, sys.stdout)
    child, exited = await spawn(command, out.write)

    class FromClient(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            child.write(data)

        def eof_received(self) -> bool:
            child.close()
            return False

    await loop.connect_read_pipe(FromClient, sys.stdin)
    await exited


async def http(port: int, command: list[str]) -> None:
    loop = asyncio.get_running_loop()
    waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
    buffer = bytearray()

    def on_data(data: bytes) -> None:
        buffer.extend(data)
        while (end := buffer.find(b"\n")) >= 0:
            reply = orjson.loads(bytes(buffer[:end]))
            del buffer[: end + 1]
            future = waiting.pop(reply.get("id"), None)
            if future is not None and not future.done():
                future.set_result(reply)

    child, exited = await spawn(command, on_data)
    ids, sessions = itertools.count(1), itertools.count(1)

    async def handle(request: web.Request) -> web.Response:
        message = orjson.loads(await request.read())
        if "id" not in message:
            child.write(orjson.dumps(message) + b"\n")
            return web.Response(status=202)
        original, message["id"] = message["id"], next(ids)
        waiting[message["id"]] = future = loop.create_future()
        child.write(orjson.dumps(message) + b"\n")
        reply = await future
        reply["id"] = original
        headers = {"Mcp-Session-Id": str(next(sessions))} if message.get("method") == "initialize" else None
        return web.Response(body=orjson.dumps(reply), content_type="application/json", headers=headers)

    app = web.Application()
    app.router.add_post("/mcp", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await exited


async def http_http(port: int, upstream: str) -> None:
    from shadowproxy.upstreams.http_client import HttpClient

    client = HttpClient(upstream)
    passed = ("Content-Type", "Accept", "Mcp-Session-Id", "MCP-Protocol-Version")

    async def handle(request: web.Request) -> web.Response:
        headers = {name: request.headers[name] for name in passed if name in request.headers}
        answer = await client.request("POST", headers, await request.read())
        body = await answer.read()
        answer.release()
        session = answer.header("mcp-session-id")
        return web.Response(
            body=body,
            status=answer.status,
            headers={"Content-Type": answer.header("content-type"), **({"Mcp-Session-Id": session} if session else {})},
        )

    app = web.Application()
    app.router.add_post("/mcp", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


def main() -> None:
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    usage = "%(prog)s {stdio,http} [--port P] -- CMD... | %(prog)s http-http --port P --upstream URL"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], usage=usage)
    parser.add_argument("mode", choices=("stdio", "http", "http-http"))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--upstream", help="http-http: the upstream's URL")
    args = parser.parse_args(argv[:split])
    if args.mode == "http-http":
        if not args.upstream:
            parser.error("http-http needs --upstream URL")
        uvloop.run(http_http(args.port, args.upstream))
        return
    command = argv[split + 1 :]
    if not command:
        parser.error("the server command goes after --")
    uvloop.run(stdio(command) if args.mode == "stdio" else http(args.port, command))


if __name__ == "__main__":
    main()
