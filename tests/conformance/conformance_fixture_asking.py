"""Asking the client something mid-call, the way each protocol era has it, for both halves of the fixture.

A question is written once, as an `inputRequests` entry (`{"method": ..., "params": ...}`). In the handshake
era (2025-11-25) it goes to the client as a server-to-client request on the call's stream, and the tool waits
for the answer; in 2026-07-28 the tool answers with an `InputRequiredResult` and reads the answer from the
client's retry. So every asking tool of the fixture asks in whichever era it is called, and the fixture limited
to one era (``--era``, the bridge's runs) still has something to ask that the bridge carries to the other.
"""

from __future__ import annotations

from typing import Any

import mcp_types as types
from mcp.server.mcpserver import Context
from mcp.shared.message import ServerMessageMetadata
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

Question = dict[str, Any]

# What each question is as a typed server request, and what its answer is.
_REQUESTS: dict[str, tuple[Any, Any]] = {
    "elicitation/create": (types.ElicitRequest, types.ElicitResult),
    "sampling/createMessage": (types.CreateMessageRequest, types.CreateMessageResult),
    "roots/list": (types.ListRootsRequest, types.ListRootsResult),
}


def elicit(message: str, properties: dict[str, Any], required: list[str] | None = None) -> Question:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required is not None:
        schema["required"] = required
    return {"method": "elicitation/create", "params": {"message": message, "requestedSchema": schema}}


def sample(text: str, max_tokens: int) -> Question:
    message = {"role": "user", "content": {"type": "text", "text": text}}
    return {"method": "sampling/createMessage", "params": {"messages": [message], "maxTokens": max_tokens}}


LIST_ROOTS: Question = {"method": "roots/list", "params": {}}


def is_modern(ctx: Context) -> bool:
    """Whether this call is a 2026-07-28 one (no back-channel: questions go in an `InputRequiredResult`)."""
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


def input_required(requests: dict[str, Question], state: str | None = None) -> types.InputRequiredResult:
    """An `InputRequiredResult` asking `requests` (keyed as the suite expects), optionally with state."""
    payload: dict[str, Any] = {"resultType": "input_required", "inputRequests": requests}
    if state is not None:
        payload["requestState"] = state
    return types.InputRequiredResult.model_validate(payload)


async def ask(ctx: Context, question: Question) -> Any:
    """Handshake era: `question` sent to the client now, on this call's stream; the client's typed answer."""
    request_type, result_type = _REQUESTS[question["method"]]
    related = ServerMessageMetadata(related_request_id=ctx.request_id)
    session = ctx.request_context.session
    return await session.send_request(request_type.model_validate(question), result_type, metadata=related)


async def answers(
    ctx: Context, requests: dict[str, Question], state: str | None = None
) -> dict[str, Any] | types.InputRequiredResult:
    """The client's answers to `requests`, by key.

    2026-07-28: from the retry, when it carries every key and echoes `state`; otherwise the `InputRequiredResult`
    that asks them (what else the retry carries is ignored). Handshake era: each asked now, one after the other.
    """
    if is_modern(ctx):
        responses = dict(ctx.input_responses or {})
        if requests.keys() <= responses.keys() and ctx.request_state == state:
            return responses
        return input_required(requests, state)
    return {key: await ask(ctx, question) for key, question in requests.items()}
