"""Which session a server message belongs to, when one server connection serves several sessions.

A reply names its request by id and progress names it by token; a log line, a sampling or elicitation
request, a resource update carry nothing of the kind. Over stdio the 2026-07-28 revision and the SDKs
tie such messages to their request only inside the server (the SDKs' ``related_request_id`` is transport
metadata, not on the wire), so the proxy can attribute them only by what is in flight:

* every request in flight comes from one session (always so for a session's own child or connection):
  the newest of them takes it, as the server most likely sent it while serving that one;
* nothing is in flight: list-changed notifications (state of the server every session shares, with no
  content) go to every session; ``notifications/resources/updated`` to the sessions subscribed to its URI;
  anything else to the one session the connection serves, if it serves one;
* otherwise the message goes nowhere: it is counted in ``shadowproxy_unattributed_messages_total`` and
  logged once per burst, and a server request gets a JSON-RPC error back, so the server does not wait.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol, TypeVar

from prometheus_client import Counter

from shadowproxy.core.errors import INTERNAL_ERROR, JsonRpcError
from shadowproxy.core.jsonrpc import Message, error_response

log = logging.getLogger("shadowproxy.upstreams")

UNATTRIBUTED = Counter(
    "shadowproxy_unattributed_messages",
    "Server messages that could not be tied to one session of a shared upstream connection, and went nowhere.",
    ["upstream", "method"],
)

SHARED_STATE = frozenset(
    {
        "notifications/tools/list_changed",
        "notifications/prompts/list_changed",
        "notifications/resources/list_changed",
    }
)
RESOURCE_UPDATED = "notifications/resources/updated"
LISTEN = "subscriptions/listen"
LOG_EVERY = 10.0


class Owned(Protocol):
    """A request in flight, as attribution sees it: the session (channel) that sent it, and the request."""

    owner: object
    request: Message


T = TypeVar("T", bound=Owned)


def claimant(in_flight: dict[Any, T]) -> T | None:
    """The request a message tied to no id goes to: the newest in flight, when all in flight share one owner.

    A ``subscriptions/listen`` in flight is left out while other requests are: it waits for what the server
    sends, it does not cause it, and each handshake-era session the era bridge carries on a shared process holds
    one for as long as it lives (a log line of one session's call would otherwise belong to no single session)."""
    if not in_flight:
        return None
    requests = [request for request in in_flight.values() if request.request.method != LISTEN]
    if not requests:
        requests = list(in_flight.values())
    newest = requests[-1]
    owner = newest.owner
    for request in requests:
        if request.owner is not owner:
            return None
    return newest


def refusal(message: Message) -> Message:
    """The error a server request that reaches no client gets back, so the server need not wait for its timeout."""
    error = JsonRpcError(
        INTERNAL_ERROR,
        f"the proxy cannot tell which client {message.method!r} is for: the server is shared by several "
        "sessions and the request names none of their requests; it was not delivered",
    )
    return error_response(message.id, error)


class Dropped:
    """Counts the messages of one upstream that went nowhere, and says so in the log once per burst."""

    __slots__ = ("last", "name", "since")

    def __init__(self, name: str) -> None:
        self.name = name
        self.last = 0.0
        self.since = 0

    def __call__(self, message: Message) -> None:
        method = message.method or "reply"
        UNATTRIBUTED.labels(self.name, method).inc()
        self.since += 1
        now = time.monotonic()
        if now - self.last >= LOG_EVERY:
            log.warning(
                "upstream %s sent %d message(s) (the last %r) that belong to no single session of the several "
                "it serves; they were not delivered (shadowproxy_unattributed_messages_total)",
                self.name,
                self.since,
                method,
            )
            self.last = now
            self.since = 0
