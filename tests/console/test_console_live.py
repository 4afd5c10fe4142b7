"""The console's live parts that test_console.py does not reach, on a proxy and page of their own: notifications
drawn under their request, the flow's other filters and its pause, the proxy's drop counter, the header's live
charts, a breakpoint's held message edited and denied, and every view (the detail pages too) at a phone's width."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from shadowproxy.core.tasks import spawn
from tests.console.browser import axe, shot, until, visit
from tests.ops.helpers import TOKEN
from tests.security.helpers import HEADERS, open_session
from tests.support import ProxyProcess

pytest.importorskip("playwright.async_api")

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROWS = "document.querySelectorAll('#view tbody tr')"
FIRST_ROW = "document.querySelector('#view tbody tr')?.dataset.seq"


async def column(page: Any, index: int) -> list[str]:
    """The flow table's cells of one column, top to bottom."""
    return await page.locator(f"#view tbody tr td:nth-child({index})").all_inner_texts()


def rate(shown: str) -> float:
    """A per-second figure of the header as a number ("—" before its second reading)."""
    return float(shown) if shown.replace(".", "", 1).isdigit() else 0.0


async def test_log_in(page: Any, proxy: ProxyProcess) -> None:
    await page.goto(f"{proxy.base}/_shadowproxy/console/#token={TOKEN}")
    await page.wait_for_selector("#nav:not([hidden])")


