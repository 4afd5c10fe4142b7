"""What the console's browser tests share: the rules they run under, axe-core, screenshots and waiting in the page."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

from tests.support import REPO

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AXE = Path(__file__).with_name("axe.min.js")
STATIC = REPO / "shadowproxy" / "ops" / "console" / "static"
SHOTS = REPO / "docs" / "console"
GOOD_RULES = (
    "rules:\n  - id: no-fail\n    description: the fail tool is off limits\n"
    "    match: {tool: fail}\n    action: block\n"
    "  - id: slow-needs-a-human\n    match: {tool: slow}\n"
    "    action: {approve: {by: operator, timeout: 120, on_timeout: block}}\n"
)
BAD_RULES = "rules:\n  - id: no-fail\n    match: {tool: fail}\n    action: explode\n"
WAIT = 30_000  # ms: generous, the machine is shared


async def axe(page: Any) -> None:
    """axe-core over the page as it is now: no serious or critical violation."""
    # Evaluated through the driver, which the page's CSP does not govern; the console never ships axe.
    await page.evaluate(AXE.read_text() + "\n;0")
    results = await page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, "\n".join(bad)


async def shot(page: Any, name: str, tmp_path: Path) -> None:
    """A screenshot of the page as it is; ``SAVE_CONSOLE_SCREENSHOTS=1`` also writes it to ``docs/console/``."""
    path = tmp_path / f"{name}.png"
    await page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000
    if os.environ.get("SAVE_CONSOLE_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SHOTS / path.name)


async def until(page: Any, expression: str) -> None:
    """Poll ``expression`` in the page until it is true. Playwright's ``wait_for_function`` would evaluate it with
    ``eval`` inside the page, which the console's CSP (rightly) refuses; ``evaluate`` goes through the driver."""
    for _ in range(WAIT // 50):
        if await page.evaluate(expression):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"gave up waiting for {expression}")


async def visit(page: Any, hash_: str) -> None:
    """Go to a view by its hash and wait until the router has drawn it (it focuses the view's heading)."""
    await page.evaluate(f"location.hash = {hash_!r}")
    await until(page, "document.activeElement && document.activeElement.tagName === 'H1'")
