"""The stdio front whose server is a child process: ``shadowproxy stdio -- CMD``.

Lines from our stdin and lines from the child's stdout both arrive by protocol
callbacks. A message the chain has nothing to say on (it is empty, or declines
the message) is passed on in its callback when nothing is queued ahead of it;
otherwise it goes into the front's inbox, and its task judges each message.

A client speaks one era and runs one server process, the child; a handshake-era client's 2026-07-28 request is
served by the upstream's stateless process, started then (see :class:`~shadowproxy.fronts.stdio.relay.Eras`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from shadowproxy.bridge.era import PROBE_ID, PROBE_TIMEOUT, answers_modern, discover_probe
from shadowproxy.core import tracing
from shadowproxy.core.chain import C2S, S2C
from shadowproxy.core.errors import UpstreamError
from shadowproxy.core.jsonrpc import ERROR, REQUEST, RESPONSE, Message, error_response
from shadowproxy.core.tasks import spawn
from shadowproxy.fronts.stdio.front import CLIENT, INBOX_HIGH, SERVER, SERVER_EXIT, StdioFront
from shadowproxy.fronts.stdio.relay import MODERN, Eras, relay
from shadowproxy.proxy.mount import Mount
from shadowproxy.upstreams.stdio import ChildProcess, StdioUpstream, count_start

# Echo benchmark, 16 requests in flight, messages per write (benchmarks.stdio_load, 2 cores): 2 122k req/s, 3 127k,
# 4 142-148k, 6 100-131k, 8 115-128k, 12 81k. Fewer per write cost more system calls; more make each side wait
# longer for the other's batch.
WRITE_BATCH = 4


class StdioChildFront(StdioFront):
    """A stdio front in front of its own child process."""

    def __init__(self, mount: Mount, *, request_timeout: float | None = None) -> None:
        super().__init__(mount, request_timeout=request_timeout)
        self.child: ChildProcess | None = None
        self.eras = Eras()
        self.to_child: list[bytes] = []
        # The era bridge's server/discover to the child, until its answer is taken off the child's output.
        self.probing: asyncio.Future[Message] | None = None
        self.ask_era = self.speaks_modern

    async def start(self) -> None:
        upstream = self.mount.upstream
        assert isinstance(upstream, StdioUpstream)
        child = self.child = await upstream.attach(lambda messages: self.receive(SERVER, messages))
        count_start(upstream)
        child.finished.add_done_callback(lambda _: self.inbox.put((SERVER_EXIT, child.returncode)))

    def flush(self) -> None:
        """One write per pipe for all that is queued. :meth:`StdioFront.flush` is written out here, not called:
        the pipe callbacks flush after every read, and the call is a percent of the cost of a request."""
        if self.to_child:
            lines, self.to_child = self.to_child, []
            if self.child is not None and self.child.alive:
                self.child.write(b"\n".join(lines))
        if self.to_client:
            lines, self.to_client = self.to_client, []
            assert self.out is not None
            self.out.write(b"\n".join(lines) + b"\n")
        if self.untouched:
            self.mount.sessions.touch(self.session, messages=self.untouched, errors=self.untouched_errors)
            self.untouched = self.untouched_errors = 0

    def receive(self, source: int, messages: Iterator[Message]) -> None:
        """Where both pipes' messages arrive, a read's worth at a time. A message the chain passes unjudged cannot
        suspend, so it is handled and written here, in the pipe's callback, while nothing is queued ahead of it and
        neither pipe is full; from the first one that cannot be, the rest go to the task, in order."""
        if source == CLIENT and self.mount.holds.parked:
            messages = self.unheld(messages)
        if self.probing is not None and source == SERVER:
            messages = self.probed(messages)
        child = self.child
        if self.idle and not self.inbox and child is not None:
            now = self.client_now if source == CLIENT else self.server_now
            writer = self.writer
            handled = 0
            for message in messages:
                if writer.paused is not None or child.paused is not None or not now(message):
                    self.inbox.put((source, message))
                    break
                # Written in batches of WRITE_BATCH, and at the end of the read: the other side starts on a batch
                # while the rest of the read is decoded.
                handled += 1
                if handled == WRITE_BATCH:
                    self.flush()
                    handled = 0
        for message in messages:
            self.inbox.put((source, message))
        self.flush()
        if source == CLIENT and len(self.inbox) > INBOX_HIGH:
            self.reader.hold()

    async def drain(self) -> None:
        if self.child is not None:
            await self.child.drain()

    async def speaks_modern(self) -> bool:
        """Ask the child ``server/discover`` (its answer is taken in :meth:`probed`), for the era bridge. A 2026-07-28
        client's first request waits for it, once per process, and only while the mount's bridge may apply."""
        future = self.probing = asyncio.get_running_loop().create_future()
        try:
            self.queue_for_child(discover_probe())
            self.flush()
            async with asyncio.timeout(PROBE_TIMEOUT):
                return answers_modern(await future)
        except TimeoutError:
            return True  # as the bridge does: not knowing is no reason to change what passes
        finally:
            self.probing = None

    def probed(self, messages: Iterator[Message]) -> Iterator[Message]:
        """The child's messages, less the answer to :meth:`speaks_modern`'s question."""
        for message in messages:
            probing = self.probing
            if probing is not None and message.is_reply and message.data.get("id") == PROBE_ID:
                if not probing.done():
                    probing.set_result(message)
                continue
            yield message

    def client_now(self, message: Message) -> bool:
        """A client message passed on unjudged, or ``False`` when the chain has to see it (in the task)."""
        eras = self.eras
        if eras.era is not MODERN and eras.stateless(message):
            return False
        era_route = self.era_route
        if era_route.pending or era_route.channel is not None:
            return False
        if message.data.get("method") == "initialize":
            self.note_initialize(message)
        if not self.mount.passes(message, C2S, self.session, "stdio"):
            return False
        if tracing.ACTIVE is not None and message.kind is REQUEST:
            return False  # its span is begun by the task (from_client)
        self.untouched += 1
        self.to_child_now(message)
        return True

    def server_now(self, message: Message) -> bool:
        """A server message passed on unjudged, or ``False`` when the chain has to see it (in the task)."""
        kind = message.kind
        sent = self.inflight.get(message.data["id"]) if kind is RESPONSE or kind is ERROR else None
        if kind is ERROR and sent is not None and self.era_route.may_refuse(sent[0]):
            return False
        if not self.mount.passes(message, S2C, self.session, "stdio", sent[0] if sent is not None else None):
            return False
        self.answered(message)
        self.untouched += 1
        if kind is ERROR:
            self.untouched_errors += 1
        self.write(message)
        return True

    def to_child_now(self, message: Message) -> None:
        """Queue a client message for the child; a request the child cannot take is answered with the error at once."""
        try:
            self.queue_for_child(message)
        except UpstreamError as exc:
            if message.kind is REQUEST:
                self.write(error_response(message.data["id"], exc))
            return
        if message.kind is REQUEST:
            self.sent(message)

    def queue_for_child(self, message: Message) -> None:
        """Queue a line for the child (written by :meth:`flush`), or raise :class:`UpstreamError` if it is gone."""
        assert self.child is not None
        if not self.child.alive:
            raise UpstreamError(f"upstream {self.mount.name!r} is not running")
        self.to_child.append(message.to_bytes())

    def route(self, message: Message) -> bool:
        return self.eras.era is not MODERN and self.eras.stateless(message)

    async def forward(self, message: Message, stateless: bool) -> None:
        if stateless:
            await self.to_stateless(message)
        else:
            self.to_child_now(message)

    async def to_stateless(self, message: Message) -> None:
        """A request to the upstream's stateless process (started for the first), read by a task of its own; the
        client's answer to what that process asked, or a cancellation of a request it serves, sent at once."""
        if message.kind is REQUEST:
            self.sent(message)
            self.eras.requests.add(message.data["id"])
            spawn(self.stateless(message), name=f"stateless-{message.id}")
            return
        self.eras.asked.discard(message.data.get("id"))
        with contextlib.suppress(UpstreamError):
            await (await self.mount.stateless_channel(self.session)).send(message, {})

    async def stateless(self, request: Message) -> None:
        """One request through the stateless process; its answers join the inbox."""
        try:
            channel = await self.mount.stateless_channel(self.session)
            await relay(channel, request, {}, self.from_upstream, self.eras.asked)
        except UpstreamError as exc:
            self.from_upstream(error_response(request.id, exc))
        finally:
            self.eras.requests.discard(request.data["id"])

    async def from_server(self, message: Message) -> None:
        """As every front, but an error to ``initialize`` may be a 2026-07-28-only server's refusal, which the era
        bridge answers (:class:`~shadowproxy.fronts.stdio.era_route.EraRoute`)."""
        if message.kind is ERROR:
            sent = self.inflight.get(message.data["id"])
            if sent is not None and self.era_route.may_refuse(sent[0]):
                message = await self.era_route.refused(sent[0], message)
        await super().from_server(message)

    async def send_answer(self, answer: Message) -> None:
        if answer.data.get("id") in self.eras.asked:
            await self.to_stateless(answer)
        else:
            self.queue_for_child(answer)

    async def close_upstream(self) -> None:
        if self.child is not None:
            await self.child.terminate()
