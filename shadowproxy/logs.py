"""Logging to stderr, as text or one JSON object per line. Never stdout: in stdio mode that is the protocol.

Every line logged while a client request is handled carries that request's id
(:data:`REQUEST_ID`, set where the request enters the proxy), and so do the
upstream's lines about the same request, so one id ties the two together. The
id costs a context variable per request; it is formatted only when a line is.
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

REQUEST_ID: ContextVar[str | None] = ContextVar("shadowproxy_request_id", default=None)
REQUEST_ID_HEADER = "X-Request-Id"
_ACCEPTED_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_PREFIX = secrets.token_hex(3)
_numbers = itertools.count(1)


def new_request_id(given: str | None = None) -> str:
    """The client's own ``X-Request-Id`` when it is a short plain token, else ``<process>-<counter>``."""
    if given is not None and _ACCEPTED_ID.fullmatch(given):
        return given
    return f"{_PREFIX}-{next(_numbers):x}"


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
        return True


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
