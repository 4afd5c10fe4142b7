"""Configuration: typed dataclasses, validated once at the edge.

Sources, lowest precedence first: built-in defaults, the YAML file
(``shadowproxy.yaml`` or ``--config``; an MCP client's ``mcpServers`` JSON works
too), ``SHADOWPROXY_*`` environment variables, then command-line flags. Every
error names the key it is about, and the file when there is one.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shadowproxy.config.limits import Limits, UpstreamLimits, parse_limits, parse_upstream_limits
from shadowproxy.core.errors import ConfigError
from shadowproxy.rules.source import EMPTY_FILE, Document
from shadowproxy.rules.source import parse as parse_yaml

DEFAULT_CONFIG_FILE = "shadowproxy.yaml"
ENV_PREFIX = "SHADOWPROXY_"


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """One MCP server behind the proxy: a stdio ``command`` to spawn, or a Streamable HTTP ``url``."""

    name: str
    command: tuple[str, ...] = ()
    url: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    inherit_env: bool | None = None
    """The whole environment for a stdio child (``True``), or a safe base (``False``), under ``env``; ``None``: the
    mode's default, the whole one under ``shadowproxy stdio`` (see :func:`for_stdio`), the safe base under ``run``."""
    cwd: str | None = None
    share: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)
    transport: str | None = None
    """``sse`` (the 2024-11-05 HTTP+SSE transport) or ``websocket``; ``None``: stdio or Streamable HTTP."""
    limits: UpstreamLimits = field(default_factory=UpstreamLimits)
    """What each child of a stdio server may use (issue 10)."""

    @property
    def is_stdio(self) -> bool:
        return bool(self.command)


@dataclass(frozen=True, slots=True)
class InterceptorConfig:
    name: str
    options: Mapping[str, Any] = field(default_factory=dict)


# --- Upstream health (issue 8): checks, restarts and the circuit; loaded by _health below ---


@dataclass(frozen=True, slots=True)
class BackoffConfig:
    """Seconds between attempts to restart a failed stdio server: ``initial``, doubled each time, up to ``max``."""

    initial: float = 0.5
    max: float = 30.0


@dataclass(frozen=True, slots=True)
class CircuitConfig:
    """``failures`` within ``window`` seconds open the circuit; it stays open ``open_for`` seconds."""

    failures: int = 5
    window: float = 60.0
    open_for: float = 60.0


@dataclass(frozen=True, slots=True)
class HealthConfig:
    """Upstream checks: a ``ping`` every ``interval`` seconds (0: none), answered within ``timeout``."""

    interval: float = 10.0
    timeout: float = 5.0
    failures: int = 3
    """Consecutive unanswered pings after which a stdio server is restarted and a URL upstream counts as down."""
    backoff: BackoffConfig = BackoffConfig()
    circuit: CircuitConfig = CircuitConfig()


# --- end of upstream health ---


# --- Cluster (issue 7): instances sharing one Redis store; loaded by _cluster below ---


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Instances sharing one Redis store act as one proxy; off without a Redis store or with ``enabled: false``."""

    enabled: bool = True
    instance_id: str = ""
    """This instance's name in the cluster; empty: a random one per process."""
    heartbeat_interval: float = 1.0
    heartbeat_ttl: float = 5.0
    """An instance whose heartbeat is older than this is gone (one whose Redis connection dropped, at once)."""
    locate_timeout: float = 2.0
    """How long to wait for the other instances to say whether they hold a session the store does not know yet."""


# --- end of cluster ---


