"""``shadowproxy wrap`` and ``unwrap``: put an MCP client's servers behind the proxy, and take them out again.

``wrap CONFIG.json`` rewrites each entry of ``mcpServers`` (``servers`` in VS
Code's ``mcp.json``) so the client launches ``shadowproxy stdio -- <original
command>``; a server given by ``url`` becomes ``shadowproxy stdio --upstream
URL``. The file as it was is kept next to it (``CONFIG.json.shadowproxy.bak``).
``unwrap`` restores each wrapped entry: from the backup when it holds that
entry, else from the command line the entry carries. Entries already wrapped,
and servers it cannot wrap (a URL with headers), are left as they are.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from shadowproxy.core.errors import ConfigError

BACKUP_SUFFIX = ".shadowproxy.bak"
SERVER_KEYS = ("mcpServers", "servers")


class WrapError(ConfigError):
    """A client config that cannot be wrapped or unwrapped; the message names the file (and line)."""


def proxy_command() -> list[str]:
    """How a client should start the proxy: the installed script next to this Python, else ``python -m``."""
    script = Path(sys.executable).with_name("shadowproxy")
    if script.exists():
        return [str(script)]
    found = shutil.which("shadowproxy")
    return [found] if found else [sys.executable, "-m", "shadowproxy"]


def read_config(path: Path) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """The whole document, the key holding the servers, and the servers."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WrapError(f"cannot read: {exc.strerror}", source=str(path)) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WrapError(f"not valid JSON: {exc.msg} (column {exc.colno})", source=f"{path}:{exc.lineno}") from None
    if not isinstance(document, dict):
        raise WrapError("the top level must be a JSON object", source=str(path))
    for key in SERVER_KEYS:
        servers = document.get(key)
        if isinstance(servers, dict):
            return document, key, servers
    raise WrapError('no "mcpServers" object: is this an MCP client config?', source=str(path))


