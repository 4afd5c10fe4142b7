"""Compile a rule's ``match`` into predicates, once, at load.

A predicate is a plain function of a :class:`~shadowproxy.rules.subject.Subject`.
The conditions at the top of a match on ``direction``, ``kind``, ``method`` and
``tool`` are *static*: they depend only on those four values, so the rule set
evaluates them once per combination and files the rule under it (the index).
Everything else is *dynamic* and runs per message.
"""

from __future__ import annotations

import fnmatch
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from shadowproxy.core.chain import Direction
from shadowproxy.core.jsonrpc import Kind
from shadowproxy.rules import jsonpath
from shadowproxy.rules.source import Document, JsonPath, Problem
from shadowproxy.rules.subject import Subject

Predicate = Callable[[Subject], bool]
NameTest = Callable[[str | None], bool]

STATIC_KEYS = ("direction", "kind", "method", "tool")
# Dynamic conditions run cheapest first, so a failing cheap one spares the costly ones.
_COST = {
    "size": 0,
    "principal": 1,
    "upstream": 1,
    "resource": 2,
    "prompt": 2,
    "session": 3,
    "annotations": 4,
    "description": 4,
}


@dataclass(frozen=True, slots=True)
class CompiledMatch:
    """``static`` predicates depend only on direction, kind, method and tool; ``dynamic`` ones on anything."""

    static: tuple[Predicate, ...]
    dynamic: tuple[Predicate, ...]
    reads_arguments: bool
    test: Predicate | None
    """All dynamic conditions as one predicate, cheapest first; None when there are none."""


class MatchCompiler:
    """Compiles match specs from one document, collecting problems instead of stopping at the first."""

    def __init__(self, document: Document, problems: list[Problem]) -> None:
        self.document = document
        self.problems = problems
        self.reads_arguments = False

    def problem(self, path: JsonPath, message: str) -> None:
        """Record a problem at ``path``."""
        self.problems.append(self.document.problem(path, message))

    def compile(self, spec: dict[str, Any], path: JsonPath) -> CompiledMatch:
        """Compile one rule's match."""
        self.reads_arguments = False
        static: list[Predicate] = []
        dynamic: list[tuple[int, Predicate]] = []
        for key, value in spec.items():
            predicate = self._condition(key, value, (*path, key))
            if key in STATIC_KEYS:
                static.append(predicate)
            else:
                dynamic.append((_COST.get(key, 9), predicate))
        ordered = tuple(predicate for _, predicate in sorted(dynamic, key=lambda entry: entry[0]))
        test = all_of(ordered) if ordered else None
        return CompiledMatch(tuple(static), ordered, self.reads_arguments, test)

    def _all(self, spec: dict[str, Any], path: JsonPath) -> Predicate:
        return all_of([self._condition(key, value, (*path, key)) for key, value in spec.items()])

    def _condition(self, key: str, value: Any, path: JsonPath) -> Predicate:
        if key == "direction":
            direction = Direction(value)
            return lambda subject: subject.direction is direction
        if key == "kind":
            kinds = frozenset(Kind(item) for item in (value if isinstance(value, list) else [value]))
            return lambda subject: subject.kind in kinds
        if key in ("method", "tool", "resource", "prompt", "principal", "upstream", "description"):
            test = self.name_test(value, path)
            read = operator.attrgetter(key)
            return lambda subject: test(read(subject))
        if key in ("params", "result"):
            if key == "params":
                self.reads_arguments = True
            test = all_of(self._conditions(value, path))
            if key == "params":
                return lambda subject: test(subject.params)
            return lambda subject: test(subject.message.result)
        if key == "annotations":
            test = all_of(self._conditions(value, path))
            return lambda subject: test(subject.annotations)
        if key == "session":
            return self._session(value, path)
        if key == "size":
            compare = _compare(value)
            return lambda subject: compare(subject.size)
        if key == "not":
            inner = self._all(value, path)
            return lambda subject: not inner(subject)
        if key == "any":
            return any_of([self._all(item, (*path, index)) for index, item in enumerate(value)])
        if key == "all":
            return all_of([self._all(item, (*path, index)) for index, item in enumerate(value)])
        raise AssertionError(f"schema let through match key {key!r}")  # pragma: no cover

    def _session(self, spec: dict[str, Any], path: JsonPath) -> Predicate:
        tests: list[Predicate] = []
        for key in ("client_name", "client_version"):
            if key in spec:
                test = self.name_test(spec[key], (*path, key))
                tests.append(lambda subject, test=test, key=key: test(getattr(subject.session, key, None)))
        if "protocol_version" in spec:
            version = self.name_test(spec["protocol_version"], (*path, "protocol_version"))
            tests.append(lambda subject: version(subject.protocol_version))
        if "tags" in spec:
            wanted = frozenset(spec["tags"])
            tests.append(lambda subject: subject.session is not None and wanted.issubset(subject.session.tags))
        return all_of(tests)

    def name_test(self, spec: Any, path: JsonPath) -> NameTest:
        """A glob string, ``{glob: ...}``, ``{regex: ...}``, or a list of those (any may match)."""
        if isinstance(spec, list):
            literals = frozenset(item for item in spec if isinstance(item, str) and not any(c in item for c in "*?["))
            others = [
                self.name_test(item, (*path, index))
                for index, item in enumerate(spec)
                if not (isinstance(item, str) and item in literals)
            ]
            rest = any_of(others) if others else None
            if rest is None:
                return lambda value: value in literals
            return lambda value: value in literals or rest(value)
        if isinstance(spec, dict) and "regex" in spec:
            pattern = self.regex(spec["regex"], (*path, "regex"))
            return lambda value: value is not None and pattern.search(value) is not None
        glob = spec["glob"] if isinstance(spec, dict) else spec
        if not any(char in glob for char in "*?["):
            return lambda value: value == glob
        compiled = re.compile(fnmatch.translate(glob), re.DOTALL)
        return lambda value: value is not None and compiled.match(value) is not None

    def regex(self, pattern: str, path: JsonPath) -> re.Pattern[str]:
        """Compile a regex; a bad one is a problem (and a regex that never matches)."""
        try:
            return re.compile(pattern)
        except re.error as exc:
            self.problem(path, f"bad regex {pattern!r}: {exc}")
            return re.compile(r"(?!)")

    def _conditions(self, spec: dict[str, Any], path: JsonPath) -> list[Callable[[Any], bool]]:
        tests: list[Callable[[Any], bool]] = []
        for text, condition in spec.items():
            try:
                steps = jsonpath.parse(text)
            except jsonpath.PathError as exc:
                self.problem((*path, text), str(exc))
                continue
            tests.append(self._path_test(steps, condition, (*path, text)))
        return tests

    def _path_test(self, steps: jsonpath.Path, condition: Any, path: JsonPath) -> Callable[[Any], bool]:
        if not isinstance(condition, dict):
            condition = {"equals": condition}
        exists = condition.get("exists")
        operators = [
            self._operator(name, operand, (*path, name)) for name, operand in condition.items() if name != "exists"
        ]
        check = all_of(operators) if operators else None
        if jsonpath.ANY not in steps:
            # One value at most: a direct walk, no generator.
            def single(root: Any) -> bool:
                value = jsonpath.get(root, steps)
                if value is jsonpath.MISSING:
                    return exists is False
                return exists is not False and (check is None or check(value))

            return single

        def several(root: Any) -> bool:
            found = False
            for value in jsonpath.values(root, steps):
                found = True
                if check is None or check(value):
                    return exists is not False
            return exists is False if not found else False

        return several

    def _operator(self, name: str, operand: Any, path: JsonPath) -> Callable[[Any], bool]:
        if name == "equals":
            return lambda value: same(value, operand)
        if name == "in":
            return lambda value: any(same(value, item) for item in operand)
        if name == "regex":
            pattern = self.regex(operand, path)
            return lambda value: isinstance(value, str) and pattern.search(value) is not None
        if name == "contains":
            return lambda value: _contains(value, operand)
        return _compare({name: operand})


