"""Tapes end to end: the SDK client through the proxy (HTTP and stdio fronts) to the SDK test server, recorded;
the tapes shown, served to the SDK client as a mock, replayed against the server and a changed one, diffed, and
a new policy tried on them.

One module-wide recording (a proxy over HTTP, then ``shadowproxy stdio`` against a changed server) feeds every test.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from shadowproxy.cli.main import main
from tests.support import REPO, HttpServerProcess, ProxyProcess, child_env, sdk_server_command, until

SECRET = "sk-proj-abcdefghijklmnopqrstuvwxyz0123"
TOKEN = "tape-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
POLICY = """rules:
  - id: no-slow
    match: {method: tools/call, tool: slow}
    action: {block: {message: "slow is not for agents"}}
"""
WAIT = 60.0


async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    asked = params.messages[0].content.text  # type: ignore[union-attr]
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text=f"answer to {asked}"), model="test-model"
    )


@dataclass
class Seen:
    """What the SDK client got from the real server, to compare the mock's answers with."""

    tools: list[dict[str, Any]] = field(default_factory=list)
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    progress: list[float] = field(default_factory=list)
    blocked: str = ""


CALLS = {"echo": {"text": f"my key is api_key={SECRET}"}, "progress": {"steps": 2}, "ask": {"question": "life"}}


async def session(client_of: Any, seen: Seen, *, blocked_call: bool) -> None:
    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        seen.progress.append(value)

    async with Client(client_of, mode="legacy", sampling_callback=sampling) as client:
        seen.tools = [tool.model_dump(mode="json") for tool in (await client.list_tools()).tools]
        for name, arguments in CALLS.items():
            callback = on_progress if name == "progress" else None
            result = await client.call_tool(name, arguments, progress_callback=callback)
            seen.calls[name] = result.model_dump(mode="json")
        if blocked_call:
            with pytest.raises(MCPError) as refused:
                await client.call_tool("slow", {"seconds": 0})
            seen.blocked = str(refused.value)


@dataclass
class Recorded:
    http_tape: Path
    stdio_tape: Path
    seen: Seen
    admin: dict[str, Any]


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def tape_in(folder: Path, last_method: str | None = None) -> Path:
    """The one tape in ``folder`` once the writer has written its last expected line."""

    def written() -> bool:
        tapes = list(folder.glob("*.jsonl"))
        if len(tapes) != 1:
            return False
        text = tapes[0].read_text()
        return last_method is None or last_method in text

    await until(written, f"a tape in {folder}", WAIT)
    return next(iter(await asyncio.to_thread(lambda: list(folder.glob("*.jsonl")))))


async def record(tmp: Path) -> Recorded:
    http_dir, stdio_dir = tmp / "http-tapes", tmp / "stdio-tapes"
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY)
    config = tmp / "proxy.yaml"
    config.write_text(
        f"upstreams:\n  default:\n    command: {json.dumps(shlex.join(sdk_server_command()))}\n"
        f"rules: [{json.dumps(str(policy))}]\nadmin: {{token: {TOKEN}}}\n"
    )
    proxy = ProxyProcess(tmp / "proxy.log")
    await proxy.start("--config", str(config), "--record", str(http_dir))
    seen = Seen()
    admin: dict[str, Any] = {}
    try:
        await session(proxy.url, seen, blocked_call=True)
        http_tape = await tape_in(http_dir, '"slow is not for agents"')
        async with aiohttp.ClientSession(proxy.base) as web:
            async with web.get("/_shadowproxy/tapes", headers=AUTH) as response:
                admin["list"] = (response.status, await response.json())
            async with web.get(f"/_shadowproxy/tapes/{http_tape.name}", headers=AUTH) as response:
                admin["show"] = (response.status, await response.json())
            async with web.get(f"/_shadowproxy/tapes/{http_tape.name}/download", headers=AUTH) as response:
                admin["download"] = (response.status, await response.read(), response.headers.get("Content-Type"))
            async with web.get("/_shadowproxy/tapes/..%2Fproxy.yaml", headers=AUTH) as response:
                admin["traversal"] = response.status
            async with web.get("/_shadowproxy/tapes") as response:
                admin["no_token"] = response.status
    finally:
        await proxy.stop()
    # The same session through the stdio front, to a server whose echo has changed.
    command = [sys.executable, "-m", "shadowproxy", "stdio", "--record", str(stdio_dir), "--", *sdk_server_command()]
    params = StdioServerParameters(
        command=command[0], args=command[1:], env=child_env(SDK_SERVER_SHOUT="1"), cwd=str(REPO)
    )
    await session(params, Seen(), blocked_call=False)
    stdio_tape = await tape_in(stdio_dir, "answer to life")
    return Recorded(http_tape, stdio_tape, seen, admin)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return asyncio.run(asyncio.wait_for(record(tmp_path_factory.mktemp("tapes")), 240))