@dataclass(frozen=True, slots=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8765
    path: str = "/mcp"
    upstreams: tuple[UpstreamConfig, ...] = ()
    interceptors: tuple[InterceptorConfig, ...] = ()
    rules: tuple[str, ...] = ()
    store: str = "memory://"
    cluster: ClusterConfig = ClusterConfig()
    session_ttl: float = 3600.0
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    shutdown_timeout: float = 10.0
    health: HealthConfig = HealthConfig()
    metrics_port: int | None = None
    """Serve ``/metrics`` on this port (same host) instead of the proxy's; ``None``: on the proxy's port."""
    request_timeout: float = 300.0
    keepalive_interval: float = 15.0
    sse_retry: float = 1.0
    poll_after: float = 0.0
    stream_after: float = 0.1
    stream_buffer: int = 8 * 1024 * 1024
    event_log_size: int = 1000
    event_log_age: float = 3600.0
    max_body_size: int = 4 * 1024 * 1024
    fast_path: bool = True
    """MCP POSTs served by :mod:`shadowproxy.fronts.http.connection`; ``False``: aiohttp's own handler serves
    every request."""
    limits: Limits = field(default_factory=Limits)
    """Sessions, requests, streams, nesting, timeouts and header sizes; see :mod:`shadowproxy.config.limits`."""
    flush_interval: float = 0.1
    batch_size: int = 500
    log_level: str = "info"
    log_format: str = "text"
    auth: Mapping[str, Any] = field(default_factory=dict)
    admin: Mapping[str, Any] = field(default_factory=dict)
    source: str | None = None
    implicit_source: bool = False
    """``source`` was not named (``--config``) but found in the working directory."""


_SCALARS: dict[str, type] = {
    "host": str,
    "port": int,
    "path": str,
    "store": str,
    "session_ttl": float,
    "shutdown_timeout": float,
    "request_timeout": float,
    "keepalive_interval": float,
    "sse_retry": float,
    "poll_after": float,
    "stream_after": float,
    "stream_buffer": int,
    "event_log_size": int,
    "event_log_age": float,
    "max_body_size": int,
    "fast_path": bool,
    "flush_interval": float,
    "batch_size": int,
    "metrics_port": int,
    "log_level": str,
    "log_format": str,
}
_LISTS = ("rules", "allowed_origins", "allowed_hosts")
# Sections validated by the module that owns them, when it starts.
_SECTIONS = ("auth", "admin")
_LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigErrors(ConfigError):
    """Several problems found at once; ``errors`` holds each one, with its key, file and line."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        self.errors = tuple(errors)
        heading = f"{len(self.errors)} problems in the configuration"
        super().__init__("\n".join([heading, *(f"  {error}" for error in self.errors)]))


def raise_all(problems: Sequence[ConfigError]) -> None:
    """Raise ``problems``: nothing when there are none, the error itself when there is one."""
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ConfigErrors(problems)


def load(
    config_file: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    problems: list[ConfigError] | None = None,
    **overrides: Any,
) -> Config:
    """Build the effective config: file, then environment, then ``overrides`` (CLI flags; ``None`` means unset).

    Every problem is found, not just the first, each naming its key and, for a setting from the file, the
    file and line. Without ``problems`` they are raised (see :func:`raise_all`); with it they are added to it
    and the config returned keeps the defaults in place of the invalid settings, so that ``config check`` can
    go on to check the sections that other modules own.
    """
    found: list[ConfigError] = []
    raw: dict[str, Any] = {}
    source = None
    file = Path(config_file) if config_file else Path(DEFAULT_CONFIG_FILE)
    document = None
    if config_file or file.exists():
        source = str(file)
        raw, document = _read_file(file, found)
    config = from_mapping(raw, source=source, problems=found)
    config = replace(config, implicit_source=source is not None and not config_file)
    config, overridden = _apply_env(config, os.environ if env is None else env, found)
    changes = {key: value for key, value in overrides.items() if value is not None}
    if "upstream" in changes:
        try:
            changes["upstreams"] = (parse_upstream("default", changes.pop("upstream")),)
        except ConfigError as exc:
            found.append(exc)
    for key in _LISTS:
        if key in changes:
            changes[key] = tuple(changes[key])
    config = replace(config, **changes)
    validate(config, found)
    overridden |= set(changes)
    located = [_locate(error, document, source, overridden) for error in found]
    if problems is None:
        raise_all(located)
    else:
        problems.extend(located)
    return config


def pinpoint(error: ConfigError, config: Config) -> ConfigError:
    """``error``, found by the module that checks its section, at the line of its key in ``config``'s file.

    Only a value that the file set gets a line: one a flag or variable replaced has none.
    """
    if config.source is None or error.key is None:
        return error
    raw, document = _read_file(Path(config.source), [])
    top = _steps(error.key)[0]
    if top not in raw:
        return error
    in_file = tuple(raw[top]) if isinstance(raw[top], list) else raw[top]
    replaced = (top in _SCALARS or top in _LISTS) and in_file != getattr(config, str(top))
    located = ConfigError(error.problem, key=error.key, source=config.source)
    return _locate(located, document, config.source, {str(top)} if replaced else set())


def _locate(error: ConfigError, document: Document | None, source: str | None, overridden: set[str]) -> ConfigError:
    """``error`` naming the line of its key, when the file set that key; flags and variables have no line."""
    if error.key is None or error.source != source:
        return error
    steps = _steps(error.key)
    if steps[0] in overridden:
        return ConfigError(error.problem, key=error.key)
    line = document.line_of(steps) if document is not None else None
    return error if line is None else ConfigError(error.problem, key=error.key, source=f"{source}:{line}")


def _steps(key: str) -> tuple[str | int, ...]:
    """``interceptors[1].options.file`` as a path into the file: ``("interceptors", 1, "options", "file")``."""
    if not key:
        return ("",)
    return tuple(int(index) if index else name for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", key))


def _read_file(file: Path, problems: list[ConfigError]) -> tuple[dict[str, Any], Document | None]:
    """The file's settings and the line of each, read as rules files are (a duplicate key is a problem too)."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        problems.append(ConfigError(f"cannot read the config file: {reason}", source=str(file)))
        return {}, None
    document, found = parse_yaml(text, str(file))
    for problem in found:
        where = f"{file}:{problem.line}" if problem.line else str(file)
        if problem.message == EMPTY_FILE:
            continue
        message = problem.message.replace("invalid YAML", "not valid YAML or JSON", 1)
        problems.append(ConfigError(message, source=where))
    if document is None or document.data is None:
        return {}, None
    if not isinstance(document.data, dict):
        problems.append(ConfigError("the top level must be a mapping", source=str(file)))
        return {}, None
    return document.data, document


def from_mapping(
    raw: Mapping[str, Any], *, source: str | None = None, problems: list[ConfigError] | None = None
) -> Config:
    """Validate a decoded config file. ``mcpServers`` (the MCP clients' format) is accepted as ``upstreams``.

    Each problem goes to ``problems`` and its setting keeps the default; without ``problems`` they are raised.
    """
    values: dict[str, Any] = {"source": source}
    found: list[ConfigError] = []
    for key, value in raw.items():
        try:
            values.update(_section(key, value, source, found))
        except ConfigError as exc:
            found.append(exc)
    if problems is None:
        raise_all(found)
    else:
        problems.extend(found)
    return Config(**values)


def _section(key: str, value: Any, source: str | None, problems: list[ConfigError]) -> dict[str, Any]:
    """The config values one top-level key of the file sets."""
    if key in _SCALARS:
        return {key: _coerce(key, value, _SCALARS[key], source)}
    if key in _LISTS:
        if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
            raise ConfigError("must be a list of strings", key=key, source=source)
        return {key: tuple(value)}
    if key in ("upstreams", "mcpServers"):
        return {"upstreams": _each_upstream(key, value, source, problems)}
    if key in _SECTIONS:
        if not isinstance(value, dict):
            raise ConfigError("must be a mapping", key=key, source=source)
        return {key: dict(value)}
    parsers: dict[str, Callable[[Any, str | None], Any]] = {
        "interceptors": _interceptors,
        "health": _health,
        "cluster": _cluster,
        "limits": lambda section, where: parse_limits(section, source=where),
    }
    if key in parsers:
        return {key: parsers[key](value, source)}
    known = ", ".join(sorted([*_SCALARS, *_LISTS, *_SECTIONS, *parsers, "upstreams", "mcpServers"]))
    raise ConfigError(f"unknown key; known keys are: {known}", key=key, source=source)


def _each_upstream(key: str, value: Any, source: str | None, problems: list[ConfigError]) -> tuple[UpstreamConfig, ...]:
    """The servers that are valid; a problem with one server does not hide a problem with the next."""
    if not isinstance(value, dict) or not value:
        return _upstreams(key, value, source)
    found: list[UpstreamConfig] = []
    for name, spec in value.items():
        try:
            found.extend(_upstreams(key, {name: spec}, source))
        except ConfigError as exc:
            problems.append(exc)
    return tuple(found)


def _coerce(key: str, value: Any, kind: type, source: str | None) -> Any:
    if kind is bool:
        # An environment variable is a string: SHADOWPROXY_FAST_PATH=0 as well as =false.
        word = value.strip().lower() if isinstance(value, str) else value
        if isinstance(word, bool) or word in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return word is True or word in ("1", "true", "yes", "on")
        raise ConfigError(f"must be true or false, not {value!r}", key=key, source=source)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"must be a string, not {type(value).__name__}", key=key, source=source)
        return value
    if isinstance(value, bool):
        raise ConfigError(f"must be a number, not {value!r}", key=key, source=source)
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"must be a number, not {value!r}", key=key, source=source) from None


