"""The fast connection path stays honest (issue 19, item 5).

shadowproxy/fronts/http/connection.py serves MCP POSTs itself and leans on parts of aiohttp that are not its public API
(:data:`shadowproxy.fronts.http.fast_path.RELIED_ON`). Each is checked here by name and shape, and the contract they
stand
for is exercised on real sockets with aiohttp's own server, so that an aiohttp release that changes one fails
here by name instead of subtly in production. The proxy itself checks the same list at startup and, when one
does not hold, serves through aiohttp's own handler after one warning; ``fast_path: false`` does so on purpose.
"""

from __future__ import annotations

import asyncio
import shlex
import socket
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any, cast

import aiohttp
import orjson
import pytest
import yaml
from aiohttp import web
from packaging.requirements import Requirement

from shadowproxy import config
from shadowproxy.config import limits
from shadowproxy.core.errors import ConfigError
from shadowproxy.fronts.http.connection import Connection
from shadowproxy.fronts.http.fast_path import RELIED_ON, TESTED, Reliance, Watched, names_read, unsupported
from tests.support import REPO, ProxyProcess, child_env, sdk_server_command, until
from tests.test_connection import RawClient, session_of

from .security.helpers import PING

LIMIT = 10


def advice() -> str:
    return (
        "the fast path (shadowproxy/fronts/http/connection.py) relies on it; check it against this aiohttp release "
        f"({aiohttp.__version__}) or run with fast_path: false"
    )


@pytest.mark.parametrize("reliance", RELIED_ON, ids=[reliance.name.split("(")[0] for reliance in RELIED_ON])
def test_aiohttp_still_has_what_the_fast_path_relies_on(reliance: Reliance) -> None:
    assert reliance.holds(), f"{reliance.name} ({reliance.why}): {advice()}"


def test_both_paths_can_put_the_front_door_in_front_of_the_application() -> None:
    # FrontDoor.install replaces the Server's request_handler; each RequestHandler copies it when it is made.
    assert "request_handler" in names_read(web.RequestHandler.__init__), (
        "aiohttp.web.RequestHandler no longer reads Server.request_handler: shadowproxy/fronts/http/gate.py"
        " (FrontDoor.install) relies on it, on either path; check it against this aiohttp release"
    )


def test_the_installed_aiohttp_is_the_pinned_one() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = [Requirement(line) for line in project["dependencies"] if Requirement(line).name == "aiohttp"]
    assert len(pins) == 1 and pins[0].specifier, "pyproject.toml must pin aiohttp to the range it is tested with"
    installed = version("aiohttp")
    assert pins[0].specifier.contains(installed), (
        f"aiohttp {installed} is outside the tested range {pins[0]}: {advice()}, then move the pin"
    )
    assert any(spec.operator == "<" for spec in pins[0].specifier), "the aiohttp pin needs an upper bound"
    assert Requirement(TESTED).specifier == pins[0].specifier, "the startup warning names the pinned range"


def test_this_aiohttp_needs_no_fallback() -> None:
    assert unsupported() == [], f"{'; '.join(unsupported())}: {advice()}"


# -- the contract with aiohttp's Server, on real sockets ---------------------------------------------------------------


async def hello(request: web.BaseRequest) -> web.Response:
    return web.Response(text=f"aiohttp served {request.method} {request.path}")


