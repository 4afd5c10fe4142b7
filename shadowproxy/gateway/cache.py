"""What the gateway keeps of its members' answers: their lists, and opted-in tool results.

A list is kept per member, method and scope (the principal, unless the member said ``cacheScope: public``) for
``cache.lists`` seconds, or for the member's own ``ttlMs`` when shorter (0: not kept); a member's
``list_changed``, its rejoining and a reload drop it at once. A tool result is kept only for tools named in
``cache.results.tools`` that the member marks ``readOnlyHint`` and ``idempotentHint``, per principal and arguments.
Both are bounded: past :data:`MAX_ENTRIES` the oldest goes.
"""

from __future__ import annotations

import fnmatch
import time
from typing import Any

import orjson

from shadowproxy.config.gateway import CacheConfig

MAX_ENTRIES = 512

ListKey = tuple[str, str, object]


class ListCache:
    """Each member's complete lists, by method and scope."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._entries: dict[ListKey, tuple[float, list[Any]]] = {}
        self.hits = 0

    def get(self, member: str, method: str, scope: object) -> list[Any] | None:
        now = time.monotonic()
        for key in ((member, method, scope), (member, method, None)):
            entry = self._entries.get(key)
            if entry is not None:
                if entry[0] > now:
                    self.hits += 1
                    return entry[1]
                del self._entries[key]
        return None

    def put(self, member: str, method: str, scope: object, items: list[Any], result: dict[str, Any]) -> None:
        seconds = self.seconds
        ttl_ms = result.get("ttlMs")
        if isinstance(ttl_ms, int) and not isinstance(ttl_ms, bool):
            seconds = min(seconds, ttl_ms / 1000)
        if seconds <= 0:
            return
        if len(self._entries) >= MAX_ENTRIES:
            del self._entries[next(iter(self._entries))]
        shared = result.get("cacheScope") == "public"
        self._entries[(member, method, None if shared else scope)] = (time.monotonic() + seconds, items)

    def invalidate(self, member: str, methods: frozenset[str] | None = None) -> None:
        for key in [key for key in self._entries if key[0] == member and (methods is None or key[1] in methods)]:
            del self._entries[key]

    def clear(self) -> None:
        self._entries.clear()


class ResultCache:
    """Results of read-only, idempotent tools the config opted in, by tool, principal and arguments."""

    def __init__(self, config: CacheConfig) -> None:
        self.globs = config.results.tools
        self.ttl = config.results.ttl
        self._entries: dict[tuple[str, object, bytes], tuple[float, Any]] = {}

    def key(self, tool: str, annotations: Any, scope: object, arguments: Any) -> tuple[str, object, bytes] | None:
        """The cache key of a call, or ``None`` when its result must not be kept."""
        if not self.globs or not isinstance(annotations, dict):
            return None
        if annotations.get("readOnlyHint") is not True or annotations.get("idempotentHint") is not True:
            return None
        if not any(fnmatch.fnmatchcase(tool, glob) for glob in self.globs):
            return None
        try:
            return tool, scope, orjson.dumps(arguments, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            return None

    def get(self, key: tuple[str, object, bytes]) -> Any:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: tuple[str, object, bytes], result: Any) -> None:
        if isinstance(result, dict) and result.get("isError"):
            return
        if len(self._entries) >= MAX_ENTRIES:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (time.monotonic() + self.ttl, result)

    def clear(self) -> None:
        self._entries.clear()
