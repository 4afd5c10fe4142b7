"""``by: user`` in the hold registry itself: only the held message's own session answers the proxy's question,
and a client that cannot be asked gets the rule's fallback."""

from __future__ import annotations

import asyncio

import pytest

from shadowproxy.control import HoldRegistry
from shadowproxy.control.asking import ID_PREFIX
from shadowproxy.core.chain import C2S, Action
from shadowproxy.core.hold import USER, HoldSpec
from shadowproxy.core.jsonrpc import Message, classify
from shadowproxy.core.record import SessionRecord
from shadowproxy.core.tasks import spawn

CALL = classify({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "rm", "arguments": {}}}, None)
SPEC = HoldSpec(rule="ask", by=USER, timeout=60, fallback="block")


def reply(hold_id: str, action: str) -> Message:
    return classify({"jsonrpc": "2.0", "id": ID_PREFIX + hold_id, "result": {"action": action}}, None)


async def test_only_the_held_session_answers() -> None:
    holds = HoldRegistry()
    session = SessionRecord(id="mine", client_capabilities={"elicitation": {}})
    asked: asyncio.Queue[Message] = asyncio.Queue()

    async def ask(question: Message) -> bool:
        asked.put_nowait(question)
        return True

    parked = spawn(holds.park(CALL, C2S, SPEC, session, "up", None, ask=ask), name="held")
    hold_id = str((await asked.get()).id).removeprefix(ID_PREFIX)
    await holds.answered(reply(hold_id, "accept"), "someone-else")
    assert (await holds.get(hold_id))["state"] == "pending"  # type: ignore[index]
    await holds.answered(reply(hold_id, "decline"), "mine")
    verdict = await parked
    assert verdict.action is Action.BLOCK and verdict.error is not None and "denied by user" in verdict.error.message


@pytest.mark.parametrize("capabilities", [None, {"sampling": {}}])
async def test_a_client_that_cannot_be_asked_gets_the_fallback(capabilities: dict[str, object] | None) -> None:
    async def ask(question: Message) -> bool:
        raise AssertionError("asked a client without the capability")

    session = SessionRecord(id="mine", client_capabilities=capabilities)
    verdict = await HoldRegistry().park(CALL, C2S, SPEC, session, "up", None, ask=ask)
    assert verdict.action is Action.BLOCK and verdict.error is not None and "cannot be asked" in verdict.error.message
