"""How the console's flow view holds up under load: a proxy in front of a fast stdio echo server, the console open
on the flow view in Debian's chromium, and clients sending tool calls for a while; then what the page drew.

    python scripts/console_flow_load.py --seconds 10 --clients 32

Prints the messages per second the tap carried, what the page counted (matched, not drawn, dropped by the
proxy and by the console), the rows kept, and the gaps between animation frames (the longest is how long the
tab was frozen at worst). Needs chromium (apt-get install chromium) and playwright (the dev extra).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml
from playwright.async_api import async_playwright

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.security.helpers import HEADERS, open_session  # noqa: E402
from tests.support import ProxyProcess  # noqa: E402

TOKEN = "console-load-token-0123456789"
GAPS = """
window.consoleGaps = [];
let last = performance.now();
const tick = (now) => { window.consoleGaps.push(now - last); last = now; requestAnimationFrame(tick); };
requestAnimationFrame(tick);
"""


async def load(url: str, seconds: float, clients: int) -> int:
    session = {**HEADERS, "Mcp-Session-Id": await open_session(url), "MCP-Protocol-Version": "2025-11-25"}
    sent = 0
    deadline = time.monotonic() + seconds

    async def client(http: aiohttp.ClientSession, first: int) -> None:
        nonlocal sent
        n = first
        while time.monotonic() < deadline:
            body = {"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {"name": "echo", "arguments": {}}}
            async with http.post(url, json=body, headers=session) as response:
                await response.read()
            sent += 1
            n += clients

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as http:
        await asyncio.gather(*(client(http, first) for first in range(clients)))
    return sent


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--view", default="flow", help="the view open meanwhile (sessions: a baseline that draws none)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "shadowproxy.yaml"
        echo = [sys.executable, str(REPO / "tests" / "servers" / "raw_echo.py")]
        config.write_text(yaml.safe_dump({"upstreams": {"echo": {"command": echo}}, "admin": {"token": TOKEN}}))
        proxy = await ProxyProcess(Path(folder) / "proxy.log").start("--config", str(config))
        try:
            async with async_playwright() as driver:
                browser = await driver.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
                page = await browser.new_page(viewport={"width": 1280, "height": 800})
                await page.goto(f"{proxy.base}/_shadowproxy/console/#token={TOKEN}")
                await page.wait_for_selector("#nav:not([hidden])")
                await page.evaluate("location.hash = '#/flow'")
                await page.wait_for_selector("#flow-counters")
                await page.evaluate(f"location.hash = '#/{args.view}'")
                await page.wait_for_selector(f"#nav a[aria-current=page][data-path={args.view}]")
                await page.evaluate(GAPS)
                began = time.monotonic()
                calls = await load(proxy.url, args.seconds, args.clients)
                spent = time.monotonic() - began
                await asyncio.sleep(1.0)
                gaps = sorted(await page.evaluate("window.consoleGaps"))
                await page.evaluate("location.hash = '#/flow'")
                await page.wait_for_selector("#flow-counters")
                await asyncio.sleep(0.5)
                counters = await page.inner_text("#flow-counters")
                rows = await page.locator("#view tbody tr").count()
                await browser.close()
        finally:
            await proxy.stop()
    matched = int(re.search(r"(\d+) matched", counters)[1])  # type: ignore[index]
    print(f"calls sent: {calls} in {spent:.1f} s ({calls / spent:.0f} calls/s, {2 * calls / spent:.0f} messages/s)")
    print(f"flow view: {counters}")
    print(f"tap messages the page took: {matched / spent:.0f}/s; rows kept: {rows}; view open: {args.view}")
    print(
        f"animation frames: {len(gaps)}; gap p50 {gaps[len(gaps) // 2]:.1f} ms, "
        f"p99 {gaps[int(len(gaps) * 0.99)]:.1f} ms, longest {gaps[-1]:.1f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
