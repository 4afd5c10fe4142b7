"""The subject of a rule: one message and what surrounds it, as the match conditions see it.

Names that take work to find (the tool of a ``tools/call``, the URI of a
``resources/read``) are looked up at most once per message and only when a
rule asks for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shadowproxy.core.chain import Direction
from shadowproxy.core.jsonrpc import Kind, Message

if TYPE_CHECKING:
    from shadowproxy.core.chain import MessageContext
    from shadowproxy.core.record import SessionRecord

_UNSET: Any = object()
META_PROTOCOL_VERSION = "io.modelcontextprotocol/protocolVersion"
"""Where a 2026-07-28 request names its protocol version (in ``params._meta``); it has no session for it."""

# Which params member names the tool, resource or prompt of a method.
_NAMED_BY = {"tools/call": ("tool", "name"), "resources/read": ("resource", "uri"), "prompts/get": ("prompt", "name")}
_RESOURCE_METHODS = ("resources/read", "resources/subscribe", "resources/unsubscribe")


def named(method: str | None, params: Any) -> tuple[str, str | None]:
    """What a method's params name, and the name: ``("tool", "echo")`` for a ``tools/call`` of echo."""
    member = _NAMED_BY.get(method or "")
    if member is None and method in _RESOURCE_METHODS:
        member = ("resource", "uri")
    if member is None:
        return ("", None)
    value = params.get(member[1]) if isinstance(params, dict) else None
    return (member[0], value if isinstance(value, str) else None)


def params_of(message: Message, request: Message | None) -> Any:
    """The params a message is judged by: its own, or for a reply those of the request it answers."""
    if message.kind is Kind.REQUEST or message.kind is Kind.NOTIFICATION:
        return message.params
    return request.params if request is not None else None


class ToolCatalog:
    """Tool annotations per upstream, as servers reported them in ``tools/list`` results.

    A ``tools/call`` carries no annotations, so rules on ``annotations`` read
    them here. Bounded: past ``limit`` tools per upstream the oldest are dropped.
    """

    __slots__ = ("_by_upstream", "_descriptions", "limit")

    def __init__(self, limit: int = 10_000) -> None:
        self._by_upstream: dict[str, dict[str, dict[str, Any]]] = {}
        self._descriptions: dict[str, dict[str, str]] = {}
        self.limit = limit

    def record(self, upstream: str, tools: list[Any]) -> None:
        """Remember the annotations of the tools in one ``tools/list`` result."""
        known = self._by_upstream.setdefault(upstream, {})
        described = self._descriptions.setdefault(upstream, {})
        for tool in tools:
            if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                annotations = tool.get("annotations")
                known[tool["name"]] = annotations if isinstance(annotations, dict) else {}
                description = tool.get("description")
                if isinstance(description, str):
                    described[tool["name"]] = description
                else:
                    described.pop(tool["name"], None)
        for names in (known, described):
            while len(names) > self.limit:
                del names[next(iter(names))]

    def annotations(self, upstream: str, tool: str | None) -> dict[str, Any] | None:
        """The annotations ``upstream`` gave for ``tool``, or None when unknown."""
        if tool is None:
            return None
        return self._by_upstream.get(upstream, {}).get(tool)

    def description(self, upstream: str, tool: str | None) -> str | None:
        """The description ``upstream`` gave for ``tool``, or None when unknown."""
        return self._descriptions.get(upstream, {}).get(tool) if tool is not None else None


class Subject:
    """One message under judgement."""

    __slots__ = (
        "_annotations",
        "_description",
        "_named",
        "_size",
        "catalog",
        "direction",
        "kind",
        "message",
        "method",
        "principal",
        "request",
        "session",
        "upstream",
    )

    def __init__(
        self,
        message: Message,
        direction: Direction,
        method: str | None = None,
        request: Message | None = None,
        session: SessionRecord | None = None,
        principal: str | None = None,
        upstream: str = "default",
        catalog: ToolCatalog | None = None,
    ) -> None:
        self.message = message
        self.direction = direction
        self.kind: Kind = message.kind
        self.request = request
        self.method = method if method is not None else message.method or (request.method if request else None)
        self.session = session
        self.principal = principal if principal is not None else (session.principal if session else None)
        self.upstream = upstream
        self.catalog = catalog
        self._named: tuple[str, str | None] | None = None
        self._annotations: Any = _UNSET
        self._description: Any = _UNSET
        self._size = -1

    @classmethod
    def from_context(cls, ctx: MessageContext, catalog: ToolCatalog | None = None) -> Subject:
        """The subject of the message a chain hook is judging."""
        # Positional on purpose: this runs for every message.
        return cls(
            ctx.message, ctx.direction, ctx.method, ctx.request, ctx.session, ctx.principal, ctx.upstream, catalog
        )

    @property
    def params(self) -> Any:
        """The message's params; for a reply, the params of the request it answers."""
        return params_of(self.message, self.request)

    def _name(self, what: str) -> str | None:
        if self._named is None:
            self._named = named(self.method, self.params)
        return self._named[1] if self._named[0] == what else None

    @property
    def protocol_version(self) -> str | None:
        """The version the request declares in its ``_meta`` (2026-07-28 on), else the session's."""
        params = self.params
        meta = params.get("_meta") if isinstance(params, dict) else None
        declared = meta.get(META_PROTOCOL_VERSION) if isinstance(meta, dict) else None
        if isinstance(declared, str):
            return declared
        return self.session.protocol_version if self.session is not None else None

    @property
    def size(self) -> int:
        """The message's size in bytes (its original bytes when it came from the wire)."""
        if self._size < 0:
            self._size = self.message.size
        return self._size

    @property
    def tool(self) -> str | None:
        """The tool of a ``tools/call`` (or of the request a reply answers)."""
        return self._name("tool")

    @property
    def resource(self) -> str | None:
        """The URI of a resources read, subscribe or unsubscribe."""
        return self._name("resource")

    @property
    def prompt(self) -> str | None:
        """The name of a ``prompts/get``."""
        return self._name("prompt")

    @property
    def annotations(self) -> dict[str, Any] | None:
        """The tool's annotations from the last ``tools/list`` of this upstream, when known."""
        if self._annotations is _UNSET:
            catalog = self.catalog
            self._annotations = catalog.annotations(self.upstream, self.tool) if catalog is not None else None
        return self._annotations

    @property
    def description(self) -> str | None:
        """The tool's description: the listed one while a ``tools/list`` result is filtered, else the catalog's."""
        if self._description is _UNSET:
            catalog = self.catalog
            self._description = catalog.description(self.upstream, self.tool) if catalog is not None else None
        return self._description  # type: ignore[no-any-return]

    def as_tool_call(self, tool: dict[str, Any]) -> Subject:
        """The ``tools/call`` a client could make for one entry of a ``tools/list`` result (no arguments)."""
        call = Message(
            Kind.REQUEST, {"jsonrpc": "2.0", "id": 0, "method": "tools/call", "params": {"name": tool["name"]}}
        )
        subject = Subject(
            call,
            Direction.CLIENT_TO_SERVER,
            session=self.session,
            principal=self.principal,
            upstream=self.upstream,
        )
        annotations = tool.get("annotations")
        subject._annotations = annotations if isinstance(annotations, dict) else {}
        description = tool.get("description")
        subject._description = description if isinstance(description, str) else None
        return subject
