"""Every event the proxy writes is framed by :mod:`shadowproxy.core.sse`, byte for byte as before (issue 19, item 6)."""

from __future__ import annotations

import ast

import orjson

from shadowproxy.core import sse
from shadowproxy.core.chain import FORWARD, Direction
from shadowproxy.core.jsonrpc import decode
from shadowproxy.core.sse import SseEvent, SseParser
from shadowproxy.proxy.tap import Tap, TapFilter
from tests.support import REPO

FIELDS = (b"event:", b"data:", b"id:", b"retry:", b": ")


def test_a_message_event_is_the_bytes_it_always_was() -> None:
    assert sse.encode(b'{"a":1}') == b'event: message\ndata: {"a":1}\n\n'
    assert sse.encode(b'{"a":\r\n1}', event_id="s_1", retry=500) == (
        b'event: message\nid: s_1\nretry: 500\ndata: {"a":\ndata: 1}\n\n'
    )


def test_named_and_unnamed_events() -> None:
    endpoint = sse.encode(b"/messages?session_id=x", event="endpoint")
    assert endpoint == b"event: endpoint\ndata: /messages?session_id=x\n\n"
    assert sse.encode(b'{"a":1}', event=None) == b'data: {"a":1}\n\n'


def test_a_control_event_carries_no_data() -> None:
    assert sse.control("s_1", 1000) == b"id: s_1\nretry: 1000\ndata: \n\n"
    assert sse.control("s_1", None) == b"id: s_1\ndata: \n\n"
    assert sse.control(None, 250) == b"retry: 250\ndata: \n\n"
    assert SseParser().feed(sse.control("s_1", 1000)) == [SseEvent(b"", None, "s_1", 1000)]


def test_comments() -> None:
    assert sse.KEEPALIVE == b": keep-alive\n\n" == sse.comment("keep-alive")
    assert sse.comment("tap open") == b": tap open\n\n"


def test_the_tap_frames_its_events_and_its_losses() -> None:
    tap = Tap()
    listener = tap.attach(TapFilter())
    listener.events.extend([b'{"n":1}', b'{"n":2}'])
    listener.dropped = 3
    assert listener.take() == b'event: dropped\ndata: {"dropped":3,"total":3}\n\ndata: {"n":1}\n\ndata: {"n":2}\n\n'
    message = decode(b'{"jsonrpc":"2.0","method":"notifications/x"}')
    assert not isinstance(message, list)
    tap.publish(message, Direction.CLIENT_TO_SERVER, None, "http", "u", None, FORWARD)
    (event,) = SseParser().feed(listener.take())
    assert event.event is None and orjson.loads(event.data)["method"] == "notifications/x"


def _frames_outside_sse() -> list[str]:
    found = []
    for folder in ("shadowproxy", "rules", "stores", "interceptors"):
        for path in sorted((REPO / folder).rglob("*.py")):
            if path == REPO / "shadowproxy" / "core" / "sse.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Constant) and isinstance(node.value, bytes) and node.value.startswith(FIELDS):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno} {node.value[:20]!r}")
    return found


def test_no_module_but_sse_writes_event_stream_fields() -> None:
    assert _frames_outside_sse() == []
