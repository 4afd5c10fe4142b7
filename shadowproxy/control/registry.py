"""The hold registry: held messages parked as futures until someone decides, one decision each.

A held message costs one future, one timer handle and one row in the store's hold book; no task. The
message's own task (the client connection's) awaits the future, calling the front's ``waiting`` callback every
``keepalive`` seconds so the client's answer stays open. A decision is a compare-and-set in the book first
(:meth:`HoldBook.settle`), so two people, or a person and the timeout, racing on two instances cannot both
win; the winner's decision then reaches the parked future, here or, through ``announce`` (the cluster's
broadcast), on the instance that holds it. A hold whose instance died (a restart) is settled as expired when
the next instance starts, so the book shows how each one ended.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import orjson

from shadowproxy.control import metrics
from shadowproxy.control.asking import ROUND_TRIP, Asker, can_elicit, decision_of, hold_answered, question
from shadowproxy.control.breakpoints import Breakpoint
from shadowproxy.control.decisions import DECISIONS, ending_for, verdict_for
from shadowproxy.control.round_trip import RoundTrips
from shadowproxy.core.chain import Direction, Verdict, block
from shadowproxy.core.errors import POLICY_BLOCKED, JsonRpcError, ShadowProxyError
from shadowproxy.core.hold import BLOCK, USER, HoldSpec
from shadowproxy.core.jsonrpc import Message, classify
from shadowproxy.core.record import SessionRecord
from shadowproxy.core.tasks import spawn
from shadowproxy.stores import StoreError
from shadowproxy.stores.holds import PENDING, Hold, HoldBook, MemoryHoldBook

log = logging.getLogger(__name__)
audit_log = logging.getLogger("shadowproxy.audit")

Waiting = Callable[[int], Awaitable[None]]
"""Called with 1, 2, ... each ``keepalive`` seconds a message waits: the front keeps its client's answer open."""
WATCH_QUEUE = 256


