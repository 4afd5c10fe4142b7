"""What instances say to each other through Redis: key names, the frame format, the takeover script.

A frame is one pub/sub message: a small JSON header, a newline, then the
JSON-RPC message's own bytes (when there is one), so the message is carried as
it came and decoded once on arrival. orjson never writes a newline, so the
first one ends the header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from shadowproxy.core.jsonrpc import Message, decode


@dataclass(frozen=True, slots=True)
class Keys:
    """Every Redis name the cluster uses, under the store's key prefix."""

    prefix: str

    @property
    def broadcast(self) -> str:
        """The channel every instance listens on (locate, closed, rate, reload, held, pin)."""
        return f"{self.prefix}cluster"

    def node(self, instance: str) -> str:
        """The channel one instance listens on: forwarded messages and answers for it."""
        return f"{self.prefix}node:{instance}"

    def heartbeat(self, instance: str) -> str:
        return f"{self.prefix}instance:{instance}"

    @property
    def up(self) -> str:
        """Written by the first heartbeat into a Redis that has none: gone when Redis forgot the cluster."""
        return f"{self.prefix}cluster:up"

    @property
    def settling(self) -> str:
        """Lives for one heartbeat_ttl after ``up`` was written again: no owner is judged lost meanwhile."""
        return f"{self.prefix}cluster:settling"

    def leaving(self, instance: str) -> str:
        """While an instance hands its sessions over: it no longer listens, but answers what it was sent."""
        return f"{self.prefix}leaving:{instance}"

    def owner(self, session_id: str) -> str:
        return f"{self.prefix}owner:{session_id}"

    def closed(self, session_id: str) -> str:
        """A tombstone: the session ended, whatever stale copy of its record a worker writes later."""
        return f"{self.prefix}closed:{session_id}"

    def rate(self, window: int, key: str) -> str:
        return f"{self.prefix}rate:{window}:{key}"


def frame(header: dict[str, Any], body: bytes = b"") -> bytes:
    return orjson.dumps(header) + b"\n" + body


def unframe(data: bytes) -> tuple[dict[str, Any], bytes]:
    head, _, body = data.partition(b"\n")
    return orjson.loads(head), body


def message_of(body: bytes) -> Message:
    decoded = decode(body)
    if isinstance(decoded, list):
        raise ValueError("a cluster frame carries one message, not a batch")
    return decoded


# Compare-and-set on the owner key, atomic in Redis, so that exactly one instance wins a takeover.
# KEYS[1] owner key; ARGV: me, the owner the caller's record names, key prefix, owner key ttl (ms).
# An owner is alive while its heartbeat key exists and its pub/sub connection is open: a killed
# process drops that connection at once, long before its heartbeat key would expire. A Redis that
# forgot the cluster (no ``up`` marker, or still settling) knows nothing of who lives: the owner stays.
CLAIM_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if not current then current = ARGV[2] end
if current ~= ARGV[1] and current ~= '' then
    local forgot = redis.call('EXISTS', ARGV[3] .. 'cluster:up') == 0
    if forgot or redis.call('EXISTS', ARGV[3] .. 'cluster:settling') == 1 then
        return current
    end
    if redis.call('EXISTS', ARGV[3] .. 'instance:' .. current) == 1 then
        local subscribers = redis.call('PUBSUB', 'NUMSUB', ARGV[3] .. 'node:' .. current)
        if tonumber(subscribers[2]) > 0 then
            return current
        end
    end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
return ARGV[1]
"""

# One heartbeat: KEYS heartbeat, up, settling; ARGV announcement, heartbeat ttl (ms), '1' when this instance
# has beaten before. The first heartbeat of a member that had beaten into a Redis without ``up`` opens the
# settling window (a new cluster's first one does not: there is nobody to wait for). Returns whether this
# instance's heartbeat was still there (0: Redis forgot it, and the instance says again what it holds).
HEARTBEAT_SCRIPT = """
local had = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('SET', KEYS[2], '1', 'NX') and ARGV[3] == '1' then
    redis.call('SET', KEYS[3], '1', 'PX', ARGV[2])
end
return had
"""

# Count hits of one rate key in its window and tell the other instances the new total, in one round trip.
RATE_SCRIPT = """
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local news = {t = 'rate', k = ARGV[4], w = tonumber(ARGV[5]), i = tonumber(ARGV[6]), c = total}
redis.call('PUBLISH', ARGV[3], cjson.encode(news) .. '\\n')
return total
"""
