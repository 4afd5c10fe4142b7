"""Conformance fixture: an MCP server exposing what `@modelcontextprotocol/conformance` expects.

Written on the `mcp` SDK (2.x) so that the official suite, which nobody on this team wrote, can judge
the proxy by comparing a run against this server directly with a run through ShadowProxy. The names,
payloads and behaviours come from the suite's scenario descriptions (`conformance list`, and the
"Server Implementation Requirements" of each scenario). One process serves both protocol eras:
2025-11-25 (initialize handshake, server-to-client requests: `conformance_fixture_legacy`) and
2026-07-28 (stateless, per-request `_meta`, `InputRequiredResult` round trips: `conformance_fixture_mrtr`).
Over HTTP its SSE streams are resumable (`conformance_fixture_events`).

Run it:

    python tests/conformance/conformance_fixture.py --transport stdio
    python tests/conformance/conformance_fixture.py --transport http --port 8931   # /mcp
    python tests/conformance/conformance_fixture.py --era handshake   # or modern: one era only (the bridge's runs)
"""

from __future__ import annotations

import argparse
import base64
import json
from typing import Any

import anyio
import mcp_types as types
from conformance_fixture_asking import is_modern  # siblings: run as a script, this folder is on sys.path
from conformance_fixture_events import MemoryEventStore
from conformance_fixture_legacy import register_server_requests
from conformance_fixture_mrtr import register_input_required
from mcp.server import NotificationOptions
from mcp.server.caching import CacheHint
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import Message, UserMessage
from mcp.server.mcpserver.tools import Tool
from mcp.shared.exceptions import MCPError

# A 1x1 red pixel PNG and a 44-byte silent WAV: the smallest payloads the image and audio checks accept.
RED_PIXEL_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
SILENT_WAV = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA="

FIXTURE_NAME = "shadowproxy-conformance-fixture"
RETRY_INTERVAL_MS = 200  # how soon a client whose SSE stream was closed should resume it
CACHEABLE = ("tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read")


def _text(text: str) -> types.TextContent:
    return types.TextContent(type="text", text=text)


def _image() -> types.ImageContent:
    return types.ImageContent(type="image", data=RED_PIXEL_PNG, mime_type="image/png")


def _session(ctx: Context) -> Any:
    return ctx.request_context.session


