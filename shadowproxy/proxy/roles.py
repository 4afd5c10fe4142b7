"""Roles at run time: each principal's permissions, and the step in front of the chain that enforces them.

:class:`Access` knows which roles a principal has (its static token's, those its JWT's claim maps to, or the
default) and compiles each set of roles once into :class:`Permissions`. :class:`RolesGate` is the first hook
of the chain when ``roles`` is configured (and absent otherwise, so a proxy without roles pays nothing): a
client's message to a mount, or a call of a tool, prompt or resource, that the principal's roles do not allow
is refused with ``-32010`` naming the missing permission; ``tools/list``, ``prompts/list``,
``resources/list`` and ``resources/templates/list`` results are cut to what the principal may use.
"""

from __future__ import annotations

import fnmatch
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from shadowproxy.config import Config
from shadowproxy.config.roles import KINDS, RoleDefinition, flattened
from shadowproxy.core.chain import C2S, FORWARD, Direction, MessageContext, Verdict, block, forward
from shadowproxy.core.errors import POLICY_BLOCKED
from shadowproxy.core.jsonrpc import ERROR, RESPONSE, Message

MAX_NOTED = 100_000
"""JWT subjects whose claimed roles are remembered; the oldest is forgotten first (and has the default role)."""
MAX_COMBINATIONS = 1024

CALLS = {
    "tools/call": ("tools", "name", "tool"),
    "prompts/get": ("prompts", "name", "prompt"),
    "resources/read": ("resources", "uri", "resource"),
    "resources/subscribe": ("resources", "uri", "resource"),
    "resources/unsubscribe": ("resources", "uri", "resource"),
}
"""A request's method -> (kind of permission, the params member naming it, the word in the permission)."""
LISTS = {
    "tools/list": ("tools", "tools", "name"),
    "prompts/list": ("prompts", "prompts", "name"),
    "resources/list": ("resources", "resources", "uri"),
    "resources/templates/list": ("resources", "resourceTemplates", "uriTemplate"),
}
"""A list's method -> (kind of permission, the result's list, each item's name)."""


def globs_pattern(globs: Iterable[str]) -> re.Pattern[str] | None:
    """One pattern matching any of ``globs`` (``fnmatch`` syntax, case-sensitive); ``None`` for no globs."""
    parts = [fnmatch.translate(glob) for glob in dict.fromkeys(globs)]
    return re.compile("|".join(parts)) if parts else None


class Permissions:
    """What a set of roles allows, with every role they extend, compiled once."""

    def __init__(self, roles: tuple[str, ...], definitions: Mapping[str, RoleDefinition]) -> None:
        self.roles = roles
        defined = [each for name in roles for each in flattened(name, definitions)]
        self._mounts = globs_pattern(glob for each in defined for glob in each.mounts)
        self._grants: dict[str, list[tuple[re.Pattern[str], list[str]]]] = {}
        for kind in KINDS:
            by_upstream: dict[str, list[str]] = {}
            for each in defined:
                for upstream, globs in getattr(each, kind).items():
                    by_upstream.setdefault(upstream, []).extend(globs)
            self._grants[kind] = [(re.compile(fnmatch.translate(up)), globs) for up, globs in by_upstream.items()]
        self._names: dict[tuple[str, str], re.Pattern[str] | None] = {}
        self.admin = frozenset(operation for each in defined for operation in each.admin)

    def mount(self, name: str) -> bool:
        return self._mounts is not None and self._mounts.match(name) is not None

    def allows(self, kind: str, upstream: str, name: Any) -> bool:
        pattern = self.names(kind, upstream)
        return pattern is not None and isinstance(name, str) and pattern.match(name) is not None

    def names(self, kind: str, upstream: str) -> re.Pattern[str] | None:
        """The pattern of the names of ``kind`` allowed on ``upstream``; ``None``: none is."""
        pattern = self._names.get((kind, upstream), False)
        if pattern is False:
            globs = [glob for up, globs in self._grants[kind] if up.match(upstream) for glob in globs]
            pattern = self._names[(kind, upstream)] = globs_pattern(globs)
        return pattern

    def may(self, operation: str) -> bool:
        """Whether the admin ``operation`` (``rules:reload``) is allowed."""
        return "*" in self.admin or operation in self.admin


