"""The headers a member reached over HTTP needs beside a message the gateway sends it.

A client's ``Mcp-*`` headers describe the message it sent, not the one a member gets (``Mcp-Name`` carries the
namespaced name), so they are made again for each member's message: the protocol version (the negotiated one in
the handshake era), and in the 2026-07-28 era ``Mcp-Method`` and ``Mcp-Name`` as the member's own names give them.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping

from shadowproxy.core.jsonrpc import Message
from shadowproxy.core.protocol import VERSION_HEADER, request_protocol_version

NAME_PARAMS = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
_SAFE = re.compile(r"[\x20-\x7E]*")


def for_stream(passed: Mapping[str, str], negotiated: str | None) -> dict[str, str]:
    """For a member's own stream of messages tied to no request (an HTTP GET)."""
    headers = {name: value for name, value in passed.items() if not name.lower().startswith("mcp-")}
    if negotiated:
        headers[VERSION_HEADER] = negotiated
    return headers


def for_member(message: Message, passed: Mapping[str, str], negotiated: str | None) -> dict[str, str]:
    headers = {name: value for name, value in passed.items() if not name.lower().startswith("mcp-")}
    version = request_protocol_version(message)
    if version is None:
        if negotiated and message.method != "initialize":
            headers[VERSION_HEADER] = negotiated
        return headers
    headers[VERSION_HEADER] = version
    method = message.method
    if method is None:
        return headers
    headers["Mcp-Method"] = method
    key = NAME_PARAMS.get(method)
    name = message.params.get(key) if key is not None and isinstance(message.params, dict) else None
    if isinstance(name, str):
        safe = _SAFE.fullmatch(name) and name == name.strip()
        headers["Mcp-Name"] = name if safe else f"=?base64?{base64.b64encode(name.encode()).decode('ascii')}?="
    return headers
