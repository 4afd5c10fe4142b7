"""The built-in ``rules`` interceptor: policy from rules files, reloaded when they change.

Options (:class:`RulesOptions`)::

    paths:          [files, directories, or builtin:NAME packs]   (required)
    watch:          true     reload when a file changes (polls mtimes)
    watch_interval: 1.0      seconds between polls
    rate_backend:   memory   where ``rate`` actions count

The rule set in force is one immutable object read once per message, so a
reload (on change, on SIGHUP via :meth:`RulesInterceptor.reload`, or from the
admin API) swaps it atomically; an invalid file keeps the last good set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, StrictBool, ValidationInfo

from shadowproxy.config.validation import Section, options_from
from shadowproxy.core import tracing
from shadowproxy.core.chain import C2S, S2C, Direction, MessageContext, Verdict, block, delay, forward, hold, respond
from shadowproxy.core.errors import INTERNAL_ERROR, JsonRpcError
from shadowproxy.core.jsonrpc import REQUEST, Kind, Message, error_response, result_response
from shadowproxy.core.tasks import spawn
from shadowproxy.rules import metrics
from shadowproxy.rules.engine import Engine, Outcome
from shadowproxy.rules.ratelimit import create_counter
from shadowproxy.rules.ruleset import RuleSet, load
from shadowproxy.rules.source import RulesError, resolve
from shadowproxy.rules.subject import Subject

log = logging.getLogger(__name__)
# Keys the declined set holds at most: a client that calls ever new tool names costs no more than that.
MAX_DECLINED = 4096
_CALLED = (C2S, REQUEST)

Signature = tuple[tuple[str, int, int], ...]


def _paths(value: Any) -> Any:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not value or not all(isinstance(path, str) and path for path in value):
        raise ValueError("must be a non-empty list of files, directories or builtin:NAME packs")
    return tuple(value)


def _interval(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"must be a positive number of seconds, not {value!r}")
    return value


def _backend(value: Any) -> Any:
    if value != "memory":
        raise ValueError(f"{value!r} is not available (known: memory)")
    return value


class RulesOptions(Section):
    """The interceptor's configuration."""

    noun: ClassVar[str] = "option"

    paths: Annotated[tuple[str, ...], BeforeValidator(_paths)]
    watch: StrictBool = True
    watch_interval: Annotated[float, BeforeValidator(_interval)] = 1.0
    rate_backend: Annotated[str, BeforeValidator(_backend)] = "memory"

    @classmethod
    def prepare(cls, data: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        data.setdefault("paths", [])
        return data


class RulesInterceptor:
    """Judges every message by the rule set in force."""

    name = "rules"

    def __init__(self, options: RulesOptions, rules: RuleSet, engine: Engine | None = None) -> None:
        self.options = options
        self.engine = engine if engine is not None else Engine(create_counter(options.rate_backend))
        self._rules = rules
        # Keys (direction, kind, method, tool) the rule set in force declines, each with whether the answers to a
        # request of that key are declined too; a reload starts it anew.
        self._declined: dict[tuple[Direction, Kind, str | None, str | None], bool] = {}
        self._signature = _signature(options.paths)
        self._reload_lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None
        self.last_error: str | None = None
        metrics.RULES_LOADED.set(len(rules.rules))

    @property
    def rules(self) -> RuleSet:
        """The rule set in force."""
        return self._rules

    async def on_message(self, ctx: MessageContext) -> Verdict:
        """Judge one message by the rule set in force (read once, so a reload never splits it)."""
        tracer = tracing.ACTIVE
        if tracer is None:
            outcome = self.engine.evaluate(self._rules, Subject.from_context(ctx, self.engine.catalog))
            verdict = to_verdict(outcome)
        else:
            with tracer.child("rules.decision"):
                outcome = self.engine.evaluate(self._rules, Subject.from_context(ctx, self.engine.catalog))
                verdict = to_verdict(outcome)
                tracer.mark(verdict)
        session = ctx.session
        if ctx.direction is C2S and session is not None and session.tokens:
            ctx.restore = session.tokens.restore_message
        if outcome.delay > 0:
            if verdict.is_forward and verdict.message is None:
                return delay(outcome.delay)
            # A verdict carries one thing; hold the message here so the change or the answer is kept too.
            await asyncio.sleep(outcome.delay)
        return verdict

    def wants(self, message: Message, direction: Direction, request: Message | None) -> bool:
        """Whether :meth:`on_message` could do more than forward ``message`` as it is (see :meth:`Chain.declines`).

        The rule set's answer for a key it has declined once stays no until a reload (unless a rule tokenizes,
        which reads the message's bytes): the key is looked up here, as :meth:`RuleSet.concerns` makes it, and
        the same tool's next call costs one dict lookup. A request whose answers no rule could touch either is
        marked (:attr:`Message.memo`, the rule set in force), and its reply is then declined without a lookup.
        """
        rules = self._rules
        if request is not None and request.memo is rules:
            return False
        data = message.data
        method = data.get("method")
        if method is None and request is not None:
            # A reply: judged by its request's method and params (subject.params_of).
            data = request.data
            method = data.get("method")
        tool = None
        if method == "tools/call":
            params = data.get("params")
            if params.__class__ is dict:
                tool = params.get("name")
                if tool.__class__ is not str:
                    tool = None
        key = (direction, message.kind, method, tool)
        quiet = self._declined.get(key)
        if quiet is None:
            if rules.concerns(message, direction, request):
                return True
            if rules.tokenizes:
                return False  # nothing is kept, not even the mark, whose look would then be made for every call
            quiet = key[:2] == _CALLED and method != "tools/list" and self._answers_declined(message)
            if len(self._declined) >= MAX_DECLINED:
                self._declined.clear()
            self._declined[key] = quiet
        if quiet:
            message.memo = rules
        return False

    def _answers_declined(self, request: Message) -> bool:
        """Whether no rule could touch an answer to ``request``, a result or an error."""
        rules = self._rules
        for answer in (result_response(request.id, {}), error_response(request.id, JsonRpcError(INTERNAL_ERROR, ""))):
            if rules.candidates(Subject(answer, S2C, request=request)):
                return False
        return True

    async def reload(self) -> bool:
        """Load the files again; take the new set only if every file is valid. Returns whether it was taken."""
        async with self._reload_lock:
            self._signature = _signature(self.options.paths)
            try:
                rules = await asyncio.to_thread(load, self.options.paths)
            except RulesError as exc:
                self.last_error = str(exc)
                metrics.RELOADS.labels("failure").inc()
                log.error("rules reload refused; the last good rules stay in force:\n%s", exc)
                return False
            self._rules = rules
            self._declined = {}
            self.last_error = None
            metrics.RELOADS.labels("success").inc()
            metrics.RULES_LOADED.set(len(rules.rules))
            log.info("rules reloaded: %d rules from %d files", len(rules.rules), len(rules.sources))
            return True

    async def start(self) -> None:
        """Start watching the files, when ``watch`` is on."""
        if self.options.watch and self._watcher is None:
            self._watcher = spawn(self._watch(), name="rules-watch")

    async def close(self) -> None:
        """Stop watching."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.options.watch_interval)
            if _signature(self.options.paths) != self._signature:
                await self.reload()


def to_verdict(outcome: Outcome) -> Verdict:
    """The chain's verdict for an outcome of the engine."""
    if outcome.verdict == "block":
        assert outcome.error is not None
        return block(outcome.error.code, outcome.error.message, outcome.error.data)
    if outcome.verdict == "respond":
        return respond(outcome.result)
    if outcome.verdict == "hold":
        return hold(outcome.result, outcome.message)
    return forward(outcome.message)


def _signature(paths: tuple[str, ...]) -> Signature:
    files, _ = resolve(paths)
    entries = []
    for file in files:
        try:
            stat = os.stat(file)
        except OSError:
            entries.append((str(file), -1, -1))
            continue
        entries.append((str(file), stat.st_mtime_ns, stat.st_size))
    return tuple(entries)


def create(options: RulesOptions | Mapping[str, Any]) -> RulesInterceptor:
    """The entry point: the options (validated here when they are a mapping), the rules loaded (raising
    ConfigError listing every problem)."""
    if not isinstance(options, RulesOptions):
        options = options_from(RulesOptions, options, "interceptors.rules")
    return RulesInterceptor(options, load(options.paths))
