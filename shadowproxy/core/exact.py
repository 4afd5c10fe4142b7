"""Numbers written back exactly as they came, in a message the proxy re-encodes.

orjson reads an integer beyond 64 bits as the nearest float (``1180591620717411303424`` becomes
``1.1805916207174113e+21``) and cannot write such an integer at all. An unmodified message is forwarded as
its original bytes, so this matters only for a modified copy (a rule rewrote it, or a shared server's
request id was renumbered): each float that orjson made from such an integer is written back as the
integer the sender wrote. Floats keep their identity through copies (``copy.deepcopy`` and dict
rebuilding share them), which is how they are recognised; a float with the same value that is not the
same object (an interceptor re-parsed the message) cannot be told from a real float, so the rewrite is
refused rather than sent with a silently different number.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from shadowproxy.core.errors import INTERNAL_ERROR, JsonRpcError


def encode(data: Any, original: Any, raw: bytes) -> bytes:
    """``data`` (a modified copy of ``original``, decoded by orjson from ``raw``) with its long integers exact."""
    long_integers: dict[int, int] = {}
    _pair(original, json.loads(raw), long_integers)
    if not long_integers:
        return orjson.dumps(data)
    rounded = {original_float for original_float in _floats(original) if id(original_float) in long_integers}
    return dumps(_restore(data, long_integers, rounded))


def dumps(data: Any) -> bytes:
    """The compact JSON of ``data``, integers of any size included (slower than orjson; for the rare case)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _pair(decoded: Any, exact: Any, found: dict[int, int]) -> None:
    """Note, by object id, each float in ``decoded`` where the exact parse has an integer."""
    kind = type(decoded)
    if kind is float:
        if type(exact) is int:
            found[id(decoded)] = exact
    elif kind is dict and type(exact) is dict:
        for key, value in decoded.items():
            if key in exact:
                _pair(value, exact[key], found)
    elif kind is list and type(exact) is list:
        for value, exact_value in zip(decoded, exact, strict=False):
            _pair(value, exact_value, found)


def _floats(node: Any) -> list[float]:
    kind = type(node)
    if kind is float:
        return [node]
    if kind is dict:
        return [number for value in node.values() for number in _floats(value)]
    if kind is list:
        return [number for value in node for number in _floats(value)]
    return []


def _restore(node: Any, long_integers: dict[int, int], rounded: set[float]) -> Any:
    kind = type(node)
    if kind is float:
        exact = long_integers.get(id(node))
        if exact is not None:
            return exact
        if node in rounded:
            raise JsonRpcError(
                INTERNAL_ERROR,
                "a rewrite of this message would change an integer beyond 64 bits into a float; it was refused",
            )
        return node
    if kind is dict:
        return {key: _restore(value, long_integers, rounded) for key, value in node.items()}
    if kind is list:
        return [_restore(value, long_integers, rounded) for value in node]
    return node
