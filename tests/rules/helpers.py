"""Real messages, contexts, sessions and rules files for the rules engine tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from shadowproxy.core.chain import Direction, MessageContext
from shadowproxy.core.jsonrpc import Message, decode
from shadowproxy.core.record import SessionRecord
from shadowproxy.interceptors.rules import RulesInterceptor, create

C2S = Direction.CLIENT_TO_SERVER
S2C = Direction.SERVER_TO_CLIENT


def message(data: dict[str, Any]) -> Message:
    """A message decoded from bytes, as the proxy gets it."""
    decoded = decode(orjson.dumps(data))
    assert isinstance(decoded, Message)
    return decoded


def call(tool: str, arguments: dict[str, Any] | None = None, id: int = 1, **params: Any) -> Message:
    return message(
        {
            "jsonrpc": "2.0",
            "id": id,
            "method": "tools/call",
            "params": {"name": tool, "arguments": arguments or {}, **params},
        }
    )


def request(method: str, params: dict[str, Any] | None = None, id: int = 1) -> Message:
    data: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        data["params"] = params
    return message(data)


def notification(method: str, params: dict[str, Any] | None = None) -> Message:
    data: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        data["params"] = params
    return message(data)


def reply(result: Any, id: int = 1) -> Message:
    return message({"jsonrpc": "2.0", "id": id, "result": result})


def error_reply(code: int, text: str, id: int = 1, data: Any = None) -> Message:
    error: dict[str, Any] = {"code": code, "message": text}
    if data is not None:
        error["data"] = data
    return message({"jsonrpc": "2.0", "id": id, "error": error})


def text_result(text: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": False}


def session(**fields: Any) -> SessionRecord:
    fields.setdefault("id", "s-1")
    return SessionRecord(**fields)


def ctx(
    msg: Message,
    direction: Direction = C2S,
    *,
    request_message: Message | None = None,
    session_record: SessionRecord | None = None,
    principal: str | None = None,
    upstream: str = "default",
) -> MessageContext:
    return MessageContext(
        msg, direction, session=session_record, principal=principal, upstream=upstream, request=request_message
    )


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def interceptor(tmp_path: Path, text: str, name: str = "rules.yaml", **options: Any) -> RulesInterceptor:
    """A rules interceptor over one file written to ``tmp_path``, not watching unless asked."""
    file = write(tmp_path / name, text)
    options.setdefault("watch", False)
    return create({"paths": [str(file)], **options})
