"""Progressive discovery (``discovery: search``): ``tools/list`` shows two meta-tools instead of every tool.

``search_tools`` ranks the tools by the query's words found in their names (weighted most), descriptions and
parameter names, and returns the best ``limit`` at the ``detail`` asked (``name``, ``summary`` or ``full``);
``call_tool`` calls one by name. A model with hundreds of tools in reach then pays for two in its context.
"""

from __future__ import annotations

import re
from typing import Any

SEARCH = "search_tools"
CALL = "call_tool"
DETAILS = ("name", "summary", "full")
_WORD = re.compile(r"[a-z0-9]+")

META_TOOLS: list[dict[str, Any]] = [
    {
        "name": SEARCH,
        "description": "Find tools by what they do. Returns the best matches; call one with call_tool.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "words describing the tool you need"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
                "detail": {"type": "string", "enum": list(DETAILS), "default": "summary"},
            },
            "required": ["query"],
        },
        "annotations": {"readOnlyHint": True, "idempotentHint": True},
    },
    {
        "name": CALL,
        "description": "Call a tool found with search_tools, by its name, with its arguments.",
        "inputSchema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "arguments": {"type": "object"}},
            "required": ["name"],
        },
    },
]


def words(text: Any) -> set[str]:
    return set(_WORD.findall(text.lower())) if isinstance(text, str) else set()


def score(tool: dict[str, Any], query: set[str]) -> float:
    name = tool.get("name", "")
    name_words = words(name.replace("_", " "))
    described = words(tool.get("description"))
    schema = tool.get("inputSchema")
    properties = schema.get("properties") if isinstance(schema, dict) else None
    keys = properties if isinstance(properties, dict) else {}
    params = {word for key in keys for word in words(key.replace("_", " "))}
    total = 0.0
    for word in query:
        total += 3 * (word in name_words) + 2 * (word in described) + (word in params)
        if word not in name_words and isinstance(name, str) and word in name.lower():
            total += 1.5
    return total


def shaped(tool: dict[str, Any], detail: str) -> dict[str, Any]:
    if detail == "name":
        return {"name": tool.get("name")}
    if detail == "summary":
        description = tool.get("description")
        first = description.strip().split("\n", 1)[0] if isinstance(description, str) else ""
        return {"name": tool.get("name"), "description": first}
    return tool


def search(tools: list[dict[str, Any]], arguments: dict[str, Any]) -> list[dict[str, Any]]:
    """The tools best matching ``arguments["query"]``; raises ``ValueError`` naming a bad argument."""
    query = arguments.get("query")
    limit = arguments.get("limit", 10)
    detail = arguments.get("detail", "summary")
    if not isinstance(query, str) or not query.strip():
        raise ValueError("query must be a non-empty string")
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 100:
        raise ValueError("limit must be an integer from 1 to 100")
    if detail not in DETAILS:
        raise ValueError(f"detail must be one of {', '.join(DETAILS)}")
    wanted = words(query.replace("_", " "))
    ranked = sorted(((score(tool, wanted), tool.get("name", "")), tool) for tool in tools if isinstance(tool, dict))
    ranked = [entry for entry in ranked if entry[0][0] > 0]
    ranked.sort(key=lambda entry: (-entry[0][0], entry[0][1]))
    return [shaped(tool, detail) for _, tool in ranked[:limit]]
