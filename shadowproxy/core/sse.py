"""Server-sent events: an incremental parser, and the one encoder every event the proxy writes goes through.

The parser follows the WHATWG event-stream rules (CRLF, LF or CR line ends;
``data`` lines joined by newlines; ``:`` comments; ``id`` and ``retry`` fields).

The streams are written with aiohttp's own ``StreamResponse`` and these frames, not with aiohttp-sse: a message
arrives as bytes and is framed as bytes, where aiohttp-sse's ``send`` takes a ``str`` (a decode and an encode per
event), splits it with a regular expression and wraps each write in a timeout, and its response starts a ping task
per stream, sets ``TCP_USER_TIMEOUT``, refuses POST (a POST is answered as a stream here), and replaces our
``Cache-Control: no-cache, no-transform``. Measured when it was dropped (issue 19, both in one run): ``send`` framed a
100-byte message 6 times slower than :func:`encode` and a 10 KB one 50 times slower; 20,000 small events over a real
socket took 2.2 times as long; a one-event stream took 1.4 times as long even with our own frames written into it.
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


def encode(data: bytes, event: str | None = "message", event_id: str | None = None, retry: int | None = None) -> bytes:
    """One event carrying ``data`` (a ``message`` unless ``event`` names another type, or ``None``: no type line)."""
    # Not keyword-only: Python fills keyword-only defaults by dictionary lookups, a tenth of this function's time.
    if b"\r" in data:
        # A CR would end the line early; in JSON it can only be whitespace, so it goes.
        data = data.replace(b"\r", b"")
    if b"\n" in data:
        data = data.replace(b"\n", b"\ndata: ")
    if event == "message":
        # The common event, a JSON-RPC message, takes a constant head.
        head = b"event: message\n"
    elif event is None:
        head = b""
    else:
        head = b"event: " + event.encode() + b"\n"
    if event_id is not None:
        head += b"id: " + event_id.encode() + b"\n"
    if retry is not None:
        head += b"retry: " + str(retry).encode() + b"\n"
    return head + b"data: " + data + b"\n\n"


def control(event_id: str | None, retry: int | None) -> bytes:
    """An event with no data: a priming event (an id to resume from, before anything else) and/or a retry delay."""
    return encode(b"", event=None, event_id=event_id, retry=retry)


def comment(text: str) -> bytes:
    """A comment line, which every client skips: a keep-alive, or a first byte for the client to see."""
    return b": " + text.encode() + b"\n\n"


KEEPALIVE = comment("keep-alive")
SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}
"""The response headers of every event stream the proxy serves (no caching, no proxy buffering)."""
