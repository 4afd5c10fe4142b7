"""Admission counts sessions per principal as they come and go, so a new session costs O(1), not a scan."""

from __future__ import annotations

from shadowproxy.core.record import SessionRecord
from shadowproxy.sessions.admission import Counted


class Held:
    def __init__(self, principal: str | None) -> None:
        self.record = SessionRecord(id="s", upstream="u", principal=principal)


def test_counts_follow_every_write_the_manager_makes() -> None:
    table: Counted[str, Held] = Counted()
    table["a1"], table["a2"], table["b1"], table["n1"] = Held("alice"), Held("alice"), Held("bob"), Held(None)
    assert (table.held_by("alice"), table.held_by("bob"), table.held_by(None), table.held_by("eve")) == (2, 1, 1, 0)
    table["a2"] = Held("bob")  # a key written again is the new session's, not both
    assert (table.held_by("alice"), table.held_by("bob")) == (1, 2)
    assert table.pop("a1") is not None and table.pop("a1", None) is None
    assert table.held_by("alice") == 0 and "alice" not in table.principals
    table.clear()
    assert not table and table.principals == {}
