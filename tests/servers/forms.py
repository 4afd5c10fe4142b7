"""An SDK server that hands out an email address (``contact``) and asks its client's user for one back through
an elicitation form (``ask_address``), writing the address it received to ``STATE_DIR/received``.

``python -m tests.servers.forms STATE_DIR``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from pydantic import BaseModel

state = Path(sys.argv[1])
server = MCPServer("forms")


class Address(BaseModel):
    to: str


@server.tool()
def contact() -> str:
    """Who to write to."""
    return "Write to jane.doe@example.com or call the desk."


@server.tool()
async def ask_address(ctx: Context) -> str:
    """Ask the user where to send the message (the question names the address the server has on file)."""
    answer = await ctx.elicit("Send to jane.doe@example.com or elsewhere?", Address)
    received = answer.data.to if answer.action == "accept" and answer.data is not None else "-"
    with (state / "received").open("a") as file:
        file.write(received + "\n")
    return f"sending to {received}"


if __name__ == "__main__":
    server.run()
