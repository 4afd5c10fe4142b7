"""Rules files on disk: which files a list of paths names, and their YAML read with line numbers.

``builtin:NAME`` names a shipped pack (``rules/packs/NAME.yaml``); a directory
stands for its ``*.yaml``, ``*.yml`` and ``*.json`` files in name order (not
its subdirectories, so a pack's ``cases/`` folder is never read as rules).
Every problem found is a :class:`Problem` naming file, line and rule; loading
collects them all and raises one :class:`RulesError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shadowproxy.core.errors import ConfigError

if TYPE_CHECKING:
    import yaml

PACKS_DIR = Path(__file__).with_name("packs")
RULE_SUFFIXES = (".yaml", ".yml", ".json")
BUILTIN_PREFIX = "builtin:"

JsonPath = tuple[str | int, ...]
EMPTY_FILE = "the file is empty; it needs a 'rules:' list"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a rules file."""

    file: str
    line: int | None
    message: str
    rule: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        rule = f" rule {self.rule!r}:" if self.rule else ""
        return f"{where}:{rule} {self.message}"


class RulesError(ConfigError):
    """Rules that cannot be used; ``problems`` lists every one found, each with file:line and rule id."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        heading = f"{count} problem{'s' if count != 1 else ''} in rules files"
        super().__init__("\n".join([heading, *(f"  {problem}" for problem in self.problems)]))


@dataclass(slots=True)
class Document:
    """One parsed file: its data, and the line of every key and list item by JSON path."""

    file: str
    data: Any
    lines: dict[JsonPath, int] = field(default_factory=dict)

    def line_of(self, path: Iterable[str | int]) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        steps = tuple(path)
        while steps:
            line = self.lines.get(steps)
            if line is not None:
                return line
            steps = steps[:-1]
        return self.lines.get(())

    def rule_id(self, path: Sequence[str | int]) -> str | None:
        """The id of the rule ``path`` lies in (``#N`` when the rule has no usable id)."""
        if len(path) < 2 or path[0] != "rules" or not isinstance(path[1], int):
            return None
        rules = self.data.get("rules") if isinstance(self.data, dict) else None
        if not isinstance(rules, list) or path[1] >= len(rules):
            return None
        rule = rules[path[1]]
        rule_id = rule.get("id") if isinstance(rule, dict) else None
        return rule_id if isinstance(rule_id, str) else f"#{path[1] + 1}"

    def problem(self, path: Sequence[str | int], message: str) -> Problem:
        """A problem at ``path``, with its line and rule id."""
        return Problem(self.file, self.line_of(path), message, self.rule_id(path))


def resolve(paths: Iterable[str]) -> tuple[list[Path], list[Problem]]:
    """The files ``paths`` names, in order, and a problem for each path that names nothing."""
    files: list[Path] = []
    problems: list[Problem] = []
    for entry in paths:
        if entry.startswith(BUILTIN_PREFIX):
            name = entry[len(BUILTIN_PREFIX) :]
            pack = PACKS_DIR / f"{name}.yaml"
            if not name or "/" in name or not pack.is_file():
                known = ", ".join(sorted(p.stem for p in PACKS_DIR.glob("*.yaml")))
                problems.append(Problem(entry, None, f"no built-in pack {name!r} (known: {known})"))
            else:
                files.append(pack)
            continue
        path = Path(entry)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in RULE_SUFFIXES and p.is_file())
            if not found:
                problems.append(Problem(entry, None, "directory holds no .yaml, .yml or .json rules files"))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Problem(entry, None, "no such file or directory"))
    return files, problems


def parse(text: str, file: str) -> tuple[Document | None, list[Problem]]:
    """Parse YAML (or JSON) ``text``, recording the line of every node; duplicate keys are problems."""
    # PyYAML is imported by the first file read, not at start: a proxy started with flags alone reads none.
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, [Problem(file, 1, EMPTY_FILE)]
        document = Document(file, None)
        problems: list[Problem] = []
        _record(node, (), document, problems)
        document.data = loader.construct_document(node)
        return document, problems
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        return None, [Problem(file, line, f"invalid YAML: {exc.problem or exc.context}")]
    except yaml.YAMLError as exc:
        return None, [Problem(file, None, f"invalid YAML: {exc}")]
    finally:
        loader.dispose()


def _record(node: yaml.Node, path: JsonPath, document: Document, problems: list[Problem]) -> None:
    import yaml  # already loaded by parse

    document.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                problems.append(Problem(document.file, key_node.start_mark.line + 1, f"duplicate key {key!r}"))
            seen.add(key)
            document.lines[(*path, key)] = key_node.start_mark.line + 1
            _record(value_node, (*path, key), document, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record(item, (*path, index), document, problems)


def read(file: Path) -> tuple[Document | None, list[Problem]]:
    """Read and parse one file."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(str(file), None, f"cannot read: {exc}")]
    return parse(text, str(file))
