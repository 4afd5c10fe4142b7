"""OpenTelemetry tracing: a client's traceparent continued through the proxy to an HTTP upstream (headers) and a
stdio one (``_meta``), the spans checked with the SDK's in-memory exporter. The proxy runs in this process, so
that its tracing can be started first with that exporter."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio
from aiohttp import web
from mcp import Client, StdioServerParameters
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shadowproxy import config as configuration
from shadowproxy.core import logs, tracing
from shadowproxy.core.jsonrpc import decode
from shadowproxy.core.tasks import spawn
from shadowproxy.serve.runner import serve
from tests.security.helpers import INIT, post
from tests.support import REPO, child_env
from tests.test_http_upstream import Recorder

pytestmark = pytest.mark.asyncio(loop_scope="module")

HERE = Path(__file__).parent

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
POLICY = "rules:\n  - id: log-adds\n    match: {tool: add}\n    action: {log: {message: add seen}}\n"


class Setup:
    def __init__(self, base: str, recorder: Recorder, exporter: InMemorySpanExporter) -> None:
        self.base, self.recorder, self.exporter = base, recorder, exporter


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def setup(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Setup]:
    folder = tmp_path_factory.mktemp("tracing")
    recorder = Recorder()
    app = web.Application()
    app.router.add_route("*", "/mcp", recorder.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    (folder / "policy.yaml").write_text(POLICY)
    settings = {
        "port": 0,
        "upstreams": {
            "web": {"url": f"http://127.0.0.1:{port}/mcp"},
            "local": {"command": [sys.executable, str(REPO / "tests/servers/raw_echo.py")]},
            "meta": {"command": [sys.executable, str(REPO / "tests/servers/meta_echo.py")]},
        },
        "rules": [str(folder / "policy.yaml")],
        "tracing": {"exporter": "console", "sample_ratio": 0},
    }
    config = configuration.from_mapping(settings)
    exporter = InMemorySpanExporter()
    tracing.start(config.tracing, exporter)
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def listening(url: str) -> None:
        ready.set_result(url)

    served = spawn(serve(config, listening), name="traced-proxy")
    try:
        url = await asyncio.wait_for(ready, 60)
        yield Setup(url.rsplit("/mcp", 1)[0], recorder, exporter)
    finally:
        served.cancel()
        await asyncio.gather(served, return_exceptions=True)
        tracing.stop()
        await runner.cleanup()


def call(request_id: int, name: str, **meta: str) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "arguments": {}}
    if meta:
        params["_meta"] = meta
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


async def session_of(url: str) -> dict[str, str]:
    status, _, headers = await post(url, INIT)
    assert status == 200
    return {"Mcp-Session-Id": headers["Mcp-Session-Id"], "MCP-Protocol-Version": "2025-11-25"}


async def test_a_clients_traceparent_reaches_the_http_upstream_and_the_spans_are_children(setup: Setup) -> None:
    url = f"{setup.base}/mcp/web"
    session = await session_of(url)
    traceparent = f"00-{TRACE}-{PARENT}-01"
    status, reply, _ = await post(url, call(3, "add"), **session, traceparent=traceparent, tracestate="k=v")
    assert status == 200 and reply["result"] == {"ok": True}
    _, headers, _ = setup.recorder.seen[-1]
    _, trace_id, upstream_parent, flags = headers["traceparent"].split("-")
    assert trace_id == TRACE and upstream_parent != PARENT and flags == "01"
    assert headers["tracestate"] == "k=v"

    spans = [span for span in setup.exporter.get_finished_spans() if format(span.context.trace_id, "032x") == TRACE]
    by_name = {span.name: span for span in spans}
    request = by_name["tools/call add"]
    assert request.kind is SpanKind.SERVER and format(request.parent.span_id, "016x") == PARENT
    assert request.attributes["mcp.method.name"] == "tools/call"
    assert request.attributes["gen_ai.tool.name"] == "add"
    assert request.attributes["jsonrpc.request.id"] == "3"
    assert request.attributes["mcp.session.id"] == session["Mcp-Session-Id"]
    assert request.attributes["shadowproxy.verdict"] == "forward"
    chain, rules, upstream = by_name["mcp.chain"], by_name["rules.decision"], by_name["mcp.upstream"]
    assert chain.parent.span_id == request.context.span_id and rules.parent.span_id == chain.context.span_id
    assert upstream.kind is SpanKind.CLIENT and upstream.parent.span_id == request.context.span_id
    assert format(upstream.context.span_id, "016x") == upstream_parent

    # Sample ratio 0: a request that names no sampled trace is not recorded; its upstream is told so (the flag).
    before = len(setup.exporter.get_finished_spans())
    await post(url, call(4, "add"), **session)
    assert len(setup.exporter.get_finished_spans()) == before
    assert int(setup.recorder.seen[-1][1]["traceparent"].rsplit("-", 1)[1], 16) & 1 == 0


async def test_a_traceparent_in_meta_reaches_a_stdio_upstream_in_meta(setup: Setup) -> None:
    url = f"{setup.base}/mcp/local"
    session = await session_of(url)
    other = "0af7651916cd43dd8448eb211c80319c"
    status, reply, _ = await post(url, call(5, "echo", traceparent=f"00-{other}-b7ad6b7169203331-01"), **session)
    assert status == 200
    arrived = orjson.loads(reply["result"]["content"][0]["text"])
    meta = arrived["params"]["_meta"]
    assert meta["traceparent"].split("-")[1] == other and meta["traceparent"].split("-")[2] != "b7ad6b7169203331"
    assert any(span.name == "tools/call echo" for span in setup.exporter.get_finished_spans())


async def test_log_lines_carry_the_trace_id(setup: Setup) -> None:
    assert tracing.ACTIVE is not None
    with tracing.ACTIVE.request(decoded_call(), "s", {"traceparent": f"00-{TRACE}-{PARENT}-01"}):
        record = logging.LogRecord("x", logging.INFO, __file__, 0, "line", None, None)
        logs.RequestIdFilter().filter(record)
        assert record.trace_id == TRACE and f"trace={TRACE}" in record.request_tag  # type: ignore[attr-defined]
        assert orjson.loads(logs.JsonFormatter().format(record))["trace_id"] == TRACE


def decoded_call() -> Any:
    return decode(orjson.dumps(call(1, "x")))


def ws_or_sse(base: str, front: str) -> Any:
    from mcp.client.sse import sse_client

    from tests.streams.ws_transport import websocket_client

    if front == "websocket":
        return websocket_client(base.replace("http://", "ws://") + "/mcp/meta/ws")
    return sse_client(f"{base}/mcp/meta/sse")


def request_span(exporter: InMemorySpanExporter, trace: str, name: str) -> Any:
    spans = [span for span in exporter.get_finished_spans() if format(span.context.trace_id, "032x") == trace]
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, [span.name for span in spans]
    return found[0], spans


@pytest.mark.parametrize("front", ["websocket", "legacy-sse"])
async def test_websocket_and_legacy_sse_requests_are_spans_continuing_the_meta_traceparent(
    setup: Setup, front: str
) -> None:
    trace = ("1" if front == "websocket" else "2") * 32
    traceparent = f"00-{trace}-{PARENT}-01"
    async with Client(ws_or_sse(setup.base, front), mode="legacy") as client:
        result = await client.call_tool("add", {}, meta={"traceparent": traceparent})  # type: ignore[typeddict-unknown-key]
    arrived = orjson.loads(result.content[0].text)  # type: ignore[union-attr]
    _, sent_trace, sent_parent, _ = arrived["traceparent"].split("-")

    request, spans = request_span(setup.exporter, trace, "tools/call add")
    assert request.kind is SpanKind.SERVER and format(request.parent.span_id, "016x") == PARENT
    assert request.attributes["mcp.method.name"] == "tools/call" and request.attributes["gen_ai.tool.name"] == "add"
    assert request.attributes["shadowproxy.verdict"] == "forward" and "mcp.session.id" in request.attributes
    assert sent_trace == trace and sent_parent == format(request.context.span_id, "016x"), "the server's parent"
    chain = next(span for span in spans if span.name == "mcp.chain")
    assert chain.parent.span_id == request.context.span_id
    rules = next(span for span in spans if span.name == "rules.decision")
    assert rules.parent.span_id == chain.context.span_id
    assert request.end_time >= chain.end_time, "the request's span ends with its reply"


async def test_a_stdio_clients_request_is_a_span_continuing_the_meta_traceparent(tmp_path: Path) -> None:
    spans_file = tmp_path / "spans.json"
    trace = "3" * 32
    (tmp_path / "policy.yaml").write_text(POLICY)
    command = [sys.executable, str(HERE / "traced_stdio.py"), str(spans_file), str(tmp_path / "policy.yaml")]
    command += [sys.executable, str(REPO / "tests/servers/meta_echo.py")]
    params = StdioServerParameters(command=command[0], args=command[1:], env=child_env())
    async with Client(params, mode="legacy") as client:
        result = await client.call_tool("add", {}, meta={"traceparent": f"00-{trace}-{PARENT}-01"})  # type: ignore[typeddict-unknown-key]
        await client.call_tool("add", {})  # no trace named, ratio 0: not recorded
    arrived = orjson.loads(result.content[0].text)  # type: ignore[union-attr]
    _, sent_trace, sent_parent, _ = arrived["traceparent"].split("-")

    spans = orjson.loads(spans_file.read_bytes())
    assert {span["trace_id"] for span in spans} == {trace}
    request = next(span for span in spans if span["name"] == "tools/call add")
    assert request["kind"] == "SpanKind.SERVER" and request["parent_id"] == PARENT
    assert request["attributes"]["mcp.method.name"] == "tools/call"
    assert request["attributes"]["shadowproxy.verdict"] == "forward"
    assert sent_trace == trace and sent_parent == request["span_id"]
    chain = next(span for span in spans if span["name"] == "mcp.chain")
    assert chain["parent_id"] == request["span_id"]


async def test_a_batch_is_a_span_whose_messages_are_its_children(setup: Setup) -> None:
    url = f"{setup.base}/mcp/meta"
    init = {**INIT, "params": {**INIT["params"], "protocolVersion": "2025-03-26"}}
    status, _, headers = await post(url, init)
    assert status == 200
    session = {"Mcp-Session-Id": headers["Mcp-Session-Id"]}
    trace = "5" * 32
    batch = [{"jsonrpc": "2.0", "method": "notifications/initialized"}, call(8, "add")]
    status, replies, _ = await post(url, batch, **session, traceparent=f"00-{trace}-{PARENT}-01")
    assert status == 200 and [reply["id"] for reply in replies] == [8]
    arrived = orjson.loads(replies[0]["result"]["content"][0]["text"])

    batch_span, spans = request_span(setup.exporter, trace, "batch")
    assert batch_span.kind is SpanKind.SERVER and format(batch_span.parent.span_id, "016x") == PARENT
    assert batch_span.attributes["shadowproxy.batch.size"] == 2
    assert batch_span.attributes["mcp.session.id"] == session["Mcp-Session-Id"]
    children = {span.name: span for span in spans if span.parent.span_id == batch_span.context.span_id}
    assert set(children) == {"notifications/initialized", "tools/call add"}
    assert arrived["traceparent"].split("-")[2] == format(children["tools/call add"].context.span_id, "016x")
