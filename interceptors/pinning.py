"""The pinning interceptor: every ``tools/list`` result compared with the pins, and in block mode, changed tools
hidden and their calls refused.

The proxy puts it first in the chain when ``pinning.mode`` is not ``off`` (:func:`hooks`), so it sees the server's
own definitions before any rule edits them. It wants only ``tools/list`` results and, in block mode,
``tools/call`` requests: every other message is declined on its method, without a context.

The pins are kept in the session store (space ``pins``, one entry per scope): read when the proxy starts, written
by a background task every :data:`SAVE_INTERVAL` seconds when something changed and once more when it stops. The
message path never waits for the store; a store that is down keeps the changes in memory until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from typing import Any

from shadowproxy.core.chain import C2S, FORWARD, S2C, Direction, Hook, MessageContext, Verdict, block, forward
from shadowproxy.core.errors import POLICY_BLOCKED
from shadowproxy.core.jsonrpc import REQUEST, RESPONSE, Message
from shadowproxy.core.tasks import spawn
from shadowproxy.interceptors.pin_book import SPACE, PinBook, dump_scope, load_scope, scope_key, split_key
from shadowproxy.stores import SessionStore, StoreError

log = logging.getLogger(__name__)

SAVE_INTERVAL = 0.5
LOAD_TIMEOUT = 10.0


class PinningInterceptor:
    """Compares listed tools with their pins; in block mode keeps changed ones from the client."""

    name = "pinning"

    def __init__(self, book: PinBook, store: SessionStore | None = None) -> None:
        self.book = book
        self.blocking = book.blocking
        # What wants can say yes to (see Selective): the chain does not ask it of any other method.
        self.methods = frozenset({"tools/list", "tools/call"} if self.blocking else {"tools/list"})
        self.store = store
        self._writer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Read the stored pins, then write changes in the background."""
        if self.store is None:
            return
        try:
            async with asyncio.timeout(LOAD_TIMEOUT):
                stored = await self.store.entries(SPACE)
        except (StoreError, TimeoutError) as exc:
            log.warning("tool pins could not be read from the store (trusting tools anew): %s", exc)
            stored = {}
        for text, raw in stored.items():
            try:
                self.book.scopes.setdefault(split_key(text), load_scope(raw))
            except ValueError as exc:
                log.warning("tool pins of %r skipped: %s", text, exc)
        self._writer = spawn(self._write_every(SAVE_INTERVAL), name="pins-writer")

    async def close(self) -> None:
        """Stop the writer and write what changed since its last round."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            await self.save()

    async def save(self) -> None:
        """Write the scopes that changed; those that fail stay marked for the next round."""
        book, store = self.book, self.store
        if store is None:
            return
        for key in list(book.dirty):
            book.dirty.discard(key)
            scope = book.scopes.get(key)
            try:
                await store.put_entry(SPACE, scope_key(key), dump_scope(scope) if scope is not None else None)
            except StoreError as exc:
                book.dirty.add(key)
                log.warning("tool pins not written to the store yet: %s", exc)
                return

    async def _write_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            if self.book.dirty:
                await self.save()

    def wants(self, message: Message, direction: Direction, request: Message | None) -> bool:
        """A ``tools/list`` result; in block mode, a ``tools/call`` request of a tool some scope refuses."""
        if direction is S2C:
            return message.kind is RESPONSE and request is not None and request.data.get("method") == "tools/list"
        tool = self._called(message)
        return tool is not None and self.book.may_refuse(tool)

    def _called(self, message: Message) -> str | None:
        """In block mode, the tool a client's ``tools/call`` request names (what a refusal is looked up by)."""
        if not self.blocking or message.kind is not REQUEST or message.data["method"] != "tools/call":
            return None
        params = message.data.get("params")
        tool = params.get("name") if isinstance(params, dict) else None
        return tool if isinstance(tool, str) else None

    async def on_message(self, ctx: MessageContext) -> Verdict:
        message = ctx.message
        if ctx.direction is C2S:
            tool = self._called(message)
            change = self.book.refusal(ctx.upstream, ctx.principal, tool) if tool is not None else None
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
        complete = _complete(ctx.request, result)
        hidden = self.book.review(ctx.upstream, ctx.principal, tools, complete, session, _fingerprint(message))
        if not hidden:
            return FORWARD
        kept = [tool for tool in tools if not (isinstance(tool, dict) and tool.get("name") in hidden)]
        return forward(message.evolve(result={**result, "tools": kept}))


def _fingerprint(message: Message) -> bytes | None:
    """A digest of the result's bytes, from ``"result"`` on: the answers of servers that write the id first (the
    Python SDK's) fingerprint alike when their lists are alike; others' never match, and are reviewed each time."""
    raw = message.to_bytes()
    start = raw.find(b'"result"')
    return hashlib.blake2b(raw[start:], digest_size=16).digest() if start >= 0 else None


def _complete(request: Message | None, result: dict[str, Any]) -> bool:
    """Whether a list result is the whole list: no cursor asked for and none given."""
    params = request.params if request is not None else None
    return not (isinstance(params, dict) and params.get("cursor")) and not result.get("nextCursor")


def hooks(book: PinBook, store: SessionStore | None = None) -> list[Hook]:
    """The chain's pinning hook (keeping its pins in ``store``), or none when pinning is off."""
    return [] if book.mode == "off" else [PinningInterceptor(book, store)]
