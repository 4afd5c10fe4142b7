"""The admin API under ``/_shadowproxy/``: upstreams, sessions, rules (reload, list), the effective config, a summary
of the running totals, and the web console (:mod:`shadowproxy.ops.console`).

Off unless ``admin`` is configured (its paths are then plain 404s); every call
needs ``Authorization: Bearer <token>``. The API is described by the OpenAPI
document :func:`openapi_document`, served at ``/_shadowproxy/openapi.json``.

Its tokens are ``config.admin`` (:class:`~shadowproxy.config.admin.AdminConfig`); which may call what is
:mod:`~shadowproxy.ops.admin_access`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from shadowproxy.config import shown
from shadowproxy.core import counters
from shadowproxy.core.errors import ConfigError, UpstreamError
from shadowproxy.core.record import SessionRecord
from shadowproxy.core.urls import mask_url
from shadowproxy.ops import admin_access, admin_rules, admin_summary, console, pins, tap_stream, tapes_api
from shadowproxy.ops.admin_credentials import CredentialsApi
from shadowproxy.ops.admin_openapi import MAX_LIMIT, PREFIX, openapi_document
from shadowproxy.ops.approvals import ApprovalsApi
from shadowproxy.sessions.manager import LiveSession
from shadowproxy.upstreams.stdio import StdioUpstream

if TYPE_CHECKING:
    from shadowproxy.proxy.proxy import Proxy
    from shadowproxy.upstreams.health import Monitor


def error(status: int, text: str) -> web.Response:
    return web.json_response({"error": text}, status=status)


class AdminApi:
    """The handlers, bound to one proxy."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document())

    async def upstreams(self, request: web.Request) -> web.Response:
        proxy = self.proxy
        listed: dict[str, dict[str, Any]] = {}
        for mount in proxy.mounts:
            entry = listed.get(mount.name)
            if entry is None:
                entry = listed[mount.name] = describe_upstream(mount.upstream, proxy.monitors.get(mount.name))
                if mount.bridge is not None:
                    entry["bridge"] = mount.bridge.status()
            entry["paths"].append(mount.path)
        for session in proxy.sessions.live.values():
            if session.record.upstream in listed:
                listed[session.record.upstream]["sessions"] += 1
        return web.json_response({"upstreams": list(listed.values())})

    async def restart(self, request: web.Request) -> web.Response:
        """Restart a stdio upstream's long-lived processes and close its circuit; 409 for a URL upstream."""
        name = request.match_info["name"]
        monitor = self.proxy.monitors.get(name)
        if monitor is None:
            return error(404, f"no upstream named {name!r}")
        if monitor.stdio is None:
            return error(409, f"upstream {name!r} is reached by URL; the proxy does not run it and cannot restart it")
        try:
            await monitor.restart()
        except UpstreamError as exc:
            return error(502, f"upstream {name!r} did not restart: {exc.message}")
        entry = describe_upstream(monitor.upstream, monitor)
        entry["paths"] = [mount.path for mount in self.proxy.mounts if mount.name == name]
        entry["sessions"] = sum(1 for s in self.proxy.sessions.live.values() if s.record.upstream == name)
        return web.json_response(entry)

    async def sessions(self, request: web.Request) -> web.Response:
        upstream = request.query.get("upstream")
        raw_limit = request.query.get("limit", "1000")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            return error(400, f"limit must be an integer from 1 to {MAX_LIMIT}")
        limit = int(raw_limit)
        everywhere = every_instance(request)
        if everywhere is None:
            return error(400, "all must be true or false")
        if everywhere and self.proxy.cluster is not None:
            # Every instance's sessions, as the shared store holds them (live ones of this instance as they are).
            records, _ = await self.proxy.store.list(upstream=upstream, limit=limit)
            here = self.proxy.sessions.live
            found = [describe_session(here[r.id]) if r.id in here else describe_record(r) for r in records]
            return web.json_response({"sessions": found, "total": len(found)})
        live = [s for s in self.proxy.sessions.live.values() if upstream is None or s.record.upstream == upstream]
        live.sort(key=lambda session: session.record.created_at)
        return web.json_response({"sessions": [describe_session(s) for s in live[:limit]], "total": len(live)})

    async def session(self, request: web.Request) -> web.Response:
        session = self.proxy.sessions.live.get(request.match_info["session_id"])
        if session is None:
            return error(404, "no live session with this id")
        return web.json_response(describe_session(session))

    async def terminate(self, request: web.Request) -> web.Response:
        if not await self.proxy.sessions.close(request.match_info["session_id"]):
            return error(404, "no live session with this id")
        return web.Response(status=204)

    async def reload(self, request: web.Request) -> web.Response:
        """Call ``reload()`` on every interceptor that has one; 422 when any kept its old configuration.

        With ``?all=true`` in a cluster, every instance is asked to reload (each checks its own files).
        """
        everywhere = every_instance(request)
        if everywhere is None:
            return error(400, "all must be true or false")
        if everywhere and self.proxy.cluster is not None:
            reached = await self.proxy.cluster.reload_all()
            return web.json_response({"instances": reached}, status=202)
        results = []
        for interceptor in self.proxy.chain.reloadables:
            taken = await interceptor.reload() is not False
            outcome = "success" if taken else "failure"
            counters.ADMIN_RELOADS.labels(interceptor.name, outcome).inc()
            reason = None if taken else getattr(interceptor, "last_error", None) or "reload refused"
            results.append({"interceptor": interceptor.name, "reloaded": taken, "error": reason})
        ok = all(result["reloaded"] for result in results)
        return web.json_response({"reloaded": ok, "interceptors": results}, status=200 if ok else 422)

    async def config(self, request: web.Request) -> web.Response:
        return web.json_response(effective_config(self.proxy))


