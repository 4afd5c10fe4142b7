"""An OTLP/HTTP endpoint that takes every export and keeps nothing: ``python benchmarks/otlp_sink.py --port P``.

The tracing rows of ``benchmarks.e2e`` export their spans here, so that a sampled row pays for making, batching
and sending its spans (as in production) and not for retries against a collector that is not there.
"""

from __future__ import annotations

import argparse

from aiohttp import web


async def take(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=b"", content_type="application/x-protobuf")


async def alive(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_post("/v1/traces", take)
    app.router.add_get("/v1/traces", alive)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