async def read_all(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(LIMIT):
        return await reader.read()


async def test_the_server_counts_shuts_down_and_forgets_a_connection() -> None:
    server = web.Server(hello)
    # A Connection that is never given a request needs no front door.
    made = lambda: Connection(cast(Any, None), server, limits.Limits(), 1024)  # noqa: E731
    listener = await asyncio.get_running_loop().create_server(made, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await until(lambda: len(server.connections) == 1, "the server to count the connection")
        assert isinstance(server.connections[0], Connection)
        writer.close()
        await until(lambda: server.connections == [], "the server to forget the connection")

        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await until(lambda: len(server.connections) == 1, "the server to count the connection")
        server.pre_shutdown()
        assert await read_all(reader) == b"", "pre_shutdown closes an idle connection"
        await asyncio.wait_for(server.shutdown(1.0), LIMIT)
        assert server.connections == []
        writer.close()
    finally:
        listener.close()


async def test_a_connection_is_handed_to_the_server_s_own_handler() -> None:
    server = web.Server(hello)
    made = lambda: Connection(cast(Any, None), server, limits.Limits(), 1024)  # noqa: E731
    listener = await asyncio.get_running_loop().create_server(made, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await read_all(reader)
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"aiohttp served GET /other"), answer
        writer.close()
        await until(lambda: server.connections == [], "the server to forget the connection")
    finally:
        listener.close()


async def test_aiohttp_s_handler_is_aborted_when_its_client_does_not_read(caplog: pytest.LogCaptureFixture) -> None:
    big = b"x" * (8 << 20)

    async def answer(request: web.BaseRequest) -> web.Response:
        return web.Response(body=big)

    server = web.Server(answer)
    listener = await asyncio.get_running_loop().create_server(lambda: Watched(server(), 0.5), "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await until(lambda: len(server.connections) == 1, "the server to count the connection")
        # Nothing read: aborted after the idle timeout, the 8 MiB never all sent.
        await until(lambda: server.connections == [], "the server to forget the connection")
        assert "did not read its answers" in caplog.text
    finally:
        sock.close()
        listener.close()


# -- switching it off -------------------------------------------------------------------------------------------------


async def served_by(proxy: ProxyProcess) -> str:
    """Who answered an MCP POST on a fresh keep-alive connection: "aiohttp" (a Server header) or "connection"."""
    async with RawClient(proxy) as client:
        session = await session_of(client)
        await client.write(client.post(PING, session))
        status, headers, body = await client.response()
    assert status == 200 and orjson.loads(body) == {"jsonrpc": "2.0", "id": 2, "result": {}}
    return "aiohttp" if "aiohttp" in headers.get("server", "") else "connection"


@pytest.mark.parametrize("how", ["flag", "env", "file"])
async def test_with_the_fast_path_off_aiohttp_serves_every_request(start_proxy, tmp_path: Path, how: str) -> None:  # type: ignore[no-untyped-def]
    args = ["--upstream", shlex.join(sdk_server_command())]
    env = child_env(SHADOWPROXY_FAST_PATH="0" if how == "env" else "1")
    if how == "flag":
        args.append("--no-fast-path")
    elif how == "file":
        file = tmp_path / "proxy.yaml"
        file.write_text(yaml.safe_dump({"fast_path": False}))
        args += ["--config", str(file)]
        del env["SHADOWPROXY_FAST_PATH"]
    proxy = await start_proxy(*args, env=env)
    assert await served_by(proxy) == "aiohttp"
    assert "fast path off (fast_path: false)" in proxy.log()


async def test_the_fast_path_is_on_by_default(start_proxy) -> None:  # type: ignore[no-untyped-def]
    env = child_env()
    env.pop("SHADOWPROXY_FAST_PATH", None)
    proxy = await start_proxy("--upstream", shlex.join(sdk_server_command()), env=env)
    assert await served_by(proxy) == "connection"
    assert "fast path off" not in proxy.log()


# An aiohttp release that renamed a parameter of Server.connection_lost: aiohttp's own path still works with it.
CHANGED_AIOHTTP = """
from aiohttp import web

original = web.Server.connection_lost


def connection_lost(self, protocol, exc=None):
    original(self, protocol, exc)


web.Server.connection_lost = connection_lost
"""


async def test_an_aiohttp_that_changed_falls_back_with_one_warning(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "sitecustomize.py").write_text(CHANGED_AIOHTTP)
    env = child_env(PYTHONPATH=f"{tmp_path}:{REPO}")
    env.pop("SHADOWPROXY_FAST_PATH", None)
    proxy = await start_proxy("--upstream", shlex.join(sdk_server_command()), env=env)
    assert await served_by(proxy) == "aiohttp"
    warnings = [line for line in proxy.log().splitlines() if "fast path" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0], proxy.log()
    assert "aiohttp.web.Server.connection_lost" in warnings[0] and "fast_path: false" in warnings[0]


@pytest.mark.parametrize(
    ("source", "value", "where"),
    [("env", "maybe", "SHADOWPROXY_FAST_PATH"), ("file", "maybe", "fast_path"), ("file", 1, "fast_path")],
)
def test_fast_path_takes_true_or_false(tmp_path: Path, source: str, value: object, where: str) -> None:
    file = tmp_path / "proxy.yaml"
    file.write_text(yaml.safe_dump({"fast_path": value} if source == "file" else {}))
    env = {"SHADOWPROXY_FAST_PATH": str(value)} if source == "env" else {}
    with pytest.raises(ConfigError, match="must be true or false") as raised:
        config.load(str(file), env=env)
    assert where in str(raised.value)


@pytest.mark.parametrize(("value", "expected"), [("0", False), ("false", False), ("off", False), ("1", True)])
def test_fast_path_from_the_environment(tmp_path: Path, value: str, expected: bool) -> None:
    assert config.load(None, env={"SHADOWPROXY_FAST_PATH": value}).fast_path is expected
    assert config.load(None, env={}).fast_path is True
