"""The interceptor chain: every message, both ways, through one ordered list of hooks.

An :class:`Interceptor` is a small object with one async hook, ``on_message``.
It receives a :class:`MessageContext` and returns a :class:`Verdict`. The chain
is built once from config and frozen; it stops at the first verdict that is not
``forward``. An interceptor that raises fails the message closed: it is blocked
with an internal error, and the failure is counted and logged.

The other extension points are Protocols too, each found once when the chain is
built (never looked up per message): a :class:`VerdictObserver` is shown each
message with the verdict it got, and :class:`Startable`, :class:`Closable` and
:class:`Reloadable` hooks are called as the proxy starts, stops and reloads.
Config's ``interceptors`` list names both interceptors and observers.

Metrics and the live tap are not hooks: they are the proxy's own observers,
which every proxy has, called by name from :class:`~shadowproxy.proxy.mount.Mount`
next to :meth:`Chain.observe` and :meth:`Chain.observe_skipped`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from shadowproxy.core.errors import INTERNAL_ERROR, POLICY_BLOCKED, JsonRpcError
from shadowproxy.core.jsonrpc import REQUEST, Message

if TYPE_CHECKING:
    from shadowproxy.core.hold import HoldSpec
    from shadowproxy.core.record import SessionRecord

log = logging.getLogger(__name__)


class Direction(enum.Enum):
    CLIENT_TO_SERVER = "client_to_server"
    SERVER_TO_CLIENT = "server_to_client"

    __hash__ = object.__hash__  # as jsonrpc.Kind's: by identity, in C


class Action(enum.Enum):
    FORWARD = "forward"
    BLOCK = "block"
    RESPOND = "respond"
    DELAY = "delay"
    HOLD = "hold"

    __hash__ = object.__hash__  # as jsonrpc.Kind's: by identity, in C


# Enum member lookups are slow on 3.11 (see jsonrpc.REQUEST): the per-message code uses these.
C2S, S2C = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
_FORWARD, _BLOCK, _RESPOND, _DELAY = Action.FORWARD, Action.BLOCK, Action.RESPOND, Action.DELAY


@dataclass(frozen=True, slots=True)
class Verdict:
    """What an interceptor decided. Build one with :func:`forward`, :func:`block`, :func:`respond`, :func:`delay`
    or :func:`hold`."""

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


def hold(spec: HoldSpec, message: Message | None = None) -> Verdict:
    """Park the message (``message`` when given) until a person decides: the mount hands it to the hold
    registry. It ends the chain."""
    return Verdict(Action.HOLD, message=message, result=spec)


def delay(seconds: float) -> Verdict:
    """Hold the message for ``seconds``, then let the rest of the chain judge it."""
    return Verdict(Action.DELAY, seconds=seconds)


class MessageContext:
    """Everything an interceptor may look at for one message.

    ``request`` is, for a response or error, the request it answers (so a hook
    can tell a ``tools/list`` result from any other). ``scratch`` is a dict
    private to this message, shared by the interceptors along the chain.
    ``restore``, when a hook sets it, is applied to the message the chain let
    through after every observer has seen it, just before it goes on.
    """

    __slots__ = (
        "_scratch",
        "direction",
        "message",
        "principal",
        "request",
        "restore",
        "session",
        "transport",
        "upstream",
    )

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
        # What the message becomes after observers, the tap and the audit saw it: the tokenizer's real values,
        # which they must never see, go in only on the way out (Mount.judge).
        self.restore: Callable[[Message], Message] | None = None

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

    An interceptor may also be :class:`Selective`, so that a message it does not want need not be run
    through it (see :meth:`Chain.declines`). Without ``wants``, every message is the interceptor's.
    """

    name: str

    async def on_message(self, ctx: MessageContext) -> Verdict: ...


@runtime_checkable
class VerdictObserver(Protocol):
    """Sees each message once the chain has decided, and changes nothing (the audit log is one).

    :meth:`observe` runs in the message's own callback or task, so it must not block: it queues what it
    keeps. It is shown every message the chain judged, with the chain's verdict, and ``ctx.message`` as it
    goes on. A message the chain skipped (see :meth:`Chain.declines`) it is shown as if the chain had run
    and forwarded it untouched: a context built for it as the interceptors would have had it, and the
    verdict :data:`FORWARD`. An observer that is :class:`Selective` is shown only the skipped messages it
    wants, so that a context is built for no one else; one that raises is counted and logged, and the
    message goes on as decided.
    """

    name: str

    def observe(self, ctx: MessageContext, verdict: Verdict) -> None: ...


@runtime_checkable
class Selective(Protocol):
    """A hook that can tell, without a context, which messages it has nothing to do with.

    ``False`` promises, of an interceptor, that :meth:`~Interceptor.on_message` would forward the message
    unchanged; of an observer, that :meth:`~VerdictObserver.observe` would do nothing with it forwarded so.
    An interceptor that also has ``methods`` (a set) is asked only of messages of those methods (a reply's: its
    request's); of any other the chain takes ``False`` as its answer, without a call.
    """

    def wants(self, message: Message, direction: Direction, request: Message | None) -> bool: ...


