"""The live tap: every message that passes the chain, for the readers of ``/_shadowproxy/tap``
(:mod:`shadowproxy.ops.tap_stream` serves it).

:data:`TAP` is the one tap of the process. :meth:`Mount.judge` publishes to it
behind a single truth test (``if TAP.listeners:``), so a proxy no one taps pays
for nothing else. Each listener owns a bounded queue of encoded events; a
listener that reads too slowly loses events, which are counted and announced
with a ``dropped`` event, and never holds up a message.

Query parameters: ``session`` (an id prefix), ``method`` (a prefix, or a glob
when it holds ``*``, ``?`` or ``[``), ``bodies=1`` (the message itself, after
the chain, masked by the rules' redactors). Each event is one ``data:`` line of
JSON; see :func:`Tap.publish` for its members.
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from shadowproxy.core import sse
from shadowproxy.core.chain import Direction, Verdict
from shadowproxy.core.counters import verdict_label
from shadowproxy.core.jsonrpc import Kind, Message, RequestId
from shadowproxy.core.redact import Redactor

if TYPE_CHECKING:
    from shadowproxy.sessions.manager import LiveSession

QUEUE_LIMIT = 1000
"""Events a listener may have waiting; beyond it new events are dropped for that listener."""
PENDING_LIMIT = 10_000
"""Requests remembered for the latency of their replies; the oldest go first."""
BODY_LIMIT = 256 * 1024
"""A larger message is shown without its body (``body_omitted``), so a queue stays small."""
TRUE, FALSE = frozenset({"1", "true", "yes"}), frozenset({"0", "false", "no", ""})
C2S = Direction.CLIENT_TO_SERVER

_REDACTOR = Redactor()


@dataclass(frozen=True, slots=True)
class TapFilter:
    """Which messages one listener wants; ``None`` matches everything."""

    session: str | None = None
    method: re.Pattern[str] | str | None = None
    bodies: bool = False

    @classmethod
    def from_query(cls, query: Any) -> TapFilter:
        """From the request's query; :class:`ValueError` naming the parameter that is wrong."""
        unknown = sorted(set(query) - {"session", "method", "bodies"})
        if unknown:
            raise ValueError(f"unknown query parameter {unknown[0]!r} (known: session, method, bodies)")
        bodies = query.get("bodies", "0").lower()
        if bodies not in TRUE | FALSE:
            raise ValueError(f"bodies must be 1 or 0, not {bodies!r}")
        method: re.Pattern[str] | str | None = query.get("method") or None
        if method is not None and any(char in method for char in "*?["):
            method = re.compile(fnmatch.translate(method))
        return cls(query.get("session") or None, method, bodies in TRUE)

    def accepts(self, session: str | None, method: str | None) -> bool:
        if self.session is not None and (session is None or not session.startswith(self.session)):
            return False
        if self.method is None:
            return True
        if method is None:
            return False
        if isinstance(self.method, str):
            return method.startswith(self.method)
        return self.method.match(method) is not None


class TapListener:
    """One reader of the tap: a bounded queue of encoded events and the count of those it lost."""

    __slots__ = ("_ready", "abort", "closed", "dropped", "events", "filter", "reported", "writing")

    def __init__(self, tap_filter: TapFilter) -> None:
        self.filter = tap_filter
        self.events: deque[bytes] = deque()
        self.dropped = 0
        self.reported = 0
        self.closed = False
        self.writing = False
        self.abort: Callable[[], None] | None = None
        self._ready = asyncio.Event()

    def offer(self, event: bytes) -> bool:
        """Queue ``event``; false (and counted) when the queue is full."""
        if len(self.events) >= QUEUE_LIMIT:
            self.dropped += 1
            return False
        self.events.append(event)
        self._ready.set()
        return True

    def take(self) -> bytes:
        """Everything queued, as SSE, a ``dropped`` event first when events were lost since the last call."""
        chunks: list[bytes] = []
        if self.dropped > self.reported:
            lost = orjson.dumps({"dropped": self.dropped - self.reported, "total": self.dropped})
            chunks.append(sse.encode(lost, event="dropped"))
            self.reported = self.dropped
        while self.events:
            chunks.append(sse.encode(self.events.popleft(), event=None))
        self._ready.clear()
        return b"".join(chunks)

    async def wait(self) -> None:
        await self._ready.wait()

    def close(self) -> None:
        """End the stream; a writer stuck on a reader that does not read is cut off."""
        self.closed = True
        self._ready.set()
        if self.writing and self.abort is not None:
            self.abort()


