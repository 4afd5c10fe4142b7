"""``tape replay``: play a tape's client side against a server and compare each answer with the recorded one.

A new session on the server: the tape's requests and notifications in order, as they went on (after the
chain; what the chain stopped is not sent). A request the server makes meanwhile (sampling, elicitation) is
answered with the client's recorded answer to the next recorded request of that method. Each answer is
compared with the recorded one by :mod:`shadowproxy.tapes.compare`, after the tape's redaction is applied to
it too, so a secret masked on the tape does not count as a difference. The chain does not run here, so an
answer the chain changed when it was recorded (a tools list the rules filtered) is not compared but listed.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from shadowproxy.config import parse_upstream
from shadowproxy.core.errors import JsonRpcError, UpstreamError
from shadowproxy.core.jsonrpc import Message, classify, error_response
from shadowproxy.core.protocol import VERSION_HEADER
from shadowproxy.core.redact import Redactor
from shadowproxy.core.tasks import spawn
from shadowproxy.tapes.compare import Difference, Pattern, differences
from shadowproxy.tapes.format import C2S, S2C, Entry, Tape
from shadowproxy.upstreams import Channel, Exchange, Upstream, create_upstream

TIMEOUT = 60.0
METHOD_NOT_FOUND = -32601


@dataclass(slots=True)
class Mismatch:
    """A request whose answer differs: where it is on the tape, and how."""

    line: int
    what: str
    differences: list[Difference]


@dataclass(slots=True)
class Report:
    compared: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    changed_by_chain: list[int] = field(default_factory=list)
    """Lines of recorded answers the chain had changed (a tools list filtered, a redaction): not compared, since
    the server's own answer is not on the tape."""

    @property
    def equal(self) -> bool:
        return not self.mismatches

    def text(self) -> str:
        lines = [f"{mismatch.what} (tape line {mismatch.line}): {d.text()}"
                 for mismatch in self.mismatches for d in mismatch.differences]  # fmt: skip
        verdict = "equal" if self.equal else f"{len(self.mismatches)} of them differ"
        lines.append(f"{self.compared} answers compared: {verdict}")
        if self.changed_by_chain:
            where = ", ".join(str(line) for line in self.changed_by_chain)
            lines.append(f"not compared: {len(self.changed_by_chain)} answer(s) the chain changed (tape lines {where})")
        return "\n".join(lines) + "\n"


class ServerAnswers:
    """The client's recorded answers to the server's requests, by method, in the order they were asked."""

    def __init__(self, entries: tuple[Entry, ...]) -> None:
        replies = {(entry.data.get("id")): entry for entry in entries
                   if entry.direction == C2S and "method" not in entry.data}  # fmt: skip
        self.by_method: dict[str, deque[dict[str, Any]]] = defaultdict(deque)
        for entry in entries:
            if entry.direction == S2C and entry.method and "id" in entry.data and not entry.from_proxy:
                reply = replies.get(entry.data["id"])
                if reply is not None:
                    self.by_method[entry.method].append(reply.data)

    def answer(self, request: Message) -> Message:
        recorded = self.by_method.get(request.method or "")
        if not recorded:
            error = JsonRpcError(METHOD_NOT_FOUND, f"the tape has no answer to {request.method}")
            return error_response(request.id, error)
        data = recorded.popleft() if len(recorded) > 1 else recorded[0]
        return classify({**data, "id": request.id}, None)


def recorded_answer(entries: tuple[Entry, ...], index: int) -> Entry | None:
    """The server's (or the proxy's) answer to the request at ``index``."""
    request_id = entries[index].data["id"]
    for entry in entries[index + 1 :]:
        if entry.direction == S2C and "method" not in entry.data and entry.data.get("id") == request_id:
            return entry
    return None


async def replay(
    tape: Tape, upstream: str, *, ignore: tuple[Pattern, ...] = (), speed: float = 0.0, within: float = TIMEOUT
) -> Report:
    """Replay ``tape`` against ``upstream`` (a command line or URL).

    :class:`UpstreamError` when the server cannot be reached, :class:`TimeoutError` when an answer takes over
    ``within`` seconds. ``speed`` 1 keeps the recorded timing, 2 twice as fast, 0 as fast as possible.
    """
    config = parse_upstream("replay", upstream)
    server = create_upstream(config.model_copy(update={"inherit_env": True}) if config.is_stdio else config)
    session = Replay(tape, ignore)
    try:
        await session.run(server, speed, within)
    finally:
        await server.close()
    return session.report


