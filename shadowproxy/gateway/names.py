"""Namespaced names: ``<member><separator><name>``, with the virtual server's excludes, renames and descriptions."""

from __future__ import annotations

import fnmatch
from typing import Any

from shadowproxy.config.gateway import ToolsConfig


class Names:
    """How a member's tool and prompt names appear to clients, and back."""

    def __init__(self, members: tuple[str, ...], separator: str, tools: ToolsConfig) -> None:
        self.members = members
        self.separator = separator
        self.tools = tools
        self._renamed_back = {new: old for old, new in tools.rename.items()}

    def outer(self, member: str, name: str) -> str:
        return f"{member}{self.separator}{name}"

    def split(self, outer: str) -> tuple[str, str] | None:
        """The member and its own name for a namespaced name; ``None`` when no member has that prefix."""
        member, sep, name = outer.partition(self.separator)
        if sep and name and member in self.members:
            return member, name
        return None

    def tool_target(self, shown: str) -> tuple[str, str] | None:
        """The member and tool behind a tool name as clients see it (renamed or namespaced), unless excluded."""
        outer = self._renamed_back.get(shown)
        if outer is None:
            if shown in self.tools.rename:
                return None  # the old name of a renamed tool is not a second way in
            outer = shown
        if self.excluded(outer):
            return None
        return self.split(outer)

    def excluded(self, outer: str) -> bool:
        return any(fnmatch.fnmatchcase(outer, pattern) for pattern in self.tools.exclude)

    def shown_tool(self, member: str, tool: dict[str, Any]) -> dict[str, Any] | None:
        """A member's tool as clients see it, or ``None`` when excluded."""
        name = tool.get("name")
        if not isinstance(name, str):
            return None
        outer = self.outer(member, name)
        if self.excluded(outer):
            return None
        shown = self.tools.rename.get(outer, outer)
        tool = {**tool, "name": shown}
        description = self.tools.describe.get(shown) or self.tools.describe.get(outer)
        if description is not None:
            tool["description"] = description
        return tool

    def shown_prompt(self, member: str, prompt: dict[str, Any]) -> dict[str, Any] | None:
        name = prompt.get("name")
        if not isinstance(name, str):
            return None
        return {**prompt, "name": self.outer(member, name)}