class HoldError(ShadowProxyError):
    """A decision that cannot be taken; ``status`` is the admin API's answer (400, 404, 409)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Parked:
    """One message waiting here: its hold as written, and the future its task awaits."""

    __slots__ = ("future", "hold", "message", "spec", "timer")

    def __init__(self, hold: Hold, message: Message, spec: HoldSpec) -> None:
        self.hold = hold
        self.message = message
        self.spec = spec
        self.future: asyncio.Future[Hold] = asyncio.get_running_loop().create_future()
        self.timer: asyncio.TimerHandle | None = None


class HoldRegistry:
    """The holds of one proxy process. ``breakpoints`` is the one attribute the message path reads when none
    is set."""

    def __init__(
        self,
        book: HoldBook | None = None,
        *,
        instance: str | None = None,
        keepalive: float = 15.0,
        alive: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.book: HoldBook = book if book is not None else MemoryHoldBook()
        self.instance = instance or f"{socket.gethostname()}:{os.getpid()}"
        self.keepalive = keepalive
        self.alive = alive or _alive_here
        self.announce: Callable[[str], None] | None = None
        self.breakpoints: tuple[Breakpoint, ...] = ()
        self.breakpoints_changed: Callable[[], None] | None = None
        self.parked: dict[str, Parked] = {}
        self.watchers: set[asyncio.Queue[Hold]] = set()
        self.round_trips = RoundTrips(self, _audit)

    # Breakpoints.

    def stops(
        self, message: Message, direction: Direction, session_id: str | None, upstream: str, request: Message | None
    ) -> bool:
        """Whether a breakpoint holds this message."""
        return any(bp.matches(message, direction, session_id, upstream, request) for bp in self.breakpoints)

    def set_breakpoint(self, breakpoint: Breakpoint) -> None:
        self.breakpoints = (*self.breakpoints, breakpoint)
        if self.breakpoints_changed is not None:
            self.breakpoints_changed()

    def clear_breakpoint(self, breakpoint_id: str) -> bool:
        kept = tuple(bp for bp in self.breakpoints if bp.id != breakpoint_id)
        found, self.breakpoints = len(kept) != len(self.breakpoints), kept
        if found and self.breakpoints_changed is not None:
            self.breakpoints_changed()
        return found

    # Holding.

    async def park(
        self,
        message: Message,
        direction: Direction,
        spec: HoldSpec,
        session: SessionRecord | None,
        upstream: str,
        request: Message | None,
        waiting: Waiting | None = None,
        ask: Asker | None = None,
    ) -> Verdict:
        """Hold ``message`` until it is decided, and return the chain's verdict for it.

        ``ask`` is how the front reaches its client with a request of the proxy's own: given, and the client
        able to elicit, ``by: user`` asks the client's user; otherwise it becomes its ``fallback``. For a
        2026-07-28 request it is :data:`~shadowproxy.control.asking.ROUND_TRIP`: nothing is parked here.
        """
        if spec.by == USER and ask is ROUND_TRIP:
            asked = await self.round_trips.judge(message, direction, spec, session, upstream, request)
            if asked is not None:
                return asked
            ask = None
        if spec.by == USER and (ask is None or not can_elicit(session)):
            spec = _fallback(spec)
            if spec.by == BLOCK:
                return _refused(spec)
        parked = Parked(self.describe(message, direction, spec, session, upstream, request), message, spec)
        hold = parked.hold
        try:
            await self.book.add(hold)
        except StoreError as exc:
            # Decided on this instance alone: the client must not wait on a store that is down.
            log.warning("hold %s is kept in memory only: %s", hold["id"], exc)
        self.parked[hold["id"]] = parked
        metrics.HELD.labels(spec.kind, spec.rule or "-").inc()
        metrics.PENDING.inc()
        _audit("hold", hold)
        self._tell(hold)
        loop = asyncio.get_running_loop()
        parked.timer = loop.call_later(spec.timeout, self._time_out, hold["id"])
        try:
            if ask is not None and spec.by == USER and not await ask(question(hold)) and spec.fallback == BLOCK:
                await self._settle(hold["id"], ending_for("deny", "user", "the client could not be asked"))
            settled = await self._wait(parked, waiting)
        except asyncio.CancelledError:
            spawn(self._settle(hold["id"], ending_for("deny", "client", "the client went away")), name="hold-gone")
            raise
        finally:
            parked.timer.cancel()
            self.parked.pop(hold["id"], None)
            metrics.PENDING.dec()
        return verdict_for(settled, message, spec)

    async def _wait(self, parked: Parked, waiting: Waiting | None) -> Hold:
        if waiting is None:
            return await parked.future
        ticks = 0
        while True:
            try:
                async with asyncio.timeout(self.keepalive):
                    return await asyncio.shield(parked.future)
            except TimeoutError:
                ticks += 1
                await waiting(ticks)

    def _time_out(self, hold_id: str) -> None:
        parked = self.parked.get(hold_id)
        if parked is not None:
            decision = "approve" if parked.spec.on_timeout == "approve" else "deny"
            text = f"no decision within {parked.spec.timeout:g}s"
            spawn(self._settle(hold_id, ending_for(decision, "timeout", text)), name="hold-timeout")

    def describe(
        self,
        message: Message,
        direction: Direction,
        spec: HoldSpec,
        session: SessionRecord | None,
        upstream: str,
        request: Message | None,
    ) -> Hold:
        asked = request if message.method is None and request is not None else message
        params = asked.params if isinstance(asked.params, dict) else {}
        now = time.time()
        return {
            "id": secrets.token_hex(8),
            "state": PENDING,
            "kind": spec.kind,
            "rule": spec.rule,
            "by": spec.by,
            "direction": direction.value,
            "method": asked.method,
            "tool": params.get("name") if asked.method == "tools/call" else None,
            "arguments": params.get("arguments") if asked.method == "tools/call" else None,
            "message": orjson.loads(message.to_bytes()),
            "session": session.id if session is not None else None,
            "principal": session.principal if session is not None else None,
            "upstream": upstream,
            "instance": self.instance,
            "created_at": now,
            "expires_at": now + spec.timeout,
            "on_timeout": spec.on_timeout,
        }

    # Deciding.

    async def decide(
        self,
        hold_id: str,
        decision: str,
        by: str,
        reason: str | None = None,
        *,
        arguments: Any = None,
        message: Any = None,
        result: Any = None,
        decider: str = "operator",
    ) -> Hold:
        """Settle a pending hold, on whichever instance it is parked; :class:`HoldError` if it cannot be."""
        if hold_id not in self.parked and not await self._known(hold_id):
            raise HoldError(404, f"no held message {hold_id}")
        if decision not in DECISIONS:
            raise HoldError(400, f"decision must be one of {', '.join(DECISIONS)}")
        if arguments is not None and not isinstance(arguments, dict):
            raise HoldError(400, "arguments must be a JSON object")
        if message is not None and not isinstance(message, dict):
            raise HoldError(400, "message must be a JSON object")
        if decision == "answer" and result is None:
            raise HoldError(400, "an answer needs a result")
        if message is not None:
            try:
                classify({**message, "jsonrpc": "2.0"}, None)
            except JsonRpcError as exc:
                raise HoldError(400, f"the edited message is not a JSON-RPC message: {exc.message}") from None
        ending = ending_for(decision, decider, reason, by=by, arguments=arguments, message=message, result=result)
        try:
            settled = await self._settle(hold_id, ending)
        except StoreError as exc:
            raise HoldError(503, f"the store cannot be reached: {exc}") from None
        if settled is None:
            hold = await self.book.get(hold_id)
            if hold is None:
                raise HoldError(404, f"no held message {hold_id}")
            raise HoldError(409, f"held message {hold_id} was already settled: {hold['state']}")
        return settled

    async def _known(self, hold_id: str) -> bool:
        try:
            return await self.book.get(hold_id) is not None
        except StoreError:
            return True  # the store is asked again when settling, and says so

    async def _settle(self, hold_id: str, ending: Hold) -> Hold | None:
        parked = self.parked.get(hold_id)
        try:
            settled = await self.book.settle(hold_id, ending)
        except StoreError:
            if parked is None:
                raise
            # Kept in memory only (or the store went down since): the future decides, once.
            settled = {**parked.hold, **ending} if not parked.future.done() else None
        if settled is None:
            return None
        metrics.DECIDED.labels(settled["kind"], ending["decision"], ending["decider"]).inc()
        _audit("decided", settled)
        self._tell(settled)
        if parked is not None:
            if not parked.future.done():
                parked.future.set_result(settled)
        elif self.announce is not None:
            self.announce(hold_id)
        return settled

    async def answered(self, message: Message, session_id: str | None) -> None:
        """The client's answer to the proxy's ``elicitation/create`` for a hold: the user's decision.

        Only the session whose message is held may answer it; any other answer is dropped.
        """
        hold_id = hold_answered(message)
        if hold_id is None:
            return
        parked = self.parked.get(hold_id)
        hold = parked.hold if parked is not None else await self.book.get(hold_id)
        if hold is None or hold["session"] != session_id or hold["by"] != USER:
            log.warning("dropped an answer to held message %s: not a question to this session", hold_id)
            return
        decision, reason = decision_of(message)
        try:
            await self.decide(hold_id, decision, "user", reason, decider="user")
        except HoldError as exc:
            log.info("the user's answer to held message %s came too late: %s", hold_id, exc.message)

    def settled_elsewhere(self, hold_id: str) -> None:
        """Another instance settled a hold: if it is parked here, fetch how and let its message go on."""
        self.round_trips.let_go(hold_id)
        if hold_id in self.parked:
            spawn(self._deliver(hold_id), name="hold-deliver")

    async def _deliver(self, hold_id: str) -> None:
        parked = self.parked.get(hold_id)
        hold = await self.book.get(hold_id)
        if parked is not None and hold is not None and hold["state"] != PENDING and not parked.future.done():
            self._tell(hold)
            parked.future.set_result(hold)

    # Listing and watching.

    async def list(self, limit: int = 100, pending: bool = False) -> list[Hold]:
        holds = await self.book.list(limit)
        return [hold for hold in holds if hold["state"] == PENDING] if pending else holds

    async def get(self, hold_id: str) -> Hold | None:
        return await self.book.get(hold_id)

    def watch(self) -> asyncio.Queue[Hold]:
        """A queue of holds as they are made and settled here (bounded: a slow watcher misses some)."""
        queue: asyncio.Queue[Hold] = asyncio.Queue(WATCH_QUEUE)
        self.watchers.add(queue)
        return queue

    def _tell(self, hold: Hold) -> None:
        for queue in self.watchers:
            if not queue.full():
                queue.put_nowait(hold)

    # Start and stop.

    async def start(self) -> None:
        """Settle what instances no longer running left pending: a restart ends what it held."""
        try:
            holds = await self.book.list(10_000)
        except StoreError as exc:
            log.warning("held messages of earlier runs could not be listed: %s", exc)
            return
        for hold in holds:
            if hold["state"] == PENDING and not await self.alive(hold["instance"]):
                ending = ending_for("deny", "restart", f"expired at restart (instance {hold['instance']} is gone)")
                ending["state"] = "expired"
                await self._settle(hold["id"], ending)

    async def close(self) -> None:
        """Settle what is parked here: the clients waiting for them are being cut off."""
        await self.round_trips.close()
        for hold_id in list(self.parked):
            ending = ending_for("deny", "shutdown", "the proxy stopped")
            ending["state"] = "expired"
            try:
                await self._settle(hold_id, ending)
            except StoreError as exc:
                log.warning("hold %s could not be settled at shutdown: %s", hold_id, exc)


def _fallback(spec: HoldSpec) -> HoldSpec:
    return replace(spec, by=spec.fallback)


def _refused(spec: HoldSpec) -> Verdict:
    text = f"approval by the user is required (rule {spec.rule!r}) and this client cannot be asked"
    return block(POLICY_BLOCKED, text, {"rule": spec.rule, "by": "user"})


def _audit(event: str, hold: Hold) -> None:
    if not audit_log.isEnabledFor(logging.INFO):
        return
    keys = ("id", "state", "kind", "rule", "method", "tool", "session", "principal", "upstream", "direction")
    record = {"event": f"hold_{event}", **{key: hold.get(key) for key in keys}}
    for key in ("decision", "decider", "decided_by", "reason", "decided_at", "edited"):
        if key in hold:
            record[key] = hold[key]
    audit_log.info(orjson.dumps(record).decode())


async def _alive_here(instance: str) -> bool:
    """Whether the process named ``host:pid`` still runs (a proxy without a cluster: only this host's count)."""
    host, _, pid = instance.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another host's: not ours to end
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
