"""``shadowproxy upstreams list|restart NAME`` and ``shadowproxy rules reload``: a running proxy's admin API.

Exit codes scripts can rely on: 0 done, 1 the proxy said no (unknown upstream,
restart failed, a rules file refused), 2 usage or connection error (no token,
wrong token, proxy unreachable, admin API off).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import aiohttp

from shadowproxy.cli import probe

TOKEN_ENV = "SHADOWPROXY_ADMIN_TOKEN"
DEFAULT_URL = "http://127.0.0.1:8765"
PREFIX = "/_shadowproxy"
TIMEOUT = 60.0
OK, REFUSED, USAGE = 0, 1, 2
EXAMPLES = f"""examples:
  export {TOKEN_ENV}=...
  shadowproxy upstreams list                          # a table, on {DEFAULT_URL}
  shadowproxy upstreams list --url http://proxy:8765 --json
  shadowproxy upstreams restart alpha                 # new processes, circuit closed
  shadowproxy rules reload                            # every rules file, checked before it takes
  shadowproxy rules reload --all                      # in a cluster: every instance

exit codes: 0 done; 1 the proxy said no (unknown upstream, restart failed, rules refused);
2 usage or connection error (no or wrong token, proxy unreachable, admin API off).
"""
COLUMNS = ("name", "transport", "status", "circuit", "restarts", "crashes", "sessions", "paths")


class AdminFailure(Exception):
    """The call could not be made or was not allowed (exit 2)."""


def connection(parser: argparse.ArgumentParser) -> None:
    """Where the proxy's admin API is, and its token."""
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the proxy's base URL (default {DEFAULT_URL})")
    parser.add_argument("--token", help=f"the admin token (default: ${TOKEN_ENV})")


def answering(parser: argparse.ArgumentParser) -> None:
    """:func:`connection`, and ``--json`` to print the proxy's answer as it came."""
    connection(parser)
    parser.add_argument("--json", action="store_true", help="print the proxy's JSON answer")


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``upstreams`` and, to the ``rules`` command already there, ``reload``."""
    formatter = argparse.RawDescriptionHelpFormatter
    upstreams = commands.add_parser(
        "upstreams", help="list or restart a running proxy's upstreams", epilog=EXAMPLES, formatter_class=formatter
    )
    actions = upstreams.add_subparsers(dest="upstreams_command", metavar="{list,restart,test}", required=True)
    listing = actions.add_parser("list", help="upstreams with status, circuit, restarts", epilog=EXAMPLES,
                                 formatter_class=formatter)  # fmt: skip
    answering(listing)
    listing.set_defaults(handler=cmd_list)
    restart = actions.add_parser("restart", help="restart a stdio upstream's processes and close its circuit",
                                 epilog=EXAMPLES, formatter_class=formatter)  # fmt: skip
    restart.add_argument("name", metavar="NAME", help="the upstream's name, as `upstreams list` shows it")
    answering(restart)
    restart.set_defaults(handler=cmd_restart)
    probe.register(actions)

    rules_actions = _subcommands(commands.choices["rules"])
    rules_actions.metavar = "{check,test,reload}"
    reload = rules_actions.add_parser("reload", help="make a running proxy reload its rules", epilog=EXAMPLES,
                                      formatter_class=formatter)  # fmt: skip
    answering(reload)
    reload.add_argument("--all", action="store_true", help="in a cluster: make every instance reload")
    reload.set_defaults(handler=cmd_reload)


def _subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise LookupError(f"{parser.prog} has no subcommands")


async def call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """The status and JSON body of one admin API call (sending ``body`` as JSON, if any); :class:`AdminFailure`
    when there is no usable answer."""
    token = args.token or os.environ.get(TOKEN_ENV)
    if not token:
        raise AdminFailure(f"no admin token: give --token or set {TOKEN_ENV}")
    url = args.url.rstrip("/") + PREFIX + path
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as client,
            client.request(method, url, headers={"Authorization": f"Bearer {token}"}, json=body) as response,
        ):
            answer = await response.json() if response.content_type == "application/json" else None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise AdminFailure(f"cannot reach the proxy at {args.url}: {exc or exc.__class__.__name__}") from None
    if response.status == 401:
        raise AdminFailure("the proxy refused the admin token")
    if response.status == 404 and answer is None:
        raise AdminFailure(f"no admin API at {args.url}: is `admin` configured on that proxy?")
    return response.status, answer


def run(command: str, args: argparse.Namespace, method: str, path: str) -> tuple[int, Any]:
    try:
        return asyncio.run(call(args, method, path))
    except AdminFailure as exc:
        print(f"shadowproxy {command}: {exc}", file=sys.stderr)
        return -1, None


def cmd_list(args: argparse.Namespace) -> int:
    status, body = run("upstreams list", args, "GET", "/upstreams")
    if status != 200:
        return USAGE if status == -1 else _refused("upstreams list", body)
    if args.json:
        print(json.dumps(body, indent=2))
    else:
        print(table([_row(entry) for entry in body["upstreams"]]))
    return OK


def cmd_restart(args: argparse.Namespace) -> int:
    status, body = run("upstreams restart", args, "POST", f"/upstreams/{args.name}/restart")
    if status != 200:
        return USAGE if status == -1 else _refused("upstreams restart", body)
    if args.json:
        print(json.dumps(body, indent=2))
    else:
        print(f"restarted {body['name']}: {body['status']}, circuit {body['circuit']}, {body['restarts']} restart(s)")
    return OK


def cmd_reload(args: argparse.Namespace) -> int:
    status, body = run("rules reload", args, "POST", "/rules/reload?all=true" if args.all else "/rules/reload")
    if status == -1:
        return USAGE
    if status == 202 and isinstance(body, dict):
        print(json.dumps(body) if args.json else f"asked {body['instances']} instance(s) to reload their rules")
        return OK
    if body is None or "interceptors" not in body:
        return _refused("rules reload", body)
    if args.json:
        print(json.dumps(body, indent=2))
    else:
        for result in body["interceptors"]:
            outcome = "reloaded" if result["reloaded"] else f"kept its old rules: {result['error']}"
            print(f"{result['interceptor']}: {outcome}")
        if not body["interceptors"]:
            print("nothing to reload: no interceptor in the chain can reload")
    return OK if body["reloaded"] else REFUSED


def _refused(command: str, body: Any) -> int:
    reason = body.get("error") if isinstance(body, dict) else None
    print(f"shadowproxy {command}: {reason or 'the proxy refused'}", file=sys.stderr)
    return REFUSED


def _row(entry: dict[str, Any]) -> list[str]:
    cells = {**entry, "paths": ",".join(entry["paths"]), "circuit": entry.get("circuit") or "-"}
    return [str(cells.get(column, "")) for column in COLUMNS]


def table(rows: list[list[str]]) -> str:
    """Left-aligned columns under an upper-case header."""
    header = [column.upper() for column in COLUMNS]
    widths = [max(len(row[index]) for row in [header, *rows]) for index in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in [header, *rows]]
    return "\n".join(line.rstrip() for line in lines)
