"""Redis specifics: key layout, TTL on the hash, prefixes that keep deployments apart."""

from __future__ import annotations

import time
import uuid

import pytest
import redis.asyncio as aioredis

from shadowproxy.core.record import SessionRecord
from shadowproxy.stores import StoreError, open_store
from tests.redis_server import RedisServer, free_port


async def test_hash_per_session_with_ttl_and_indexes(redis_server: RedisServer) -> None:
    prefix = f"t{uuid.uuid4().hex}:"
    store = open_store(redis_server.url, key_prefix=prefix, ttl=600)
    now = time.time()
    await store.put_many([SessionRecord(id="abc", principal="alice", created_at=now - 5, last_seen=now)])
    raw = aioredis.Redis.from_url(redis_server.url)
    fields = await raw.hgetall(f"{prefix}session:abc")
    assert fields[b"state"] == b"initializing" and fields[b"upstream"] == b"default"
    assert b'"principal":"alice"' in fields[b"record"] and float(fields[b"last_seen"]) == now
    ttl_ms = await raw.pttl(f"{prefix}session:abc")
    assert 590_000 < ttl_ms <= 600_000
    assert await raw.zscore(f"{prefix}sessions:created", "abc") == now - 5
    assert await raw.zscore(f"{prefix}sessions:seen", "abc") == now
    await store.append_event("abc", "s1", b"payload")
    assert await raw.xlen(f"{prefix}events:abc") == 1
    assert await raw.pttl(f"{prefix}events:abc") > 0
    await raw.aclose()
    await store.close()


async def test_prefixes_keep_deployments_apart(redis_server: RedisServer) -> None:
    one = open_store(f"{redis_server.url}?prefix=one-{uuid.uuid4().hex}:")
    two = open_store(redis_server.url, key_prefix=f"two-{uuid.uuid4().hex}:")
    await one.put_many([SessionRecord(id="same")])
    assert await two.get("same") is None
    assert await two.list() == ([], None)
    assert await one.get("same") is not None
    await one.close()
    await two.close()


async def test_session_expired_by_redis_is_skipped_and_cleaned(redis_server: RedisServer) -> None:
    prefix = f"t{uuid.uuid4().hex}:"
    store = open_store(redis_server.url, key_prefix=prefix, ttl=60)
    raw = aioredis.Redis.from_url(redis_server.url)
    await store.put_many([SessionRecord(id="gone"), SessionRecord(id="kept")])
    await raw.delete(f"{prefix}session:gone")  # what Redis does when the hash's TTL runs out
    page, _ = await store.list()
    assert [r.id for r in page] == ["kept"]
    await raw.zadd(f"{prefix}sessions:seen", {"gone": 1.0})
    assert await store.expire() == 1
    assert await raw.zscore(f"{prefix}sessions:created", "gone") is None
    await raw.aclose()
    await store.close()


async def test_unreachable_redis_is_a_store_error_naming_the_url() -> None:
    store = open_store(f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    with pytest.raises(StoreError, match=r"redis store redis://:\*\*\*@127\.0\.0\.1:\d+/0: ") as caught:
        await store.open()
    assert "hunter2" not in str(caught.value)
    await store.close()
