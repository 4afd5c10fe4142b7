"""A handshake-era client's GET stream and ``resources/subscribe``, carried as ``subscriptions/listen`` to a
2026-07-28-only server.

The GET stream becomes one listen stream for the list-changed notifications and each subscribed resource gets
a listen stream of its own, each pumped into the session's unsolicited messages (what a handshake server sends
unasked), so that subscribing and unsubscribing never disturb another stream. The listen streams'
acknowledgments and ``subscriptionId`` stamps stay inside.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from shadowproxy.bridge.shapes import SUBSCRIPTION_ID
from shadowproxy.core.errors import JsonRpcError
from shadowproxy.core.jsonrpc import Kind, Message
from shadowproxy.upstreams.base import Exchange, UnsolicitedHandler

ACKNOWLEDGED = "notifications/subscriptions/acknowledged"
LIST_CHANGED = {"toolsListChanged": True, "promptsListChanged": True, "resourcesListChanged": True}
LISTED = ""
"""The pump of the GET stream's listen stream, among the resources' (no URI is empty)."""
_listen_ids = itertools.count(1)


def listen_request(notifications: dict[str, Any]) -> Message:
    body = {
        "jsonrpc": "2.0",
        "id": f"shadowproxy-listen-{next(_listen_ids)}",
        "method": "subscriptions/listen",
        "params": {"notifications": notifications},
    }
    return Message(Kind.REQUEST, body)


def unstamped(message: Message) -> Message:
    """A listen stream's notification as a handshake-era client gets it: without the subscription's id."""
    params = message.params
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict) or SUBSCRIPTION_ID not in meta:
        return message
    rest = {key: value for key, value in meta.items() if key != SUBSCRIPTION_ID}
    kept = {key: value for key, value in params.items() if key != "_meta"}  # type: ignore[union-attr]
    if rest:
        kept["_meta"] = rest
    return message.evolve(params=kept)


async def pump(stream: Exchange, deliver: UnsolicitedHandler) -> None:
    """One resource's listen stream into the session's unsolicited messages, until it ends or is cancelled."""
    try:
        while True:
            message = await stream.next()
            if message.is_reply:
                return
            if message.method != ACKNOWLEDGED:
                deliver(unstamped(message))
    except JsonRpcError:
        return
    finally:
        await stream.close(cancel=True)


class Subscriptions:
    """The resources a session follows, each with its listen stream's pump."""

    def __init__(self) -> None:
        self.pumps: dict[str, asyncio.Task[None]] = {}

    def stop(self, uri: str) -> None:
        task = self.pumps.pop(uri, None)
        if task is not None:
            task.cancel()

    def stop_all(self) -> None:
        for uri in list(self.pumps):
            self.stop(uri)
