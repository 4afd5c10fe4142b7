"""A tape as a readable conversation: each request with its answer and timing, notifications under the
request they belong to (by progress token, else the one request in flight from the other side)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from shadowproxy.tapes.format import C2S, Entry, Tape

WIDTH = 160
SIDES = {C2S: ("client", "server"), "server_to_client": ("server", "client")}


@dataclass(slots=True)
class Turn:
    """A request (or a lone message) and what came of it."""

    entry: Entry
    answer: Entry | None = None
    under: list[Entry] = field(default_factory=list)


def turns(tape: Tape) -> list[Turn]:
    """The tape's messages grouped: requests with their answers and notifications, in the order they began."""
    found: list[Turn] = []
    open_requests: dict[tuple[str, Any], Turn] = {}
    by_token: dict[Any, Turn] = {}
    for entry in tape.entries:
        data = entry.data
        if "method" in data and "id" in data:
            turn = Turn(entry)
            found.append(turn)
            open_requests[(entry.direction, data["id"])] = turn
            token = _progress_token(data)
            if token is not None:
                by_token[token] = turn
            continue
        if "method" not in data:  # an answer: to a request from the other side
            asker = C2S if entry.direction != C2S else "server_to_client"
            turn = open_requests.pop((asker, data.get("id")), None)
            if turn is not None:
                turn.answer = entry
                continue
            found.append(Turn(entry))
            continue
        params = data.get("params")
        token = params.get("progressToken") if isinstance(params, dict) else None
        owner = by_token.get(token) if token is not None else None
        if owner is None:
            waiting = [turn for key, turn in open_requests.items() if key[0] != entry.direction]
            owner = waiting[-1] if len(waiting) == 1 else None
        if owner is not None:
            owner.under.append(entry)
        else:
            found.append(Turn(entry))
    return found


def render(tape: Tape, *, bodies: bool = True) -> str:
    """The conversation as text, one request per paragraph."""
    header = tape.header
    client = header.get("client") or {}
    lines = [
        f"tape {tape.name}: session {header.get('session')} on {header.get('upstream')} over "
        f"{header.get('transport')}, protocol {header.get('protocol_version') or '?'}, client "
        f"{client.get('name', '?')} {client.get('version', '')}".rstrip()
        + f", started {header.get('started')}",
    ]
    for turn in turns(tape):
        entry = turn.entry
        sender, receiver = SIDES[entry.direction]
        data = entry.data
        what = _what(data)
        verdict = "" if entry.verdict == "forward" else f"  [{entry.verdict}{' by ' + entry.by if entry.by else ''}]"
        lines.append(f"[{entry.t:9.3f}s] {sender} -> {receiver}: {what}{verdict}")
        if bodies and "params" in data:
            lines.append(f"{'':13}params: {_short(data['params'])}")
        for note in turn.under:
            lines.append(f"{'':13}{'~':>2} +{note.t - entry.t:.3f}s {note.data.get('method')}: "
                         f"{_short(note.data.get('params'))}")  # fmt: skip
        answer = turn.answer
        if answer is not None:
            by = "the proxy" if answer.from_proxy else receiver
            took = (answer.t - entry.t) * 1000
            outcome = _outcome(answer.data)
            lines.append(f"{'':13}=> {by} answered in {took:.1f} ms: {outcome}")
        elif "method" in data and "id" in data:
            lines.append(f"{'':13}=> no answer on the tape")
    return "\n".join(lines) + "\n"


def _what(data: dict[str, Any]) -> str:
    method = data.get("method")
    if method is None:
        return f"answer to id {data.get('id')!r}: {_outcome(data)}"
    params = data.get("params")
    name = params.get("name") or params.get("uri") if isinstance(params, dict) else None
    ident = f" (id {data['id']!r})" if "id" in data else ""
    return f"{method}{' ' + str(name) if name else ''}{ident}"


def _outcome(data: dict[str, Any]) -> str:
    if "error" in data:
        error = data["error"]
        return f"error {error.get('code')}: {error.get('message')}"
    result = data.get("result")
    if isinstance(result, dict) and isinstance(result.get("content"), list):
        texts = [item.get("text") for item in result["content"] if isinstance(item, dict) and "text" in item]
        flag = "error " if result.get("isError") else ""
        return f"{flag}{_short(texts[0] if len(texts) == 1 else texts)}"
    return _short(result)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= WIDTH else text[: WIDTH - 3] + "..."


def _progress_token(data: dict[str, Any]) -> Any:
    params = data.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return meta.get("progressToken") if isinstance(meta, dict) else None
