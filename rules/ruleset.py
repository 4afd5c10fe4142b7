"""A loaded, compiled, ordered set of rules, and the index that finds the rules a message can match.

:func:`load` reads every file, validates each against the schema, compiles
every rule, and either returns a complete :class:`RuleSet` or raises one
:class:`~shadowproxy.rules.source.RulesError` listing every problem in every
file. A rule set is immutable once built, so swapping one for another is a
single assignment: a message is judged by the old set or the new, never a mix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics import Counter

from shadowproxy.core.chain import Direction
from shadowproxy.core.jsonrpc import Kind, Message
from shadowproxy.core.vault import TOKEN_BYTES
from shadowproxy.rules import metrics, validate
from shadowproxy.rules.actions import Effect, RuleAction, compile_action
from shadowproxy.rules.match import CompiledMatch, MatchCompiler
from shadowproxy.rules.source import Document, Problem, RulesError, parse, read, resolve
from shadowproxy.rules.subject import Subject, named, params_of

BucketKey = tuple[Direction, Kind, str | None, str | None]
MAX_BUCKETS = 4096


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    """One compiled rule; ``file`` and ``line`` say where it was written."""

    id: str
    file: str
    line: int | None
    priority: int
    match: CompiledMatch
    action: RuleAction
    description: str | None = None
    counter: Counter | None = field(default=None, repr=False)

    @property
    def effect(self) -> Effect:
        """The rule's action kind."""
        return self.action.effect

    def matches(self, subject: Subject) -> bool:
        """All conditions, static ones included (the index normally checked those already)."""
        return all(test(subject) for test in self.match.static) and self.matches_dynamic(subject)

    def matches_dynamic(self, subject: Subject) -> bool:
        """The per-message conditions only."""
        test = self.match.test
        return test is None or test(subject)


@dataclass(frozen=True, slots=True)
class SourceSummary:
    """What one file contributed."""

    file: str
    rules: int
    disabled: int
    default: str | None


class RuleSet:
    """Rules in evaluation order: highest priority first, then file order."""

    def __init__(self, rules: Sequence[Rule], sources: Sequence[SourceSummary] = ()) -> None:
        self.rules = tuple(rules)
        self.sources = tuple(sources)
        block = [source.file for source in self.sources if source.default == "block"]
        self.default_block_file: str | None = block[0] if block else None
        self.tokenizes = any(rule.action.effect is Effect.TOKENIZE for rule in self.rules)
        """Whether a ``tokenize`` rule hands out tokens, which client messages may then carry back."""
        self._buckets: dict[BucketKey, tuple[Rule, ...]] = {}

    @property
    def default_block(self) -> bool:
        """Whether some file says ``default: block``."""
        return self.default_block_file is not None

    def candidates(self, subject: Subject) -> tuple[Rule, ...]:
        """The rules whose static conditions hold for this direction, kind, method and tool."""
        key = (subject.direction, subject.kind, subject.method, subject.tool)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = tuple(rule for rule in self.rules if all(test(subject) for test in rule.match.static))
            if len(self._buckets) >= MAX_BUCKETS:
                self._buckets.clear()
            self._buckets[key] = bucket
        return bucket

    def concerns(self, message: Message, direction: Direction, request: Message | None) -> bool:
        """Whether judging ``message`` could come to anything but forwarding it unchanged (``True`` when unsure).

        Told from the index, without building a :class:`Subject`: with no candidate rule, no ``default: block``
        and no ``tools/list`` result to filter, evaluation finds nothing. A key not indexed yet is judged in
        full, which indexes it.
        """
        if self.default_block_file is not None:
            return True
        if self.tokenizes and direction is Direction.CLIENT_TO_SERVER and TOKEN_BYTES.search(message.to_bytes()):
            return True
        method = message.method or (request.method if request is not None else None)
        if method == "tools/list":
            return True
        what, name = named(method, params_of(message, request))
        bucket = self._buckets.get((direction, message.kind, method, name if what == "tool" else None))
        return bucket is None or bool(bucket)

    def summary(self) -> dict[str, Any]:
        """Counts for ``rules check`` and the admin API."""
        by_action: dict[str, int] = {}
        for rule in self.rules:
            by_action[rule.effect.value] = by_action.get(rule.effect.value, 0) + 1
        return {
            "files": [source.file for source in self.sources],
            "rules": len(self.rules),
            "disabled": sum(source.disabled for source in self.sources),
            "by_action": dict(sorted(by_action.items())),
            "default": "block" if self.default_block else "allow",
            "default_from": self.default_block_file,
        }


def load(paths: Iterable[str]) -> RuleSet:
    """Load and compile every rules file ``paths`` names; raise :class:`RulesError` listing every problem."""
    files, problems = resolve(paths)
    documents: list[Document] = []
    for file in files:
        document, found = read(file)
        problems.extend(found)
        if document is not None:
            documents.append(document)
    return build(documents, problems)


def loads(text: str, name: str = "<rules>") -> RuleSet:
    """Compile rules from a string (tests and tools)."""
    document, problems = parse(text, name)
    return build([document] if document is not None else [], problems)


def build(documents: Sequence[Document], problems: list[Problem]) -> RuleSet:
    """Compile parsed documents; raise :class:`RulesError` if any problem was found on the way."""
    ordered: list[tuple[int, int, int, Rule]] = []
    sources: list[SourceSummary] = []
    seen: dict[str, str] = {}
    for file_index, document in enumerate(documents):
        schema_problems = validate.check(document)
        problems.extend(schema_problems)
        if not isinstance(document.data, dict) or not isinstance(document.data.get("rules"), list):
            continue
        broken = {problem.rule for problem in schema_problems if problem.rule}
        compiler = MatchCompiler(document, problems)
        disabled = 0
        for index, spec in enumerate(document.data["rules"]):
            rule_id = document.rule_id(("rules", index))
            if rule_id in broken or not isinstance(spec, dict):
                continue
            path = ("rules", index)
            if rule_id in seen:
                problems.append(
                    document.problem((*path, "id"), f"duplicate rule id (first defined at {seen[rule_id]})")
                )
                continue
            assert rule_id is not None
            seen[rule_id] = f"{document.file}:{document.line_of(path)}"
            match = compiler.compile(spec["match"], (*path, "match"))
            action = compile_action(spec["action"], document, (*path, "action"), problems)
            if not spec.get("enabled", True):
                disabled += 1
                continue
            rule = Rule(
                rule_id,
                document.file,
                document.line_of(path),
                spec.get("priority", 0),
                match,
                action,
                spec.get("description"),
                metrics.DECISIONS.labels(rule_id, action.effect.value),
            )
            ordered.append((-rule.priority, file_index, index, rule))
        sources.append(
            SourceSummary(document.file, len(document.data["rules"]), disabled, document.data.get("default"))
        )
    if problems:
        order = {document.file: index for index, document in enumerate(documents)}
        problems.sort(key=lambda problem: (order.get(problem.file, -1), problem.line or 0))
        raise RulesError(problems)
    ordered.sort(key=lambda entry: entry[:3])
    return RuleSet([entry[3] for entry in ordered], sources)
