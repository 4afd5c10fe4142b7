"""SIGTERM while clients are busy: every answer a client got was whole and right, the proxy exits 0, and every
session change it acknowledged is in the store afterwards."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp

from shadowproxy.stores import open_store
from tests.support import ProxyProcess, until

from .helpers import RawClient, rogue, text_of

WORKERS = 6


class Worker:
    """Calls echo in a loop until the proxy stops answering; counts the answers it got, checks each one."""

    def __init__(self, http: aiohttp.ClientSession, url: str, number: int) -> None:
        self.client = RawClient(http, url)
        self.number = number
        self.acknowledged = 0
        self.ending = ""

    async def run(self) -> None:
        while True:
            text = f"w{self.number}-{self.acknowledged}"
            try:
                status, seen = await self.client.call("echo", text=text)
            except (aiohttp.ClientError, ConnectionError) as exc:
                self.ending = type(exc).__name__
                return
            if status != 200:
                assert status == 503, (status, seen)
                self.ending = "503"
                return
            assert len(seen) == 1 and text_of(seen[0]) == text, seen
            self.acknowledged += 1


async def test_sigterm_under_load(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "sessions.db"
    proxy: ProxyProcess = await start_proxy("--upstream", rogue(), "--store", f"sqlite:///{db}")
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        workers = [Worker(http, proxy.url, number) for number in range(WORKERS)]
        for worker in workers:
            await worker.client.initialize()
        running = [asyncio.ensure_future(worker.run()) for worker in workers]  # noqa: TID251
        await until(lambda: all(worker.acknowledged >= 20 for worker in workers), "every worker to be busy")
        proxy.signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            await asyncio.gather(*running)
    assert await proxy.wait() == 0, proxy.log()[-2000:]
    assert all(worker.ending for worker in workers)
    store = open_store(f"sqlite:///{db}")
    await store.open()
    try:
        for worker in workers:
            record = await store.get(worker.client.session_id)
            assert record is not None, f"session of worker {worker.number} lost"
            assert record.client_info == {"name": "raw", "version": "1"}
            # Each acknowledged call is a request and a reply through the session: none of them may be missing.
            assert record.messages >= 2 * worker.acknowledged, (record.messages, worker.acknowledged)
    finally:
        await store.close()
