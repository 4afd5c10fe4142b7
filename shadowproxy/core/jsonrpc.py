"""The JSON-RPC codec: bytes are decoded once into a :class:`Message`.

A message keeps the bytes it arrived as. Nothing on the proxy's path re-encodes a
message that no one changed: :meth:`Message.to_bytes` hands back the original
bytes until :meth:`Message.evolve` makes a modified copy.
"""

from __future__ import annotations

import enum
import re
from typing import Any

import orjson

from shadowproxy.core import exact, limit_hits
from shadowproxy.core.errors import INVALID_REQUEST, PARSE_ERROR, JsonRpcError

RequestId = str | int
# orjson reads an integer beyond 64 bits as a float; only a message with a run of 19 digits can hold one.
_LONG_NUMBER = re.compile(rb"[0-9]{19}")

_max_depth = limit_hits.DEFAULT_JSON_DEPTH


def set_max_depth(depth: int) -> None:
    """The nesting bound every :func:`decode` enforces (``limits.max_json_depth``); set once at startup."""
    global _max_depth
    _max_depth = depth


class Kind(enum.Enum):
    REQUEST = "request"
    RESPONSE = "response"
    ERROR = "error"
    NOTIFICATION = "notification"

    # Members are singletons compared by identity: hashed by identity in C, not by Enum's Python-level hash of the
    # name (a call per dict lookup keyed by a kind, as the rules' index is).
    __hash__ = object.__hash__


# Looking up an enum member costs a Python-level call on 3.11 (about 0.2 us, ten times a global): the per-message
# code compares against these.
REQUEST, RESPONSE, ERROR, NOTIFICATION = Kind.REQUEST, Kind.RESPONSE, Kind.ERROR, Kind.NOTIFICATION


class Message:
    """One JSON-RPC message: its kind, its decoded object and the bytes it came as."""

    __slots__ = ("data", "kind", "memo", "origin", "raw")

    def __init__(self, kind: Kind, data: dict[str, Any], raw: bytes | None = None) -> None:
        self.kind = kind
        self.data = data
        self.raw = raw
        # The message as it arrived, for a modified copy: what its numbers were before orjson read them.
        self.origin: Message | None = None
        self.memo: object = None
        """What one hook of the chain (the rules) decided of a request, read back beside its reply."""

    @property
    def id(self) -> RequestId | None:
        return self.data.get("id")

    @property
    def method(self) -> str | None:
        return self.data.get("method")

    @property
    def params(self) -> dict[str, Any] | None:
        return self.data.get("params")

    @property
    def result(self) -> Any:
        return self.data.get("result")

    @property
    def error(self) -> dict[str, Any] | None:
        return self.data.get("error")

    @property
    def is_request(self) -> bool:
        return self.kind is REQUEST

    @property
    def is_reply(self) -> bool:
        """A response or an error: the end of a request."""
        kind = self.kind
        return kind is RESPONSE or kind is ERROR

    @property
    def size(self) -> int:
        return len(self.to_bytes())

    def to_bytes(self) -> bytes:
        """The wire form: the original bytes when the message is unmodified."""
        if self.raw is None:
            origin = self.origin
            if origin is not None and origin.raw is not None and _LONG_NUMBER.search(origin.raw):
                self.raw = exact.encode(self.data, origin.data, origin.raw)
            else:
                try:
                    self.raw = orjson.dumps(self.data)
                except TypeError:
                    # An integer beyond 64 bits that an interceptor put in: the standard library writes it exactly.
                    self.raw = exact.dumps(self.data)
        return self.raw

    def evolve(self, **members: Any) -> Message:
        """A modified copy; a member given as ``None`` is removed."""
        data = dict(self.data)
        for key, value in members.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        copy = classify(data, None)
        copy.origin = self.origin if self.origin is not None else self if self.raw is not None else None
        return copy

    def __repr__(self) -> str:
        return f"Message({self.kind.value}, id={self.id!r}, method={self.method!r})"


def classify(data: Any, raw: bytes | None) -> Message:
    """Check that ``data`` is one JSON-RPC 2.0 message and say what kind."""
    if not isinstance(data, dict):
        raise JsonRpcError(INVALID_REQUEST, "a JSON-RPC message must be a JSON object")
    if data.get("jsonrpc") != "2.0":
        raise JsonRpcError(INVALID_REQUEST, 'the "jsonrpc" member must be exactly "2.0"')
    method = data.get("method")
    has_id = "id" in data
    if has_id:
        value = data["id"]
        if type(value) is not int and type(value) is not str:  # the usual ids pass without a call
            _check_id(value, allow_null="method" not in data)
    if method is not None:
        if not isinstance(method, str) or not method:
            raise JsonRpcError(INVALID_REQUEST, 'the "method" member must be a non-empty string')
        params = data.get("params")
        if params is not None and not isinstance(params, dict | list):
            raise JsonRpcError(INVALID_REQUEST, 'the "params" member must be an object')
        return Message(REQUEST if has_id else NOTIFICATION, data, raw)
    if not has_id:
        raise JsonRpcError(INVALID_REQUEST, 'a message needs a "method" or an "id"')
    if "result" in data:
        if "error" in data:
            raise JsonRpcError(INVALID_REQUEST, 'a response has "result" or "error", not both')
        return Message(RESPONSE, data, raw)
    error = data.get("error")
    if isinstance(error, dict) and isinstance(error.get("code"), int) and isinstance(error.get("message"), str):
        return Message(ERROR, data, raw)
    raise JsonRpcError(INVALID_REQUEST, 'a response needs "result" or an "error" with an integer code and a message')