def parse_upstream(name: str, spec: str) -> UpstreamConfig:
    """``--upstream``: a URL, or a command line split as a shell would."""
    spec = spec.strip()
    if spec.startswith(("ws://", "wss://")):
        return UpstreamConfig(name=name, url=spec, transport="websocket")
    if spec.startswith(("http://", "https://")):
        # A legacy HTTP+SSE server is known by its event-stream path, by convention /sse.
        legacy = urlsplit(spec).path.rstrip("/").endswith("/sse")
        return UpstreamConfig(name=name, url=spec, transport="sse" if legacy else None)
    try:
        command = tuple(shlex.split(spec))
    except ValueError as exc:
        raise ConfigError(f"cannot split the command line: {exc}", key="upstream") from None
    if not command:
        raise ConfigError("is empty; give a command line or an http(s) or ws(s) URL", key="upstream")
    return UpstreamConfig(name=name, command=command)


def for_stdio(config: Config) -> Config:
    """``config`` for ``shadowproxy stdio``: the environment a client launches the proxy with is meant for its
    server, so every stdio server inherits it, unless its settings say ``inherit_env: false``."""
    upstreams = tuple(
        replace(upstream, inherit_env=True) if upstream.inherit_env is None else upstream
        for upstream in config.upstreams
    )
    return replace(config, upstreams=upstreams)


