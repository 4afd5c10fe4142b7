"""``shadowproxy tap``: follow a running proxy's live tap, one line per message, like ``tail -f``.

Exit codes: 0 when the stream ends (the proxy stopped, or ``--count`` events
came), 2 when the proxy cannot be reached or refuses the token.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any, TextIO
from urllib.parse import urlencode

import aiohttp
import orjson

from shadowproxy.core.sse import SseParser

TOKEN_ENV = "SHADOWPROXY_ADMIN_TOKEN"
DEFAULT_URL = "http://127.0.0.1:8765"
TAP_PATH = "/_shadowproxy/tap"
CONNECT_TIMEOUT = 10.0
ARROWS = {"client_to_server": "->", "server_to_client": "<-"}
EXAMPLES = f"""examples:
  export {TOKEN_ENV}=...
  shadowproxy tap                                   # every message, on {DEFAULT_URL}
  shadowproxy tap --url http://proxy:8765 --method tools/call --bodies
  shadowproxy tap --method 'notifications/*' --session 3f2a
  shadowproxy tap --json --count 100 > sample.jsonl # raw events, then exit

a line: time, -> (client to server) or <- (server to client), session id prefix, kind,
method, id, size, verdict (and the interceptor that decided), reply latency, transport/upstream.
exit codes: 0 the stream ended or --count events came; 2 cannot connect, or the token was refused.
"""


class TapFailure(Exception):
    """The tap cannot be followed; the message says why."""


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "tap",
        help="follow a running proxy's live tap (every message, as it passes)",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the proxy's base URL (default {DEFAULT_URL})")
    parser.add_argument("--token", help=f"the admin token (default: ${TOKEN_ENV})")
    parser.add_argument("--session", help="only this session (an id prefix)")
    parser.add_argument("--method", help="only this method: a prefix, or a glob like 'tools/*'")
    parser.add_argument("--bodies", action="store_true", help="show message bodies (redacted by the proxy)")
    parser.add_argument("--json", action="store_true", help="print each event as the raw JSON line")
    parser.add_argument("--count", type=int, metavar="N", help="exit after N messages")
    parser.set_defaults(handler=cmd_tap)


def tap_url(base: str, args: argparse.Namespace) -> str:
    url = base.rstrip("/")
    if not url.endswith(TAP_PATH):
        url += TAP_PATH
    query = {key: value for key in ("session", "method") if (value := getattr(args, key))}
    if args.bodies:
        query["bodies"] = "1"
    return f"{url}?{urlencode(query)}" if query else url


def cmd_tap(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get(TOKEN_ENV)
    if not token:
        print(f"shadowproxy tap: no admin token: give --token or set {TOKEN_ENV}", file=sys.stderr)
        return 2
    if args.count is not None and args.count < 1:
        print("shadowproxy tap: --count must be 1 or more", file=sys.stderr)
        return 2
    try:
        asyncio.run(follow(tap_url(args.url, args), token, args, sys.stdout))
    except TapFailure as exc:
        print(f"shadowproxy tap: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        pass  # the reader (head, a pager) has had enough
    return 0


async def follow(url: str, token: str, args: argparse.Namespace, out: TextIO) -> None:
    """Print events from ``url`` until the stream ends or ``args.count`` came."""
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT)
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    try:
        async with aiohttp.ClientSession(timeout=timeout) as client, client.get(url, headers=headers) as response:
            if response.status != 200:
                raise TapFailure(refusal(url, response.status, await response.text()))
            print(f"shadowproxy tap: following {url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
            parser = SseParser()
            seen = 0
            async for chunk in response.content.iter_any():
                for event in parser.feed(chunk):
                    if event.event == "dropped":
                        lost = orjson.loads(event.data)
                        print(
                            f"shadowproxy tap: {lost['dropped']} events dropped (reading too slowly)", file=sys.stderr
                        )
                        continue
                    out.write((event.data.decode() if args.json else line(orjson.loads(event.data))) + "\n")
                    out.flush()
                    seen += 1
                    if args.count is not None and seen >= args.count:
                        return
    except aiohttp.ClientConnectorError as exc:
        raise TapFailure(f"cannot connect to {url}: {exc.os_error.strerror or exc}") from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise TapFailure(f"the connection to {url} failed: {exc or type(exc).__name__}") from None


def refusal(url: str, status: int, text: str) -> str:
    if status == 401:
        return f"{url} refused the admin token (401): check --token or ${TOKEN_ENV}"
    if status == 404:
        return f"no tap at {url} (404): is the admin API on (admin.token in the proxy's config)?"
    return f"{url} answered {status}: {text.strip()[:200]}"


def line(event: dict[str, Any]) -> str:
    """One event as a line of text."""
    stamp = time.strftime("%H:%M:%S", time.localtime(event["time"])) + f".{int(event['time'] * 1000) % 1000:03d}"
    session = (event.get("session") or "-")[:8]
    parts = [stamp, ARROWS.get(event["direction"], "?"), f"{session:<8}", f"{event['kind']:<12}"]
    parts.append(event.get("method") or "-")
    if event.get("id") is not None:
        parts.append(f"id={event['id']}")
    parts.append(f"{event['size']}B")
    parts.append(event["verdict"] if event.get("by") is None else f"{event['verdict']}({event['by']})")
    if event.get("latency_ms") is not None:
        parts.append(f"{event['latency_ms']:.1f}ms")
    parts.append(f"{event['transport']}/{event['upstream']}")
    if "body" in event:
        parts.append(orjson.dumps(event["body"]).decode() if event["body"] is not None else "(body omitted)")
    return " ".join(parts)
