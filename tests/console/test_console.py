"""The web console in Debian's chromium, driven by Playwright against a real proxy, SDK server and SDK client.

One proxy and one browser for the module; the tests run in order on one page, as an operator would: log in,
watch a session appear, open its timeline, filter the flow, see a blocked call, open its tape, restart the upstream,
reload the policy. Each view is checked with axe-core (vendored here, injected by the test only) and shot at 1280x800;
``SAVE_CONSOLE_SCREENSHOTS=1`` writes the shots to ``docs/console/``.
"""

from __future__ import annotations

import asyncio
import fnmatch
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from shadowproxy.core.tasks import spawn
from tests.console.browser import BAD_RULES, GOOD_RULES, STATIC, axe, shot, until, visit
from tests.ops.helpers import AUTH, TOKEN
from tests.security.helpers import HEADERS, open_session
from tests.support import REPO, ProxyProcess

pytest.importorskip("playwright.async_api")

pytestmark = pytest.mark.asyncio(loop_scope="module")


def write(path: Path, text: str) -> None:
    path.write_text(text)


def same_bytes(one: Path, other: Path) -> bool:
    return one.read_bytes() == other.read_bytes()


async def test_every_static_file_is_package_data() -> None:
    """A non-editable install ships the console: each file under static/ matches a package-data pattern."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["shadowproxy.ops.console"]
    files = [path.relative_to(STATIC.parent).as_posix() for path in STATIC.rglob("*") if path.is_file()]
    assert len(files) >= 10
    missed = [name for name in files if not any(fnmatch.fnmatch(name, pattern) for pattern in patterns)]
    assert not missed


async def test_no_static_file_names_anywhere_else() -> None:
    """Nothing is loaded from elsewhere (no CDN, works offline): no URL in the shipped files but the SVG namespace."""
    found = [
        (path.name, word)
        for path in STATIC.rglob("*")
        if path.is_file()
        for word in path.read_text().split()
        if ("http://" in word or "https://" in word or "//cdn" in word) and "www.w3.org/2000/svg" not in word
    ]
    assert not found


async def test_files_load_without_the_token_and_data_needs_it(proxy: ProxyProcess) -> None:
    console = f"{proxy.base}/_shadowproxy/console/"
    async with aiohttp.ClientSession() as client:
        async with client.get(console) as response:
            assert response.status == 200 and response.content_type == "text/html"
            policy = response.headers["Content-Security-Policy"]
            assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
            assert "unsafe-inline" not in policy
            assert response.headers["X-Frame-Options"] == "DENY"
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert "Set-Cookie" not in response.headers
            page_text = await response.text()
            assert "<script>" not in page_text and "style=" not in page_text
        async with client.get(console + "views/flow.js") as response:
            assert response.status == 200 and response.content_type == "text/javascript"
        for name in ("../admin.py", "nope.js", "%2e%2e/__init__.py"):
            async with client.get(console + name) as response:
                assert response.status == 404, name
        async with client.get(console.rstrip("/"), allow_redirects=False) as response:
            assert response.status == 308 and response.headers["Location"] == "/_shadowproxy/console/"
        for path in ("summary", "rules"):
            async with client.get(f"{proxy.base}/_shadowproxy/{path}") as response:
                assert response.status == 401, path
            async with client.get(f"{proxy.base}/_shadowproxy/{path}", headers=AUTH) as response:
                assert response.status == 200, path


async def test_the_login_form_refuses_a_wrong_token(page: Any, proxy: ProxyProcess, tmp_path: Path) -> None:
    await page.goto(f"{proxy.base}/_shadowproxy/console/")
    await page.wait_for_selector("#login:not([hidden])")
    await page.fill("#token", "wrong-token-0123456789")
    await page.press("#token", "Enter")
    await until(page, "document.getElementById('login-error').textContent.includes('refused')")
    assert await page.is_hidden("#nav")
    await axe(page)
    await shot(page, "login", tmp_path)


async def test_a_token_in_the_address_logs_in_and_leaves_it(page: Any, proxy: ProxyProcess) -> None:
    await page.goto(f"{proxy.base}/_shadowproxy/console/#token={TOKEN}")
    await page.wait_for_selector("#nav:not([hidden])")
    assert TOKEN not in page.url and page.url.endswith("#/sessions")
    assert await page.evaluate("sessionStorage.getItem('shadowproxy.console.token')") == TOKEN
    assert await page.evaluate("document.cookie") == "" and await page.context.cookies() == []
    # Logging out forgets it; the form logs in again.
    await page.click("#logout")
    await page.wait_for_selector("#login:not([hidden])")
    assert await page.evaluate("sessionStorage.length") == 0
    await page.fill("#token", TOKEN)
    await page.click("#login button[type=submit]")
    await page.wait_for_selector("#nav:not([hidden])")
    await page.wait_for_selector("#view h1:text('Sessions')")


async def test_a_session_appears_with_its_timeline(page: Any, proxy: ProxyProcess, tmp_path: Path) -> None:
    async with Client(proxy.url, mode="legacy") as client:
        assert (await client.call_tool("echo", {"text": "hello console"})).content[0].text == "hello console"
        with pytest.raises(MCPError, match="blocked by policy"):
            await client.call_tool("fail", {"reason": "no"})
        row = page.locator("#view tbody tr", has_text="active")
        await row.wait_for()
        cells = await row.locator("td").all_inner_texts()
        assert cells[2] == "mcp 0.1.0" and cells[3] == "files" and cells[5] == "http", cells
        await axe(page)
        await shot(page, "sessions", tmp_path)

        await page.fill("#session-search", "no-such-client")
        await page.wait_for_selector("#view tbody tr", state="detached")
        await page.fill("#session-search", "files")
        await row.locator("a").click()
        call = page.locator(".exchange", has_text="echo")
        await call.locator(".answer .line", has_text="tools/call").wait_for()
        assert "forward" in await call.inner_text()
        assert " ms" in await call.locator(".answer").inner_text()  # its latency
        await call.locator("button[data-seq]").first.click()
        await call.locator("pre.body", has_text="hello console").wait_for()
        blocked = page.locator(".exchange.blocked", has_text="fail")
        await blocked.wait_for()
        assert "blocked by rules" in await blocked.inner_text()
        assert await page.locator("dd", has_text="2025-11-25").count() == 1
        await axe(page)
        await shot(page, "session", tmp_path)


async def test_the_flow_filters_by_method_and_marks_blocked_calls(page: Any, tmp_path: Path) -> None:
    await visit(page, "#/flow")
    await page.locator("#view tbody tr").first.wait_for()
    methods = page.locator("#view tbody td.method")
    assert "notifications/initialized" in await methods.all_inner_texts()
    await page.fill("#flow-method", "tools/call")
    # echo, its answer, and the blocked call to fail
    await until(page, "document.querySelectorAll('#view tbody td.method').length === 3")
    assert set(await methods.all_inner_texts()) == {"tools/call"}
    blocked = page.locator("#view tbody tr.blocked")
    assert await blocked.count() == 1
    assert "blocked" in await blocked.inner_text() and "fail" in await blocked.inner_text()
    await page.select_option("#flow-verdict", "block")
    await until(page, "document.querySelectorAll('#view tbody tr').length === 1")
    await page.select_option("#flow-verdict", "")
    await page.click("#flow-pause")
    assert await page.get_attribute("#flow-pause", "aria-pressed") == "true"
    await page.click("#flow-pause")
    await axe(page)
    await shot(page, "flow", tmp_path)


async def test_a_tape_lists_opens_as_a_conversation_and_downloads(page: Any, rules_file: Path, tmp_path: Path) -> None:
    """The SDK client's session above was recorded: the tapes view lists it, opens it with the call paired with its
    answer, and its download (fetched with the token in a header, saved from a blob URL) is the file itself."""
    await visit(page, "#/tapes")
    row = page.locator("#view tbody tr", has_text="mcp 0.1.0")
    await row.first.wait_for()
    cells = await row.first.locator("td").all_inner_texts()
    assert cells[1] == "files" and cells[2] == "http" and int(cells[5]) >= 6, cells
    await axe(page)
    await row.first.locator("a").click()
    await page.wait_for_selector("#view h1:text('Tape ')")
    call = page.locator(".exchange", has_text="echo")
    await call.locator(".answer .line", has_text="tools/call").wait_for()
    assert "forward" in await call.inner_text() and "ms" in await call.locator(".answer").inner_text()
    blocked = page.locator(".exchange.blocked", has_text="fail")
    assert "blocked by rules" in await blocked.locator(".answer").inner_text()
    await axe(page)
    await shot(page, "tapes", tmp_path)
    await call.locator("button[data-seq]").last.click()
    await call.locator("pre.body", has_text="hello console").wait_for()
    name = (await page.inner_text("#view h1")).removeprefix("Tape ")
    async with page.expect_download() as started:
        await page.click("#tape-download")
    download = await started.value
    assert download.url.startswith("blob:") and download.suggested_filename == name
    assert same_bytes(await download.path(), rules_file.with_name("tapes") / name)
    await page.locator("#view .status", has_text="Downloaded").wait_for()
    assert page.violations == []


async def test_restart_an_upstream(page: Any, tmp_path: Path) -> None:
    await visit(page, "#/upstreams")
    row = page.locator("#view tbody tr", has_text="files")
    await row.wait_for()
    assert "stdio" in await row.inner_text()
    cells = await row.locator("th, td").all_inner_texts()  # status, circuit, restarts, crashes, sessions, p50, p95, p99
    assert cells[2] == "up" and cells[3] == "closed" and cells[4:7] == ["0", "0", "0"], cells
    assert all(cell.endswith(" ms") for cell in cells[7:10]), cells
    await axe(page)
    await shot(page, "upstreams", tmp_path)
    await row.get_by_role("button", name="Restart files").click()
    await page.locator("#view .status", has_text="Restarted files").wait_for()
    await until(page, "[...document.querySelectorAll('#view tbody tr td')][3]?.textContent === '1'")


async def test_policy_hits_and_a_refused_reload(page: Any, rules_file: Path, tmp_path: Path) -> None:
    await visit(page, "#/policy")
    rule = page.locator("#view tbody tr", has_text="no-fail")
    await rule.wait_for()
    cells = await rule.locator("td").all_inner_texts()
    assert cells[0] == "block" and cells[1].endswith("policy.yaml:2") and int(cells[3]) >= 1, cells
    await axe(page)
    await shot(page, "policy", tmp_path)
    write(rules_file, BAD_RULES)
    await page.click("#policy-reload")
    await page.locator("#view .refused pre", has_text="explode").wait_for()
    assert "Refused" in await page.inner_text("#view .status")
    write(rules_file, GOOD_RULES)
    await page.click("#policy-reload")
    await page.locator("#view .status", has_text="Reloaded").wait_for()
    await page.locator("#view .refused").wait_for(state="detached")


async def test_approve_a_held_call_with_new_arguments(page: Any, proxy: ProxyProcess, tmp_path: Path) -> None:
    await visit(page, "#/approvals")
    async with Client(proxy.url, mode="legacy") as client:
        call = spawn(client.call_tool("slow", {"seconds": 60}), name="held-call")
        held = page.locator("form.hold", has_text="slow")
        await held.wait_for()
        assert "slow-needs-a-human" in await held.inner_text()
        await axe(page)
        await shot(page, "approvals", tmp_path)
        await held.locator("textarea").fill('{"seconds": 0}')
        await held.get_by_role("button", name="Approve").click()
        result = await asyncio.wait_for(call, 30)
        assert result.content[0].text.startswith("slept 0")
    await page.locator("#view tbody tr", has_text="approved").wait_for()
    await held.wait_for(state="detached")


async def test_keyboard_and_phone_width(page: Any, tmp_path: Path) -> None:
    await visit(page, "#/sessions")
    await page.focus("a.skip")
    assert await page.evaluate("document.activeElement.getBoundingClientRect().left") >= 0  # shown when focused
    await page.keyboard.press("Tab")  # the log out button
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Flow"
    await page.keyboard.press("Enter")
    await until(page, "location.hash === '#/flow'")
    await page.set_viewport_size({"width": 390, "height": 844})
    try:
        for view in ("#/sessions", "#/flow", "#/upstreams", "#/policy"):
            await visit(page, view)
            overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, (view, overflow)
        await shot(page, "phone-policy", tmp_path)
    finally:
        await page.set_viewport_size({"width": 1280, "height": 800})
    assert page.violations == []


async def test_the_flow_view_stays_bounded_under_a_burst(page: Any, proxy: ProxyProcess) -> None:
    """Calls as fast as 16 connections send them: every message is counted (shown, or dropped by the proxy's queue for
    a slow reader), and at most 100 rows are kept."""
    await visit(page, "#/flow")
    await page.click("#view button:text('Clear')")
    await page.fill("#flow-method", "")
    calls = 400
    session = {**HEADERS, "Mcp-Session-Id": await open_session(proxy.url), "MCP-Protocol-Version": "2025-11-25"}

    async def echo(client: aiohttp.ClientSession, n: int) -> None:
        body = {
            "jsonrpc": "2.0",
            "id": n,
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "x"}},
        }
        async with client.post(proxy.url, json=body, headers=session) as response:
            assert response.status == 200

    # 16 at a time: the session's default limit on requests in flight is above that.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16)) as client:
        await asyncio.gather(*(echo(client, n) for n in range(calls)))
    counted = (
        "(() => { const text = document.getElementById('flow-counters').textContent;"
        " const seen = text.match(/(\\d+) matched/), lost = text.match(/(\\d+) by the proxy/);"
        " return (seen ? Number(seen[1]) : 0) + (lost ? Number(lost[1]) : 0); })()"
    )
    await until(page, f"{counted} >= {calls * 2}")
    assert await page.locator("#view tbody tr").count() == 100
    assert page.violations == []
    # The totals the header charts are drawn from count the burst too.
    async with aiohttp.ClientSession() as client, client.get(f"{proxy.base}/_shadowproxy/summary", headers=AUTH) as r:
        totals = await r.json()
    assert totals["requests"] >= calls and totals["blocked"] >= 1 and totals["errors"] >= totals["blocked"]
    assert totals["overhead"]["count"] >= calls and totals["sessions"] >= 1
    assert totals["upstreams"]["files"]["count"] > 0 and totals["upstreams"]["files"]["p50_ms"] > 0
    assert page.elsewhere == []  # nothing was fetched from anywhere but the proxy
