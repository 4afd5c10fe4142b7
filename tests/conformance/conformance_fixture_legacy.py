"""The 2025-11-25 half of the conformance fixture: tools that send the client a request mid-call.

In the handshake era a server may ask the client for an LLM completion (`sampling/createMessage`) or
for user input (`elicitation/create`) while a `tools/call` is in flight; through the proxy those
requests travel server-to-client on the call's stream, and the answers travel back.
"""

from __future__ import annotations

import json
from typing import Any

import mcp_types as types
from mcp.server.mcpserver import Context, MCPServer


def _text(text: str) -> types.TextContent:
    return types.TextContent(type="text", text=text)


def _session(ctx: Context) -> Any:
    return ctx.request_context.session


def register_server_requests(mcp: MCPServer) -> None:
    """Tools that ask the client something mid-call (2025-11-25 era: sampling and elicitation requests)."""

    @mcp.tool(description="Asks the client's LLM to answer the prompt.")
    async def test_sampling(prompt: str, ctx: Context) -> types.CallToolResult:
        message = types.SamplingMessage(role="user", content=_text(prompt))
        result = await _session(ctx).create_message([message], max_tokens=100, related_request_id=ctx.request_id)
        content = result.content
        answer = content.text if isinstance(content, types.TextContent) else json.dumps(result.model_dump(mode="json"))
        return types.CallToolResult(content=[_text(f"LLM response: {answer}")])

    @mcp.tool(description="Asks the user for a username and an email address.")
    async def test_elicitation(message: str, ctx: Context) -> types.CallToolResult:
        schema = {
            "type": "object",
            "properties": {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"},
            },
            "required": ["username", "email"],
        }
        result = await _session(ctx).elicit_form(message, schema, related_request_id=ctx.request_id)
        return types.CallToolResult(content=[_text(f"User response: action={result.action}, content={result.content}")])

    @mcp.tool(description="Elicits values with defaults for every primitive type (SEP-1034).")
    async def test_elicitation_sep1034_defaults(ctx: Context) -> types.CallToolResult:
        schema = {
            "type": "object",
            "properties": {
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
            },
        }
        return await _elicit_completed(ctx, "Please review and update the form fields with defaults", schema)

    @mcp.tool(description="Elicits all five enum variants (SEP-1330).")
    async def test_elicitation_sep1330_enums(ctx: Context) -> types.CallToolResult:
        titled = [
            {"const": f"value{i}", "title": f"{word} Option"} for i, word in enumerate(("First", "Second", "Third"), 1)
        ]
        choices = [
            {"const": f"value{i}", "title": f"{word} Choice"} for i, word in enumerate(("First", "Second", "Third"), 1)
        ]
        schema = {
            "type": "object",
            "properties": {
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
            },
        }
        return await _elicit_completed(ctx, "Please select options from the enum fields", schema)


async def _elicit_completed(ctx: Context, message: str, schema: dict[str, Any]) -> types.CallToolResult:
    result = await _session(ctx).elicit_form(message, schema, related_request_id=ctx.request_id)
    content = json.dumps(result.content) if result.content is not None else "null"
    return types.CallToolResult(content=[_text(f"Elicitation completed: action={result.action}, content={content}")])
