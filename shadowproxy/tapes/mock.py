"""``tape serve``: a tape as a mock server, answering each request with the recorded answer to the same one.

A request matches a recorded one by method and params (``_meta`` left out), or by method alone
(``match="method"``, and always for ``initialize`` and ``ping``); the recorded answers to one request are
given in order, the last again once they run out. The notifications and server requests recorded while the
request was in flight are sent before its answer (progress under the live request's token). A request the
tape has no answer for gets -32601 (no such method on the tape) or -32602 (no such params), naming the
closest recorded request. The transports are in :mod:`shadowproxy.tapes.mock_serve`.
"""

from __future__ import annotations

import difflib
import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from shadowproxy.core.errors import JsonRpcError
from shadowproxy.core.jsonrpc import Message, classify, error_response
from shadowproxy.tapes.format import C2S, S2C, Entry, Tape

METHOD_NOT_FOUND, INVALID_PARAMS = -32601, -32602
BY_METHOD = frozenset({"initialize", "ping"})
Match = Literal["params", "method"]


@dataclass(slots=True)
class Recorded:
    """One recorded request: its params, what the server sent while it was in flight, and its answer."""

    params: Any
    answer: dict[str, Any]
    during: list[dict[str, Any]] = field(default_factory=list)


def key_of(method: str, params: Any, match: Match) -> tuple[str, bytes]:
    if match == "method" or method in BY_METHOD:
        return (method, b"")
    if isinstance(params, dict):
        params = {key: value for key, value in params.items() if key != "_meta"}
    return (method, orjson.dumps(params, option=orjson.OPT_SORT_KEYS))


class Mock:
    """The answers of one tape, looked up by request."""

    def __init__(self, tape: Tape, match: Match = "params") -> None:
        self.match = match
        self.recorded: dict[tuple[str, bytes], list[Recorded]] = defaultdict(list)
        self.methods: dict[str, list[Any]] = defaultdict(list)
        self._served: dict[tuple[str, bytes], int] = defaultdict(int)
        self._ids = itertools.count(1)
        entries = tape.entries
        for index, entry in enumerate(entries):
            if entry.direction != C2S or entry.method is None or "id" not in entry.data:
                continue
            found = _answer_and_during(entries, index)
            if found is None:
                continue
            params = entry.data.get("params")
            self.recorded[key_of(entry.method, params, match)].append(Recorded(params, *found))
            self.methods[entry.method].append(params)

    def answer(self, message: Message) -> list[Message]:
        """What to send for one client message: the messages recorded during it, then its answer; nothing for a
        notification or a reply."""
        if not message.is_request:
            return []
        method = message.method or ""
        key = key_of(method, message.params, self.match)
        choices = self.recorded.get(key)
        if not choices:
            if method == "ping":
                return [classify({"jsonrpc": "2.0", "id": message.id, "result": {}}, None)]
            return [error_response(message.id, self._unmatched(method, message.params))]
        served = self._served[key]
        self._served[key] = served + 1
        recorded = choices[min(served, len(choices) - 1)]
        token = _token(message.params)
        sent = [classify(self._live(data, token), None) for data in recorded.during]
        return [*sent, classify({**recorded.answer, "id": message.id}, None)]

    def _live(self, data: dict[str, Any], token: Any) -> dict[str, Any]:
        if "id" in data:
            return {**data, "id": f"tape-{next(self._ids)}"}
        params = data.get("params")
        if token is not None and isinstance(params, dict) and "progressToken" in params:
            return {**data, "params": {**params, "progressToken": token}}
        return data

    def _unmatched(self, method: str, params: Any) -> JsonRpcError:
        recorded = self.methods.get(method)
        if not recorded:
            known = ", ".join(sorted(self.methods)) or "none"
            return JsonRpcError(METHOD_NOT_FOUND, f"{method} is not on the tape (recorded: {known})")
        wanted = orjson.dumps(params, option=orjson.OPT_SORT_KEYS).decode()
        name = params.get("name") if isinstance(params, dict) else None

        def likeness(item: Any) -> tuple[bool, float]:
            text = orjson.dumps(item, option=orjson.OPT_SORT_KEYS).decode()
            same_name = isinstance(item, dict) and name is not None and item.get("name") == name
            return (same_name, difflib.SequenceMatcher(None, wanted, text).ratio())

        closest = max(recorded, key=likeness)
        shown = orjson.dumps(closest, option=orjson.OPT_SORT_KEYS).decode()
        text = f"no recorded {method} with these params; the closest recorded: {shown}"
        return JsonRpcError(INVALID_PARAMS, text, {"closest": closest})


def _answer_and_during(entries: tuple[Entry, ...], index: int) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    request = entries[index].data
    token = _token(request.get("params"))
    during: list[dict[str, Any]] = []
    for entry in entries[index + 1 :]:
        if entry.direction != S2C:
            continue
        data = entry.data
        if "method" not in data:
            if data.get("id") == request["id"]:
                return data, during
            continue
        other = _token_in(data)
        if other is None or other == token:
            during.append(data)
    return None


def _token(params: Any) -> Any:
    meta = params.get("_meta") if isinstance(params, dict) else None
    return meta.get("progressToken") if isinstance(meta, dict) else None


def _token_in(data: dict[str, Any]) -> Any:
    params = data.get("params")
    return params.get("progressToken") if isinstance(params, dict) else None
