"""Health and metrics probes as they are sent (issue 26, item 4): a load balancer's default check (HTTP/1.0, no
Host), what nginx forwards (Host: the address or group it proxies to), and a Kubernetes probe (``Host: <pod IP>:
<port>``) are answered whatever ``allowed_hosts`` lists, on the proxy's own connection and on aiohttp's alike
(.ci/run runs this file with SHADOWPROXY_FAST_PATH=0 too), while the MCP and admin paths still refuse those Hosts."""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support import ProxyProcess, sdk_server_command

pytestmark = pytest.mark.asyncio(loop_scope="module")

POD = "10.244.1.7:8765"
ADMIN = "Authorization: Bearer probe-test-admin-token\r\n"
KUBE = "User-Agent: kube-probe/1.32\r\nAccept: */*\r\nConnection: close\r\n"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def proxy(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ProxyProcess]:
    folder: Path = tmp_path_factory.mktemp("probes")
    config = folder / "shadowproxy.yaml"
    upstream = shlex.join(sdk_server_command())
    # allowed_hosts names nginx's upstream group (see test_nginx_probes_are_answered_as_sent).
    config.write_text(
        f"upstreams:\n  default:\n    command: {upstream!r}\nadmin:\n  token: probe-test-admin-token\n"
        "allowed_hosts: [shadowproxy]\n"
    )
    started = ProxyProcess(folder / "proxy.log")
    try:
        yield await started.start("--config", str(config))
    finally:
        await started.stop()


async def exchange(proxy: ProxyProcess, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """The status and body of one raw request, read to the end of the connection."""
    host, port = proxy.base.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.encode("latin-1") + b"\r\n" + body)
        await writer.drain()
        async with asyncio.timeout(10):
            answer = await reader.read()
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_a_load_balancer_default_check_is_answered(proxy: ProxyProcess, path: str) -> None:
    """HAProxy's ``option httpchk GET /healthz`` sends exactly this: HTTP/1.0, no Host."""
    status, body = await exchange(proxy, f"GET {path} HTTP/1.0\r\n")
    assert status == 200, body
    assert b'"status"' in body


@pytest.mark.parametrize(
    ("method", "path", "host"),
    [
        ("GET", "/healthz", POD),
        ("GET", "/readyz", POD),
        ("GET", "/metrics", POD),
        ("HEAD", "/healthz", POD),
        ("GET", "/healthz", "[fd00::7]:8765"),
        ("GET", "/readyz", "10.244.1.7"),
    ],
)
async def test_a_kubernetes_probe_naming_the_pod_ip_is_answered(
    proxy: ProxyProcess, method: str, path: str, host: str
) -> None:
    status, body = await exchange(proxy, f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{KUBE}")
    assert status == 200, body
    if path == "/metrics":
        assert b"shadowproxy_" in body


NGINX = "Connection: close\r\nUser-Agent: curl/8.14.1\r\nAccept: */*\r\n"


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        # proxy_pass to an address: HTTP/1.0 (proxy_http_version's default) with Host: that address ($proxy_host).
        (f"GET /healthz HTTP/1.0\r\nHost: {POD}\r\n{NGINX}", 200),
        ("HEAD /readyz HTTP/1.0\r\nHost: 10.0.0.5:8766\r\nConnection: close\r\n", 200),
        # proxy_pass to an upstream group: Host is the group's name, which allowed_hosts must list for the MCP
        # requests nginx forwards too; a probe then passes, and an unlisted name is refused on both alike.
        (f"GET /readyz HTTP/1.0\r\nHost: shadowproxy\r\n{NGINX}", 200),
        (f"GET /readyz HTTP/1.0\r\nHost: backend\r\n{NGINX}", 421),
        (f"GET /mcp HTTP/1.0\r\nHost: backend\r\nAccept: text/event-stream\r\n{NGINX}", 421),
        # nginx_upstream_check_module's check_http_send: HAProxy's form, HTTP/1.0 with no Host.
        ("GET /healthz HTTP/1.0\r\n", 200),
    ],
    ids=["address", "address-head", "group-listed", "group-unlisted", "group-unlisted-mcp", "check-module"],
)
async def test_nginx_probes_are_answered_as_sent(proxy: ProxyProcess, head: str, expected: int) -> None:
    """What nginx sends to an instance with its defaults: it has no active check of its own (NGINX Plus's
    ``health_check`` sends what the location's ``proxy_pass`` would), so a check is a request it forwards."""
    status, body = await exchange(proxy, head)
    assert status == expected, body


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        # DNS rebinding: the attacker's name in Host, even on a probe path.
        ("GET /healthz HTTP/1.1\r\nHost: evil.example:8765\r\nConnection: close\r\n", 421),
        # HTTP/1.1 requires Host.
        ("GET /healthz HTTP/1.1\r\nConnection: close\r\n", 400),
        # The MCP and admin paths keep their Host check for IP addresses and for a missing Host.
        (f"GET /mcp HTTP/1.1\r\nHost: {POD}\r\nAccept: text/event-stream\r\n{KUBE}", 421),
        (f"DELETE /mcp HTTP/1.1\r\nHost: {POD}\r\n{KUBE}", 421),
        (f"GET /_shadowproxy/sessions HTTP/1.1\r\nHost: {POD}\r\n{ADMIN}{KUBE}", 421),
        (f"GET /_shadowproxy/sessions HTTP/1.0\r\n{ADMIN}", 400),
        # Only reads are probes.
        (f"POST /healthz HTTP/1.1\r\nHost: {POD}\r\nContent-Length: 0\r\n{KUBE}", 421),
        # Origin is judged as before.
        (f"GET /readyz HTTP/1.1\r\nHost: {POD}\r\nOrigin: https://evil.example\r\n{KUBE}", 403),
    ],
    ids=["name-on-probe", "http11-no-host", "get-stream", "delete", "admin-ip", "admin-no-host", "post", "origin"],
)
async def test_other_paths_and_hosts_are_still_refused(proxy: ProxyProcess, head: str, expected: int) -> None:
    status, body = await exchange(proxy, head)
    assert status == expected, body


@pytest.mark.parametrize("host", [POD, None])
async def test_an_mcp_post_from_a_pod_ip_is_still_refused(proxy: ProxyProcess, host: str | None) -> None:
    body = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
    version, named = ("HTTP/1.1", f"Host: {host}\r\n") if host else ("HTTP/1.0", "")
    head = (
        f"POST /mcp {version}\r\n{named}Content-Type: application/json\r\nAccept: application/json, text/event-stream"
        f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    )
    status, answer = await exchange(proxy, head, body)
    assert status == (421 if host else 400), answer