def write_config(path: Path, document: dict[str, Any]) -> None:
    """Write through a temporary file, so a crash never leaves half a config."""
    temporary = path.with_name(f".{path.name}.shadowproxy.tmp")
    temporary.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def split_wrapped(entry: Any) -> tuple[list[str], list[str], list[str]] | None:
    """A wrapped entry's launcher, proxy options and upstream part (``-- CMD...`` or ``--upstream URL``)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("args"), list):
        return None
    command = [str(entry.get("command", "")), *map(str, entry["args"])]
    if "stdio" not in command:
        return None
    stdio = command.index("stdio")
    launcher, rest = command[:stdio], command[stdio + 1 :]
    if not launcher or not (Path(launcher[0]).name == "shadowproxy" or launcher[-2:] == ["-m", "shadowproxy"]):
        return None
    for marker, size in (("--", 2), ("--upstream", 2)):
        if marker in rest:
            start = rest.index(marker)
            tail = rest[start:]
            if len(tail) >= size and (marker == "--" or len(tail) == size):
                return launcher, rest[:start], tail
    return None


def wrap_entry(entry: dict[str, Any], launcher: list[str], options: list[str]) -> dict[str, Any] | None:
    """The wrapped entry, or ``None`` when it cannot be wrapped."""
    if isinstance(entry.get("command"), str):
        args = entry.get("args") or []
        if not isinstance(args, list):
            return None
        tail = ["--", entry["command"], *map(str, args)]
    elif isinstance(entry.get("url"), str) and not entry.get("headers"):
        tail = ["--upstream", entry["url"]]
    else:
        return None
    wrapped: dict[str, Any] = {"command": launcher[0], "args": [*launcher[1:], "stdio", *options, *tail]}
    wrapped.update(
        (key, value) for key, value in entry.items() if key not in ("command", "args", "url", "type", "headers")
    )
    return wrapped


def unwrap_entry(entry: dict[str, Any], tail: list[str]) -> dict[str, Any]:
    """The entry as it was, rebuilt from the command line it carries."""
    rest = {key: value for key, value in entry.items() if key not in ("command", "args")}
    if tail[0] == "--":
        return {"command": tail[1], "args": tail[2:], **rest}
    return {"type": "http", "url": tail[1], **rest}


def wrap(path: Path, *, launcher: list[str] | None = None, options: list[str] | None = None) -> list[str]:
    """Wrap every server of the client config at ``path``; returns the names wrapped."""
    document, key, servers = read_config(path)
    launcher = launcher or proxy_command()
    changed: list[str] = []
    for name, entry in servers.items():
        if not isinstance(entry, dict) or split_wrapped(entry) is not None:
            continue
        wrapped = wrap_entry(entry, launcher, options or [])
        if wrapped is None:
            print(
                f"shadowproxy: {path}: server {name!r} left as it is (no command, or a url with headers)",
                file=sys.stderr,
            )
            continue
        servers[name] = wrapped
        changed.append(name)
    if changed:
        shutil.copy2(path, backup_of(path))
        document[key] = servers
        write_config(path, document)
    return changed


def unwrap(path: Path) -> list[str]:
    """Undo :func:`wrap` for every wrapped server of ``path``; returns the names restored."""
    document, key, servers = read_config(path)
    backup: dict[str, Any] = {}
    if backup_of(path).exists():
        backup = read_config(backup_of(path))[2]
    restored: list[str] = []
    for name, entry in servers.items():
        parts = split_wrapped(entry)
        if parts is None:
            continue
        launcher, options, tail = parts
        before = backup.get(name)
        # The backup's entry keeps what a rebuild cannot ("type", key order), if wrapping it gives this entry.
        same = isinstance(before, dict) and wrap_entry(before, launcher, options) == entry
        servers[name] = before if same else unwrap_entry(entry, tail)
        restored.append(name)
    if restored:
        document[key] = servers
        write_config(path, document)
    return restored


def backup_of(path: Path) -> Path:
    return path.with_name(path.name + BACKUP_SUFFIX)


def cmd_wrap(args: argparse.Namespace) -> int:
    rules = [item if item.startswith("builtin:") else str(Path(item).resolve()) for item in args.rules or []]
    options = [item for path in rules for item in ("--rules", path)]
    if args.proxy_config:
        options += ["--config", str(Path(args.proxy_config).resolve())]
    names = wrap(Path(args.file), launcher=shlex.split(args.command) if args.command else None, options=options)
    if names:
        print(f"wrapped {len(names)} server(s): {', '.join(names)}; the original is in {backup_of(Path(args.file))}")
    else:
        print("nothing to wrap: every server is wrapped already or cannot be")
    return 0


def cmd_unwrap(args: argparse.Namespace) -> int:
    names = unwrap(Path(args.file))
    print(f"unwrapped {len(names)} server(s): {', '.join(names) or '-'}")
    return 0


def register(commands: Any) -> None:
    """Add ``wrap`` and ``unwrap`` to the CLI."""
    wrap_parser = commands.add_parser(
        "wrap", help="rewrite an MCP client config so each server runs behind the proxy (keeps a backup)"
    )
    wrap_parser.add_argument("file", metavar="CONFIG.json", help="the client's config (claude_desktop_config.json…)")
    wrap_parser.add_argument("--rules", action="append", help="rules for the wrapped servers (repeatable)")
    wrap_parser.add_argument("--proxy-config", help="a shadowproxy config file the wrapped servers use")
    wrap_parser.add_argument("--command", help='how the client starts the proxy (default: this "shadowproxy")')
    wrap_parser.set_defaults(handler=cmd_wrap)
    unwrap_parser = commands.add_parser("unwrap", help="undo wrap: run each server directly again")
    unwrap_parser.add_argument("file", metavar="CONFIG.json")
    unwrap_parser.set_defaults(handler=cmd_unwrap)