_UPSTREAM_KEYS = {"command", "args", "url", "env", "inherit_env", "cwd", "share", "headers", "type", "transport"}
_UPSTREAM_KEYS.add("limits")  # issue 10: a stdio server's children (cpu, memory, files, message size)


def _upstreams(key: str, value: Any, source: str | None) -> tuple[UpstreamConfig, ...]:
    if not isinstance(value, dict) or not value:
        raise ConfigError("must be a non-empty mapping of server name to settings", key=key, source=source)
    result = []
    for name, spec in value.items():
        where = f"{key}.{name}"
        if not isinstance(spec, dict):
            raise ConfigError("must be a mapping with a command or a url", key=where, source=source)
        unknown = set(spec) - _UPSTREAM_KEYS
        if unknown:
            first = sorted(unknown)[0]
            known = ", ".join(sorted(_UPSTREAM_KEYS))
            raise ConfigError(f"unknown setting; known settings are: {known}", key=f"{where}.{first}", source=source)
        command: list[str] = []
        if "command" in spec:
            raw_command = spec["command"]
            if isinstance(raw_command, str):
                command = shlex.split(raw_command) if "args" not in spec else [raw_command]
            elif isinstance(raw_command, list) and all(isinstance(part, str) for part in raw_command):
                command = list(raw_command)
            else:
                raise ConfigError("must be a string or a list of strings", key=f"{where}.command", source=source)
            args = spec.get("args", [])
            if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
                raise ConfigError("must be a list of strings", key=f"{where}.args", source=source)
            command += args
        url = spec.get("url")
        if bool(command) == bool(url):
            raise ConfigError("needs exactly one of command or url", key=where, source=source)
        if url is not None and (not isinstance(url, str) or not url.startswith(_URL_SCHEMES)):
            raise ConfigError("must be an http(s):// or ws(s):// URL", key=f"{where}.url", source=source)
        transport = _transport(spec, where, url, source)
        for mapping_key in ("env", "headers"):
            mapping = spec.get(mapping_key, {})
            if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
                raise ConfigError("must be a mapping of strings", key=f"{where}.{mapping_key}", source=source)
        result.append(
            UpstreamConfig(
                name=str(name),
                command=tuple(command),
                url=url,
                env=dict(spec.get("env", {})),
                inherit_env=bool(spec["inherit_env"]) if "inherit_env" in spec else None,
                cwd=spec.get("cwd"),
                share=bool(spec.get("share", False)),
                headers=dict(spec.get("headers", {})),
                transport=transport,
                limits=_upstream_limits(spec, where, bool(command), source),
            )
        )
    return tuple(result)


