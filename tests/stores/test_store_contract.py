"""The contract every SessionStore backend must meet: memory, SQLite (temp file) and Redis (private server)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from shadowproxy.core.record import SessionRecord, SessionState
from shadowproxy.core.vault import TokenVault
from shadowproxy.stores import CursorError, SessionStore, StoredEvent

StoreFactory = Callable[..., Awaitable[SessionStore]]


def session(n: int, **fields: object) -> SessionRecord:
    """A fully populated record; ``created_at`` grows with ``n`` so the listing order is known."""
    now = time.time()
    defaults: dict[str, object] = {
        "id": f"s{n:04d}",
        "upstream": "alpha" if n % 2 else "beta",
        "upstream_session_id": f"up-{n}",
        "protocol_version": "2025-06-18",
        "client_info": {"name": "pytest", "version": str(n)},
        "client_capabilities": {"roots": {"listChanged": True}},
        "principal": f"user{n % 3}",
        "created_at": now - 100 + n * 0.001,
        "last_seen": now,
        "messages": n,
        "errors": n % 5,
        "state": SessionState.ACTIVE,
        "tags": ["t", f"n{n}"],
        "event_cursor": None,
        "init_request": '{"jsonrpc":"2.0"}',
        "owner": "instance-a",
    }
    defaults.update(fields)
    return SessionRecord(**defaults)  # type: ignore[arg-type]


async def all_pages(store: SessionStore, limit: int, **filters: object) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        page, cursor = await store.list(cursor=cursor, limit=limit, **filters)  # type: ignore[arg-type]
        pages.append([record.id for record in page])
        if cursor is None:
            return pages


async def test_backend_implements_the_protocol(store: SessionStore) -> None:
    assert isinstance(store, SessionStore)


async def test_put_get_round_trips_every_field(store: SessionStore) -> None:
    record = session(7, client_info={"name": "ü-client", "nested": {"a": [1, 2.5, None]}}, event_cursor="s:1")
    await store.put_many([record])
    assert await store.get(record.id) == record
    assert await store.get("nope") is None


async def test_put_replaces_and_later_mutation_does_not_leak(store: SessionStore) -> None:
    record = session(1)
    await store.put_many([record])
    record.messages = 99
    record.add_tag("late")
    record.state = SessionState.CLOSED
    stored = await store.get(record.id)
    assert stored is not None and stored.messages == 1 and "late" not in stored.tags
    assert stored.state is SessionState.ACTIVE
    await store.put_many([record])
    stored = await store.get(record.id)
    assert stored is not None and stored.messages == 99 and stored.tags[-1] == "late"
    assert stored.state is SessionState.CLOSED


async def test_put_many_empty_is_a_no_op(store: SessionStore) -> None:
    await store.put_many([])
    assert await store.list() == ([], None)


async def test_delete_forgets_session_and_events(store: SessionStore) -> None:
    await store.put_many([session(1), session(2)])
    first = await store.append_event("s0001", "stream", b"a")
    await store.append_event("s0001", "stream", b"b")
    await store.delete("s0001")
    await store.delete("never-existed")
    assert await store.get("s0001") is None
    assert await store.get("s0002") is not None
    assert await store.events_after("s0001", first) == []


async def test_list_orders_by_creation_and_pages_with_cursors(store: SessionStore) -> None:
    records = [session(n) for n in range(25)]
    await store.put_many(list(reversed(records)))
    pages = await all_pages(store, limit=10)
    assert [len(page) for page in pages] == [10, 10, 5]
    assert [sid for page in pages for sid in page] == [r.id for r in records]
    assert await all_pages(store, limit=25) == [[r.id for r in records]]


async def test_list_filters(store: SessionStore) -> None:
    records = [session(n) for n in range(12)]
    records[3].state = SessionState.CLOSED
    records[8].state = SessionState.CLOSED
    await store.put_many(records)
    closed, _ = await store.list(state=SessionState.CLOSED)
    assert [r.id for r in closed] == ["s0003", "s0008"]
    alpha = [sid for page in await all_pages(store, limit=2, upstream="alpha") for sid in page]
    assert alpha == [r.id for r in records if r.upstream == "alpha"]
    both, cursor = await store.list(upstream="beta", principal="user0", state=SessionState.ACTIVE)
    assert [r.id for r in both] == ["s0000", "s0006"] and cursor is None


async def test_cursor_survives_changes_between_pages(store: SessionStore) -> None:
    records = [session(n) for n in range(10)]
    await store.put_many(records)
    page, cursor = await store.list(limit=4)
    assert cursor is not None
    for record in records:
        record.last_seen = time.time()
        record.messages += 1
    await store.put_many(records)
    await store.delete(page[-1].id)
    await store.put_many([session(50, created_at=records[0].created_at - 1)])
    rest, end = await store.list(cursor=cursor, limit=100)
    assert [r.id for r in rest] == [r.id for r in records[4:]] and end is None
    assert all(r.messages == int(r.id[1:]) + 1 for r in rest)


async def test_bad_cursor_and_limit_are_rejected(store: SessionStore) -> None:
    with pytest.raises(CursorError, match="invalid cursor"):
        await store.list(cursor="not-a-cursor!")
    with pytest.raises(CursorError):
        await store.list(cursor="WyJ4Il0=")  # base64 of ["x"]
    with pytest.raises(ValueError, match="limit"):
        await store.list(limit=0)


async def test_idle_sessions_are_invisible_then_expired(make_store: StoreFactory) -> None:
    store = await make_store(ttl=60)
    now = time.time()
    stale = [session(n, last_seen=now - 120) for n in range(3)]
    fresh = [session(n, last_seen=now) for n in range(3, 5)]
    await store.put_many(stale + fresh)
    assert await store.get("s0000") is None
    listed, _ = await store.list()
    assert [r.id for r in listed] == ["s0003", "s0004"]
    assert await store.expire() == 3
    assert await store.expire() == 0
    assert await store.get("s0003") is not None
    assert await store.expire(now=now + 61) == 2
    assert await store.list() == ([], None)


async def test_expire_drops_the_sessions_events(make_store: StoreFactory) -> None:
    store = await make_store(ttl=60)
    await store.put_many([session(1)])
    first = await store.append_event("s0001", "st", b"one")
    await store.append_event("s0001", "st", b"two")
    assert await store.expire(now=time.time() + 3600) == 1
    assert await store.events_after("s0001", first) == []


async def test_many_concurrent_writers(store: SessionStore) -> None:
    async def writer(w: int) -> None:
        for round_ in range(20):
            batch = [session(w * 100 + i, messages=round_) for i in range(5)]
            await store.put_many(batch)

    await asyncio.gather(*(writer(w) for w in range(16)))
    ids = [sid for page in await all_pages(store, limit=37) for sid in page]
    assert len(ids) == len(set(ids)) == 16 * 5
    for sid in ids[::7]:
        stored = await store.get(sid)
        assert stored is not None and stored.messages == 19


async def test_events_after_returns_later_events_of_the_same_stream(store: SessionStore) -> None:
    ids = []
    for n in range(6):
        ids.append(await store.append_event("sess", "a" if n % 2 == 0 else "b:with:colons", f"e{n}".encode()))
    assert len(set(ids)) == 6
    assert await store.events_after("sess", ids[0]) == [
        StoredEvent(ids[2], "a", b"e2"),
        StoredEvent(ids[4], "a", b"e4"),
    ]
    after_b = await store.events_after("sess", ids[1])
    assert [(e.event_id, e.stream_id, e.data) for e in after_b] == [
        (ids[3], "b:with:colons", b"e3"),
        (ids[5], "b:with:colons", b"e5"),
    ]
    assert await store.events_after("sess", ids[4]) == []


async def test_events_keep_binary_data_and_sessions_apart(store: SessionStore) -> None:
    payload = bytes(range(256)) + b"\r\n\x00"
    first = await store.append_event("one", "s", b"start")
    await store.append_event("one", "s", payload)
    other = await store.append_event("two", "s", b"other session")
    events = await store.events_after("one", first)
    assert [e.data for e in events] == [payload]
    assert await store.events_after("two", first) == []
    # Positions are per session (Redis stream entry ids can coincide across keys): whatever an id names,
    # a session's log never yields another session's events.
    assert b"other session" not in [e.data for e in await store.events_after("one", other)]


@pytest.mark.parametrize("bad_id", ["", "no-colon", "s:", ":", "s:not-a-position", "s:99999999", "other:1"])
async def test_unknown_event_ids_give_nothing(store: SessionStore, bad_id: str) -> None:
    await store.append_event("sess", "s", b"x")
    await store.append_event("sess", "s", b"y")
    assert await store.events_after("sess", bad_id) == []


async def test_event_log_keeps_the_newest_max_events(make_store: StoreFactory, backend: str) -> None:
    store = await make_store(max_events=5)
    ids = [await store.append_event("sess", "s", str(n).encode()) for n in range(200)]
    tail = await store.events_after("sess", ids[-5])
    assert [e.data for e in tail] == [b"196", b"197", b"198", b"199"]
    # Redis trims approximately (MAXLEN ~), whole macro nodes at a time; the others exactly.
    assert await store.events_after("sess", ids[0]) == []
    if backend != "redis":
        assert await store.events_after("sess", ids[-6]) == []


async def test_events_older_than_max_event_age_are_not_replayed(make_store: StoreFactory) -> None:
    store = await make_store(max_event_age=0.05)
    first = await store.append_event("sess", "s", b"old")
    await store.append_event("sess", "s", b"newer")
    for _ in range(500):
        if not await store.events_after("sess", first):
            break
        await asyncio.sleep(0.01)
    assert await store.events_after("sess", first) == []


async def test_data_survives_reopening(make_store: StoreFactory, backend: str) -> None:
    if backend == "memory":
        pytest.skip("the memory store lives and dies with its process")
    first = await make_store()
    record = session(3)
    await first.put_many([record])
    event = await first.append_event(record.id, "s", b"a")
    await first.append_event(record.id, "s", b"b")
    await first.close()
    second = await make_store()
    assert await second.get(record.id) == record
    assert [e.data for e in await second.events_after(record.id, event)] == [b"b"]


async def test_entries_and_a_sealed_token_vault(store: SessionStore) -> None:
    assert await store.entries("pins") == {}
    await store.put_entry("pins", "alpha\x1f", b'{"a":1}')
    await store.put_entry("pins", "beta\x1fops", b"\x00\xff")
    await store.put_entry("other", "alpha\x1f", b"x")
    await store.put_entry("pins", "alpha\x1f", b'{"a":2}')
    assert await store.entries("pins") == {"alpha\x1f": b'{"a":2}', "beta\x1fops": b"\x00\xff"}
    assert await store.entry("pins", "beta\x1fops") == b"\x00\xff"
    assert await store.entry("other", "beta\x1fops") is None and await store.entry("none", "x") is None
    await store.put_entry("pins", "beta\x1fops", None)
    await store.put_entry("pins", "never-set", None)
    assert await store.entries("pins") == {"alpha\x1f": b'{"a":2}'}
    assert await store.entry("pins", "beta\x1fops") is None

    record = session(8)
    record.tokens = TokenVault()
    assert record.tokens.token("email", "jane@example.com") == "[EMAIL_1]"
    await store.put_many([record])
    stored = await store.get(record.id)
    assert stored is not None and stored.tokens is not None
    assert stored.tokens.restore_text("to [EMAIL_1]") == "to jane@example.com"
