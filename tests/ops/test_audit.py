"""The audit log: a real session with a blocked and a redacted call; rotation; option errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from mcp import Client
from mcp.shared.exceptions import MCPError

from shadowproxy.core.chain import FORWARD, Chain, Direction, MessageContext, block
from shadowproxy.core.errors import ConfigError
from shadowproxy.core.jsonrpc import Message, decode
from shadowproxy.core.record import SessionRecord
from shadowproxy.interceptors.audit import create
from tests.support import sdk_server_command, until

POLICY = """
rules:
  - id: mask-codes
    priority: 10
    match: {direction: client_to_server, tool: echo}
    action: {redact: {detectors: [], patterns: ["TOPSECRET-[0-9]+"]}}
  - id: no-fail
    match: {direction: client_to_server, tool: fail}
    action: {block: {message: "fail is disabled"}}
  - id: log-calls
    match: {direction: client_to_server, method: tools/call}
    action: {log: {message: "tool call seen", level: info}}
"""
RULE_SECRET = "TOPSECRET-4242"
API_KEY = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2"


def lines_of(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_a_session_with_a_blocked_and_a_redacted_call(start_proxy, tmp_path: Path, mode: str) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    audit = tmp_path / "audit.jsonl"
    config = {
        "upstreams": {"files": {"command": sdk_server_command()}},
        "interceptors": [
            {"name": "audit", "file": str(audit)},
            {"name": "rules", "paths": [str(policy)], "watch": False},
        ],
    }
    (tmp_path / "proxy.yaml").write_text(yaml.safe_dump(config))
    proxy = await start_proxy("--config", str(tmp_path / "proxy.yaml"))

    async with Client(proxy.url, mode=mode) as client:
        echoed = await client.call_tool("echo", {"text": f"code {RULE_SECRET}"})
        assert echoed.content[0].text == "code [REDACTED:pattern]"  # type: ignore[union-attr]
        with pytest.raises(MCPError, match="fail is disabled"):
            await client.call_tool("fail", {"reason": "x"})
        await client.read_resource("test://static")
        await client.get_prompt("greet", {"name": API_KEY})

    def calls() -> list[dict[str, Any]]:
        return [line for line in lines_of(audit) if line["event"] == "call"]

    await until(lambda: len(calls()) == 4, "four call lines in the audit log")
    text = audit.read_text()
    assert RULE_SECRET not in text, "the rules' redaction shows in the log"
    assert API_KEY not in text, "the audit log's own redactors mask what no rule did"

    by_target = {line.get("tool") or line.get("resource") or line.get("prompt"): line for line in calls()}
    echo, failed = by_target["echo"], by_target["fail"]
    assert echo["outcome"] == "ok" and echo["error"] is None
    assert echo["arguments"] == {"text": "code [REDACTED:pattern]"}
    assert echo["decision"] == {"action": "modify", "by": None}
    assert failed["outcome"] == "blocked" and failed["error"] == "fail is disabled"
    assert failed["decision"] == {"action": "block", "by": "rules"}
    assert by_target["test://static"]["method"] == "resources/read"
    assert by_target["test://static"]["outcome"] == "ok"
    assert by_target["greet"]["arguments"] == {"name": "[REDACTED:api_key]"}
    for line in calls():
        assert line["upstream"] == "files" and line["transport"] == "http"
        assert line["session"] and line["client"]["name"]
        assert line["principal"] is None
        assert isinstance(line["duration"], int | float) and line["duration"] >= 0
        assert line["time"].endswith("Z")
    assert {line["id"] for line in calls()} == {line["id"] for line in calls()}  # ids are kept

    rule_lines = [line for line in lines_of(audit) if line["event"] == "rule"]
    assert rule_lines and all(line["rule"] == "log-calls" for line in rule_lines)
    assert "tool call seen" not in proxy.log(), "the shadowproxy.audit logger goes to the audit log only"


def sizes(folder: Path) -> list[int]:
    return [path.stat().st_size for path in folder.glob("audit.jsonl*")]


def all_text(folder: Path) -> str:
    return "".join(path.read_text() for path in folder.glob("audit.jsonl*"))


def request(request_id: int, tool: str, text: str) -> Message:
    body = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": tool, "arguments": {"text": text}},
    }
    message = decode(orjson.dumps(body))
    assert isinstance(message, Message)
    return message


async def test_lines_rotate_by_size_and_every_outcome_is_told(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    interceptor = create({"file": str(audit), "max_bytes": 4000, "backups": 2})
    chain = Chain([interceptor])
    await interceptor.start()
    session = SessionRecord(id="session-1", client_info={"name": "unit", "version": "1"})
    c2s, s2c = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
    try:
        for index in range(60):
            call = request(index, "echo", f"mail jane{index}@example.com")
            chain.observe(MessageContext(call, c2s, session=session, upstream="u"), FORWARD)
            result = {"content": [{"type": "text", "text": "boom"}], "isError": index % 2 == 1}
            reply = decode(orjson.dumps({"jsonrpc": "2.0", "id": index, "result": result}))
            chain.observe(MessageContext(reply, s2c, session=session, upstream="u", request=call), FORWARD)  # type: ignore[arg-type]
        blocked = request(999, "rm", "-rf /")
        chain.observe(MessageContext(blocked, c2s, session=session, upstream="u"), block(message="no"))
    finally:
        await interceptor.close()
    chain.observe(MessageContext(request(1000, "echo", "after close"), c2s, session=session), FORWARD)

    assert (tmp_path / "audit.jsonl.1").exists() and (tmp_path / "audit.jsonl.2").exists()
    assert not (tmp_path / "audit.jsonl.3").exists()
    lines = [line for name in ("audit.jsonl.2", "audit.jsonl.1", "audit.jsonl") for line in lines_of(tmp_path / name)]
    assert all(size <= 4000 for size in sizes(tmp_path))
    outcomes = [line["outcome"] for line in lines]
    assert outcomes[-1] == "blocked" and lines[-1]["tool"] == "rm"
    assert set(outcomes[:-1]) == {"ok", "error"}
    assert all("@example.com" not in str(line["arguments"]) for line in lines)
    assert "after close" not in all_text(tmp_path)


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"bogus": 1}, "interceptors.audit.bogus"),
        ({"max_bytes": -1}, "interceptors.audit.max_bytes"),
        ({"backups": "many"}, "interceptors.audit.backups"),
        ({"stream": "printer"}, "interceptors.audit.stream"),
        ({"file": "/tmp/x", "stream": "stdout"}, "interceptors.audit.stream"),
        ({"detectors": ["nope"]}, "interceptors.audit.detectors"),
        ({"patterns": ["("]}, "interceptors.audit.patterns"),
        ({"file": ""}, "interceptors.audit.file"),
    ],
)
def test_bad_options_name_their_key(options: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        create(options)
    assert caught.value.key == key
