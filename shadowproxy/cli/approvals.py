"""``shadowproxy approvals list|show|approve|deny|watch``: deciding held calls through a running proxy's admin API.

Exit codes: 0 done; 1 the proxy said no (unknown id, already decided); 2 usage or connection error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from shadowproxy.cli.admin import DEFAULT_URL, OK, PREFIX, REFUSED, TOKEN_ENV, USAGE, AdminFailure, call, connection
from shadowproxy.core.sse import SseParser

EXAMPLES = f"""examples:
  export {TOKEN_ENV}=...
  shadowproxy approvals list                          # pending ones, on {DEFAULT_URL}
  shadowproxy approvals list --all --json             # settled ones too, as JSON
  shadowproxy approvals approve 3f2a9c0d1e2b4a5f
  shadowproxy approvals approve 3f2a9c0d1e2b4a5f --arguments '{{"amount": 5}}'
  shadowproxy approvals deny 3f2a9c0d1e2b4a5f --reason "not this account"
  shadowproxy approvals watch                         # asks about each new one as it arrives

exit codes: 0 done; 1 the proxy said no (unknown id, already decided); 2 usage or connection error.
"""
COLUMNS = ("id", "kind", "state", "rule", "call", "session", "age")


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    formatter = argparse.RawDescriptionHelpFormatter
    parser = commands.add_parser("approvals", help="list and decide held calls", epilog=EXAMPLES,
                                 formatter_class=formatter)  # fmt: skip
    actions = parser.add_subparsers(dest="approvals_command", metavar="{list,show,approve,deny,watch}", required=True)
    listing = actions.add_parser("list", help="held calls, pending ones unless --all", epilog=EXAMPLES,
                                 formatter_class=formatter)  # fmt: skip
    listing.add_argument("--all", action="store_true", help="settled ones too, with how they ended")
    listing.add_argument("--json", action="store_true", help="print the proxy's JSON answer")
    connection(listing)
    listing.set_defaults(handler=cmd_list)
    show = actions.add_parser("show", help="one held call, the message whole")
    show.add_argument("id", metavar="ID")
    connection(show)
    show.set_defaults(handler=cmd_show)
    for name, text in (("approve", "let a held call go on"), ("deny", "refuse a held call (-32010)")):
        action = actions.add_parser(name, help=text, epilog=EXAMPLES, formatter_class=formatter)
        action.add_argument("id", metavar="ID")
        action.add_argument("--reason", help="why (goes to the audit log, and to the client when denied)")
        action.add_argument("--by", default=os.environ.get("USER") or "operator", help="who decides (default $USER)")
        if name == "approve":
            action.add_argument("--arguments", help="replace the tool's arguments (a JSON object)")
        connection(action)
        action.set_defaults(handler=cmd_decide, decision=name)
    watch = actions.add_parser("watch", help="ask about each held call as it arrives", epilog=EXAMPLES,
                               formatter_class=formatter)  # fmt: skip
    watch.add_argument("--by", default=os.environ.get("USER") or "operator", help="who decides (default $USER)")
    connection(watch)
    watch.set_defaults(handler=cmd_watch)


class Admin:
    """The admin API of one proxy, for one command."""

    def __init__(self, args: argparse.Namespace) -> None:
        token = args.token or os.environ.get(TOKEN_ENV)
        if not token:
            raise AdminFailure(f"no admin token: give --token or set {TOKEN_ENV}")
        self.args = args
        self.base = args.url.rstrip("/") + PREFIX
        self.url = args.url
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return await call(self.args, method, path, body)

    async def holds(self) -> AsyncIterator[dict[str, Any]]:
        """Every hold as it is made and settled (pending ones first), until the proxy ends the stream."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as client,
                client.get(self.base + "/approvals/stream", headers=self.headers) as response,
            ):
                if response.status == 401:
                    raise AdminFailure("the proxy refused the admin token")
                if response.status != 200:
                    raise AdminFailure(f"no admin API at {self.url}: is `admin` configured on that proxy?")
                parser = SseParser()
                async for chunk in response.content.iter_any():
                    for event in parser.feed(chunk):
                        if event.event == "hold":
                            yield json.loads(event.data)
        except aiohttp.ClientError as exc:
            raise AdminFailure(f"cannot reach the proxy at {self.url}: {exc}") from None


