"""The first handler of every HTTP request: its id, the Host and Origin checks, authentication, then its handler.

The checks hold for every path, so they run here once instead of as aiohttp middlewares; a POST to an MCP
endpoint then goes straight to that endpoint, and everything else (GET streams, DELETE, health, metrics, the
admin API, WebSocket, legacy SSE) takes the application's router. On the echo benchmark the router, the
middleware wrappers and the response signal cost about an eighth of a POST's CPU in the proxy. Most MCP POSTs
never become aiohttp requests at all: a :class:`~shadowproxy.fronts.http.connection.Connection` reads them and brings
them to :meth:`FrontDoor.answer`.

The edge checks (:meth:`FrontDoor.refusal`) read what both kinds of request carry alike: the HTTP version (1.0
and 1.1 only: 505), the request target (an absolute-form target's authority replaces Host, RFC 9112 §3.2.2) and
the Host value, which must be a well-formed ``host[:port]`` (400) and an allowed one (421).
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp import HttpVersion10, HttpVersion11, StreamReader, web

from shadowproxy.core import counters, logs
from shadowproxy.core.errors import UPSTREAM_UNAVAILABLE
from shadowproxy.core.logs import ACCEPTED_ID, ID_NUMBERS, ID_PREFIX, REQUEST_ID, REQUEST_ID_HEADER
from shadowproxy.fronts import auth
from shadowproxy.fronts.http.connection import Connection
from shadowproxy.fronts.http.fast_request import PlainRequest, PostEndpoint
from shadowproxy.fronts.http.wire import json_error
from shadowproxy.proxy.roles import Access

if TYPE_CHECKING:
    from shadowproxy.config import Config

log = logging.getLogger(__name__)

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
LOCAL_ORIGIN_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
MAX_JUDGED_HOSTS = 256
MAX_SHOWN = 100
# host [":" port]: an IP literal in brackets, or a name (IPv4 included) of letters, digits, "-", ".", "_", "~".
AUTHORITY = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(?::[0-9]{0,5})?")
ABSOLUTE = re.compile(r"(?i:https?)://([^/?#]*)")
# What probes read: a load balancer's default check (HTTP/1.0, no Host) and a Kubernetes probe (Host: <pod IP>:<port>)
# are served there with any allowed_hosts. A DNS-rebinding page's request always names the attacker's host, so
# neither a missing Host nor an IP literal can be one; the MCP and admin paths still require an allowed Host.
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
PROBE_METHODS = frozenset({"GET", "HEAD"})


class ShuttingDown(Exception):
    """Put on the body of a request still arriving when shutdown begins: whoever reads it answers 503."""


def allowed(value: str, defaults: frozenset[str], extra: tuple[str, ...]) -> bool:
    return "*" in extra or value in extra or value in defaults


def judge(authority: str, hosts: tuple[str, ...]) -> int:
    """0 for a Host (or absolute-form authority) that may be served; else the status that refuses it."""
    match = AUTHORITY.fullmatch(authority)
    if match is None:
        return 400
    host = match.group(1).lower()
    return 0 if allowed(authority, LOCAL_HOSTS, hosts) or allowed(host, LOCAL_HOSTS, hosts) else 421


def probe(request: web.BaseRequest, authority: str) -> bool:
    """Whether ``request`` is a health or metrics probe as load balancers and Kubernetes send it: a GET or HEAD of a
    probe path naming no host (HTTP/1.0 only) or an IP address, which any ``allowed_hosts`` lets through."""
    if request.method not in PROBE_METHODS or request.path not in PROBE_PATHS:
        return False
    if not authority:
        return request.version == HttpVersion10
    match = AUTHORITY.fullmatch(authority)
    if match is None:
        return False
    try:
        ipaddress.ip_address(match.group(1).strip("[]"))
    except ValueError:
        return False
    return True


def authority_of(request: web.BaseRequest) -> str | None:
    """The authority the request names: an absolute-form target's, else Host's; ``None`` for a target of neither
    form the server serves (authority-form, another scheme)."""
    target = request.raw_path
    if target.startswith("/") or target == "*":
        return request.headers.get("Host", "")
    absolute = ABSOLUTE.match(target)
    return absolute.group(1) if absolute is not None else None


async def send_now(request: web.BaseRequest, response: web.Response) -> web.Response:
    """``response`` sent at once and the connection closed: aiohttp would go on reading the body first."""
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()
    return response


class FrontDoor:
    """The aiohttp server's request handler, in front of the application's (:meth:`install`)."""

    def __init__(self, config: Config, endpoints: Iterable[PostEndpoint], access: Access | None = None) -> None:
        self.hosts = tuple(config.allowed_hosts)
        self.origins = tuple(config.allowed_origins)
        # Clients send the same few Host values on every request: each is judged once.
        self.judged_hosts: dict[str, int] = {}
        self.authenticate = auth.gate(config, access)
        self.endpoints = {endpoint.mount.path: endpoint for endpoint in endpoints}
        self.limits = config.limits
        self.max_body_size = config.max_body_size
        self.routed: Handler | None = None
        self.server: web.Server | None = None
        # Bodies of aiohttp requests being handled that were still arriving when the handler began.
        self.arriving: set[StreamReader] = set()
        self.draining = False

    def install(self, server: web.Server) -> None:
        """Become ``server``'s handler; the application's own handler serves what is not an MCP POST."""
        self.routed = server.request_handler
        self.server = server
        server.request_handler = self

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        endpoint = self.endpoints.get(request.path) if request.method == "POST" else None
        # A client that sends Expect waits for the router's "100 Continue" before it sends its body.
        if endpoint is not None and "Expect" not in request.headers:
            return await self.answer(request, endpoint.post, timed=True)  # type: ignore[arg-type]
        assert self.routed is not None, "FrontDoor.install was not called"
        return await self.answer(request, self.routed, timed=endpoint is not None)

    async def answer(
        self, request: web.BaseRequest | PlainRequest, handler: Handler, *, timed: bool
    ) -> web.StreamResponse:
        """``handler``'s answer, or the refusal that comes first; ``timed``: an MCP POST, whose overhead counts."""
        # logs.new_request_id written out, since every request pays for it: the client's own X-Request-Id when it
        # is a short plain token, else <process>-<counter>.
        given = request.headers.get(REQUEST_ID_HEADER)
        request_id = (
            given if given is not None and ACCEPTED_ID.fullmatch(given) else f"{ID_PREFIX}-{next(ID_NUMBERS):x}"
        )
        REQUEST_ID.set(request_id)
        response = self.refusal(request)  # type: ignore[arg-type]
        if response is None and self.authenticate is not None:
            response = await self.authenticate(request)  # type: ignore[arg-type]
        if response is None:
            began = counters.clock()
            body = None if isinstance(request, PlainRequest) or request.content.is_eof() else request.content
            if body is not None:
                self.arriving.add(body)
                if self.draining:
                    self.drain()
            try:
                response = await handler(request)  # type: ignore[arg-type]
            except web.HTTPException as exc:
                # aiohttp's own refusals (a body over client_max_size: 413) are answers too.
                logs.tag(exc.headers)
                raise
            except ShuttingDown:
                return await send_now(request, self.unfinished(REQUEST_ID.get()))  # type: ignore[arg-type]
            finally:
                if body is not None:
                    self.arriving.discard(body)
                if timed:
                    # The proxy's own share of an MCP POST's time: what the upstream did not spend.
                    counters.overhead(request, began)
        if not response.prepared:
            # A routed answer prepared by its handler (a stream) gets the id from the application's signal.
            response.headers[REQUEST_ID_HEADER] = request_id  # logs.tag: REQUEST_ID holds it still
        return response

    def connection(self) -> Connection:
        """A new client connection (the listening socket's protocol factory)."""
        assert self.server is not None, "FrontDoor.install was not called"
        return Connection(self, self.server, self.limits, self.max_body_size)

    def unfinished(self, request_id: str | None) -> web.Response:
        """503 to a request whose body was still arriving when shutdown began, on either kind of connection."""
        log.warning(
            "shutting down while a request's body was still arriving: answered 503", extra={"request_id": request_id}
        )
        response = json_error(503, UPSTREAM_UNAVAILABLE, "the proxy is shutting down")
        response.headers["Retry-After"] = "1"
        if request_id is not None:
            response.headers[REQUEST_ID_HEADER] = request_id
        response.force_close()
        return response

    def drain(self) -> None:
        """Shutdown: a request whose body is still arriving is answered 503 instead of being waited for."""
        self.draining = True
        for body in self.arriving:
            body.set_exception(ShuttingDown())
        self.arriving.clear()

    def refusal(self, request: web.BaseRequest | PlainRequest) -> web.Response | None:
        """Framing the proxy does not serve (505, 400), and DNS-rebinding protection, since the upstream only sees
        the proxy: Host (421), Origin (403)."""
        if type(request) is PlainRequest:
            # The connection reads HTTP/1.1 requests for one of its paths only (it hands aiohttp any other).
            authority: str | None = request.headers.get("Host", "")
        else:
            version = request.version
            if version != HttpVersion11 and version != HttpVersion10:
                return refused(505, f"HTTP/{version.major}.{version.minor} is not supported: use HTTP/1.1")
            authority = authority_of(request)  # type: ignore[arg-type]
            if authority is None:
                return refused(400, "the request target must be a path or an http(s) URL")
        status = self.judged_hosts.get(authority)
        if status is None:
            status = judge(authority, self.hosts)
            if len(self.judged_hosts) < MAX_JUDGED_HOSTS:
                self.judged_hosts[authority] = status
        if status and type(request) is not PlainRequest and probe(request, authority):  # type: ignore[arg-type]
            status = 0
        if status == 400:
            return refused(400, f"Host {authority[:MAX_SHOWN]!r} is not a valid host[:port]")
        if status:
            return refused(421, f"Host {authority[:MAX_SHOWN]!r} is not allowed")
        origin = request.headers.get("Origin")
        if origin is not None and not allowed(origin, frozenset(), self.origins):
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or parts.hostname not in LOCAL_ORIGIN_HOSTS:
                return refused(403, f"Origin {origin[:MAX_SHOWN]!r} is not allowed")
        return None


def refused(status: int, text: str) -> web.Response:
    """A refusal at the edge, logged (throttled) under the request's id; malformed framing closes the connection."""
    logs.bad_request(log, f"request refused with {status}: {text}")
    response = web.json_response({"error": text}, status=status)
    if status in (400, 505):
        response.force_close()
    return response