_URL_SCHEMES = ("http://", "https://", "ws://", "wss://")
_TRANSPORTS = {
    "stdio": "stdio",
    "http": None,
    "streamable-http": None,
    "streamableHttp": None,
    "sse": "sse",
    "websocket": "websocket",
    "ws": "websocket",
}


def _transport(spec: Mapping[str, Any], where: str, url: str | None, source: str | None) -> str | None:
    """``transport`` (or ``type``, as MCP clients' ``mcpServers`` spell it), checked against the command or URL."""
    name = "transport" if "transport" in spec else "type"
    value = spec.get(name)
    websocket_url = url is not None and url.startswith(("ws://", "wss://"))
    if value is None:
        return "websocket" if websocket_url else None
    if value not in _TRANSPORTS:
        known = ", ".join(_TRANSPORTS)
        raise ConfigError(f"unknown transport {value!r}; known: {known}", key=f"{where}.{name}", source=source)
    transport = _TRANSPORTS[value]
    if transport == "stdio" and url is not None:
        raise ConfigError("is stdio, which needs a command, not a url", key=f"{where}.{name}", source=source)
    if transport != "stdio" and url is None:
        raise ConfigError(f"is {value}, which needs a url, not a command", key=f"{where}.{name}", source=source)
    if websocket_url != (transport == "websocket"):
        raise ConfigError(f"is {value}, which does not fit the url {url}", key=f"{where}.{name}", source=source)
    return None if transport == "stdio" else transport


def _interceptors(value: Any, source: str | None) -> tuple[InterceptorConfig, ...]:
    if not isinstance(value, list):
        raise ConfigError(
            "must be a list of interceptor names or {name: ..., options...}", key="interceptors", source=source
        )
    result = []
    for index, item in enumerate(value):
        if isinstance(item, str):
            result.append(InterceptorConfig(item))
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            nested = item.get("options", {})
            if not isinstance(nested, dict):
                raise ConfigError("must be a mapping", key=f"interceptors[{index}].options", source=source)
            inline = {k: v for k, v in item.items() if k not in ("name", "options")}
            result.append(InterceptorConfig(item["name"], {**nested, **inline}))
        else:
            raise ConfigError("each entry needs a name", key=f"interceptors[{index}]", source=source)
    return tuple(result)


def _apply_env(config: Config, env: Mapping[str, str], problems: list[ConfigError]) -> tuple[Config, set[str]]:
    """``config`` with ``SHADOWPROXY_*`` variables applied, and the keys they set."""
    changes: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX) :].lower()
        try:
            if key in _SCALARS:
                changes[key] = _coerce(key, value, _SCALARS[key], name)
            elif key in _LISTS:
                changes[key] = tuple(part.strip() for part in value.split(",") if part.strip())
            elif key == "upstream":
                changes["upstreams"] = (parse_upstream("default", value),)
        except ConfigError as exc:
            problems.append(exc)
    return (replace(config, **changes) if changes else config), set(changes)


def validate(config: Config, problems: list[ConfigError] | None = None) -> None:
    """Cross-field checks that no single key can make; each problem goes to ``problems``, or is raised."""
    found: list[ConfigError] = []

    def check(ok: bool, problem: str, key: str) -> None:
        if not ok:
            found.append(ConfigError(problem, key=key, source=config.source))

    check(0 <= config.port < 65536, "must be between 0 (any free port) and 65535", "port")
    check(
        config.path.startswith("/") and not config.path.endswith("/"),
        'must start with "/" and not end with "/"',
        "path",
    )
    check(config.log_level.lower() in _LOG_LEVELS, f"must be one of {', '.join(_LOG_LEVELS)}", "log_level")
    check(config.log_format in ("text", "json"), "must be text or json", "log_format")
    for key in ("session_ttl", "shutdown_timeout", "request_timeout", "keepalive_interval", "flush_interval"):
        check(getattr(config, key) > 0, "must be greater than 0", key)
    for key in ("sse_retry", "poll_after", "stream_after"):
        check(getattr(config, key) >= 0, "must not be negative", key)
    for key in ("event_log_size", "event_log_age", "stream_buffer"):
        check(getattr(config, key) > 0, "must be greater than 0", key)
    check(config.metrics_port is None or 0 < config.metrics_port < 65536, "must be between 1 and 65535", "metrics_port")
    check(config.max_body_size >= 1024, "must be at least 1024 bytes", "max_body_size")
    names = [upstream.name for upstream in config.upstreams]
    check(len(names) == len(set(names)), "server names must be unique", "upstreams")
    from shadowproxy.stores import parse_store_url

    try:
        parse_store_url(config.store)
    except ConfigError as exc:
        found.append(ConfigError(exc.problem, key="store", source=config.source))
    if problems is None:
        raise_all(found)
    else:
        problems.extend(found)


