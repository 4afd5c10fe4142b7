"""The 2025-11-25 half of the conformance fixture: tools that send the client a request mid-call.

In the handshake era a server may ask the client for an LLM completion (`sampling/createMessage`) or
for user input (`elicitation/create`) while a `tools/call` is in flight; through the proxy those
requests travel server-to-client on the call's stream, and the answers travel back. Called in 2026-07-28
(the fixture limited to it, behind the era bridge), the same tools ask the same question in an
`InputRequiredResult` and answer the retry alike (`conformance_fixture_asking`).
"""

from __future__ import annotations

import json
from typing import Any

import mcp_types as types
from conformance_fixture_asking import Question, answers, elicit, sample
from mcp.server.mcpserver import Context, MCPServer

Asked = types.CallToolResult | types.InputRequiredResult


def _text(text: str) -> types.TextContent:
    return types.TextContent(type="text", text=text)


async def _answer(ctx: Context, question: Question) -> Any:
    """The client's answer to `question`, or (2026-07-28, not answered yet) the `InputRequiredResult` asking it."""
    got = await answers(ctx, {"question": question})
    return got if isinstance(got, types.InputRequiredResult) else got["question"]


def register_server_requests(mcp: MCPServer) -> None:
    """Tools that ask the client something mid-call (2025-11-25 era: sampling and elicitation requests)."""

    @mcp.tool(description="Asks the client's LLM to answer the prompt.")
    async def test_sampling(prompt: str, ctx: Context) -> Asked:
        result = await _answer(ctx, sample(prompt, 100))
        if isinstance(result, types.InputRequiredResult):
            return result
        content = result.content
        answer = content.text if isinstance(content, types.TextContent) else json.dumps(result.model_dump(mode="json"))
        return types.CallToolResult(content=[_text(f"LLM response: {answer}")])

    @mcp.tool(description="Asks the user for a username and an email address.")
    async def test_elicitation(message: str, ctx: Context) -> Asked:
        properties = {
            "username": {"type": "string", "description": "User's response"},
            "email": {"type": "string", "description": "User's email address"},
        }
        result = await _answer(ctx, elicit(message, properties, ["username", "email"]))
        if isinstance(result, types.InputRequiredResult):
            return result
        return types.CallToolResult(content=[_text(f"User response: action={result.action}, content={result.content}")])

    @mcp.tool(description="Elicits values with defaults for every primitive type (SEP-1034).")
    async def test_elicitation_sep1034_defaults(ctx: Context) -> Asked:
        properties = {
            "name": {"type": "string", "description": "Name", "default": "John Doe"},
            "age": {"type": "integer", "description": "Age", "default": 30},
            "score": {"type": "number", "description": "Score", "default": 95.5},
            "status": {
                "type": "string",
                "description": "Status",
                "enum": ["active", "inactive", "pending"],
                "default": "active",
            },
            "verified": {"type": "boolean", "description": "Verified", "default": True},
        }
        return await _elicit_completed(ctx, "Please review and update the form fields with defaults", properties)

    @mcp.tool(description="Elicits all five enum variants (SEP-1330).")
    async def test_elicitation_sep1330_enums(ctx: Context) -> Asked:
        titled = [
            {"const": f"value{i}", "title": f"{word} Option"} for i, word in enumerate(("First", "Second", "Third"), 1)
        ]
        choices = [
            {"const": f"value{i}", "title": f"{word} Choice"} for i, word in enumerate(("First", "Second", "Third"), 1)
        ]
        properties = {
            "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
            "titledSingle": {"type": "string", "oneOf": titled},
            "legacyEnum": {
                "type": "string",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"],
            },
            "untitledMulti": {
                "type": "array",
                "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
            },
            "titledMulti": {"type": "array", "items": {"anyOf": choices}},
        }
        return await _elicit_completed(ctx, "Please select options from the enum fields", properties)


async def _elicit_completed(ctx: Context, message: str, properties: dict[str, Any]) -> Asked:
    result = await _answer(ctx, elicit(message, properties))
    if isinstance(result, types.InputRequiredResult):
        return result
    content = json.dumps(result.content) if result.content is not None else "null"
    return types.CallToolResult(content=[_text(f"Elicitation completed: action={result.action}, content={content}")])
