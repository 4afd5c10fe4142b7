"""The limit helpers on their own: sizes, the nesting check, a child's bounded stdout and stderr."""

from __future__ import annotations

import orjson
import pytest

from shadowproxy.config.limits import parse_size
from shadowproxy.core.jsonrpc import too_deep
from shadowproxy.upstreams.output import BoundedLines, Oversized, StderrLines


@pytest.mark.parametrize(
    ("text", "size"),
    [("512MiB", 512 * 1024**2), ("4MB", 4 * 10**6), ("1 GiB", 1024**3), ("16k", 16_000), ("100", 100), (7, 7)],
)
def test_sizes(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "1.5MiB", "-3", "", True, 2.5])
def test_what_is_not_a_size(text: object) -> None:
    with pytest.raises(ValueError, match="512MiB"):
        parse_size(text)


@pytest.mark.parametrize("depth", [1, 5, 63, 64, 65, 200])
def test_nesting_is_measured_exactly(depth: int) -> None:
    data: object = []
    for _ in range(depth - 1):
        data = [data] if depth % 2 else {"k": data}
    raw = orjson.dumps(data)
    assert too_deep(raw, data, 64) is (depth > 64)


def test_brackets_inside_strings_do_not_count() -> None:
    data = {"text": "[" * 500, "list": [1, 2, 3]}
    assert not too_deep(orjson.dumps(data), data, 64)


def _nested(depth: int, leaf: object) -> object:
    data = leaf
    for level in range(depth):
        data = {"k": data, "s": '"]}\\'} if level % 2 else [data, '[{"', "\\"]
    return data


@pytest.mark.parametrize("limit", [1, 8, 16, 17, 64])
@pytest.mark.parametrize("leaf", ["", "[[[{{{", '\\"]]]}}}'])
def test_the_scan_and_the_walk_agree_at_the_limit(limit: int, leaf: str) -> None:
    # Strings full of brackets, escaped quotes and backslashes on every level, many brackets in all: the byte scan
    # (limits up to 16, and the first 16 levels of any) decides, not the bracket count; over 16 the walk does.
    for depth in (limit - 1, limit, limit + 1):
        data = {"jsonrpc": "2.0", "id": 1, "result": [_nested(depth, leaf) for _ in range(3)] * 30}
        assert too_deep(orjson.dumps(data), data, limit) is (depth + 2 > limit), depth


def test_lines_over_the_limit_are_reported_once_and_skipped_to_their_end() -> None:
    lines = BoundedLines(60)
    assert lines.feed(b'{"a":1}\n{"jsonrpc":"2.0","id":7,"result":{"x":"') == [b'{"a":1}']
    reported = lines.feed(b"y" * 50)
    assert len(reported) == 1 and isinstance(reported[0], Oversized) and reported[0].reply_id == 7
    assert lines.feed(b'yyy"}}\n{"b":2}\nhalf') == [b'{"b":2}']
    assert lines.feed(b" a line\n") == [b"half a line"]
    whole = lines.feed(b'{"jsonrpc":"2.0","id":"s","result":"' + b"z" * 40 + b'"}\nok\n')
    assert isinstance(whole[0], Oversized) and whole[0].reply_id == "s" and whole[1:] == [b"ok"]


@pytest.mark.parametrize(
    "head",
    [
        b'{"jsonrpc":"2.0","method":"sampling/createMessage","id":3,"params":{',  # a server request, not a reply
        b'{"jsonrpc":"2.0","result":{"id":3,',  # an id that is not the message's
        b'{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"',
    ],
)
def test_only_a_replys_own_id_is_taken(head: bytes) -> None:
    assert Oversized(head, 0).reply_id is None


def test_stderr_lines_are_cut_and_rationed() -> None:
    stderr = StderrLines(width=10, rate=0, burst=3)
    kept = stderr.feed(b"a\n\nb" + b"x" * 30 + b"\nc\nd\ne\nunfinished" + b"u" * 100)
    assert kept == [b"a", b"b" + b"x" * 9, b"c"]
    assert stderr.suppressed == 2 and stderr.notice is not None and "left out" in stderr.notice
    assert stderr.partial == b"u" * 10
    assert stderr.feed(b"\nmore\n") == []
    assert stderr.suppressed == 4 and stderr.notice is None