def shadowproxy(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """The command in this process (no interpreter to start): its exit code and what it printed."""
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_http_tape_holds_every_message_both_ways_and_no_secret(recorded: Recorded) -> None:
    text = recorded.http_tape.read_text()
    assert SECRET not in text and "[REDACTED:api_key]" in text
    header, *entries = lines_of(recorded.http_tape)
    assert header["tape"] == 1 and header["transport"] == "http" and header["upstream"] == "default"
    assert header["protocol_version"] == "2025-11-25" and header["client"]["name"]
    seen = [(entry["dir"][0], entry["msg"].get("method") or "answer") for entry in entries]
    c, s = "c", "s"
    for wanted in [(c, "initialize"), (s, "answer"), (c, "notifications/initialized"), (c, "tools/list"),
                   (c, "tools/call"), (s, "notifications/progress"), (s, "sampling/createMessage")]:  # fmt: skip
        assert wanted in seen, wanted
    # the client's answer to the server's sampling request, and the server's answers to the client's requests
    requests = [entry for entry in entries if {"method", "id"} <= entry["msg"].keys()]
    answers = [entry for entry in entries if "method" not in entry["msg"]]
    asked = {entry["msg"]["id"] for entry in requests if entry["dir"][0] == c}
    assert asked <= {entry["msg"]["id"] for entry in answers if entry["dir"][0] == s}
    assert any(entry["dir"][0] == c and entry["msg"]["result"].get("model") == "test-model" for entry in answers)
    blocked = [entry for entry in entries if entry["verdict"] == "block"]
    assert [entry.get("from") for entry in blocked] == [None, "proxy"]
    assert blocked[0]["msg"]["params"]["name"] == "slow" and blocked[0]["by"] == "rules"
    assert blocked[1]["msg"]["error"]["message"] == "slow is not for agents"
    times = [entry["t"] for entry in entries]
    assert times == sorted(times) and times[0] == 0.0


def test_stdio_tape_is_recorded_too(recorded: Recorded) -> None:
    header, *entries = lines_of(recorded.stdio_tape)
    assert header["transport"] == "stdio"
    text = recorded.stdio_tape.read_text()
    assert SECRET not in text and "MY KEY IS API_KEY=[REDACTED:API_KEY]" not in text
    methods = {entry["msg"].get("method") for entry in entries}
    assert {"initialize", "tools/list", "tools/call", "notifications/progress", "sampling/createMessage"} <= methods


def test_admin_api_lists_shows_and_downloads(recorded: Recorded) -> None:
    admin = recorded.admin
    status, listed = admin["list"]
    assert status == 200 and [row["name"] for row in listed["tapes"]] == [recorded.http_tape.name]
    assert listed["dropped"] == 0 and listed["tapes"][0]["transport"] == "http"
    status, shown = admin["show"]
    assert status == 200 and shown["header"]["tape"] == 1
    assert len(shown["messages"]) == len(lines_of(recorded.http_tape)) - 1
    status, body, content_type = admin["download"]
    assert status == 200 and body == recorded.http_tape.read_bytes() and content_type == "application/x-ndjson"
    assert admin["traversal"] in (400, 404) and admin["no_token"] == 401


def test_show_prints_the_conversation(recorded: Recorded, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = shadowproxy(capsys, "tape", "show", str(recorded.http_tape))
    assert code == 0, out
    assert re.search(r"client -> server: tools/call progress \(id \d+\)", out), out
    assert "~ +" in out and "notifications/progress" in out  # under the call it belongs to
    assert "[block by rules]" in out and "the proxy answered" in out and "slow is not for agents" in out
    code, out = shadowproxy(capsys, "tape", "list", str(recorded.http_tape.parent))
    assert code == 0 and recorded.http_tape.name in out and "1 tape(s)" in out


async def mock_answers(client_of: Any) -> Seen:
    seen = Seen()
    await session(client_of, seen, blocked_call=False)
    return seen


async def test_serve_answers_the_sdk_client_as_the_server_did_over_stdio(recorded: Recorded) -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "shadowproxy", "tape", "serve", str(recorded.http_tape)],
        env=child_env(), cwd=str(REPO),
    )  # fmt: skip
    # The tape holds the masked secret: a client sending what the tape holds gets the recorded answer.
    CALLS["echo"]["text"] = "my key is api_key=[REDACTED:api_key]"
    try:
        seen = await mock_answers(params)
    finally:
        CALLS["echo"]["text"] = f"my key is api_key={SECRET}"
    recorded_seen = recorded.seen
    assert seen.tools == recorded_seen.tools
    for name in ("progress", "ask"):
        assert seen.calls[name] == recorded_seen.calls[name]
    assert seen.calls["echo"]["content"][0]["text"] == "my key is api_key=[REDACTED:api_key]"
    assert seen.progress == [1, 2]
    async with Client(params, mode="legacy") as client:
        with pytest.raises(MCPError) as unmatched:
            await client.call_tool("echo", {"text": "never recorded"})
    assert unmatched.value.error.code == -32602 and '"name":"echo"' in unmatched.value.error.message