class Replay:
    """One replayed session: the client's side of a tape, the server's requests answered from it."""

    def __init__(self, tape: Tape, ignore: tuple[Pattern, ...]) -> None:
        self.tape = tape
        self.ignore = ignore
        self.answers = ServerAnswers(tape.entries)
        self.report = Report()
        redaction = tape.header.get("redact")
        self.redactor = Redactor(redaction["detectors"], redaction["patterns"]) if isinstance(redaction, dict) else None
        self.stateless = not any(entry.method == "initialize" for entry in tape.entries)
        # As a client over HTTP does: each request after the handshake names the protocol version in force.
        version = tape.header.get("protocol_version") if self.stateless else None
        self.headers: dict[str, str] = {VERSION_HEADER: version} if isinstance(version, str) else {}
        self.channel: Channel | None = None
        self.tasks: list[asyncio.Task[None]] = []

    async def run(self, server: Upstream, speed: float, within: float) -> None:
        self.channel = channel = await server.open(self.unsolicited, shared=self.stateless)
        entries = self.tape.entries
        began = asyncio.get_running_loop().time()
        try:
            for index, entry in enumerate(entries):
                if entry.direction != C2S or not entry.went_on or entry.method is None:
                    continue  # the client's answers go when the server asks; what the chain stopped never went on
                if speed > 0:
                    wait = began + entry.t / speed - asyncio.get_running_loop().time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                message = classify(entry.data, None)
                if "id" not in entry.data:
                    await channel.send(message, self.headers)
                    if entry.method == "notifications/initialized":
                        await self.listen(channel)
                    continue
                live = await asyncio.wait_for(self.ask(channel, message), within)
                result = live.result
                if entry.method == "initialize" and isinstance(result, dict) and "protocolVersion" in result:
                    self.headers = {VERSION_HEADER: str(result["protocolVersion"])}
                self.compare(entry, recorded_answer(entries, index), live)
        finally:
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await channel.close()

    def compare(self, entry: Entry, recorded: Entry | None, live: Message) -> None:
        if recorded is None or recorded.from_proxy:
            return
        if recorded.verdict == "modified":
            self.report.changed_by_chain.append(recorded.line)
            return
        now = self.redactor.value(live.data) if self.redactor is not None else live.data
        self.report.compared += 1
        found = differences(recorded.data, now, self.ignore)
        if found:
            self.report.mismatches.append(Mismatch(entry.line, _what(entry), found))

    async def ask(self, channel: Channel, message: Message) -> Message:
        exchange = await channel.request(message, self.headers)
        try:
            while True:
                incoming = await exchange.next()
                if incoming.is_request:
                    await channel.send(self.answers.answer(incoming), self.headers)
                elif incoming.is_reply:
                    return incoming
        finally:
            await exchange.close()

    async def listen(self, channel: Channel) -> None:
        """The server's stream of messages outside any request (an HTTP GET), where a server may ask for
        sampling: read for the rest of the session, as a client would."""
        stream = await channel.listen(self.headers)
        if stream is not None:
            self.tasks.append(spawn(self._drain(channel, stream), name="replay-listen"))

    async def _drain(self, channel: Channel, stream: Exchange) -> None:
        try:
            while True:
                incoming = await stream.next()
                if incoming.is_request:
                    await channel.send(self.answers.answer(incoming), self.headers)
        except UpstreamError:
            return  # the stream ended
        finally:
            await stream.close()

    def unsolicited(self, message: Message) -> None:
        """A message of no request in flight (list changes, logs): not compared, its timing is the server's; a
        request among them is answered from the tape."""
        if message.is_request and self.channel is not None:
            self.tasks.append(spawn(self._answer(self.channel, message), name="replay-answer"))

    async def _answer(self, channel: Channel, request: Message) -> None:
        await channel.send(self.answers.answer(request), self.headers)


def _what(entry: Entry) -> str:
    params = entry.data.get("params")
    name = params.get("name") if isinstance(params, dict) else None
    return f"{entry.method}{' ' + name if isinstance(name, str) else ''}"
