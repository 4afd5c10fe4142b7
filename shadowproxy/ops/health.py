"""``/healthz`` and ``/readyz``: whether the process serves, and whether it should be sent traffic.

Ready means every upstream's monitor (:mod:`shadowproxy.upstreams.health`) says it can serve. The session store
is reported here too (:func:`store_report`), from what the persistence worker saw of its last write. A store that
fails makes the proxy *degraded*, not unready: sessions are served from memory and written once the store is
back, as when it is down at start, so taking the instance out of a load balancer would only lose what it holds.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

from shadowproxy.fronts.http.endpoint import StreamableHttpEndpoint
from shadowproxy.sessions.persistence import PersistenceWorker

if TYPE_CHECKING:
    from shadowproxy.proxy.proxy import Proxy


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def add_routes(app: web.Application, proxy: Proxy, endpoints: Sequence[StreamableHttpEndpoint]) -> None:
    """``/healthz`` (the process serves) and ``/readyz`` (it should be sent traffic)."""
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", functools.partial(readyz, proxy, endpoints))


async def readyz(proxy: Proxy, endpoints: Sequence[StreamableHttpEndpoint], request: web.Request) -> web.Response:
    if proxy.draining:
        return web.json_response({"status": "draining"}, status=503)
    in_flight = sum(endpoint.in_flight for endpoint in endpoints)
    upstreams = {name: monitor.report() for name, monitor in proxy.monitors.items()}
    for mount in proxy.mounts:
        if mount.bridge is not None:
            upstreams.setdefault(mount.name, {})["bridge"] = mount.bridge.status()
    unready = sorted(name for name, monitor in proxy.monitors.items() if not monitor.ready)
    store = store_report(proxy.worker)
    failing = store["status"] != "ok"
    body = {
        "status": "unready" if unready else "degraded" if failing else "ready",
        "sessions": len(proxy.sessions),
        "in_flight": in_flight,
        "upstreams": upstreams,
        "store": store,
        "tasks": task_census(),
    }
    problems = [f"upstream {name}: {describe(upstreams[name])}" for name in unready]
    if failing:
        problems.append(f"store: {describe_store(store)}")
    # A replica down while others serve, or a virtual server's member left out, degrades the instance: it stays
    # ready.
    for name, report in sorted(upstreams.items()):
        for index, why in (report.get("replicas_down") or {}).items():
            problems.append(f"upstream {name}: replica {index} down: {why}")
    problems += [problem for gateway in proxy.virtual for problem in gateway.problems()]
    if problems:
        body["problems"] = problems
    return web.json_response(body, status=503 if unready else 200)


def describe(report: dict[str, object]) -> str:
    if report["circuit"] == "open":
        return f"circuit open (new sessions refused for {report['retry_after']}s) after: {report['problem']}"
    return f"down: {report['problem']}"


def task_census() -> dict[str, int]:
    """Live asyncio tasks by coroutine, so a leak names itself."""
    census = Counter(getattr(task.get_coro(), "__qualname__", "?") for task in asyncio.all_tasks())
    census["total"] = sum(census.values())
    return dict(census)


def store_report(worker: PersistenceWorker) -> dict[str, Any]:
    """What ``/readyz`` shows about the session store: ``ok``, or ``failing`` with why, since when and what waits."""
    status, stats = worker.store_status, worker.stats
    return {
        "status": "failing" if status.failing else "ok",
        "problem": status.problem,
        "since": status.since,
        "failed_attempts": status.failed_attempts,
        "pending": stats.queue_depth,
        "dropped": stats.dropped,
    }


def describe_store(report: dict[str, Any]) -> str:
    return f"{report['problem']} (serving from memory; {report['pending']} session changes wait to be written)"
