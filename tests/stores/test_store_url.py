"""Store URLs: each backend is selected by scheme; a bad URL is a ConfigError that names it."""

from __future__ import annotations

import pytest

from shadowproxy.core.errors import ConfigError
from shadowproxy.stores import open_store, parse_store_url
from shadowproxy.stores.memory import MemoryStore
from shadowproxy.stores.redis_store import RedisStore
from shadowproxy.stores.sqlite import SqliteStore


@pytest.mark.parametrize(
    ("url", "kind", "detail"),
    [
        ("memory://", MemoryStore, None),
        ("", MemoryStore, None),
        ("sqlite:///var/lib/shadowproxy.db", SqliteStore, "/var/lib/shadowproxy.db"),
        ("sqlite:state/sessions.db", SqliteStore, "state/sessions.db"),
        ("redis://localhost:6379/0", RedisStore, "shadowproxy:"),
        ("redis://localhost/2?prefix=team-a:", RedisStore, "team-a:"),
        ("rediss://user:pw@redis.example:6380/1", RedisStore, "shadowproxy:"),
    ],
)
async def test_good_urls_pick_their_backend(url: str, kind: type, detail: str | None) -> None:
    store = open_store(url)
    assert isinstance(store, kind)
    if isinstance(store, SqliteStore):
        assert store.path == detail
    if isinstance(store, RedisStore):
        assert store.prefix == detail
    await store.close()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mongodb://db:27017", "unknown scheme 'mongodb'"),
        ("sessions.db", "no scheme"),
        ("memory://somewhere", "a memory store takes no host"),
        ("sqlite://", "no database file path"),
        ("sqlite:///", "no database file path"),
        ("sqlite://server/sessions.db", "a sqlite URL has no host (got 'server')"),
        ("sqlite:///s.db?mode=ro", "a sqlite URL takes no options"),
        ("redis://", "no host"),
        ("redis://localhost:notaport/0", "the port is not a number"),
        ("redis://localhost:70000/0", "the port is not a number"),
        ("redis://localhost:0/0", "port 0"),
        ("redis://localhost:6379/zero", "the database must be a number, got 'zero'"),
        ("redis://localhost/0?prefix=a&prefix=b", "prefix is given more than once"),
    ],
)
def test_bad_urls_say_which_and_why(url: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        open_store(url)
    message = str(caught.value)
    assert caught.value.key == "store"
    assert f"store URL {url!r}" in message and problem in message


def test_passwords_never_appear_in_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        open_store("redis://admin:s3cret@localhost:bad/0")
    assert "s3cret" not in str(caught.value) and "admin:***@localhost" in str(caught.value)


def test_prefix_is_taken_out_of_the_url_given_to_redis() -> None:
    spec = parse_store_url("redis://h:1234/3?prefix=p:&health_check_interval=5")
    assert spec.key_prefix == "p:" and spec.target == "redis://h:1234/3?health_check_interval=5"


@pytest.mark.parametrize(("option", "value"), [("ttl", 0), ("max_events", 0), ("max_event_age", -1)])
def test_limits_must_be_positive(option: str, value: float) -> None:
    with pytest.raises(ConfigError, match="must be positive"):
        open_store("memory://", **{option: value})  # type: ignore[arg-type]


def test_a_password_in_the_query_is_not_shown() -> None:
    spec = parse_store_url("redis://localhost:6379/0?password=hunter2&prefix=team-a:&db=0")
    assert "hunter2" not in spec.display
    assert spec.display == "redis://localhost:6379/0?password=***&prefix=team-a:&db=***"
    with pytest.raises(ConfigError) as refused:
        parse_store_url("redis://localhost:6379/x?password=hunter2")
    assert "hunter2" not in str(refused.value)


def test_a_url_that_does_not_split_is_a_config_error_that_shows_none_of_it() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_store_url("redis://:hunter2@[::1/0")
    assert "malformed" in str(refused.value) and "hunter2" not in str(refused.value)
