"""The recorder on its own: sessions picked by ``record: all`` or a rules ``record`` action, a full queue that
drops and counts, rotation into parts, expiry by age and by total size, and raw recording on request."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from shadowproxy.config.tapes import TapesConfig
from shadowproxy.core.chain import FORWARD, Direction, block
from shadowproxy.core.jsonrpc import classify
from shadowproxy.core.record import SessionRecord
from shadowproxy.rules.cases import subject_for
from shadowproxy.rules.engine import Engine
from shadowproxy.rules.ruleset import load
from shadowproxy.tapes import writer
from shadowproxy.tapes.writer import SLICE, Recorder

C2S = Direction.CLIENT_TO_SERVER
SECRET = "sk-proj-abcdefghijklmnopqrstuvwxyz0123"


def call(number: int, text: str = "hello") -> object:
    data = {
        "jsonrpc": "2.0",
        "id": number,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": text}},
    }
    return classify(data, None)


def tapes(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jsonl"))


def lines(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_batch_masks_only_the_messages_that_need_it_on_every_tape(tmp_path: Path) -> None:
    """Clean and secret messages mixed over three tapes and more than a chunk: each secret is masked on its own
    line, each clean message is written as the bytes it came as, and every tape keeps its order."""
    recorder = Recorder(TapesConfig(dir=str(tmp_path)))
    records = [SessionRecord(id=f"tape-{index}") for index in range(3)]
    sent: dict[str, list[bytes]] = {record.id: [] for record in records}
    for number in range(150):
        record = records[number % 3]
        message = call(number, SECRET if number % 37 == 5 else f"hello {number}")
        recorder.record(message, C2S, record, "http", FORWARD)  # type: ignore[arg-type]
        sent[record.id].append(message.to_bytes())  # type: ignore[attr-defined]
    recorder.start()
    recorder.stop()
    found = tapes(tmp_path)
    assert len(found) == 3 and SECRET not in "".join(path.read_text() for path in found)
    for path in found:
        entries = lines(path)[1:]
        wires = sent[records[entries[0]["msg"]["id"] % 3].id]
        assert [entry["msg"]["id"] for entry in entries] == [json.loads(wire)["id"] for wire in wires]
        raw = path.read_bytes()
        for entry, wire in zip(entries, wires, strict=True):
            if SECRET.encode() in wire:
                assert entry["msg"]["params"]["arguments"]["text"] == "[REDACTED:api_key]"
            else:
                assert wire in raw
    assert recorder.written == 150 and recorder.dropped == 0


async def test_a_batch_that_may_hold_secrets_is_masked_a_slice_at_a_time(tmp_path: Path) -> None:
    """The event loop masks SLICE lines, then serves its other callbacks before the next slice."""
    recorder = Recorder(TapesConfig(dir=str(tmp_path)))
    recorder.start()
    record = SessionRecord(id="secrets")
    for number in range(600):
        recorder.record(call(number, SECRET), C2S, record, "http", FORWARD)  # type: ignore[arg-type]
    assert recorder._waiting == 600
    recorder._due.cancel()  # type: ignore[union-attr]
    recorder._tick()
    assert recorder._waiting == 600 - (SLICE - 1) and recorder._due is not None  # the header was one of the lines
    turns = 0
    while recorder._waiting:
        await asyncio.sleep(0)
        turns += 1
    assert turns >= 2
    recorder.stop()
    (tape,) = tapes(tmp_path)
    entries = lines(tape)[1:]
    assert [entry["msg"]["id"] for entry in entries] == list(range(600)) and SECRET not in tape.read_text()


async def test_a_batch_half_the_queue_long_is_written_without_waiting_for_its_time(tmp_path: Path) -> None:
    recorder = Recorder(TapesConfig(dir=str(tmp_path), queue=10, write_every=60))
    recorder.start()
    record = SessionRecord(id="busy")
    for number in range(5):
        recorder.record(call(number), C2S, record, "http", FORWARD)  # type: ignore[arg-type]
    for _ in range(100):
        await asyncio.sleep(0)
        if not recorder._waiting:
            break
    assert recorder._waiting == 0 and recorder.dropped == 0
    recorder.stop()
    (tape,) = tapes(tmp_path)
    assert [entry["msg"]["id"] for entry in lines(tape)[1:]] == list(range(5))


def test_every_part_of_a_tape_that_goes_on_in_new_parts_is_masked(tmp_path: Path) -> None:
    recorder = Recorder(TapesConfig(dir=str(tmp_path), max_tape_bytes=4096))
    record = SessionRecord(id="long")
    for number in range(60):
        recorder.record(call(number, SECRET + "x" * 100), C2S, record, "http", FORWARD)  # type: ignore[arg-type]
    recorder.start()
    recorder.stop()
    found = tapes(tmp_path)
    assert len(found) >= 3 and all(SECRET not in path.read_text() for path in found)
    assert sorted(entry["msg"]["id"] for path in found for entry in lines(path)[1:]) == list(range(60))


def test_a_forgotten_session_is_written_masked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer, "KNOWN_SESSIONS", 2)
    recorder = Recorder(TapesConfig(dir=str(tmp_path)))
    recorder.start()
    for number, session in enumerate(("a", "b", "c", "a")):  # c's tape makes the recorder forget a's
        recorder.record(call(number, SECRET), C2S, SessionRecord(id=session), "http", FORWARD)  # type: ignore[arg-type]
    recorder.stop()
    found = tapes(tmp_path)
    assert len(found) == 4, "a's second tape is a file of its own"
    assert all(SECRET not in path.read_text() for path in found)
    assert sorted(entry["msg"]["id"] for path in found for entry in lines(path)[1:]) == [0, 1, 2, 3]


def test_a_message_after_the_drain_is_dropped_and_counted(tmp_path: Path) -> None:
    recorder = Recorder(TapesConfig(dir=str(tmp_path)))
    recorder.start()
    record = SessionRecord(id="late")
    recorder.record(call(1), C2S, record, "http", FORWARD)  # type: ignore[arg-type]
    recorder.drain()
    recorder.record(call(2), C2S, record, "http", FORWARD)  # type: ignore[arg-type]
    recorder.stop()
    (tape,) = tapes(tmp_path)
    assert [entry["msg"]["id"] for entry in lines(tape)[1:]] == [1] and recorder.dropped == 1


def test_a_full_queue_drops_and_counts_and_never_waits(tmp_path: Path) -> None:
    recorder = Recorder(TapesConfig(dir=str(tmp_path), queue=2))
    record = SessionRecord(id="one")
    for number in range(5):
        recorder.record(call(number), C2S, record, "http", FORWARD)  # type: ignore[arg-type]
    assert recorder.dropped == 3
    recorder.start()
    recorder.stop()
    (tape,) = tapes(tmp_path)
    header, *entries = lines(tape)
    assert header["tape"] == 1 and [entry["msg"]["id"] for entry in entries] == [0, 1]


def test_record_none_writes_only_the_sessions_a_record_rule_picks(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules:\n  - id: tape-echo\n    match: {method: tools/call, tool: echo}\n    action: record\n")
    engine = Engine()
    subject = subject_for(call(1), C2S, session={"id": "picked"}, engine=engine)  # type: ignore[arg-type]
    engine.evaluate(load([str(policy)]), subject)
    picked = subject.session
    assert picked is not None and picked.recording
    folder = tmp_path / "tapes"
    recorder = Recorder(TapesConfig(dir=str(folder), record="none"))
    recorder.start()
    recorder.record(call(1), C2S, SessionRecord(id="not picked"), "http", FORWARD)  # type: ignore[arg-type]
    recorder.record(call(1), C2S, picked, "http", FORWARD)  # type: ignore[arg-type]
    recorder.record(call(2), C2S, None, "http", FORWARD)  # type: ignore[arg-type]
    recorder.stop()
    (tape,) = tapes(folder)
    assert [entry["msg"]["id"] for entry in lines(tape)[1:]] == [1]


def test_blocked_request_gets_the_proxys_answer_and_secrets_are_masked(tmp_path: Path) -> None:
    recorder = Recorder(TapesConfig(dir=str(tmp_path)))
    recorder.start()
    recorder.record(call(7, SECRET), C2S, SessionRecord(id="s"), "stdio", block(message="no"))  # type: ignore[arg-type]
    recorder.stop()
    (tape,) = tapes(tmp_path)
    text = tape.read_text()
    assert SECRET not in text
    _, asked, answered = lines(tape)
    assert asked["verdict"] == "block" and answered["from"] == "proxy" and answered["dir"] == "server_to_client"
    assert answered["msg"]["id"] == 7 and answered["msg"]["error"]["message"] == "no"


def test_raw_recording_only_when_asked(tmp_path: Path) -> None:
    recorder = Recorder(TapesConfig(dir=str(tmp_path), redact=False))
    recorder.start()
    recorder.record(call(1, SECRET), C2S, SessionRecord(id="raw"), "http", FORWARD)  # type: ignore[arg-type]
    recorder.stop()
    (tape,) = tapes(tmp_path)
    assert SECRET in tape.read_text() and lines(tape)[0]["redact"] is None


def test_a_long_tape_goes_on_in_parts(tmp_path: Path) -> None:
    recorder = Recorder(TapesConfig(dir=str(tmp_path), max_tape_bytes=4096))
    recorder.start()
    record = SessionRecord(id="long")
    for number in range(60):
        recorder.record(call(number, "x" * 150), C2S, record, "http", FORWARD)  # type: ignore[arg-type]
    recorder.stop()
    found = tapes(tmp_path)
    assert len(found) >= 3
    parts = sorted(lines(path)[0]["part"] for path in found)
    assert parts == list(range(1, len(found) + 1))
    ids = sorted(entry["msg"]["id"] for path in found for entry in lines(path)[1:])
    assert ids == list(range(60))


def test_old_tapes_expire_by_age_and_by_total_size(tmp_path: Path) -> None:
    now = time.time()
    for name, age in (("old.jsonl", 3 * 86400), ("older.jsonl", 2000), ("recent.jsonl", 1000)):
        path = tmp_path / name
        path.write_bytes(b"x" * 10_000)
        os.utime(path, (now - age, now - age))
    recorder = Recorder(TapesConfig(dir=str(tmp_path), max_age=86400, max_total_bytes=15_000))
    recorder.start()
    recorder.record(call(1), C2S, SessionRecord(id="new"), "http", FORWARD)  # type: ignore[arg-type]
    recorder.stop()
    names = {path.name for path in tapes(tmp_path)}
    assert "old.jsonl" not in names  # past max_age
    assert "older.jsonl" not in names and "recent.jsonl" in names  # the oldest went to fit max_total_bytes
    assert len(names) == 2
