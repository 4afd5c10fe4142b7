"""Choosing a store from a URL: ``memory://``, ``sqlite:///path.db``, ``redis://host:port/db``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

from shadowproxy.core.errors import ConfigError
from shadowproxy.core.urls import mask_url
from shadowproxy.stores.base import SessionStore, StoreError

if TYPE_CHECKING:
    from shadowproxy.stores.holds import HoldBook

DEFAULT_URL = "memory://"
_HELP = "use memory://, sqlite:///absolute/path.db, sqlite:relative/path.db or redis://host:port/db"


@dataclass(frozen=True, slots=True)
class StoreUrl:
    """A parsed store URL. ``target`` is the SQLite path or the Redis URL handed to redis-py."""

    scheme: str
    target: str = ""
    key_prefix: str | None = None
    display: str = DEFAULT_URL


def redact(url: str) -> str:
    """``url`` for messages and logs: its password replaced by ``***``, and in a Redis URL every query value but
    ``prefix`` too (redis-py takes ``?password=``); the key prefix stays, since it tells stores apart."""
    redis = urlsplit(url).scheme.lower() in ("redis", "rediss")
    return mask_url(url, "***", query=redis, keep=("prefix",))


def parse_store_url(url: str) -> StoreUrl:
    """Validate ``url``; :class:`ConfigError` (key ``store``) names the URL and what is wrong with it."""
    try:
        shown = redact(url)
        parts = urlsplit(url.strip() or DEFAULT_URL)
    except ValueError as exc:
        # Nothing of a URL that does not split can be shown safely: where its password ends is unknown.
        raise ConfigError(f"store URL: malformed ({exc})", key="store") from None

    def bad(problem: str) -> ConfigError:
        return ConfigError(f"store URL {shown!r}: {problem}", key="store")

    scheme = parts.scheme.lower()
    if scheme == "memory":
        if parts.netloc or parts.path or parts.query:
            raise bad("a memory store takes no host, path or options; write memory://")
        return StoreUrl("memory", display=DEFAULT_URL)
    if scheme == "sqlite":
        if parts.netloc:
            raise bad(f"a sqlite URL has no host (got {parts.netloc!r}); write sqlite:///absolute/path.db")
        if not parts.path or parts.path.endswith("/"):
            raise bad("no database file path; write sqlite:///absolute/path.db")
        if parts.query:
            raise bad("a sqlite URL takes no options")
        return StoreUrl("sqlite", target=parts.path, display=shown)
    if scheme in ("redis", "rediss"):
        return _redis_url(parts, shown, bad)
    if not scheme:
        raise bad(f"no scheme; {_HELP}")
    raise bad(f"unknown scheme {scheme!r}; {_HELP}")


def _redis_url(parts: SplitResult, shown: str, bad: Callable[[str], ConfigError]) -> StoreUrl:
    try:
        port = parts.port
    except ValueError:
        raise bad("the port is not a number between 0 and 65535") from None
    if not parts.hostname:
        raise bad("no host; write redis://host:port/db")
    if port == 0:
        raise bad("port 0 is not a Redis port")
    db = parts.path.lstrip("/")
    if db and not db.isdigit():
        raise bad(f"the database must be a number, got {db!r}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefixes = [value for key, value in query if key == "prefix"]
    if len(prefixes) > 1:
        raise bad("prefix is given more than once")
    rest = urlencode([(key, value) for key, value in query if key != "prefix"])
    target = urlunsplit(parts._replace(query=rest, fragment=""))
    return StoreUrl(parts.scheme.lower(), target=target, key_prefix=prefixes[0] if prefixes else None, display=shown)


def open_store(
    url: str = DEFAULT_URL,
    *,
    ttl: float = 3600.0,
    key_prefix: str = "shadowproxy:",
    max_events: int = 1000,
    max_event_age: float = 3600.0,
) -> SessionStore:
    """The store ``url`` names. Nothing connects yet: the first operation (or ``await store.open()``) does.

    A ``?prefix=`` in a Redis URL overrides ``key_prefix``.
    """
    spec = parse_store_url(url)
    if ttl <= 0:
        raise ConfigError(f"session ttl must be positive, got {ttl}", key="session_ttl")
    if max_events < 1 or max_event_age <= 0:
        raise ConfigError("max_events and max_event_age must be positive", key="store")
    if spec.scheme == "memory":
        from shadowproxy.stores.memory import MemoryStore

        return MemoryStore(ttl=ttl, max_events=max_events, max_event_age=max_event_age)
    if spec.scheme == "sqlite":
        from shadowproxy.stores.sqlite import SqliteStore

        return SqliteStore(spec.target, ttl=ttl, max_events=max_events, max_event_age=max_event_age)
    from shadowproxy.stores.redis_store import RedisStore

    try:
        return RedisStore(
            spec.target,
            key_prefix=spec.key_prefix if spec.key_prefix is not None else key_prefix,
            ttl=ttl,
            max_events=max_events,
            max_event_age=max_event_age,
            display_url=spec.display,
        )
    except ValueError as exc:
        raise ConfigError(f"store URL {spec.display!r}: {exc}", key="store") from None


def hold_book(store: SessionStore) -> HoldBook:
    """The book on the same backend as ``store`` (each imported only when used, as :func:`open_store` does)."""
    kind = type(store).__name__
    if kind == "SqliteStore":
        from shadowproxy.stores.holds import SqliteHoldBook

        return SqliteHoldBook(store)  # type: ignore[arg-type]
    if kind == "RedisStore":
        from shadowproxy.stores.holds_redis import RedisHoldBook

        return RedisHoldBook(store)  # type: ignore[arg-type]
    if kind == "MemoryStore":
        from shadowproxy.stores.holds import MemoryHoldBook

        return MemoryHoldBook()
    raise StoreError(f"a {type(store).__name__} cannot keep held messages")
