"""The interceptor chain: every message, both ways, through one ordered list of hooks.

An :class:`Interceptor` is a small object with one async hook, ``on_message``.
It receives a :class:`MessageContext` and returns a :class:`Verdict`. The chain
is built once from config and frozen; it stops at the first verdict that is not
``forward``. An interceptor that raises fails the message closed: it is blocked
with an internal error, and the failure is counted and logged.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from shadowproxy.errors import INTERNAL_ERROR, POLICY_BLOCKED, JsonRpcError
from shadowproxy.jsonrpc import REQUEST, Message

if TYPE_CHECKING:
    from shadowproxy.session import SessionRecord

log = logging.getLogger(__name__)


class Direction(enum.Enum):
    CLIENT_TO_SERVER = "client_to_server"
    SERVER_TO_CLIENT = "server_to_client"


class Action(enum.Enum):
    FORWARD = "forward"
    BLOCK = "block"
    RESPOND = "respond"
    DELAY = "delay"


# Enum member lookups are slow on 3.11 (see jsonrpc.REQUEST): the per-message code uses these.
C2S, S2C = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
_FORWARD, _BLOCK, _RESPOND, _DELAY = Action.FORWARD, Action.BLOCK, Action.RESPOND, Action.DELAY


@dataclass(frozen=True, slots=True)
class Verdict:
    """What an interceptor decided. Build one with :func:`forward`, :func:`block`, :func:`respond` or :func:`delay`."""

    action: Action
    message: Message | None = None
    error: JsonRpcError | None = None
    result: Any = None
    seconds: float = 0.0
    by: str | None = None

    @property
    def is_forward(self) -> bool:
        return self.action is _FORWARD


FORWARD = Verdict(Action.FORWARD)


def forward(message: Message | None = None) -> Verdict:
    """Pass the message on, replaced by ``message`` when one is given."""
    return FORWARD if message is None else Verdict(Action.FORWARD, message=message)


def block(code: int = POLICY_BLOCKED, message: str = "blocked by policy", data: Any = None) -> Verdict:
    """Drop the message; a request gets this JSON-RPC error back, a response is replaced by it."""
    return Verdict(Action.BLOCK, error=JsonRpcError(code, message, data))


def respond(result: Any) -> Verdict:
    """Answer a request from the proxy; the other side never sees it."""
    return Verdict(Action.RESPOND, result=result)


def delay(seconds: float) -> Verdict:
    """Hold the message for ``seconds``, then let the rest of the chain judge it."""
    return Verdict(Action.DELAY, seconds=seconds)


class MessageContext:
    """Everything an interceptor may look at for one message.

    ``request`` is, for a response or error, the request it answers (so a hook
    can tell a ``tools/list`` result from any other). ``scratch`` is a dict
    private to this message, shared by the interceptors along the chain.
    """

    __slots__ = ("_scratch", "direction", "message", "principal", "request", "session", "transport", "upstream")

    def __init__(
        self,
        message: Message,
        direction: Direction,
        *,
        session: SessionRecord | None = None,
        transport: str = "http",
        upstream: str = "default",
        principal: str | None = None,
        request: Message | None = None,
    ) -> None:
        self.message = message
        self.direction = direction
        self.session = session
        self.transport = transport
        self.upstream = upstream
        self.principal = principal
        self.request = request
        self._scratch: dict[str, Any] | None = None

    @property
    def scratch(self) -> dict[str, Any]:
        if self._scratch is None:
            self._scratch = {}
        return self._scratch

    @property
    def method(self) -> str | None:
        """The message's method, or for a reply the method of the request it answers."""
        method = self.message.method
        if method is None and self.request is not None:
            return self.request.method
        return method


@runtime_checkable
class Interceptor(Protocol):
    """One hook on every message. It does not know the transport, the store or the other hooks.

    An interceptor may also have a synchronous ``wants(message, direction, request) -> bool``: ``False``
    promises that :meth:`on_message` would forward that message unchanged, so it need not be run
    (see :meth:`Chain.declines`). Without it, every message is the interceptor's.
    """

    name: str

    async def on_message(self, ctx: MessageContext) -> Verdict: ...


class InterceptorFailures:
    """Counts interceptors that raised; the metrics module reads it."""

    def __init__(self) -> None:
        self.by_name: dict[str, int] = {}

    def add(self, name: str) -> None:
        self.by_name[name] = self.by_name.get(name, 0) + 1


class Chain:
    """An ordered, frozen list of interceptors."""

    __slots__ = ("_wants", "failures", "interceptors")

    def __init__(self, interceptors: Sequence[Interceptor] = ()) -> None:
        self.interceptors: tuple[Interceptor, ...] = tuple(interceptors)
        self.failures = InterceptorFailures()
        wants = tuple(getattr(interceptor, "wants", None) for interceptor in self.interceptors)
        # Only a chain whose every hook can say so in advance can decline a message.
        self._wants: tuple[Callable[[Message, Direction, Message | None], bool], ...] | None = (
            wants if all(want is not None for want in wants) else None  # type: ignore[assignment]
        )

    def __bool__(self) -> bool:
        return bool(self.interceptors)

    def __len__(self) -> int:
        return len(self.interceptors)

    def declines(self, message: Message, direction: Direction, request: Message | None = None) -> bool:
        """Whether every interceptor says, without being run, that it would forward ``message`` unchanged.

        A rules file of tool policies says so of every call to a tool it does not name, and of the replies;
        such a message then costs what it costs with an empty chain.
        """
        if self._wants is None:
            return False
        for wants in self._wants:
            if wants(message, direction, request):
                return False
        return True

    async def run(self, ctx: MessageContext) -> Verdict:
        """Judge ``ctx.message``. A forward with a modified message updates ``ctx.message`` for the next hook.

        ``delay`` is served here, by sleeping in the caller's task, which is the
        task of the connection the message belongs to.
        """
        modified = False
        for interceptor in self.interceptors:
            try:
                verdict = await interceptor.on_message(ctx)
            except Exception:
                self.failures.add(interceptor.name)
                log.exception("interceptor %r failed on %r; the message is blocked", interceptor.name, ctx.message)
                return Verdict(
                    Action.BLOCK,
                    error=JsonRpcError(INTERNAL_ERROR, f"internal error in interceptor {interceptor.name!r}"),
                    by=interceptor.name,
                )
            if verdict is None or not isinstance(verdict, Verdict):
                self.failures.add(interceptor.name)
                log.error("interceptor %r returned %r, not a Verdict; message blocked", interceptor.name, verdict)
                return Verdict(
                    Action.BLOCK,
                    error=JsonRpcError(INTERNAL_ERROR, f"interceptor {interceptor.name!r} returned no verdict"),
                    by=interceptor.name,
                )
            action = verdict.action
            if action is _FORWARD:
                if verdict.message is not None:
                    ctx.message = verdict.message
                    modified = True
                continue
            if action is _DELAY:
                await asyncio.sleep(verdict.seconds)
                continue
            if action is _RESPOND and ctx.message.kind is not REQUEST:
                # Only a request can be answered; on anything else "respond" replaces the result it carries.
                if ctx.message.is_reply:
                    ctx.message = ctx.message.evolve(result=verdict.result, error=None)
                    modified = True
                    continue
                return Verdict(Action.BLOCK, error=JsonRpcError(POLICY_BLOCKED, "dropped"), by=interceptor.name)
            return Verdict(action, verdict.message, verdict.error, verdict.result, verdict.seconds, interceptor.name)
        return Verdict(_FORWARD, message=ctx.message) if modified else FORWARD