async def test_notifications_sit_under_their_request(page: Any, proxy: ProxyProcess) -> None:
    """A call that reports progress and logs while it runs: each notification is drawn inside the call's exchange,
    between the call and its answer, not as an entry of its own. The upstream counts the live session meanwhile."""
    seen: list[float] = []

    async def progressed(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with Client(proxy.url, mode="legacy") as client:
        result = await client.call_tool("progress", {"steps": 3}, progress_callback=progressed)
        assert result.content[0].text == "done 3" and seen == [1, 2, 3]
        link = page.locator("#view tbody tr a").first
        await link.wait_for()
        page.session = (await link.get_attribute("title")) or ""
        await link.click()
        call = page.locator(".exchange", has_text="progress")
        await call.locator(".answer .line", has_text="tools/call").wait_for()
        notes = call.locator("ul.notes li .method")
        await until(page, "document.querySelectorAll('.exchange ul.notes li').length >= 3")
        assert (await notes.all_inner_texts()).count("notifications/progress") == 3
        standalone = page.locator("#view ol.timeline > li > .line .method", has_text="notifications/progress")
        assert await standalone.count() == 0
        await axe(page)
        await visit(page, "#/upstreams")
        await until(page, "[...document.querySelectorAll('#view tbody tr td')][5]?.textContent === '1'")


async def test_flow_filters_by_tool_session_and_direction(page: Any) -> None:
    await visit(page, "#/flow")
    await page.locator("#view tbody tr").first.wait_for()
    assert "Drawn in batches" in await page.inner_text("#view .hint")  # it says how it keeps up
    await page.fill("#flow-tool", "progress")
    await until(page, f"{ROWS}.length === 2")  # the call and its answer; notifications name no tool
    assert await column(page, 6) == ["progress", "progress"]
    await page.fill("#flow-tool", "")
    await page.select_option("#flow-direction", "server_to_client")
    await until(page, f"{ROWS}.length > 0")
    assert set(await column(page, 2)) == {"←"}
    await page.select_option("#flow-direction", "")
    await page.fill("#flow-session", page.session[:6])
    await until(page, f"{ROWS}.length > 6")
    assert set(await column(page, 3)) == {page.session[:8]}
    await page.fill("#flow-session", "no-such-session")
    await until(page, f"{ROWS}.length === 0")
    await page.fill("#flow-session", "")


async def test_pause_holds_new_messages_until_resumed(page: Any, proxy: ProxyProcess) -> None:
    await until(page, f"{ROWS}.length > 0")
    await page.click("#flow-pause")
    top = await page.evaluate(FIRST_ROW)
    async with Client(proxy.url, mode="legacy") as client:
        await client.call_tool("echo", {"text": "while paused"})
    await page.locator("#flow-counters", has_text="paused").wait_for()
    await until(page, "Number(document.getElementById('flow-counters').textContent.match(/(\\d+) waiting/)[1]) >= 4")
    assert await page.evaluate(FIRST_ROW) == top  # nothing drawn while paused
    await page.click("#flow-pause")
    await until(page, f"{FIRST_ROW} !== {json.dumps(top)}")
    assert "paused" not in await page.inner_text("#flow-counters")
    assert "tools/call" in await column(page, 5)


async def test_the_proxy_s_drops_are_counted(page: Any) -> None:
    """The tap's ``event: dropped`` (the proxy lost events for this reader) reaches the flow's counter. A real one needs
    a reader slower than the proxy's queue of 1,000; the frame is handed to the console's own parser instead."""
    frame = 'event: dropped\\ndata: {"dropped": 7, "total": 7}'
    await page.evaluate(
        "(async () => { const {feed} = await import(new URL('feed.js', location.href).href);"
        f" feed.parse('{frame}'); feed.publish([]); }})()"
    )
    await page.locator("#flow-counters", has_text="dropped: 7 by the proxy").wait_for()


async def test_the_header_draws_live_figures(page: Any, proxy: ProxyProcess) -> None:
    """Calls (some blocked) until one reading of the header shows requests and errors per second and the overhead's
    p50 and p99, with each figure's chart drawn."""
    session = {**HEADERS, "Mcp-Session-Id": await open_session(proxy.url), "MCP-Protocol-Version": "2025-11-25"}
    figures = "[...document.querySelectorAll('#charts .value')].map((v) => v.textContent)"
    blank = "document.createElement('canvas')"
    drawn = (
        f"(() => {{ const empty = Object.assign({blank}, {{width: 120, height: 28}}).toDataURL();"
        " return [...document.querySelectorAll('#charts canvas')].every((c) => c.toDataURL() !== empty); })()"
    )

    async def call(client: aiohttp.ClientSession, n: int) -> None:
        tool = "fail" if n % 4 == 0 else "echo"
        body = {"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {"name": tool, "arguments": {"text": "x"}}}
        async with client.post(proxy.url, json=body, headers=session) as response:
            assert response.status == 200

    shown: list[str] = []
    async with aiohttp.ClientSession() as client:
        for round_ in range(300):
            await asyncio.gather(*(call(client, round_ * 8 + n) for n in range(8)))
            shown = await page.evaluate(figures)
            rps, p50, p99, eps = shown
            if rate(rps) > 0 and rate(eps) > 0 and p50.endswith("ms") and p99.endswith("ms"):
                break
        else:
            raise AssertionError(f"the header never showed live figures: {shown}")
    assert await page.evaluate(drawn)


async def test_a_breakpoint_holds_a_message_to_edit_or_deny(page: Any, proxy: ProxyProcess, tmp_path: Path) -> None:
    await visit(page, "#/approvals")
    await page.fill("#bp-method", "tools/call")
    await page.fill("#bp-tool", "echo")
    await page.select_option("#bp-direction", "client_to_server")
    await page.get_by_role("button", name="Add breakpoint").click()
    point = page.locator("#view tbody tr", has_text="echo").filter(has=page.get_by_role("button", name="Remove"))
    await point.wait_for()
    async with Client(proxy.url, mode="legacy") as client:
        call = spawn(client.call_tool("echo", {"text": "as sent"}), name="held-echo")
        held = page.locator("form.hold", has_text="echo")
        await held.wait_for()
        assert "breakpoint" in await held.inner_text()
        edit = held.locator("textarea")
        message = json.loads(await edit.input_value())
        assert message["params"]["arguments"] == {"text": "as sent"}
        message["params"]["arguments"]["text"] = "as edited"
        await edit.fill(json.dumps(message))
        await axe(page)
        await held.get_by_role("button", name="Approve").click()
        assert (await asyncio.wait_for(call, 30)).content[0].text == "as edited"
        await held.wait_for(state="detached")

        call = spawn(client.call_tool("echo", {"text": "to be denied"}), name="denied-echo")
        held = page.locator("form.hold", has_text="echo")
        await held.locator("input[name=reason]").fill("not today")
        await held.get_by_role("button", name="Deny").click()
        with pytest.raises(MCPError):
            await asyncio.wait_for(call, 30)
    await page.locator("#view tbody tr", has_text="not today").wait_for()
    await point.get_by_role("button", name="Remove").click()
    await page.locator("#view .status", has_text="Breakpoint removed").wait_for()
    await point.wait_for(state="detached")


async def test_every_view_fits_a_phone(page: Any, tmp_path: Path) -> None:
    """At 390 px wide no page, the detail pages included, is wider than the screen (wide tables scroll in their box)."""
    await visit(page, "#/tapes")
    tape = page.locator("#view tbody tr a").first
    await tape.wait_for()
    tape_page = await tape.get_attribute("href")
    await page.set_viewport_size({"width": 390, "height": 844})
    try:
        for view in ("#/sessions", f"#/sessions/{page.session}", "#/flow", "#/upstreams", "#/policy", "#/approvals"):
            await visit(page, view)
            overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, (view, overflow)
        for view in ("#/tapes", tape_page):
            await visit(page, view)
            await page.locator("#view tbody tr, #view .exchange").first.wait_for()
            overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, (view, overflow)
        await shot(page, "phone-tape", tmp_path)
    finally:
        await page.set_viewport_size({"width": 1280, "height": 800})
    assert page.violations == [] and page.elsewhere == []
