"""``shadowproxy sessions``: list, show and close sessions by reading a store directly.

Works against a stopped proxy's SQLite file or a Redis that running proxies
share; the memory store lives inside a proxy process and cannot be read from
outside. Exit codes: 0 ok, 1 no such session, 2 bad usage or a store error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from shadowproxy import config
from shadowproxy.core.errors import ShadowProxyError
from shadowproxy.core.record import SessionRecord, SessionState
from shadowproxy.stores.base import SessionStore
from shadowproxy.stores.url import open_store, parse_store_url

EXAMPLES = """examples (after shadowproxy run --demo --store sqlite:sessions.db):
  shadowproxy sessions list --store sqlite:sessions.db
  shadowproxy sessions list --store redis://localhost:6379/0 --state active --json
  shadowproxy sessions show Zk3v --store sqlite:sessions.db
  shadowproxy sessions kill Zk3v --store redis://localhost:6379/0?prefix=prod:

A session is named by its id or by a prefix that only its id starts with, as `shadowproxy tap --session` takes.
"""
PAGE = 500
AMBIGUOUS_SHOWN = 10
COLUMNS = ("ID", "STATE", "UPSTREAM", "PRINCIPAL", "CLIENT", "MSGS", "ERRS", "CREATED", "LAST SEEN")


class UsageError(ShadowProxyError):
    """The command cannot run as asked (no readable store given)."""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``sessions list|show|kill`` to the ``shadowproxy`` command."""
    formatter = argparse.RawDescriptionHelpFormatter
    sessions = subparsers.add_parser(
        "sessions", help="list and inspect sessions in a store", epilog=EXAMPLES, formatter_class=formatter
    )
    actions = sessions.add_subparsers(dest="sessions_command", metavar="ACTION", required=True)

    listing = actions.add_parser(
        "list",
        help="list live sessions, oldest first",
        epilog="example:\n  shadowproxy sessions list --store sqlite:sessions.db --state active",
        formatter_class=formatter,
    )
    _store_options(listing)
    listing.add_argument("--state", choices=[state.value for state in SessionState], help="only sessions in STATE")
    listing.add_argument("--upstream", help="only sessions of this upstream")
    listing.add_argument("--principal", help="only sessions of this principal")
    listing.add_argument("--limit", type=_positive, default=100, help="show at most N sessions (default 100)")
    listing.add_argument("--cursor", help="continue after a previous listing (its next_cursor)")
    listing.set_defaults(handler=lambda args: _run(args, _list))

    show = actions.add_parser(
        "show",
        help="show one session in full",
        epilog="example:\n  shadowproxy sessions show Zk3v --store redis://localhost:6379/0 --json",
        formatter_class=formatter,
    )
    show.add_argument("id", help="the proxy session id, or a prefix of it that names one session")
    _store_options(show)
    show.set_defaults(handler=lambda args: _run(args, _show))

    kill = actions.add_parser(
        "kill",
        help="mark a session closed in the store",
        epilog="example:\n  shadowproxy sessions kill Zk3v --store sqlite:sessions.db",
        formatter_class=formatter,
    )
    kill.add_argument("id", help="the proxy session id, or a prefix of it that names one session")
    _store_options(kill)
    kill.set_defaults(handler=lambda args: _run(args, _kill))


