"""OpenTelemetry traces of the MCP requests through the proxy, when ``tracing`` is configured.

:data:`ACTIVE` is ``None`` unless :func:`start` was called, and every hook on the message path is one test of
it; OpenTelemetry is imported by :func:`start` only. With it on, each client request is a span (``SERVER``,
named ``<method> <tool>`` after the MCP semantic conventions, with ``mcp.method.name``, ``mcp.session.id``,
``jsonrpc.request.id``, ``gen_ai.tool.name`` and the verdict), continuing the client's W3C ``traceparent``
and ``tracestate`` (HTTP headers, or ``params._meta`` as stdio and 2026-07-28 clients send them). Its
children are the chain's judgement, the rules' decision and the upstream call (``CLIENT``), which carries
the context on: as headers to an HTTP server, in ``params._meta`` to a stdio one. Log lines and audit
events get the trace id beside the request id.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from shadowproxy.core.jsonrpc import Message

log = logging.getLogger(__name__)

TRACE_FIELDS = ("traceparent", "tracestate")
VERDICT = "shadowproxy.verdict"


class Tracing:
    """A tracer with its provider, sampler and exporter; the spans the proxy makes."""

    def __init__(self, settings: Any, exporter: Any = None) -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.trace = trace
        self.kinds = trace.SpanKind
        self.propagator = TraceContextTextMapPropagator()
        sampler = ParentBased(TraceIdRatioBased(settings.sample_ratio))
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": settings.service_name}), sampler=sampler
        )
        if exporter is not None:
            self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        elif settings.exporter == "console":
            # On stderr, beside the log: stdout is the MCP channel of the stdio front.
            self.provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.endpoint)))
        self.tracer = self.provider.get_tracer("shadowproxy")
        # Ratio 0 records only the traces clients name: a request naming none gets no span at all, and nothing is
        # passed on (the upstream decides for itself), so that tracing configured this way costs next to nothing.
        self.never = settings.sample_ratio <= 0
        self.none = trace.INVALID_SPAN

    @contextmanager
    def request(self, message: Message, session_id: str | None, headers: Mapping[str, str] | None) -> Iterator[Any]:
        """The span of one client request, continuing the trace its headers or ``_meta`` name."""
        span = self.begin(message, session_id, headers)
        if span is self.none:
            yield span
            return
        with self.current(span):
            yield span

    def current(self, span: Any) -> AbstractContextManager[Any]:
        """A span :meth:`begin` made (not :attr:`none`), current until the block ends, and ended then."""
        return self.trace.use_span(span, end_on_exit=True)  # type: ignore[no-any-return]

    @contextmanager
    def batch(self, size: int, session_id: str | None, headers: Mapping[str, str]) -> Iterator[Any]:
        """The span of a JSON-RPC batch (protocol 2025-03-26), continuing the trace its headers name: each of its
        messages' spans is a child."""
        parent = None
        if "traceparent" in headers:
            parent = self.propagator.extract({key: headers[key] for key in TRACE_FIELDS if key in headers})
        elif self.never:
            yield self.none
            return
        attributes: dict[str, Any] = {"rpc.system": "jsonrpc", "shadowproxy.batch.size": size}
        if session_id is not None:
            attributes["mcp.session.id"] = session_id
        with self.tracer.start_as_current_span(
            "batch", context=parent, kind=self.kinds.SERVER, attributes=attributes
        ) as span:
            yield span

    def begin(self, message: Message, session_id: str | None, headers: Mapping[str, str] | None = None) -> Any:
        """The span of one client request, begun but neither current nor ended: for a front whose request and
        reply are handled in different places (stdio, WebSocket, legacy SSE). :meth:`within` makes it current
        where the request is judged and carried; :func:`finish` ends it with the reply."""
        carrier: Mapping[str, Any] | None = None
        if headers is not None and "traceparent" in headers:
            carrier = headers
        else:
            params = message.params
            meta = params.get("_meta") if isinstance(params, dict) else None
            if isinstance(meta, dict) and isinstance(meta.get("traceparent"), str):
                carrier = meta
        # A request with its own headers is where handling begins: no span can be current yet (one of a batch comes
        # without them, its batch's span current), and the look into the context is most of a request's cost at
        # ratio 0.
        if carrier is None and self.never and (headers is not None or not self._in_span()):
            return self.none
        parent = (
            self.propagator.extract({key: str(carrier[key]) for key in TRACE_FIELDS if key in carrier})
            if carrier
            else None
        )
        method = message.method or "response"
        attributes: dict[str, Any] = {"mcp.method.name": method, "rpc.system": "jsonrpc"}
        if session_id is not None:
            attributes["mcp.session.id"] = session_id
        if message.id is not None:
            attributes["jsonrpc.request.id"] = str(message.id)
        name = method
        params = message.params
        target = params.get("name") if isinstance(params, dict) and method in ("tools/call", "prompts/get") else None
        if isinstance(target, str):
            name = f"{method} {target}"
            attributes["gen_ai.tool.name" if method == "tools/call" else "gen_ai.prompt.name"] = target
        return self.tracer.start_span(name, context=parent, kind=self.kinds.SERVER, attributes=attributes)

    def _in_span(self) -> bool:
        return self.trace.get_current_span().get_span_context().is_valid  # type: ignore[no-any-return]

    def within(self, span: Any) -> AbstractContextManager[Any]:
        """``span`` as the current one (its children's parent, the trace id of log lines), without ending it;
        a task spawned inside carries it on."""
        if span is self.none:
            return nullcontext()
        return self.trace.use_span(span, end_on_exit=False)  # type: ignore[no-any-return]

    @contextmanager
    def child(self, name: str, client: bool = False, **attributes: Any) -> Iterator[Any]:
        parent = self.trace.get_current_span()
        context = parent.get_span_context()
        # The sampler follows the parent: a child of a span not recorded is not either, so none is made.
        if (self.never or context.is_valid) and not context.trace_flags.sampled:
            yield parent
            return
        kind = self.kinds.CLIENT if client else self.kinds.INTERNAL
        with self.tracer.start_as_current_span(name, kind=kind, attributes=attributes) as span:
            yield span

    def inject(self, headers: MutableMapping[str, str]) -> None:
        """The current trace context into an upstream request's headers."""
        self.propagator.inject(headers)

    def with_meta(self, message: Message) -> Message:
        """``message`` with the current trace context in ``params._meta`` (for a stdio server)."""
        fields: dict[str, str] = {}
        self.propagator.inject(fields)
        params = message.params
        if not fields or not isinstance(params, dict | None):
            return message
        params = dict(params or {})
        meta = params.get("_meta")
        params["_meta"] = {**(meta if isinstance(meta, dict) else {}), **fields}
        return message.evolve(params=params)

    def trace_id(self) -> str | None:
        """The current span's trace id (32 hex digits), or ``None`` outside a sampled span."""
        context = self.trace.get_current_span().get_span_context()
        return format(context.trace_id, "032x") if context.is_valid else None

    def mark(self, verdict: Any) -> None:
        """The verdict on the current span (and its error, for a refusal)."""
        span = self.trace.get_current_span()
        if span.is_recording():
            span.set_attribute(VERDICT, verdict.action.value)
            if verdict.error is not None:
                span.set_attribute("rpc.jsonrpc.error_code", verdict.error.code)

    def shutdown(self) -> None:
        self.provider.shutdown()