def describe_upstream(upstream: Any, monitor: Monitor | None = None) -> dict[str, Any]:
    """An upstream as operators see it: its health check's view, then the last exchange's, then ``unknown``."""
    config = upstream.config
    healthy = counters.upstream_healthy(upstream.name)
    status = "unknown" if healthy is None else "up" if healthy else "failing"
    if monitor is not None and (monitor.status == "down" or status == "unknown"):
        status = monitor.status
    report = monitor.report() if monitor is not None else {}
    entry: dict[str, Any] = {
        "name": upstream.name,
        "transport": "stdio" if config.is_stdio else "http",
        "status": status,
        "problem": report.get("problem"),
        "circuit": report.get("circuit"),
        "restarts": report.get("restarts", 0),
        "crashes": upstream.crashes if isinstance(upstream, StdioUpstream) else 0,
        "paths": [],
        "sessions": 0,
        "shared": bool(config.share),
    }
    if config.is_stdio:
        entry["command"] = list(config.command)
        entry["processes"] = len(upstream.children) if isinstance(upstream, StdioUpstream) else 0
        if isinstance(upstream, StdioUpstream) and upstream.spares.target:
            spares = upstream.spares
            entry["spares"] = {"ready": len(spares.ready), "target": spares.target, "taken": spares.taken}
    else:
        entry["url"] = mask_url(config.url or "")
    replicas = len(config.urls) if config.urls else config.replicas
    if replicas > 1:
        entry["replicas"] = replicas
        entry["replicas_down"] = report.get("replicas_down") or {}
        if config.urls:
            entry["urls"] = [mask_url(url) for url in config.urls]
    return entry


def describe_session(session: LiveSession) -> dict[str, Any]:
    """A session as operators see it; the upstream's own session id and the raw initialize stay inside."""
    data = describe_record(session.record)
    data["listening"] = session.listening
    return data


def describe_record(record: SessionRecord) -> dict[str, Any]:
    data = record.to_dict()
    data.pop("upstream_session_id", None)
    data.pop("init_request", None)
    data["listening"] = False
    return data


def every_instance(request: web.Request) -> bool | None:
    """``?all=true|false`` (absent: false); ``None`` for any other value."""
    return {"true": True, "false": False}.get(request.query.get("all", "false"))


def effective_config(proxy: Proxy) -> dict[str, Any]:
    """The config in force, with secrets masked: tokens, passwords, upstream env and header values."""
    return shown(proxy.config)


def register(app: web.Application, proxy: Proxy) -> None:
    """Add the admin routes when ``admin`` is configured; raise :class:`ConfigError` when it is invalid."""
    config = proxy.config
    if config.path == PREFIX or config.path.startswith(f"{PREFIX}/"):
        raise ConfigError(f"the MCP path must not be under {PREFIX}/, which is the admin API's", key="path")
    settings = config.admin
    if settings is None:
        return
    api = AdminApi(proxy)
    secrets = CredentialsApi(proxy)
    routes = (
        ("GET", "/openapi.json", api.openapi),
        ("GET", "/upstreams", api.upstreams),
        ("POST", "/upstreams/{name}/restart", api.restart),
        ("GET", "/sessions", api.sessions),
        ("GET", "/sessions/{session_id}", api.session),
        ("DELETE", "/sessions/{session_id}", api.terminate),
        ("POST", "/rules/reload", api.reload),
        ("GET", "/config", api.config),
        ("GET", "/tap", tap_stream.stream(config.keepalive_interval)),
        ("GET", "/summary", admin_summary.handler(proxy)),
        ("GET", "/rules", admin_rules.handler(proxy)),
        ("PUT", "/credentials/{upstream}/{principal}", secrets.put),
        ("DELETE", "/credentials/{upstream}/{principal}", secrets.delete),
        *ApprovalsApi(proxy.holds, config.keepalive_interval).routes(),
        *tapes_api.routes(proxy),
        *pins.routes(proxy),
    )
    for method, path, handler in routes:
        app.router.add_route(
            method, PREFIX + path, admin_access.protected(settings, proxy.access, method, path, handler)
        )
    console.add_routes(app, PREFIX)
    app.on_shutdown.append(tap_stream.close_listeners)
