"""GET /: a page to try the server in a browser (record or upload, see the transcript).

The page is plain HTML/CSS/JS from the package (no CDN, no build step), its assets come through
the docs page's static route, and every URL in it is relative, so it works behind a path prefix
such as Home Assistant's ingress (/api/hassio_ingress/<token>/).
"""

from __future__ import annotations

import html
import re

from aiohttp import web

from .docs import STATIC_DIR

routes = web.RouteTableDef()
INDEX = STATIC_DIR / "index.html"
INDEX_HTML = INDEX.read_text(encoding="utf-8")  # read once: no file I/O on the event loop
# What a sane X-Ingress-Path looks like: /api/hassio_ingress/<token>; anything else is ignored.
_PREFIX = re.compile(r"^/[A-Za-z0-9_\-./]*$")


def base_href(prefix: str | None) -> str | None:
    """The <base href> for a proxy's path prefix (X-Ingress-Path), or None without a usable one."""
    if not prefix or not _PREFIX.match(prefix) or "//" in prefix or "/../" in prefix + "/":
        return None
    return prefix.rstrip("/") + "/"


@routes.get("/")
async def index(request: web.Request) -> web.StreamResponse:
    page = INDEX_HTML
    base = base_href(request.headers.get("X-Ingress-Path"))
    if base is not None:
        # Behind ingress the page may be opened without its trailing slash; a <base> pins the
        # relative URLs to the prefix either way.
        page = page.replace("<head>", f'<head>\n  <base href="{html.escape(base)}">', 1)
    return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-cache"})
