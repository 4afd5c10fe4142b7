"""The 2026-07-28 half of the conformance fixture: `InputRequiredResult` round trips (SEP-2322).

In that era a server cannot send a request mid-call; it answers with `resultType: "input_required"`
and the questions, and the client calls again with `inputResponses` (and the echoed `requestState`,
which the SDK seals, so a tampered state is rejected before a tool runs). Called in the handshake era
(the fixture limited to it, behind the era bridge), the same tools ask the same questions as server
requests mid-call, one after the other (`conformance_fixture_asking`).
"""

from __future__ import annotations

from typing import Any

import mcp_types as types
from conformance_fixture_asking import LIST_ROOTS, answers, ask, elicit, input_required, is_modern, sample
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import Message, UserMessage

ASK_NAME = elicit("What is your name?", {"name": {"type": "string"}}, ["name"])
Asked = types.CallToolResult | types.InputRequiredResult


def _text(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


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
    async def test_input_required_result_elicitation(ctx: Context) -> Asked:
        got = await answers(ctx, {"user_name": ASK_NAME})
        if isinstance(got, types.InputRequiredResult):
            return got
        name = _elicited(got["user_name"], "name")
        if name is None and is_modern(ctx):
            return input_required({"user_name": ASK_NAME})
        return _text(f"Hello, {name}!")

    @mcp.tool(description="Asks the client's LLM a question through an InputRequiredResult.")
    async def test_input_required_result_sampling(ctx: Context) -> Asked:
        got = await answers(ctx, {"capital_question": sample("What is the capital of France?", 100)})
        if isinstance(got, types.InputRequiredResult):
            return got
        return _text(f"The model answered: {_sampled(got['capital_question'])}")

    @mcp.tool(description="Asks the client's roots through an InputRequiredResult.")
    async def test_input_required_result_list_roots(ctx: Context) -> Asked:
        got = await answers(ctx, {"client_roots": LIST_ROOTS})
        if isinstance(got, types.InputRequiredResult):
            return got
        return _text(f"Client roots: {_roots(got['client_roots'])}")

    @mcp.tool(description="Round-trips requestState.")
    async def test_input_required_result_request_state(ctx: Context) -> Asked:
        confirm = elicit("Please confirm", {"ok": {"type": "boolean"}}, ["ok"])
        got = await answers(ctx, {"confirm": confirm}, state="confirm-pending")
        if isinstance(got, types.InputRequiredResult):
            return got
        return _text("state-ok: the requestState came back intact")

    @mcp.tool(description="Asks for elicitation, sampling and roots at once.")
    async def test_input_required_result_multiple_inputs(ctx: Context) -> Asked:
        requests = {"user_name": ASK_NAME, "greeting": sample("Generate a greeting", 50), "client_roots": LIST_ROOTS}
        got = await answers(ctx, requests, state="multiple-pending")
        if isinstance(got, types.InputRequiredResult):
            return got
        name = _elicited(got["user_name"], "name")
        return _text(f"name={name}; greeting={_sampled(got['greeting'])}; roots={_roots(got['client_roots'])}")

    @mcp.tool(description="Two rounds of questions, with the requestState evolving between them.")
    async def test_input_required_result_multi_round(ctx: Context) -> Asked:
        step1 = elicit("Step 1: What is your name?", {"name": {"type": "string"}}, ["name"])
        step2 = elicit("Step 2: What is your favorite color?", {"color": {"type": "string"}}, ["color"])
        if not is_modern(ctx):
            await ask(ctx, step1)
            return _text(f"Done: color={_elicited(await ask(ctx, step2), 'color')}")
        responses = dict(ctx.input_responses or {})
        if ctx.request_state == "round-2" and "step2" in responses:
            return _text(f"Done: color={_elicited(responses['step2'], 'color')}")
        if ctx.request_state == "round-1" and "step1" in responses:
            return input_required({"step2": step2}, state="round-2")
        return input_required({"step1": step1}, state="round-1")

    @mcp.tool(description="Issues integrity-protected requestState (the SDK seals it).")
    async def test_input_required_result_tampered_state(ctx: Context) -> Asked:
        got = await answers(ctx, {"user_name": ASK_NAME}, state="sealed-state")
        if isinstance(got, types.InputRequiredResult):
            return got
        return _text("state verified")

    @mcp.tool(description="Asks only for what the client declared it can answer.")
    async def test_input_required_result_capabilities(ctx: Context) -> Asked:
        capabilities = ctx.client_capabilities or types.ClientCapabilities()
        requests: dict[str, dict[str, Any]] = {}
        if capabilities.elicitation is not None:
            requests["user_name"] = ASK_NAME
        if capabilities.sampling is not None:
            requests["capital_question"] = sample("What is the capital of France?", 100)
        if capabilities.roots is not None:
            requests["client_roots"] = LIST_ROOTS
        got = await answers(ctx, requests)
        if isinstance(got, types.InputRequiredResult):
            return got
        return _text("all declared capabilities answered")

    @mcp.prompt(description="A prompt that needs context from the user first.")
    async def test_input_required_result_prompt(ctx: Context) -> list[Message] | types.InputRequiredResult:
        ask_context = elicit("What context should the prompt use?", {"context": {"type": "string"}}, ["context"])
        got = await answers(ctx, {"user_context": ask_context})
        if isinstance(got, types.InputRequiredResult):
            return got
        context = _elicited(got["user_context"], "context")
        if context is None and is_modern(ctx):
            return input_required({"user_context": ask_context})
        return [UserMessage(f"Prompt using context: {context}")]
