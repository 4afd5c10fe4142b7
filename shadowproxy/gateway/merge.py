"""The aggregate's own answers to ``initialize`` and ``server/discover``: the members' capabilities merged."""

from __future__ import annotations

from typing import Any

from shadowproxy import __version__
from shadowproxy.core.jsonrpc import Message, result_response
from shadowproxy.core.protocol import META_PROTOCOL_VERSION, meta_of


def modern(message: Message) -> bool:
    """A 2026-07-28 request: it names its protocol version in ``_meta``."""
    return META_PROTOCOL_VERSION in meta_of(message)


def answer(request: Message, result: dict[str, Any]) -> Message:
    """The gateway's own result for ``request``; a 2026-07-28 result says it is complete."""
    if modern(request):
        result = {**result, "resultType": "complete"}
    return result_response(request.id, result)  # type: ignore[arg-type]


def capabilities(results: list[dict[str, Any]]) -> dict[str, Any]:
    """What the members can do together; lists always announce changes (a member rejoining changes them)."""
    each = [result.get("capabilities") or {} for result in results]
    merged: dict[str, Any] = {}
    if any("tools" in caps for caps in each):
        merged["tools"] = {"listChanged": True}
    if any("prompts" in caps for caps in each):
        merged["prompts"] = {"listChanged": True}
    resources = [caps["resources"] for caps in each if isinstance(caps.get("resources"), dict)]
    if resources:
        merged["resources"] = {"listChanged": True, "subscribe": any(r.get("subscribe") for r in resources)}
    for plain in ("logging", "completions"):
        if any(plain in caps for caps in each):
            merged[plain] = {}
    return merged


def initialize(name: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``initialize`` result of a virtual server from its members' (at least one)."""
    instructions = [result["instructions"] for result in results if isinstance(result.get("instructions"), str)]
    merged: dict[str, Any] = {
        "protocolVersion": results[0].get("protocolVersion"),
        "capabilities": capabilities(results),
        "serverInfo": {"name": name, "version": __version__},
    }
    if instructions:
        merged["instructions"] = "\n\n".join(instructions)
    return merged


def discover(name: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``server/discover`` result: the first member's, with everyone's capabilities and the gateway's name."""
    if not results:
        return {"capabilities": {}, "serverInfo": {"name": name, "version": __version__}}
    merged = {**results[0], "capabilities": capabilities(results), "serverInfo": {"name": name, "version": __version__}}
    versions = [set(result.get("supportedVersions") or ()) for result in results]
    if all(versions):
        merged["supportedVersions"] = sorted(set.intersection(*versions))
    return merged