def _store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", help="store URL (default: the config's store): sqlite:///path.db, redis://host/0")
    parser.add_argument(
        "--config", help=f"config file to take the store from (default: ./{config.DEFAULT_CONFIG_FILE})"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


Action = Callable[[SessionStore, argparse.Namespace], Awaitable[int]]


def _run(args: argparse.Namespace, action: Action) -> int:
    """Open the store, run ``action``, close the store; errors go to stderr with exit code 2."""
    try:
        store = _open(args)
    except ShadowProxyError as exc:
        return _fail(str(exc))

    async def main() -> int:
        try:
            return await action(store, args)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except (ShadowProxyError, ValueError) as exc:
        return _fail(str(exc))


def _open(args: argparse.Namespace) -> SessionStore:
    settings = config.load(args.config, store=args.store)
    spec = parse_store_url(settings.store)
    if spec.scheme == "memory":
        raise UsageError(
            "the memory store lives inside a running proxy; pass --store sqlite:///path.db or redis://host:port/db"
        )
    if spec.scheme == "sqlite" and not Path(spec.target).is_file():
        raise UsageError(f"no SQLite store at {spec.target} (from {spec.display})")
    return open_store(settings.store, ttl=settings.session_ttl)


def _fail(message: str) -> int:
    print(f"shadowproxy sessions: {message}", file=sys.stderr)
    return 2


def _not_found(session_id: str) -> int:
    print(f"shadowproxy sessions: no session {session_id!r} in the store (unknown or expired)", file=sys.stderr)
    return 1


async def _list(store: SessionStore, args: argparse.Namespace) -> int:
    state = SessionState(args.state) if args.state else None
    found: list[SessionRecord] = []
    cursor = args.cursor
    while len(found) < args.limit:
        page, cursor = await store.list(
            state=state,
            upstream=args.upstream,
            principal=args.principal,
            cursor=cursor,
            limit=min(PAGE, args.limit - len(found)),
        )
        found.extend(page)
        if cursor is None:
            break
    if args.json:
        _print_json({"sessions": [record.to_dict() for record in found], "next_cursor": cursor})
        return 0
    print(_table([_row(record) for record in found]))
    if cursor is not None:
        print(f"(more sessions: --cursor {cursor})")
    return 0


async def _find(store: SessionStore, wanted: str) -> SessionRecord | None:
    """The session ``wanted`` names: its full id, else the one id it is a prefix of (as the tap takes one)."""
    record = await store.get(wanted)
    if record is not None:
        return record
    matches: list[SessionRecord] = []
    cursor = None
    while True:
        page, cursor = await store.list(cursor=cursor, limit=PAGE)
        matches.extend(record for record in page if record.id.startswith(wanted))
        if cursor is None:
            break
    if len(matches) > 1:
        shown = ", ".join(record.id for record in matches[:AMBIGUOUS_SHOWN])
        more = f" and {len(matches) - AMBIGUOUS_SHOWN} more" if len(matches) > AMBIGUOUS_SHOWN else ""
        raise UsageError(f"{wanted!r} matches {len(matches)} sessions: {shown}{more}; give more of the id")
    return matches[0] if matches else None


async def _show(store: SessionStore, args: argparse.Namespace) -> int:
    record = await _find(store, args.id)
    if record is None:
        return _not_found(args.id)
    if args.json:
        _print_json(record.to_dict())
        return 0
    data = record.to_dict()
    for key in ("created_at", "last_seen"):
        data[key] = f"{_when(data[key])} ({data[key]:.3f})"
    width = max(map(len, data))
    for key, value in data.items():
        shown = value if isinstance(value, str) else orjson.dumps(value).decode()
        print(f"{key.ljust(width)}  {shown}")
    return 0


async def _kill(store: SessionStore, args: argparse.Namespace) -> int:
    record = await _find(store, args.id)
    if record is None:
        return _not_found(args.id)
    record.state = SessionState.CLOSED
    await store.put_many([record])
    if args.json:
        _print_json(record.to_dict())
    else:
        print(f"session {record.id} marked closed")
    return 0


def _row(record: SessionRecord) -> tuple[str, ...]:
    client = " ".join(part for part in (record.client_name, record.client_version) if part)
    return (
        record.id,
        record.state.value,
        record.upstream,
        record.principal or "-",
        client or "-",
        str(record.messages),
        str(record.errors),
        _when(record.created_at),
        _ago(record.last_seen),
    )


def _table(rows: list[tuple[str, ...]]) -> str:
    if not rows:
        return "no sessions"
    widths = [max(len(row[i]) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [COLUMNS, *rows]
    )


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _ago(timestamp: float) -> str:
    seconds = max(0, int(time.time() - timestamp))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def _print_json(data: Any) -> None:
    print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
