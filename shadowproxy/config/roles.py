"""The ``roles`` section: named sets of permissions, inheritance, and how principals get them.

::

    roles:
      default: viewer                 # a principal given no role has this one (absent: none, so nothing)
      claim: groups                   # the JWT claim read for roles (groups, roles, scope, ...)
      claims: {eng: [agent], sre: [operator]}   # claim value -> roles
      define:
        github-reader:
          extends: agent-read-only
          mounts: [github]            # mounts and virtual servers, by name (globs)
          tools: {github: ["get_*", "search_*"]}   # per upstream (globs); a list means every upstream
          prompts: ["*"]
          resources: []
          admin: [sessions:read]

Static tokens name their roles in ``auth.tokens`` (``{name, sha256, roles}``) and admin tokens in
``admin.tokens``. The shipped templates (:data:`TEMPLATES`) may be extended or redefined. Enforcing them is
:mod:`shadowproxy.proxy.roles`' work.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, ValidationInfo, model_validator

from shadowproxy.config.validation import Section, located

ADMIN_OPERATIONS = (
    "sessions:read",
    "sessions:kill",
    "upstreams:restart",
    "rules:reload",
    "approvals:decide",
    "tap:read",
    "tapes:read",
)
KINDS = ("tools", "prompts", "resources")


def _globs(value: Any) -> Any:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) and item for item in value):
        raise ValueError("must be a glob or a list of globs")
    return tuple(value)


def _per_upstream(value: Any) -> Any:
    """A list of globs (every upstream) or a mapping of upstream glob to globs."""
    if not isinstance(value, Mapping):
        return {"*": _globs(value)}
    checked = {}
    for upstream, globs in value.items():
        try:
            checked[str(upstream)] = _globs(globs)
        except ValueError as exc:
            raise located(str(upstream), str(exc)) from None
    return checked


def _operations(value: Any) -> Any:
    value = _globs(value)
    unknown = [item for item in value if item != "*" and item not in ADMIN_OPERATIONS]
    if unknown:
        raise ValueError(f"unknown admin operation {unknown[0]!r}; known: *, {', '.join(ADMIN_OPERATIONS)}")
    return value


Globs = Annotated[tuple[str, ...], BeforeValidator(_globs)]
PerUpstream = Annotated[Mapping[str, tuple[str, ...]], BeforeValidator(_per_upstream)]
Operations = Annotated[tuple[str, ...], BeforeValidator(_operations)]


class RoleDefinition(Section):
    """One role: what it adds to the roles it ``extends``."""

    extends: Globs = ()
    mounts: Globs = ()
    tools: PerUpstream = {}
    prompts: PerUpstream = {}
    resources: PerUpstream = {}
    admin: Operations = ()


READ_ONLY_TOOLS = ("get*", "list*", "read*", "search*", "find*", "describe*", "fetch*", "query*")
TEMPLATES: Mapping[str, RoleDefinition] = {
    "viewer": RoleDefinition(mounts=("*",), prompts={"*": ("*",)}, resources={"*": ("*",)}, admin=("sessions:read",)),
    "agent-read-only": RoleDefinition(extends=("viewer",), tools={"*": READ_ONLY_TOOLS}),
    "agent": RoleDefinition(extends=("agent-read-only",), tools={"*": ("*",)}),
    "operator": RoleDefinition(
        extends=("viewer",),
        admin=("sessions:read", "sessions:kill", "upstreams:restart", "approvals:decide", "tap:read", "tapes:read"),
    ),
    "admin": RoleDefinition(extends=("agent", "operator"), admin=("*",)),
}
"""The shipped roles; ``define`` may extend them or replace one by its name."""


def _role_names(value: Any) -> Any:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) and item for item in value):
        raise ValueError("must be a role name or a list of role names")
    return tuple(value)


RoleNames = Annotated[tuple[str, ...], BeforeValidator(_role_names)]


class RolesConfig(Section):
    """The validated ``roles`` section: every name known, no cycle in ``extends``."""

    noun: ClassVar[str] = "key"

    define: Mapping[str, RoleDefinition] = {}
    default: str | None = None
    claim: str | None = None
    claims: Mapping[str, RoleNames] = {}

    @classmethod
    def prepare(cls, data: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if "claims" in data and "claim" not in data:
            raise located("claims", "needs claim: the JWT claim whose values these map (groups, roles, scope)")
        return data

    @property
    def definitions(self) -> dict[str, RoleDefinition]:
        return {**TEMPLATES, **self.define}

    @model_validator(mode="after")
    def _consistent(self) -> RolesConfig:
        known = self.definitions
        for name, role in self.define.items():
            for parent in role.extends:
                if parent not in known:
                    raise located(f"define.{name}.extends", f"unknown role {parent!r}; known: {', '.join(known)}")
        for name in self.define:
            cycle = cycle_from(name, known)
            if cycle:
                raise located(f"define.{name}.extends", f"extends makes a cycle: {' -> '.join(cycle)}")
        if self.default is not None and self.default not in known:
            raise located("default", f"unknown role {self.default!r}; known: {', '.join(known)}")
        for value, names in self.claims.items():
            unknown = next((role for role in names if role not in known), None)
            if unknown is not None:
                raise located(f"claims.{value}", f"unknown role {unknown!r}; known: {', '.join(known)}")
        return self

    def unknown(self, names: tuple[str, ...]) -> str | None:
        """The first of ``names`` that is no role, or ``None``."""
        known = self.definitions
        return next((name for name in names if name not in known), None)


def cycle_from(start: str, roles: Mapping[str, RoleDefinition]) -> list[str]:
    """The roles of a cycle through ``start`` along ``extends`` (``[a, b, a]``), or ``[]``."""
    path: list[str] = [start]

    def walk(name: str, seen: frozenset[str]) -> bool:
        role = roles.get(name)
        for parent in role.extends if role is not None else ():
            path.append(parent)
            if parent == start or (parent not in seen and walk(parent, seen | {parent})):
                return True
            path.pop()
        return False

    return path if walk(start, frozenset({start})) else []


def lineage(name: str, roles: Mapping[str, RoleDefinition]) -> list[str]:
    """``name`` and every role it extends, each once (the config has refused cycles)."""
    order: list[str] = []
    pending = [name]
    while pending:
        current = pending.pop()
        if current in order or current not in roles:
            continue
        order.append(current)
        pending.extend(reversed(roles[current].extends))
    return order


def flattened(name: str, roles: Mapping[str, RoleDefinition]) -> list[RoleDefinition]:
    """The definitions of ``name``'s :func:`lineage`."""
    return [roles[item] for item in lineage(name, roles)]


def check_token_roles(config: Any) -> None:
    """Raise a located error for a token naming a role that is not defined (or naming any without ``roles``)."""
    roles: RolesConfig | None = config.roles
    for section in ("auth", "admin"):
        settings = getattr(config, section)
        for index, token in enumerate(getattr(settings, "tokens", ()) or ()):
            if not token.roles:
                continue
            if roles is None:
                raise located(f"{section}.tokens[{index}].roles", "names roles, but there is no valid roles section")
            unknown = roles.unknown(token.roles)
            if unknown is not None:
                raise located(f"{section}.tokens[{index}].roles", f"unknown role {unknown!r}")
