"""Header fields the proxy writes by hand: the fast front's answers and the upstream client's requests."""

from __future__ import annotations

from collections.abc import Mapping


def header_block(headers: Mapping[str, str]) -> str:
    """``headers`` as ``name: value`` lines, each ending in CRLF. ``ValueError`` when one holds a line break,
    which would smuggle a header (or a whole message) to the other side."""
    block = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
    if block.count("\n") != len(headers) or block.count("\r") != len(headers):
        raise ValueError("a header holds a line break")
    return block
