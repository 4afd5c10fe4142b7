"""The recorder: sessions written to tapes, off the hot path.

:class:`Recorder.record` is what a mount calls for each message after the chain (beside the tap and the
audit log): it tests whether the session is recorded (``record: all``, or a rules ``record`` action set
:attr:`SessionRecord.recording`) and puts one tuple on a bounded queue, never waiting: a full queue drops the
message and counts it (``dropped``). A thread takes the queue, redacts each message with the tape's
:class:`~shadowproxy.core.redact.Redactor`, encodes it and appends it to the session's tape; it rotates a
tape past ``max_tape_bytes`` into a new part and, as it starts and every :data:`SWEEP_EVERY` seconds,
deletes tapes older than ``max_age`` and the oldest while the folder holds more than ``max_total_bytes``.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from shadowproxy import __version__
from shadowproxy.core.chain import Action, Direction, Verdict
from shadowproxy.core.counters import verdict_label
from shadowproxy.core.jsonrpc import Message, error_response, result_response
from shadowproxy.core.record import SessionRecord
from shadowproxy.tapes.format import SUFFIX, VERSION

if TYPE_CHECKING:
    from shadowproxy.config.tapes import TapesConfig
    from shadowproxy.core.redact import Redactor

log = logging.getLogger(__name__)

OPEN_FILES = 64
"""Tapes kept open at once; the least recently written is closed (and opened again to append)."""
KNOWN_SESSIONS = 10_000
"""Sessions whose tape is remembered; a forgotten one that speaks again starts a new tape."""
SWEEP_EVERY = 30.0
C2S = Direction.CLIENT_TO_SERVER
_STOP: Any = object()

Item = tuple[SessionRecord, float, Direction, Message, Verdict, str]


@dataclass(slots=True)
class _Tape:
    stem: str
    started: float
    path: Path
    size: int = 0
    part: int = 1
    protocol_version: str | None = None
    client: Any = None


class Recorder:
    """Writes the tapes of one proxy; :meth:`start` and :meth:`stop` run its writer thread."""

    def __init__(self, config: TapesConfig) -> None:
        self.config = config
        self.all = config.record == "all"
        self.dir = Path(config.dir)
        self.redactor: Redactor | None = config.redact.redactor() if config.redact is not None else None
        self.dropped = 0
        self.written = 0
        self.unattributed = 0
        """Messages of no session, recorded nowhere (``record: all``)."""
        # SimpleQueue is C and lock-free to put on; the bound is kept by its size, tested before each put.
        self._queue: queue.SimpleQueue[Item] = queue.SimpleQueue()
        self._limit = config.queue
        self._thread: threading.Thread | None = None
        self._tapes: OrderedDict[str, _Tape] = OrderedDict()
        self._files: OrderedDict[str, IO[bytes]] = OrderedDict()
        self._swept = 0.0

    def record(self, message: Message, direction: Direction, record: SessionRecord | None, transport: str,
               verdict: Verdict) -> None:  # fmt: skip
        """Queue one judged message of a recorded session; never waits, drops (counted) when the queue is full."""
        if record is None:
            self.unattributed += self.all  # a message outside a session belongs on no session's tape
            return
        if not (self.all or record.recording):
            return
        if self._queue.qsize() >= self._limit:
            self.dropped += 1
            return
        self._queue.put_nowait((record, time.time(), direction, message, verdict, transport))

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="tape-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, close the files."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join()

    def _run(self) -> None:
        try:
            self._sweep()  # what expired while the proxy was down
        except OSError as exc:
            log.warning("could not expire the tapes in %s: %s", self.dir, exc)
        while True:
            try:
                item = self._queue.get(timeout=SWEEP_EVERY)
            except queue.Empty:
                item = None
            if item is _STOP:
                break
            try:
                if item is not None:
                    self._write(item)
                if self._queue.empty():
                    for file in self._files.values():
                        file.flush()
                    if time.monotonic() - self._swept > SWEEP_EVERY:
                        self._sweep()
            except OSError as exc:
                log.warning("could not write a tape in %s: %s", self.dir, exc)
        for file in self._files.values():
            file.close()
        self._files.clear()

    def _write(self, item: Item) -> None:
        record, now, direction, message, verdict, transport = item
        tape = self._tapes.get(record.id)
        if tape is None:
            tape = self._begin(record, now, transport, message)
        shown = verdict.message or message
        line = {
            "t": round(now - tape.started, 6),
            "dir": direction.value,
            "verdict": verdict_label(verdict.action.value, verdict.message is not None),
            "by": verdict.by,
            "msg": self._masked_message(shown.data),
        }
        lines = [orjson.dumps(line)]
        answer = _proxy_answer(message, verdict)
        if answer is not None:
            lines.append(orjson.dumps({**line, "dir": _other(direction), "from": "proxy", "msg": answer}))
        self._append(record, tape, b"".join(chunk + b"\n" for chunk in lines), transport)
        self.written += len(lines)

    def _masked(self, data: Any) -> Any:
        return self.redactor.value(data) if self.redactor is not None else data

    def _masked_message(self, data: dict[str, Any]) -> dict[str, Any]:
        """Params, result and error masked, as the rules' ``redact`` does: the envelope (version, id, method)
        carries no secret, and leaving it out of the scan saves half its work on a small message."""
        redactor = self.redactor
        if redactor is None:
            return data
        masked = None
        for part in ("params", "result", "error"):
            value = data.get(part)
            if value is not None:
                new = redactor.value(value)
                if new is not value:
                    if masked is None:
                        masked = dict(data)
                    masked[part] = new
        return data if masked is None else masked

    def _begin(self, record: SessionRecord, now: float, transport: str, first: Message) -> _Tape:
        digest = hashlib.blake2b(record.id.encode(), digest_size=8).hexdigest()
        stem = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"-{digest}"
        tape = _Tape(stem, now, self.dir / f"{stem}{SUFFIX}")
        self._tapes[record.id] = tape
        if len(self._tapes) > KNOWN_SESSIONS:
            forgotten, _ = self._tapes.popitem(last=False)
            file = self._files.pop(forgotten, None)
            if file is not None:
                file.close()
        params = first.params if first.method == "initialize" and isinstance(first.params, dict) else {}
        tape.protocol_version = record.protocol_version or params.get("protocolVersion")
        tape.client = record.client_info or params.get("clientInfo")
        self._header(record, tape, transport)
        return tape

    def _header(self, record: SessionRecord, tape: _Tape, transport: str) -> None:
        header = {
            "tape": VERSION,
            "proxy": __version__,
            "session": tape.stem.rsplit("-", 1)[1],
            "upstream": record.upstream,
            "transport": transport,
            "protocol_version": tape.protocol_version,
            "client": self._masked(tape.client),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(tape.started)) + "Z",
            "part": tape.part,
            "redact": self.config.redact.model_dump() if self.config.redact is not None else None,
        }
        self._file(record.id, tape).write(orjson.dumps(header) + b"\n")

    def _append(self, record: SessionRecord, tape: _Tape, data: bytes, transport: str) -> None:
        if tape.size > self.config.max_tape_bytes:
            self._close(record.id)
            tape.part += 1
            tape.path = self.dir / f"{tape.stem}.{tape.part}{SUFFIX}"
            tape.size = 0
            self._header(record, tape, transport)
        self._file(record.id, tape).write(data)
        tape.size += len(data)

    def _file(self, key: str, tape: _Tape) -> IO[bytes]:
        file = self._files.get(key)
        if file is None:
            file = self._files[key] = tape.path.open("ab")
            if len(self._files) > OPEN_FILES:
                _, oldest = self._files.popitem(last=False)
                oldest.close()
        else:
            self._files.move_to_end(key)
        return file

    def _close(self, key: str) -> None:
        file = self._files.pop(key, None)
        if file is not None:
            file.close()

    def _sweep(self) -> None:
        """Delete tapes past ``max_age``, then the oldest while the folder is over ``max_total_bytes``."""
        self._swept = time.monotonic()
        config = self.config
        writing = {tape.path for tape in self._tapes.values()}
        found = []
        for path in self.dir.glob(f"*{SUFFIX}"):
            try:
                stat = path.stat()
            except OSError:
                continue
            found.append((stat.st_mtime, stat.st_size, path))
        found.sort()
        total = sum(size for _, size, _ in found)
        cutoff = time.time() - config.max_age if config.max_age else None
        for mtime, size, path in found:
            old = cutoff is not None and mtime < cutoff
            over = config.max_total_bytes and total > config.max_total_bytes
            if not (old or over) or path in writing:
                continue
            path.unlink(missing_ok=True)
            total -= size


def _other(direction: Direction) -> str:
    return Direction.SERVER_TO_CLIENT.value if direction is C2S else C2S.value


def _proxy_answer(message: Message, verdict: Verdict) -> dict[str, Any] | None:
    """What the proxy answered in the server's place, for a request the chain blocked or answered."""
    if not message.is_request or verdict.action not in (Action.BLOCK, Action.RESPOND):
        return None
    if verdict.action is Action.RESPOND:
        return result_response(message.id, verdict.result).data  # type: ignore[arg-type]
    assert verdict.error is not None
    return error_response(message.id, verdict.error).data
