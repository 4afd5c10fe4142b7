"""The OpenAPI 3.0 description of the admin API, served at ``/_shadowproxy/openapi.json``."""

from __future__ import annotations

from typing import Any

from shadowproxy.ops import admin_rules, admin_summary, approvals_openapi, pins, tap_stream, tapes_api

PREFIX = "/_shadowproxy"
MAX_LIMIT = 10_000


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
            "required": [
                "name",
                "transport",
                "status",
                "circuit",
                "restarts",
                "crashes",
                "paths",
                "sessions",
                "shared",
            ],
            "properties": {
                "name": string,
                "transport": {"type": "string", "enum": ["stdio", "http"]},
                "status": {"type": "string", "enum": ["unknown", "starting", "up", "failing", "down"]},
                "problem": nullable_string,
                "circuit": {"type": "string", "enum": ["closed", "half_open", "open"], "nullable": True},
                "restarts": integer,
                "crashes": integer,
                "paths": {"type": "array", "items": string},
                "sessions": integer,
                "shared": boolean,
                "command": {"type": "array", "items": string},
                "processes": integer,
                "spares": {
                    "type": "object",
                    "description": "Children started ahead for new sessions (spare, or one once the era bridge pools "
                    "sessions here): started and not yet taken, how many are kept, how many sessions took one",
                    "properties": {"ready": integer, "target": integer, "taken": integer},
                },
                "url": string,
                "replicas": {"type": "integer", "description": "How many replicas (urls, or replicas with share)"},
                "replicas_down": {
                    "type": "object",
                    "description": "The replicas known down now, by index, and why",
                    "additionalProperties": string,
                },
                "urls": {"type": "array", "items": string},
                "bridge": {
                    "type": "object",
                    "description": "The era bridge (bridge: auto or always): whether 2026-07-28 requests are bridged "
                    "(null: not yet known), its upstream sessions and parked requests",
                    "properties": {
                        "mode": {"type": "string", "enum": ["auto", "always"]},
                        "bridged": {"type": "boolean", "nullable": True},
                        "upstream_sessions": integer,
                        "parked": integer,
                    },
                },
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
                "transport": nullable_string,
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
    every_instance = {
        "name": "all",
        "in": "query",
        "required": False,
        "description": "In a cluster: every instance, not only this one",
        "schema": {"type": "string", "enum": ["true", "false"]},
    }
    query = [
        {"name": "upstream", "in": "query", "required": False, "schema": string},
        {"name": "limit", "in": "query", "required": False, "schema": {**integer, "minimum": 1, "maximum": MAX_LIMIT}},
        every_instance,
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
        "/upstreams/{name}/restart": {
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": string}],
            "post": _operation(
                "restartUpstream",
                "Restart a stdio upstream's shared and stateless processes, and close its circuit",
                {
                    "200": _json(_ref("Upstream"), "Restarted"),
                    "404": _json(_ref("Error"), "No upstream with this name"),
                    "409": _json(_ref("Error"), "A URL upstream, which the proxy does not run"),
                    "502": _json(_ref("Error"), "The server did not start"),
                },
            ),
        },
        "/sessions": {
            "get": _operation(
                "listSessions",
                "Live sessions, oldest first",
                {"200": listed, "400": _json(_ref("Error"), "Bad limit or all")},
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
                {
                    "200": _json(_ref("Reload"), "All reloaded"),
                    "202": _json(
                        {"type": "object", "required": ["instances"], "properties": {"instances": integer}},
                        "In a cluster, with all=true: the number of instances asked to reload",
                    ),
                    "400": _json(_ref("Error"), "Bad parameter"),
                    "422": _json(_ref("Reload"), "Some refused"),
                },
                parameters=[every_instance],
            )
        },
        "/config": {
            "get": _operation(
                "getConfig", "The effective config, secrets masked", {"200": _json({"type": "object"}, "")}
            )
        },
        "/tap": {
            "get": _operation(
                "tap",
                "Live feed of every message (SSE)",
                tap_stream.OPENAPI_RESPONSES,
                parameters=tap_stream.OPENAPI_QUERY,
            )
        },
        **tapes_api.OPENAPI_PATHS,
        **admin_summary.OPENAPI_PATHS,
        **admin_rules.OPENAPI_PATHS,
        **pins.openapi_paths(),
        **approvals_openapi.paths(_operation, _json, _ref),
    }
    schemas |= approvals_openapi.SCHEMAS
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
