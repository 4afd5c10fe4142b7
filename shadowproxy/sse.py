"""Server-sent events: an incremental parser and the encoder the proxy writes with.

The parser follows the WHATWG event-stream rules (CRLF, LF or CR line ends;
``data`` lines joined by newlines; ``:`` comments; ``id`` and ``retry`` fields).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_EVENT = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SseEvent:
    data: bytes
    event: str | None = None
    id: str | None = None
    retry: int | None = None


class SseError(ValueError):
    """The stream broke the event-stream format beyond repair (an event over the size bound)."""


class SseParser:
    """Feed bytes as they arrive; get back the events they complete."""

    __slots__ = ("_buffer", "_data", "_event", "_id", "_retry")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []
        self._event: str | None = None
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[SseEvent]:
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            # A lone CR at the end may be the first half of a CRLF: keep it for the next chunk.
            keep_cr = buffer.endswith(b"\r")
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if keep_cr:
                buffer = buffer[:-1]
                lines = buffer.split(b"\n")
                self._buffer = lines.pop() + b"\r"
            else:
                lines = buffer.split(b"\n")
                self._buffer = lines.pop()
        else:
            lines = buffer.split(b"\n")
            self._buffer = lines.pop()
        if len(self._buffer) > MAX_EVENT:
            self._buffer = b""
            raise SseError(f"an event-stream line is over {MAX_EVENT} bytes")
        events: list[SseEvent] = []
        for line in lines:
            if not line:
                if self._data or self._event is not None or self._id is not None or self._retry is not None:
                    events.append(SseEvent(b"\n".join(self._data), self._event, self._id, self._retry))
                self._data = []
                self._event = None
                self._id = None
                self._retry = None
                continue
            if line.startswith(b":"):
                continue
            name, _, value = line.partition(b":")
            if value.startswith(b" "):
                value = value[1:]
            if name == b"data":
                self._data.append(value)
            elif name == b"event":
                self._event = value.decode(errors="replace")
            elif name == b"id":
                if b"\0" not in value:
                    self._id = value.decode(errors="replace")
            elif name == b"retry" and value.isdigit():
                self._retry = int(value)
        return events


def encode(data: bytes, *, event_id: str | None = None, retry: int | None = None) -> bytes:
    """One ``message`` event carrying ``data``, a JSON-RPC message."""
    if b"\r" in data:
        # A CR would end the line early; in JSON it can only be whitespace, so it goes.
        data = data.replace(b"\r", b"")
    if b"\n" in data:
        data = data.replace(b"\n", b"\ndata: ")
    head = b"event: message\n"
    if event_id is not None:
        head += b"id: " + event_id.encode() + b"\n"
    if retry is not None:
        head += b"retry: " + str(retry).encode() + b"\n"
    return head + b"data: " + data + b"\n\n"


KEEPALIVE = b": keep-alive\n\n"
SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}
"""The response headers of every event stream the proxy serves (no caching, no proxy buffering)."""
