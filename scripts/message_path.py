"""Which product files one ``tools/call`` passes through: HTTP client, stdio upstream, rules on.

Runs the proxy in this process with a profiler that notes the file of every Python function called while one
``tools/call`` (after two warm-up calls) goes from the socket to the stdio server and back, three times, then
prints those each call passed through.
``docs/ARCHITECTURE.md`` lists the result; ``python scripts/message_path.py`` prints it again.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import aiohttp

import shadowproxy
from shadowproxy.config import load
from shadowproxy.core import jsonrpc
from shadowproxy.fronts.http import fast_path
from shadowproxy.proxy.proxy import Proxy
from shadowproxy.serve.app import FRONT_DOOR_KEY, make_app

PACKAGE = Path(shadowproxy.__file__).resolve().parent
ROOT = PACKAGE.parent
RULES = """\
rules:
  - id: no-delete
    match: {method: tools/call, tool: "delete_*"}
    action: block
"""
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def product_file(filename: str) -> str | None:
    path = Path(filename).resolve()
    for base in (PACKAGE, ROOT / "rules", ROOT / "stores", ROOT / "interceptors"):
        if path.is_relative_to(base):
            return str(path.relative_to(ROOT))
    return None


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules.yaml"
        rules.write_text(RULES)
        # The persistence worker writes in the background; with an hour between flushes none lands in the window.
        config = load(
            None, upstream=f"{sys.executable} -m shadowproxy.demo", rules=[str(rules)], port=0, flush_interval=3600
        )
        proxy = Proxy(config)
        app = make_app(proxy)
        runner = aiohttp.web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        door = app[FRONT_DOOR_KEY]
        door.install(runner.server)
        loop = asyncio.get_running_loop()
        factory = fast_path.protocols(runner.server, door.connection, config.limits.idle_timeout, config.fast_path)
        server = await loop.create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}{config.path}"
        seen: dict[str, dict[str, None]] = {}
        async with aiohttp.ClientSession() as client:
            init = {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "path", "version": "1"},
                },
            }
            async with client.post(url, json=init, headers=HEADERS) as answer:
                session = answer.headers["Mcp-Session-Id"]
                await answer.read()
            headers = {**HEADERS, "Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"}
            note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            async with client.post(url, json=note, headers=headers) as answer:
                await answer.read()
            call = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": "hi"}},
            }
            # Two warm-up calls: the first of a tool indexes the rules for it, the second leaves its decline in
            # the rules interceptor's cache; the profiled call is the third, as every later call of the tool is.
            for warm_up in (1, 2):
                call["id"] = warm_up
                async with client.post(url, json=call, headers=headers) as answer:
                    await answer.read()

            # The profiler sees whatever runs on the loop meanwhile, background timers too (the rules watcher's
            # poll, the pins writer): a file is on the path when each of three calls passes through it.
            runs: list[dict[str, dict[str, None]]] = []

            def profile(frame, event, arg):  # type: ignore[no-untyped-def]
                if event == "call":
                    name = product_file(frame.f_code.co_filename)
                    if name is not None:
                        runs[-1].setdefault(name, {})[frame.f_code.co_qualname] = None

            for call_id in (3, 4, 5):
                call["id"] = call_id
                runs.append({})
                sys.setprofile(profile)
                async with client.post(url, json=call, headers=headers) as answer:
                    body = await answer.read()
                sys.setprofile(None)
                assert b'"hi"' in body, body
        server.close()
        await runner.cleanup()
    jsonrpc.set_max_depth(config.limits.max_json_depth)
    for name in sorted(set(runs[0]).intersection(*runs[1:])):
        seen[name] = {function: None for function in runs[0][name] if all(function in run[name] for run in runs)}
    background = sorted(set().union(*runs) - set(seen))
    for name in sorted(seen):
        print(name, "   ", ", ".join(seen[name]) if "-v" in sys.argv else "")
    if background and "-v" in sys.argv:
        print("seen in some of the calls only (background timers):", ", ".join(background))
    print(f"{len(seen)} product files")


if __name__ == "__main__":
    asyncio.run(main())
