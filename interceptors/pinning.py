"""The pinning interceptor: every ``tools/list`` result compared with the pins, and in block mode, changed tools
hidden and their calls refused.

The proxy puts it first in the chain when ``pinning.mode`` is not ``off`` (:func:`hooks`), so it sees the server's
own definitions before any rule edits them. It wants only ``tools/list`` results and, in block mode,
``tools/call`` requests: every other message is declined on its method, without a context.
"""

from __future__ import annotations

from typing import Any

from shadowproxy.core.chain import C2S, FORWARD, S2C, Direction, Hook, MessageContext, Verdict, block, forward
from shadowproxy.core.errors import POLICY_BLOCKED
from shadowproxy.core.jsonrpc import REQUEST, RESPONSE, Message
from shadowproxy.interceptors.pin_book import PinBook


class PinningInterceptor:
    """Compares listed tools with their pins; in block mode keeps changed ones from the client."""

    name = "pinning"

    def __init__(self, book: PinBook) -> None:
        self.book = book
        self.blocking = book.blocking

    def wants(self, message: Message, direction: Direction, request: Message | None) -> bool:
        """A ``tools/list`` result; in block mode, a ``tools/call`` request too."""
        if direction is S2C:
            return message.kind is RESPONSE and request is not None and request.data.get("method") == "tools/list"
        return self.blocking and message.kind is REQUEST and message.data["method"] == "tools/call"

    async def on_message(self, ctx: MessageContext) -> Verdict:
        message = ctx.message
        if ctx.direction is C2S:
            if not self.blocking or message.kind is not REQUEST or message.method != "tools/call":
                return FORWARD
            params = message.params
            tool = params.get("name") if isinstance(params, dict) else None
            change = self.book.refusal(ctx.upstream, ctx.principal, tool) if isinstance(tool, str) else None
            if change is None:
                return FORWARD
            text = (
                f"{change.describe()} on upstream {ctx.upstream!r}; calls are refused until an operator approves "
                f"the new definition (shadowproxy pins approve {ctx.upstream} {tool})"
            )
            return block(POLICY_BLOCKED, text, {"pinning": change.kind, "tool": tool, "fields": change.fields})
        if message.kind is not RESPONSE or ctx.method != "tools/list":
            return FORWARD
        result = message.result
        tools = result.get("tools") if isinstance(result, dict) else None
        if not isinstance(tools, list):
            return FORWARD
        session = ctx.session.id if ctx.session is not None else None
        hidden = self.book.review(ctx.upstream, ctx.principal, tools, _complete(ctx.request, result), session)
        if not hidden:
            return FORWARD
        kept = [tool for tool in tools if not (isinstance(tool, dict) and tool.get("name") in hidden)]
        return forward(message.evolve(result={**result, "tools": kept}))


def _complete(request: Message | None, result: dict[str, Any]) -> bool:
    """Whether a list result is the whole list: no cursor asked for and none given."""
    params = request.params if request is not None else None
    return not (isinstance(params, dict) and params.get("cursor")) and not result.get("nextCursor")


def hooks(book: PinBook) -> list[Hook]:
    """The chain's pinning hook, or none when pinning is off."""
    return [] if book.mode == "off" else [PinningInterceptor(book)]
