"""``by: user`` in the hold registry itself: only the held message's own session answers the proxy's question,
and a client that cannot be asked gets the rule's fallback."""

from __future__ import annotations

import asyncio

import pytest

from shadowproxy.control import HoldRegistry, metrics
from shadowproxy.control.asking import ID_PREFIX, KEY, ROUND_TRIP, STATE_PREFIX
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


MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
}


def modern_call(request_id: int, name: str = "rm", **retry: object) -> Message:
    params = {"name": name, "arguments": {"path": "/"}, "_meta": MODERN_META, **retry}
    return classify({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}, None)


async def asked_in_a_result(holds: HoldRegistry, session: SessionRecord) -> str:
    """The first round: an InputRequiredResult naming the hold, nothing parked."""
    verdict = await holds.park(modern_call(1), C2S, SPEC, session, "up", None, ask=ROUND_TRIP)
    assert verdict.action is Action.RESPOND and verdict.result["resultType"] == "input_required"  # type: ignore[index]
    assert set(verdict.result["inputRequests"]) == {KEY} and not holds.parked  # type: ignore[index]
    return str(verdict.result["requestState"])  # type: ignore[index]


async def test_a_round_trip_retry_for_another_tool_or_session_is_refused() -> None:
    holds, session = HoldRegistry(), SessionRecord(id="logical-1")
    state = await asked_in_a_result(holds, session)
    accept = {KEY: {"action": "accept"}}
    other_tool = modern_call(2, "pay", inputResponses=accept, requestState=state)
    verdict = await holds.park(other_tool, C2S, SPEC, session, "up", None, ask=ROUND_TRIP)
    assert verdict.action is Action.BLOCK and verdict.error is not None and verdict.error.code == -32602
    retry = modern_call(3, inputResponses=accept, requestState=state)
    verdict = await holds.park(retry, C2S, SPEC, SessionRecord(id="logical-2"), "up", None, ask=ROUND_TRIP)
    assert verdict.action is Action.BLOCK and verdict.error is not None and verdict.error.code == -32602
    assert (await holds.get(state.removeprefix(STATE_PREFIX)))["state"] == "pending"  # type: ignore[index]


async def test_an_operator_who_decides_first_wins_and_the_retry_takes_the_edit() -> None:
    holds, session = HoldRegistry(), SessionRecord(id="logical-1")
    state = await asked_in_a_result(holds, session)
    hold_id = state.removeprefix(STATE_PREFIX)
    await holds.decide(hold_id, "approve", "ann", arguments={"path": "/tmp"})
    retry = modern_call(4, inputResponses={KEY: {"action": "decline"}}, requestState=state)
    verdict = await holds.park(retry, C2S, SPEC, session, "up", None, ask=ROUND_TRIP)
    assert verdict.is_forward and verdict.message is not None
    assert verdict.message.id == 4 and verdict.message.params["arguments"] == {"path": "/tmp"}  # type: ignore[index]
    assert "requestState" not in verdict.message.params  # type: ignore[operator]


async def test_a_round_trip_without_an_answer_is_asked_again_and_times_out() -> None:
    holds, session = HoldRegistry(), SessionRecord(id="logical-1")
    spec = HoldSpec(rule="ask", by=USER, timeout=0.05, on_timeout="block")
    before = metrics.PENDING._value.get()
    first = await holds.park(modern_call(1), C2S, spec, session, "up", None, ask=ROUND_TRIP)
    assert metrics.PENDING._value.get() == before + 1  # pending, though nothing is parked
    state = first.result["requestState"]  # type: ignore[index]
    again = await holds.park(modern_call(2, requestState=state), C2S, spec, session, "up", None, ask=ROUND_TRIP)
    assert again.action is Action.RESPOND and again.result["requestState"] == state  # type: ignore[index]
    hold_id = state.removeprefix(STATE_PREFIX)
    for _ in range(100):
        if (await holds.get(hold_id))["state"] != "pending":  # type: ignore[index]
            break
        await asyncio.sleep(0.02)
    assert (await holds.get(hold_id))["decider"] == "timeout"  # type: ignore[index]
    assert metrics.PENDING._value.get() == before
    late = modern_call(3, inputResponses={KEY: {"action": "accept"}}, requestState=state)
    verdict = await holds.park(late, C2S, spec, session, "up", None, ask=ROUND_TRIP)
    assert verdict.action is Action.BLOCK and verdict.error is not None and verdict.error.code == -32010
