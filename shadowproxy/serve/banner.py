"""What the proxy tells its operator once it listens: where it serves, and what it was configured to do.

A config file picked up from the working directory is named as such: in a trial it applied rules and an
admin token that the person starting the proxy had not asked for, and nothing said so.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from shadowproxy.config import Config, UpstreamConfig
from shadowproxy.core.urls import mask_url
from shadowproxy.ops.admin_openapi import PREFIX
from shadowproxy.rules.ruleset import RuleSet
from shadowproxy.stores.url import redact

if TYPE_CHECKING:
    from shadowproxy.proxy.proxy import Proxy


def lines(proxy: Proxy, host: str, port: int) -> list[str]:
    """The banner, a line each; the first lines are ``serving NAME at URL``, one per mount."""
    config = proxy.config
    serving = [f"serving {mount.name} at http://{host}:{port}{mount.path}" for mount in proxy.mounts]
    upstreams = [f"upstream {upstream.name}: {describe_upstream(upstream)}" for upstream in config.upstreams]
    names = [interceptor.name for interceptor in proxy.chain.interceptors]
    return [
        *serving,
        f"config: {describe_source(config)}",
        *upstreams,
        f"store: {redact(config.store)}",
        f"rules: {describe_rules(proxy)}",
        f"chain: {', '.join(names) if names else 'empty (every message passes untouched)'}",
        describe_access(config),
    ]


def describe_source(config: Config) -> str:
    if config.source is None:
        return "none (defaults, environment and flags)"
    if config.implicit_source:
        return f"{Path(config.source).resolve()} (found in the working directory; --config names another)"
    return config.source


def describe_upstream(upstream: UpstreamConfig) -> str:
    if upstream.is_stdio:
        shared = " (one process shared by every session)" if upstream.share else ""
        return f"stdio: {shlex.join(upstream.command)}{shared}"
    kind = {"sse": "legacy HTTP+SSE", "websocket": "WebSocket"}.get(upstream.transport or "", "Streamable HTTP")
    return f"{kind}: {mask_url(upstream.url or '')}"


def describe_rules(proxy: Proxy) -> str:
    """How many rules are in force and from where: the ``rules`` interceptor's paths, as configured."""
    found = [
        (interceptor.rules, interceptor.options.paths)  # type: ignore[attr-defined]
        for interceptor in proxy.chain.interceptors
        if isinstance(getattr(interceptor, "rules", None), RuleSet)
    ]
    if not found:
        return "none"
    parts = []
    for rules, paths in found:
        summary = rules.summary()
        parts.append(f"{summary['rules']} rules from {', '.join(paths)} (default {summary['default']})")
    return "; ".join(parts)


def describe_access(config: Config) -> str:
    settings = config.auth
    if settings is None:
        who = "off (any client that reaches the port may connect)"
    else:
        kinds = [kind for kind, on in (("bearer tokens", settings.tokens), ("OAuth JWTs", settings.jwt)) if on]
        who = f"on ({', '.join(kinds)})"
    admin = config.admin is not None
    api = f"on at {PREFIX}/" if admin else "off"
    tap = f"on at {PREFIX}/tap" if admin else "off"
    console = f"on at {PREFIX}/console/" if admin else "off"
    return f"auth: {who}; admin API: {api}; tap: {tap}; console: {console}"
