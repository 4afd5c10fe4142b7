"""The recorder: sessions written to tapes, off the hot path.

:class:`Recorder.record` is what a mount calls for each message after the chain (beside the tap and the
audit log): it tests whether the session is recorded (``record: all``, or a rules ``record`` action set
:attr:`SessionRecord.recording`) and appends one tuple to a bounded deque, never waiting: past ``queue``
messages it drops the message and counts it (``dropped``). Nothing is decoded, copied or woken per message.

What has gathered is formatted on the event loop, :data:`BATCH_EVERY` seconds after the first message, in slices
of :data:`SLICE` messages with the loop's other work between them: a message whose wire form
:meth:`~shadowproxy.core.redact.Redactor.clean` finds nothing to mask in (most) goes on its line as the bytes it
came as, behind a prefix made once per direction and verdict; any other is redacted and encoded. Each slice's
lines go to :class:`~shadowproxy.tapes.files.TapeFiles`, whose thread only writes them (one ``write`` per tape and
slice), so the loop never waits on a disk, and no second thread formats under the GIL beside the loop: the loop
decides when formatting runs, between its I/O (against a formatting thread the cost was within the noise of a
loaded machine, ``benchmarks/README.md``). A tape past ``max_tape_bytes`` goes on in a new part; as it starts
and every :data:`SWEEP_EVERY` seconds the thread deletes tapes older than ``max_age`` and the oldest while the
folder holds more than ``max_total_bytes``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict, deque
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
BATCH_EVERY = 0.05
"""Seconds messages gather once one has come: a tape is this much behind, or a little more."""
SLICE = 256
"""Messages formatted in one go on the event loop (about a millisecond): its other callbacks run between slices."""
SWEEP_EVERY = 30.0
CHUNK = 64
"""Messages :meth:`~shadowproxy.core.redact.Redactor.clean` looks at together: one call's cost spread over many
messages, and one message that needs masking sends only its chunk to be looked at message by message."""
C2S, S2C = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
_now = time.time

Forwarded = tuple[SessionRecord, float, Direction, bytes, str]
"""A message the chain let through as it was (most): session, time, direction, its wire form as it went on, and
transport."""
Judged = tuple[SessionRecord, float, Direction, bytes, str, Verdict, Message | None]
"""Any other: the same, then the verdict and the message the chain stopped or answered (for the proxy's answer
line)."""
Item = Forwarded | Judged
"""Only the bytes are kept, not the message: a decoded message held until the writer's next batch would outlive the
young generation and make the garbage collector's work."""


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
    """Writes the tapes of one proxy: :meth:`start` on the event loop, :meth:`record` each message, :meth:`drain`
    and :meth:`stop` at the end. Used with no event loop (the tests), it formats and writes at :meth:`stop`."""

    def __init__(self, config: TapesConfig) -> None:
        self.config = config
        self.all = config.record == "all"
        self.dir = Path(config.dir)
        self.redactor: Redactor | None = config.redact.redactor() if config.redact is not None else None
        self.dropped = 0
        self.written = 0
        self.unattributed = 0
        """Messages of no session, recorded nowhere (``record: all``)."""
        self._queue: deque[Item] = deque()
        self._limit = config.queue
        self._soon = max(1, config.queue // 2)
        self._files = TapeFiles(self.dir, config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due: asyncio.Handle | None = None
        """The next slice, once messages are waiting."""
        self._tapes: OrderedDict[str, _Tape] = OrderedDict()
        self._writes: Writes = []
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
        if verdict is FORWARD:
            # raw: the bytes the message came as; to_bytes() encodes one the front end is about to send.
            queue.append((record, _now(), direction, message.raw or message.to_bytes(), transport))
        else:
            wire = (verdict.message or message).to_bytes()
            queue.append((record, _now(), direction, wire, transport, verdict, None if verdict.is_forward else message))
        if self._due is None:
            loop = self._loop
            if loop is not None:
                self._due = loop.call_later(BATCH_EVERY, self._tick)
        elif len(queue) == self._soon:
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
        """On the event loop, as the proxy stops: format and hand over what is queued; what comes later waits for
        :meth:`stop`."""
        if self._due is not None:
            self._due.cancel()
            self._due = None
        self._loop = None
        self._slice(len(self._queue))

    def stop(self) -> None:
        """Format what is still queued (the loop no longer does), write everything, close the files."""
        self.drain()
        self._files.stop()

    def _tick(self) -> None:
        self._due = None
        self._slice(SLICE)
        loop, left = self._loop, len(self._queue)
        if loop is not None and left:
            # A full slice waiting goes next, after the loop's I/O; a few wait for more to gather.
            self._due = loop.call_soon(self._tick) if left >= SLICE else loop.call_later(BATCH_EVERY, self._tick)
        if time.monotonic() - self._swept > SWEEP_EVERY:
            self._swept = time.monotonic()
            self._files.sweep(frozenset(tape.path for tape in self._tapes.values()))

    def _slice(self, count: int) -> None:
        """Format up to ``count`` queued messages, then hand each tape's new lines to the writing thread."""
        queue = self._queue
        touched: list[_Tape] = []
        redactor = self.redactor
        tapes, limit = self._tapes, self.config.max_tape_bytes
        # Direction is an Enum: the two prefixes are told apart by identity, not looked up.
        to_server, to_client = self._prefix(C2S, FORWARD), self._prefix(S2C, FORWARD)
        left = min(count, len(queue))
        while left > 0:
            items = [queue.popleft() for _ in range(min(left, CHUNK))]
            left -= len(items)
            # One look at a chunk's messages together: when nothing in them could be masked, none is looked at
            # alone. NUL joins them: JSON holds none, and it is no separator a detector reads across.
            chunk = b"\0".join([item[3] for item in items])
            clean = redactor is None or redactor.clean(chunk)
            plain = clean and chunk.find(b"\n") < 0 and chunk.find(b"\r") < 0
            for item in items:
                tape = tapes.get(item[0].id)
                if plain and len(item) == 5 and tape is not None and tape.size <= limit:
                    # The usual message, inline: a call per message is a good part of the formatting's time.
                    pending = tape.pending
                    if not pending:
                        touched.append(tape)
                    line = b'{"t":%.6f%s%s}\n' % (
                        item[1] - tape.started,
                        to_server if item[2] is C2S else to_client,
                        item[3],
                    )
                    pending.append(line)
                    tape.size += len(line)
                    continue
                try:
                    touched.append(self._format(item, clean))
                except Exception:  # one message that cannot be written must not stop the recording
                    log.exception("could not put a message on its tape")
                    self.written -= 1
            self.written += len(items)
        for tape in touched:
            self._hand_over(tape)
        if self._writes:
            writes, self._writes = self._writes, []
            self._files.write(writes)

    def _format(self, item: Item, clean: bool) -> _Tape:
        record, now, direction, wire, transport = item[:5]
        verdict, stopped = (item[5], item[6]) if len(item) == 7 else (FORWARD, None)  # type: ignore[misc]
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
        return tape

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
            _, old = self._tapes.popitem(last=False)
            self._hand_over(old)
            self._writes.append((old.path, None))
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
        self._hand_over(tape)
        self._writes.append((tape.path, None))
        tape.part += 1
        tape.path = self.dir / f"{tape.stem}.{tape.part}{SUFFIX}"
        tape.size = 0
        self._header(record, tape, transport)

    def _hand_over(self, tape: _Tape) -> None:
        """The tape's lines so far, queued for the writing thread (before what follows: a new part's, another
        tape's)."""
        if tape.pending:
            self._writes.append((tape.path, b"".join(tape.pending)))
            tape.pending.clear()


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
