"""A bounded fuzz run over the proxy's HTTP entry point: generated bodies and headers, against a real proxy.

Every request must get an HTTP answer (no reset, no hang, never a 5xx the proxy made up), error answers must be
well-formed, and afterwards the proxy must still serve a real client. Run it longer: see SECURITY.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tests.security.helpers import INIT, PING, open_session, post
from tests.support import sdk_server_command

from .strategies import JSON, messages

ANSWERS = {200, 202, 204, 400, 401, 403, 404, 405, 406, 409, 413, 415, 421}
TOKEN_VALUE = "fuzz-token"
TOKEN = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30)
VALUE = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
CONTENT_TYPES = (
    st.sampled_from(
        ["application/json", "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded", ""]
    )
    | VALUE
)
ACCEPTS = st.sampled_from(
    ["application/json, text/event-stream", "application/json", "text/event-stream", "*/*", "text/html", ""]
)
VERSIONS = st.sampled_from(["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28", "1999-01-01", "garbage"])


def bodies(session_methods: list[str]) -> st.SearchStrategy[bytes]:
    valid = messages().map(orjson.dumps)
    known = st.builds(
        lambda method, request_id, params: orjson.dumps(
            {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        ),
        st.sampled_from(session_methods),
        st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
        st.fixed_dictionaries({}, optional={"name": st.sampled_from(["echo", "nope"]), "cursor": st.text()}),
    )
    return st.one_of(
        st.binary(max_size=300),
        JSON.map(orjson.dumps),
        valid,
        known,
        st.lists(messages(), max_size=4).map(orjson.dumps),
        st.tuples(valid, st.integers(0, 200)).map(lambda pair: pair[0][: pair[1]]),
    )


AUTHORIZATIONS = st.sampled_from(["", f"Bearer {TOKEN_VALUE}", "Bearer nope", "Basic abc", "Bearer "]) | VALUE


@st.composite
def requests(draw: st.DrawFn, session: str, token: bool) -> tuple[str, dict[str, str], bytes]:
    method = draw(st.sampled_from(["POST"] * 8 + ["GET", "DELETE", "PUT", "OPTIONS", "PATCH"]))
    headers = {"Content-Type": draw(CONTENT_TYPES), "Accept": draw(ACCEPTS)}
    headers["Authorization"] = draw(st.just(f"Bearer {TOKEN_VALUE}") | AUTHORIZATIONS) if token else ""
    if draw(st.booleans()):
        headers["Mcp-Session-Id"] = draw(st.just(session) | TOKEN)
    if draw(st.booleans()):
        headers["MCP-Protocol-Version"] = draw(VERSIONS)
    headers.update(draw(st.dictionaries(st.sampled_from(["Mcp-Method", "Mcp-Name", "X-Junk", "Origin"]), VALUE)))
    methods = ["ping", "tools/list", "tools/call", "no/such/method", "notifications/initialized"]
    body = draw(bodies(methods)) if method in ("POST", "PUT", "PATCH") else b""
    return method, {name: value for name, value in headers.items() if value}, body


def exchange(address: tuple[str, int], path: str, method: str, headers: dict[str, str], body: bytes) -> None:
    connection = http.client.HTTPConnection(*address, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        content_type = response.getheader("Content-Type", "")
        # A GET stream stays open (with keep-alives) until the client leaves: its head is the answer.
        data = b"" if method == "GET" and content_type == "text/event-stream" else response.read()
    finally:
        connection.close()
    assert response.status in ANSWERS, (response.status, method, headers, body, data)
    if response.status >= 400 and content_type.startswith("application/json"):
        payload: Any = orjson.loads(data)
        assert "error" in payload, payload
        if "jsonrpc" in payload:
            assert isinstance(payload["error"]["code"], int)
    if content_type.startswith("application/json") and response.status == 200:
        orjson.loads(data)


def fuzz(url: str, session: str, token: bool) -> None:
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 80)

    @given(requests(session, token))
    def run(request: tuple[str, dict[str, str], bytes]) -> None:
        method, headers, body = request
        exchange(address, parts.path, method, headers, body)

    run()


@pytest.mark.parametrize("token", [False, True], ids=["open", "with-auth"])
async def test_the_proxy_answers_every_generated_request(start_proxy, tmp_path: Path, token: bool) -> None:  # type: ignore[no-untyped-def]
    # One shared child for every session the fuzzer opens, and a short timeout for requests it never answers.
    config: dict[str, Any] = {
        "upstreams": {"default": {"command": sdk_server_command(), "share": True}},
        "request_timeout": 5,
    }
    headers: dict[str, str] = {}
    if token:
        config["auth"] = {"tokens": [{"name": "fuzzer", "sha256": hashlib.sha256(TOKEN_VALUE.encode()).hexdigest()}]}
        headers = {"Authorization": f"Bearer {TOKEN_VALUE}"}
    (tmp_path / "sp.yaml").write_text(yaml.safe_dump(config))
    proxy = await start_proxy("--config", str(tmp_path / "sp.yaml"))
    # The shared child starts with the first session: on a loaded machine its start may outlast request_timeout,
    # and that initialize is answered with the timeout error. Once it runs, a session opens at once.
    for _ in range(12):
        status, _, answer_headers = await post(proxy.url, INIT, **headers)
        if status == 200 and "Mcp-Session-Id" in answer_headers:
            break
    session = await open_session(proxy.url, **headers)
    await asyncio.to_thread(fuzz, proxy.url, session, token)
    # Still serving: the session the fuzzer pounded on, and a new one.
    status, payload, _ = await post(proxy.url, PING, **{"Mcp-Session-Id": session, **headers})
    assert (status, payload.get("result")) in ((200, {}), (404, None)), (status, payload)
    fresh = await open_session(proxy.url, **headers)
    status, payload, _ = await post(proxy.url, PING, **{"Mcp-Session-Id": fresh, **headers})
    assert status == 200 and payload["result"] == {}
    assert "Traceback" not in proxy.log(), proxy.log()[-3000:]
