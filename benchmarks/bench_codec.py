"""Micro benchmarks of the JSON-RPC codec: decode once, and hand back the original bytes when unmodified."""

from __future__ import annotations

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.recorder import TEXT, call_body
from shadowproxy.core.errors import PARSE_ERROR, JsonRpcError
from shadowproxy.core.jsonrpc import Kind, Message, decode

REQUEST = call_body(7)
RESPONSE = (
    b'{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"%s"}],"isError":false}}' % TEXT.encode()
)


def decode_one(raw: bytes) -> Message:
    message = decode(raw)
    assert isinstance(message, Message)
    return message


def test_decode_request(benchmark: BenchmarkFixture) -> None:
    message = benchmark(decode_one, REQUEST)
    assert message.kind is Kind.REQUEST
    assert message.params == {"name": "echo", "arguments": {"text": TEXT}}


def test_decode_response(benchmark: BenchmarkFixture) -> None:
    message = benchmark(decode_one, RESPONSE)
    assert message.kind is Kind.RESPONSE
    assert message.result["content"][0]["text"] == TEXT


def test_to_bytes_unmodified_is_the_original(benchmark: BenchmarkFixture) -> None:
    message = decode_one(REQUEST)
    assert benchmark(message.to_bytes) is REQUEST


def test_evolve_and_encode(benchmark: BenchmarkFixture) -> None:
    message = decode_one(REQUEST)
    params = {"name": "echo", "arguments": {"text": TEXT.upper()}}
    encoded = benchmark(lambda: message.evolve(params=params).to_bytes())
    assert decode_one(encoded).params == params


def test_decode_rejects_bad_json(benchmark: BenchmarkFixture) -> None:
    def attempt() -> int:
        with pytest.raises(JsonRpcError) as caught:
            decode(b'{"jsonrpc":"2.0","id":1,')
        return caught.value.code

    assert benchmark(attempt) == PARSE_ERROR
