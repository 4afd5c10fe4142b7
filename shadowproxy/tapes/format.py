"""The tape format, and reading it.

A tape is one JSON Lines file per session. Its first line is the header::

    {"tape": 1, "proxy": "0.9.0", "session": "<digest>", "upstream": "default", "transport": "http",
     "protocol_version": "2025-11-25", "client": {"name": ..., "version": ...}, "started": "2026-...Z", "part": 1}

and each line after it is one message as it went on, after the chain::

    {"t": 0.0123, "dir": "client_to_server", "verdict": "forward", "by": null, "msg": {...}}

``t`` is seconds since the first message; ``verdict`` is forward, modified, block or respond, ``by`` the
interceptor that decided. The proxy's own answer to a request it blocked or answered is a line of its own with
``"from": "proxy"``. The session id is kept only as a digest: a tape can be shown to someone without handing
them a live session.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from shadowproxy.core.chain import Direction
from shadowproxy.core.errors import ShadowProxyError
from shadowproxy.core.jsonrpc import Kind, Message, classify

VERSION = 1
SUFFIX = ".jsonl"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.jsonl$")
"""A tape's file name, as the writer makes them and the admin API accepts them (no path in it)."""
C2S, S2C = Direction.CLIENT_TO_SERVER.value, Direction.SERVER_TO_CLIENT.value


class TapeError(ShadowProxyError):
    """A tape that cannot be read; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One recorded message: ``line`` is its line in the file (the header is line 1)."""

    line: int
    t: float
    direction: str
    verdict: str
    by: str | None
    data: dict[str, Any]
    from_proxy: bool = False

    @property
    def message(self) -> Message:
        return classify(self.data, None)

    @property
    def kind(self) -> Kind:
        return self.message.kind

    @property
    def method(self) -> str | None:
        method = self.data.get("method")
        return method if isinstance(method, str) else None

    @property
    def went_on(self) -> bool:
        """Whether the message reached the other side (the chain did not stop it)."""
        return self.verdict in ("forward", "modified")


@dataclass(frozen=True, slots=True)
class Tape:
    path: Path
    header: dict[str, Any]
    entries: tuple[Entry, ...]

    @property
    def name(self) -> str:
        return self.path.name


def read(path: str | Path) -> Tape:
    """A tape from its file; :class:`TapeError` naming the file and line of the first thing wrong."""
    path = Path(path)
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise TapeError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not lines:
        raise TapeError(f"{path}: empty, not a tape")
    header = _decoded(path, 1, lines[0])
    if header.get("tape") != VERSION:
        raise TapeError(f"{path}:1: not a tape header (tape format {VERSION} expected)")
    entries = []
    for number, raw in enumerate(lines[1:], start=2):
        if not raw.strip():
            continue
        item = _decoded(path, number, raw)
        try:
            entry = Entry(
                number,
                float(item["t"]),
                str(item["dir"]),
                str(item.get("verdict", "forward")),
                item.get("by"),
                item["msg"],
                item.get("from") == "proxy",
            )
            if entry.direction not in (C2S, S2C) or not isinstance(entry.data, dict):
                raise ValueError
            classify(entry.data, None)
        except Exception:
            raise TapeError(f"{path}:{number}: not a tape line (t, dir, msg: a JSON-RPC message)") from None
        entries.append(entry)
    return Tape(path, header, tuple(entries))


def tapes_in(path: str | Path) -> list[Path]:
    """A tape file, or the tapes in a folder, oldest first."""
    path = Path(path)
    if path.is_dir():
        return sorted(path.glob(f"*{SUFFIX}"), key=lambda file: (file.stat().st_mtime, file.name))
    if not path.exists():
        raise TapeError(f"{path}: no such file or folder")
    return [path]


def _decoded(path: Path, number: int, raw: bytes) -> dict[str, Any]:
    try:
        item = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise TapeError(f"{path}:{number}: invalid JSON: {exc}") from None
    if not isinstance(item, dict):
        raise TapeError(f"{path}:{number}: a tape line is a JSON object")
    return item


def describe(path: Path) -> dict[str, Any]:
    """A tape's listing: name, size, modification time, its message count and its header's summary."""
    stat = path.stat()
    with path.open("rb") as file:
        first = file.readline()
        count = sum(1 for line in file if line.strip())
    try:
        header = orjson.loads(first)
    except orjson.JSONDecodeError:
        header = {}
    header = header if isinstance(header, dict) else {}
    return {
        "name": path.name,
        "size": stat.st_size,
        "modified": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stat.st_mtime)),
        "messages": count,
        **{key: header.get(key) for key in ("session", "upstream", "transport", "protocol_version", "client")},
        "started": header.get("started"),
    }