class Access:
    """Which roles each principal has, and their permissions."""

    def __init__(self, config: Config) -> None:
        settings = config.roles
        assert settings is not None
        self.definitions = settings.definitions
        self.default: tuple[str, ...] = (settings.default,) if settings.default else ()
        self.claim = settings.claim
        self.claims = settings.claims
        self.static = {token.name: token.roles for token in config.auth.tokens if token.roles} if config.auth else {}
        self.noted: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._compiled: dict[tuple[str, ...], Permissions] = {}

    def roles_of(self, principal: str | None) -> tuple[str, ...]:
        if principal is None:
            return self.default
        return self.static.get(principal) or self.noted.get(principal) or self.default

    def permissions(self, principal: str | None) -> Permissions:
        return self.compiled(self.roles_of(principal))

    def compiled(self, roles: tuple[str, ...]) -> Permissions:
        permissions = self._compiled.get(roles)
        if permissions is None:
            if len(self._compiled) >= MAX_COMBINATIONS:
                self._compiled.clear()
            permissions = self._compiled[roles] = Permissions(roles, self.definitions)
        return permissions

    def claimed(self, claims: Mapping[str, Any]) -> tuple[str, ...]:
        """The roles a JWT's claims map to: each value of ``claim`` (a list, or a space-separated string)."""
        if self.claim is None:
            return ()
        value = claims.get(self.claim)
        values = value.split() if isinstance(value, str) else value if isinstance(value, list) else []
        found = [role for item in values if isinstance(item, str) for role in self.claims.get(item, ())]
        return tuple(dict.fromkeys(found))

    def note(self, principal: str, claims: Mapping[str, Any]) -> None:
        """Remember the roles of the JWT ``principal`` just presented (its latest token's claims hold)."""
        roles = self.claimed(claims)
        noted = self.noted
        if noted.get(principal) != roles:
            noted[principal] = roles
        noted.move_to_end(principal)
        if len(noted) > MAX_NOTED:
            noted.popitem(last=False)


def refusal(permission: str, principal: str | None, permissions: Permissions) -> Verdict:
    who = principal if principal is not None else "an anonymous client"
    roles = ", ".join(permissions.roles) or "none"
    text = f"missing permission {permission}: not granted to {who} (roles: {roles})"
    return block(POLICY_BLOCKED, text, {"permission": permission})


class RolesGate:
    """The chain's first hook with ``roles``: refuses what a principal may not use and filters its lists."""

    name = "roles"

    def __init__(self, access: Access) -> None:
        self.access = access

    def wants(self, message: Message, direction: Direction, request: Message | None) -> bool:
        kind = message.kind
        if direction is C2S:
            return kind is not RESPONSE and kind is not ERROR
        return kind is RESPONSE and request is not None and request.method in LISTS

    async def on_message(self, ctx: MessageContext) -> Verdict:
        permissions = self.access.permissions(ctx.principal)
        message = ctx.message
        upstream = ctx.upstream
        # The mount (a virtual server's own name); ``upstream`` is the member a virtual server routes a call to.
        mount = ctx.session.upstream if ctx.session is not None else upstream
        if ctx.direction is C2S:
            if not self.wants(message, ctx.direction, None):
                return FORWARD
            if not permissions.mount(mount):
                return refusal(f"mount:{mount}", ctx.principal, permissions)
            call = CALLS.get(message.method or "")
            if call is not None:
                kind, member, word = call
                name = (message.params or {}).get(member)
                if not permissions.allows(kind, upstream, name) and not permissions.allows(kind, mount, name):
                    return refusal(f"{word}:{upstream}/{name}", ctx.principal, permissions)
            return FORWARD
        if ctx.request is None or not self.wants(message, ctx.direction, ctx.request):
            return FORWARD
        kind, member, field = LISTS[ctx.request.method or ""]
        result = message.result
        items = result.get(member) if isinstance(result, dict) else None
        if not isinstance(items, list):
            return FORWARD
        pattern = permissions.names(kind, upstream)
        kept = [] if pattern is None else [item for item in items if allowed(pattern, item, field)]
        if len(kept) == len(items):
            return FORWARD
        return forward(message.evolve(result={**result, member: kept}))


def allowed(pattern: re.Pattern[str], item: Any, field: str) -> bool:
    name = item.get(field) if isinstance(item, dict) else None
    return isinstance(name, str) and pattern.match(name) is not None
