"""Who may call which admin route: ``admin.token`` may call every one; a token of ``admin.tokens`` what its
roles' ``admin`` operations allow (``roles``, :mod:`shadowproxy.config.roles`).

A route's operation is found by method and path (:func:`operation_of`): the held messages and breakpoints of
``/approvals``, ``/breakpoints`` and a tool pin's approval or reset are ``approvals:decide``, ``/tapes`` is
``tapes:read``, the console's ``/summary`` is ``sessions:read``; a route this table does not know needs
``admin.token`` or a role with ``admin: ["*"]``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from shadowproxy.config.admin import AdminConfig
from shadowproxy.proxy.roles import Access

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

OPEN = ""
"""The operation of a route any admin token may call (it reads nothing of a session's)."""
EVERYTHING = "*"
ROUTES = (
    ("GET", "/openapi.json", OPEN),
    ("GET", "/upstreams", OPEN),
    ("GET", "/config", OPEN),
    ("GET", "/rules", OPEN),
    ("GET", "/pins", OPEN),
    ("GET", "/summary", "sessions:read"),
    ("POST", "/upstreams/", "upstreams:restart"),
    ("GET", "/sessions", "sessions:read"),
    ("DELETE", "/sessions/", "sessions:kill"),
    ("POST", "/rules/reload", "rules:reload"),
    ("GET", "/tap", "tap:read"),
    ("*", "/approvals", "approvals:decide"),
    ("*", "/breakpoints", "approvals:decide"),
    ("*", "/pins", "approvals:decide"),
    ("*", "/tapes", "tapes:read"),
)


def operation_of(method: str, path: str) -> str:
    """The operation a route (its path under the admin prefix) needs; :data:`EVERYTHING` for one not listed."""
    for route_method, prefix, operation in ROUTES:
        if route_method in ("*", method) and (path == prefix or path.startswith(prefix.rstrip("/") + "/")):
            return operation
    return EVERYTHING


def unauthorized() -> web.Response:
    response = web.json_response({"error": "an admin token is required: Authorization: Bearer <token>"}, status=401)
    response.headers["WWW-Authenticate"] = 'Bearer realm="shadowproxy-admin"'
    return response


def protected(settings: AdminConfig, access: Access | None, method: str, path: str, handler: Handler) -> Handler:
    """``handler`` behind the admin token check: ``401`` for no known token, ``403`` naming the missing
    operation for a token whose roles do not allow it."""
    expected = f"Bearer {settings.token}".encode() if settings.token is not None else None
    operation = operation_of(method, path)
    tokens = [(token.digest, token.name, token.roles) for token in settings.tokens]

    async def checked(request: web.Request) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        if expected is not None and hmac.compare_digest(header.encode(), expected):
            return await handler(request)
        scheme, _, token = header.partition(" ")
        digest = hashlib.sha256(token.strip().encode()).digest()
        found = None
        for candidate, name, roles in tokens:
            if hmac.compare_digest(candidate, digest):
                found = (name, roles)
        if scheme.lower() != "bearer" or found is None:
            return unauthorized()
        name, roles = found
        if operation == OPEN:
            return await handler(request)
        permissions = access.compiled(roles) if access is not None else None
        if permissions is None or not permissions.may(operation):
            text = f"missing permission {operation}: not granted to admin token {name} (roles: {', '.join(roles)})"
            return web.json_response({"error": text, "permission": operation}, status=403)
        return await handler(request)

    return checked
