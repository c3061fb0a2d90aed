"""The supervisors' dashboard: one static page and its script and stylesheet.

The page is plain HTML, CSS and JavaScript (control/static/), read once from the package when
the routes are made. It holds no data: everything comes from the /api/ routes with the
session cookie, and the page is served to anyone, like a login form. Only the files named in
`ASSETS` are served: a request path never reaches the file system.

Every response carries an ETag and `Cache-Control: no-cache` (a browser keeps a copy but asks
before using it, so a deploy is seen on the next load), and a Content-Security-Policy stricter
than the site-wide one: same-origin script, style and connections (the live feed's WebSocket
included), nothing inline, nothing else.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from aiohttp import hdrs, web

PAGE = "dashboard.html"
ASSETS: dict[str, str] = {
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
}
"""The only files served under /dashboard/, with their content types."""

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; media-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


@dataclass(frozen=True, slots=True)
class _File:
    body: bytes
    content_type: str
    etag: str


def _load(name: str, content_type: str) -> _File:
    body = resources.files("control").joinpath("static", name).read_bytes()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return _File(body, content_type, etag)


def _serve(request: web.Request, file: _File) -> web.Response:
    headers = {
        hdrs.CACHE_CONTROL: "no-cache",
        hdrs.ETAG: file.etag,
        hdrs.CONTENT_SECURITY_POLICY: CONTENT_SECURITY_POLICY,
    }
    if file.etag in {t.strip() for t in request.headers.get(hdrs.IF_NONE_MATCH, "").split(",")}:
        return web.Response(status=304, headers=headers)
    return web.Response(
        body=file.body, content_type=file.content_type, charset="utf-8", headers=headers
    )


def routes() -> list[web.RouteDef]:
    page = _load(PAGE, "text/html")
    assets = {name: _load(name, content_type) for name, content_type in ASSETS.items()}

    async def dashboard(request: web.Request) -> web.Response:
        return _serve(request, page)

    async def asset(request: web.Request) -> web.Response:
        file = assets.get(request.match_info["asset"])
        if file is None:
            raise web.HTTPNotFound()
        return _serve(request, file)

    return [web.get("/dashboard", dashboard), web.get("/dashboard/{asset}", asset)]