def _check_id(value: Any, *, allow_null: bool) -> None:
    if value is None and allow_null:
        return
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise JsonRpcError(INVALID_REQUEST, 'the "id" member must be a string or an integer')


def decode(raw: bytes) -> Message | list[Message]:
    """Decode one message or a batch (a JSON array) from ``raw``.

    Raises :class:`JsonRpcError` with ``PARSE_ERROR`` for bytes that are not
    JSON (invalid UTF-8 included) and ``INVALID_REQUEST`` for JSON that is not
    JSON-RPC or nests deeper than the depth limit.
    """
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit exceeded"):
            raise _too_deep() from None
        raise JsonRpcError(PARSE_ERROR, f"parse error: {exc}") from None
    if too_deep(raw, data, _max_depth):
        raise _too_deep()
    if isinstance(data, list):
        if not data:
            raise JsonRpcError(INVALID_REQUEST, "an empty batch is not a valid request")
        return [classify(item, None) for item in data]
    return classify(data, raw)


def _too_deep() -> JsonRpcError:
    limit_hits.hit("json_depth")
    return JsonRpcError(INVALID_REQUEST, f"JSON nested deeper than {_max_depth} levels (limits.max_json_depth)")


def request_id_of(raw: bytes, *, replies_only: bool = False) -> RequestId | None:
    """The id of a message that failed validation, when one can still be read.

    ``replies_only``: only the id of an answer, not of a request (a message with a ``method``).
    """
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, dict) and not (replies_only and "method" in data):
        value = data.get("id")
        if isinstance(value, str | int) and not isinstance(value, bool):
            return value
    return None


def error_response(request_id: RequestId | None, error: JsonRpcError) -> Message:
    data = {"jsonrpc": "2.0", "id": request_id, "error": error.to_error()}
    return Message(ERROR, data, None)


def result_response(request_id: RequestId, result: Any) -> Message:
    return Message(RESPONSE, {"jsonrpc": "2.0", "id": request_id, "result": result}, None)


def notification(method: str, params: dict[str, Any] | None = None) -> Message:
    data: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        data["params"] = params
    return Message(NOTIFICATION, data, None)


# The nesting check: brackets become parentheses, and every byte but them and quotes is deleted.
_PARENS = bytes.maketrans(b"[]{}", b"()()")
_NOT_STRUCTURE = bytes(set(range(256)) - set(b'"[]{}'))
_SMALL = 4096
"""Up to this size a message's brackets are counted in it; a larger one's in its structure, made anyway."""
_PEEL = 16
"""Levels :func:`_peel` takes off before a message goes to the walk: a cap on its passes for a high limit."""


def too_deep(raw: bytes, data: Any, limit: int) -> bool:
    """Whether ``data`` (decoded from ``raw``) nests deeper than ``limit``.

    All in C passes over the bytes, no Python per byte or per value: a message with at most ``limit`` brackets is
    not looked at further; for the others :func:`_structure` keeps the brackets and :func:`_peel` measures their
    depth, up to 16 levels; one nested deeper than that with a higher limit is walked. The walk of every message
    with more than ``limit`` brackets cost more than decoding it: for a 53 KB ``tools/list``, 3.3M instructions
    against orjson's 2.5M; the passes take 1.2M (callgrind; ``benchmarks/README.md``, large messages).
    """
    if len(raw) <= _SMALL:
        # The usual message: two counts (cheaper a byte than the structure, whose translate has a setup) and done.
        if raw.count(b"[") + raw.count(b"{") <= limit:
            return False
        structure = _structure(raw)
    else:
        structure = _structure(raw)
        if structure.count(b"(") <= limit:
            return False
    peel = min(limit, _PEEL)
    if _peel(structure, peel) is not None:
        return False
    return peel == limit or _deeper(data, limit)


def _structure(raw: bytes) -> bytes:
    """The brackets of valid JSON ``raw`` as parentheses, with quotes still around those inside strings.

    Escaped backslashes go first, then escaped quotes, so that every quote left opens or closes a string; then
    every byte but quotes and brackets goes. Two adjacent quotes are an empty string or two strings side by side:
    removing them keeps what was inside a string inside one.
    """
    if b"\\" in raw:
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    return raw.translate(_PARENS, _NOT_STRUCTURE).replace(b'""', b"")


def _peel(structure: bytes, levels: int) -> int | None:
    """The depth of ``structure`` if it is at most ``levels``, else ``None``.

    A quote left encloses the brackets of a string, which the split drops. What remains is balanced parentheses,
    and each ``replace`` removes the innermost pairs: exactly one level.
    """
    if b'"' in structure:
        structure = b"".join(structure.split(b'"')[::2])
    for depth in range(levels):
        if not structure:
            return depth
        structure = structure.replace(b"()", b"")
    return levels if not structure else None


def _deeper(node: Any, budget: int) -> bool:
    if budget == 0:
        return True
    for value in node.values() if type(node) is dict else node:
        kind = type(value)
        if (kind is dict or kind is list) and _deeper(value, budget - 1):
            return True
    return False
