"""A small MCP server bundled for trying the proxy: ``shadowproxy run --demo``."""
