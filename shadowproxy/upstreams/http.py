"""Streamable HTTP upstreams: MCP servers the proxy reaches with POST (JSON or SSE answers).

One pool of keep-alive connections per upstream (:mod:`.http_client`); a request's answer is read in the
task that asked for it. The upstream's own ``Mcp-Session-Id`` is kept on the channel
and never shown to the client.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping

import aiohttp

from shadowproxy.config import UpstreamConfig
from shadowproxy.core import sse, tracing
from shadowproxy.core.errors import JsonRpcError, UpstreamError, UpstreamSessionLost
from shadowproxy.core.jsonrpc import ERROR, Message, RequestId, decode, error_response
from shadowproxy.core.protocol import SESSION_HEADER
from shadowproxy.core.sse import SseError, SseParser
from shadowproxy.upstreams.base import Answered, UnsolicitedHandler
from shadowproxy.upstreams.credentials import Credentials
from shadowproxy.upstreams.http_client import HttpClient, HttpClientError, Response

log = logging.getLogger(__name__)

ACCEPT = "application/json, text/event-stream"


class StreamPaused(UpstreamError):
    """The upstream ended a resumable event stream before answering: the client resumes it with Last-Event-ID."""


class HttpExchange:
    """The answer to one POST (or a GET stream): a JSON body or an event stream, read as it arrives.

    Event ids pass through unchanged (``event_id`` is the id of the message ``next`` returned last), and
    so do priming events and ``retry`` hints (``controls``, raw frames for the client's stream), so a
    client resumes at the upstream exactly as it would without the proxy.

    An error with a null id in the answer to a POST is the answer to the request it carried (a server that
    could not read the id answers so), and is given that request's id: a client on a front without a POST of
    its own for each request (legacy SSE, WebSocket, stdio) could not match it to anything it sent.
    """

    __slots__ = (
        "_messages",
        "_parser",
        "_read",
        "_request_id",
        "_response",
        "_resumable",
        "controls",
        "event_id",
        "status",
        "streaming",
    )

    def __init__(self, response: Response, request_id: RequestId | None = None) -> None:
        self._response = response
        self._request_id = request_id
        self._read = False
        self.status: int | None = response.status
        self._messages: deque[tuple[Message, str | None]] = deque()
        content_type = response.header("content-type")
        self.streaming = content_type.startswith("text/event-stream")
        self._parser = SseParser() if self.streaming else None
        self._resumable = False
        self.controls: list[bytes] = []
        self.event_id: str | None = None

    async def next(self) -> Message:
        while not self._messages:
            if self._parser is None:
                await self._read_json()
            else:
                await self._read_events()
        message, self.event_id = self._messages.popleft()
        if message.kind is ERROR and message.id is None and self._request_id is not None:
            message = message.evolve(id=self._request_id)
        return message

    async def _read_json(self) -> None:
        if self._read:
            raise UpstreamError(f"upstream answered HTTP {self.status} without the response to this request")
        self._read = True
        try:
            body = await self._response.read()
        except HttpClientError as exc:
            raise UpstreamError(f"upstream broke off its answer: {exc}") from None
        self._response.release()
        if not body:
            raise UpstreamError(f"upstream answered HTTP {self.status} with no body")
        try:
            decoded = decode(body)
        except JsonRpcError as exc:
            raise UpstreamError(f"upstream answered HTTP {self.status} with no JSON-RPC body ({exc.message})") from None
        self._messages.extend((message, None) for message in (decoded if isinstance(decoded, list) else (decoded,)))

    async def _read_events(self) -> None:
        assert self._parser is not None
        try:
            chunk = await self._response.readany()
        except HttpClientError as exc:
            raise UpstreamError(f"upstream stream broke: {exc}") from None
        if not chunk:
            if self._resumable:
                raise StreamPaused("upstream paused its event stream; the client resumes with Last-Event-ID")
            raise UpstreamError("upstream closed its event stream before answering")
        try:
            events = self._parser.feed(chunk)
        except SseError as exc:
            raise UpstreamError(str(exc)) from None
        for event in events:
            if event.id is not None:
                self._resumable = True
            if not event.data:
                if event.id is not None or event.retry is not None:
                    self.controls.append(sse.control(event.id, event.retry))
                continue
            if event.event not in (None, "message"):
                continue
            try:
                decoded = decode(event.data)
            except JsonRpcError as exc:
                log.warning("upstream sent an event that is not JSON-RPC (%s)", exc.message)
                continue
            for message in decoded if isinstance(decoded, list) else (decoded,):
                self._messages.append((message, event.id))

    async def close(self, *, cancel: bool = False) -> None:
        # Closing the connection is how a 2026-07-28 client cancels; otherwise return it to the pool.
        if cancel:
            self._response.close()
        else:
            self._response.release()


class HttpChannel:
    """A session's channel to an HTTP server; it carries the server's session id."""

    def __init__(self, upstream: HttpUpstream) -> None:
        self.upstream = upstream
        self.upstream_session_id: str | None = None

    def _headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        out = {"Accept": ACCEPT, "Content-Type": "application/json"}
        out.update(headers)
        out.update(self.upstream.config.headers)
        if self.upstream_session_id is not None:
            out[SESSION_HEADER] = self.upstream_session_id
        return out

    async def _post(self, message: Message, headers: Mapping[str, str]) -> Response:
        client = self.upstream.http()
        sent = self._headers(headers)
        if self.upstream.credentials is not None:
            await self.upstream.credentials.add(sent)
        tracer = tracing.ACTIVE
        try:
            if tracer is None:
                response = await client.request("POST", sent, message.to_bytes())
            else:
                with tracer.child("mcp.upstream", client=True, **{"server.address": self.upstream.name}) as span:
                    tracer.inject(sent)
                    response = await client.request("POST", sent, message.to_bytes())
                    span.set_attribute("http.response.status_code", response.status)
        except OSError as exc:
            raise UpstreamError(f"upstream {self.upstream.name!r} is unreachable: {exc}") from None
        if response.status == 404 and self.upstream_session_id is not None:
            response.release()
            raise UpstreamSessionLost(f"upstream {self.upstream.name!r} no longer knows this session")
        return response

    async def request(self, message: Message, headers: Mapping[str, str]) -> HttpExchange | Answered:
        response = await self._post(message, headers)
        session_id = response.header(SESSION_HEADER)
        if session_id and message.method == "initialize":
            self.upstream_session_id = session_id
        content_type = response.header("content-type")
        if response.status == 202 or not content_type.startswith(("application/json", "text/event-stream")):
            status = response.status
            response.release()
            error = UpstreamError(f"upstream answered HTTP {status} without a JSON-RPC response")
            return Answered(error_response(message.id, error), 502 if status < 400 else status)
        return HttpExchange(response, message.id)

    async def resume(self, upstream_session_id: str | None, init_request: str | None) -> None:
        """The server still holds its session: reuse its id (a server that forgot it answers 404 later)."""
        self.upstream_session_id = upstream_session_id

    async def listen(self, headers: Mapping[str, str]) -> HttpExchange | None:
        """The upstream's GET stream for this session; ``None`` when it offers none (405)."""
        request_headers = self._headers(headers)
        request_headers["Accept"] = "text/event-stream"
        request_headers.pop("Content-Type")
        if self.upstream.credentials is not None:
            await self.upstream.credentials.add(request_headers)
        try:
            response = await self.upstream.http().request("GET", request_headers)
        except OSError as exc:
            raise UpstreamError(f"upstream {self.upstream.name!r} is unreachable: {exc}") from None
        if response.status == 404 and self.upstream_session_id is not None:
            response.release()
            raise UpstreamSessionLost(f"upstream {self.upstream.name!r} no longer knows this session")
        if response.status != 200 or not response.header("content-type").startswith("text/event-stream"):
            response.release()
            return None
        return HttpExchange(response)

    async def send(self, message: Message, headers: Mapping[str, str]) -> None:
        response = await self._post(message, headers)
        if response.status >= 400:
            try:
                body = await response.read()
            except HttpClientError as exc:
                body = str(exc).encode()
            log.warning("upstream refused a %s with HTTP %s: %.200r", message.kind.value, response.status, body)
        response.release()

    async def detach(self) -> None:
        """Nothing to release: the server keeps the session, and the pooled client belongs to the upstream."""

    async def close(self) -> None:
        if self.upstream_session_id is None:
            return
        try:
            headers = self._headers({})
            if self.upstream.credentials is not None:
                await self.upstream.credentials.add(headers)
            (await self.upstream.http().request("DELETE", headers)).release()
        except (OSError, UpstreamError) as exc:
            log.debug("DELETE of the upstream session failed: %s", exc)


class UrlUpstream:
    """A server reached at ``config.url`` through one pooled aiohttp client, opened lazily, closed with it."""

    def __init__(self, config: UpstreamConfig) -> None:
        assert config.url is not None
        self.name = config.name
        self.config = config
        self.url = config.url
        self._client: aiohttp.ClientSession | None = None
        self.credentials: Credentials | None = None
        """Added to each request when the config gives them (:func:`~shadowproxy.upstreams.credentials.install`)."""

    def client(self) -> aiohttp.ClientSession:
        if self._client is None or self._client.closed:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
            self._client = aiohttp.ClientSession(connector=connector, timeout=timeout)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()


class HttpUpstream(UrlUpstream):
    """A Streamable HTTP server."""

    _http: HttpClient | None = None

    def http(self) -> HttpClient:
        if self._http is None:
            self._http = HttpClient(self.url)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        await super().close()

    async def open(self, on_unsolicited: UnsolicitedHandler, *, shared: bool = False) -> HttpChannel:
        return HttpChannel(self)
