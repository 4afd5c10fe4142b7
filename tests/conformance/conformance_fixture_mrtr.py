"""The 2026-07-28 half of the conformance fixture: `InputRequiredResult` round trips (SEP-2322).

In that era a server cannot send a request mid-call; it answers with `resultType: "input_required"`
and the questions, and the client calls again with `inputResponses` (and the echoed `requestState`,
which the SDK seals, so a tampered state is rejected before a tool runs).
"""

from __future__ import annotations

from typing import Any

import mcp_types as types
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import Message, UserMessage


def _elicit(message: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required}
    return {"method": "elicitation/create", "params": {"message": message, "requestedSchema": schema}}


def _sample(text: str, max_tokens: int) -> dict[str, Any]:
    message = {"role": "user", "content": {"type": "text", "text": text}}
    return {"method": "sampling/createMessage", "params": {"messages": [message], "maxTokens": max_tokens}}


LIST_ROOTS: dict[str, Any] = {"method": "roots/list", "params": {}}
ASK_NAME = _elicit("What is your name?", {"name": {"type": "string"}}, ["name"])


def input_required(requests: dict[str, dict[str, Any]], state: str | None = None) -> types.InputRequiredResult:
    """An `InputRequiredResult` asking `requests` (keyed as the suite expects), optionally with state."""
    payload: dict[str, Any] = {"resultType": "input_required", "inputRequests": requests}
    if state is not None:
        payload["requestState"] = state
    return types.InputRequiredResult.model_validate(payload)


def _text(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


def _responses(ctx: Context) -> dict[str, Any]:
    return dict(ctx.input_responses or {})


def _elicited(response: Any, field: str) -> str | None:
    if isinstance(response, types.ElicitResult) and response.action == "accept" and response.content:
        value = response.content.get(field)
        return None if value is None else str(value)
    return None


def _sampled(response: Any) -> str:
    content = getattr(response, "content", None)
    return content.text if isinstance(content, types.TextContent) else "(no text)"


def _roots(response: Any) -> str:
    if isinstance(response, types.ListRootsResult):
        return ", ".join(str(root.uri) for root in response.roots)
    return "(no roots)"


def register_input_required(mcp: MCPServer) -> None:
    """Register every `test_input_required_result_*` tool and prompt."""

    @mcp.tool(description="Asks the user's name through an InputRequiredResult.")
    async def test_input_required_result_elicitation(ctx: Context) -> types.CallToolResult | types.InputRequiredResult:
        name = _elicited(_responses(ctx).get("user_name"), "name")
        if name is None:
            return input_required({"user_name": ASK_NAME})
        return _text(f"Hello, {name}!")

    @mcp.tool(description="Asks the client's LLM a question through an InputRequiredResult.")
    async def test_input_required_result_sampling(ctx: Context) -> types.CallToolResult | types.InputRequiredResult:
        response = _responses(ctx).get("capital_question")
        if response is None:
            return input_required({"capital_question": _sample("What is the capital of France?", 100)})
        return _text(f"The model answered: {_sampled(response)}")

    @mcp.tool(description="Asks the client's roots through an InputRequiredResult.")
    async def test_input_required_result_list_roots(ctx: Context) -> types.CallToolResult | types.InputRequiredResult:
        response = _responses(ctx).get("client_roots")
        if response is None:
            return input_required({"client_roots": LIST_ROOTS})
        return _text(f"Client roots: {_roots(response)}")

    @mcp.tool(description="Round-trips requestState.")
    async def test_input_required_result_request_state(
        ctx: Context,
    ) -> types.CallToolResult | types.InputRequiredResult:
        confirm = _elicit("Please confirm", {"ok": {"type": "boolean"}}, ["ok"])
        if "confirm" not in _responses(ctx) or ctx.request_state != "confirm-pending":
            return input_required({"confirm": confirm}, state="confirm-pending")
        return _text("state-ok: the requestState came back intact")

    @mcp.tool(description="Asks for elicitation, sampling and roots at once.")
    async def test_input_required_result_multiple_inputs(
        ctx: Context,
    ) -> types.CallToolResult | types.InputRequiredResult:
        responses = _responses(ctx)
        requests = {"user_name": ASK_NAME, "greeting": _sample("Generate a greeting", 50), "client_roots": LIST_ROOTS}
        if not requests.keys() <= responses.keys() or ctx.request_state != "multiple-pending":
            return input_required(requests, state="multiple-pending")
        name = _elicited(responses["user_name"], "name")
        return _text(
            f"name={name}; greeting={_sampled(responses['greeting'])}; roots={_roots(responses['client_roots'])}"
        )

    @mcp.tool(description="Two rounds of questions, with the requestState evolving between them.")
    async def test_input_required_result_multi_round(
        ctx: Context,
    ) -> types.CallToolResult | types.InputRequiredResult:
        responses = _responses(ctx)
        if ctx.request_state == "round-2" and "step2" in responses:
            return _text(f"Done: color={_elicited(responses['step2'], 'color')}")
        if ctx.request_state == "round-1" and "step1" in responses:
            step2 = _elicit("Step 2: What is your favorite color?", {"color": {"type": "string"}}, ["color"])
            return input_required({"step2": step2}, state="round-2")
        step1 = _elicit("Step 1: What is your name?", {"name": {"type": "string"}}, ["name"])
        return input_required({"step1": step1}, state="round-1")

    @mcp.tool(description="Issues integrity-protected requestState (the SDK seals it).")
    async def test_input_required_result_tampered_state(
        ctx: Context,
    ) -> types.CallToolResult | types.InputRequiredResult:
        if ctx.request_state == "sealed-state" and "user_name" in _responses(ctx):
            return _text("state verified")
        return input_required({"user_name": ASK_NAME}, state="sealed-state")

    @mcp.tool(description="Asks only for what the client declared it can answer.")
    async def test_input_required_result_capabilities(
        ctx: Context,
    ) -> types.CallToolResult | types.InputRequiredResult:
        capabilities = ctx.client_capabilities or types.ClientCapabilities()
        requests: dict[str, dict[str, Any]] = {}
        if capabilities.elicitation is not None:
            requests["user_name"] = ASK_NAME
        if capabilities.sampling is not None:
            requests["capital_question"] = _sample("What is the capital of France?", 100)
        if capabilities.roots is not None:
            requests["client_roots"] = LIST_ROOTS
        responses = _responses(ctx)
        if not requests or requests.keys() <= responses.keys():
            return _text("all declared capabilities answered")
        return input_required(requests)

    @mcp.prompt(description="A prompt that needs context from the user first.")
    async def test_input_required_result_prompt(ctx: Context) -> list[Message] | types.InputRequiredResult:
        context = _elicited(_responses(ctx).get("user_context"), "context")
        if context is None:
            ask = _elicit("What context should the prompt use?", {"context": {"type": "string"}}, ["context"])
            return input_required({"user_context": ask})
        return [UserMessage(f"Prompt using context: {context}")]
