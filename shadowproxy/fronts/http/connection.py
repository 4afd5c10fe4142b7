"""The client's HTTP/1.1 connection: MCP POSTs are served here, and any other request is handed to aiohttp.

On the echo benchmark aiohttp's request and response objects, its payload writer and the task it starts for
every request came to nearly half of the proxy's CPU per POST. A :class:`Connection` reads each request head
with ``httptools`` (llhttp, the parser aiohttp's own is built on) and serves the common request itself: an
HTTP/1.1 ``POST`` to an MCP endpoint whose body ``Content-Length`` sizes. From the first request that is
anything else (another method or path, a query, a chunked body, ``Expect``, ``Upgrade``, HTTP/1.0,
``Connection: close``, a body over ``max_body_size``, a head over ``max_header_size`` or not yet complete,
one llhttp refuses) the connection belongs to aiohttp's own handler, which gets the bytes as they came and
answers exactly as it would have from the start. Only a request whose head is in and whose body (up to 256 KiB)
is still coming is waited for here, for ``limits.body_timeout``.

Past :data:`HIGH_WATER` unsent bytes the connection stops reading and serving until the client reads (as aiohttp's
handler does): a client that pipelines requests and never reads costs about one answer, and after
``limits.idle_timeout`` without reading it is aborted (closing would wait for the unsent bytes).

One task per connection serves its requests in order, from the first POST on. The connections join the
aiohttp server's own list, so the connection gauge and graceful shutdown count them as they count aiohttp's.
What that takes of aiohttp's internals is listed, and checked at startup, in :mod:`shadowproxy.fronts.http.fast_path`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

import httptools
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from shadowproxy.config import limits
from shadowproxy.core import limit_hits, logs
from shadowproxy.core.http_head import header_block
from shadowproxy.core.logs import REQUEST_ID, REQUEST_ID_HEADER, new_request_id
from shadowproxy.core.tasks import spawn
from shadowproxy.fronts import http_limits
from shadowproxy.fronts.http.fast_path import Watched
from shadowproxy.fronts.http.fast_request import Door, PlainRequest, PostEndpoint, http_date

log = logging.getLogger(__name__)

HEAD_END = b"\r\n\r\n"
# A bigger body still to come is left to aiohttp, which reads it in pieces instead of copying what came so far
# at every read.
MAX_AWAITED_BODY = 256 * 1024
# asyncio's default, made explicit: what one connection holds for a client that does not read depends on it.
HIGH_WATER = 64 * 1024
ANSWERED_ELSEWHERE = frozenset({b"transfer-encoding", b"expect"})
# Headers aiohttp refuses to see twice (400): such a request goes to aiohttp, to be refused the same way.
SINGLE = frozenset({b"host", b"content-type"})


class Head:
    """What llhttp reads of a request head."""

    __slots__ = ("complete", "fields", "url")

    def __init__(self) -> None:
        self.url = b""
        self.fields: list[tuple[bytes, bytes]] = []
        self.complete = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields.append((name, value))

    def on_headers_complete(self) -> None:
        self.complete = True


class Connection(asyncio.Protocol):
    """One client connection until it is closed or handed to aiohttp."""

    # aiohttp's Server.connection_lost looks for its handler's task here; none of ours is one of its handlers.
    _task_handler = None

    def __init__(self, door: Door, server: web.Server, settings: limits.Limits, max_body_size: int) -> None:
        self.door = door
        self.server = server
        self.settings = settings
        self.max_body_size = max_body_size
        # Pipelined bytes beyond this wait in the kernel until the request before them is answered.
        self.max_buffered = max_body_size + 2 * settings.max_header_size
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.current: tuple[PlainRequest, PostEndpoint] | None = None
        self.task: asyncio.Task[None] | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.drained: asyncio.Future[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.deadline = 0.0
        self.body_pending = False
        # A client sends the same head again and again (only Content-Length tells its requests apart, and not
        # always): the last one read is kept, and the same bytes are not read twice.
        self.last_head = b""
        self.last_found: tuple[PostEndpoint, CIMultiDictProxy[str], int] | None = None
        self.reading = True
        self.closing = False
        self.handed_off = False

    # -- the transport's callbacks ---------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=HIGH_WATER)
        self.server.connection_made(self, self.transport)  # type: ignore[arg-type]
        self.watch(self.settings.idle_timeout)

    def data_received(self, data: bytes) -> None:
        self.buffer = self.buffer + data if self.buffer else data
        if self.current is None:
            self.take()
        elif self.reading and len(self.buffer) > self.max_buffered:
            self.flow()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.handed_off:
            self.server.connection_lost(self, exc)  # type: ignore[arg-type]
        self.unwatch()
        if self.task is not None and not self.task.done():
            # A client that goes away cancels what it asked, as aiohttp's handler_cancellation does.
            self.task.cancel()
        if self.drained is not None:
            # Its only waiter is the task, cancelled above.
            self.drained.cancel()

    def pause_writing(self) -> None:
        self.drained = self.loop.create_future()
        self.flow()
        # The client must take some of what it was sent within the idle timeout (expire aborts it otherwise).
        self.watch(self.settings.idle_timeout)

    def resume_writing(self) -> None:
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        self.drained = None
        self.flow()

    def flow(self) -> None:
        """Read while the client takes its answers and what it sent ahead fits; else the kernel holds the rest."""
        wanted = self.drained is None and (self.current is None or len(self.buffer) <= self.max_buffered)
        if wanted is not self.reading and self.transport is not None and not self.handed_off:
            self.reading = wanted
            if wanted:
                self.transport.resume_reading()
            else:
                self.transport.pause_reading()

    # -- reading requests ------------------------------------------------------------------------------------------

    def take(self) -> None:
        """Start on the buffered request: serve it, wait for the rest of its body, or hand the connection off."""
        buffer = self.buffer
        if not buffer or self.closing:
            return
        end = buffer.find(HEAD_END) + len(HEAD_END)
        if end < len(HEAD_END) or end > self.settings.max_header_size:
            self.hand_off()
            return
        head = buffer[:end]
        if head == self.last_head:
            found = self.last_found
        else:
            found = self.plain_post(head)
            self.last_head, self.last_found = head, found
        if found is None:
            self.hand_off()
            return
        endpoint, headers, length = found
        if len(buffer) < end + length:
            if length > MAX_AWAITED_BODY:
                self.hand_off()
                return
            if not self.body_pending:
                self.body_pending = True
                self.watch(self.settings.body_timeout)
            return
        self.body_pending = False
        self.buffer = buffer[end + length :]
        path = endpoint.mount.path
        self.current = (PlainRequest(self, path, headers, buffer[end : end + length]), endpoint)
        if not self.reading:
            self.flow()
        if self.task is None:
            self.task = spawn(self.serve(), name="http-connection")
        elif self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def plain_post(self, head: bytes) -> tuple[PostEndpoint, CIMultiDictProxy[str], int] | None:
        """The endpoint, headers and body length of a request served here; ``None`` for one aiohttp serves."""
        if b"\n\n" in head:
            return None
        parsed = Head()
        parser = httptools.HttpRequestParser(parsed)
        try:
            parser.feed_data(head)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            return None
        if (
            not parsed.complete
            or parser.get_method() != b"POST"
            or parser.get_http_version() != "1.1"
            or parser.should_upgrade()
            or not parser.should_keep_alive()
        ):
            return None
        endpoint = self.door.endpoints.get(parsed.url.decode("latin-1"))
        if endpoint is None or len(parsed.fields) > self.settings.max_headers:
            return None
        length: int | None = None
        seen: set[bytes] = set()
        fields: CIMultiDict[str] = CIMultiDict()
        for name, raw in parsed.fields:
            lower = name.lower()
            # llhttp leaves a value's trailing whitespace on; a field value excludes it (RFC 9110 5.5), as aiohttp's.
            value = raw.rstrip(b" \t")
            if lower == b"content-length":
                if length is not None or not value.isdigit():
                    return None
                length = int(value)
            elif lower in ANSWERED_ELSEWHERE:
                return None
            elif lower in SINGLE:
                if lower in seen:
                    return None
                seen.add(lower)
            fields.add(name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
        if length is None or length > self.max_body_size:
            return None
        return endpoint, CIMultiDictProxy(fields), length

    def hand_off(self) -> None:
        """aiohttp's own handler takes the connection from here on, with every byte not yet served."""
        assert self.transport is not None
        self.handed_off = True
        self.server.connection_lost(self, None)  # type: ignore[arg-type]
        self.unwatch()
        if not self.reading:
            self.transport.resume_reading()
        # Watched: aiohttp alone would keep a client that never reads its answers for ever.
        handler = Watched(self.server(), self.settings.idle_timeout)
        self.transport.set_protocol(handler)
        handler.connection_made(self.transport)
        if self.buffer:
            data, self.buffer = self.buffer, b""
            handler.data_received(data)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    # -- serving them ----------------------------------------------------------------------------------------------

    async def serve(self) -> None:
        """The connection's task: each request in turn, until the connection closes or is handed off."""
        assert self.transport is not None
        try:
            while not self.handed_off:
                if self.current is None:
                    self.waiter = self.loop.create_future()
                    await self.waiter
                    self.waiter = None
                    continue
                request, endpoint = self.current
                try:
                    response = await self.answer(request, endpoint)
                except ConnectionResetError:
                    # The client left mid-answer: nothing more to say to it (aiohttp ignores it too).
                    break
                if response.keep_alive is False:
                    self.closing = True
                if not response.prepared:
                    self.send_response(response)
                # What the connection logs until the next request (a slow body, say) is no request's.
                REQUEST_ID.set(None)
                if self.drained is not None:
                    # The next request waits until the client has read this answer (or expire aborts it).
                    await self.drained
                self.current = None
                if self.closing or self.transport.is_closing():
                    break
                self.watch(self.settings.idle_timeout)
                self.take()
        finally:
            self.current = None
            if not self.handed_off:
                self.transport.close()

    async def answer(self, request: PlainRequest, endpoint: PostEndpoint) -> web.StreamResponse:
        try:
            return await self.door.answer(request, endpoint.post, timed=True)  # type: ignore[arg-type]
        except web.HTTPException as exc:
            return exc
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("error handling POST %s", request.path)
            self.closing = True
            response = web.Response(status=500, text="500 Internal Server Error")
            logs.tag(response.headers)
            return response

    def send_response(self, response: web.StreamResponse) -> None:
        body = cast(web.Response, response).body if isinstance(response, web.Response) else b""
        if not isinstance(body, bytes):
            body = b"" if body is None else bytes(body)  # type: ignore[arg-type]
        headers = response.headers
        extra = b"" if "Content-Length" in headers else b"Content-Length: %d\r\n" % len(body)
        self.send_head(response.status, response.reason, headers, extra, body)

    def send_head(
        self, status: int, reason: str, headers: CIMultiDict[str], extra: bytes = b"", body: bytes = b""
    ) -> None:
        fields = header_block(headers)
        close = b"Connection: close\r\n" if self.closing else b""
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 %d %s\r\n%sDate: %s\r\n%s%s\r\n%s"
            % (status, reason.encode("latin-1"), fields.encode("utf-8"), http_date(), extra, close, body)
        )

    async def send(self, data: bytes) -> None:
        """Part of a streamed answer, waiting while the client reads slower than we write."""
        assert self.transport is not None
        if self.transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        self.transport.write(data)
        if self.drained is not None:
            await self.drained

    # -- time limits and shutdown ----------------------------------------------------------------------------------

    def watch(self, seconds: float) -> None:
        """The connection must make progress (a complete request) within ``seconds``; one timer, moved lazily."""
        self.deadline = self.loop.time() + seconds
        if self.timer is not None and self.timer.when() > self.deadline:
            self.timer.cancel()
            self.timer = None
        if self.timer is None:
            self.timer = self.loop.call_at(self.deadline, self.expire)

    def unwatch(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def expire(self) -> None:
        self.timer = None
        if self.handed_off or (self.current is not None and self.drained is None):
            return
        if self.loop.time() < self.deadline:
            self.timer = self.loop.call_at(self.deadline, self.expire)
            return
        assert self.transport is not None
        if self.drained is not None or self.transport.get_write_buffer_size():
            log.warning("a client did not read its answers within limits.idle_timeout; closing its connection")
            self.transport.abort()
            return
        if self.body_pending:
            log.warning("a client sent its body too slowly; closing its connection")
            text = f"the body did not arrive within {self.settings.body_timeout:g}s (limits.body_timeout)"
            self.closing = True
            self.send_response(http_limits.refusal(limit_hits.LimitExceeded("body_timeout", 408, text)))
        self.transport.close()

    def close(self) -> None:
        """Stop after the request in hand (aiohttp's ``Server.pre_shutdown``); one still arriving is answered 503."""
        self.closing = True
        if self.current is not None or self.transport is None or self.handed_off:
            return
        if self.body_pending and self.last_found is not None:
            self.body_pending = False
            # Not set on REQUEST_ID: this runs in the shutdown's own task, whose later lines are no request's.
            self.send_response(self.door.unfinished(new_request_id(self.last_found[1].get(REQUEST_ID_HEADER))))
        self.transport.close()

    async def shutdown(self, grace: float | None) -> None:
        """Let the request in hand finish within ``grace`` seconds, then cancel it (aiohttp's ``Server.shutdown``)."""
        self.close()
        task = self.task
        if task is None or task.done():
            return
        if self.current is not None:
            await asyncio.wait({task}, timeout=grace)
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
