"""Held messages (approvals, breakpoints) in the session store, so that any instance can list and decide them.

A hold is a JSON object with at least ``id``, ``state`` and ``created_at``. It is written once as
``pending`` and settled once: :meth:`HoldBook.settle` is a compare-and-set in the backend (a Lua script in
Redis, a conditional ``UPDATE`` in SQLite), so two deciders racing on two instances cannot both win. The
book is a seam of its own beside :class:`~shadowproxy.stores.base.SessionStore`, on the same backend and
connection: holds are rare, and no session code needs to know about them.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Protocol

import orjson

if TYPE_CHECKING:
    from shadowproxy.stores.sqlite import SqliteStore
    from shadowproxy.stores.sqlite_process import Step

Hold = dict[str, Any]
PENDING = "pending"
KEEP = 7 * 24 * 3600.0
"""Seconds a settled hold stays listed, for the record of how it ended."""
MAX_MEMORY = 10_000

_CREATE = (
    "CREATE TABLE IF NOT EXISTS holds (id TEXT PRIMARY KEY, created_at REAL NOT NULL, state TEXT NOT NULL,"
    " record BLOB NOT NULL)"
)


class HoldBook(Protocol):
    """Where holds are kept. It knows nothing of futures or clients: the registry in ``control`` does."""

    async def add(self, hold: Hold) -> None:
        """Write a new pending hold."""
        ...

    async def get(self, hold_id: str) -> Hold | None: ...

    async def settle(self, hold_id: str, ending: Hold) -> Hold | None:
        """Merge ``ending`` into a pending hold, atomically; the settled hold, or ``None`` if it was not pending."""
        ...

    async def list(self, limit: int = 100) -> list[Hold]:
        """The newest holds first, pending and settled."""
        ...


class MemoryHoldBook:
    """Holds in a dict, bounded: the oldest go first past :data:`MAX_MEMORY`."""

    def __init__(self) -> None:
        self._holds: OrderedDict[str, Hold] = OrderedDict()

    async def add(self, hold: Hold) -> None:
        self._holds[hold["id"]] = dict(hold)
        while len(self._holds) > MAX_MEMORY:
            self._holds.popitem(last=False)

    async def get(self, hold_id: str) -> Hold | None:
        hold = self._holds.get(hold_id)
        return dict(hold) if hold is not None else None

    async def settle(self, hold_id: str, ending: Hold) -> Hold | None:
        hold = self._holds.get(hold_id)
        if hold is None or hold["state"] != PENDING:
            return None
        hold.update(ending)
        return dict(hold)

    async def list(self, limit: int = 100) -> list[Hold]:
        return [dict(hold) for hold in reversed(self._holds.values())][:limit]


class SqliteHoldBook:
    """Holds in a table of the store's file, created when first used (the session schema is not versioned for
    it), through the store's own SQLite process."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    async def _run(self, *steps: Step) -> list[Any]:
        results = await self.store._call([(_CREATE, (), False), *steps], write=True)
        return results[1:]

    async def add(self, hold: Hold) -> None:
        cutoff = time.time() - KEEP
        await self._run(
            ("INSERT INTO holds (id, created_at, state, record) VALUES (?, ?, ?, ?)",
             (hold["id"], hold["created_at"], hold["state"], orjson.dumps(hold)), False),
            ("DELETE FROM holds WHERE state != 'pending' AND created_at < ?", (cutoff,), False),
        )  # fmt: skip

    async def get(self, hold_id: str) -> Hold | None:
        (rows,) = await self._run(("SELECT record FROM holds WHERE id = ?", (hold_id,), False))
        return orjson.loads(rows[0][0]) if rows else None

    async def settle(self, hold_id: str, ending: Hold) -> Hold | None:
        # One transaction: read, then update only while still pending; the process runs one request at a time
        # and BEGIN IMMEDIATE keeps other writers of the file out.
        read = ("SELECT record FROM holds WHERE id = ? AND state = 'pending'", (hold_id,), False)
        (rows,) = await self._run(read)
        if not rows:
            return None
        hold = {**orjson.loads(rows[0][0]), **ending}
        update = "UPDATE holds SET state = ?, record = ? WHERE id = ? AND state = 'pending'"
        (result,) = await self._run((update, (hold["state"], orjson.dumps(hold), hold_id), False))
        return hold if result[1] == 1 else None

    async def list(self, limit: int = 100) -> list[Hold]:
        (rows,) = await self._run(("SELECT record FROM holds ORDER BY created_at DESC LIMIT ?", (limit,), False))
        return [orjson.loads(row[0]) for row in rows]