ACTIVE: Tracing | None = None
"""The proxy's tracing, or ``None`` (off)."""


def start(settings: Any, exporter: Any = None) -> Tracing:
    """Turn tracing on; a program embedding the proxy may start it first, with an exporter of its own."""
    global ACTIVE
    if ACTIVE is None:
        ACTIVE = Tracing(settings, exporter)
        log.info(
            "tracing on: %s, sample ratio %s",
            "custom exporter" if exporter else settings.exporter,
            settings.sample_ratio,
        )
    return ACTIVE


def stop() -> None:
    """Flush and turn tracing off."""
    global ACTIVE
    if ACTIVE is not None:
        ACTIVE.shutdown()
        ACTIVE = None


def finish(span: Any, reply: Message | None = None) -> None:
    """End a span :meth:`Tracing.begin` made, with the error code of its reply when it is one."""
    error = reply.error if reply is not None else None
    if error is not None and span.is_recording():
        span.set_attribute("rpc.jsonrpc.error_code", error["code"])
    span.end()


def within(span: Any) -> AbstractContextManager[Any]:
    """``span`` current (see :meth:`Tracing.within`); nothing once tracing is off."""
    return ACTIVE.within(span) if ACTIVE is not None else nullcontext()


def trace_id() -> str | None:
    return ACTIVE.trace_id() if ACTIVE is not None else None