def all_of(predicates: Sequence[Callable[[Any], bool]]) -> Callable[[Any], bool]:
    """A predicate true when every one of ``predicates`` is (short-circuit, no generator on the hot path)."""
    if not predicates:
        return lambda subject: True
    if len(predicates) == 1:
        return predicates[0]
    if len(predicates) == 2:
        first, second = predicates
        return lambda subject: first(subject) and second(subject)
    frozen = tuple(predicates)

    def every(subject: Any) -> bool:
        for predicate in frozen:
            if not predicate(subject):
                return False
        return True

    return every


def any_of(predicates: Sequence[Callable[[Any], bool]]) -> Callable[[Any], bool]:
    """A predicate true when one of ``predicates`` is."""
    if len(predicates) == 1:
        return predicates[0]
    if len(predicates) == 2:
        first, second = predicates
        return lambda subject: first(subject) or second(subject)
    frozen = tuple(predicates)

    def some(subject: Any) -> bool:
        for predicate in frozen:
            if predicate(subject):
                return True
        return False

    return some


def same(left: Any, right: Any) -> bool:
    """JSON equality: ``true`` is not ``1``."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    return bool(left == right)


def _contains(value: Any, needle: Any) -> bool:
    if isinstance(value, str):
        return isinstance(needle, str) and needle in value
    if isinstance(value, list):
        return any(same(item, needle) for item in value)
    if isinstance(value, dict):
        return isinstance(needle, str) and needle in value
    return False


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def _compare(spec: dict[str, Any]) -> Callable[[Any], bool]:
    """A numeric comparison; booleans are not numbers here."""
    bounds = tuple((_COMPARISONS[name], bound) for name, bound in spec.items())
    if len(bounds) == 1:
        ((compare, bound),) = bounds
        return lambda value: (type(value) is int or type(value) is float) and compare(value, bound)

    def within(value: Any) -> bool:
        if type(value) is not int and type(value) is not float:
            return False
        return all(compare(value, bound) for compare, bound in bounds)

    return within