async def test_serve_over_http(recorded: Recorded, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "shadowproxy", "tape", "serve", str(recorded.http_tape), "--port", "0",
            stdout=sink, stderr=sink, env=child_env(), cwd=REPO,
        )  # fmt: skip
    try:
        await until(lambda: "serving tape" in log.read_text(), "the mock to listen", WAIT)
        url = re.search(r"at (http://\S+)", log.read_text())[1]  # type: ignore[index]
        async with Client(url, mode="legacy") as client:
            tools = [tool.model_dump(mode="json") for tool in (await client.list_tools()).tools]
            assert tools == recorded.seen.tools
            result = await client.call_tool("progress", {"steps": 2})
            assert result.model_dump(mode="json") == recorded.seen.calls["progress"]
    finally:
        process.terminate()
        await process.wait()


def test_replay_against_the_same_server_is_equal(recorded: Recorded, capsys: pytest.CaptureFixture[str]) -> None:
    command = shlex.join(sdk_server_command())
    code, out = shadowproxy(capsys, "tape", "replay", str(recorded.http_tape), "--upstream", command)
    assert code == 0, out
    assert "answers compared: equal" in out
    assert "not compared: 1 answer(s) the chain changed" in out  # the tools list the rules filtered (no slow)


async def test_replay_against_the_server_over_http(recorded: Recorded, tmp_path: Path) -> None:
    """Over HTTP the server asks for sampling on the session's GET stream, which the replay reads as a client."""
    from shadowproxy.tapes.format import read
    from shadowproxy.tapes.replay import replay

    server = HttpServerProcess(tmp_path / "server.log")
    await server.start()
    try:
        report = await replay(read(recorded.http_tape), server.url, within=WAIT)
    finally:
        await server.stop()
    assert report.equal and report.compared == 4, report.text()  # the tools list the rules filtered is left out


