"""An SDK server over Streamable HTTP whose tool mirrors an argument in a header: ``python headers_server.py PORT``.

``where``'s ``region`` is marked ``x-mcp-header: Region``, so the SDK server refuses a 2026-07-28 call of it
whose ``Mcp-Param-Region`` (or ``Mcp-Name``) does not match the body, with -32020.
"""

from __future__ import annotations

import sys
from typing import Annotated

from mcp.server import MCPServer
from pydantic import Field

server = MCPServer("headers-server")


@server.tool()
def where(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})]) -> str:
    """Say which region was asked for."""
    return f"region {region}"


if __name__ == "__main__":
    server.run("streamable-http", port=int(sys.argv[1]))
