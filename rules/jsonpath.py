"""A small JSON path: ``arguments.path``, ``content[0].text``, ``content[*].text``, ``["odd.key"]``.

Paths are parsed once, at load, into a tuple of steps: a ``str`` is an object
key, an ``int`` a list index, :data:`ANY` every element (only when reading).
Writing copies the containers along the path and shares everything else, so
the original message is never mutated and an unchanged branch costs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Final


class _Any:
    __slots__ = ()

    def __repr__(self) -> str:
        return "*"


ANY: Final = _Any()
Step = str | int | _Any
Path = tuple[Step, ...]

_TOKEN = re.compile(r"""\.?([A-Za-z_$][\w$-]*)|\[(\d+)\]|\[\*\]|\.\*|\[(?:"([^"]*)"|'([^']*)')\]""")


class PathError(ValueError):
    """A path that cannot be parsed or used where it is written."""


def parse(text: str) -> Path:
    """Parse ``text`` (an optional leading ``$.`` is allowed) into steps; raise :class:`PathError`."""
    source = text[2:] if text.startswith("$.") else text
    if not source:
        raise PathError("an empty path")
    steps: list[Step] = []
    position = 0
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None or (position == 0 and source.startswith(".")):
            raise PathError(f"cannot parse path {text!r} at character {position + 1}")
        name, index, double, single = match.groups()
        if name is not None:
            steps.append(name)
        elif index is not None:
            steps.append(int(index))
        elif double is not None or single is not None:
            steps.append(double if double is not None else single)
        else:
            steps.append(ANY)
        position = match.end()
    return tuple(steps)


def values(root: Any, path: Path) -> Iterator[Any]:
    """Every value ``path`` reaches in ``root`` (several when it has ``*``, none when it is missing)."""
    if not path:
        yield root
        return
    step, rest = path[0], path[1:]
    if step is ANY:
        if isinstance(root, list):
            for item in root:
                yield from values(item, rest)
        elif isinstance(root, dict):
            for item in root.values():
                yield from values(item, rest)
    elif isinstance(step, str):
        if isinstance(root, dict) and step in root:
            yield from values(root[step], rest)
    elif isinstance(root, list) and -len(root) <= step < len(root):  # type: ignore[operator]
        yield from values(root[step], rest)  # type: ignore[index]


MISSING: Final = object()


def get(root: Any, path: Path) -> Any:
    """The value a path without ``*`` reaches, or :data:`MISSING`."""
    for step in path:
        if isinstance(step, str):
            if not isinstance(root, dict) or step not in root:
                return MISSING
            root = root[step]
        elif isinstance(step, int) and isinstance(root, list) and -len(root) <= step < len(root):
            root = root[step]
        else:
            return MISSING
    return root


def first(root: Any, path: Path, default: Any = None) -> Any:
    """The first value ``path`` reaches, or ``default``."""
    return next(values(root, path), default)


def set_value(root: Any, path: Path, value: Any) -> Any:
    """A copy of ``root`` with ``value`` at ``path``; missing objects on the way are created.

    A step that cannot be taken (a list index out of range, a key into a string)
    leaves ``root`` as it is and returns it.
    """
    if not path:
        return value
    step, rest = path[0], path[1:]
    if isinstance(step, str):
        container = root if isinstance(root, dict) else {} if root is None else None
        if container is None:
            return root
        current = container.get(step)
        new = set_value(current, rest, value)
        if new is current and step in container:
            return root
        copy = dict(container)
        copy[step] = new
        return copy
    if isinstance(step, int) and isinstance(root, list) and -len(root) <= step < len(root):
        new_item = set_value(root[step], rest, value)
        if new_item is root[step]:
            return root
        copy_list = list(root)
        copy_list[step] = new_item
        return copy_list
    return root


def remove(root: Any, path: Path) -> Any:
    """A copy of ``root`` without what ``path`` names; ``root`` itself when there was nothing to remove."""
    if not path:
        return root
    step, rest = path[0], path[1:]
    if isinstance(step, str) and isinstance(root, dict) and step in root:
        if not rest:
            return {key: item for key, item in root.items() if key != step}
        new = remove(root[step], rest)
        if new is root[step]:
            return root
        copy = dict(root)
        copy[step] = new
        return copy
    if isinstance(step, int) and isinstance(root, list) and -len(root) <= step < len(root):
        if not rest:
            return root[:step] + root[step + 1 :] if step != -1 else root[:-1]
        new = remove(root[step], rest)
        if new is root[step]:
            return root
        copy_list = list(root)
        copy_list[step] = new
        return copy_list
    return root


def render(path: Path) -> str:
    """The text form of a parsed path."""
    out: list[str] = []
    for step in path:
        if step is ANY:
            out.append("[*]")
        elif isinstance(step, int):
            out.append(f"[{step}]")
        elif re.fullmatch(r"[A-Za-z_$][\w$-]*", step):  # type: ignore[arg-type]
            out.append(f".{step}" if out else step)  # type: ignore[arg-type]
        else:
            out.append(f'["{step}"]')
    return "".join(out)
