"""The hold book in Redis, on the Redis store's connection (see :mod:`shadowproxy.stores.holds`).

Keys (under the store's prefix)::

    <prefix>hold:<id>     hash: record (the hold as written), state, ending (what settled it); expires ``KEEP``
                          seconds after it was written or settled
    <prefix>holds         sorted set id -> created_at (listing)
"""

from __future__ import annotations

import time

import orjson
from redis.exceptions import RedisError

from shadowproxy.stores.holds import KEEP, Hold
from shadowproxy.stores.redis_store import RedisStore

# The hold's JSON is never re-encoded in Lua (cjson turns [] into {}): the ending is kept beside it.
_SETTLE_SCRIPT = """
if redis.call('HGET', KEYS[1], 'state') ~= 'pending' then return false end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'ending', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return redis.call('HGET', KEYS[1], 'record')
"""


class RedisHoldBook:
    """Holds as keys with an expiry and one sorted set to list them, on the store's connection."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.redis = store._redis
        self.index = f"{store.prefix}holds"
        self._settle = self.redis.register_script(_SETTLE_SCRIPT)

    def _key(self, hold_id: str) -> str:
        return f"{self.store.prefix}hold:{hold_id}"

    async def add(self, hold: Hold) -> None:
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                key = self._key(hold["id"])
                pipe.hset(key, mapping={"record": orjson.dumps(hold), "state": hold["state"]})
                pipe.pexpire(key, int(KEEP * 1000))
                pipe.zadd(self.index, {hold["id"]: hold["created_at"]})
                pipe.zremrangebyscore(self.index, "-inf", time.time() - KEEP)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self.store._error(exc) from exc

    async def get(self, hold_id: str) -> Hold | None:
        try:
            fields = await self.redis.hmget(self._key(hold_id), "record", "ending")
        except (RedisError, OSError) as exc:
            raise self.store._error(exc) from exc
        return _merged(*fields)

    async def settle(self, hold_id: str, ending: Hold) -> Hold | None:
        try:
            args = [ending["state"], orjson.dumps(ending), int(KEEP * 1000)]
            raw = await self._settle(keys=[self._key(hold_id)], args=args)
        except (RedisError, OSError) as exc:
            raise self.store._error(exc) from exc
        return {**orjson.loads(raw), **ending} if raw else None

    async def list(self, limit: int = 100) -> list[Hold]:
        try:
            ids = await self.redis.zrevrange(self.index, 0, limit - 1)
            async with self.redis.pipeline(transaction=False) as pipe:
                for hold_id in ids:
                    pipe.hmget(self._key(hold_id.decode()), "record", "ending")
                rows = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self.store._error(exc) from exc
        return [hold for fields in rows if (hold := _merged(*fields)) is not None]


def _merged(record: bytes | None, ending: bytes | None) -> Hold | None:
    if record is None:
        return None
    hold: Hold = orjson.loads(record)
    if ending is not None:
        hold.update(orjson.loads(ending))
    return hold
