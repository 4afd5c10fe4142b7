"""IBM ContextForge (``mcp-contextforge-gateway``) in front of the HTTP fast server, configured as it must be here.

Out of the box it does not proxy a server on loopback at benchmark rates, so the row sets (by environment, on a
fresh SQLite database in the run's folder):

* secrets generated per run (``JWT_SECRET_KEY``, ``AUTH_ENCRYPTION_SECRET``, the admin passwords): it refuses weak
  or placeholder ones;
* ``SSRF_ALLOW_LOCALHOST=true``: its SSRF guard rejects a gateway URL on 127.0.0.1;
* ``RATE_LIMITING_ENABLED=false``: its limiter allows 100 MCP requests a minute;
* no admin UI, one uvicorn worker, errors-only logs, the in-memory cache (no Redis).

Then, with a JWT it signs for its admin user, the fast server is registered as a gateway (Streamable HTTP), its
``echo`` tool put in a virtual server, and the load client drives ``/servers/<id>/mcp`` with that token. It needs
about 40 s to migrate its database and start on the development machine, hence the long wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from benchmarks.peer import Installed
from benchmarks.targets import Launcher, Target, TargetError, free_port, http_server

STARTUP_SECONDS = 180.0
ADMIN = "admin@example.com"


def environment(launcher: Launcher, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DATABASE_URL": f"sqlite:///{launcher.workdir / 'contextforge.db'}",
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        "AUTH_ENCRYPTION_SECRET": secrets.token_urlsafe(48),
        "BASIC_AUTH_PASSWORD": secrets.token_urlsafe(24),
        "PLATFORM_ADMIN_EMAIL": ADMIN,
        "PLATFORM_ADMIN_PASSWORD": "Aa1!" + secrets.token_urlsafe(24),
        "SSRF_ALLOW_LOCALHOST": "true",
        "RATE_LIMITING_ENABLED": "false",
        "MCPGATEWAY_UI_ENABLED": "false",
        "MCPGATEWAY_ADMIN_API_ENABLED": "false",
        "CACHE_TYPE": "memory",
        "LOG_LEVEL": "ERROR",
        "ENVIRONMENT": "development",
    }


async def token(peer: Installed, env: dict[str, str]) -> str:
    """A JWT for the admin user, signed with this run's secret by ContextForge's own tool."""
    argv = [str(peer.bin / "python"), "-m", "mcpgateway.utils.create_jwt_token", "--username", ADMIN]
    argv += ["--exp", "1440", "--secret", env["JWT_SECRET_KEY"], "--admin"]
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    lines = out.decode().strip().splitlines()
    if process.returncode != 0 or not lines:
        raise TargetError(f"create_jwt_token failed: {err.decode().strip()[-300:]}")
    return lines[-1].strip()


async def call(session: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> Any:
    async with session.request(method, url, json=body) as response:
        if response.status >= 300:
            raise TargetError(
                f"ContextForge {method} {url} answered {response.status}: {(await response.text())[:300]}"
            )
        return await response.json()


async def register(base: str, jwt: str, upstream: str) -> str:
    """The fast server as a gateway and its ``echo`` tool in a virtual server; the server's MCP URL."""
    headers = {"Authorization": f"Bearer {jwt}"}
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        gateway = {"name": "fast", "url": upstream, "transport": "STREAMABLEHTTP"}
        await call(session, "POST", f"{base}/gateways", gateway)
        tools = await call(session, "GET", f"{base}/tools")
        items = tools if isinstance(tools, list) else tools.get("items", [])
        ids = [tool["id"] for tool in items if tool.get("originalName") == "echo"]
        if not ids:
            raise TargetError(f"ContextForge found no echo tool on the gateway: {str(tools)[:300]}")
        server = await call(session, "POST", f"{base}/servers", {"server": {"name": "bench", "associated_tools": ids}})
    return f"{base}/servers/{server['id']}/mcp"


@contextlib.asynccontextmanager
async def contextforge_http(launcher: Launcher, peer: Installed) -> AsyncIterator[Target]:
    async with contextlib.AsyncExitStack() as stack:
        upstream = await stack.enter_async_context(http_server(launcher, "http"))
        assert upstream.url is not None
        port = free_port()
        env = environment(launcher, port)
        (launcher.workdir / "contextforge.db").unlink(missing_ok=True)
        argv = [str(peer.command), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        process = await stack.enter_async_context(launcher.process("contextforge", argv, env=env))
        await launcher.wait_http("contextforge", process, port, "/health", seconds=STARTUP_SECONDS)
        url = await register(f"http://127.0.0.1:{port}", await token(peer, env), upstream.url)
        yield Target(
            url=url,
            roots=[process.pid, *upstream.roots],
            front=process.pid,
            headers={"Authorization": f"Bearer {await token(peer, env)}"},
        )
