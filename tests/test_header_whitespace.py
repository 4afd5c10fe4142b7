"""A header value's surrounding whitespace is not part of it (RFC 9110 5.5), on the fast connection path too."""

from __future__ import annotations

import asyncio
import shlex

import orjson

from tests.support import ProxyProcess, sdk_server_command

META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


async def test_an_mcp_name_with_surrounding_whitespace_matches_the_body(start_proxy) -> None:  # type: ignore[no-untyped-def]
    proxy: ProxyProcess = await start_proxy("--upstream", shlex.join(sdk_server_command()))
    params = {"name": "echo", "arguments": {"text": "hi"}, "_meta": META}
    body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params})
    host, port = proxy.base.removeprefix("http://").split(":")
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        "Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n"
        f"Mcp-Method: tools/call\r\nMcp-Name:   echo  \t\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head.encode() + body)
    # A keep-alive connection, as clients hold them: the fast path serves it.
    answer = await reader.readuntil(b"\r\n\r\n")
    length = int(answer.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    answer += await reader.readexactly(length)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert b'"text":"hi"' in answer
