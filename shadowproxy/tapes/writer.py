"""The recorder: sessions written to tapes, off the hot path.

:class:`Recorder.record` is what a mount calls for each message after the chain (beside the tap and the
audit log): it tests whether the session is recorded (``record: all``, or a rules ``record`` action set
:attr:`SessionRecord.recording`) and appends one tuple to a bounded deque, never waiting: past ``queue``
messages it drops the message and counts it (``dropped``). Nothing is decoded, copied or woken per message.

A thread takes what has gathered every :data:`BATCH_EVERY` seconds (sooner when the deque is half full) and
writes it: a message whose wire form :meth:`~shadowproxy.core.redact.Redactor.clean` finds nothing to mask in
(most) goes on its line as the bytes it came as, behind a prefix made once per direction and verdict; any other
is redacted and encoded. Each tape gets one ``write`` per batch. The thread holds the GIL only to format, so the
event loop loses a few microseconds per message, not a thread switch each. It rotates a tape past
``max_tape_bytes`` into a new part and, as it starts and every :data:`SWEEP_EVERY` seconds, deletes tapes older
than ``max_age`` and the oldest while the folder holds more than ``max_total_bytes``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from shadowproxy import __version__
from shadowproxy.core.chain import FORWARD, Action, Direction, Verdict
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
BATCH_EVERY = 0.05
"""Seconds the writer lets messages gather once one has come: a tape is at most this much behind."""
SWEEP_EVERY = 30.0
CHUNK = 64
"""Messages :meth:`~shadowproxy.core.redact.Redactor.clean` looks at together: one call's cost spread over many
messages, and one message that needs masking sends only its chunk to be looked at message by message."""
C2S = Direction.CLIENT_TO_SERVER

Item = tuple[SessionRecord, float, Direction, bytes, Verdict, str, Message | None]
"""Session, time, direction, the message's wire form as it went on, verdict, transport, and the message the chain
stopped or answered (for the proxy's answer line). Only the bytes are kept, not the message: a decoded message
held until the writer's next batch would outlive the young generation and make the garbage collector's work."""


@dataclass(slots=True)
class _Tape:
    stem: str
    started: float
    path: Path
    size: int = 0
    part: int = 1
    protocol_version: str | None = None
    client: Any = None
    pending: list[bytes] = field(default_factory=list)
    """Lines of this batch not yet written."""


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
        # deque.append and popleft are atomic: the event loop appends, the writer pops, neither takes a lock.
        self._queue: deque[Item] = deque()
        self._limit = config.queue
        self._soon = max(1, config.queue // 2)
        self._wake = threading.Event()
        self._idle = False
        """The writer waits for a message (the next :meth:`record` wakes it) rather than for a batch to gather."""
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._tapes: OrderedDict[str, _Tape] = OrderedDict()
        self._files: OrderedDict[str, IO[bytes]] = OrderedDict()
        self._prefixes: dict[tuple[Direction, Action, bool, str | None], bytes] = {}
        self._swept = 0.0

    def record(self, message: Message, direction: Direction, record: SessionRecord | None, transport: str,
               verdict: Verdict) -> None:  # fmt: skip
        """Queue one judged message of a recorded session; never waits, drops (counted) when the queue is full."""
        if record is None:
            self.unattributed += self.all  # a message outside a session belongs on no session's tape
            return
        if not (self.all or record.recording):
            return
        queue = self._queue
        if len(queue) >= self._limit:
            self.dropped += 1
            return
        # to_bytes() is the bytes the message came as, or its encoding that the front end is about to send.
        wire = (verdict.message or message).to_bytes()
        stopped = None if verdict.is_forward else message
        queue.append((record, time.time(), direction, wire, verdict, transport, stopped))
        if self._idle or len(queue) == self._soon:
            self._idle = False
            self._wake.set()

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="tape-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, close the files."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping = True
            self._wake.set()
            thread.join()

    def _run(self) -> None:
        try:
            self._sweep()  # what expired while the proxy was down
        except OSError as exc:
            log.warning("could not expire the tapes in %s: %s", self.dir, exc)
        while not self._stopping:
            if not self._queue:
                # Set before the test: a record() that appends after the test sees it and wakes the writer.
                self._idle = True
                if not self._queue:
                    self._wake.wait(SWEEP_EVERY)
                self._idle = False
            self._wake.clear()
            if self._queue and not self._stopping:
                self._wake.wait(BATCH_EVERY)  # let a batch gather; a half-full queue cuts it short
                self._wake.clear()
            self._batch()
            if time.monotonic() - self._swept > SWEEP_EVERY:
                try:
                    self._sweep()
                except OSError as exc:
                    log.warning("could not expire the tapes in %s: %s", self.dir, exc)
        self._batch()
        for file in self._files.values():
            file.close()
        self._files.clear()

    def _batch(self) -> None:
        """Format what is queued, then write each tape's lines at once."""
        queue = self._queue
        touched: dict[str, tuple[SessionRecord, _Tape]] = {}
        redactor = self.redactor
        tapes, limit = self._tapes, self.config.max_tape_bytes
        forwarded = {direction: self._prefix(direction, FORWARD) for direction in Direction}
        left = len(queue)  # what came after the batch began waits for the next: the files are written in between
        while left > 0:
            items = [queue.popleft() for _ in range(min(left, CHUNK))]
            left -= len(items)
            # One look at a chunk's messages together: when nothing in them could be masked, none is looked at
            # alone. NUL joins them: JSON holds none, and it is no separator a detector reads across.
            chunk = b"\0".join([item[3] for item in items])
            clean = redactor is None or redactor.clean(chunk)
            plain = clean and chunk.find(b"\n") < 0 and chunk.find(b"\r") < 0
            for item in items:
                record, now, direction, wire, verdict, _, _ = item
                tape = tapes.get(record.id)
                if plain and verdict is FORWARD and tape is not None and tape.size <= limit:
                    # The usual message, inline: a call per message is a good part of the writer's time.
                    line = b'{"t":%.6f%s%s}\n' % (now - tape.started, forwarded[direction], wire)
                    tape.pending.append(line)
                    tape.size += len(line)
                    touched[record.id] = (record, tape)
                    continue
                try:
                    touched[record.id] = self._format(item, clean)
                except Exception:  # one message that cannot be written must not stop the writer
                    log.exception("could not put a message on its tape")
                    self.written -= 1
            self.written += len(items)
            if left:
                time.sleep(0)  # the GIL to the event loop between chunks, not after a whole batch
        for key, (_, tape) in touched.items():
            try:
                self._flush(key, tape)
            except OSError as exc:
                tape.pending.clear()
                log.warning("could not write a tape in %s: %s", self.dir, exc)

    def _format(self, item: Item, clean: bool) -> tuple[SessionRecord, _Tape]:
        record, now, direction, wire, verdict, transport, stopped = item
        tape = self._tapes.get(record.id)
        if tape is None:
            tape = self._begin(record, now, transport, wire)
        if tape.size > self.config.max_tape_bytes:
            self._rotate(record, tape, transport)
        prefix = self._prefix(direction, verdict)
        line = b'{"t":%.6f%s%s}\n' % (now - tape.started, prefix, self._wire(wire, clean))
        tape.pending.append(line)
        tape.size += len(line)
        answer = _proxy_answer(stopped, verdict) if stopped is not None else None
        if answer is not None:
            entry = {"t": round(now - tape.started, 6), "dir": _other(direction), "from": "proxy"}
            entry |= {"verdict": verdict_label(verdict.action.value, False), "by": verdict.by, "msg": answer}
            line = orjson.dumps(entry) + b"\n"
            tape.pending.append(line)
            tape.size += len(line)
            self.written += 1
        return record, tape

    def _prefix(self, direction: Direction, verdict: Verdict) -> bytes:
        """What comes between a line's time and its message, made once per direction and verdict."""
        key = (direction, verdict.action, verdict.message is not None, verdict.by)
        prefix = self._prefixes.get(key)
        if prefix is None:
            label = verdict_label(verdict.action.value, verdict.message is not None)
            fields = orjson.dumps({"dir": direction.value, "verdict": label, "by": verdict.by})
            prefix = self._prefixes[key] = b"," + fields[1:-1] + b',"msg":'
        return prefix

    def _wire(self, raw: bytes, clean: bool) -> bytes:
        """A message's JSON for its line: the bytes it went on as when there is nothing to mask in them."""
        redactor = self.redactor
        if not clean and redactor is not None and not redactor.clean(raw):
            return orjson.dumps(self._masked_message(_loads(raw)))
        if raw.find(b"\n") >= 0 or raw.find(b"\r") >= 0:
            # Only whitespace between tokens can be a bare line break in JSON; the line must hold none.
            raw = raw.replace(b"\r", b" ").replace(b"\n", b" ")
        return raw

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

    def _begin(self, record: SessionRecord, now: float, transport: str, wire: bytes) -> _Tape:
        digest = hashlib.blake2b(record.id.encode(), digest_size=8).hexdigest()
        stem = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"-{digest}"
        tape = _Tape(stem, now, self.dir / f"{stem}{SUFFIX}")
        self._tapes[record.id] = tape
        if len(self._tapes) > KNOWN_SESSIONS:
            forgotten, old = self._tapes.popitem(last=False)
            self._flush(forgotten, old)
            self._close(forgotten)
        first = _loads(wire) if record.protocol_version is None or record.client_info is None else {}
        params = first.get("params") if first.get("method") == "initialize" else None
        params = params if isinstance(params, dict) else {}
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
        line = orjson.dumps(header) + b"\n"
        tape.pending.append(line)
        tape.size += len(line)

    def _rotate(self, record: SessionRecord, tape: _Tape, transport: str) -> None:
        """Close a tape past ``max_tape_bytes``; what follows goes to a new part with its own header."""
        self._flush(record.id, tape)
        self._close(record.id)
        tape.part += 1
        tape.path = self.dir / f"{tape.stem}.{tape.part}{SUFFIX}"
        tape.size = 0
        self._header(record, tape, transport)

    def _flush(self, key: str, tape: _Tape) -> None:
        if tape.pending:
            data = memoryview(b"".join(tape.pending))
            tape.pending.clear()
            file = self._file(key, tape)
            while data:  # an unbuffered file's write may take part of it
                data = data[file.write(data) :]

    def _file(self, key: str, tape: _Tape) -> IO[bytes]:
        file = self._files.get(key)
        if file is None:
            file = self._files[key] = tape.path.open("ab", buffering=0)
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


def _loads(raw: bytes) -> dict[str, Any]:
    try:
        return orjson.loads(raw)  # type: ignore[no-any-return]
    except orjson.JSONDecodeError:  # an integer beyond 64 bits, that the standard library reads
        return json.loads(raw)  # type: ignore[no-any-return]
