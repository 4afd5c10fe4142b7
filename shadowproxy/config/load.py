"""The effective configuration: the file, then ``SHADOWPROXY_*`` variables, then command-line flags, validated
together by :class:`~shadowproxy.config.model.Config`.

Every problem is found, not just the first, each naming its key and where it was set: the file and line, or the
variable.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from shadowproxy.config.auth import SOURCE
from shadowproxy.config.model import Config, UpstreamConfig
from shadowproxy.config.validation import FROM_FILE, problems_of, raise_all, steps_of
from shadowproxy.core.errors import ConfigError
from shadowproxy.rules.source import EMPTY_FILE, Document
from shadowproxy.rules.source import parse as parse_yaml

DEFAULT_CONFIG_FILE = "shadowproxy.yaml"
ENV_PREFIX = "SHADOWPROXY_"
LISTS = ("rules", "allowed_origins", "allowed_hosts")
SECTIONS = ("upstreams", "interceptors", "cluster", "health", "limits", "auth", "admin", "tapes")
SCALARS = tuple(name for name in Config.model_fields if name not in (*LISTS, *SECTIONS, *Config.program_keys))
OTHER_VARIABLES = (
    "SHADOWPROXY_ADMIN_TOKEN",
    "SHADOWPROXY_REQUIRE_REDIS",
    "SHADOWPROXY_TEST_REDIS_URL",
    "SHADOWPROXY_FUZZ_EXAMPLES",
)
"""Read by others than the config: the admin and tap commands' token, and the test suite's switches."""
MCP_SERVERS = "mcpServers"


def load(
    config_file: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    problems: list[ConfigError] | None = None,
    **overrides: Any,
) -> Config:
    """Build the effective config: file, then environment, then ``overrides`` (CLI flags; ``None`` means unset).

    Without ``problems`` the problems are raised (see :func:`raise_all`); with it they are added to it and the
    config returned keeps the defaults in place of the invalid settings, so that ``config check`` can go on to
    load the interceptors.
    """
    found: list[ConfigError] = []
    raw: dict[str, Any] = {}
    source = None
    file = Path(config_file) if config_file else Path(DEFAULT_CONFIG_FILE)
    document = None
    if config_file or file.exists():
        source = str(file)
        raw, document = _read_file(file, found)
    data, renamed = _from_file(raw)
    setters: dict[str, str | None] = {}
    for key, value in _from_env(os.environ if env is None else env, found).items():
        data[key], setters[key] = value
    flags = {key: value for key, value in overrides.items() if value is not None}
    if "upstream" in flags:
        try:
            flags["upstreams"] = (parse_upstream("default", flags.pop("upstream")),)
        except ConfigError as exc:
            found.append(exc)
    for key, value in flags.items():
        data[key], setters[key] = (tuple(value) if key in LISTS else value), None
    config, invalid = _validate(data, source)
    for error in invalid:
        top = str(steps_of(error.key)[0]) if error.key else ""
        if top in setters:
            found.append(ConfigError(error.problem, key=error.key, source=setters[top]))
        else:
            found.append(_locate(_renamed(error, renamed), document))
    config = config.model_copy(update={"source": source, "implicit_source": source is not None and not config_file})
    if problems is None:
        raise_all(found)
    else:
        problems.extend(found)
    return config


def from_mapping(
    raw: Mapping[str, Any], *, source: str | None = None, problems: list[ConfigError] | None = None
) -> Config:
    """Validate a decoded config file. ``mcpServers`` (the MCP clients' format) is accepted as ``upstreams``.

    Each problem goes to ``problems`` and its setting keeps the default; without ``problems`` they are raised.
    """
    data, renamed = _from_file(raw)
    config, found = _validate(data, source)
    found = [_renamed(error, renamed) for error in found]
    if problems is None:
        raise_all(found)
    else:
        problems.extend(found)
    return config.model_copy(update={"source": source})


def _validate(data: dict[str, Any], source: str | None) -> tuple[Config, list[ConfigError]]:
    """The config ``data`` makes, without the top-level keys that have problems, and those problems."""
    found: list[ConfigError] = []
    data = dict(data)
    while True:
        try:
            return Config.model_validate(data, context={FROM_FILE: True, SOURCE: source}), found
        except ValidationError as exc:
            invalid = problems_of(exc, data, source=source)
        found += invalid
        paths = [steps_of(error.key) for error in invalid if error.key]
        if not {path[0] for path in paths} & set(data):
            return Config(), found
        for path in paths:
            _drop(data, path)


def _drop(data: dict[str, Any], path: tuple[str | int, ...]) -> None:
    """``data`` without the setting at ``path``: the whole top-level key, or one server of ``upstreams``, so
    that the servers that are valid stay to be checked further."""
    servers = data.get("upstreams")
    if path[0] == "upstreams" and len(path) > 1 and isinstance(servers, Mapping) and len(servers) > 1:
        data["upstreams"] = {name: spec for name, spec in servers.items() if name != path[1]}
    else:
        data.pop(str(path[0]), None)


def _from_file(raw: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """``raw`` with ``mcpServers`` as ``upstreams``, and whether it was renamed."""
    data = {("upstreams" if key == MCP_SERVERS else key): value for key, value in raw.items()}
    return data, MCP_SERVERS in raw and "upstreams" not in raw


def _renamed(error: ConfigError, renamed: bool) -> ConfigError:
    if not renamed or error.key is None or steps_of(error.key)[:1] != ("upstreams",):
        return error
    return ConfigError(error.problem, key=MCP_SERVERS + error.key[len("upstreams") :], source=error.source)


def _from_env(env: Mapping[str, str], found: list[ConfigError]) -> dict[str, tuple[Any, str]]:
    """The settings ``SHADOWPROXY_*`` variables make, each with its variable's name; an unknown one is a problem."""
    settings: dict[str, tuple[Any, str]] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in OTHER_VARIABLES:
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key in SCALARS:
            settings[key] = (value, name)
        elif key in LISTS:
            settings[key] = (tuple(part.strip() for part in value.split(",") if part.strip()), name)
        elif key == "upstream":
            try:
                settings["upstreams"] = ((parse_upstream("default", value),), name)
            except ConfigError as exc:
                found.append(ConfigError(exc.problem, key=exc.key, source=name))
        else:
            known = ", ".join(ENV_PREFIX + key.upper() for key in (*SCALARS, *LISTS, "upstream"))
            found.append(ConfigError(f"unknown variable; known variables are: {known}", source=name))
    return settings


def pinpoint(error: ConfigError, config: Config) -> ConfigError:
    """``error``, found by the module that checks its section, at the line of its key in ``config``'s file.

    Only a value that the file set gets a line: one a flag or variable replaced has none.
    """
    if config.source is None or error.key is None:
        return error
    raw, document = _read_file(Path(config.source), [])
    top = str(steps_of(error.key)[0])
    if top not in raw:
        return error
    in_file = tuple(raw[top]) if isinstance(raw[top], list) else raw[top]
    if (top in SCALARS or top in LISTS) and in_file != getattr(config, top):
        return ConfigError(error.problem, key=error.key)
    return _locate(ConfigError(error.problem, key=error.key, source=config.source), document)


def _locate(error: ConfigError, document: Document | None) -> ConfigError:
    """``error`` naming the line of its key in ``document``, the file it names."""
    if error.key is None or document is None or error.source != document.file:
        return error
    steps = steps_of(error.key)
    line = document.lines.get(steps)
    if line is None and "options" in steps:
        # An interceptor's options may be written beside its name rather than under ``options``.
        line = document.lines.get(tuple(step for step in steps if step != "options"))
    line = line or document.line_of(steps)
    return error if line is None else ConfigError(error.problem, key=error.key, source=f"{error.source}:{line}")


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
        upstream.model_copy(update={"inherit_env": True}) if upstream.inherit_env is None else upstream
        for upstream in config.upstreams
    )
    return config.model_copy(update={"upstreams": upstreams})