@runtime_checkable
class Startable(Protocol):
    """Opened as the proxy starts, before the first message (files, threads, watchers)."""

    name: str

    async def start(self) -> None: ...


@runtime_checkable
class Closable(Protocol):
    """Closed as the proxy stops, after the last message."""

    name: str

    async def close(self) -> None: ...


@runtime_checkable
class Reloadable(Protocol):
    """Reloaded on SIGHUP and from the admin API; true when it took its new configuration."""

    name: str

    async def reload(self) -> bool: ...


Hook = Interceptor | VerdictObserver
Wants = Callable[[Message, Direction, Message | None], bool]


class InterceptorFailures:
    """Counts interceptors and observers that raised; the metrics module reads it."""

    def __init__(self) -> None:
        self.by_name: dict[str, int] = {}

    def add(self, name: str) -> None:
        self.by_name[name] = self.by_name.get(name, 0) + 1


class Chain:
    """An ordered, frozen list of hooks, sorted once by what each can do."""

    __slots__ = (
        "_narrow",
        "_skipped",
        "_wants",
        "closables",
        "failures",
        "interceptors",
        "judges",
        "observers",
        "reloadables",
        "startables",
    )

    def __init__(self, hooks: Sequence[Hook] = ()) -> None:
        # Config calls every hook an interceptor: this is them all, in its order, as the banner names them.
        self.interceptors: tuple[Hook, ...] = tuple(hooks)
        self.judges = tuple(hook for hook in self.interceptors if isinstance(hook, Interceptor))
        self.observers = tuple(hook for hook in self.interceptors if isinstance(hook, VerdictObserver))
        self.startables = tuple(hook for hook in self.interceptors if isinstance(hook, Startable))
        self.closables = tuple(hook for hook in self.interceptors if isinstance(hook, Closable))
        self.reloadables = tuple(hook for hook in self.interceptors if isinstance(hook, Reloadable))
        self.failures = InterceptorFailures()
        # Only a chain whose every interceptor can say so in advance can decline a message.
        selective = [judge for judge in self.judges if isinstance(judge, Selective)]
        every = len(selective) == len(self.judges)
        narrow = [(methods, judge.wants) for judge in selective if (methods := getattr(judge, "methods", None))]
        self._narrow: tuple[tuple[frozenset[str], Wants], ...] = tuple(narrow)
        wide = [judge.wants for judge in selective if not getattr(judge, "methods", None)]
        self._wants: tuple[Wants, ...] | None = tuple(wide) if every else None
        self._skipped: tuple[tuple[VerdictObserver, Wants | None], ...] = tuple(
            (observer, observer.wants if isinstance(observer, Selective) else None) for observer in self.observers
        )

    def __bool__(self) -> bool:
        return bool(self.interceptors)

    def __len__(self) -> int:
        return len(self.interceptors)

    def declines(self, message: Message, direction: Direction, request: Message | None = None) -> bool:
        """Whether every interceptor says, without being run, that it would forward ``message`` unchanged.

        A rules file of tool policies says so of every call to a tool it does not name, and of the replies;
        such a message then costs what it costs with an empty chain (observers do not count here: they
        are shown it anyway, see :meth:`observe_skipped`).
        """
        if self._wants is None:
            return False
        for wants in self._wants:
            if wants(message, direction, request):
                return False
        if self._narrow:
            method = message.data.get("method") or (request.data.get("method") if request is not None else None)
            for methods, wants in self._narrow:
                if method in methods and wants(message, direction, request):
                    return False
        return True

    async def run(self, ctx: MessageContext) -> Verdict:
        """Judge ``ctx.message``. A forward with a modified message updates ``ctx.message`` for the next hook.

        ``delay`` is served here, by sleeping in the caller's task, which is the
        task of the connection the message belongs to.
        """
        modified = False
        for interceptor in self.judges:
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

    def observe(self, ctx: MessageContext, verdict: Verdict) -> None:
        """Show a judged message and the chain's verdict on it to every observer."""
        for observer in self.observers:
            try:
                observer.observe(ctx, verdict)
            except Exception:
                self._failed(observer, ctx.message)

    def observe_skipped(
        self,
        message: Message,
        direction: Direction,
        request: Message | None,
        session: SessionRecord | None,
        transport: str,
        upstream: str,
    ) -> None:
        """Show a message the chain skipped, forwarded untouched, to the observers that want it."""
        ctx = None
        for observer, wants in self._skipped:
            try:
                if wants is not None and not wants(message, direction, request):
                    continue
                if ctx is None:
                    principal = session.principal if session is not None else None
                    ctx = MessageContext(
                        message,
                        direction,
                        session=session,
                        transport=transport,
                        upstream=upstream,
                        principal=principal,
                        request=request,
                    )
                observer.observe(ctx, FORWARD)
            except Exception:
                self._failed(observer, message)

    def _failed(self, observer: VerdictObserver, message: Message) -> None:
        # The verdict stands: an observer only watches, so its failure must not change what passes.
        self.failures.add(observer.name)
        log.exception("observer %r failed on %r; the message went on as decided", observer.name, message)
