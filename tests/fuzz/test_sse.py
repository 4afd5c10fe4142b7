"""Properties of the SSE parser and encoder: any bytes in any chunks are safe; encoded events come back whole."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shadowproxy.core.sse import SseError, SseEvent, SseParser, encode

# Event payloads as the proxy writes them: JSON-RPC bytes, which may contain LF but, after encode, never a CR.
PAYLOADS = st.binary(max_size=200).map(lambda data: data.replace(b"\r", b""))


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    return pieces


def parse(pieces: list[bytes]) -> list[SseEvent]:
    parser = SseParser()
    events: list[SseEvent] = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    return events


@given(st.binary(max_size=1000), st.lists(st.integers(min_value=0), max_size=10))
def test_any_bytes_in_any_chunks_never_crash(data: bytes, cuts: list[int]) -> None:
    try:
        events = parse(chunked(data, cuts))
    except SseError:
        return
    assert all(isinstance(event.data, bytes) for event in events)


@given(st.binary(max_size=600), st.lists(st.integers(min_value=0), max_size=10))
def test_chunking_does_not_change_the_events(data: bytes, cuts: list[int]) -> None:
    assert parse(chunked(data, cuts)) == parse([data])


@given(
    st.lists(st.tuples(PAYLOADS, st.none() | st.text(alphabet="abc123-_", max_size=8)), min_size=1, max_size=6),
    st.lists(st.integers(min_value=0), max_size=12),
    st.sampled_from([b"\n", b"\r\n", b"\r"]),
)
def test_encoded_events_round_trip(events: list[tuple[bytes, str | None]], cuts: list[int], newline: bytes) -> None:
    stream = b"".join(encode(data, event_id=event_id) for data, event_id in events)
    # A CR at the very end may be half of a CRLF, so the parser waits for the next byte: give it a comment line.
    stream = stream.replace(b"\n", newline) + b": end\n"
    parsed = parse(chunked(stream, cuts))
    assert [(event.data, event.id, event.event) for event in parsed] == [
        (data, event_id, "message") for data, event_id in events
    ]


def test_a_lone_cr_in_a_payload_survives_encoding() -> None:
    payload = b'{"jsonrpc":"2.0",\r"method":"x"}'
    (event,) = parse([encode(payload)])
    assert event.data.replace(b"\r", b"") == payload.replace(b"\r", b"")
