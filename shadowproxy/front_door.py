"""The first handler of every HTTP request: its id, the Host and Origin checks, authentication, then its handler.

The checks hold for every path, so they run here once instead of as aiohttp middlewares; a POST to an MCP
endpoint then goes straight to that endpoint, and everything else (GET streams, DELETE, health, metrics, the
admin API, WebSocket, legacy SSE) takes the application's router. On the echo benchmark the router, the
middleware wrappers and the response signal cost about an eighth of a POST's CPU in the proxy. Most MCP POSTs
never become aiohttp requests at all: a :class:`~shadowproxy.connection.Connection` reads them and brings
them to :meth:`FrontDoor.answer`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp import web

from shadowproxy import auth, logs, metrics
from shadowproxy.connection import Connection
from shadowproxy.logs import REQUEST_ID, REQUEST_ID_HEADER, new_request_id
from shadowproxy.plain import PlainRequest

if TYPE_CHECKING:
    from shadowproxy.app import Proxy

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
LOCAL_ORIGIN_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
MAX_JUDGED_HOSTS = 256


def allowed(value: str, defaults: frozenset[str], extra: tuple[str, ...]) -> bool:
    return "*" in extra or value in extra or value in defaults


def host_of(netloc: str) -> str:
    """``localhost:8765`` -> ``localhost``; ``[::1]:80`` -> ``[::1]``."""
    if netloc.startswith("["):
        return netloc[: netloc.find("]") + 1]
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


class FrontDoor:
    """The aiohttp server's request handler, in front of the application's (:meth:`install`)."""

    def __init__(self, proxy: Proxy) -> None:
        config = proxy.config
        self.hosts = tuple(config.allowed_hosts)
        self.origins = tuple(config.allowed_origins)
        # Clients send the same few Host values on every request: each is judged once.
        self.judged_hosts: dict[str, bool] = {}
        self.authenticate = auth.gate(config)
        self.endpoints = {endpoint.mount.path: endpoint for endpoint in proxy.endpoints}
        self.limits = config.limits
        self.max_body_size = config.max_body_size
        self.routed: Handler | None = None
        self.server: web.Server | None = None

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
        REQUEST_ID.set(new_request_id(request.headers.get(REQUEST_ID_HEADER)))
        response = self.refusal(request)  # type: ignore[arg-type]
        if response is None and self.authenticate is not None:
            response = await self.authenticate(request)  # type: ignore[arg-type]
        if response is None:
            began = metrics.clock()
            try:
                response = await handler(request)  # type: ignore[arg-type]
            except web.HTTPException as exc:
                # aiohttp's own refusals (a body over client_max_size: 413) are answers too.
                logs.tag(exc.headers)
                raise
            finally:
                if timed:
                    # The proxy's own share of an MCP POST's time: what the upstream did not spend.
                    metrics.overhead(request, began)
        if not response.prepared:
            # A routed answer prepared by its handler (a stream) gets the id from the application's signal.
            logs.tag(response.headers)
        return response

    def connection(self) -> Connection:
        """A new client connection (the listening socket's protocol factory)."""
        assert self.server is not None, "FrontDoor.install was not called"
        return Connection(self, self.server, self.limits, self.max_body_size)

    def refusal(self, request: web.BaseRequest) -> web.Response | None:
        """DNS-rebinding protection, since the upstream only sees the proxy: Host (421), Origin (403)."""
        headers = request.headers
        host = headers.get("Host", "")
        ok = self.judged_hosts.get(host)
        if ok is None:
            ok = allowed(host, LOCAL_HOSTS, self.hosts) or allowed(host_of(host), LOCAL_HOSTS, self.hosts)
            if len(self.judged_hosts) < MAX_JUDGED_HOSTS:
                self.judged_hosts[host] = ok
        if not ok:
            return web.json_response({"error": f"Host {host!r} is not allowed"}, status=421)
        origin = headers.get("Origin")
        if origin is not None and not allowed(origin, frozenset(), self.origins):
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or parts.hostname not in LOCAL_ORIGIN_HOSTS:
                return web.json_response({"error": f"Origin {origin!r} is not allowed"}, status=403)
        return None
