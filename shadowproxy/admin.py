"""The admin API under ``/_shadowproxy/``: upstreams, sessions, rules reload, the effective config.

Off unless ``admin`` is configured (its paths are then plain 404s); every call
needs ``Authorization: Bearer <token>``. The API is described by the OpenAPI
document :func:`openapi_document`, served at ``/_shadowproxy/openapi.json``.

Config::

    admin:
      token: "at least 16 characters"     # or
      token_file: /run/secrets/shadowproxy-admin
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from shadowproxy import metrics
from shadowproxy.config import Config
from shadowproxy.errors import ConfigError
from shadowproxy.sessions import LiveSession
from shadowproxy.upstreams.stdio import StdioUpstream

if TYPE_CHECKING:
    from shadowproxy.app import Proxy

PREFIX = "/_shadowproxy"
MIN_TOKEN = 16
MASK = "********"
SECRET_WORDS = ("token", "secret", "password", "passwd", "key", "credential", "authorization", "cookie")
MAX_LIMIT = 10_000
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class AdminConfig:
    """The validated ``admin`` section."""

    token: str

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], source: str | None = None) -> AdminConfig | None:
        """``None`` when the section is empty (admin API off); :class:`ConfigError` naming ``admin.<key>``."""
        if not raw:
            return None
        unknown = sorted(set(raw) - {"token", "token_file"})
        if unknown:
            raise ConfigError("unknown setting; known: token, token_file", key=f"admin.{unknown[0]}", source=source)
        if ("token" in raw) == ("token_file" in raw):
            raise ConfigError("give exactly one of token and token_file", key="admin", source=source)
        if "token" in raw:
            key, token = "admin.token", raw["token"]
            if not isinstance(token, str):
                raise ConfigError(f"must be a string, not {type(token).__name__}", key=key, source=source)
        else:
            key, path = "admin.token_file", raw["token_file"]
            if not isinstance(path, str) or not path:
                raise ConfigError("must be a file path", key=key, source=source)
            try:
                token = Path(path).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}", key=key) from None
        if len(token) < MIN_TOKEN or token != token.strip():
            raise ConfigError(f"the token must be at least {MIN_TOKEN} characters, without surrounding spaces", key=key)
        return cls(token)


def error(status: int, text: str) -> web.Response:
    return web.json_response({"error": text}, status=status)


def protected(token: str, handler: Handler) -> Handler:
    expected = f"Bearer {token}".encode()

    async def checked(request: web.Request) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            response = error(401, "an admin token is required: Authorization: Bearer <token>")
            response.headers["WWW-Authenticate"] = 'Bearer realm="shadowproxy-admin"'
            return response
        return await handler(request)

    return checked


class AdminApi:
    """The handlers, bound to one proxy."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document())

    async def upstreams(self, request: web.Request) -> web.Response:
        proxy = self.proxy
        listed: dict[str, dict[str, Any]] = {}
        for mount in proxy.mounts:
            entry = listed.get(mount.name)
            if entry is None:
                entry = listed[mount.name] = describe_upstream(mount.upstream)
            entry["paths"].append(mount.path)
        for session in proxy.sessions.live.values():
            if session.record.upstream in listed:
                listed[session.record.upstream]["sessions"] += 1
        return web.json_response({"upstreams": list(listed.values())})

    async def sessions(self, request: web.Request) -> web.Response:
        upstream = request.query.get("upstream")
        raw_limit = request.query.get("limit", "1000")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            return error(400, f"limit must be an integer from 1 to {MAX_LIMIT}")
        limit = int(raw_limit)
        live = [s for s in self.proxy.sessions.live.values() if upstream is None or s.record.upstream == upstream]
        live.sort(key=lambda session: session.record.created_at)
        return web.json_response({"sessions": [describe_session(s) for s in live[:limit]], "total": len(live)})

    async def session(self, request: web.Request) -> web.Response:
        session = self.proxy.sessions.live.get(request.match_info["session_id"])
        if session is None:
            return error(404, "no live session with this id")
        return web.json_response(describe_session(session))

    async def terminate(self, request: web.Request) -> web.Response:
        if not await self.proxy.sessions.close(request.match_info["session_id"]):
            return error(404, "no live session with this id")
        return web.Response(status=204)

    async def reload(self, request: web.Request) -> web.Response:
        """Call ``reload()`` on every interceptor that has one; 422 when any kept its old configuration."""
        results = []
        for interceptor in self.proxy.chain.interceptors:
            reload = getattr(interceptor, "reload", None)
            if reload is None:
                continue
            taken = await reload() is not False
            outcome = "success" if taken else "failure"
            metrics.ADMIN_RELOADS.labels(interceptor.name, outcome).inc()
            reason = None if taken else getattr(interceptor, "last_error", None) or "reload refused"
            results.append({"interceptor": interceptor.name, "reloaded": taken, "error": reason})
        ok = all(result["reloaded"] for result in results)
        return web.json_response({"reloaded": ok, "interceptors": results}, status=200 if ok else 422)

    async def config(self, request: web.Request) -> web.Response:
        return web.json_response(effective_config(self.proxy))


