"""The stdio front (``shadowproxy stdio -- CMD``) traced into the SDK's in-memory exporter, in a process of its
own as a client launches it; when it ends, the spans are written to SPANS_FILE as JSON.

    python traced_stdio.py SPANS_FILE RULES_FILE CMD [ARGS...]
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import orjson
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shadowproxy import config as configuration
from shadowproxy.core import tracing
from shadowproxy.serve.runner import serve_stdio


def main() -> int:
    spans_file, rules, command = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
    settings = {"upstreams": {"local": {"command": command}}, "rules": [rules],
                "tracing": {"exporter": "console", "sample_ratio": 0}}  # fmt: skip
    config = configuration.for_stdio(configuration.from_mapping(settings))
    exporter = InMemorySpanExporter()
    tracing.start(config.tracing, exporter)
    try:
        return asyncio.run(serve_stdio(config))
    finally:
        spans = [
            {
                "name": span.name,
                "kind": str(span.kind),
                "trace_id": format(span.context.trace_id, "032x"),
                "span_id": format(span.context.span_id, "016x"),
                "parent_id": format(span.parent.span_id, "016x") if span.parent is not None else None,
                "attributes": dict(span.attributes or {}),
            }
            for span in exporter.get_finished_spans()
        ]
        spans_file.write_bytes(orjson.dumps(spans))


if __name__ == "__main__":
    sys.exit(main())
