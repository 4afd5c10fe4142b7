"""Asking the client's own user about a held call (``by: user``): the proxy's ``elicitation/create`` and its answer.

The request describes the held call (tool, arguments, rule) with a form that has one optional field, a reason;
the user's *accept* approves the call, *decline* or *cancel* denies it. Its id carries the hold's id behind a
prefix no server's request id has, so the front that gets the client's answer can tell it is the proxy's own
and hand it to :meth:`~shadowproxy.control.registry.HoldRegistry.answered` instead of the upstream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from shadowproxy.core.jsonrpc import REQUEST, Message
from shadowproxy.core.record import SessionRecord
from shadowproxy.stores.holds import Hold

Asker = Callable[[Message], Awaitable[bool]]
"""Sends the proxy's own request to the client of the held message; ``False`` when it cannot."""

ID_PREFIX = "shadowproxy-hold-"
STATE_PREFIX = "shadowproxy-hold:"
"""A 2026-07-28 retry's ``requestState`` that names one of the proxy's holds (:mod:`.round_trip`)."""
KEY = "shadowproxy-approval"
"""The key of the proxy's question in an ``InputRequiredResult``'s ``inputRequests``."""
META_KEY = "io.shadowproxy/hold"
ARGUMENTS_SHOWN = 2000
SCHEMA = {
    "type": "object",
    "properties": {
        "reason": {"type": "string", "title": "Reason", "description": "Why you allow or refuse the call (optional)"}
    },
}


async def _in_the_result(question: Message) -> bool:
    raise AssertionError("the round trip's question goes in the result; it is never sent")


ROUND_TRIP: Asker = _in_the_result
"""The ``ask`` of a 2026-07-28 request: the question goes back as an ``InputRequiredResult``
(:mod:`shadowproxy.control.round_trip`), and the client's retry brings the answer."""


def can_elicit(session: SessionRecord | None) -> bool:
    """Whether the client declared the elicitation capability in its ``initialize``."""
    capabilities = session.client_capabilities if session is not None else None
    return isinstance(capabilities, dict) and capabilities.get("elicitation") is not None


def question(hold: Hold) -> Message:
    """The ``elicitation/create`` request that asks the user to decide ``hold``."""
    shown = orjson.dumps(hold.get("arguments")).decode()
    if len(shown) > ARGUMENTS_SHOWN:
        shown = shown[:ARGUMENTS_SHOWN] + "…"
    what = f"the call to tool {hold['tool']!r} with arguments {shown}" if hold.get("tool") else repr(hold["method"])
    params = {
        "message": f"Allow {what}? It is held by rule {hold['rule']!r} until you decide.",
        "requestedSchema": SCHEMA,
        "_meta": {META_KEY: {key: hold.get(key) for key in ("id", "rule", "method", "tool", "arguments")}},
    }
    data = {"jsonrpc": "2.0", "id": ID_PREFIX + hold["id"], "method": "elicitation/create", "params": params}
    return Message(REQUEST, data)


def input_required(hold: Hold) -> dict[str, Any]:
    """The ``InputRequiredResult`` that asks a 2026-07-28 client's user to decide ``hold``."""
    asked = {"method": "elicitation/create", "params": {"mode": "form", **question(hold).params}}  # type: ignore[dict-item]
    return {"resultType": "input_required", "inputRequests": {KEY: asked}, "requestState": STATE_PREFIX + hold["id"]}


def hold_answered(message: Message) -> str | None:
    """The id of the hold a client's reply answers, when it is the reply to the proxy's own question."""
    request_id = message.id
    if isinstance(request_id, str) and request_id.startswith(ID_PREFIX) and message.is_reply:
        return request_id[len(ID_PREFIX) :]
    return None


def decision_of(message: Message) -> tuple[str, str | None]:
    """``approve`` or ``deny``, and the user's reason, from the client's answer to :func:`question`."""
    if message.error is not None:
        return "deny", "the client could not ask its user"
    return decision_of_result(message.result if isinstance(message.result, dict) else {})


def decision_of_result(result: dict[str, Any]) -> tuple[str, str | None]:
    """``approve`` or ``deny``, and the user's reason, from an ``ElicitResult``."""
    content = result.get("content")
    reason = content.get("reason") if isinstance(content, dict) else None
    if result.get("action") == "accept":
        return "approve", reason if isinstance(reason, str) else None
    action = result.get("action")
    return "deny", reason if isinstance(reason, str) else f"the user chose {action!r}" if action else None
