"""The REST facade's routes (``/v1/mcp/servers...``): each one MCP request or list, as :mod:`.calls` makes them.

Statuses: a tool's own error is 200 with ``isError``; a policy block 403; an unknown server, tool or prompt 404;
arguments that do not fit the tool's ``inputSchema`` (or that the server calls invalid) 422; an upstream that
cannot be reached 502.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from shadowproxy.core.errors import INVALID_PARAMS, METHOD_NOT_FOUND, JsonRpcError, UpstreamError
from shadowproxy.core.limit_hits import LimitExceeded
from shadowproxy.fronts.principal import PRINCIPAL
from shadowproxy.fronts.rest import openapi
from shadowproxy.fronts.rest.calls import Blocked, ask, every
from shadowproxy.proxy.mount import Mount

if TYPE_CHECKING:
    from shadowproxy.proxy.proxy import Proxy

PREFIX = "/v1/mcp/servers"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, code: int, message: str, data: Any = None) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        body["data"] = data
    return web.json_response({"error": body}, status=status, dumps=lambda obj: orjson.dumps(obj).decode())


def add_routes(app: web.Application, proxy: Proxy) -> None:
    facade = Facade(proxy)
    app.router.add_get(PREFIX, facade.servers)
    for method, path, handler in (
        ("GET", "/{name}/tools", facade.tools),
        ("POST", "/{name}/tools/{tool}", facade.call),
        ("GET", "/{name}/resources", facade.resources),
        ("GET", "/{name}/resources/read", facade.read),
        ("GET", "/{name}/prompts", facade.prompts),
        ("POST", "/{name}/prompts/{prompt}", facade.prompt),
        ("GET", "/{name}/openapi.json", facade.openapi),
    ):
        app.router.add_route(method, PREFIX + path, facade.guarded(handler))


class Facade:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.mounts = {mount.name: mount for mount in proxy.mounts}

    def guarded(self, handler: Callable[[web.Request, Mount], Awaitable[web.Response]]) -> Handler:
        """The mount named in the path, and MCP errors as statuses."""

        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            mount = self.mounts.get(request.match_info["name"])
            if mount is None:
                return error(404, METHOD_NOT_FOUND, f"no server {request.match_info['name']!r}")
            try:
                return await handler(request, mount)
            except Blocked as exc:
                return error(403, exc.code, exc.message, exc.data)
            except LimitExceeded as exc:
                return error(exc.status, -32000, str(exc))
            except UpstreamError as exc:
                return error(502, exc.code, exc.message)
            except JsonRpcError as exc:
                return error(422 if exc.code == INVALID_PARAMS else 502, exc.code, exc.message, exc.data)

        return guarded

    async def ask(self, request: web.Request, mount: Mount, method: str, params: dict[str, Any]) -> Any:
        return await ask(mount, self.proxy.guard, request.get(PRINCIPAL), method, params)

    async def every(self, request: web.Request, mount: Mount, method: str, key: str) -> list[Any]:
        return await every(mount, self.proxy.guard, request.get(PRINCIPAL), method, key)

    async def servers(self, request: web.Request) -> web.Response:
        virtual = {server.name: server for server in self.proxy.virtual}
        listed = []
        for name, mount in self.mounts.items():
            entry: dict[str, Any] = {"name": name, "path": mount.path}
            if name in virtual:
                problems = virtual[name].problems()
                entry.update(kind="virtual", status="degraded" if problems else "ok", problems=problems)
            else:
                monitor = self.proxy.monitors.get(name)
                entry.update(kind="upstream", status=monitor.status if monitor is not None else "unknown")
            listed.append(entry)
        return web.json_response({"servers": listed})

    async def tools(self, request: web.Request, mount: Mount) -> web.Response:
        return web.json_response({"tools": await self.every(request, mount, "tools/list", "tools")})

    async def call(self, request: web.Request, mount: Mount) -> web.Response:
        name = request.match_info["tool"]
        arguments = await body_of(request)
        if not isinstance(arguments, dict):
            return error(422, INVALID_PARAMS, "the body must be a JSON object: the tool's arguments")
        tools = {tool.get("name"): tool for tool in await self.every(request, mount, "tools/list", "tools")}
        tool = tools.get(name)
        if tool is None:
            return error(404, INVALID_PARAMS, f"no tool {name!r} on {mount.name!r}")
        schema = tool.get("inputSchema")
        if isinstance(schema, dict):
            import jsonschema  # the REST facade's calls only: every start would pay about 60 ms for it

            problems = [problem.message for problem in jsonschema.Draft202012Validator(schema).iter_errors(arguments)]
            if problems:
                return error(422, INVALID_PARAMS, f"arguments do not fit {name!r}", problems)
        result = await self.ask(request, mount, "tools/call", {"name": name, "arguments": arguments})
        return web.json_response(result)

    async def resources(self, request: web.Request, mount: Mount) -> web.Response:
        return web.json_response({"resources": await self.every(request, mount, "resources/list", "resources")})

    async def read(self, request: web.Request, mount: Mount) -> web.Response:
        uri = request.query.get("uri")
        if not uri:
            return error(400, INVALID_PARAMS, "give the resource's uri: ?uri=...")
        return web.json_response(await self.ask(request, mount, "resources/read", {"uri": uri}))

    async def prompts(self, request: web.Request, mount: Mount) -> web.Response:
        return web.json_response({"prompts": await self.every(request, mount, "prompts/list", "prompts")})

    async def prompt(self, request: web.Request, mount: Mount) -> web.Response:
        name = request.match_info["prompt"]
        arguments = await body_of(request)
        if not isinstance(arguments, dict):
            return error(422, INVALID_PARAMS, "the body must be a JSON object: the prompt's arguments")
        prompts = {prompt.get("name") for prompt in await self.every(request, mount, "prompts/list", "prompts")}
        if name not in prompts:
            return error(404, INVALID_PARAMS, f"no prompt {name!r} on {mount.name!r}")
        return web.json_response(await self.ask(request, mount, "prompts/get", {"name": name, "arguments": arguments}))

    async def openapi(self, request: web.Request, mount: Mount) -> web.Response:
        tools = await self.every(request, mount, "tools/list", "tools")
        return web.json_response(openapi.document(mount.name, tools))


async def body_of(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