def register_tools(mcp: MCPServer) -> None:
    """The tool scenarios of both eras that need no server-to-client request."""

    @mcp.tool(description="Returns a simple text response.")
    def test_simple_text() -> types.CallToolResult:
        return types.CallToolResult(content=[_text("This is a simple text response for testing.")])

    @mcp.tool(description="Returns a 1x1 PNG image.")
    def test_image_content() -> types.CallToolResult:
        return types.CallToolResult(content=[_image()])

    @mcp.tool(description="Returns a short WAV clip.")
    def test_audio_content() -> types.CallToolResult:
        audio = types.AudioContent(type="audio", data=SILENT_WAV, mime_type="audio/wav")
        return types.CallToolResult(content=[audio])

    @mcp.tool(description="Returns an embedded text resource.")
    def test_embedded_resource() -> types.CallToolResult:
        resource = types.TextResourceContents(
            uri="test://embedded-resource", mime_type="text/plain", text="This is an embedded resource content."
        )
        return types.CallToolResult(content=[types.EmbeddedResource(type="resource", resource=resource)])

    @mcp.tool(description="Returns text, image and resource content together.")
    def test_multiple_content_types() -> types.CallToolResult:
        resource = types.TextResourceContents(
            uri="test://mixed-content-resource",
            mime_type="application/json",
            text=json.dumps({"test": "data", "value": 123}, separators=(",", ":")),
        )
        content = [
            _text("Multiple content types test:"),
            _image(),
            types.EmbeddedResource(type="resource", resource=resource),
        ]
        return types.CallToolResult(content=content)

    @mcp.tool(description="Always fails with a tool error.")
    def test_error_handling() -> types.CallToolResult:
        return types.CallToolResult(
            content=[_text("This tool intentionally returns an error for testing")], is_error=True
        )

    @mcp.tool(description="Sends three info log messages while it runs.")
    async def test_tool_with_logging(ctx: Context) -> types.CallToolResult:
        for index, line in enumerate(("Tool execution started", "Tool processing data", "Tool execution completed")):
            if index:
                await anyio.sleep(0.05)
            await _session(ctx).send_log_message(level="info", data=line, related_request_id=ctx.request_id)
        return types.CallToolResult(content=[_text("Tool with logging executed successfully")])

    @mcp.tool(description="Logs one message; used to check no log is sent without a requested level.")
    async def test_logging_tool(ctx: Context) -> types.CallToolResult:
        await _session(ctx).send_log_message(
            level="info", data="test_logging_tool ran", related_request_id=ctx.request_id
        )
        return types.CallToolResult(content=[_text("logged")])

    @mcp.tool(description="Reports progress 0, 50 and 100 of 100.")
    async def test_tool_with_progress(ctx: Context) -> types.CallToolResult:
        for progress in (0, 50, 100):
            if progress:
                await anyio.sleep(0.05)
            await ctx.report_progress(progress, 100)
        return types.CallToolResult(content=[_text("Tool with progress executed successfully")])

    @mcp.tool(description="Closes its SSE stream mid-call; the result arrives on the resumed stream (SEP-1699).")
    async def test_reconnection(ctx: Context) -> types.CallToolResult:
        await anyio.sleep(0.1)
        await ctx.close_sse_stream()
        await anyio.sleep(0.2)
        return types.CallToolResult(content=[_text("Reconnection test completed")])

    @mcp.tool(description="Needs the client's sampling capability, which a caller may not declare.")
    async def test_missing_capability(ctx: Context) -> types.CallToolResult:
        capabilities = ctx.client_capabilities
        if capabilities is None or capabilities.sampling is None:
            data = types.MissingRequiredClientCapabilityErrorData(
                required_capabilities=types.ClientCapabilities(sampling=types.SamplingCapability())
            )
            raise MCPError(
                code=types.MISSING_REQUIRED_CLIENT_CAPABILITY,
                message="This tool requires the sampling capability",
                data=data.model_dump(by_alias=True, mode="json", exclude_none=True),
            )
        return types.CallToolResult(content=[_text("sampling capability declared")])

    @mcp.tool(description="Adds a tool, so that tools/list changes.")
    async def test_trigger_tool_change(ctx: Context) -> types.CallToolResult:
        if "test_dynamic_tool" not in {tool.name for tool in await mcp.list_tools()}:
            mcp.add_tool(_dynamic_tool, name="test_dynamic_tool", description="Added by test_trigger_tool_change.")
        await ctx.notify_tools_changed()  # to 2026-07-28 listen streams
        if not is_modern(ctx):
            # A handshake-era client hears it as the session's own notification (off the call's stream).
            await _session(ctx).send_tool_list_changed()
        return types.CallToolResult(content=[_text("tool list changed")])

    @mcp.tool(description="Adds a prompt, so that prompts/list changes.")
    async def test_trigger_prompt_change(ctx: Context) -> types.CallToolResult:
        if "test_dynamic_prompt" not in {prompt.name for prompt in await mcp.list_prompts()}:
            mcp.prompt(name="test_dynamic_prompt", description="Added by test_trigger_prompt_change.")(_dynamic_prompt)
        await ctx.notify_prompts_changed()
        if not is_modern(ctx):
            await _session(ctx).send_prompt_list_changed()
        return types.CallToolResult(content=[_text("prompt list changed")])


# The suite's JSON Schema 2020-12 tool (SEP-1613, SEP-2106): the listing must carry these keywords intact.
JSON_SCHEMA_2020_12: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


# SEP-2243: a parameter mirrored in an `Mcp-Param-Region` header, which the server checks against the body.
CUSTOM_HEADER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"region": {"type": "string", "x-mcp-header": "Region"}},
    "required": ["region"],
}


def _echo_arguments(**arguments: Any) -> str:
    return json.dumps(arguments, sort_keys=True)


def verbatim_tool(name: str, description: str, schema: dict[str, Any]) -> Tool:
    """A tool whose input schema is given as is, rather than derived from a Python signature."""
    tool = Tool.from_function(_echo_arguments, name=name, description=description)
    return tool.model_copy(update={"parameters": schema})


def _dynamic_tool() -> str:
    return "dynamic"


def _dynamic_prompt() -> str:
    return "dynamic"


