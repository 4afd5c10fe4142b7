"""Properties of the JSON-RPC codec: no input crashes it, every error is a JSON-RPC error, valid messages round-trip."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from shadowproxy.core.errors import INVALID_REQUEST, PARSE_ERROR, JsonRpcError
from shadowproxy.core.jsonrpc import (
    Kind,
    Message,
    _peel,
    _structure,
    decode,
    error_response,
    request_id_of,
    result_response,
)

from .strategies import IDS, JSON, OBJECTS, SIGNED_64, messages

KINDS = {
    "request": Kind.REQUEST,
    "notification": Kind.NOTIFICATION,
    "response": Kind.RESPONSE,
    "error": Kind.ERROR,
}


def kind_of(data: dict[str, Any]) -> Kind:
    if "method" in data:
        return Kind.REQUEST if "id" in data else Kind.NOTIFICATION
    return Kind.RESPONSE if "result" in data else Kind.ERROR


def decode_or_error(raw: bytes) -> Message | list[Message] | JsonRpcError:
    try:
        return decode(raw)
    except JsonRpcError as exc:
        assert exc.code in (PARSE_ERROR, INVALID_REQUEST)
        assert isinstance(exc.to_error()["message"], str)
        return exc


@given(st.binary(max_size=512))
def test_any_bytes_decode_or_fail_with_a_jsonrpc_error(raw: bytes) -> None:
    decode_or_error(raw)
    found = request_id_of(raw)
    assert found is None or (isinstance(found, str | int) and not isinstance(found, bool))


@given(JSON)
def test_any_json_value_decodes_or_is_an_invalid_request(value: Any) -> None:
    raw = orjson.dumps(value)
    result = decode_or_error(raw)
    if isinstance(result, JsonRpcError):
        assert result.code == INVALID_REQUEST, "valid JSON is never a parse error"
    elif isinstance(result, Message):
        assert result.data == value and result.to_bytes() is raw


@given(OBJECTS, st.sampled_from(["jsonrpc", "id", "method", "params", "result", "error"]), JSON)
def test_messages_with_junk_members_never_crash(base: dict[str, Any], key: str, junk: Any) -> None:
    data = {"jsonrpc": "2.0", "id": 1, "method": "ping", **base, key: junk}
    decode_or_error(orjson.dumps(data))


@given(messages())
def test_valid_messages_round_trip(data: dict[str, Any]) -> None:
    raw = orjson.dumps(data)
    message = decode(raw)
    assert isinstance(message, Message)
    assert message.kind is kind_of(data)
    assert message.to_bytes() is raw, "an unmodified message keeps its bytes"
    assert message.id == data.get("id") and message.method == data.get("method")
    again = decode(message.to_bytes())
    assert isinstance(again, Message) and again.data == data


@given(messages(), OBJECTS)
def test_evolve_changes_only_the_copy(data: dict[str, Any], params: dict[str, Any]) -> None:
    raw = orjson.dumps(data)
    message = decode(raw)
    assert isinstance(message, Message)
    if message.kind not in (Kind.REQUEST, Kind.NOTIFICATION):
        return
    changed = message.evolve(params=params)
    assert message.to_bytes() is raw
    decoded = decode(changed.to_bytes())
    assert isinstance(decoded, Message) and decoded.params == params and decoded.kind is message.kind


@given(st.lists(messages(), min_size=1, max_size=5))
def test_batches_decode_to_their_messages(items: list[dict[str, Any]]) -> None:
    decoded = decode(orjson.dumps(items))
    assert isinstance(decoded, list)
    assert [message.data for message in decoded] == items


@given(IDS, JSON, st.integers(min_value=-(2**31), max_value=2**31), st.text())
def test_replies_the_proxy_builds_are_valid(request_id: Any, result: Any, code: int, text: str) -> None:
    ok = decode(result_response(request_id, result).to_bytes())
    assert isinstance(ok, Message) and ok.kind is Kind.RESPONSE and ok.id == request_id
    failed = decode(error_response(request_id, JsonRpcError(code, text)).to_bytes())
    assert isinstance(failed, Message) and failed.kind is Kind.ERROR
    assert failed.error == {"code": code, "message": text}


# Strings made of what can fool a byte scan of JSON: brackets, quotes and backslashes, escaped in every way.
TRICKY = st.text(alphabet='[]{}"\\/ a\n\u00e9', max_size=12)
TRICKY_JSON = st.recursive(
    st.none() | SIGNED_64 | TRICKY,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TRICKY, children, max_size=4),
    max_leaves=30,
)


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


@given(TRICKY_JSON, st.booleans())
def test_the_nesting_scan_measures_any_json_exactly(value: Any, ascii_only: bool) -> None:
    for raw in (orjson.dumps(value), json.dumps(value, ensure_ascii=ascii_only, indent=1).encode()):
        assert _peel(_structure(raw), 40) == depth_of(value)
        assert _peel(_structure(raw), depth_of(value) - 1) is None or depth_of(value) == 0
