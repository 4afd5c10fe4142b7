"""Plugins for the extension-point tests, loaded by the proxy from config as ``tests.hook_fixtures:NAME``.

Each writes what happens to it as lines in the file its ``record`` option names, so a test can read
what a proxy process did with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shadowproxy.core.chain import MessageContext, Verdict, forward


def note(record: Path, line: str) -> None:
    with record.open("a") as file:
        file.write(line + "\n")


class Lifecycle:
    """An interceptor with every lifecycle hook, found as a plugin would be: by its methods alone."""

    name = "lifecycle"

    def __init__(self, record: Path) -> None:
        self.record = record

    async def on_message(self, ctx: MessageContext) -> Verdict:
        return forward()

    async def start(self) -> None:
        note(self.record, "start")

    async def reload(self) -> bool:
        note(self.record, "reload")
        return True

    async def close(self) -> None:
        note(self.record, "close")


class Watcher:
    """An observer and nothing else: a line per message it is shown, and one per reload."""

    name = "watcher"

    def __init__(self, record: Path) -> None:
        self.record = record

    def observe(self, ctx: MessageContext, verdict: Verdict) -> None:
        note(self.record, f"{ctx.direction.value} {ctx.method} {verdict.action.value} {ctx.transport}")

    async def reload(self) -> bool:
        note(self.record, "reload")
        return True


class Broken:
    """An observer that raises on every message it is shown."""

    name = "broken"

    def observe(self, ctx: MessageContext, verdict: Verdict) -> None:
        raise RuntimeError("the observer broke")


def lifecycle(options: Mapping[str, Any]) -> Lifecycle:
    return Lifecycle(Path(options["record"]))


def watcher(options: Mapping[str, Any]) -> Watcher:
    return Watcher(Path(options["record"]))


def broken(options: Mapping[str, Any]) -> Broken:
    return Broken()
