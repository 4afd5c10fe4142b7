"""The built-in ``audit`` interceptor: one JSON line per tool call, resource read, prompt get and policy decision.

Options (:class:`AuditOptions`)::

    file:       /var/log/shadowproxy/audit.jsonl   a file, rotated by size; or
    stream:     stdout                             stdout or stderr (the default is stdout;
                                                   never stdout under ``shadowproxy stdio``, where it is the protocol)
    max_bytes:  10485760                           rotate the file at this size (0: never)
    backups:    5                                  rotated files kept
    detectors:  [email, api_key, ...]              redactors for arguments and errors (default: all)
    patterns:   []                                 extra regexes to mask

It is a :class:`~shadowproxy.core.chain.VerdictObserver`, not an interceptor: it
sees each message after the whole chain has decided, so a line tells what the
client and the server really got: ``outcome`` is ok, error, blocked or answered
(by the proxy), and ``decision`` names the interceptor that blocked, answered or
modified it. It has no say in the verdict, so turning it on leaves the chain's
skip (:meth:`~shadowproxy.core.chain.Chain.declines`) as it was; of the messages the
chain skips it :meth:`~AuditInterceptor.wants` only the calls it writes and
their replies.
Lines are written off the hot path: the event loop only queues a dict, and a
:class:`~logging.handlers.QueueListener` thread redacts, encodes and writes it.
The rules engine's ``log`` action (logger ``shadowproxy.audit``) goes to the same place.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import orjson
from pydantic import BeforeValidator, Field, model_validator

from shadowproxy.config.validation import Section, located, options_from
from shadowproxy.core import tracing
from shadowproxy.core.chain import Action, Direction, MessageContext, Verdict
from shadowproxy.core.errors import JsonRpcError
from shadowproxy.core.jsonrpc import REQUEST, Message
from shadowproxy.core.logs import REQUEST_ID
from shadowproxy.core.redact import DETECTORS, Redactor

AUDIT_LOGGER = "shadowproxy.audit"
AUDITED = {"tools/call": "tool", "resources/read": "resource", "prompts/get": "prompt"}
PENDING_LIMIT = 10_000
MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 5
C2S = Direction.CLIENT_TO_SERVER


def _stream(value: Any) -> Any:
    if value not in ("stdout", "stderr"):
        raise ValueError(f"must be stdout or stderr, not {value!r}")
    return value


def _whole(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"must be a whole number >= 0, not {value!r}")
    return value


def _detectors(value: Any) -> Any:
    if not isinstance(value, list | tuple) or any(name not in DETECTORS for name in value):
        raise ValueError(f"must be a list of: {', '.join(DETECTORS)}")
    return tuple(value)


def _patterns(value: Any) -> Any:
    if not isinstance(value, list | tuple) or not all(isinstance(pattern, str) for pattern in value):
        raise ValueError("must be a list of regular expressions")
    return tuple(value)


class AuditOptions(Section):
    """Where the lines go and what is masked in them."""

    noun: ClassVar[str] = "option"

    file: Annotated[str, Field(min_length=1)] | None = None
    stream: Annotated[str, BeforeValidator(_stream)] = "stdout"
    max_bytes: Annotated[int, BeforeValidator(_whole)] = MAX_BYTES
    backups: Annotated[int, BeforeValidator(_whole)] = BACKUPS
    detectors: Annotated[tuple[str, ...], BeforeValidator(_detectors)] = DETECTORS
    patterns: Annotated[tuple[str, ...], BeforeValidator(_patterns)] = ()

    @model_validator(mode="after")
    def _one_place(self) -> AuditOptions:
        if self.file is not None and "stream" in self.model_fields_set:
            raise located("stream", "give file or stream, not both")
        try:
            Redactor(self.detectors, self.patterns)
        except Exception as exc:
            raise located("patterns", f"invalid regular expression: {exc}") from None
        return self


class AuditFormatter(logging.Formatter):
    """Runs in the writer thread: redacts, stamps and encodes one event per line."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        event = record.msg
        if not isinstance(event, dict):
            # The rules engine logs its events as JSON text.
            try:
                event = orjson.loads(record.getMessage())
            except orjson.JSONDecodeError:
                event = {"event": "log", "message": record.getMessage()}
            if not isinstance(event, dict):
                event = {"event": "log", "message": event}
        line = {"time": stamp, **event}
        # Arguments, errors and free text may carry secrets; ids, names and verdicts do not.
        for key in ("arguments", "error", "resource", "message"):
            if line.get(key) is not None:
                line[key] = self.redactor.value(line[key])
        return orjson.dumps(line).decode()


class Enqueue(logging.handlers.QueueHandler):
    """Queues the record as it is: formatting (and redaction) happen in the writer thread, not on the hot path."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


@dataclass(slots=True)
class Call:
    """A call in flight: when the client's request was judged, and its line so far."""

    started: float
    event: dict[str, Any]


