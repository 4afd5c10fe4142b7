"""What the proxy imports before it serves: nothing that only an unconfigured feature needs.

``shadowproxy stdio`` is started by every MCP client that launches it, and ``shadowproxy run`` by every restart:
each module imported before the first answer is paid by all of them (issue 27, item 6). The SDK alone costs about
half a second. These tests start the real commands in a fresh interpreter and read its ``sys.modules`` once the
port is open (``run``) or once stdin closed (``stdio``): the check is what was loaded, not how long it took.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support import REPO, child_env

RAW_ECHO = str(REPO / "tests" / "servers" / "raw_echo.py")

# Each is either the SDK or a library that only a feature the default configuration leaves off needs (JWT auth,
# the token vault and sealed credentials, rules files and their schema, YAML config files, SQLite and Redis
# stores, tracing, the REST facade's schema checks).
HEAVY = (
    "mcp",
    "pydantic_settings",
    "starlette",
    "httpx",
    "jsonschema",
    "jsonschema_rs",
    "referencing",
    "yaml",
    "jwt",
    "cryptography",
    "redis",
    "aiosqlite",
    "sqlite3",
    "opentelemetry",
    # and the proxy's own modules of features the default configuration leaves off
    "shadowproxy.gateway",
    "shadowproxy.tapes.writer",
)


def _heavy(loaded: set[str]) -> list[str]:
    return sorted(name for name in loaded if name in HEAVY or name.startswith(tuple(f"{h}." for h in HEAVY)))


REPORT = """
import json, sys
def loaded():
    # stderr: the stdio front closes stdout when its client goes.
    print('MODULES', json.dumps(sorted(sys.modules)), file=sys.stderr, flush=True)
"""

RUN = (
    REPORT
    + """
import os, signal
from shadowproxy.serve import runner
serve = runner.serve
async def ready(url):
    loaded()
    os.kill(os.getpid(), signal.SIGTERM)
runner.serve = lambda config: serve(config, ready)  # the command's own path, told when the port is open
from shadowproxy.cli.main import main
sys.exit(main(['run', '--upstream', sys.executable + ' ' + sys.argv[1], '--port', '0', '--log-level', 'warning']))
"""
)

STDIO = (
    REPORT
    + """
import atexit
atexit.register(loaded)
from shadowproxy.cli.main import main
sys.exit(main(['stdio', '--log-level', 'warning', '--', sys.executable, sys.argv[1]]))
"""
)


def _loaded(program: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", program, RAW_ECHO],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
        check=False,
    )
    lines = [line for line in done.stderr.splitlines() if line.startswith("MODULES ")]
    assert lines, f"no module list (exit {done.returncode}):\n{done.stderr}"
    return set(json.loads(lines[-1].removeprefix("MODULES ")))


def test_run_listens_without_heavy_modules() -> None:
    loaded = _loaded(RUN)
    assert "shadowproxy" in loaded and "aiohttp" in loaded  # the program did reach the open port
    assert _heavy(loaded) == []


def test_stdio_serves_without_heavy_modules() -> None:
    loaded = _loaded(STDIO)
    assert "shadowproxy.fronts.stdio.child" in loaded  # it did serve
    assert _heavy(loaded) == []
    # In front of a stdio server nothing is served over HTTP: aiohttp is about a third of a start.
    assert sorted(name for name in loaded if name.split(".")[0] == "aiohttp") == []


def test_cli_entry_without_heavy_modules() -> None:
    loaded = _loaded(REPORT + "import shadowproxy.cli.main\nloaded()")
    assert _heavy(loaded) == []
