"""The headers a member reached over HTTP needs beside a message the gateway sends it.

A client's ``Mcp-*`` headers describe the message it sent, not the one a member gets (``Mcp-Name`` carries the
namespaced name), so they are made again for each member's message: the protocol version (the negotiated one in
the handshake era), and in the 2026-07-28 era ``Mcp-Method`` and ``Mcp-Name`` as the member's own names give them.
``Mcp-Param-*`` are the HTTP channel's to make (:mod:`shadowproxy.upstreams.mcp_headers`): it knows the member's
tool schemas.
"""

from __future__ import annotations

from collections.abc import Mapping

from shadowproxy.core.jsonrpc import Message
from shadowproxy.core.protocol import VERSION_HEADER, request_protocol_version
from shadowproxy.upstreams.mcp_headers import routing


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
    headers.update(routing(message, version))
    return headers