class Tap:
    """The listeners, and the requests seen, to time their replies."""

    __slots__ = ("_pending", "listeners")

    def __init__(self) -> None:
        self.listeners: list[TapListener] = []
        self._pending: dict[tuple[str | None, bool, RequestId], tuple[float, str | None]] = {}

    def attach(self, tap_filter: TapFilter) -> TapListener:
        listener = TapListener(tap_filter)
        self.listeners.append(listener)
        return listener

    def detach(self, listener: TapListener) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)
        if not self.listeners:
            self._pending.clear()

    def close(self) -> None:
        for listener in list(self.listeners):
            listener.close()

    def publish(
        self,
        message: Message,
        direction: Direction,
        session: LiveSession | None,
        transport: str,
        upstream: str,
        request: Message | None,
        verdict: Verdict,
    ) -> None:
        """Show one judged message to the listeners that want it; called only when there are some.

        An event has ``time`` (Unix seconds), ``direction``, ``session`` (the full id, or null for a
        message outside a session), ``kind``, ``id``, ``method`` (for a reply, its request's),
        ``size`` (bytes), ``verdict`` (forward, modified, block, respond) and ``by`` (the interceptor
        that decided), ``latency_ms`` (a reply's time since the tap saw its request, else null),
        ``transport``, ``upstream``; with ``bodies=1`` also ``body``, the message as it went on.
        """
        now = time.perf_counter()
        c2s = direction is C2S
        session_id = session.record.id if session is not None else None
        method = message.method
        latency = None
        kind = message.kind
        if kind is Kind.REQUEST:
            if verdict.is_forward and message.id is not None:
                if len(self._pending) >= PENDING_LIMIT:
                    self._pending.pop(next(iter(self._pending)))
                self._pending[(session_id, c2s, message.id)] = (now, method)
        elif kind is not Kind.NOTIFICATION and message.id is not None:
            seen = self._pending.pop((session_id, not c2s, message.id), None)
            if seen is not None:
                latency = round((now - seen[0]) * 1000, 3)
                method = seen[1]
            elif request is not None:
                method = request.method
        wanted = [listener for listener in self.listeners if listener.filter.accepts(session_id, method)]
        if not wanted:
            return
        shown = verdict.message or message
        size = shown.size
        event = {
            "time": time.time(),
            "direction": direction.value,
            "session": session_id,
            "kind": kind.value,
            "id": message.id,
            "method": method,
            "size": size,
            "verdict": verdict_label(verdict.action.value, verdict.message is not None),
            "by": verdict.by,
            "latency_ms": latency,
            "transport": transport,
            "upstream": upstream,
        }
        if session is not None and getattr(session.channel, "bridged", False):
            event["bridged"] = True
        plain = orjson.dumps(event)
        full: bytes | None = None
        for listener in wanted:
            if listener.filter.bodies:
                if full is None:
                    full = orjson.dumps({**event, **_body(shown, size)})
                listener.offer(full)
            else:
                listener.offer(plain)


def _body(message: Message, size: int) -> dict[str, Any]:
    if size > BODY_LIMIT:
        return {"body": None, "body_omitted": f"over {BODY_LIMIT} bytes"}
    return {"body": _REDACTOR.value(message.data)}


TAP = Tap()
