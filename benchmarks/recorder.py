"""What a load run measured: one latency per request, the error count, the requests' clock."""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson

TEXT = "0123456789abcdef" * 4
"""The 64-byte text every ``tools/call`` echoes."""


def call_body(request_id: int) -> bytes:
    """The wire form of one echo ``tools/call`` request."""
    return b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":"%s"}}}' % (
        request_id,
        TEXT.encode(),
    )


def initialize_body(request_id: int, version: str = "2025-11-25") -> bytes:
    params = {
        "protocolVersion": version,
        "capabilities": {},
        "clientInfo": {"name": "shadowproxy-bench-load", "version": "1.0.0"},
    }
    return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": "initialize", "params": params})


INITIALIZED = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'


def is_echo(reply: bytes, request_id: int) -> bool:
    """Whether ``reply`` is the successful echo answer to request ``request_id``."""
    try:
        message = orjson.loads(reply)
        return message["id"] == request_id and message["result"]["content"][0]["text"] == TEXT
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return False


@dataclass(frozen=True, slots=True)
class Summary:
    """The figures of one measured window."""

    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float


class Recorder:
    """Collects latencies; :meth:`reset` starts the measured window (everything before it is warm-up)."""

    __slots__ = ("errors", "first_error", "latencies", "started")

    def __init__(self) -> None:
        self.latencies: list[int] = []
        self.errors = 0
        self.first_error: str | None = None
        self.started = time.perf_counter_ns()

    def reset(self) -> None:
        self.latencies = []
        self.errors = 0
        self.started = time.perf_counter_ns()

    def error(self, what: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = what

    def summary(self) -> Summary:
        seconds = (time.perf_counter_ns() - self.started) / 1e9
        ordered = sorted(self.latencies)
        count = len(ordered)

        def percentile(fraction: float) -> float:
            if not ordered:
                return float("nan")
            return ordered[min(count - 1, int(fraction * count))] / 1e6

        return Summary(
            requests=count,
            errors=self.errors,
            seconds=seconds,
            rps=count / seconds if seconds > 0 else 0.0,
            p50_ms=percentile(0.50),
            p90_ms=percentile(0.90),
            p99_ms=percentile(0.99),
        )
