"""``PUT`` and ``DELETE /_shadowproxy/credentials/{upstream}/{principal}``: a principal's own secret for an
upstream (``per_principal`` credentials), kept encrypted in the store (:mod:`shadowproxy.upstreams.secrets`).

``PUT`` takes ``{"secret": "..."}``; the secret is never shown again, by this API or any other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from shadowproxy.stores import StoreError

if TYPE_CHECKING:
    from shadowproxy.proxy.proxy import Proxy


def error(status: int, text: str) -> web.Response:
    return web.json_response({"error": text}, status=status)


class CredentialsApi:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.per_principal = {
            upstream.name
            for upstream in proxy.config.upstreams
            if upstream.credentials is not None and upstream.credentials.per_principal
        }

    def _target(self, request: web.Request) -> tuple[str, str] | web.Response:
        upstream, principal = request.match_info["upstream"], request.match_info["principal"]
        if self.proxy.secrets is None or upstream not in self.per_principal:
            return error(404, f"upstream {upstream!r} has no per_principal credentials")
        return upstream, principal

    async def put(self, request: web.Request) -> web.Response:
        target = self._target(request)
        if isinstance(target, web.Response):
            return target
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            body = None
        secret = body.get("secret") if isinstance(body, dict) else None
        if not isinstance(secret, str):
            return error(400, 'the body must be {"secret": "..."}')
        assert self.proxy.secrets is not None
        try:
            await self.proxy.secrets.set(*target, secret)
        except ValueError as exc:
            return error(400, str(exc))
        except StoreError as exc:
            return error(503, f"the secret could not be stored: {exc}")
        return web.Response(status=204)

    async def delete(self, request: web.Request) -> web.Response:
        target = self._target(request)
        if isinstance(target, web.Response):
            return target
        assert self.proxy.secrets is not None
        try:
            if not await self.proxy.secrets.delete(*target):
                return error(404, "no secret is set for this upstream and principal")
        except StoreError as exc:
            return error(503, f"the secret could not be deleted: {exc}")
        return web.Response(status=204)
