"""Fixtures for the store suite: every backend, each on real storage (a temp SQLite file, a private Redis)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from shadowproxy.stores import SessionStore, open_store
from tests.redis_server import RedisServer, RedisUnavailable, missing

BACKENDS = ("memory", "sqlite", "redis")
StoreFactory = Callable[..., Awaitable[SessionStore]]


@dataclass(frozen=True)
class ExternalRedis:
    """A Redis someone else runs; only for tests that neither kill nor flush it."""

    url: str


def external_redis() -> ExternalRedis | None:
    url = os.environ.get("SHADOWPROXY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        return None
    finally:
        client.close()
    return ExternalRedis(url)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer | ExternalRedis]:
    """One private redis-server for the whole run (else a running Redis); tests keep apart by key prefix."""
    server = RedisServer()
    try:
        server.start()
    except RedisUnavailable as exc:
        fallback = external_redis()
        if fallback is None:
            missing(f"{exc}, and nothing answers at SHADOWPROXY_TEST_REDIS_URL or 127.0.0.1:6379")
        yield fallback
        return
    yield server
    server.stop()


@pytest.fixture
def fresh_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own, for tests that kill and restart it."""
    server = RedisServer()
    try:
        server.start()
    except RedisUnavailable as exc:
        missing(str(exc))
    yield server
    server.stop()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[StoreFactory]:
    """Open stores of the test's backend; they share one SQLite file or one Redis key prefix, like a restart would."""
    opened: list[SessionStore] = []
    if backend == "memory":
        url = "memory://"
    elif backend == "sqlite":
        url = f"sqlite://{tmp_path / 'sessions.db'}"
    else:
        url = request.getfixturevalue("redis_server").url
    prefix = f"test:{uuid.uuid4().hex}:"

    async def factory(**options: Any) -> SessionStore:
        store = open_store(url, key_prefix=prefix, **options)
        await store.open()
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()


@pytest.fixture
async def store(make_store: StoreFactory) -> SessionStore:
    return await make_store()
