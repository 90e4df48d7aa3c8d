"""The console's HTML pages, in the language the browser asks for, and its static files
(scripts, styles, the icon: nothing is fetched from elsewhere)."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

from ivr.console import CONSOLE, i18n
from ivr.console.handling import Refused

STATIC = Path(__file__).parent / "static"
_STATIC_NAME = re.compile(r"[a-z0-9_-]+\.(js|css|svg)")


def _page(request: web.Request, name: str) -> web.Response:
    """A page in the language the switch's cookie or the browser asks for (ivr/console/i18n.py)."""
    lang = i18n.negotiate(request.cookies.get(i18n.COOKIE),
                          request.headers.get("Accept-Language"))
    root = request.app[CONSOLE].project_root if CONSOLE in request.app else None
    return web.Response(text=i18n.render(name, lang, root), content_type="text/html",
                        headers={"Content-Language": lang, "Vary": "Cookie, Accept-Language"})


async def index(request: web.Request) -> web.StreamResponse:
    return _page(request, "index.html")


async def login_page(request: web.Request) -> web.StreamResponse:
    return _page(request, "login.html")


async def static(request: web.Request) -> web.StreamResponse:
    """Scripts, styles, the icon (no data in them, so the login page may load them)."""
    name = request.match_info["name"]
    path = STATIC / name
    if not _STATIC_NAME.fullmatch(name) or not path.is_file():
        raise Refused(404, "no such file")
    return web.FileResponse(path)
