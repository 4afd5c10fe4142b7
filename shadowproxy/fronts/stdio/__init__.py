"""The stdio front: the proxy launched by an MCP client, speaking to a child process or an HTTP upstream."""
