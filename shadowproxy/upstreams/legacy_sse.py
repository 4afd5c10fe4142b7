"""Legacy HTTP+SSE upstreams (protocol 2024-11-05): ``GET /sse`` for the server's stream, POSTs for ours.

A channel is one server session: it opens the event stream, waits for the
``endpoint`` event that names where to POST, and from then on posts each
message there (the server answers ``202``) and reads every server message,
replies included, from the stream. The stream is read by one task per session,
since an HTTP response can only be read by awaiting it.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urljoin, urlsplit

import aiohttp

from shadowproxy.core.errors import UpstreamError
from shadowproxy.core.jsonrpc import Message
from shadowproxy.core.sse import SseError, SseParser
from shadowproxy.core.tasks import spawn
from shadowproxy.upstreams.base import UnsolicitedHandler
from shadowproxy.upstreams.http import UpstreamSessionLost, UrlUpstream
from shadowproxy.upstreams.routing import RoutedChannel, Router

log = logging.getLogger(__name__)

ENDPOINT_TIMEOUT = 10.0


class LegacySseChannel(RoutedChannel):
    """One session with a legacy SSE server."""

    def __init__(self, upstream: LegacySseUpstream, on_unsolicited: UnsolicitedHandler) -> None:
        self.upstream = upstream
        self.router = Router(upstream.name, on_unsolicited, self.transmit)
        self.endpoint: str | None = None
        self._response: aiohttp.ClientResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        """Open the event stream and read up to the ``endpoint`` event."""
        headers = {"Accept": "text/event-stream", **self.upstream.config.headers}
        url = self.upstream.url
        try:
            response = await self.upstream.client().get(url, headers=headers)
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamError(f"upstream {self.upstream.name!r} is unreachable: {exc}") from None
        self._response = response
        if response.status != 200 or not response.headers.get("Content-Type", "").startswith("text/event-stream"):
            response.release()
            raise UpstreamError(f"upstream {self.upstream.name!r} answered GET with HTTP {response.status}, not SSE")
        parser = SseParser()
        try:
            async with asyncio.timeout(ENDPOINT_TIMEOUT):
                while self.endpoint is None:
                    chunk = await response.content.readany()
                    if not chunk:
                        raise UpstreamError(f"upstream {self.upstream.name!r} closed its stream before an endpoint")
                    for event in parser.feed(chunk):
                        if event.event == "endpoint":
                            self.endpoint = self._check(urljoin(url, event.data.decode()))
                        elif self.endpoint is not None and event.data:
                            self.router.feed(event.data)
        except (TimeoutError, SseError, aiohttp.ClientError) as exc:
            response.close()
            raise UpstreamError(f"upstream {self.upstream.name!r} sent no endpoint event: {exc}") from None
        except UpstreamError:
            response.close()
            raise
        self._reader = spawn(self._read(response, parser), name=f"sse-upstream-{self.upstream.name}")

    def _check(self, endpoint: str) -> str:
        # The server must not send our messages to another origin.
        if urlsplit(endpoint)[:2] != urlsplit(self.upstream.url)[:2]:
            raise UpstreamError(f"upstream {self.upstream.name!r} named an endpoint on another origin: {endpoint}")
        return endpoint

    async def _read(self, response: aiohttp.ClientResponse, parser: SseParser) -> None:
        reason = "closed its event stream"
        try:
            while True:
                chunk = await response.content.readany()
                if not chunk:
                    break
                for event in parser.feed(chunk):
                    if event.data and event.event in (None, "message"):
                        self.router.feed(event.data)
        except (aiohttp.ClientError, SseError, OSError) as exc:
            reason = f"broke its event stream: {exc}"
        finally:
            response.close()
            self.router.end(UpstreamSessionLost(f"upstream {self.upstream.name!r} {reason}"))

    async def transmit(self, message: Message) -> None:
        if self.router.ended is not None:
            raise self.router.ended
        assert self.endpoint is not None
        headers = {"Content-Type": "application/json", **self.upstream.config.headers}
        try:
            async with self.upstream.client().post(self.endpoint, data=message.to_bytes(), headers=headers) as answer:
                if answer.status == 404:
                    raise UpstreamSessionLost(f"upstream {self.upstream.name!r} no longer knows this session")
                if answer.status >= 400:
                    body = await answer.read()
                    raise UpstreamError(
                        f"upstream {self.upstream.name!r} refused a message: {answer.status} {body!r:.200}"
                    )
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamError(f"upstream {self.upstream.name!r} is unreachable: {exc}") from None

    async def close(self) -> None:
        self.router.end(UpstreamError(f"the session with upstream {self.upstream.name!r} is closed"))
        if self._reader is not None:
            self._reader.cancel()
        if self._response is not None:
            self._response.close()


class LegacySseUpstream(UrlUpstream):
    """A server that speaks the 2024-11-05 HTTP+SSE transport at ``url`` (its ``/sse`` path)."""

    async def open(self, on_unsolicited: UnsolicitedHandler, *, shared: bool = False) -> LegacySseChannel:
        channel = LegacySseChannel(self, on_unsolicited)
        await channel.connect()
        return channel
