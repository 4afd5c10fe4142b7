"""A session ended here stays ended, even while the store still holds it as active (the persistence worker
writes its end at its next flush)."""

from __future__ import annotations

import shlex
from pathlib import Path

import aiohttp
import orjson
import yaml

from shadowproxy.core.record import SessionState
from shadowproxy.stores import open_store
from tests.security.helpers import HEADERS, INIT, PING
from tests.support import sdk_server_command, until


async def test_a_deleted_session_is_not_restored_from_a_store_that_has_not_heard(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'sessions.db'}"
    config = tmp_path / "proxy.yaml"
    # The worker writes a change only after it has waited 5 s: the end of the session stays unwritten.
    config.write_text(yaml.safe_dump({"store": url, "flush_interval": 5}))
    proxy = await start_proxy("--config", str(config), "--upstream", shlex.join(sdk_server_command()))
    store = open_store(url)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(proxy.url, data=orjson.dumps(INIT), headers=HEADERS) as response:
                session = response.headers["Mcp-Session-Id"]

            async def stored() -> bool:
                record = await store.get(session)
                return record is not None and record.state is SessionState.ACTIVE

            await until(stored, "the new session in the store", limit=30)
            ended = {**HEADERS, "Mcp-Session-Id": session}
            async with http.delete(proxy.url, headers=ended) as deleted:
                assert deleted.status == 204
            assert (await store.get(session)).state is SessionState.ACTIVE  # type: ignore[union-attr]
            async with http.post(proxy.url, data=orjson.dumps(PING), headers=ended) as again:
                assert again.status == 404
    finally:
        await store.close()