class AuditInterceptor:
    """Writes the audit log: a verdict observer, configured as an interceptor; it never changes or stops a message."""

    name = "audit"

    def __init__(self, options: AuditOptions) -> None:
        self.options = options
        self.pending: dict[tuple[str | None, object], Call] = {}
        self._queue: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self._enqueue = Enqueue(self._queue)
        self._listener: logging.handlers.QueueListener | None = None
        self._logger = logging.getLogger(AUDIT_LOGGER)
        self._saved: tuple[int, bool] = (self._logger.level, self._logger.propagate)

    def wants(self, message: Message, direction: Direction, request: Message | None) -> bool:
        """Whether :meth:`observe` writes anything for ``message`` forwarded untouched: a call, or its reply."""
        if direction is C2S:
            return message.kind is REQUEST and message.data["method"] in AUDITED
        return request is not None and message.is_reply and request.method in AUDITED

    async def start(self) -> None:
        """Open the sink, start the writer thread, and route ``shadowproxy.audit`` to it."""
        options = self.options
        handler: logging.Handler
        if options.file is not None:
            handler = logging.handlers.RotatingFileHandler(
                options.file, maxBytes=options.max_bytes, backupCount=options.backups, encoding="utf-8"
            )
        else:
            handler = logging.StreamHandler(sys.stdout if options.stream == "stdout" else sys.stderr)
        handler.setFormatter(AuditFormatter(Redactor(options.detectors, options.patterns)))
        self._listener = logging.handlers.QueueListener(self._queue, handler)
        self._listener.start()
        self._saved = (self._logger.level, self._logger.propagate)
        self._logger.addHandler(self._enqueue)
        self._logger.setLevel(logging.INFO)
        self._logger.propagate = False

    async def close(self) -> None:
        """Write what is queued, close the sink; lines observed from then on are dropped."""
        self._logger.removeHandler(self._enqueue)
        self._logger.setLevel(self._saved[0])
        self._logger.propagate = self._saved[1]
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
            for handler in listener.handlers:
                handler.close()

    def write(self, event: dict[str, Any]) -> None:
        if self._listener is None:
            return  # not started, or closed: nothing would ever take the line off the queue
        record = logging.LogRecord(AUDIT_LOGGER, logging.INFO, __file__, 0, event, None, None)
        self._queue.put_nowait(record)

    def observe(self, ctx: MessageContext, verdict: Verdict) -> None:
        """One decided message: start, finish or refuse a call; note any other policy decision."""
        message = ctx.message
        session = ctx.session.id if ctx.session is not None else None
        if ctx.direction is C2S and message.is_request and message.method in AUDITED:
            call = Call(time.perf_counter(), self.call_event(ctx, verdict))
            if verdict.action is Action.FORWARD:
                if len(self.pending) >= PENDING_LIMIT:
                    self.pending.pop(next(iter(self.pending)))
                self.pending[(session, message.id)] = call
            else:
                self.finish(call, "blocked" if verdict.action is Action.BLOCK else "answered", verdict.error)
            return
        request = ctx.request
        if message.is_reply and request is not None and request.method in AUDITED:
            call = self.pending.pop((session, message.id), None)  # type: ignore[assignment]
            if call is not None:
                outcome, error = reply_outcome(message.error, message.result, verdict)
                if touched(verdict):
                    call.event["reply_decision"] = decision(verdict)
                self.finish(call, outcome, error)
            return
        if touched(verdict):
            event = self.context_event("decision", ctx)
            event.update(direction=ctx.direction.value, kind=message.kind.value)
            event["decision"] = decision(verdict)
            if verdict.error is not None:
                event["error"] = verdict.error.message
            self.write(event)

    def context_event(self, name: str, ctx: MessageContext) -> dict[str, Any]:
        record = ctx.session
        client = record.client_info if record is not None else None
        event = {
            "event": name,
            "session": record.id if record is not None else None,
            "principal": ctx.principal,
            "client": {"name": client.get("name"), "version": client.get("version")} if client else None,
            "upstream": ctx.upstream,
            "transport": ctx.transport,
            "method": ctx.method,
        }
        if tracing.ACTIVE is not None:
            event["request_id"] = REQUEST_ID.get()
            event["trace_id"] = tracing.ACTIVE.trace_id()
        return event

    def call_event(self, ctx: MessageContext, verdict: Verdict) -> dict[str, Any]:
        params = ctx.message.params if isinstance(ctx.message.params, dict) else {}
        event = self.context_event("call", ctx)
        event["id"] = ctx.message.id
        target = AUDITED[ctx.message.method]  # type: ignore[index]
        event[target] = params.get("uri") if target == "resource" else params.get("name")
        event["arguments"] = params.get("arguments")
        if touched(verdict):
            event["decision"] = decision(verdict)
        return event

    def finish(self, call: Call, outcome: str, error: JsonRpcError | str | None) -> None:
        event = call.event
        event["outcome"] = outcome
        event["error"] = error.message if isinstance(error, JsonRpcError) else error
        event["duration"] = round(time.perf_counter() - call.started, 6)
        self.write(event)


def reply_outcome(error: dict[str, Any] | None, result: Any, verdict: Verdict) -> tuple[str, JsonRpcError | str | None]:
    """What became of a call, from its reply and the verdict on that reply."""
    if verdict.action is Action.BLOCK:
        return "blocked", verdict.error
    if error is not None:
        return "error", str(error.get("message"))
    if isinstance(result, dict) and result.get("isError"):
        content = result.get("content")
        first = content[0] if isinstance(content, list) and content else None
        return "error", first.get("text") if isinstance(first, dict) else None
    return "ok", None


def touched(verdict: Verdict) -> bool:
    """Whether an interceptor blocked, answered or changed the message."""
    return verdict.action is not Action.FORWARD or verdict.message is not None


def decision(verdict: Verdict) -> dict[str, Any]:
    action = "modify" if verdict.action is Action.FORWARD else verdict.action.value
    return {"action": action, "by": verdict.by}


def create(options: AuditOptions | Mapping[str, Any]) -> AuditInterceptor:
    """The entry point: the options, validated here when they are a mapping."""
    if not isinstance(options, AuditOptions):
        options = options_from(AuditOptions, options, "interceptors.audit")
    return AuditInterceptor(options)