def test_replay_against_a_changed_server_names_the_difference(
    recorded: Recorded, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SDK_SERVER_SHOUT", "1")  # the server the replay starts inherits it: echo in capitals
    command = shlex.join(sdk_server_command())
    code, out = shadowproxy(capsys, "tape", "replay", str(recorded.http_tape), "--upstream", command)
    assert code == 1, out
    assert "tools/call echo" in out and "result.content[0].text" in out and "1 of them differ" in out


def test_diff_of_the_two_tapes(recorded: Recorded, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = shadowproxy(capsys, "tape", "diff", str(recorded.http_tape), str(recorded.stdio_tape), "--json")
    assert code == 1, out
    parts = json.loads(out)["parts"]
    changed = [part for part in parts if part["kind"] == "changed"]
    echoed = [part for part in changed if part["what"] == "<- answer to tools/call echo"]
    assert echoed and "result.content[0].text" in [d["path"] for d in echoed[0]["differences"]], parts
    only_a = [part["what"] for part in parts if part["kind"] == "only_in_a"]
    assert "-> request tools/call slow" in only_a
    ignored = ("--ignore", "result.content[*].text", "--ignore", "result.structuredContent.result")
    code, out = shadowproxy(capsys, "tape", "diff", str(recorded.http_tape), str(recorded.stdio_tape), *ignored)
    assert "answer to tools/call echo" not in out and "only in A" in out and "tools/call slow" in out
    code, out = shadowproxy(capsys, "tape", "diff", str(recorded.http_tape), str(recorded.http_tape))
    assert code == 0 and "the tapes agree" in out


def test_rules_test_on_tapes_reports_what_a_new_rule_would_block(
    recorded: Recorded, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "new.yaml"
    policy.write_text(
        "rules:\n"
        "  - id: no-sampling-tools\n    match: {method: tools/call, tool: ask}\n    action: block\n"
        "  - id: mask-answers\n    match: {direction: server_to_client, tool: echo}\n"
        "    action: {redact: {detectors: [api_key]}}\n"
    )
    code, out = shadowproxy(capsys, "rules", "test", str(policy), "--tape", str(recorded.http_tape.parent), "--json")
    assert code == 1, out
    report = json.loads(out)
    rules = {rule["rule"]: rule for rule in report["rules"]}
    assert rules["no-sampling-tools"]["would_have"] == {"blocked": 1}
    assert rules["no-sampling-tools"]["messages"][0]["what"] == "-> request tools/call ask"
    assert "mask-answers" in rules and report["newly_blocked"] == 1
    code, out = shadowproxy(capsys, "rules", "test", str(policy), "--tape", str(recorded.http_tape))
    assert code == 1 and "rule no-sampling-tools (block" in out and "would block 1 message(s)" in out


def test_rules_test_with_cases_fails_only_on_a_call_a_case_expects_to_pass(
    recorded: Recorded, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "new.yaml"
    policy.write_text("rules:\n  - id: no-ask\n    match: {method: tools/call, tool: ask}\n    action: block\n")
    cases = tmp_path / "cases"
    cases.mkdir()
    call = '{jsonrpc: "2.0", id: 1, method: tools/call, params: {name: ask, arguments: {question: %s}}}'
    (cases / "ask.yaml").write_text(
        f"cases:\n  - name: agents may ask\n    message: {call % 'life'}\n    expect: {{verdict: forward}}\n"
    )
    tape = str(recorded.http_tape)
    code, out = shadowproxy(capsys, "rules", "test", str(policy), "--tape", tape, "--cases", str(cases))
    assert code == 1, out
    assert re.search(r":\d+ -> request tools/call ask: blocked by no-ask, but case 'agents may ask' \(.*ask.yaml", out)
    assert "FAIL case agents may ask" in out, "the case itself fails too"
    # A closer case that expects the block: the recorded question is not one the cases want to pass.
    (cases / "ask.yaml").write_text(
        f"cases:\n  - name: agents may ask\n    message: {call % 'other'}\n    expect: {{verdict: forward}}\n"
        f"  - name: not about life\n    message: {call % 'life'}\n    expect: {{verdict: block}}\n"
    )
    code, out = shadowproxy(capsys, "rules", "test", str(policy), "--tape", tape, "--cases", str(cases), "--json")
    report = json.loads(out)
    assert report["contradicted"] == [] and [case["name"] for case in report["failed_cases"]] == ["agents may ask"]
    assert code == 1, "a failing case fails the run"
    (cases / "ask.yaml").write_text(
        f"cases:\n  - name: not about life\n    message: {call % 'life'}\n    expect: {{verdict: block}}\n"
    )
    code, out = shadowproxy(capsys, "rules", "test", str(policy), "--tape", tape, "--cases", str(cases))
    assert code == 0 and "would block 1 message(s) that passed when recorded" in out, out
