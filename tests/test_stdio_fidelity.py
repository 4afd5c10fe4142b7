"""``shadowproxy stdio`` stands in for a server as the server itself would (issue 18, items 9, 10, 12, 13).

The proxy runs as ``python -m shadowproxy stdio`` in a real process, in front of a real server: the server gets
the environment its client gave (9); an HTTP upstream's error with ``"id": null`` reaches the client as the
answer to its request (10); stdin and stdout may be files, and what was forwarded before stdin ends is answered
(12); one client that speaks one era runs one server process (13).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from mcp import Client, StdioServerParameters

from shadowproxy import config
from shadowproxy.cli.wrap import wrap
from shadowproxy.upstreams.stdio import child_environment
from tests.faults.helpers import RawClient, text_of
from tests.support import REPO, ProxyProcess, child_env, free_port, sdk_server_command

FIDELITY = REPO / "tests" / "servers" / "fidelity.py"
WAIT = 30.0
VERSION = "2025-11-25"
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "fidelity-test", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "fidelity-test", "version": "1"}},
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def call(request_id: int, tool: str, *, modern: bool = False, **arguments: object) -> dict[str, Any]:
    params: dict[str, Any] = {"name": tool, "arguments": arguments}
    if modern:
        params["_meta"] = MODERN_META
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def lines(*messages: dict[str, Any]) -> bytes:
    return b"".join(orjson.dumps(message) + b"\n" for message in messages)


def stdio_proxy(*upstream: str) -> list[str]:
    """The proxy's command line: ``upstream`` is ``--upstream URL`` or the server's command after ``--``."""
    tail = upstream if upstream[0] == "--upstream" else ("--", *upstream)
    return [sys.executable, "-m", "shadowproxy", "stdio", *tail]


def fidelity(pids: Path | None = None) -> list[str]:
    return [sys.executable, str(FIDELITY), *([str(pids)] if pids is not None else [])]


class Piped:
    """The proxy on pipes the test writes and reads, as an MCP client runs it."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.env = env or child_env()

    async def __aenter__(self) -> Piped:
        self.process = await asyncio.create_subprocess_exec(
            *self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=self.env, cwd=REPO
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    def send(self, *messages: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(lines(*messages))

    async def read(self, count: int) -> dict[object, dict[str, Any]]:
        """The next ``count`` messages, by id."""
        assert self.process.stdout is not None
        async with asyncio.timeout(WAIT):
            found = [orjson.loads(await self.process.stdout.readline()) for _ in range(count)]
        return {message.get("id"): message for message in found}

    async def close(self) -> int:
        """End stdin, as a client does; the proxy's exit code."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        async with asyncio.timeout(WAIT):
            return await self.process.wait()


def started(pids: Path) -> list[int]:
    return [int(line) for line in pids.read_text().split()] if pids.exists() else []


# --- item 9: the environment ---


async def test_the_server_gets_the_environment_the_client_gave_the_proxy() -> None:
    env = child_env(FIDELITY_SETTING="from-the-client")
    async with Piped(stdio_proxy(*fidelity()), env) as proxy:
        proxy.send(INITIALIZE, INITIALIZED, call(1, "env", name="FIDELITY_SETTING"))
        answers = await proxy.read(2)
        assert text_of(answers[1]) == "from-the-client"


async def test_a_wrapped_server_gets_the_env_of_its_entry(tmp_path: Path) -> None:
    memory = tmp_path / "memory.json"
    config = tmp_path / "claude_desktop_config.json"
    entry = {"command": sys.executable, "args": [str(FIDELITY)], "env": {"MEMORY_FILE_PATH": str(memory)}}
    config.write_text(json.dumps({"mcpServers": {"memory": entry}}))
    assert wrap(config) == ["memory"]
    wrapped = json.loads(config.read_text())["mcpServers"]["memory"]
    # As the client launches it: its own default environment and the entry's env, nothing of the test's.
    params = StdioServerParameters(command=wrapped["command"], args=wrapped["args"], env=wrapped["env"], cwd=str(REPO))
    async with Client(params, mode="legacy") as client:
        result = await client.call_tool("env", {"name": "MEMORY_FILE_PATH"})
    assert result.content[0].text == str(memory)  # type: ignore[union-attr]


async def test_run_keeps_the_safe_base_environment(tmp_path: Path) -> None:
    proxy = ProxyProcess(tmp_path / "proxy.log")
    command = " ".join(fidelity())
    await proxy.start("--upstream", command, env=child_env(FIDELITY_SETTING="the-operators"))
    try:
        async with aiohttp.ClientSession() as http:
            client = await RawClient(http, proxy.url).initialize()
            _, (answer,) = await client.call("env", name="FIDELITY_SETTING")
            assert text_of(answer) == "(unset)"
    finally:
        await proxy.stop()


def test_an_explicit_inherit_env_false_wins_in_stdio_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIDELITY_SETTING", "the-proxys")
    file = tmp_path / "proxy.yaml"
    file.write_text("upstreams:\n  kept:\n    command: server\n    inherit_env: false\n  open:\n    command: server\n")
    run = config.load(str(file), env={})
    stdio = config.for_stdio(run)
    seen = {
        mode: [child_environment(upstream).get("FIDELITY_SETTING") for upstream in loaded.upstreams]
        for mode, loaded in (("run", run), ("stdio", stdio))
    }
    assert seen == {"run": [None, None], "stdio": [None, "the-proxys"]}


# --- item 12: files, and the end of stdin ---


def requests_file(path: Path) -> Path:
    """A hand-made requests file: the last line has no newline."""
    body = lines(INITIALIZE, INITIALIZED, call(1, "echo", text="one"), call(2, "slow", seconds=0.3))
    path.write_bytes(body + orjson.dumps(call(3, "echo", text="last")))
    return path


def answered(output: bytes) -> dict[object, dict[str, Any]]:
    return {message["id"]: message for message in map(orjson.loads, output.splitlines())}


def test_stdin_and_stdout_may_be_files(tmp_path: Path) -> None:
    requests = requests_file(tmp_path / "requests.jsonl")
    answers = tmp_path / "answers.jsonl"
    with requests.open("rb") as stdin, answers.open("wb") as stdout:
        done = subprocess.run(
            stdio_proxy(*fidelity()), stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=child_env(), cwd=REPO
        )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    found = answered(answers.read_bytes())
    assert sorted(found) == [0, 1, 2, 3]
    assert [text_of(found[n]) for n in (1, 2, 3)] == ["one", "slept 0.3", "last"]


def test_piped_requests_are_all_answered_before_the_proxy_exits() -> None:
    """``cat requests.jsonl | shadowproxy stdio -- server``: stdin ends long before the answers are ready."""
    body = lines(
        INITIALIZE,
        INITIALIZED,
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        call(2, "slow", seconds=0.5),
        call(3, "echo", text="after the slow one"),
    )
    done = subprocess.run(
        stdio_proxy(*sdk_server_command()), input=body, capture_output=True, env=child_env(), cwd=REPO, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    found = answered(done.stdout)
    assert sorted(found) == [0, 1, 2, 3]
    assert text_of(found[2]) == "slept 0.5"
    assert text_of(found[3]) == "after the slow one"


PEAK_RSS = """
import resource, subprocess, sys
with open(sys.argv[1], "rb") as requests:
    cat = subprocess.Popen(["cat"], stdin=requests, stdout=subprocess.PIPE)
    done = subprocess.run(sys.argv[2:], stdin=cat.stdout, stdout=subprocess.DEVNULL)
print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def piped_peak_rss(requests: Path) -> tuple[int, int]:
    """``cat requests | shadowproxy stdio -- server`` in a process of its own: the exit code, and the peak RSS in
    KiB of the biggest process it ran (the proxy: cat and the server are small)."""
    argv = [sys.executable, "-c", PEAK_RSS, str(requests), *stdio_proxy(*fidelity())]
    done = subprocess.run(argv, capture_output=True, text=True, env=child_env(), cwd=REPO, timeout=120, check=True)
    code, peak = done.stdout.split()
    return int(code), int(peak)


def test_a_long_piped_file_is_read_as_fast_as_it_is_answered(tmp_path: Path) -> None:
    """The pipe is read as the requests are taken, not into memory ahead of them: the peak RSS for 20 MB of
    requests is about that for three."""
    short, long = tmp_path / "short.jsonl", tmp_path / "long.jsonl"
    short.write_bytes(lines(INITIALIZE, call(1, "echo", text="x")))
    text = "x" * 300
    long.write_bytes(lines(INITIALIZE, *(call(n, "echo", text=text) for n in range(1, 50_001))))
    code, baseline = piped_peak_rss(short)
    assert code == 0
    code, peak = piped_peak_rss(long)
    assert code == 0
    assert peak - baseline < 48 * 1024, f"RSS grew by {(peak - baseline) // 1024} MiB for 20 MB of requests"


@pytest.mark.parametrize("stdin", ["/dev/null", "requests"])
def test_stdout_to_dev_null_and_stdin_from_dev_null(tmp_path: Path, stdin: str) -> None:
    source = Path("/dev/null") if stdin == "/dev/null" else requests_file(tmp_path / "requests.jsonl")
    with source.open("rb") as stdin_file:
        done = subprocess.run(
            stdio_proxy(*fidelity()),
            stdin=stdin_file,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=child_env(),
            cwd=REPO,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]


# --- item 13: one server process for a client of one era ---


async def test_a_handshake_client_runs_one_server_until_it_sends_a_2026_request(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    async with Piped(stdio_proxy(*fidelity(pids))) as proxy:
        proxy.send(INITIALIZE, INITIALIZED, *(call(n, "pid") for n in (1, 2, 3)))
        answers = await proxy.read(4)
        session = {text_of(answers[n]) for n in (1, 2, 3)}
        assert len(session) == 1
        proxy.send({"jsonrpc": "2.0", "id": 4, "method": "ping"})
        await proxy.read(1)
        assert started(pids) == [int(*session)], "a second server was started for a client of one era"
        # A 2026-07-28 request of the same client: now, and only now, the process for that era.
        proxy.send(call(5, "pid", modern=True))
        modern = text_of((await proxy.read(1))[5])
        assert modern not in session
        assert started(pids) == [int(*session), int(modern)]
        proxy.send(call(6, "pid", modern=True), call(7, "pid"))
        answers = await proxy.read(2)
        assert text_of(answers[6]) == modern and {text_of(answers[7])} == session
        assert await proxy.close() == 0
    assert len(started(pids)) == 2


async def test_a_2026_client_runs_one_server(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    async with Piped(stdio_proxy(*fidelity(pids))) as proxy:
        proxy.send(*(call(n, "pid", modern=True) for n in (1, 2, 3)))
        answers = await proxy.read(3)
        (server,) = {text_of(answers[n]) for n in (1, 2, 3)}
        assert await proxy.close() == 0
    assert started(pids) == [int(server)]


# --- item 10: an HTTP upstream's error with "id": null ---


ID_NULL_ERROR = {"jsonrpc": "2.0", "id": None, "error": {"code": -32602, "message": "invalid params"}}


async def id_null_upstream(request: web.Request) -> web.StreamResponse:
    """Answers ``initialize``; a call of ``json`` or ``sse`` with an error of id null, as JSON or as an event
    stream; any other call with its text."""
    body = await request.json()
    if "id" not in body:
        return web.Response(status=202)
    if body["method"] == "initialize":
        info = {"name": "id-null", "version": "1"}
        result = {"protocolVersion": VERSION, "capabilities": {"tools": {}}, "serverInfo": info}
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": result})
    name = body["params"]["name"]
    if name == "json":
        return web.json_response(ID_NULL_ERROR, status=400)
    if name == "sse":
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await stream.prepare(request)
        await stream.write(b"event: message\ndata: " + orjson.dumps(ID_NULL_ERROR) + b"\n\n")
        await stream.write_eof()
        return stream
    text = body["params"]["arguments"]["text"]
    result = {"content": [{"type": "text", "text": text}], "isError": False}
    return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": result})


@pytest.fixture
async def http_upstream() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/mcp", id_null_upstream)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        await runner.cleanup()


async def test_an_id_null_error_from_an_http_upstream_answers_the_request(http_upstream: str) -> None:
    async with Piped(stdio_proxy("--upstream", http_upstream)) as proxy:
        proxy.send(INITIALIZE, INITIALIZED, call(1, "json"), call(2, "sse"))
        answers = await proxy.read(3)
        assert sorted(answers, key=str) == [0, 1, 2], answers
        assert answers[1]["error"]["code"] == answers[2]["error"]["code"] == -32602
        proxy.send(call(3, "echo", text="still serving"))
        assert text_of((await proxy.read(1))[3]) == "still serving"
        assert await proxy.close() == 0
