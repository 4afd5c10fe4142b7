"""``shadowproxy stdio`` read and written line by line: bad lines among good ones, batches, many messages in one
read, a misbehaving child, and the end of stdin."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import orjson

from shadowproxy.core.errors import INVALID_REQUEST, PARSE_ERROR
from tests.faults.helpers import ROGUE, text_of
from tests.support import REPO, child_env

WAIT = 30.0


def call(request_id: int, name: str = "echo", **arguments: object) -> dict[str, Any]:
    params = {"name": name, "arguments": arguments}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def line(message: object) -> bytes:
    return orjson.dumps(message) + b"\n"


class StdioProxy:
    """``shadowproxy stdio -- <rogue server>`` on pipes the test writes and reads."""

    async def __aenter__(self) -> StdioProxy:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "shadowproxy",
            "stdio",
            "--",
            sys.executable,
            str(ROGUE),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=child_env(),
            cwd=REPO,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    def send(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)

    async def read(self, count: int) -> list[dict[str, Any]]:
        assert self.process.stdout is not None
        async with asyncio.timeout(WAIT):
            return [orjson.loads(await self.process.stdout.readline()) for _ in range(count)]


def by_id(messages: list[dict[str, Any]]) -> dict[object, dict[str, Any]]:
    return {message.get("id"): message for message in messages}


async def test_bad_lines_are_answered_and_the_good_ones_around_them_go_through() -> None:
    initialize = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    async with StdioProxy() as proxy:
        proxy.send(line({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": initialize}))
        (answer,) = await proxy.read(1)
        assert answer["result"]["serverInfo"] == {"name": "r"}
        proxy.send(line({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        # One write: a call, a line that is not JSON, a blank line, JSON that is not JSON-RPC, a batch, a call.
        proxy.send(
            line(call(2, text="two"))
            + b'{"jsonrpc": "2.0", "id": \n'
            + b"   \n"
            + line({"jsonrpc": "1.0", "id": 3, "method": "ping"})
            + line([call(4, text="four"), call(5, text="five")])
            + line(call(6, text="six"))
        )
        answers = await proxy.read(6)
        errors = [answer for answer in answers if "error" in answer]
        assert sorted(error["error"]["code"] for error in errors) == sorted([PARSE_ERROR, INVALID_REQUEST])
        assert all(error["id"] is None for error in errors)
        replies = by_id([answer for answer in answers if "result" in answer])
        assert {key: text_of(reply) for key, reply in replies.items()} == {2: "two", 4: "four", 5: "five", 6: "six"}


async def test_many_messages_in_one_read_are_all_answered_in_order() -> None:
    async with StdioProxy() as proxy:
        # More than a write's batch, in one write; the rogue server answers them one by one, in order.
        proxy.send(b"".join(line(call(index, text=f"n{index}")) for index in range(1, 51)))
        answers = await proxy.read(50)
        assert [answer["id"] for answer in answers] == list(range(1, 51))
        assert [text_of(answer) for answer in answers] == [f"n{index}" for index in range(1, 51)]


async def test_what_the_child_writes_that_is_not_json_rpc_never_reaches_the_client() -> None:
    async with StdioProxy() as proxy:
        # The rogue server writes four bad lines, a reply to an id no one sent, then the answer.
        proxy.send(line(call(7, "garbage")) + line(call(8, text="after")))
        answers = await proxy.read(3)
        assert [answer["id"] for answer in answers] == [1007, 7, 8]
        assert text_of(answers[1]) == "garbage done"
        assert text_of(answers[2]) == "after"


async def test_the_end_of_stdin_ends_the_proxy_cleanly() -> None:
    async with StdioProxy() as proxy:
        proxy.send(line(call(1, text="last")))
        (answer,) = await proxy.read(1)
        assert text_of(answer) == "last"
        assert proxy.process.stdin is not None
        proxy.process.stdin.close()
        async with asyncio.timeout(WAIT):
            assert await proxy.process.wait() == 0