def register_resources(mcp: MCPServer) -> None:
    """Static resources, the template, and (legacy era) subscriptions."""

    @mcp.resource(
        "test://static-text", name="static-text", description="A static text resource.", mime_type="text/plain"
    )
    def static_text() -> str:
        return "This is the content of the static text resource."

    @mcp.resource("test://static-binary", name="static-binary", description="A 1x1 PNG.", mime_type="image/png")
    def static_binary() -> bytes:
        return base64.b64decode(RED_PIXEL_PNG)

    @mcp.resource(
        "test://watched-resource", name="watched-resource", description="Subscribable.", mime_type="text/plain"
    )
    def watched_resource() -> str:
        return "Watched resource content."

    @mcp.resource(
        "test://template/{id}/data", name="template-data", description="Data for an id.", mime_type="application/json"
    )
    def template_data(id: str) -> str:
        return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"}, separators=(",", ":"))

    subscribed: set[str] = set()

    async def subscribe(ctx: ServerRequestContext[Any], params: types.SubscribeRequestParams) -> types.EmptyResult:
        subscribed.add(str(params.uri))
        return types.EmptyResult()

    async def unsubscribe(ctx: ServerRequestContext[Any], params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        subscribed.discard(str(params.uri))
        return types.EmptyResult()

    async def set_level(ctx: ServerRequestContext[Any], params: types.SetLevelRequestParams) -> types.EmptyResult:
        return types.EmptyResult()

    # MCPServer has no decorator for these legacy-era methods; the low-level server takes any handler.
    lowlevel = mcp._lowlevel_server
    lowlevel.add_request_handler("resources/subscribe", types.SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, unsubscribe)
    lowlevel.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_level)


def register_prompts(mcp: MCPServer) -> None:
    """The prompt scenarios and completion for their arguments."""

    @mcp.prompt(description="A simple prompt without arguments.")
    def test_simple_prompt() -> list[Message]:
        return [UserMessage("This is a simple prompt for testing.")]

    @mcp.prompt(description="A prompt with two required arguments.")
    def test_prompt_with_arguments(arg1: str, arg2: str) -> list[Message]:
        return [UserMessage(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'")]

    @mcp.prompt(description="A prompt embedding a resource.")
    def test_prompt_with_embedded_resource(resourceUri: str) -> list[Message]:  # the suite's argument name
        resource = types.TextResourceContents(
            uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing."
        )
        return [
            UserMessage(types.EmbeddedResource(type="resource", resource=resource)),
            UserMessage("Please process the embedded resource above."),
        ]

    @mcp.prompt(description="A prompt with an image.")
    def test_prompt_with_image() -> list[Message]:
        return [UserMessage(_image()), UserMessage("Please analyze the image above.")]

    @mcp.completion()
    async def complete(ref: Any, argument: types.CompletionArgument, context: Any) -> types.Completion:
        candidates = ["paris", "park", "party"]
        values = [value for value in candidates if value.startswith(argument.value)]
        return types.Completion(values=values, total=len(values), has_more=False)


def build_server() -> MCPServer:
    """A fresh fixture server with every tool, resource and prompt registered."""
    hints = {method: CacheHint(ttl_ms=0, scope="public") for method in CACHEABLE}
    tools = [
        verbatim_tool("json_schema_2020_12_tool", "Tool with JSON Schema 2020-12 features", JSON_SCHEMA_2020_12),
        verbatim_tool("test_custom_headers", "Echoes its region, also sent as Mcp-Param-Region", CUSTOM_HEADER_SCHEMA),
    ]
    mcp: MCPServer = MCPServer(FIXTURE_NAME, version="1.0.0", cache_hints=hints, tools=tools)
    register_tools(mcp)
    register_server_requests(mcp)
    register_input_required(mcp)
    register_resources(mcp)
    register_prompts(mcp)
    declare_list_changes(mcp)
    return mcp


def declare_list_changes(mcp: MCPServer) -> None:
    """The handshake era's `initialize` declares the list changes the 2026-07-28 `server/discover` does.

    The SDK derives 2026-07-28's `listChanged` flags from `subscriptions/listen` being served, and the handshake
    era's from `NotificationOptions`, false unless given; the fixture sends both eras' notifications (the trigger
    tools), so both declare them, and the bridge's `server/discover` made from `initialize` says what the
    fixture's own does.
    """
    low = mcp._lowlevel_server
    plain = low.create_initialization_options
    changes = NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True)

    def create_initialization_options(notification_options: NotificationOptions | None = None, **rest: Any) -> Any:
        return plain(notification_options or changes, **rest)

    low.create_initialization_options = create_initialization_options  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    """Serve the fixture over stdio or Streamable HTTP (at /mcp)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8931)
    parser.add_argument("--era", choices=("both", "handshake", "modern"), default="both")
    args = parser.parse_args(argv)
    server = build_server()
    if args.era != "both":
        from conformance_fixture_era import serve

        http = {"event_store": MemoryEventStore(), "retry_interval": RETRY_INTERVAL_MS}
        serve(server, args.era, args.transport, args.host, args.port, **http)
    elif args.transport == "stdio":
        server.run("stdio")
    else:
        server.run(
            "streamable-http",
            host=args.host,
            port=args.port,
            event_store=MemoryEventStore(),
            retry_interval=RETRY_INTERVAL_MS,
        )


if __name__ == "__main__":
    main()
