"""The admin API and CLI of any instance speak for the whole cluster: every session, a reload everywhere."""

from __future__ import annotations

import asyncio
import shlex
import sys

import aiohttp

from tests.cluster.test_cluster import open_session, stored
from tests.redis_server import RedisServer
from tests.support import child_env, sdk_server_command, until

TOKEN = "cluster-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_any_instance_lists_every_session_and_reloads_every_instance(
    start_instances,
    redis_server: RedisServer,  # type: ignore[no-untyped-def]
) -> None:
    a, b = await start_instances(shlex.join(sdk_server_command()), 2, f"admin:\n  token: {TOKEN}\n")
    async with aiohttp.ClientSession() as http:
        sessions = [await open_session(http, a.url), await open_session(http, b.url)]
        for session in sessions:
            await until(lambda session=session: stored(redis_server, session), "the session to reach Redis")
        async with http.get(f"{a.base}/_shadowproxy/sessions", headers=AUTH) as only_here:
            assert [s["id"] for s in (await only_here.json())["sessions"]] == sessions[:1]
        async with http.get(f"{a.base}/_shadowproxy/sessions?all=true", headers=AUTH) as everywhere:
            assert sorted(s["id"] for s in (await everywhere.json())["sessions"]) == sorted(sessions)
        async with http.post(f"{b.base}/_shadowproxy/rules/reload?all=true", headers=AUTH) as reload:
            assert reload.status == 202
            assert (await reload.json())["instances"] == 2

    command = [sys.executable, "-m", "shadowproxy", "rules", "reload", "--all", "--url", a.base]
    process = await asyncio.create_subprocess_exec(
        *command, env=child_env(SHADOWPROXY_ADMIN_TOKEN=TOKEN), stdout=asyncio.subprocess.PIPE
    )
    output, _ = await process.communicate()
    assert process.returncode == 0
    assert output.decode().strip() == "asked 2 instance(s) to reload their rules"
