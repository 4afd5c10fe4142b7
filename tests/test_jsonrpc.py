"""The codec: bytes decoded once, original bytes kept until a change, precise errors."""

from __future__ import annotations

import orjson
import pytest

from shadowproxy.core.errors import INVALID_REQUEST, PARSE_ERROR, JsonRpcError
from shadowproxy.core.jsonrpc import Kind, Message, decode, error_response, request_id_of


def test_kinds_and_original_bytes() -> None:
    raw = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}'
    message = decode(raw)
    assert isinstance(message, Message)
    assert message.kind is Kind.REQUEST and message.id == 1 and message.method == "tools/call"
    assert message.to_bytes() is raw
    changed = message.evolve(params={"name": "y"})
    assert changed.raw is None
    assert orjson.loads(changed.to_bytes())["params"] == {"name": "y"}
    assert message.to_bytes() is raw


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b'{"jsonrpc":"2.0","method":"notifications/initialized"}', Kind.NOTIFICATION),
        (b'{"jsonrpc":"2.0","id":"a","result":{}}', Kind.RESPONSE),
        (b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}', Kind.ERROR),
    ],
)
def test_other_kinds(raw: bytes, kind: Kind) -> None:
    message = decode(raw)
    assert isinstance(message, Message) and message.kind is kind


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", PARSE_ERROR),
        (b"{", PARSE_ERROR),
        (b"\xc3\x28", PARSE_ERROR),
        (b"1", INVALID_REQUEST),
        (b"[]", INVALID_REQUEST),
        (b'{"id":1,"method":"x"}', INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":{},"method":"x"}', INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":null,"method":"x"}', INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":1,"method":"x","params":3}', INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1,"message":"m"}}', INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":1,"error":{"code":"1","message":"m"}}', INVALID_REQUEST),
    ],
)
def test_errors(raw: bytes, code: int) -> None:
    with pytest.raises(JsonRpcError) as caught:
        decode(raw)
    assert caught.value.code == code


def test_batch_and_ids() -> None:
    batch = decode(b'[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b"}]')
    assert isinstance(batch, list) and [m.kind for m in batch] == [Kind.REQUEST, Kind.NOTIFICATION]
    assert request_id_of(b'{"jsonrpc":"1.0","id":"k"}') == "k"
    assert request_id_of(b"{") is None
    error = error_response(5, JsonRpcError(-32000, "no", {"why": 1}))
    assert orjson.loads(error.to_bytes()) == {
        "jsonrpc": "2.0",
        "id": 5,
        "error": {"code": -32000, "message": "no", "data": {"why": 1}},
    }
