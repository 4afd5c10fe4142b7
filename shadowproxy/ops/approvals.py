"""The admin API of held messages: approvals and breakpoints (behind the admin token, under ``/_shadowproxy``).

    GET    /approvals                 held messages, newest first (``?pending=true``, ``?limit=N``)
    GET    /approvals/stream          SSE: each hold as it is made and as it is settled (the CLI's watch)
    GET    /approvals/{id}            one hold, with the message whole
    POST   /approvals/{id}            {"decision": "approve"|"deny"|"answer", "arguments"?, "message"?,
                                       "result"?, "reason"?, "by"?}
    GET    /breakpoints               the filters in force (on every instance of a cluster)
    POST   /breakpoints               {"direction"?, "method"?, "tool"?, "session"?, "upstream"?}
    DELETE /breakpoints/{id}

A hold is listed and decided from any instance of a cluster (the store keeps it); a breakpoint set on one
instance is set on all (:mod:`shadowproxy.cluster.breakpoints`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from shadowproxy.control import Breakpoint, BreakpointError, HoldError, HoldRegistry
from shadowproxy.core import sse
from shadowproxy.stores import StoreError

MAX_LIMIT = 1000
DECISION_FIELDS = frozenset({"decision", "arguments", "message", "result", "reason", "by"})


def _error(status: int, text: str) -> web.Response:
    return web.json_response({"error": text}, status=status)


class ApprovalsApi:
    """The handlers, bound to one proxy's hold registry."""

    def __init__(self, holds: HoldRegistry, keepalive: float) -> None:
        self.holds = holds
        self.keepalive = keepalive

    async def list(self, request: web.Request) -> web.Response:
        raw_limit = request.query.get("limit", "100")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            return _error(400, f"limit must be an integer from 1 to {MAX_LIMIT}")
        pending = request.query.get("pending", "false")
        if pending not in ("true", "false"):
            return _error(400, "pending must be true or false")
        try:
            holds = await self.holds.list(int(raw_limit), pending=pending == "true")
        except StoreError as exc:
            return _error(503, f"the store cannot be reached: {exc}")
        return web.json_response({"approvals": holds})

    async def get(self, request: web.Request) -> web.Response:
        try:
            hold = await self.holds.get(request.match_info["hold_id"])
        except StoreError as exc:
            return _error(503, f"the store cannot be reached: {exc}")
        if hold is None:
            return _error(404, f"no held message {request.match_info['hold_id']}")
        return web.json_response(hold)

    async def decide(self, request: web.Request) -> web.Response:
        try:
            body = await request.json(loads=orjson.loads)
        except ValueError:
            return _error(400, "the body must be a JSON object")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        unknown = sorted(set(body) - DECISION_FIELDS)
        if unknown:
            return _error(400, f"unknown field {unknown[0]!r}")
        for name in ("reason", "by"):
            if body.get(name) is not None and not isinstance(body[name], str):
                return _error(400, f"{name} must be a string")
        try:
            hold = await self.holds.decide(
                request.match_info["hold_id"],
                body.get("decision", ""),
                body.get("by") or "operator",
                body.get("reason"),
                arguments=body.get("arguments"),
                message=body.get("message"),
                result=body.get("result"),
            )
        except HoldError as exc:
            return _error(exc.status, exc.message)
        return web.json_response(hold)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """Holds as they come and go; first every pending one, so a watcher that starts late misses none."""
        queue = self.holds.watch()
        response = web.StreamResponse(status=200, headers=sse.SSE_HEADERS)
        try:
            await response.prepare(request)
            for hold in reversed(await self.holds.list(MAX_LIMIT, pending=True)):
                await response.write(_event(hold))
            while True:
                try:
                    async with asyncio.timeout(self.keepalive):
                        hold = await queue.get()
                except TimeoutError:
                    await response.write(sse.KEEPALIVE)
                    continue
                await response.write(_event(hold))
        except (ConnectionError, StoreError):
            pass
        finally:
            self.holds.watchers.discard(queue)
        return response

    async def breakpoints(self, request: web.Request) -> web.Response:
        return web.json_response({"breakpoints": [bp.to_dict() for bp in self.holds.breakpoints]})

    async def set_breakpoint(self, request: web.Request) -> web.Response:
        try:
            breakpoint = Breakpoint.parse(await request.json(loads=orjson.loads))
        except ValueError as exc:  # BreakpointError too
            text = str(exc) if isinstance(exc, BreakpointError) else "the body must be a JSON object"
            return _error(400, text)
        self.holds.set_breakpoint(breakpoint)
        return web.json_response(breakpoint.to_dict(), status=201)

    async def clear_breakpoint(self, request: web.Request) -> web.Response:
        if not self.holds.clear_breakpoint(request.match_info["breakpoint_id"]):
            return _error(404, f"no breakpoint {request.match_info['breakpoint_id']}")
        return web.Response(status=204)

    def routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("GET", "/approvals", self.list),
            ("GET", "/approvals/stream", self.stream),
            ("GET", "/approvals/{hold_id}", self.get),
            ("POST", "/approvals/{hold_id}", self.decide),
            ("GET", "/breakpoints", self.breakpoints),
            ("POST", "/breakpoints", self.set_breakpoint),
            ("DELETE", "/breakpoints/{breakpoint_id}", self.clear_breakpoint),
        ]


def _event(hold: dict[str, Any]) -> bytes:
    return sse.encode(orjson.dumps(hold), event="hold")
