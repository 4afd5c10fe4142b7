"""Where authentication leaves the caller's identity on a request, for the fronts to read."""

PRINCIPAL = "shadowproxy.principal"
"""The key of the caller's identity (a string) on the aiohttp request."""
