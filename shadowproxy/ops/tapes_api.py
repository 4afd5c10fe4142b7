"""The admin API's tapes: ``GET /tapes`` (the list), ``/tapes/{name}`` (one, as JSON) and
``/tapes/{name}/download`` (the file as it is, JSON Lines)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web

from shadowproxy.tapes import format as tape_format

if TYPE_CHECKING:
    from shadowproxy.proxy.proxy import Proxy

_STRING = {"type": "string"}
_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _error(status: int, text: str) -> web.Response:
    return web.json_response({"error": text}, status=status)


class TapesApi:
    """The handlers, reading the recorder's folder off the event loop."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    async def list(self, request: web.Request) -> web.Response:
        recorder = self.proxy.tapes
        if recorder is None:
            return _error(404, "no tapes are configured (tapes: {dir: ...} or --record DIR)")
        rows = await asyncio.to_thread(_listing, recorder.dir)
        counts = {"written": recorder.written, "dropped": recorder.dropped, "unattributed": recorder.unattributed}
        return web.json_response({"tapes": rows, **counts})

    async def show(self, request: web.Request) -> web.Response:
        found = self._path(request)
        if isinstance(found, web.Response):
            return found
        try:
            tape = await asyncio.to_thread(tape_format.read, found)
        except tape_format.TapeError as exc:
            return _error(404 if not found.exists() else 422, str(exc).replace(str(found.parent) + "/", ""))
        messages = [{"line": e.line, "t": e.t, "dir": e.direction, "verdict": e.verdict, "by": e.by,
                     "from_proxy": e.from_proxy, "msg": e.data} for e in tape.entries]  # fmt: skip
        return web.json_response({"header": tape.header, "messages": messages})

    async def download(self, request: web.Request) -> web.StreamResponse:
        found = self._path(request)
        if isinstance(found, web.Response):
            return found
        if not found.is_file():
            return _error(404, f"no tape named {found.name}")
        disposition = f'attachment; filename="{found.name}"'
        headers = {"Content-Type": "application/x-ndjson", "Content-Disposition": disposition}
        return web.FileResponse(found, headers=headers)

    def _path(self, request: web.Request) -> Any:
        recorder = self.proxy.tapes
        if recorder is None:
            return _error(404, "no tapes are configured (tapes: {dir: ...} or --record DIR)")
        name = request.match_info["name"]
        if not tape_format.NAME.match(name):
            return _error(400, "a tape name is a file name ending in .jsonl, as GET /tapes lists them")
        return recorder.dir / name


def _listing(folder: Any) -> list[dict[str, Any]]:
    if not folder.is_dir():
        return []
    rows = []
    for path in tape_format.tapes_in(folder):
        try:
            rows.append(tape_format.describe(path))
        except OSError:
            continue  # expired while listed
    return rows


def routes(proxy: Proxy) -> tuple[tuple[str, str, Any], ...]:
    api = TapesApi(proxy)
    return (
        ("GET", "/tapes", api.list),
        ("GET", "/tapes/{name}", api.show),
        ("GET", "/tapes/{name}/download", api.download),
    )


def _operation(name: str, summary: str, ok: dict[str, Any], *codes: tuple[str, str]) -> dict[str, Any]:
    responses = {"200": ok, "401": {"description": "No or wrong admin token", **_ERROR}}
    responses.update({code: {"description": text, **_ERROR} for code, text in codes})
    return {"operationId": name, "summary": summary, "security": [{"adminToken": []}], "responses": responses}


_NAME_SCHEMA = {"type": "string", "pattern": tape_format.NAME.pattern}
_NAME = {"name": "name", "in": "path", "required": True, "schema": _NAME_SCHEMA}
_COUNT = {"type": "integer", "minimum": 0}
_LISTED = {
    "type": "object",
    "required": ["tapes", "written", "dropped", "unattributed"],
    "properties": {
        "tapes": {"type": "array", "items": {"type": "object"}},
        "written": _COUNT,
        "dropped": _COUNT,
        "unattributed": _COUNT,
    },
}
_NO_TAPES = ("404", "No tapes configured, or no tape of this name")
OPENAPI_PATHS: dict[str, Any] = {
    "/tapes": {
        "get": _operation(
            "listTapes",
            "Recorded sessions, oldest first",
            {"description": "The tapes", "content": {"application/json": {"schema": _LISTED}}},
            ("404", "No tapes configured"),
        )
    },
    "/tapes/{name}": {
        "parameters": [_NAME],
        "get": _operation(
            "getTape",
            "One tape: its header and messages",
            {"description": "The tape", "content": {"application/json": {"schema": {"type": "object"}}}},
            ("400", "Not a tape name"),
            _NO_TAPES,
            ("422", "Not a readable tape"),
        ),
    },
    "/tapes/{name}/download": {
        "parameters": [_NAME],
        "get": _operation(
            "downloadTape",
            "One tape's file, JSON Lines",
            {"description": "The file", "content": {"application/x-ndjson": {"schema": _STRING}}},
            ("400", "Not a tape name"),
            _NO_TAPES,
        ),
    },
}
