"""``shadowproxy upstreams test NAME``: start (or connect to) one upstream or virtual server of the config, as the
proxy would, and report what it answers and how long each step took.

Exit codes: 0 it initialized and listed its tools; 1 it did not (the step that failed is named); 2 usage or
config error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any

from shadowproxy import config
from shadowproxy.core.errors import JsonRpcError
from shadowproxy.core.jsonrpc import Message, classify, notification
from shadowproxy.gateway import AggregateUpstream
from shadowproxy.gateway.member import ask, gateway_id
from shadowproxy.upstreams import create_upstream
from shadowproxy.upstreams.base import Upstream

VERSION = "2025-11-25"
STEP_TIMEOUT = 60.0
EXAMPLES = """examples:
  shadowproxy upstreams test alpha --config shadowproxy/demo/shadowproxy.yaml
  shadowproxy upstreams test all --config shadowproxy/demo/gateway.yaml --json

exit codes: 0 it initialized and listed its tools; 1 a step failed (named); 2 usage or config error.
"""


def register(actions: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    test = actions.add_parser(
        "test",
        help="start or connect to one upstream or virtual server of the config; report timings and capabilities",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    test.add_argument("name", metavar="NAME", help="an upstream or virtual server of the config")
    test.add_argument("--config", help=f"YAML or mcpServers JSON file (default: ./{config.DEFAULT_CONFIG_FILE})")
    test.add_argument("--json", action="store_true", help="print JSON")
    test.set_defaults(handler=cmd_test)


def cmd_test(args: argparse.Namespace) -> int:
    cfg = config.load(args.config)
    upstreams = {upstream.name: create_upstream(upstream) for upstream in cfg.upstreams}
    servers = {server.name: server for server in cfg.virtual_servers}
    if args.name in servers:
        target: Upstream = AggregateUpstream(servers[args.name], upstreams)
    elif args.name in upstreams:
        target = upstreams[args.name]
    else:
        known = ", ".join([*upstreams, *servers])
        raise config.ConfigError(f"no upstream or virtual server {args.name!r}; known: {known}", key="name")
    report = asyncio.run(probe(target, list(upstreams.values())))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0 if report["ok"] else 1


async def probe(target: Upstream, upstreams: list[Upstream]) -> dict[str, Any]:
    report: dict[str, Any] = {"name": target.name, "ok": False, "steps": []}
    headers: Mapping[str, str] = {}
    try:
        began = time.perf_counter()
        channel = await step(report, "start", target.open(lambda message: None))
        try:
            init = request("initialize", {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": CLIENT})
            answer = await step(report, "initialize", ask(channel, init, headers, ignore))
            result = answer.result if isinstance(answer.result, dict) else {}
            report.update(
                server=result.get("serverInfo"),
                protocol=result.get("protocolVersion"),
                capabilities=result.get("capabilities"),
            )
            headers = {"MCP-Protocol-Version": str(result.get("protocolVersion"))}
            await channel.send(notification("notifications/initialized"), headers)
            capabilities = result.get("capabilities") or {}
            for method, key, capability in LISTS:
                if capability in capabilities:
                    listed = await step(report, method, ask(channel, request(method), headers, ignore))
                    items = listed.result.get(key) if isinstance(listed.result, dict) else None
                    named = [item for item in items or [] if isinstance(item, dict)]
                    report[key] = [item.get("name") or item.get("uri") for item in named]
            report["ok"] = True
            report["total_ms"] = round((time.perf_counter() - began) * 1000, 1)
        finally:
            await channel.close()
    except Failed:
        pass
    finally:
        await target.close()
        await asyncio.gather(*(upstream.close() for upstream in upstreams), return_exceptions=True)
    return report


class Failed(Exception):
    """A step failed; the report says which and why."""


async def step(report: dict[str, Any], name: str, work: Any) -> Any:
    began = time.perf_counter()
    entry: dict[str, Any] = {"step": name}
    report["steps"].append(entry)
    try:
        result = await asyncio.wait_for(work, STEP_TIMEOUT)
        if isinstance(result, Message) and result.error is not None:
            raise JsonRpcError(int(result.error.get("code", -32603)), str(result.error.get("message")))
    except (JsonRpcError, OSError, TimeoutError) as exc:
        entry["error"] = getattr(exc, "message", None) or str(exc) or exc.__class__.__name__
        raise Failed from None
    finally:
        entry["ms"] = round((time.perf_counter() - began) * 1000, 1)
    return result


CLIENT = {"name": "shadowproxy-upstreams-test", "version": "1"}
LISTS = (
    ("tools/list", "tools", "tools"),
    ("prompts/list", "prompts", "prompts"),
    ("resources/list", "resources", "resources"),
)


def request(method: str, params: dict[str, Any] | None = None) -> Message:
    data: dict[str, Any] = {"jsonrpc": "2.0", "id": gateway_id(), "method": method}
    if params is not None:
        data["params"] = params
    return classify(data, None)


def ignore(message: Message) -> None:
    """Notifications and logs a server sends while it is probed."""


def print_report(report: dict[str, Any]) -> None:
    print(f"{report['name']}: {'ok' if report['ok'] else 'FAILED'}")
    for entry in report["steps"]:
        outcome = f"error: {entry['error']}" if "error" in entry else "ok"
        print(f"  {entry['step']:<16} {entry['ms']:>9.1f} ms  {outcome}")
    if report.get("server"):
        print(f"  server           {report['server'].get('name')} {report['server'].get('version', '')}")
        print(f"  protocol         {report.get('protocol')}")
        print(f"  capabilities     {', '.join(sorted(report.get('capabilities') or {})) or '-'}")
    for key in ("tools", "prompts", "resources"):
        if key in report:
            print(f"  {key:<16} {len(report[key])}: {', '.join(map(str, report[key][:12]))}")
