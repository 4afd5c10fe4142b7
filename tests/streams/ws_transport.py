"""MCP over WebSocket with aiohttp: a client transport for the SDK's ``Client``, and the server side of one.

The SDK has no WebSocket transport, so both ends are written here: each pumps
text frames to and from the SDK's message streams.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import anyio
import mcp_types as types
from aiohttp import WSMsgType
from mcp.shared._context_streams import create_context_streams
from mcp.shared.message import SessionMessage


async def pump(ws: Any, read_writer: Any, write_reader: Any) -> None:
    """Frames in to the SDK, the SDK's messages out as frames, until the socket closes."""

    async def inbound() -> None:
        async with read_writer:
            async for frame in ws:
                if frame.type is WSMsgType.TEXT:
                    message = types.jsonrpc_message_adapter.validate_json(frame.data, by_name=False)
                    await read_writer.send(SessionMessage(message))

    async def outbound() -> None:
        async with write_reader:
            async for session_message in write_reader:
                data = session_message.message.model_dump_json(by_alias=True, exclude_unset=True)
                await ws.send_str(data)

    async with anyio.create_task_group() as group:
        group.start_soon(outbound)
        await inbound()
        group.cancel_scope.cancel()


@asynccontextmanager
async def websocket_client(url: str, protocols: tuple[str, ...] = ("mcp",)) -> AsyncIterator[Any]:
    """A ``Transport`` for ``mcp.Client``: the streams of one WebSocket connection."""
    read_writer, read_stream = create_context_streams[SessionMessage | Exception](0)
    write_stream, write_reader = create_context_streams[SessionMessage](0)
    async with aiohttp.ClientSession() as http, http.ws_connect(url, protocols=protocols) as ws:
        async with anyio.create_task_group() as group:
            group.start_soon(pump, ws, read_writer, write_reader)
            try:
                yield read_stream, write_stream
            finally:
                group.cancel_scope.cancel()
