"""The bridge's pooled handshake sessions on a real handshake-only server: reused, closed when idle, and opened
again when the server forgets one (its process gone)."""

from __future__ import annotations

import shlex

from shadowproxy import config
from shadowproxy.bridge.channel import BridgedChannel
from shadowproxy.bridge.exchanges import Parking
from shadowproxy.bridge.pool import HandshakePool
from shadowproxy.core.jsonrpc import Kind, Message
from shadowproxy.upstreams.base import final_reply
from shadowproxy.upstreams.child_channel import ChildChannel
from shadowproxy.upstreams.stdio import StdioUpstream
from tests.bridge.conftest import HANDSHAKE_ONLY

META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


async def echo(channel: BridgedChannel, text: str) -> Message:
    params = {"name": "echo", "arguments": {"text": text}, "_meta": META}
    request = Message(Kind.REQUEST, {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params})
    return await final_reply(await channel.request(request, {}))


async def test_sessions_are_reused_closed_when_idle_and_reopened_when_forgotten() -> None:
    upstream = StdioUpstream(config.parse_upstream("old", shlex.join(HANDSHAKE_ONLY)))
    pool = HandshakePool(upstream, idle=3600)
    channel = BridgedChannel(pool, Parking(pool), lambda method: None, "alice")
    try:
        first = await echo(channel, "one")
        assert first.id == 7 and first.result["content"][0]["text"] == "one"
        assert first.result["resultType"] == "complete"
        await echo(channel, "two")
        assert pool.opened == 1 and len(pool.sessions) == 1

        # The server forgets the session (its process ends): the next request opens another and succeeds.
        [pooled] = pool.sessions.values()
        assert isinstance(pooled.channel, ChildChannel)
        await pooled.channel.child.terminate()
        assert (await echo(channel, "three")).result["content"][0]["text"] == "three"
        assert pool.opened == 2

        pool.idle = 0.0
        assert await pool.close_idle() == 1 and not pool.sessions
    finally:
        await pool.close()
        await upstream.close()