def describe_upstream(upstream: Any) -> dict[str, Any]:
    config = upstream.config
    healthy = metrics.upstream_healthy(upstream.name)
    entry: dict[str, Any] = {
        "name": upstream.name,
        "transport": "stdio" if config.is_stdio else "http",
        "status": "unknown" if healthy is None else "up" if healthy else "failing",
        "paths": [],
        "sessions": 0,
        "shared": bool(config.share),
    }
    if config.is_stdio:
        entry["command"] = list(config.command)
        entry["processes"] = len(upstream.children) if isinstance(upstream, StdioUpstream) else 0
    else:
        entry["url"] = mask_url(config.url or "")
    return entry


def describe_session(session: LiveSession) -> dict[str, Any]:
    """A session as operators see it; the upstream's own session id and the raw initialize stay inside."""
    data = session.record.to_dict()
    data.pop("upstream_session_id", None)
    data.pop("init_request", None)
    data["listening"] = session.listening
    return data


def mask_url(url: str) -> str:
    """A URL without its password or query (either may hold a credential)."""
    parts = urlsplit(url)
    if parts.password is None and not parts.query:
        return url
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:{MASK}@{parts.hostname or ''}"
        if parts.port is not None:
            netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, MASK if parts.query else "", parts.fragment))


def masked(value: Any, secret: bool = False) -> Any:
    """``value`` with every value under a secret-sounding key (and every value when ``secret``) replaced."""
    if isinstance(value, Mapping):
        return {
            str(key): masked(item, secret or any(word in str(key).lower() for word in SECRET_WORDS))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [masked(item, secret) for item in value]
    if secret and value is not None and not isinstance(value, bool):
        return MASK
    return value


def effective_config(proxy: Proxy) -> dict[str, Any]:
    """The config in force, with secrets masked: tokens, passwords, upstream env and header values."""
    return masked_config(proxy.config)


def masked_config(config: Config) -> dict[str, Any]:
    """``config`` as plain data, with secrets masked."""
    data: dict[str, Any] = {}
    for field in fields(config):
        value = getattr(config, field.name)
        if field.name == "upstreams":
            value = [
                {
                    "name": upstream.name,
                    "command": list(upstream.command),
                    "url": mask_url(upstream.url) if upstream.url else None,
                    "env": masked(upstream.env, secret=True),
                    "inherit_env": upstream.inherit_env,
                    "cwd": upstream.cwd,
                    "share": upstream.share,
                    "headers": masked(upstream.headers, secret=True),
                }
                for upstream in value
            ]
        elif field.name == "interceptors":
            value = [{"name": item.name, "options": masked(item.options)} for item in value]
        elif field.name == "store":
            value = mask_url(value)
        else:
            value = masked(value)
        data[field.name] = value
    return data


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _operation(name: str, summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    errors = {"401": _json(_ref("Error"), "No or wrong admin token")}
    return {
        "operationId": name,
        "summary": summary,
        "security": [{"adminToken": []}],
        "responses": {**responses, **errors},
        **extra,
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.0 description of the admin API."""
    string, integer, boolean = {"type": "string"}, {"type": "integer", "minimum": 0}, {"type": "boolean"}
    nullable_string = {"type": "string", "nullable": True}
    session_id = {"name": "session_id", "in": "path", "required": True, "schema": string}
    not_found = _json(_ref("Error"), "No live session with this id")
    schemas: dict[str, Any] = {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": string}},
        "Upstream": {
            "type": "object",
            "required": ["name", "transport", "status", "paths", "sessions", "shared"],
            "properties": {
                "name": string,
                "transport": {"type": "string", "enum": ["stdio", "http"]},
                "status": {"type": "string", "enum": ["unknown", "up", "failing"]},
                "paths": {"type": "array", "items": string},
                "sessions": integer,
                "shared": boolean,
                "command": {"type": "array", "items": string},
                "processes": integer,
                "url": string,
            },
        },
        "Session": {
            "type": "object",
            "required": ["id", "upstream", "state", "created_at", "last_seen", "messages", "errors", "listening"],
            "properties": {
                "id": string,
                "upstream": string,
                "protocol_version": nullable_string,
                "client_info": {"type": "object", "nullable": True},
                "client_capabilities": {"type": "object", "nullable": True},
                "principal": nullable_string,
                "created_at": {"type": "number"},
                "last_seen": {"type": "number"},
                "messages": integer,
                "errors": integer,
                "state": {"type": "string", "enum": ["initializing", "active", "closed", "expired"]},
                "tags": {"type": "array", "items": string},
                "event_cursor": nullable_string,
                "owner": nullable_string,
                "listening": boolean,
            },
        },
        "Reload": {
            "type": "object",
            "required": ["reloaded", "interceptors"],
            "properties": {
                "reloaded": boolean,
                "interceptors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["interceptor", "reloaded", "error"],
                        "properties": {"interceptor": string, "reloaded": boolean, "error": nullable_string},
                    },
                },
            },
        },
    }
    sessions_list = {
        "type": "object",
        "required": ["sessions", "total"],
        "properties": {"sessions": {"type": "array", "items": _ref("Session")}, "total": integer},
    }
    upstreams_list = {
        "type": "object",
        "required": ["upstreams"],
        "properties": {"upstreams": {"type": "array", "items": _ref("Upstream")}},
    }
    query = [
        {"name": "upstream", "in": "query", "required": False, "schema": string},
        {"name": "limit", "in": "query", "required": False, "schema": {**integer, "minimum": 1, "maximum": MAX_LIMIT}},
    ]
    first_session = {"session_id": "$response.body#/sessions/0/id"}
    listed = _json(sessions_list, "Sessions")
    listed["links"] = {
        "ShowFirst": {"operationId": "getSession", "parameters": first_session},
        "TerminateFirst": {"operationId": "terminateSession", "parameters": first_session},
    }
    paths = {
        "/openapi.json": {
            "get": _operation("openapi", "This document", {"200": _json({"type": "object"}, "OpenAPI 3.0")})
        },
        "/upstreams": {
            "get": _operation("listUpstreams", "Upstreams with status", {"200": _json(upstreams_list, "Upstreams")})
        },
        "/sessions": {
            "get": _operation(
                "listSessions",
                "Live sessions, oldest first",
                {"200": listed, "400": _json(_ref("Error"), "Bad limit")},
                parameters=query,
            )
        },
        "/sessions/{session_id}": {
            "parameters": [session_id],
            "get": _operation(
                "getSession", "One live session", {"200": _json(_ref("Session"), "The session"), "404": not_found}
            ),
            "delete": _operation(
                "terminateSession",
                "Terminate a session",
                {"204": {"description": "Closed, with its upstream channel"}, "404": not_found},
            ),
        },
        "/rules/reload": {
            "post": _operation(
                "reloadRules",
                "Reload every interceptor that can (the rules); the old configuration stays on failure",
                {"200": _json(_ref("Reload"), "All reloaded"), "422": _json(_ref("Reload"), "Some refused")},
            )
        },
        "/config": {
            "get": _operation(
                "getConfig", "The effective config, secrets masked", {"200": _json({"type": "object"}, "")}
            )
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "ShadowProxy admin API", "version": "1"},
        "servers": [{"url": PREFIX}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
        },
    }


def register(app: web.Application, proxy: Proxy) -> None:
    """Add the admin routes when ``admin`` is configured; raise :class:`ConfigError` when it is invalid."""
    config = proxy.config
    if config.path == PREFIX or config.path.startswith(f"{PREFIX}/"):
        raise ConfigError(f"the MCP path must not be under {PREFIX}/, which is the admin API's", key="path")
    settings = AdminConfig.from_mapping(config.admin, config.source)
    if settings is None:
        return
    api = AdminApi(proxy)
    routes = (
        ("GET", "/openapi.json", api.openapi),
        ("GET", "/upstreams", api.upstreams),
        ("GET", "/sessions", api.sessions),
        ("GET", "/sessions/{session_id}", api.session),
        ("DELETE", "/sessions/{session_id}", api.terminate),
        ("POST", "/rules/reload", api.reload),
        ("GET", "/config", api.config),
    )
    for method, path, handler in routes:
        app.router.add_route(method, PREFIX + path, protected(settings.token, handler))
