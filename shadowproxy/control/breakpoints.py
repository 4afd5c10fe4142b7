"""Breakpoints: the operator's filters of messages to hold, in either direction (mitmproxy's intercept for MCP).

A filter names any of: direction, a method glob, a tool glob (of ``tools/call``), a session id prefix, an
upstream. A message matches when every part given matches; a reply is matched by the method and tool of the
request it answers.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import secrets
from dataclasses import dataclass
from typing import Any

from shadowproxy.core.chain import Direction
from shadowproxy.core.jsonrpc import Message

FIELDS = ("direction", "method", "tool", "session", "upstream")


class BreakpointError(ValueError):
    """A filter that cannot be set: the text names the field."""


@dataclass(frozen=True, slots=True)
class Breakpoint:
    """One filter; ``None`` parts match anything."""

    id: str
    direction: Direction | None = None
    method: str | None = None
    tool: str | None = None
    session: str | None = None
    upstream: str | None = None

    @classmethod
    def parse(cls, data: Any) -> Breakpoint:
        """From the admin API's JSON object; :class:`BreakpointError` for an unknown field or a bad value."""
        if not isinstance(data, dict):
            raise BreakpointError("a breakpoint is a JSON object")
        unknown = sorted(set(data) - set(FIELDS))
        if unknown:
            raise BreakpointError(f"unknown field {unknown[0]!r}; a breakpoint has {', '.join(FIELDS)}")
        for name in FIELDS:
            if data.get(name) is not None and not isinstance(data[name], str):
                raise BreakpointError(f"{name} must be a string")
        direction = data.get("direction")
        if direction not in (None, "both", "client_to_server", "server_to_client"):
            raise BreakpointError("direction must be client_to_server, server_to_client or both")
        return cls(
            id=secrets.token_hex(4),
            direction=Direction(direction) if direction not in (None, "both") else None,
            method=data.get("method"),
            tool=data.get("tool"),
            session=data.get("session"),
            upstream=data.get("upstream"),
        )

    @classmethod
    def restore(cls, data: dict[str, Any]) -> Breakpoint:
        """One that :meth:`to_dict` gave (from another instance, or the store), with its id."""
        made = cls.parse({name: data.get(name) for name in FIELDS})
        return dataclasses.replace(made, id=data["id"]) if isinstance(data.get("id"), str) else made

    def matches(
        self, message: Message, direction: Direction, session_id: str | None, upstream: str, request: Message | None
    ) -> bool:
        if self.direction is not None and direction is not self.direction:
            return False
        if self.upstream is not None and upstream != self.upstream:
            return False
        if self.session is not None and not (session_id or "").startswith(self.session):
            return False
        asked = request if message.method is None and request is not None else message
        if self.method is not None and not fnmatch.fnmatchcase(asked.method or "", self.method):
            return False
        if self.tool is not None:
            params = asked.params if isinstance(asked.params, dict) else {}
            name = params.get("name") if asked.method == "tools/call" else None
            if not isinstance(name, str) or not fnmatch.fnmatchcase(name, self.tool):
                return False
        return True

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "direction": self.direction.value if self.direction is not None else "both",
            "method": self.method,
            "tool": self.tool,
            "session": self.session,
            "upstream": self.upstream,
        }
