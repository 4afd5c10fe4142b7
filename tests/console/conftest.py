"""One proxy (an SDK server behind the rules and tapes, the admin API on), one chromium and one page per test module:
a module's tests run in order on that page, as an operator would."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from tests.console.browser import CHROMIUM, GOOD_RULES, WAIT
from tests.ops.helpers import TOKEN
from tests.support import ProxyProcess, sdk_server_command


@pytest.fixture(scope="module")
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        if os.environ.get("REQUIRE_CHROMIUM") == "1":
            pytest.fail("chromium is required (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("console") / "policy.yaml"
    path.write_text(GOOD_RULES)
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def proxy(rules_file: Path) -> AsyncIterator[ProxyProcess]:
    config = {
        "upstreams": {"files": {"command": sdk_server_command()}},
        "interceptors": [{"name": "rules", "paths": [str(rules_file)], "watch": False}],
        "admin": {"token": TOKEN},
        "tapes": {"dir": str(rules_file.with_name("tapes")), "record": "all"},
    }
    path = rules_file.with_name("shadowproxy.yaml")
    path.write_text(yaml.safe_dump(config))
    process = ProxyProcess(rules_file.with_name("proxy.log"))
    try:
        yield await process.start("--config", str(path))
    finally:
        await process.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(chromium: str) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as driver:
        launched = await driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def page(browser: Any, proxy: ProxyProcess) -> AsyncIterator[Any]:
    """The page, with what must never happen recorded: ``violations`` (the page's CSP reports and script errors) and
    ``elsewhere`` (a request to anywhere but the proxy: the console loads nothing from elsewhere, works offline)."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(WAIT)
    opened = await context.new_page()
    opened.violations = []
    opened.elsewhere = []
    opened.on("console", lambda m: opened.violations.append(m.text) if "Content Security Policy" in m.text else None)
    opened.on("pageerror", lambda error: opened.violations.append(str(error)))
    own = (f"{proxy.base}/", "blob:", "data:")
    opened.on("request", lambda r: None if r.url.startswith(own) else opened.elsewhere.append(r.url))
    try:
        yield opened
    finally:
        await context.close()
