"""A Dockerfile read the way ``docker build`` reads it, as far as the deployment tests need: instructions by
stage, with continuation lines joined, comments dropped and ``ARG`` defaults substituted; and the build context
a ``.dockerignore`` leaves."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [argument for word, argument in self.instructions if word == keyword]

    def one(self, keyword: str) -> str:
        found = self.all(keyword)
        assert len(found) == 1, f"expected one {keyword} in the stage FROM {self.base}, found {len(found)}"
        return found[0]

    def env(self) -> dict[str, str]:
        """The stage's ``ENV`` settings (``NAME=value`` form)."""
        settings: dict[str, str] = {}
        for argument in self.all("ENV"):
            for pair in re.findall(r"(\w+)=(\S+)", argument):
                settings[pair[0]] = pair[1]
        return settings


def logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends in a continuation"
    return lines


def stages(text: str) -> list[Stage]:
    """The stages in order; ``ARG``s before the first ``FROM`` are substituted into the ``FROM`` lines."""
    args: dict[str, str] = {}
    found: list[Stage] = []
    for line in logical_lines(text):
        word, _, argument = line.partition(" ")
        word, argument = word.upper(), argument.strip()
        if word == "ARG" and not found:
            name, _, default = argument.partition("=")
            args[name] = default
        elif word == "FROM":
            parts = VARIABLE.sub(lambda m: args.get(m.group(1) or m.group(2), ""), argument).split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            found.append(Stage(parts[0], name))
        else:
            assert found, f"{word} before the first FROM"
            found[-1].instructions.append((word, argument))
    return found


def exec_form(argument: str) -> list[str]:
    """A JSON-array argument (``CMD [...]``); a shell-form one is refused, since it would not get the signals."""
    value = json.loads(argument)
    assert isinstance(value, list) and all(isinstance(part, str) for part in value), argument
    return value


def ignored(relative: str, patterns: list[str]) -> bool:
    parts = relative.split("/")
    for pattern in patterns:
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatch(part, pattern[3:]) for part in parts):
                return True
        elif fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(parts[0], pattern):
            return True
    return False


def copy_context(source: Path, target: Path) -> list[str]:
    """Copy what ``COPY . <dir>`` gets of ``source`` under its ``.dockerignore`` to ``target``; the top entries."""
    text = (source / ".dockerignore").read_text()
    patterns = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    for folder, names, files in os.walk(source):
        here = Path(folder).relative_to(source)
        names[:] = [name for name in names if not ignored((here / name).as_posix(), patterns)]
        for name in files:
            relative = (here / name).as_posix()
            if not ignored(relative, patterns):
                (target / here).mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(folder) / name, target / relative)
    return sorted(path.name for path in target.iterdir())
