"""``shadowproxy intercept``: set a breakpoint on a running proxy and decide each message it holds.

Interactive by default (a plain terminal or tmux: each held message printed whole, then one key and Enter):
resume it, edit it (a JSON line replaces it), drop it (a request gets -32010), or answer it (a JSON result).
With ``--json``, for scripts: each held message is a JSON line on stdout, and each line read from stdin is a
decision, ``{"id": ..., "decision": "approve"|"deny"|"answer", "message"?, "result"?, "reason"?}``.
The breakpoint is removed when the command ends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from shadowproxy.cli.admin import OK, TOKEN_ENV
from shadowproxy.cli.approvals import Admin, AdminFailure, connection, describe, refused, run
from shadowproxy.core.tasks import spawn

EXAMPLES = f"""examples:
  export {TOKEN_ENV}=...
  shadowproxy intercept --tool 'delete_*'                # calls to matching tools, either way
  shadowproxy intercept --direction server_to_client --method 'tools/list'
  shadowproxy intercept --session 3f2a --json            # held messages as JSON lines; decisions on stdin

keys: r resume, e edit (one JSON line replaces the message), d drop, a answer (a JSON result), q quit
"""


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("intercept", help="hold matching messages and decide each one", epilog=EXAMPLES,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--direction", choices=("client_to_server", "server_to_client", "both"), default="both")
    parser.add_argument("--method", help="a method glob, e.g. 'tools/*'")
    parser.add_argument("--tool", help="a tool name glob (tools/call and its reply)")
    parser.add_argument("--session", help="a session id prefix")
    parser.add_argument("--upstream", help="an upstream's name")
    parser.add_argument("--json", action="store_true", help="JSON lines out, decisions as JSON lines in")
    parser.add_argument("--by", default=os.environ.get("USER") or "operator", help="who decides (default $USER)")
    connection(parser)
    parser.set_defaults(handler=cmd_intercept)


def cmd_intercept(args: argparse.Namespace) -> int:
    return run("intercept", intercept(args))


async def intercept(args: argparse.Namespace) -> int:
    admin = Admin(args)
    fields = ("direction", "method", "tool", "session", "upstream")
    status, breakpoint = await admin.call("POST", "/breakpoints", {name: getattr(args, name) for name in fields})
    if status != 201:
        return refused("intercept", breakpoint)
    try:
        if args.json:
            return await scripted(admin, args)
        return await interactive(admin, args, breakpoint)
    finally:
        await admin.call("DELETE", f"/breakpoints/{breakpoint['id']}")


async def interactive(admin: Admin, args: argparse.Namespace, breakpoint: dict[str, Any]) -> int:
    shown = {key: value for key, value in breakpoint.items() if value is not None and key != "id"}
    print(f"breakpoint {breakpoint['id']} set: {json.dumps(shown)} (q to quit)", flush=True)
    async for hold in admin.holds():
        if hold["kind"] != "breakpoint" or hold["state"] != "pending":
            continue
        print(f"\nheld {hold['id']} {hold['direction']}: {describe(hold)}", flush=True)
        print(json.dumps(hold["message"], indent=2), flush=True)
        while True:
            key = (await asyncio.to_thread(input, "[r]esume [e]dit [d]rop [a]nswer [q]uit? ")).strip().lower()[:1]
            if key == "q":
                return OK
            body = await _decision(key, hold)
            if body is None:
                continue
            body["by"] = args.by
            status, answer = await admin.call("POST", f"/approvals/{hold['id']}", body)
            text = answer.get("state") if status == 200 else answer.get("error") if isinstance(answer, dict) else status
            print(f"  {text}", flush=True)
            break
    return OK


async def _decision(key: str, hold: dict[str, Any]) -> dict[str, Any] | None:
    if key == "r":
        return {"decision": "approve"}
    if key == "d":
        return {"decision": "deny", "reason": "dropped at the breakpoint"}
    if key in ("e", "a"):
        prompt = "message JSON> " if key == "e" else "result JSON> "
        text = await asyncio.to_thread(input, prompt)
        try:
            value = json.loads(text)
        except ValueError as exc:
            print(f"  not JSON: {exc}", flush=True)
            return None
        return {"decision": "approve", "message": value} if key == "e" else {"decision": "answer", "result": value}
    return None


async def scripted(admin: Admin, args: argparse.Namespace) -> int:
    """Held messages out as JSON lines; decisions in, one JSON line each, until stdin ends."""

    async def decide() -> None:
        while line := await asyncio.to_thread(sys.stdin.readline):
            try:
                body = json.loads(line)
                hold_id = body.pop("id")
            except (ValueError, KeyError, AttributeError):
                print(json.dumps({"error": f"not a decision: {line.strip()}"}), flush=True)
                continue
            body.setdefault("by", args.by)
            status, answer = await admin.call("POST", f"/approvals/{hold_id}", body)
            print(json.dumps(answer if status == 200 else {"id": hold_id, **(answer or {})}), flush=True)

    async def show() -> None:
        async for hold in admin.holds():
            if hold["kind"] == "breakpoint" and hold["state"] == "pending":
                print(json.dumps(hold), flush=True)

    reading = spawn(show(), name="intercept-holds")
    try:
        await decide()
    finally:
        reading.cancel()
        try:
            await reading
        except (asyncio.CancelledError, AdminFailure):
            pass
    return OK
