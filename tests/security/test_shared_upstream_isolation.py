"""One server process serving several sessions: nothing one session's work makes reaches another principal.

The upstream is the SDK test server over stdio, shared by every session (``share: true``) or, in the default
setup, the one process that serves every 2026-07-28 request. Alice and Bob hold their own tokens.
"""

from __future__ import annotations

import asyncio
import re
import shlex
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tests.support import ProxyProcess, sdk_server_command

from .helpers import HEADERS, bearer, open_session, post, write_config
from .test_tokens import ALICE, BOB, TOKENS

MODERN = "2026-07-28"


async def start(start_proxy, tmp_path: Path, *, share: bool) -> ProxyProcess:  # type: ignore[no-untyped-def]
    upstream: dict[str, Any] = {"command": shlex.join(sdk_server_command())}
    if share:
        upstream["share"] = True
    config = write_config(tmp_path / "sp.yaml", TOKENS, upstreams={"shared": upstream})
    return await start_proxy("--config", str(config))


def call(request_id: int, tool: str, **arguments: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }


def modern(body: dict[str, Any], client: str) -> tuple[dict[str, Any], dict[str, str]]:
    """``body`` as a 2026-07-28 request: its ``_meta`` envelope and headers."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": client, "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {"sampling": {}},
        "io.modelcontextprotocol/logLevel": "debug",
    }
    body = {**body, "params": {**body["params"], "_meta": meta}}
    headers = {"MCP-Protocol-Version": MODERN, "Mcp-Method": body["method"], "Mcp-Name": body["params"]["name"]}
    return body, headers


async def stream(url: str, body: dict[str, Any], headers: dict[str, str], seen: list[dict[str, Any]]) -> None:
    """POST ``body`` and put every message of its answer (JSON or event stream) in ``seen`` as it arrives."""
    async with aiohttp.ClientSession() as client, client.post(url, json=body, headers={**HEADERS, **headers}) as r:
        if r.content_type == "application/json":
            seen.append(await r.json())
            return
        async for line in r.content:
            if line.startswith(b"data:") and line[5:].strip():
                seen.append(orjson.loads(line[5:]))


def answer(request_id: int, text: str) -> dict[str, Any]:
    """A client's answer to a sampling request."""
    result = {"role": "assistant", "content": {"type": "text", "text": text}, "model": "m", "stopReason": "endTurn"}
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def logs(seen: list[dict[str, Any]]) -> list[str]:
    return [message["params"]["data"] for message in seen if message.get("method") == "notifications/message"]


def server_requests(seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [message for message in seen if "method" in message and "id" in message]


async def unattributed(proxy: ProxyProcess) -> float:
    metrics = f"{proxy.base}/metrics"
    async with aiohttp.ClientSession() as client, client.get(metrics, headers=bearer(ALICE)) as response:
        text = await response.text()
    return sum(
        float(value) for value in re.findall(r"^shadowproxy_unattributed_messages_total\{[^}]*\} (\S+)$", text, re.M)
    )


async def alice_logs_while_bob_waits(proxy: ProxyProcess, alice: dict[str, str], bob: dict[str, str], era: str) -> None:
    alice_seen: list[dict[str, Any]] = []
    bob_seen: list[dict[str, Any]] = []
    chatty, slow = call(10, "progress", steps=10, pause=0.1), call(11, "slow", seconds=1.5)
    if era == MODERN:
        chatty, chatty_headers = modern(chatty, "alice-agent")
        slow, slow_headers = modern(slow, "bob-agent")
        alice, bob = {**alice, **chatty_headers}, {**bob, **slow_headers}
    # Once through, so that both calls find the server started.
    await stream(proxy.url, {**slow, "params": {**slow["params"], "arguments": {"seconds": 0}}}, bob, [])
    async with asyncio.TaskGroup() as calls:
        calls.create_task(stream(proxy.url, chatty, alice, alice_seen))
        await asyncio.sleep(0.25)
        await stream(proxy.url, slow, bob, bob_seen)
    assert logs(bob_seen) == [], f"bob received alice's log lines: {logs(bob_seen)}"
    assert bob_seen[-1]["result"]["content"][0]["text"] == "slept 1.5"
    assert alice_seen[-1]["result"]["content"][0]["text"] == "done 10"
    # Logged while only her call was in flight: hers. Logged while Bob's was too: nobody's, and counted.
    assert logs(alice_seen) and logs(alice_seen) == sorted(logs(alice_seen), key=lambda text: int(text.split()[1]))
    assert len(logs(alice_seen)) < 10
    assert await unattributed(proxy) >= 1


async def test_a_shared_childs_log_lines_stay_with_the_session_that_caused_them(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start(start_proxy, tmp_path, share=True)
    alice = {**bearer(ALICE), "Mcp-Session-Id": await open_session(proxy.url, **bearer(ALICE))}
    bob = {**bearer(BOB), "Mcp-Session-Id": await open_session(proxy.url, **bearer(BOB))}
    await alice_logs_while_bob_waits(proxy, alice, bob, "2025-11-25")


async def test_the_stateless_childs_log_lines_stay_with_their_principal(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start(start_proxy, tmp_path, share=False)
    await alice_logs_while_bob_waits(proxy, bearer(ALICE), bearer(BOB), MODERN)


async def test_a_server_request_reaches_its_owner_or_no_one(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start(start_proxy, tmp_path, share=True)
    alice = {**bearer(ALICE), "Mcp-Session-Id": await open_session(proxy.url, **bearer(ALICE))}
    bob = {**bearer(BOB), "Mcp-Session-Id": await open_session(proxy.url, **bearer(BOB))}

    # Alone in flight, Alice's sampling request is hers; Bob's forged answer to it goes nowhere, hers is taken.
    alice_seen: list[dict[str, Any]] = []
    question_for_alice = call(20, "ask", question="secret question for ALICE")
    async with asyncio.TaskGroup() as calls:
        calls.create_task(stream(proxy.url, question_for_alice, alice, alice_seen))
        for _ in range(500):
            if server_requests(alice_seen):
                break
            await asyncio.sleep(0.01)
        [question] = server_requests(alice_seen)
        assert question["method"] == "sampling/createMessage"
        await post(proxy.url, answer(question["id"], "BOB"), **bob)
        status, _, _ = await post(proxy.url, answer(question["id"], "ALICE"), **alice)
        assert status == 202
    assert alice_seen[-1]["result"]["content"][0]["text"] == "model said: ALICE"

    # With Bob's call in flight too, nobody can be told apart: Bob never sees it, the server gets an error back.
    alice_seen, bob_seen = [], []
    async with asyncio.TaskGroup() as calls:
        calls.create_task(stream(proxy.url, call(21, "slow", seconds=1.0), bob, bob_seen))
        await asyncio.sleep(0.25)
        await stream(proxy.url, call(22, "ask", question="secret question for ALICE"), alice, alice_seen)
    assert server_requests(bob_seen) == [] and "ALICE" not in str(bob_seen)
    assert server_requests(alice_seen) == []
    final = alice_seen[-1]
    assert final["id"] == 22 and ("error" in final or final["result"].get("isError"))
