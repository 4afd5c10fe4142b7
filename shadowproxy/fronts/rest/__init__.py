"""The REST facade: tools, resources and prompts of every mount and virtual server for callers that do not speak
MCP, under ``/v1/mcp/servers``, behind client authentication and through the same chain as MCP traffic."""
