"""``by: user`` beyond a handshake-era POST: a 2026-07-28 client asked through ``InputRequiredResult`` and its
retry, and the stdio and WebSocket fronts asking with an ``elicitation/create`` of their own. The official SDK
client answers through its elicitation callback; the recorder server says what reached it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.shared.exceptions import MCPError
from mcp_types import ElicitRequestParams, ElicitResult

from shadowproxy.core.tasks import spawn
from tests.control.test_approvals import api, approvals_proxy, calls, pending, proxy_config
from tests.streams.ws_transport import websocket_client
from tests.support import REPO, child_env, until

pytestmark = pytest.mark.asyncio(loop_scope="module")


proxy = approvals_proxy("asking")


class User:
    """An elicitation callback that answers ``action`` and keeps what it was asked."""

    def __init__(self, tmp_path: Path, action: str) -> None:
        self.action = action
        self.asked: list[ElicitRequestParams] = []
        self.tmp_path = tmp_path
        self.before = len(calls(tmp_path))

    async def __call__(self, context: object, params: ElicitRequestParams) -> ElicitResult:
        self.asked.append(params)
        assert calls(self.tmp_path)[self.before :] == []  # the upstream sees nothing while the user decides
        return ElicitResult(action=self.action, content={"reason": f"user said {self.action}"})  # type: ignore[arg-type]

    async def call(self, client: Client) -> None:
        """The held call, answered as the user decides."""
        if self.action == "accept":
            result = await client.call_tool("echo", {"text": "ask"})
            assert result.content[0].text == "ask"  # type: ignore[union-attr]
        else:
            with pytest.raises(MCPError) as caught:
                await client.call_tool("echo", {"text": "ask"})
            assert caught.value.error.code == -32010 and "denied by user" in caught.value.error.message
            assert caught.value.error.data["rule"] == "the-user-decides"  # type: ignore[index]

    async def check(self, base: str, *then: str) -> dict[str, Any]:
        """One question, about the held call; the hold decided by the user; the server saw only an accepted call."""
        (question,) = self.asked
        assert "'echo'" in question.message and "the-user-decides" in question.message
        hold_id = question.meta["io.shadowproxy/hold"]["id"]  # type: ignore[index]
        status, hold = await api(base, "GET", f"/approvals/{hold_id}")
        assert status == 200 and hold["by"] == "user" and hold["decider"] == "user"
        assert hold["state"] == ("approved" if self.action == "accept" else "denied")
        assert hold["reason"] == f"user said {self.action}"
        reached = calls(self.tmp_path)[self.before :]
        asked = [{"tool": "echo", "arguments": {"text": "ask"}}] if self.action == "accept" else []
        assert reached == asked + [{"tool": "echo", "arguments": {"text": text}} for text in then]
        return hold


@pytest.mark.parametrize("front", ["http", "websocket"])
@pytest.mark.parametrize("action", ["accept", "decline"])
async def test_a_2026_client_is_asked_through_input_required(proxy, front: str, action: str) -> None:  # type: ignore[no-untyped-def]
    process, tmp_path = proxy
    user = User(tmp_path, action)
    target = process.url if front == "http" else websocket_client(process.base.replace("http://", "ws://") + "/ws")
    async with Client(target, mode="2026-07-28", elicitation_callback=user) as client:
        await user.call(client)
    hold = await user.check(process.base)
    assert hold["session"].startswith("logical-")


async def test_a_2026_retry_cannot_reuse_an_answered_state(proxy) -> None:  # type: ignore[no-untyped-def]
    process, tmp_path = proxy
    user = User(tmp_path, "decline")
    async with Client(process.url, mode="2026-07-28", elicitation_callback=user) as client:
        await user.call(client)
        hold_id = user.asked[0].meta["io.shadowproxy/hold"]["id"]  # type: ignore[index]
        accepted = {"shadowproxy-approval": {"action": "accept"}}
        with pytest.raises(MCPError) as caught:
            # The same answered question, now "accepted": the decision stands.
            await client.session.call_tool(
                "echo", {"text": "ask"}, input_responses=accepted, request_state=f"shadowproxy-hold:{hold_id}"
            )
        assert caught.value.error.code == -32010
        with pytest.raises(MCPError) as caught:
            # Someone else's (or a made-up) hold: refused, never forwarded.
            await client.session.call_tool(
                "echo", {"text": "ask"}, input_responses=accepted, request_state="shadowproxy-hold:0000"
            )
        assert caught.value.error.code == -32602
    assert calls(tmp_path)[user.before :] == []


async def test_a_2026_client_without_elicitation_gets_the_fallback(proxy) -> None:  # type: ignore[no-untyped-def]
    process, tmp_path = proxy
    before = len(calls(tmp_path))
    async with Client(process.url, mode="2026-07-28") as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("echo", {"text": "ask"})
    assert caught.value.error.code == -32010 and "cannot be asked" in caught.value.error.message
    assert len(calls(tmp_path)) == before


@pytest.mark.parametrize("front", ["websocket", "sse"])
@pytest.mark.parametrize("action", ["accept", "decline"])
async def test_a_stream_front_asks_on_its_stream(proxy, front: str, action: str) -> None:  # type: ignore[no-untyped-def]
    process, tmp_path = proxy
    user = User(tmp_path, action)
    base = process.base
    transport = (
        websocket_client(base.replace("http://", "ws://") + "/ws")
        if front == "websocket"
        else sse_client(f"{base}/sse")
    )
    async with Client(transport, mode="legacy", elicitation_callback=user) as client:
        await user.call(client)
        # The stream was read while the call was held: the session answers as before.
        assert (await client.call_tool("echo", {"text": "after"})).content[0].text == "after"  # type: ignore[union-attr]
    hold = await user.check(process.base, "after")
    assert not hold["session"].startswith("logical-")


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
@pytest.mark.parametrize("action", ["accept", "decline"])
async def test_the_stdio_front_asks_on_stdout(tmp_path: Path, action: str, mode: str) -> None:
    config = yaml.safe_load(proxy_config(tmp_path).read_text())
    config.pop("admin")
    (tmp_path / "stdio.yaml").write_text(yaml.safe_dump(config))
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "shadowproxy", "stdio", "--config", str(tmp_path / "stdio.yaml"), "--server", "pay"],
        env=child_env(),
        cwd=str(REPO),
    )
    user = User(tmp_path, action)
    async with Client(params, mode=mode, elicitation_callback=user) as client:
        await user.call(client)
    (question,) = user.asked
    assert "the-user-decides" in question.message
    reached = calls(tmp_path)[user.before :]
    assert reached == ([{"tool": "echo", "arguments": {"text": "ask"}}] if action == "accept" else [])


async def test_a_call_held_on_a_websocket_gets_progress_and_the_stream_goes_on(proxy) -> None:  # type: ignore[no-untyped-def]
    process, _ = proxy
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    ws = websocket_client(process.base.replace("http://", "ws://") + "/ws")
    async with Client(ws, mode="legacy") as client:
        call = spawn(client.call_tool("pay", {"amount": 2, "to": "fay"}, progress_callback=on_progress), name="pay")
        (held,) = await pending(process.base)
        await until(lambda: len(progress) >= 2, "progress while held")
        assert (await client.call_tool("echo", {"text": "meanwhile"})).content[0].text == "meanwhile"  # type: ignore[union-attr]
        status, _ = await api(process.base, "POST", f"/approvals/{held['id']}", {"decision": "approve"})
        assert status == 200
        assert (await call).content[0].text == "paid 2 to fay"  # type: ignore[union-attr]
