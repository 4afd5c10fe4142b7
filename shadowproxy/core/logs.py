"""Logging to stderr, as text or one JSON object per line. Never stdout: in stdio mode that is the protocol.

Every line logged while a client request is handled carries that request's id
(:data:`REQUEST_ID`, set where the request enters the proxy), and so do the
upstream's lines about the same request, so one id ties the two together. The
id costs a context variable per request; it is formatted only when a line is.

A malformed request from a client is one warning line with its own request id, :data:`BURST` of them at once and
as many in each :data:`WINDOW` seconds after that (:func:`bad_request`): the proxy's own refusals, and aiohttp's
traceback for each head its parser refuses (:class:`ParseErrors`), so that a flood of bad heads cannot flood the log.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import sys
import time
from collections.abc import MutableMapping
from contextvars import ContextVar

import orjson

from shadowproxy.core import tracing
from shadowproxy.core.tokenbucket import TokenBucket

REQUEST_ID: ContextVar[str | None] = ContextVar("shadowproxy_request_id", default=None)
REQUEST_ID_HEADER = "X-Request-Id"
# What new_request_id reads; public for the front door, which makes every HTTP request's id without the call.
ACCEPTED_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
ID_PREFIX = secrets.token_hex(3)
ID_NUMBERS = itertools.count(1)


def new_request_id(given: str | None = None) -> str:
    """The client's own ``X-Request-Id`` when it is a short plain token, else ``<process>-<counter>``."""
    if given is not None and ACCEPTED_ID.fullmatch(given):
        return given
    return f"{ID_PREFIX}-{next(ID_NUMBERS):x}"


def tag(headers: MutableMapping[str, str]) -> None:
    """Put the id of the request being handled in ``headers`` as ``X-Request-Id``, when there is one."""
    request_id = REQUEST_ID.get()
    if request_id is not None:
        headers[REQUEST_ID_HEADER] = request_id


class RequestIdFilter(logging.Filter):
    """Puts the current request id on each record (unless the caller gave one with ``extra``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        request_id = record.request_id
        record.request_tag = f" [{request_id}]" if request_id else ""
        if tracing.ACTIVE is not None:
            trace_id = record.trace_id = tracing.ACTIVE.trace_id()
            if trace_id is not None:
                record.request_tag = f" [{request_id} trace={trace_id}]"
        return True


BURST = 20
WINDOW = 10.0
MAX_REASON = 200


class Throttle:
    """``burst`` lines at once, then ``burst`` in each ``window`` seconds on average; the first line let through
    after some were held back says how many."""

    def __init__(self, burst: int = BURST, window: float = WINDOW) -> None:
        self.bucket = TokenBucket(burst / window, burst, time.monotonic())
        self.held = 0

    def admit(self) -> int | None:
        """``None``: leave this line out; else how many lines were left out before it."""
        if self.bucket.take(time.monotonic()):
            self.held += 1
            return None
        held, self.held = self.held, 0
        return held


BAD_REQUESTS = Throttle()


def admitted(text: str) -> str | None:
    """``text`` as a bad-request line, saying how many were left out before it; ``None``: leave it out too."""
    held = BAD_REQUESTS.admit()
    if held is None:
        return None
    return f"{text} ({held} more bad requests not logged)" if held else text


def bad_request(logger: logging.Logger, text: str) -> None:
    """One warning line about a malformed or refused request, with the current request id; throttled."""
    line = admitted(text)
    if line is not None:
        logger.warning("%s", line)


class ParseErrors(logging.Filter):
    """aiohttp's "Error handling request" with the traceback of a head its parser refused becomes one throttled
    line with a request id of its own: the client's mistake is not the proxy's error."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Imported here: this filter sees only aiohttp's records, and `shadowproxy stdio` in front of a stdio server
        # never loads aiohttp.
        from aiohttp.http_exceptions import HttpProcessingError

        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        reason = " ".join(str(error.message).split())[:MAX_REASON]
        line = admitted(f"bad request from {remote}: {error.code} {reason}")
        if line is None:
            return False
        record.msg, record.args = "%s", (line,)
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        # A head that could not be read is a request of its own; nothing before it on the connection owns it.
        record.request_id = new_request_id()
        return True


PARSE_ERRORS = ParseErrors()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        trace_id = getattr(record, "trace_id", None)
        if trace_id:
            entry["trace_id"] = trace_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(request_tag)s: %(message)s"


def setup(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.server").addFilter(PARSE_ERRORS)
