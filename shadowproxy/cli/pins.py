"""``shadowproxy pins list|show|approve|reset``: a running proxy's tool pins, through its admin API.

Exit codes as for the other admin commands: 0 done, 1 the proxy said no (no such pin or change), 2 usage or
connection error.
"""

from __future__ import annotations

import argparse
import difflib
import json
import urllib.parse
from typing import Any

from shadowproxy.cli.admin import OK, REFUSED, TOKEN_ENV, USAGE, _refused, answering, run

EXAMPLES = f"""examples:
  export {TOKEN_ENV}=...
  shadowproxy pins list                               # pinned tools and pending changes per upstream
  shadowproxy pins show default echo                  # the pinned definition beside the new one
  shadowproxy pins approve default echo               # the new definition becomes the pin
  shadowproxy pins reset default                      # forget the pins: the next list is trusted anew
  shadowproxy pins list --url http://proxy:8765 --json

exit codes: 0 done; 1 the proxy said no (no such pin or change); 2 usage or connection error.
"""
COLUMNS = ("UPSTREAM", "GROUP", "PINNED", "CHANGE", "TOOL", "FIELDS")


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``pins`` and its four subcommands."""
    formatter = argparse.RawDescriptionHelpFormatter
    pins = commands.add_parser("pins", help="a running proxy's tool pins: list, show, approve, reset",
                               epilog=EXAMPLES, formatter_class=formatter)  # fmt: skip
    actions = pins.add_subparsers(dest="pins_command", metavar="{list,show,approve,reset}", required=True)
    listing = actions.add_parser("list", help="pinned tools and pending changes", epilog=EXAMPLES,
                                 formatter_class=formatter)  # fmt: skip
    answering(listing)
    listing.set_defaults(handler=cmd_list)
    for name, text, handler in (
        ("show", "a tool's pinned definition beside the one the server announces now", cmd_show),
        ("approve", "accept a tool's new definition (or its removal) as the pin", cmd_approve),
    ):
        action = actions.add_parser(name, help=text, epilog=EXAMPLES, formatter_class=formatter)
        action.add_argument("upstream", metavar="UPSTREAM")
        action.add_argument("tool", metavar="TOOL")
        action.add_argument("--group", default="", help="a principal group's pins (default: the shared ones)")
        answering(action)
        action.set_defaults(handler=handler)
    reset = actions.add_parser("reset", help="forget an upstream's pins; its next tools/list is trusted anew",
                               epilog=EXAMPLES, formatter_class=formatter)  # fmt: skip
    reset.add_argument("upstream", metavar="UPSTREAM")
    reset.add_argument("--group", help="only this principal group's pins (default: every group's)")
    answering(reset)
    reset.set_defaults(handler=cmd_reset)


def _path(*parts: str, group: str | None = None) -> str:
    path = "/pins/" + "/".join(urllib.parse.quote(part, safe="") for part in parts)
    return path + (f"?group={urllib.parse.quote(group)}" if group else "")


def cmd_list(args: argparse.Namespace) -> int:
    status, body = run("pins list", args, "GET", "/pins")
    if status != 200:
        return USAGE if status == -1 else _refused("pins list", body)
    if args.json:
        print(json.dumps(body, indent=2))
        return OK
    rows: list[list[str]] = []
    for scope in body["scopes"]:
        common = [scope["upstream"], scope["group"] or "-", str(scope["pinned"])]
        for change in scope["changes"] or [None]:
            if change is None:
                rows.append([*common, "-", "-", "-"])
            else:
                rows.append([*common, change["change"], change["tool"], ",".join(change["fields"]) or "-"])
    print(f"pinning: {body['mode']}")
    print(_table(rows) if rows else "nothing pinned yet: no tools/list result has passed")
    return OK


def cmd_show(args: argparse.Namespace) -> int:
    status, body = run("pins show", args, "GET", _path(args.upstream, args.tool, group=args.group))
    if status != 200:
        return USAGE if status == -1 else _refused("pins show", body)
    if args.json:
        print(json.dumps(body, indent=2))
        return OK
    what = body["summary"] if body["change"] else f"tool {body['tool']!r} is as pinned"
    print(f"{what} (upstream {body['upstream']}{', group ' + body['group'] if body['group'] else ''})")
    print(side_by_side(body["old"], body["new"]))
    if body["change"]:
        print(f"\naccept it: shadowproxy pins approve {body['upstream']} {body['tool']}")
    return OK


def cmd_approve(args: argparse.Namespace) -> int:
    status, body = run("pins approve", args, "POST", _path(args.upstream, args.tool, "approve", group=args.group))
    if status != 200:
        return USAGE if status == -1 else _refused("pins approve", body)
    print(json.dumps(body) if args.json else f"approved: {body['approved']['summary']}")
    return OK


def cmd_reset(args: argparse.Namespace) -> int:
    status, body = run("pins reset", args, "DELETE", _path(args.upstream, group=args.group))
    if status != 200:
        return USAGE if status == -1 else _refused("pins reset", body)
    print(json.dumps(body) if args.json else f"reset {body['reset']} pin set(s) of {body['upstream']}")
    return OK if body["reset"] else REFUSED


def side_by_side(old: Any, new: Any, width: int = 60) -> str:
    """Two columns, pinned and now, aligned line by line; ``|`` marks a line that differs."""
    left = json.dumps(old, indent=2, sort_keys=True).splitlines() if old is not None else ["(none)"]
    right = json.dumps(new, indent=2, sort_keys=True).splitlines() if new is not None else ["(none)"]
    lines = [f"{'PINNED'.ljust(width)}   NOW"]
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=left, b=right, autojunk=False).get_opcodes():
        count = max(i2 - i1, j2 - j1)
        for offset in range(count):
            a = left[i1 + offset] if i1 + offset < i2 else ""
            b = right[j1 + offset] if j1 + offset < j2 else ""
            mark = " " if tag == "equal" else "|"
            lines.append(f"{_cut(a, width).ljust(width)} {mark} {b}")
    return "\n".join(line.rstrip() for line in lines)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[index]) for row in [list(COLUMNS), *rows]) for index in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in [list(COLUMNS), *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)
