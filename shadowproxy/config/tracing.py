"""The ``tracing`` section: OpenTelemetry traces of the requests through the proxy (off when absent).

::

    tracing:
      exporter: otlp                               # or console
      endpoint: http://collector:4318/v1/traces    # OTLP over HTTP; the default is this one on localhost
      sample_ratio: 0.1                            # of the traces the proxy starts; a sampled parent is kept

It needs the ``otel`` extra (``pip install 'shadowproxy-mcp[otel]'``); the proxy imports nothing of OpenTelemetry
without this section. The spans are :mod:`shadowproxy.core.tracing`'s.
"""

from __future__ import annotations

import importlib.util
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, ValidationInfo

from shadowproxy.config.auth import Url
from shadowproxy.config.validation import Number, Section

DEFAULT_ENDPOINT = "http://localhost:4318/v1/traces"
PACKAGES = ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http")


class TracingConfig(Section):
    noun: ClassVar[str] = "key"

    exporter: Literal["otlp", "console"] = "otlp"
    endpoint: Url = DEFAULT_ENDPOINT
    sample_ratio: Annotated[Number, Field(ge=0, le=1)] = 1.0
    service_name: Annotated[str, Field(min_length=1)] = "shadowproxy"

    @classmethod
    def prepare(cls, data: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if any(_absent(name) for name in PACKAGES):
            raise ValueError("needs the otel extra: pip install 'shadowproxy-mcp[otel]'")
        return data


def _absent(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is None
    except ModuleNotFoundError:
        return True
