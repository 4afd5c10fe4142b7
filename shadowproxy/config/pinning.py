"""The ``pinning`` section: trust on first use for the tools each upstream announces.

::

    pinning:
      mode: warn                  # off | warn (log, count, audit) | block (hide the tool, refuse its calls)
      groups:                     # optional: pins per principal group instead of one set per upstream
        ops: ["*@ops.example", alice]
        contractors: ["*@contractor.example"]

A principal in no group (or any client, without auth) shares its upstream's pins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator

from shadowproxy.config.validation import Section

MODES = ("off", "warn", "block")


def _mode(value: Any) -> Any:
    if value not in MODES:
        raise ValueError(f"must be one of {', '.join(MODES)}, not {value!r}")
    return value


def _groups(value: Any) -> Any:
    if not isinstance(value, Mapping):
        raise ValueError("must be a mapping of group name to a list of principal patterns")
    groups: dict[str, tuple[str, ...]] = {}
    for name, patterns in value.items():
        if not isinstance(name, str) or not name:
            raise ValueError("group names must be non-empty strings")
        if isinstance(patterns, str):
            patterns = [patterns]
        if (
            not isinstance(patterns, list | tuple)
            or not patterns
            or not all(isinstance(p, str) and p for p in patterns)
        ):
            raise ValueError(f"group {name!r} must list one or more principal patterns (globs)")
        groups[name] = tuple(patterns)
    return groups


class PinningConfig(Section):
    """``config.pinning``: what a changed, new or removed tool of an upstream leads to."""

    mode: Annotated[str, BeforeValidator(_mode)] = "warn"
    groups: Annotated[Mapping[str, tuple[str, ...]], BeforeValidator(_groups)] = {}
