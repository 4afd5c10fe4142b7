"""The approvals and breakpoints paths of the admin API's OpenAPI document (:mod:`.approvals` serves them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shadowproxy.ops.approvals import DECISION_FIELDS, MAX_LIMIT

Part = dict[str, Any]
STRING: Part = {"type": "string"}
NULLABLE_STRING: Part = {"type": "string", "nullable": True}
TIME: Part = {"type": "number"}
STATES = ["pending", "approved", "denied", "answered", "expired"]
DIRECTIONS = ["both", "client_to_server", "server_to_client"]

SCHEMAS: dict[str, Part] = {
    "Hold": {
        "type": "object",
        "required": ["id", "state", "kind", "direction", "upstream", "instance", "created_at", "expires_at"],
        "properties": {
            "id": STRING,
            "state": {"type": "string", "enum": STATES},
            "kind": {"type": "string", "enum": ["approval", "breakpoint"]},
            "rule": NULLABLE_STRING,
            "by": {"type": "string", "enum": ["operator", "user"]},
            "direction": {"type": "string", "enum": ["client_to_server", "server_to_client"]},
            "method": NULLABLE_STRING,
            "tool": NULLABLE_STRING,
            "arguments": {"nullable": True},
            "message": {"type": "object"},
            "session": NULLABLE_STRING,
            "principal": NULLABLE_STRING,
            "upstream": STRING,
            "instance": STRING,
            "created_at": TIME,
            "expires_at": TIME,
            "on_timeout": {"type": "string", "enum": ["block", "approve"]},
            "decision": {"type": "string", "enum": ["approve", "deny", "answer"]},
            "decider": {"type": "string", "description": "operator, user, timeout, restart, shutdown or client"},
            "decided_by": STRING,
            "reason": NULLABLE_STRING,
            "decided_at": TIME,
            "edited": {"type": "object"},
            "result": {"nullable": True},
        },
    },
    "Breakpoint": {
        "type": "object",
        "required": ["id", "direction", "method", "tool", "session", "upstream"],
        "properties": {
            "id": STRING,
            "direction": {"type": "string", "enum": DIRECTIONS},
            "method": NULLABLE_STRING,
            "tool": NULLABLE_STRING,
            "session": NULLABLE_STRING,
            "upstream": NULLABLE_STRING,
        },
    },
}

DECISION: Part = {
    "type": "object",
    "required": ["decision"],
    "additionalProperties": False,
    "properties": {
        "decision": {"type": "string", "enum": ["approve", "deny", "answer"]},
        "arguments": {"type": "object", "description": "approve: the tool call's new arguments"},
        "message": {"type": "object", "description": "approve: the whole message, edited"},
        "result": {"type": "object", "description": "answer: the result the request gets instead"},
        "reason": STRING,
        "by": {"type": "string", "description": "who decides, for the audit (default operator)"},
    },
}
assert set(DECISION["properties"]) == DECISION_FIELDS

NEW_BREAKPOINT: Part = {
    "type": "object",
    "additionalProperties": False,
    "description": "Every part given must match; a part left out or null matches anything",
    "properties": {
        "direction": {"type": "string", "enum": [*DIRECTIONS, None], "nullable": True},
        "method": {**NULLABLE_STRING, "description": "glob"},
        "tool": {**NULLABLE_STRING, "description": "glob, of tools/call"},
        "session": {**NULLABLE_STRING, "description": "session id prefix"},
        "upstream": NULLABLE_STRING,
    },
}


def paths(
    operation: Callable[..., Part], json: Callable[[Part, str], Part], ref: Callable[[str], Part]
) -> dict[str, Part]:
    """The paths, built with the document's own helpers (``operation`` adds the token and its 401)."""
    error = ref("Error")
    no_store = json(error, "The store cannot be reached")
    hold_id = {
        "name": "hold_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
    }
    breakpoint_id = {"name": "breakpoint_id", "in": "path", "required": True, "schema": STRING}
    listing = {
        "type": "object",
        "required": ["approvals"],
        "properties": {"approvals": {"type": "array", "items": ref("Hold")}},
    }
    breakpoints = {
        "type": "object",
        "required": ["breakpoints"],
        "properties": {"breakpoints": {"type": "array", "items": ref("Breakpoint")}},
    }
    query = [
        {"name": "pending", "in": "query", "required": False, "schema": {"type": "string", "enum": ["true", "false"]}},
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
        },
    ]
    decided = {"200": json(ref("Hold"), "Settled as asked"), "400": json(error, "A bad decision or body")}
    decided |= {"404": json(error, "No held message with this id"), "409": json(error, "Already settled")}
    return {
        "/approvals": {
            "get": operation(
                "listApprovals",
                "Held messages (approvals and breakpoints), newest first",
                {"200": json(listing, "Held messages"), "400": json(error, "Bad limit or pending"), "503": no_store},
                parameters=query,
            )
        },
        "/approvals/stream": {
            "get": operation(
                "streamApprovals",
                "Live feed of holds as they are made and settled (SSE), pending ones first",
                {
                    "200": {
                        "description": "An endless text/event-stream of `hold` events",
                        "content": {"text/event-stream": {"schema": STRING}},
                    }
                },
            )
        },
        "/approvals/{hold_id}": {
            "parameters": [hold_id],
            "get": operation(
                "getApproval",
                "One held message, whole",
                {
                    "200": json(ref("Hold"), "The hold"),
                    "404": json(error, "No held message with this id"),
                    "503": no_store,
                },
            ),
            "post": operation(
                "decideApproval",
                "Approve (with new arguments or an edited message), deny, or answer a held message",
                {**decided, "503": no_store},
                requestBody={"required": True, "content": {"application/json": {"schema": DECISION}}},
            ),
        },
        "/breakpoints": {
            "get": operation(
                "listBreakpoints", "This instance's breakpoints", {"200": json(breakpoints, "Breakpoints")}
            ),
            "post": operation(
                "setBreakpoint",
                "Hold every message that matches the filter, on this instance",
                {"201": json(ref("Breakpoint"), "Set"), "400": json(error, "A bad filter")},
                requestBody={"required": True, "content": {"application/json": {"schema": NEW_BREAKPOINT}}},
            ),
        },
        "/breakpoints/{breakpoint_id}": {
            "parameters": [breakpoint_id],
            "delete": operation(
                "clearBreakpoint",
                "Remove a breakpoint (what it holds stays held until decided)",
                {"204": {"description": "Removed"}, "404": json(error, "No breakpoint with this id")},
            ),
        },
    }
