"""``by: user`` in the 2026-07-28 era: the question goes in an ``InputRequiredResult``, the answer in the retry.

A 2026-07-28 request has no stream on which the proxy could send a request of its own, so a call held for its
client's user is answered at once with an ``InputRequiredResult`` whose one input request is the proxy's
``elicitation/create`` (:func:`~shadowproxy.control.asking.question`) and whose ``requestState`` names the
hold. The client asks its user and sends the call again with the answer in ``inputResponses`` and the
``requestState`` echoed; that retry is judged by the chain like any request, and when its hold comes round
again it is settled here with the user's answer instead of being asked again. The message that goes on is the
one that was held (as the user saw it, with an operator's edit if one decided first), answering the retry's id.

Nothing waits in memory between the two requests: the hold lives in the hold book, so the retry may reach
another instance of a cluster. A timer settles a hold whose retry never comes, after the rule's ``timeout``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from shadowproxy.control import metrics
from shadowproxy.control.asking import KEY, STATE_PREFIX, decision_of_result, input_required
from shadowproxy.control.decisions import ending_for, verdict_for
from shadowproxy.core.chain import Direction, Verdict, block, forward, respond
from shadowproxy.core.errors import INVALID_PARAMS
from shadowproxy.core.hold import USER, HoldSpec
from shadowproxy.core.jsonrpc import Message, classify
from shadowproxy.core.protocol import META_CLIENT_CAPABILITIES, meta_of
from shadowproxy.core.record import SessionRecord
from shadowproxy.core.tasks import spawn
from shadowproxy.stores import StoreError
from shadowproxy.stores.holds import PENDING, Hold, HoldBook

log = logging.getLogger(__name__)

RETRY_FIELDS = ("inputResponses", "requestState")


class Holding(Protocol):
    """What the round trip uses of the hold registry."""

    book: HoldBook

    def describe(
        self,
        message: Message,
        direction: Direction,
        spec: HoldSpec,
        session: SessionRecord | None,
        upstream: str,
        request: Message | None,
    ) -> Hold: ...

    async def _settle(self, hold_id: str, ending: Hold) -> Hold | None: ...

    def _tell(self, hold: Hold) -> None: ...


def can_elicit_now(message: Message) -> bool:
    """Whether a 2026-07-28 request's ``_meta`` declares the elicitation capability."""
    capabilities = meta_of(message).get(META_CLIENT_CAPABILITIES)
    return isinstance(capabilities, dict) and capabilities.get("elicitation") is not None


def retry_of(message: Message) -> tuple[str, Any] | None:
    """The hold id a retry's ``requestState`` names, and its ``inputResponses``, when it answers the proxy."""
    params = message.params
    state = params.get("requestState") if isinstance(params, dict) else None
    if isinstance(state, str) and state.startswith(STATE_PREFIX):
        return state[len(STATE_PREFIX) :], params.get("inputResponses")  # type: ignore[union-attr]
    return None


class RoundTrips:
    """The holds asked of 2026-07-28 clients: made, resumed by the retry, or ended by their timers."""

    def __init__(self, registry: Holding, audit: Callable[[str, Hold], None]) -> None:
        self.registry = registry
        self.audit = audit
        self.timers: dict[str, asyncio.TimerHandle] = {}

    async def judge(
        self,
        message: Message,
        direction: Direction,
        spec: HoldSpec,
        session: SessionRecord | None,
        upstream: str,
        request: Message | None,
    ) -> Verdict | None:
        """The verdict for a held 2026-07-28 request: the question, or the retry's outcome; ``None`` when the
        client cannot be asked (the caller applies the rule's fallback)."""
        retry = retry_of(message)
        if retry is not None:
            return await self.resume(retry[0], retry[1], message, spec, session)
        if not can_elicit_now(message):
            return None
        hold = self.registry.describe(message, direction, spec, session, upstream, request)
        try:
            await self.registry.book.add(hold)
        except StoreError as exc:
            # The retry finds the hold in the book, on whichever instance it lands: without it, no round trip.
            log.warning("hold %s cannot be asked of its client, the store is down: %s", hold["id"], exc)
            return None
        metrics.HELD.labels(spec.kind, spec.rule or "-").inc()
        metrics.PENDING.inc()  # until its timer is let go: settled here, elsewhere, or timed out
        self.audit("hold", hold)
        self.registry._tell(hold)
        loop = asyncio.get_running_loop()
        self.timers[hold["id"]] = loop.call_later(spec.timeout, self._time_out, hold["id"], spec)
        return respond(input_required(hold))

    async def resume(
        self, hold_id: str, responses: Any, message: Message, spec: HoldSpec, session: SessionRecord | None
    ) -> Verdict:
        try:
            hold = await self.registry.book.get(hold_id)
        except StoreError as exc:
            return block(INVALID_PARAMS, f"the held call cannot be found now (the store is down: {exc})")
        params = message.params if isinstance(message.params, dict) else {}
        if (
            hold is None
            or hold["by"] != USER
            or hold["session"] != (session.id if session is not None else None)
            or hold["method"] != message.method
            or hold.get("tool") != params.get("name")
        ):
            return block(INVALID_PARAMS, "unknown or expired requestState; send the request again without it")
        if hold["state"] == PENDING:
            answer = responses.get(KEY) if isinstance(responses, dict) else None
            if not isinstance(answer, dict):
                return respond(input_required(hold))  # a retry without the answer is asked again
            if time.time() > hold["expires_at"]:
                ending = _timed_out(spec)
            else:
                decision, reason = decision_of_result(answer)
                ending = ending_for(decision, "user", reason)
            settled = await self._settle(hold_id, ending)
            hold = settled if settled is not None else await self.registry.book.get(hold_id) or hold
        held = classify({**hold["message"], "id": message.id}, None)
        verdict = verdict_for(hold, held, spec)
        return forward(held) if verdict.is_forward and verdict.message is None else verdict

    async def _settle(self, hold_id: str, ending: Hold) -> Hold | None:
        self.let_go(hold_id)
        try:
            return await self.registry._settle(hold_id, ending)
        except StoreError as exc:
            log.warning("held message %s could not be settled: %s", hold_id, exc)
            return None

    def let_go(self, hold_id: str) -> None:
        """Stop timing a hold asked from here: it is settled, here or on another instance."""
        timer = self.timers.pop(hold_id, None)
        if timer is not None:
            timer.cancel()
            metrics.PENDING.dec()

    def _time_out(self, hold_id: str, spec: HoldSpec) -> None:
        spawn(self._settle(hold_id, _timed_out(spec)), name="hold-timeout")

    async def close(self) -> None:
        """The proxy stops: what its clients were asked ends as expired (a later retry is refused)."""
        for hold_id in list(self.timers):
            ending = ending_for("deny", "shutdown", "the proxy stopped")
            ending["state"] = "expired"
            await self._settle(hold_id, ending)


def _timed_out(spec: HoldSpec) -> Hold:
    decision = "approve" if spec.on_timeout == "approve" else "deny"
    return ending_for(decision, "timeout", f"no decision within {spec.timeout:g}s")
