"""The configuration's models: frozen pydantic models, validated once, read as plain attributes.

A model takes both what a program gives it and what a file says (``upstreams`` as a mapping of server name to
settings, a command line as one string, ``type`` for ``transport``, an interceptor as a bare name); see
:mod:`shadowproxy.config.load` for the file, the environment and the flags.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from shadowproxy.config.admin import AdminConfig
from shadowproxy.config.auth import AuthSettings
from shadowproxy.config.bridge import BridgeMode, Era
from shadowproxy.config.credentials import CredentialsConfig, UpstreamCredentials
from shadowproxy.config.gateway import VirtualServerConfig, check_members, server_list
from shadowproxy.config.limits import Limits, UpstreamLimits
from shadowproxy.config.pinning import PinningConfig
from shadowproxy.config.roles import RolesConfig, check_token_roles
from shadowproxy.config.tapes import TapesConfig
from shadowproxy.config.tracing import TracingConfig
from shadowproxy.config.validation import Flag, Number, Section, Whole, located
from shadowproxy.core.errors import ConfigError
from shadowproxy.stores import parse_store_url

URL_SCHEMES = ("http://", "https://", "ws://", "wss://")
TRANSPORTS = {
    "stdio": "stdio",
    "http": None,
    "streamable-http": None,
    "streamableHttp": None,
    "sse": "sse",
    "websocket": "websocket",
    "ws": "websocket",
}
LOG_LEVELS = ("debug", "info", "warning", "error")

Seconds = Annotated[Number, Field(gt=0)]
Delay = Annotated[Number, Field(ge=0)]
Count = Annotated[Whole, Field(gt=0)]
MAX_SPARE = 16
Spare = Annotated[Whole, Field(ge=0, le=MAX_SPARE)]


def _strings(value: Any) -> Any:
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise ValueError("must be a list of strings")
    return tuple(value)


Strings = Annotated[tuple[str, ...], BeforeValidator(_strings)]


class UpstreamConfig(Section):
    """One MCP server behind the proxy: a stdio ``command`` to spawn, or a Streamable HTTP ``url``."""

    file_keys: ClassVar[tuple[str, ...]] = ("args", "type")
    unlisted: ClassVar[tuple[str, ...]] = ("name",)

    name: str
    command: tuple[str, ...] = ()
    url: str | None = None
    urls: tuple[str, ...] = ()
    """Replicas of a Streamable HTTP server: new sessions are spread over the healthy ones (``url`` is the first)."""
    replicas: Count = 1
    """Copies of a shared stdio server (``share: true``): new sessions are spread over the live ones."""
    env: Mapping[str, str] = {}
    inherit_env: Flag | None = None
    """The whole environment for a stdio child (``True``), or a safe base (``False``), under ``env``; ``None``: the
    mode's default, the whole one under ``shadowproxy stdio`` (see :func:`for_stdio`), the safe base under ``run``."""
    cwd: str | None = None
    share: Flag = False
    spare: Spare | None = None
    """Children of a per-session stdio server kept started and unused, each taken whole by the next new session
    (:mod:`shadowproxy.upstreams.spares`). ``None``: none, or one while the era bridge carries 2026-07-28 requests
    on the server's handshake sessions (each a process of its own, opened on demand)."""
    headers: Mapping[str, str] = {}
    transport: str | None = None
    """``sse`` (the 2024-11-05 HTTP+SSE transport) or ``websocket``; ``None``: stdio or Streamable HTTP."""
    limits: UpstreamLimits = UpstreamLimits()
    """What each child of a stdio server may use."""
    bridge: BridgeMode = "auto"
    era: Era = "auto"
    credentials: UpstreamCredentials | None = None
    """What the proxy adds to each request to a Streamable HTTP server (:mod:`shadowproxy.config.credentials`)."""

    @property
    def is_stdio(self) -> bool:
        return bool(self.command)

    @classmethod
    def prepare(cls, data: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        command: list[str] = []
        if "command" in data:
            raw = data["command"]
            if isinstance(raw, str):
                command = shlex.split(raw) if "args" not in data else [raw]
            elif isinstance(raw, list | tuple) and all(isinstance(part, str) for part in raw):
                command = list(raw)
            else:
                raise located("command", "must be a string or a list of strings")
            args = data.pop("args", [])
            if not isinstance(args, list | tuple) or not all(isinstance(arg, str) for arg in args):
                raise located("args", "must be a list of strings")
            data["command"] = tuple([*command, *args])
        if "urls" in data:
            urls = data["urls"]
            if "url" in data:
                raise located("urls", "is given with url; name every replica in urls")
            if not isinstance(urls, list | tuple) or not urls or not all(isinstance(url, str) for url in urls):
                raise located("urls", "must be a non-empty list of URLs")
            if not all(url.startswith(("http://", "https://")) for url in urls):
                raise located("urls", "are Streamable HTTP servers: http(s):// URLs")
            if len(set(urls)) != len(urls):
                raise located("urls", "names one URL twice")
            data["urls"] = tuple(urls)
            data["url"] = urls[0]
        url = data.get("url")
        if bool(command) == bool(url):
            raise ValueError("needs exactly one of command or url")
        for each in data.get("urls") or (url,):
            if each is not None and (not isinstance(each, str) or not each.startswith(URL_SCHEMES)):
                raise located("urls" if "urls" in data else "url", "must be an http(s):// or ws(s):// URL")
        data["transport"] = _transport(data, url)
        data.pop("type", None)
        if "urls" in data and data["transport"] is not None:
            raise located("urls", "applies to Streamable HTTP servers only")
        if "limits" in data and not command:
            raise located("limits", "applies to stdio servers (a command) only")
        if "credentials" in data and (command or data["transport"] is not None):
            raise located("credentials", "applies to Streamable HTTP servers (a url) only")
        return data

    @model_validator(mode="after")
    def _fits_the_server(self) -> UpstreamConfig:
        if self.replicas > 1 and not (self.command and self.share):
            raise located("replicas", "applies to stdio servers with share: true only")
        if self.spare is not None and not (self.command and not self.share):
            raise located("spare", "applies to stdio servers with a child per session only (a command, no share: true)")
        return self


def _transport(spec: Mapping[str, Any], url: str | None) -> str | None:
    """``transport`` (or ``type``, as MCP clients' ``mcpServers`` spell it), checked against the command or URL."""
    name = "transport" if "transport" in spec else "type"
    value = spec.get(name)
    websocket_url = url is not None and url.startswith(("ws://", "wss://"))
    if value is None:
        return "websocket" if websocket_url else None
    if value not in TRANSPORTS:
        raise located(name, f"unknown transport {value!r}; known: {', '.join(TRANSPORTS)}")
    transport = TRANSPORTS[value]
    if transport == "stdio" and url is not None:
        raise located(name, "is stdio, which needs a command, not a url")
    if transport != "stdio" and url is None:
        raise located(name, f"is {value}, which needs a url, not a command")
    if websocket_url != (transport == "websocket"):
        raise located(name, f"is {value}, which does not fit the url {url}")
    return None if transport == "stdio" else transport


class InterceptorConfig(Section):
    """An interceptor by name, and its options, which the interceptor's own model checks when it is loaded."""

    name: str
    options: Mapping[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _checked(cls, data: Any, info: ValidationInfo) -> Any:
        # A bare name, or a name beside options and settings: those are the interceptor's to check, not these.
        if isinstance(data, cls):
            return data
        if isinstance(data, str):
            return {"name": data}
        if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
            raise ValueError("each entry needs a name")
        options = data.get("options", {})
        if not isinstance(options, Mapping):
            raise located("options", "must be a mapping")
        inline = {key: value for key, value in data.items() if key not in ("name", "options")}
        return {"name": data["name"], "options": {**options, **inline}}


class BackoffConfig(Section):
    """Seconds between attempts to restart a failed stdio server: ``initial``, doubled each time, up to ``max``."""

    initial: Seconds = 0.5
    max: Seconds = 30.0


class CircuitConfig(Section):
    """``failures`` within ``window`` seconds open the circuit; it stays open ``open_for`` seconds."""

    failures: Count = 5
    window: Seconds = 60.0
    open_for: Seconds = 60.0


class HealthConfig(Section):
    """Upstream checks: a ``ping`` every ``interval`` seconds (0: none), answered within ``timeout``."""

    interval: Delay = 10.0
    timeout: Seconds = 5.0
    failures: Count = 3
    """Consecutive unanswered pings after which a stdio server is restarted and a URL upstream counts as down."""
    backoff: BackoffConfig = BackoffConfig()
    circuit: CircuitConfig = CircuitConfig()

    @field_validator("interval", mode="before")
    @classmethod
    def _pings(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            raise ValueError("must be 0 (no pings) or more")
        return value

    @model_validator(mode="after")
    def _backoff_grows(self) -> HealthConfig:
        if self.backoff.max < self.backoff.initial:
            raise located("backoff.max", "must not be less than health.backoff.initial")
        return self


def _strict_bool(value: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _instance_id(value: str) -> str:
    # Empty, as the documented default is, means a random name per process.
    if value and not value.replace("-", "").replace("_", "").isalnum():
        raise ValueError("must be letters, digits, - and _ (or empty: a random name)")
    return value


class ClusterConfig(Section):
    """Instances sharing one Redis store act as one proxy; off without a Redis store or with ``enabled: false``."""

    enabled: Annotated[bool, BeforeValidator(_strict_bool)] = True
    instance_id: Annotated[str, AfterValidator(_instance_id)] = ""
    """This instance's name in the cluster; empty: a random one per process."""
    heartbeat_interval: Seconds = 1.0
    heartbeat_ttl: Seconds = 5.0
    """An instance whose heartbeat is older than this is gone (one whose Redis connection dropped, at once)."""
    locate_timeout: Seconds = 2.0
    """How long to wait for the other instances to say whether they hold a session the store does not know yet."""

    @model_validator(mode="after")
    def _ttl_outlives_beats(self) -> ClusterConfig:
        if self.heartbeat_ttl <= self.heartbeat_interval:
            raise located("heartbeat_ttl", "must be longer than cluster.heartbeat_interval")
        return self


def _port(value: int) -> int:
    if not 0 <= value < 65536:
        raise ValueError("must be between 0 (any free port) and 65535")
    return value


def _metrics_port(value: int | None) -> int | None:
    if value is not None and not 0 < value < 65536:
        raise ValueError("must be between 1 and 65535")
    return value


def _path(value: str) -> str:
    if not value.startswith("/") or value.endswith("/"):
        raise ValueError('must start with "/" and not end with "/"')
    return value


def _log_level(value: str) -> str:
    if value.lower() not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
    return value


def _log_format(value: str) -> str:
    if value not in ("text", "json"):
        raise ValueError("must be text or json")
    return value


def _body_size(value: int) -> int:
    if value < 1024:
        raise ValueError("must be at least 1024 bytes")
    return value


def _store(value: str) -> str:
    try:
        parse_store_url(value)
    except ConfigError as exc:
        raise ValueError(exc.problem) from None
    return value


def _upstreams(value: Any) -> Any:
    """The file's mapping of server name to settings as the servers, each with its name."""
    if isinstance(value, list | tuple):
        return value
    if not isinstance(value, Mapping) or not value:
        raise ValueError("must be a non-empty mapping of server name to settings")
    return [{**spec, "name": str(name)} if isinstance(spec, Mapping) else spec for name, spec in value.items()]


def _interceptors(value: Any) -> Any:
    if not isinstance(value, list | tuple):
        raise ValueError("must be a list of interceptor names or {name: ..., options...}")
    return value


def _section(value: Any) -> Any:
    """An empty ``auth`` or ``admin`` section is none: that feature is off."""
    if value is not None and not isinstance(value, Mapping | Section):
        raise ValueError("must be a mapping")
    return value or None


class Config(Section):
    noun: ClassVar[str] = "key"
    file_keys: ClassVar[tuple[str, ...]] = ("mcpServers",)
    program_keys: ClassVar[tuple[str, ...]] = ("source", "implicit_source")

    host: str = "127.0.0.1"
    port: Annotated[Whole, AfterValidator(_port)] = 8765
    path: Annotated[str, AfterValidator(_path)] = "/mcp"
    upstreams: Annotated[tuple[UpstreamConfig, ...], BeforeValidator(_upstreams)] = ()
    virtual_servers: Annotated[tuple[VirtualServerConfig, ...], BeforeValidator(server_list)] = ()
    interceptors: Annotated[tuple[InterceptorConfig, ...], BeforeValidator(_interceptors)] = ()
    rules: Strings = ()
    store: Annotated[str, AfterValidator(_store)] = "memory://"
    cluster: ClusterConfig = ClusterConfig()
    session_ttl: Seconds = 3600.0
    allowed_origins: Strings = ()
    allowed_hosts: Strings = ()
    shutdown_timeout: Seconds = 10.0
    health: HealthConfig = HealthConfig()
    metrics_port: Annotated[Whole | None, AfterValidator(_metrics_port)] = None
    """Serve ``/metrics`` on this port (same host) instead of the proxy's; ``None``: on the proxy's port."""
    request_timeout: Seconds = 300.0
    keepalive_interval: Seconds = 15.0
    sse_retry: Delay = 1.0
    poll_after: Delay = 0.0
    stream_after: Delay = 0.1
    stream_buffer: Count = 8 * 1024 * 1024
    event_log_size: Count = 1000
    event_log_age: Seconds = 3600.0
    max_body_size: Annotated[Whole, AfterValidator(_body_size)] = 4 * 1024 * 1024
    fast_path: Flag = True
    """MCP POSTs served by :mod:`shadowproxy.fronts.http.connection`; ``False``: aiohttp's own handler serves
    every request."""
    limits: Limits = Limits()
    """Sessions, requests, streams, nesting, timeouts and header sizes; see :mod:`shadowproxy.config.limits`."""
    flush_interval: Seconds = 0.1
    batch_size: Whole = 500
    log_level: Annotated[str, AfterValidator(_log_level)] = "info"
    log_format: Annotated[str, AfterValidator(_log_format)] = "text"
    auth: Annotated[AuthSettings | None, BeforeValidator(_section)] = None
    """Who may use the proxy; ``None``: anyone who reaches the port."""
    admin: Annotated[AdminConfig | None, BeforeValidator(_section)] = None
    """The admin API's token; ``None``: the admin API is off."""
    tapes: Annotated[TapesConfig | None, BeforeValidator(_section)] = None
    """Where and which sessions are recorded; ``None``: no tapes."""
    pinning: PinningConfig = PinningConfig()
    """Tool pinning (trust on first use); see :mod:`shadowproxy.config.pinning`."""
    credentials: Annotated[CredentialsConfig | None, BeforeValidator(_section)] = None
    """The key and file of per-principal upstream secrets; ``None``: no upstream has ``per_principal``."""
    tracing: Annotated[TracingConfig | None, BeforeValidator(_section)] = None
    """OpenTelemetry traces; ``None``: off, and nothing of OpenTelemetry imported."""
    roles: Annotated[RolesConfig | None, BeforeValidator(_section)] = None
    """Who may use which mounts, tools and admin operations; ``None``: every principal may use everything."""
    source: str | None = None
    implicit_source: bool = False
    """``source`` was not named (``--config``) but found in the working directory."""

    @model_validator(mode="after")
    def _names_unique(self) -> Config:
        names = [upstream.name for upstream in self.upstreams]
        if len(names) != len(set(names)):
            raise located("upstreams", "server names must be unique")
        check_members(names, self.virtual_servers)
        check_token_roles(self)
        for upstream in self.upstreams:
            if upstream.credentials is not None and upstream.credentials.per_principal and self.credentials is None:
                raise located(f"upstreams.{upstream.name}.credentials", "per_principal needs a credentials section")
        return self