# --- Limits (issue 10): the section itself is checked by shadowproxy.config.limits ---


def _upstream_limits(spec: Mapping[str, Any], where: str, stdio: bool, source: str | None) -> UpstreamLimits:
    if "limits" not in spec:
        return UpstreamLimits()
    if not stdio:
        raise ConfigError("applies to stdio servers (a command) only", key=f"{where}.limits", source=source)
    return parse_upstream_limits(spec["limits"], key=f"{where}.limits", source=source)


# --- end of limits ---


# --- Upstream health (issue 8) ---

_HEALTH_SECTIONS: dict[str, type] = {"backoff": BackoffConfig, "circuit": CircuitConfig}


def _health(value: Any, source: str | None) -> HealthConfig:
    """The ``health`` section, checked here so that a typo names ``health.<key>`` and its line."""
    if not isinstance(value, dict):
        raise ConfigError("must be a mapping", key="health", source=source)
    sections = {
        key: _health_numbers(kind, f"health.{key}", value.get(key, {}), source)
        for key, kind in _HEALTH_SECTIONS.items()
    }
    top = {key: item for key, item in value.items() if key not in _HEALTH_SECTIONS}
    health = _health_numbers(HealthConfig, "health", top, source, **sections)
    if health.backoff.max < health.backoff.initial:
        raise ConfigError("must not be less than health.backoff.initial", key="health.backoff.max", source=source)
    return health


def _health_numbers(kind: type, where: str, value: Any, source: str | None, **sections: Any) -> Any:
    """``kind`` from ``value``'s numbers (``interval`` may be 0: no pings; the rest must be positive)."""
    if not isinstance(value, dict):
        raise ConfigError("must be a mapping", key=where, source=source)
    numbers = {f.name: f.type for f in fields(kind) if f.name not in sections}
    values: dict[str, Any] = dict(sections)
    for key, item in value.items():
        if key not in numbers:
            known = ", ".join(sorted([*numbers, *sections]))
            raise ConfigError(f"unknown setting; known: {known}", key=f"{where}.{key}", source=source)
        number = _coerce(f"{where}.{key}", item, int if numbers[key] == "int" else float, source)
        if number < 0 or (number == 0 and key != "interval"):
            problem = "must be 0 (no pings) or more" if key == "interval" else "must be greater than 0"
            raise ConfigError(problem, key=f"{where}.{key}", source=source)
        values[key] = number
    return kind(**values)


# --- Cluster (issue 7) ---


def _cluster(value: Any, source: str | None) -> ClusterConfig:
    """The ``cluster`` section; an error names ``cluster.<key>`` (and its line)."""
    if not isinstance(value, dict):
        raise ConfigError("must be a mapping", key="cluster", source=source)
    known = {f.name: f.type for f in fields(ClusterConfig)}
    values: dict[str, Any] = {}
    for key, item in value.items():
        where = f"cluster.{key}"
        if key not in known:
            raise ConfigError(f"unknown setting; known: {', '.join(sorted(known))}", key=where, source=source)
        if key == "enabled":
            if not isinstance(item, bool):
                raise ConfigError("must be true or false", key=where, source=source)
        elif key == "instance_id":
            # Empty, as the documented default is, means a random name per process.
            if not isinstance(item, str) or (item and not item.replace("-", "").replace("_", "").isalnum()):
                raise ConfigError(
                    "must be letters, digits, - and _ (or empty: a random name)", key=where, source=source
                )
        else:
            item = _coerce(where, item, float, source)
            if item <= 0:
                raise ConfigError("must be greater than 0", key=where, source=source)
        values[key] = item
    cluster = ClusterConfig(**values)
    if cluster.heartbeat_ttl <= cluster.heartbeat_interval:
        raise ConfigError("must be longer than cluster.heartbeat_interval", key="cluster.heartbeat_ttl", source=source)
    return cluster
