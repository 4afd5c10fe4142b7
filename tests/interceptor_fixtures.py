"""A scripted interceptor for the tests, loaded by the proxy from config as ``tests.interceptor_fixtures:create``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shadowproxy.core.chain import Direction, MessageContext, Verdict, block, forward, respond


class Scripted:
    """Decides by tool name and method, one case per verdict and direction."""

    name = "scripted"

    async def on_message(self, ctx: MessageContext) -> Verdict:
        message = ctx.message
        if ctx.direction is Direction.CLIENT_TO_SERVER and message.method == "tools/call":
            params = message.params or {}
            tool, arguments = params.get("name"), params.get("arguments") or {}
            if tool == "echo" and arguments.get("text") == "shout":
                return forward(message.evolve(params={**params, "arguments": {"text": "SHOUT"}}))
            if tool == "fail":
                return block(-32050, "fail is forbidden here")
            if tool == "mocked":
                return respond({"content": [{"type": "text", "text": "from the proxy"}], "isError": False})
            if tool == "explode":
                raise RuntimeError("the interceptor broke")
        if ctx.direction is Direction.SERVER_TO_CLIENT:
            if message.is_reply and ctx.method == "tools/list":
                tools = [tool for tool in message.result["tools"] if tool["name"] != "crash"]
                return forward(message.evolve(result={**message.result, "tools": tools}))
            if message.is_reply and ctx.method == "tools/call" and "secret" in str(message.result):
                return block(-32051, "the answer held a secret")
            if message.method == "notifications/message":
                return block()
            if message.method == "sampling/createMessage":
                content: dict[str, Any] = {"type": "text", "text": "canned"}
                return respond({"role": "assistant", "content": content, "model": "proxy"})
        return forward()


def create(options: Mapping[str, Any]) -> Scripted:
    return Scripted()
