"""The web console at ``/_shadowproxy/console/``: static files shipped in this package (``static/``), served
without the admin token so the login page loads; every piece of data it shows comes from the admin API, which
asks for the token on every call (the browser keeps it in ``sessionStorage`` and sends it as the
``Authorization`` header, never as a cookie).

The files are plain HTML, CSS and JavaScript modules: nothing is fetched from elsewhere and nothing is built.
Each answer carries a Content-Security-Policy that allows only this origin's scripts, styles and API calls,
no inline script or style attribute, no framing.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

from aiohttp import web

ROUTE = "/console/"
"""Under the admin API's prefix."""

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-cache",
}


def static_files() -> dict[str, tuple[bytes, str]]:
    """Every shipped file by its path under ``static/``, read once: a request names a key or gets 404, so no
    path from a request ever reaches the file system."""
    found: dict[str, tuple[bytes, str]] = {}

    def walk(folder: Traversable, prefix: str) -> None:
        for entry in folder.iterdir():
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
                continue
            suffix = entry.name[entry.name.rfind(".") :]
            if suffix in CONTENT_TYPES:
                found[prefix + entry.name] = (entry.read_bytes(), CONTENT_TYPES[suffix])

    walk(resources.files(__package__) / "static", "")
    return found


def add_routes(app: web.Application, prefix: str) -> None:
    """Serve the console under ``prefix`` + :data:`ROUTE`; ``prefix`` without it redirects there."""
    files = static_files()
    base = prefix + ROUTE

    async def serve(request: web.Request) -> web.Response:
        found = files.get(request.match_info.get("name") or "index.html")
        if found is None:
            return web.json_response({"error": "no such console file"}, status=404, headers=SECURITY_HEADERS)
        body, content_type = found
        return web.Response(body=body, headers={**SECURITY_HEADERS, "Content-Type": content_type})

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPPermanentRedirect(base)

    app.router.add_get(base.rstrip("/"), redirect)
    app.router.add_get(base, serve)
    app.router.add_get(base + "{name:.+}", serve)
