"""The recorder on its own: sessions picked by ``record: all`` or a rules ``record`` action, a full queue that
drops and counts, rotation into parts, expiry by age and by total size, and raw recording on request."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from shadowproxy.config.tapes import TapesConfig
from shadowproxy.core.chain import FORWARD, Direction, block
from shadowproxy.core.jsonrpc import classify
from shadowproxy.core.record import SessionRecord
from shadowproxy.rules.cases import subject_for
from shadowproxy.rules.engine import Engine
from shadowproxy.rules.ruleset import load
from shadowproxy.tapes.writer import Recorder

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
