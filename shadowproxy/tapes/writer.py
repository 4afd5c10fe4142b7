"""The recorder: sessions written to tapes, off the hot path.

:class:`Recorder.record` is what a mount calls for each message after the chain (beside the tap and the
audit log): it tests whether the session is recorded (``record: all``, or a rules ``record`` action set
:attr:`SessionRecord.recording`) and puts the message's line on its tape's batch, never waiting: the bytes it
went on as behind a prefix made once per direction and verdict, nothing decoded. Past ``queue`` lines waiting it
drops the message and counts it (``dropped``).

Masking, the part that reads every byte, waits for the batch, ``write_every`` seconds (50 ms) after its first
line: :meth:`~shadowproxy.core.redact.Redactor.clean` looks at the messages of every tape written to together
(a few substring tests in C), and when it finds nothing to mask (most batches), each tape's lines go to
:class:`~shadowproxy.tapes.files.TapeFiles` as they are, in one ``write`` per tape. Otherwise the batch is looked
at in chunks of :data:`CHUNK` messages, and a message of a chunk that could hold a secret is decoded, masked and
put back on its line, :data:`SLICE` lines at a time with the loop's other work between them. The thread only
writes, so the loop never waits on a disk. A tape past ``max_tape_bytes`` goes on in a new part; as it starts
and every :data:`SWEEP_EVERY` seconds the thread deletes tapes older than ``max_age`` and the oldest while the
folder holds more than ``max_total_bytes``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from shadowproxy import __version__
from shadowproxy.core.chain import FORWARD, Action, Direction, Verdict
from shadowproxy.core.counters import verdict_label
from shadowproxy.core.jsonrpc import Message, error_response, result_response
from shadowproxy.core.record import SessionRecord
from shadowproxy.tapes.files import TapeFiles, Writes
from shadowproxy.tapes.format import SUFFIX, VERSION

if TYPE_CHECKING:
    from shadowproxy.config.tapes import TapesConfig
    from shadowproxy.core.redact import Redactor

log = logging.getLogger(__name__)

KNOWN_SESSIONS = 10_000
"""Sessions whose tape is remembered; a forgotten one that speaks again starts a new tape."""
SLICE = 256
"""Lines looked at one by one in one go on the event loop, when a batch may hold a secret."""
SWEEP_EVERY = 30.0
CHUNK = 64
"""Messages :meth:`~shadowproxy.core.redact.Redactor.clean` looks at together in a batch that may hold a secret:
one message that needs masking sends only its chunk to be looked at message by message."""
C2S = Direction.CLIENT_TO_SERVER
_LINE = b'{"t":%.6f%s%s}\n'
_now = time.time


@dataclass(slots=True)
class _Tape:
    stem: str
    started: float
    path: Path
    size: int = 0
    part: int = 1
    protocol_version: str | None = None
    client: Any = None
    lines: list[bytes] = field(default_factory=list)
    """Lines of this batch not yet written."""
    wires: list[bytes] = field(default_factory=list)
    """For each line, the message it ends with, as it went on (not yet masked); ``b""`` for a line the proxy
    wrote itself (a header, its own answer), which holds nothing to mask."""
    closed: bool = False
    """No line comes any more (a part that went on in a new one, a forgotten session's): its file is closed once
    the lines it still has are handed over."""


class Recorder:
    """Writes the tapes of one proxy: :meth:`start` on the event loop, :meth:`record` each message, :meth:`drain`
    and :meth:`stop` at the end. Used with no event loop (the tests), it writes at :meth:`stop`."""

    def __init__(self, config: TapesConfig) -> None:
        self.config = config
        self.all = config.record == "all"
        self.dir = Path(config.dir)
        self.redactor: Redactor | None = config.redact.redactor() if config.redact is not None else None
        self.dropped = 0
        self.written = 0
        self.unattributed = 0
        """Messages of no session, recorded nowhere (``record: all``)."""
        self._waiting = 0
        """Lines on the tapes' batches, not yet handed to the thread."""
        self._limit = config.queue
        self._soon = max(1, config.queue // 2)
        self._max_bytes = config.max_tape_bytes
        self._every = config.write_every
        self._files = TapeFiles(self.dir, config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due: asyncio.Handle | None = None
        """The next batch, once lines are waiting."""
        self._tapes: OrderedDict[str, _Tape] = OrderedDict()
        self._touched: list[_Tape] = []
        """The tapes with lines waiting, in the order their first came."""
        self._masking = False
        """Whether the lines waiting are the rest of a batch being looked at closer, a slice at a time."""
        self._writes: Writes = []
        self._prefixes: dict[tuple[Direction, Action, bool, str | None], bytes] = {}
        self._to_server = self._prefix(C2S, FORWARD)
        self._to_client = self._prefix(Direction.SERVER_TO_CLIENT, FORWARD)
        self._swept = 0.0

    def record(self, message: Message, direction: Direction, record: SessionRecord | None, transport: str,
               verdict: Verdict) -> None:  # fmt: skip
        """Put one judged message of a recorded session on its tape; never waits, drops (counted) when too many
        lines wait."""
        if record is None:
            self.unattributed += self.all  # a message outside a session belongs on no session's tape
            return
        if not (self.all or record.recording):
            return
        if self._waiting >= self._limit:
            self.dropped += 1
            return
        tape = self._tapes.get(record.id)
        if verdict is not FORWARD or tape is None or tape.size > self._max_bytes:
            try:
                self._judged(message, direction, record, transport, verdict)
            except Exception:  # one message that cannot be written must not stop the recording
                log.exception("could not put a message on its tape")
                return
        else:
            # The usual message: what _line does, inline (a call per message is a good part of record()'s cost).
            # raw is the bytes it came as; to_bytes() encodes one the front end is about to send.
            wire = message.raw or message.to_bytes()
            line = _LINE % (_now() - tape.started, self._to_server if direction is C2S else self._to_client, wire)
            lines = tape.lines
            if not lines:
                self._touched.append(tape)
            lines.append(line)
            tape.wires.append(wire)
            tape.size += len(line)
            self._waiting += 1
            self.written += 1
        if self._due is None:
            loop = self._loop
            if loop is not None:
                self._due = loop.call_later(self._every, self._tick)
        elif self._waiting == self._soon:
            self._due.cancel()
            self._due = self._loop.call_soon(self._tick)  # type: ignore[union-attr]

    def start(self) -> None:
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._files.start()
        self._swept = time.monotonic()
        self._files.sweep(frozenset())  # what expired while the proxy was down

    def drain(self) -> None:
        """On the event loop, as the proxy stops: mask and hand over every line waiting. A message that comes
        later is dropped and counted: the proxy's fronts are closed by then."""
        if self._due is not None:
            self._due.cancel()
            self._due = None
        self._loop = None
        self._limit = 0
        self._batch(None)

    def stop(self) -> None:
        """Hand over what still waits, write everything, close the files."""
        self.drain()
        self._files.stop()

    def _tick(self) -> None:
        self._due = None
        self._batch(SLICE)
        loop = self._loop
        if loop is not None and self._touched:
            self._due = loop.call_soon(self._tick)  # the rest of a batch that may hold a secret, after the loop's I/O
        if time.monotonic() - self._swept > SWEEP_EVERY:
            self._swept = time.monotonic()
            self._files.sweep(frozenset(tape.path for tape in self._tapes.values()))

    def _batch(self, budget: int | None) -> None:
        """Hand the waiting lines over to the writing thread, masked: all of them when one look finds nothing to
        mask in their messages, else up to ``budget`` lines (every one when ``None``) looked at closer."""
        touched = self._touched
        if not touched:
            return
        # NUL joins the messages: JSON holds none, and it is no separator a detector reads across. The rest of a
        # batch that was found to need a closer look is not looked at whole again.
        if not self._masking and self._plain(b"\0".join([wire for tape in touched for wire in tape.wires])):
            for tape in touched:
                self._hand_over(tape)
            self._waiting = 0
            touched.clear()
        else:
            self._masking = True
            while touched and (budget is None or budget > 0):
                tape = touched[0]
                count = len(tape.lines) if budget is None else min(len(tape.lines), budget)
                self._waiting -= self._mask(tape, count)
                if budget is not None:
                    budget -= count
                if not tape.lines:
                    del touched[0]
            self._masking = bool(touched)
        if self._writes:
            writes, self._writes = self._writes, []
            self._files.write(writes)

    def _plain(self, wires: bytes) -> bool:
        """Whether messages can go on their lines as they are: nothing to mask, no line break."""
        redactor = self.redactor
        if redactor is not None and not redactor.clean(wires):
            return False
        return wires.find(b"\n") < 0 and wires.find(b"\r") < 0

    def _mask(self, tape: _Tape, count: int) -> int:
        """Mask the first ``count`` lines of a tape where their messages need it, and hand them over; returns how
        many of them hold a message."""
        lines, wires = tape.lines[:count], tape.wires[:count]
        del tape.lines[:count], tape.wires[:count]
        for start in range(0, count, CHUNK):
            if self._plain(b"\0".join(wires[start : start + CHUNK])):
                continue
            for index in range(start, min(start + CHUNK, count)):
                wire = wires[index]
                if wire:
                    line = lines[index]
                    try:
                        lines[index] = line[: len(line) - len(wire) - 2] + self._wire(wire) + b"}\n"
                    except Exception:  # one message that cannot be written must not stop the recording
                        log.exception("could not put a message on its tape")
                        lines[index] = b""
                        self.written -= 1
        self._writes.append((tape.path, b"".join(lines)))
        if tape.closed and not tape.lines:
            self._writes.append((tape.path, None))
        return sum(1 for wire in wires if wire)

    def _judged(
        self, message: Message, direction: Direction, record: SessionRecord, transport: str, verdict: Verdict
    ) -> None:
        """:meth:`record` for a message the chain did not forward as it came, or the first or one too many of its
        tape: the tape begun or gone on in a new part, and the proxy's own answer to a request it stopped."""
        now = _now()
        tape = self._tapes.get(record.id)
        wire = (verdict.message or message).to_bytes()
        if tape is None:
            tape = self._begin(record, now, transport, wire)
        elif tape.size > self._max_bytes:
            tape = self._rotate(record, tape, transport)
        self._line(tape, _LINE % (now - tape.started, self._prefix(direction, verdict), wire), wire)
        answer = _proxy_answer(message, verdict) if not verdict.is_forward else None
        if answer is not None:
            entry = {"t": round(now - tape.started, 6), "dir": _other(direction), "from": "proxy"}
            entry |= {"verdict": verdict_label(verdict.action.value, False), "by": verdict.by, "msg": answer}
            self._line(tape, orjson.dumps(entry) + b"\n", b"")
        self.written += 1 + (answer is not None)

    def _line(self, tape: _Tape, line: bytes, wire: bytes) -> None:
        """One more line on a tape's batch; one with a message counts against ``queue``."""
        if not tape.lines:
            self._touched.append(tape)
        tape.lines.append(line)
        tape.wires.append(wire)
        tape.size += len(line)
        self._waiting += bool(wire)

    def _prefix(self, direction: Direction, verdict: Verdict) -> bytes:
        """What comes between a line's time and its message, made once per direction and verdict."""
        key = (direction, verdict.action, verdict.message is not None, verdict.by)
        prefix = self._prefixes.get(key)
        if prefix is None:
            label = verdict_label(verdict.action.value, verdict.message is not None)
            fields = orjson.dumps({"dir": direction.value, "verdict": label, "by": verdict.by})
            prefix = self._prefixes[key] = b"," + fields[1:-1] + b',"msg":'
        return prefix

    def _wire(self, raw: bytes) -> bytes:
        """A message's JSON for its line: masked if it holds anything to mask, with no line break."""
        redactor = self.redactor
        if redactor is not None and not redactor.clean(raw):
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
        # To the microsecond: a forgotten session that speaks again, or one resumed after a restart, must not get
        # the file name of its first tape, whose start second it may share.
        stem = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}.{int(now * 1e6) % 1_000_000:06d}-{digest}"
        tape = _Tape(stem, now, self.dir / f"{stem}{SUFFIX}")
        self._tapes[record.id] = tape
        if len(self._tapes) > KNOWN_SESSIONS:
            self._close(self._tapes.popitem(last=False)[1])
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
        self._line(tape, orjson.dumps(header) + b"\n", b"")

    def _rotate(self, record: SessionRecord, tape: _Tape, transport: str) -> _Tape:
        """Close a tape past ``max_tape_bytes``; what follows goes to a new part with its own header."""
        part = tape.part + 1
        new = _Tape(tape.stem, tape.started, self.dir / f"{tape.stem}.{part}{SUFFIX}", part=part)
        new.protocol_version, new.client = tape.protocol_version, tape.client
        self._tapes[record.id] = new
        self._close(tape)
        self._header(record, new, transport)
        return new

    def _close(self, tape: _Tape) -> None:
        """No more lines on ``tape``: its file is closed now, or by the batch after the lines it still has."""
        if tape.lines:
            tape.closed = True
        else:
            self._writes.append((tape.path, None))

    def _hand_over(self, tape: _Tape) -> None:
        """The tape's lines, nothing in them to mask, queued for the writing thread."""
        self._writes.append((tape.path, b"".join(tape.lines)))
        tape.lines.clear()
        tape.wires.clear()
        if tape.closed:
            self._writes.append((tape.path, None))


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
