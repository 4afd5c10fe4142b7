"""Micro benchmarks of the tapes' recorder: what the hot path pays per message, and a batch's masking.

    pytest benchmarks/bench_tapes.py

``record`` is what :class:`~shadowproxy.proxy.mount.Mount` calls after the chain: a session not recorded
(``record: none``, no rules ``record`` action) costs one test; a recorded one its line on the tape's batch. A
batch is masked on the event loop: when one look finds nothing to mask, the lines go as they are; a message with a
secret is redacted and encoded.
"""

from __future__ import annotations

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
    assert recorder.dropped == 0 and recorder.written == 0


def test_record_puts_a_line_on_the_batch(benchmark: BenchmarkFixture, tmp_path: Path) -> None:
    recorder = Recorder(TapesConfig(dir=str(tmp_path), queue=10_000_000))
    session = SessionRecord(id="recorded")
    benchmark(recorder.record, CALL, C2S, session, "http", FORWARD)
    assert recorder.dropped == 0 and recorder._tapes["recorded"].lines[-1].endswith(CALL.to_bytes() + b"}\n")


def _batch(recorder: Recorder, message: Message) -> None:
    session = SessionRecord(id="written")
    for _ in range(64):
        recorder.record(message, C2S, session, "http", FORWARD)
    recorder._batch(None)


def test_batch_of_64_messages_with_nothing_to_mask(benchmark: BenchmarkFixture, tmp_path: Path) -> None:
    """Most batches: one look at their messages together finds nothing to mask; the lines go as they are."""
    recorder = Recorder(TapesConfig(dir=str(tmp_path)))
    recorder.start()
    benchmark(_batch, recorder, CALL)
    recorder.stop()
    assert recorder.written >= 64 and CALL.to_bytes() in next(tmp_path.glob("*.jsonl")).read_bytes()


def test_batch_of_64_messages_with_a_secret_each(benchmark: BenchmarkFixture, tmp_path: Path) -> None:
    recorder = Recorder(TapesConfig(dir=str(tmp_path)))
    secret = decode(call_body(7).replace(b"0123456789abcdef", b"sk-proj-abcdefghijklmnopqrstuvwxyz", 1))
    assert isinstance(secret, Message)
    recorder.start()
    benchmark(_batch, recorder, secret)
    recorder.stop()
    assert recorder.written >= 64 and b"sk-proj" not in next(tmp_path.glob("*.jsonl")).read_bytes()


def test_clean_looks_at_64_messages(benchmark: BenchmarkFixture) -> None:
    """The writer's test of a chunk: 64 echo calls and answers joined, as ``Recorder._batch`` joins them."""
    content = b'[{"type":"text","text":"%s"}]' % TEXT.encode()
    reply = b'{"jsonrpc":"2.0","id":7,"result":{"content":%s,"isError":false}}' % content
    chunk = b"\0".join([call_body(7), reply] * 32)
    redactor = Redactor()
    assert benchmark(redactor.clean, chunk)
