"""``GET /_shadowproxy/rules``: the rules in force, for the console's policy view.

For each ``rules`` interceptor of the chain: its files and default, every enabled rule (id, file, line,
action, priority, description) with its hits since the proxy started, and the error of the last reload it
refused (``null`` once a reload is taken). Hits are read from ``shadowproxy_rule_decisions_total`` (the counter
the engine already feeds), so a rule keeps its count across reloads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from shadowproxy.interceptors.rules import RulesInterceptor
from shadowproxy.rules import metrics

if TYPE_CHECKING:
    from shadowproxy.proxy.proxy import Proxy

_string, _count = {"type": "string"}, {"type": "integer", "minimum": 0}
_nullable = {"type": "string", "nullable": True}
_rule = {
    "type": "object",
    "required": ["id", "file", "line", "action", "priority", "description", "hits"],
    "properties": {
        "id": _string,
        "file": _string,
        "line": {"type": "integer", "nullable": True},
        "action": _string,
        "priority": {"type": "integer"},
        "description": _nullable,
        "hits": _count,
    },
}
_interceptor = {
    "type": "object",
    "required": ["interceptor", "files", "default", "last_error", "rules"],
    "properties": {
        "interceptor": _string,
        "files": {"type": "array", "items": _string},
        "default": {"type": "string", "enum": ["allow", "block"]},
        "last_error": _nullable,
        "rules": {"type": "array", "items": _rule},
    },
}
OPENAPI_PATHS = {
    "/rules": {
        "get": {
            "operationId": "listRules",
            "summary": "The rules in force, with hits per rule and the last refused reload's error",
            "security": [{"adminToken": []}],
            "responses": {
                "200": {
                    "description": "One entry per rules interceptor",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["interceptors"],
                                "properties": {"interceptors": {"type": "array", "items": _interceptor}},
                            }
                        }
                    },
                },
                "401": {
                    "description": "No or wrong admin token",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
            },
        }
    }
}


def hits() -> dict[tuple[str, str], int]:
    """Decisions per (rule id, action) since the proxy started."""
    found: dict[tuple[str, str], int] = {}
    for family in metrics.DECISIONS.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                found[(sample.labels["rule"], sample.labels["action"])] = int(sample.value)
    return found


def describe(interceptor: RulesInterceptor, counted: dict[tuple[str, str], int]) -> dict[str, Any]:
    rules = interceptor.rules
    summary = rules.summary()
    return {
        "interceptor": interceptor.name,
        "files": summary["files"],
        "default": summary["default"],
        "last_error": interceptor.last_error,
        "rules": [
            {
                "id": rule.id,
                "file": rule.file,
                "line": rule.line,
                "action": rule.effect.value,
                "priority": rule.priority,
                "description": rule.description,
                "hits": counted.get((rule.id, rule.effect.value), 0),
            }
            for rule in rules.rules
        ],
    }


def handler(proxy: Proxy) -> web.Handler:
    async def list_rules(request: web.Request) -> web.Response:
        counted = hits()
        found = [describe(hook, counted) for hook in proxy.chain.interceptors if isinstance(hook, RulesInterceptor)]
        return web.json_response({"interceptors": found})

    return list_rules
