"""Reversible PII tokens through the real proxy: the client sees ``[EMAIL_1]``, sends it back in a call, and the
server receives the real address; the tap, the audit log and the proxy's log show only the token."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from mcp import Client
from mcp_types import ElicitRequestParams, ElicitResult

from tests.ops.helpers import TOKEN
from tests.ops.test_tap import open_tap  # noqa: F401  (the fixture)
from tests.support import REPO, until

DRIFTING = REPO / "tests" / "servers" / "drifting.py"
ADDRESS = "jane.doe@example.com"
POLICY = """
rules:
  - id: tokens
    match: {direction: server_to_client, kind: response, method: tools/call}
    action: {tokenize: {detectors: [email, credit_card]}}
"""


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_round_trip(start_proxy, open_tap, tmp_path: Path, mode: str) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    state = tmp_path / "state"
    state.mkdir()
    (tmp_path / "policy.yaml").write_text(POLICY)
    audit = tmp_path / "audit.jsonl"
    config = {
        "upstreams": {"drift": {"command": [sys.executable, str(DRIFTING), str(state)]}},
        "interceptors": [
            {"name": "audit", "file": str(audit)},
            {"name": "rules", "paths": [str(tmp_path / "policy.yaml")], "watch": False},
        ],
        "admin": {"token": TOKEN},
    }
    (tmp_path / "proxy.yaml").write_text(yaml.safe_dump(config))
    proxy = await start_proxy("--config", str(tmp_path / "proxy.yaml"), "--log-level", "debug")
    tap = await open_tap(proxy.base, "?bodies=1&method=tools/call")

    async with Client(proxy.url, mode=mode) as client:
        contact = await client.call_tool("contact", {})
        assert contact.content[0].text == "Write to [EMAIL_1] or call the desk."  # type: ignore[union-attr]
        again = await client.call_tool("contact", {})
        assert again.content[0].text == contact.content[0].text, "the same value, the same token"  # type: ignore[union-attr]
        sent = await client.call_tool("send", {"to": "[EMAIL_1]", "body": "card [CARD_7] is unknown"})
        assert sent.content[0].text == "queued for [EMAIL_1]"  # type: ignore[union-attr]
    assert (state / "received").read_text() == f"{ADDRESS}\n", "the server got the real address"

    events = await tap.until(lambda event: "queued for" in orjson.dumps(event).decode())
    call = next(e for e in events if e["direction"] == "client_to_server" and e["body"]["params"]["name"] == "send")
    assert call["body"]["params"]["arguments"] == {"to": "[EMAIL_1]", "body": "card [CARD_7] is unknown"}
    assert all(ADDRESS not in orjson.dumps(event).decode() for event in events)

    def sends() -> list[dict[str, Any]]:
        lines = [orjson.loads(line) for line in audit.read_text().splitlines()] if audit.exists() else []
        return [line for line in lines if line.get("tool") == "send" and "outcome" in line]

    await until(sends, "the audit line of the send call")
    assert sends()[0]["arguments"]["to"] == "[EMAIL_1]"
    assert ADDRESS not in audit.read_text()
    assert ADDRESS not in proxy.log()


async def test_tokens_in_the_clients_answer_to_a_server_request_are_restored(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The server's elicitation shows the user a token; the user's answer carries it back; the server gets the
    address (the answer is a response going up, not a request)."""
    (tmp_path / "policy.yaml").write_text(
        POLICY
        + """
  - id: questions-too
    match: {direction: server_to_client, method: elicitation/create}
    action: {tokenize: {detectors: [email]}}
"""
    )
    forms = [sys.executable, str(REPO / "tests" / "servers" / "forms.py"), str(tmp_path)]
    config = {
        "upstreams": {"forms": {"command": forms}},
        "interceptors": [{"name": "rules", "paths": [str(tmp_path / "policy.yaml")], "watch": False}],
    }
    (tmp_path / "proxy.yaml").write_text(yaml.safe_dump(config))
    proxy = await start_proxy("--config", str(tmp_path / "proxy.yaml"))
    asked: list[str] = []

    async def the_user(context: object, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"to": "[EMAIL_1]"})

    async with Client(proxy.url, mode="legacy", elicitation_callback=the_user) as client:
        contact = await client.call_tool("contact", {})
        assert contact.content[0].text == "Write to [EMAIL_1] or call the desk."  # type: ignore[union-attr]
        sent = await client.call_tool("ask_address", {})
        assert sent.content[0].text == "sending to [EMAIL_1]"  # type: ignore[union-attr]
    assert asked == ["Send to [EMAIL_1] or elsewhere?"]
    assert (tmp_path / "received").read_text() == f"{ADDRESS}\n", "the server got the address back"
