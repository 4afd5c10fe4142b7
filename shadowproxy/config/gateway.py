"""Virtual servers: one endpoint (``/mcp/<name>``) that aggregates several upstreams (``virtual_servers:``).

Tools and prompts appear as ``<upstream><separator><name>``; ``tools`` filters, renames and re-describes them by
their namespaced names; ``cache`` keeps each member's lists; ``discovery: search`` lists two meta-tools instead of
every tool. The gateway itself is :mod:`shadowproxy.gateway`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from shadowproxy.config.validation import Number, Section, Whole, located

Seconds = Annotated[Number, Field(gt=0)]
Delay = Annotated[Number, Field(ge=0)]
Count = Annotated[Whole, Field(gt=0)]


def _names(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


Names = Annotated[tuple[str, ...], BeforeValidator(_names)]


class ToolsConfig(Section):
    """What clients see of the members' tools, by namespaced name: ``exclude`` globs, ``rename``, ``describe``."""

    exclude: Names = ()
    rename: Mapping[str, str] = {}
    describe: Mapping[str, str] = {}

    @field_validator("rename")
    @classmethod
    def _one_to_one(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        if len(set(value.values())) != len(value):
            raise ValueError("two tools renamed to the same name")
        return value


class ResultCacheConfig(Section):
    """Results of ``readOnlyHint`` + ``idempotentHint`` tools matching ``tools`` (namespaced globs), for ``ttl``."""

    tools: Names = ()
    ttl: Seconds = 60.0


class CacheConfig(Section):
    """``lists``: seconds a member's lists are kept (0: not kept); ``results``: opt-in result caching."""

    lists: Delay = 300.0
    results: ResultCacheConfig = ResultCacheConfig()


class VirtualServerConfig(Section):
    """One aggregate endpoint."""

    unlisted: ClassVar[tuple[str, ...]] = ("name",)

    name: str
    upstreams: Names
    separator: str = "__"
    tools: ToolsConfig = ToolsConfig()
    cache: CacheConfig = CacheConfig()
    discovery: Literal["list", "search"] = "list"
    """``list``: every tool in ``tools/list``; ``search``: ``search_tools`` and ``call_tool`` only."""
    page_size: Count = 200
    """Items per page of a merged list; a page may span members."""
    join_timeout: Seconds = 10.0
    """How long a session's ``initialize`` waits for a member; one slower is left out and joins when it answers."""
    retry: Seconds = 2.0
    """Seconds between attempts to bring back a member that failed, for the sessions that lost it."""

    @model_validator(mode="after")
    def _members(self) -> VirtualServerConfig:
        if not self.upstreams:
            raise ValueError("a virtual server needs at least one upstream")
        if len(set(self.upstreams)) != len(self.upstreams):
            raise ValueError("an upstream is listed twice")
        if not self.separator:
            raise ValueError("separator must not be empty")
        return self


def server_list(value: Any) -> Any:
    """``{name: {...}}`` in a file, or a list of models from a program."""
    if isinstance(value, Mapping):
        return [{**spec, "name": str(name)} if isinstance(spec, Mapping) else spec for name, spec in value.items()]
    return value


def check_members(upstreams: list[str], servers: tuple[VirtualServerConfig, ...]) -> None:
    """Each virtual server's members are configured upstreams, and no name is both."""
    for server in servers:
        if server.name in upstreams:
            raise located(f"virtual_servers.{server.name}", "is also an upstream's name")
        for member in server.upstreams:
            if member not in upstreams:
                known = ", ".join(upstreams)
                raise located(f"virtual_servers.{server.name}.upstreams", f"no upstream {member!r}; known: {known}")
    names = [server.name for server in servers]
    if len(names) != len(set(names)):
        raise located("virtual_servers", "names must be unique")
