"""The admin API's tool pins (``/_shadowproxy/pins``): what is pinned, what changed, approving and resetting.

``GET /pins`` lists every scope with its pending changes; ``GET /pins/{upstream}/{tool}`` shows one tool's pinned
definition beside the one the server now announces; ``POST /pins/{upstream}/{tool}/approve`` makes the new one the
pin; ``DELETE /pins/{upstream}`` forgets an upstream's pins so that its next list is trusted anew. ``?group=NAME``
picks a principal group's pins (default: the shared ones).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from shadowproxy.interceptors.pin_book import Change, PinBook, Scope

if TYPE_CHECKING:
    from shadowproxy.proxy.proxy import Proxy


def _error(status: int, text: str) -> web.Response:
    return web.json_response({"error": text}, status=status)


def describe_change(change: Change) -> dict[str, Any]:
    return {
        "tool": change.tool,
        "change": change.kind,
        "fields": change.fields if change.kind == "changed" else [],
        "seen": change.seen,
        "summary": change.describe(),
    }


def describe_scope(key: tuple[str, str], scope: Scope) -> dict[str, Any]:
    return {
        "upstream": key[0],
        "group": key[1] or None,
        "pinned": len(scope.pins),
        "pinned_at": scope.pinned_at,
        "settled": scope.settled,
        "changes": [describe_change(change) for change in scope.changes.values()],
    }


class PinsApi:
    """The handlers, bound to one proxy's pin book."""

    def __init__(self, book: PinBook) -> None:
        self.book = book

    def _scope(self, request: web.Request) -> tuple[str, str, Scope | None]:
        upstream = request.match_info["upstream"]
        group = request.query.get("group", "")
        return upstream, group, self.book.scopes.get((upstream, group))

    async def listing(self, request: web.Request) -> web.Response:
        scopes = [describe_scope(key, scope) for key, scope in sorted(self.book.scopes.items())]
        return web.json_response({"mode": self.book.mode, "scopes": scopes})

    async def show(self, request: web.Request) -> web.Response:
        upstream, group, scope = self._scope(request)
        tool = request.match_info["tool"]
        if scope is None:
            return _error(404, f"no pins for upstream {upstream!r}" + (f" in group {group!r}" if group else ""))
        change = scope.changes.get(tool)
        pin = scope.pins.get(tool)
        if change is None and pin is None:
            return _error(404, f"upstream {upstream!r} has no pinned tool {tool!r} and no change to it")
        shown: dict[str, Any] = {"upstream": upstream, "group": group or None, "tool": tool}
        if change is None:
            assert pin is not None
            shown.update(change=None, fields=[], old=pin[1], new=pin[1], digest=pin[0])
        else:
            shown.update(describe_change(change), old=change.old, new=change.new, digest=change.digest)
        return web.json_response(shown)

    async def approve(self, request: web.Request) -> web.Response:
        upstream, group, _ = self._scope(request)
        tool = request.match_info["tool"]
        change = self.book.approve(upstream, group, tool, by=f"admin API ({request.remote})")
        if change is None:
            return _error(404, f"upstream {upstream!r} has no pending change to tool {tool!r}")
        return web.json_response({"approved": describe_change(change), "upstream": upstream, "group": group or None})

    async def reset(self, request: web.Request) -> web.Response:
        upstream = request.match_info["upstream"]
        group = request.query.get("group")
        return web.json_response({"upstream": upstream, "reset": self.book.reset(upstream, group)})


def routes(proxy: Proxy) -> tuple[tuple[str, str, Any], ...]:
    """The pins routes, relative to the admin prefix."""
    api = PinsApi(proxy.pins)
    return (
        ("GET", "/pins", api.listing),
        ("GET", "/pins/{upstream}/{tool}", api.show),
        ("POST", "/pins/{upstream}/{tool}/approve", api.approve),
        ("DELETE", "/pins/{upstream}", api.reset),
    )


def _described(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    body = schema if schema is not None else {"$ref": "#/components/schemas/Error"}
    return {"description": description, "content": {"application/json": {"schema": body}}}


def openapi_paths() -> dict[str, Any]:
    """The pins operations, for :func:`shadowproxy.ops.admin_openapi.openapi_document`."""
    string = {"type": "string"}
    group = {"name": "group", "in": "query", "required": False, "schema": string,
             "description": "A principal group's pins (default: the shared ones)"}  # fmt: skip
    upstream = {"name": "upstream", "in": "path", "required": True, "schema": string}
    tool = {"name": "tool", "in": "path", "required": True, "schema": string}
    obj = {"type": "object"}
    security = [{"adminToken": []}]
    unauthorized = {"401": _described("No or wrong admin token")}

    def operation(name: str, summary: str, responses: dict[str, Any], parameters: list[Any]) -> dict[str, Any]:
        return {"operationId": name, "summary": summary, "security": security, "parameters": parameters,
                "responses": {**responses, **unauthorized}}  # fmt: skip

    return {
        "/pins": {
            "get": operation(
                "listPins",
                "Pinned tools and pending changes, per upstream and group",
                {"200": _described("Scopes", obj)},
                [],
            )
        },
        "/pins/{upstream}/{tool}": {
            "get": operation(
                "showPin",
                "A tool's pinned definition (old) beside the one announced now (new)",
                {"200": _described("The tool", obj), "404": _described("Nothing pinned")},
                [upstream, tool, group],
            )
        },
        "/pins/{upstream}/{tool}/approve": {
            "post": operation(
                "approvePin",
                "Accept the pending change: the new definition becomes the pin",
                {"200": _described("Approved", obj), "404": _described("No pending change")},
                [upstream, tool, group],
            )
        },
        "/pins/{upstream}": {
            "delete": operation(
                "resetPins",
                "Forget an upstream's pins (one group's with ?group)",
                {"200": _described("How many scopes were forgotten", obj)},
                [upstream, group],
            )
        },
    }
