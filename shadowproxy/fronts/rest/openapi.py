"""``GET /v1/mcp/servers/{name}/openapi.json``: an OpenAPI 3.1 document with one operation per tool, its request
body the tool's ``inputSchema``, so any OpenAPI client or generator can call MCP tools."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from shadowproxy import __version__

_OPERATION = re.compile(r"[^A-Za-z0-9_]")
ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "object", "properties": {"code": {"type": "integer"}, "message": {"type": "string"}}}
    },
}
RESULT = {
    "type": "object",
    "properties": {"content": {"type": "array", "items": {"type": "object"}}, "isError": {"type": "boolean"}},
}


def document(server: str, tools: list[dict[str, Any]]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for tool in tools:
        name = tool.get("name")
        if not isinstance(name, str):
            continue
        schema = tool.get("inputSchema") if isinstance(tool.get("inputSchema"), dict) else {"type": "object"}
        paths[f"/v1/mcp/servers/{quote(server, safe='')}/tools/{quote(name, safe='')}"] = {
            "post": {
                "operationId": _OPERATION.sub("_", name),
                "summary": (tool.get("description") or name).strip().split("\n", 1)[0][:200],
                "description": tool.get("description") or "",
                "requestBody": {"required": False, "content": {"application/json": {"schema": schema}}},
                "responses": {
                    "200": {
                        "description": "The tool's result (a tool error is isError: true)",
                        "content": {"application/json": {"schema": RESULT}},
                    },
                    **{
                        status: {"description": text, "content": {"application/json": {"schema": ERROR}}}
                        for status, text in (
                            ("403", "Blocked by policy"),
                            ("404", "No such tool"),
                            ("422", "Arguments that do not fit the tool's input schema"),
                            ("502", "The server could not be reached"),
                        )
                    },
                },
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": f"MCP tools of {server}", "version": __version__},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": paths,
    }
