"""``/metrics`` after a scripted session: counters and histograms move exactly as the traffic says."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import aiohttp
import orjson
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from prometheus_client.parser import text_string_to_metric_families

from shadowproxy.core import counters
from shadowproxy.core.errors import UPSTREAM_UNAVAILABLE
from tests.support import REPO, sdk_server_command, until
from tests.test_lifecycle import open_session

from .helpers import MCP_HEADERS, label_values, scrape, value

POLICY = """
rules:
  - id: no-fail
    match: {direction: client_to_server, tool: fail}
    action: {block: {message: "fail is disabled"}}
"""
C2S = "client_to_server"
S2C = "server_to_client"


async def test_a_scripted_session_moves_the_counters(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    proxy = await start_proxy("--upstream", shlex.join(sdk_server_command()), "--rules", str(policy))
    before = await scrape(proxy.base)
    assert value(before, "shadowproxy_active_sessions", upstream="default") == 0

    async with Client(proxy.url, mode="legacy") as client:
        await client.list_tools()
        await client.call_tool("echo", {"text": "hi"})
        await client.call_tool("echo", {"text": "again"})
        with pytest.raises(MCPError):
            await client.call_tool("fail", {"reason": "x"})
        during = await scrape(proxy.base)

    after = await scrape(proxy.base)
    calls = {"direction": C2S, "method": "tools/call"}
    assert value(after, "shadowproxy_messages_total", **calls, verdict="forward") == 2
    assert value(after, "shadowproxy_messages_total", **calls, verdict="block") == 1
    replies = {"direction": S2C, "method": "tools/call", "verdict": "forward"}
    assert value(after, "shadowproxy_messages_total", **replies) == 2
    assert value(after, "shadowproxy_messages_total", direction=S2C, method="initialize", verdict="forward") == 1
    assert value(after, "shadowproxy_messages_total", direction=C2S, method="initialize", verdict="forward") == 1
    assert value(after, "shadowproxy_rule_decisions_total", rule="no-fail", action="block") == 1
    assert value(after, "shadowproxy_interceptor_decisions_total", interceptor="rules", verdict="block") == 1

    # Only the two echo calls reached the server; the blocked one never did.
    upstream = {"upstream": "default", "method": "tools/call"}
    assert value(after, "shadowproxy_upstream_request_seconds_count", **upstream) == 2
    assert value(after, "shadowproxy_upstream_request_seconds_bucket", **upstream, le="+Inf") == 2
    assert ("shadowproxy_upstream_request_seconds_bucket", frozenset({**upstream, "le": "0.0001"}.items())) in after
    assert value(after, "shadowproxy_upstream_request_seconds_sum", **upstream) > 0
    # Every POST was timed; the overhead is what the upstream did not spend.
    posts = value(after, "shadowproxy_proxy_overhead_seconds_count", transport="http")
    assert posts >= 5
    assert value(after, "shadowproxy_proxy_overhead_seconds_bucket", transport="http", le="60.0") == posts

    assert value(during, "shadowproxy_active_sessions", upstream="default") == 1
    assert value(after, "shadowproxy_active_sessions", upstream="default") == 0
    assert value(during, "shadowproxy_upstream_processes", upstream="default") >= 1
    assert value(after, "shadowproxy_upstream_starts_total", upstream="default") == 1
    assert value(after, "shadowproxy_upstream_up", upstream="default") == 1
    assert value(during, "shadowproxy_active_connections") >= 1
    assert value(after, "shadowproxy_asyncio_tasks") >= 1
    assert value(after, "shadowproxy_rules_loaded") == 1

    async def persisted() -> bool:
        return value(await scrape(proxy.base), "shadowproxy_persistence_changes_total") > 0

    await until(persisted, "the persistence worker to report session changes")


async def test_method_labels_stay_bounded(start_proxy) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_proxy("--upstream", shlex.join(sdk_server_command()))
    async with aiohttp.ClientSession() as client:
        headers = await open_session(client, proxy.url)
        for index in range(3):
            body = {"jsonrpc": "2.0", "id": 10 + index, "method": f"custom/method-{index}", "params": {}}
            async with client.post(proxy.url, json=body, headers=headers) as response:
                assert (await response.json())["error"]["code"] == -32601
    samples = await scrape(proxy.base)
    assert label_values(samples, "shadowproxy_messages_total", "method") <= counters.KNOWN_METHODS | {"other"}
    assert value(samples, "shadowproxy_messages_total", direction=C2S, method="other", verdict="forward") == 3
    assert value(samples, "shadowproxy_upstream_request_seconds_count", upstream="default", method="other") == 3


async def test_an_upstream_that_cannot_start_is_counted(start_proxy) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_proxy("--upstream", "/nonexistent/shadowproxy-test-server")
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    async with aiohttp.ClientSession() as client, client.post(proxy.url, json=body, headers=MCP_HEADERS) as response:
        assert response.status == 502
        assert (await response.json())["error"]["code"] == UPSTREAM_UNAVAILABLE
    samples = await scrape(proxy.base)
    assert value(samples, "shadowproxy_upstream_failures_total", upstream="default") == 1
    assert value(samples, "shadowproxy_upstream_up", upstream="default") == 0
    assert value(samples, "shadowproxy_upstream_starts_total", upstream="default") == 0


async def test_the_dashboard_uses_only_metrics_the_proxy_exports(start_proxy) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_proxy("--upstream", shlex.join(sdk_server_command()), "--rules", "builtin:read-only")
    dashboard = orjson.loads((REPO / "dashboards" / "shadowproxy.json").read_bytes())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(queries) >= 20
    used = {name for query in queries for name in re.findall(r"\bshadowproxy_[a-z_]+", query)}
    async with aiohttp.ClientSession() as client, client.get(f"{proxy.base}/metrics") as response:
        families = {family.name: family.type for family in text_string_to_metric_families(await response.text())}
    for name in used:
        for suffix, kind in (("_total", "counter"), ("_bucket", "histogram"), ("", None)):
            base = name.removesuffix(suffix) if suffix else name
            if name.endswith(suffix) and base in families:
                assert kind is None or families[base] == kind, name
                break
        else:
            raise AssertionError(f"the dashboard queries {name}, which /metrics does not export")