def run(command: str, work: Any) -> int:
    try:
        return asyncio.run(work)
    except AdminFailure as exc:
        print(f"shadowproxy {command}: {exc}", file=sys.stderr)
        return USAGE
    except KeyboardInterrupt:
        return OK


def refused(command: str, body: Any) -> int:
    reason = body.get("error") if isinstance(body, dict) else None
    print(f"shadowproxy {command}: {reason or 'the proxy refused'}", file=sys.stderr)
    return REFUSED


def cmd_list(args: argparse.Namespace) -> int:
    async def work() -> int:
        status, body = await Admin(args).call("GET", "/approvals" + ("" if args.all else "?pending=true"))
        if status != 200:
            return refused("approvals list", body)
        if args.json:
            print(json.dumps(body, indent=2))
        else:
            print(table([row(hold) for hold in body["approvals"]]))
        return OK

    return run("approvals list", work())


def cmd_show(args: argparse.Namespace) -> int:
    async def work() -> int:
        status, body = await Admin(args).call("GET", f"/approvals/{args.id}")
        if status != 200:
            return refused("approvals show", body)
        print(json.dumps(body, indent=2))
        return OK

    return run("approvals show", work())


def cmd_decide(args: argparse.Namespace) -> int:
    command = f"approvals {args.decision}"
    body: dict[str, Any] = {"decision": args.decision, "reason": args.reason, "by": args.by}
    if getattr(args, "arguments", None):
        try:
            body["arguments"] = json.loads(args.arguments)
        except ValueError as exc:
            print(f"shadowproxy {command}: --arguments is not JSON: {exc}", file=sys.stderr)
            return USAGE

    async def work() -> int:
        status, answer = await Admin(args).call("POST", f"/approvals/{args.id}", body)
        if status != 200:
            return refused(command, answer)
        print(f"{answer['id']}: {answer['state']} by {answer['decided_by']}")
        return OK

    return run(command, work())


def cmd_watch(args: argparse.Namespace) -> int:
    async def work() -> int:
        admin = Admin(args)
        print("watching for held calls (Ctrl-C to stop)", flush=True)
        async for hold in admin.holds():
            if hold["kind"] != "approval":
                continue
            if hold["state"] != "pending":
                print(f"{hold['id']}: {hold['state']} by {hold.get('decided_by')}", flush=True)
                continue
            print(f"\nheld {hold['id']}: {describe(hold)}", flush=True)
            print(f"  arguments: {json.dumps(hold.get('arguments'))}", flush=True)
            answer = (await asyncio.to_thread(input, "  [a]pprove, [d]eny, [s]kip? ")).strip().lower()
            if answer[:1] not in ("a", "d"):
                continue
            decision = "approve" if answer.startswith("a") else "deny"
            reason = None
            if decision == "deny":
                reason = (await asyncio.to_thread(input, "  reason: ")).strip() or None
            body = {"decision": decision, "reason": reason, "by": args.by}
            status, settled = await admin.call("POST", f"/approvals/{hold['id']}", body)
            if status == 200:
                print(f"  {settled['state']}", flush=True)
            else:
                print(f"  not decided: {settled.get('error') if isinstance(settled, dict) else status}", flush=True)
        return OK

    return run("approvals watch", work())


def describe(hold: dict[str, Any]) -> str:
    call = f"{hold['method']} {hold['tool']}" if hold.get("tool") else str(hold.get("method"))
    session = (hold.get("session") or "-")[:8]
    rule = f" (rule {hold['rule']})" if hold.get("rule") else ""
    return f"{call} in session {session} on {hold.get('upstream')}{rule}"


def row(hold: dict[str, Any]) -> list[str]:
    call = hold.get("tool") or hold.get("method") or "-"
    age = f"{time.time() - hold['created_at']:.0f}s"
    state = (
        hold["state"] if not hold.get("reason") or hold["state"] == "pending" else f"{hold['state']}: {hold['reason']}"
    )
    cells = [hold["id"], hold["kind"], state, hold.get("rule") or "-", call, (hold.get("session") or "-")[:8], age]
    return cells


def table(rows: list[list[str]]) -> str:
    header = [column.upper() for column in COLUMNS]
    widths = [max(len(r[index]) for r in [header, *rows]) for index in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True)) for r in [header, *rows]]
    return "\n".join(line.rstrip() for line in lines)
