"""The event-stream parser and encoder."""

from __future__ import annotations

from shadowproxy.core.sse import SseEvent, SseParser, encode


def test_events_split_across_chunks_and_line_ends() -> None:
    parser = SseParser()
    assert parser.feed(b"event: message\r\nid: 7\r") == []
    assert parser.feed(b'\ndata: {"a":\n') == []
    events = parser.feed(b"data: 1}\r\n\r\n: comment\n\nretry: 500\ndata: x\n\n")
    assert events == [SseEvent(b'{"a":\n1}', "message", "7", None), SseEvent(b"x", None, None, 500)]


def test_priming_event_has_an_id_and_no_data() -> None:
    assert SseParser().feed(b"id: abc\ndata:\n\n") == [SseEvent(b"", None, "abc", None)]


def test_encode_round_trips_multiline_data() -> None:
    wire = encode(b'{"a":\n1}', event_id="9", retry=100)
    assert SseParser().feed(wire) == [SseEvent(b'{"a":\n1}', "message", "9", 100)]
