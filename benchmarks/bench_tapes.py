"""Micro benchmarks of the tapes' recorder: what the hot path pays per message, and the writer thread's work.

    pytest benchmarks/bench_tapes.py

``record`` is what :class:`~shadowproxy.proxy.mount.Mount` calls after the chain: a session not recorded
(``record: none``, no rules ``record`` action) costs one test; a recorded one a put on the bounded queue. The
writer's ``_format`` runs in its own thread, in batches: a message with nothing to mask goes on its line as the
bytes it came as; one with a secret is redacted and encoded.
"""

from __future__ import annotations

import time
from pathlib import Path

from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.recorder import TEXT, call_body
from shadowproxy.config.tapes import TapesConfig
from shadowproxy.core.chain import FORWARD, Direction
from shadowproxy.core.jsonrpc import Message, decode
from shadowproxy.core.record import SessionRecord
from shadowproxy.core.redact import Redactor
from shadowproxy.tapes.writer import Recorder

C2S = Direction.CLIENT_TO_SERVER
CALL = decode(call_body(7))
assert isinstance(CALL, Message)


def test_record_of_a_session_not_recorded(benchmark: BenchmarkFixture, tmp_path: Path) -> None:
    recorder = Recorder(TapesConfig(dir=str(tmp_path), record="none"))
    session = SessionRecord(id="not-recorded")
    benchmark(recorder.record, CALL, C2S, session, "http", FORWARD)
    assert recorder.dropped == 0 and not recorder._queue


def test_record_queues_a_message(benchmark: BenchmarkFixture, tmp_path: Path) -> None:
    recorder = Recorder(TapesConfig(dir=str(tmp_path), queue=10_000_000))
    session = SessionRecord(id="recorded")
    benchmark(recorder.record, CALL, C2S, session, "http", FORWARD)
    assert recorder.dropped == 0 and recorder._queue


def test_writer_formats_a_message_with_nothing_to_mask(benchmark: BenchmarkFixture, tmp_path: Path) -> None:
    """Most messages: their wire form, found clean (here alone; the writer looks at 64 together), goes on the
    line as it came."""
    recorder = Recorder(TapesConfig(dir=str(tmp_path)))
    item = (SessionRecord(id="written"), time.time(), C2S, CALL.to_bytes(), "http")
    benchmark(recorder._format, item, False)
    assert recorder._tapes["written"].pending[-1].endswith(CALL.to_bytes() + b"}\n")


def test_writer_redacts_and_encodes_a_message_with_a_secret(benchmark: BenchmarkFixture, tmp_path: Path) -> None:
    recorder = Recorder(TapesConfig(dir=str(tmp_path)))
    secret = decode(call_body(7).replace(b"0123456789abcdef", b"sk-proj-abcdefghijklmnopqrstuvwxyz", 1))
    assert isinstance(secret, Message)
    item = (SessionRecord(id="written"), time.time(), C2S, secret.to_bytes(), "http")
    benchmark(recorder._format, item, False)
    assert b"sk-proj" not in recorder._tapes["written"].pending[-1]


def test_clean_looks_at_64_messages(benchmark: BenchmarkFixture) -> None:
    """The writer's test of a chunk: 64 echo calls and answers joined, as ``Recorder._slice`` joins them."""
    content = b'[{"type":"text","text":"%s"}]' % TEXT.encode()
    reply = b'{"jsonrpc":"2.0","id":7,"result":{"content":%s,"isError":false}}' % content
    chunk = b"\0".join([call_body(7), reply] * 32)
    redactor = Redactor()
    assert benchmark(redactor.clean, chunk)
