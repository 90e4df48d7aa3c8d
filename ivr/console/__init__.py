"""The ops console: a web page in the engine's own aiohttp app, under ``/console``.

Ops (and, until their labelling pages arrive, trainers) list calls with filters, open a
call's timeline (every turn with how it was heard, understood and answered, the recording
to listen to), replay a call against a model to see what would change, and watch live
figures. The page is plain HTML, JavaScript and CSS from ``static/``: nothing is fetched
from elsewhere, so it works on a bank's closed network.

Every route and the roles allowed on it are in one table, ``ROUTES``; ``add_console``
registers them behind a login check, and docs/console.md prints the same table.
The store is synchronous (SQLAlchemy), so handlers call it on the default executor, never
on the event loop the live calls run on.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from ivr.calllog.store import CallFilter, CallLogError, CallStore
from ivr.calllog.timeline import turn_view
from ivr.console.auth import (
    COOKIE,
    CSRF_HEADER,
    OPS,
    ROLES,
    TRAINER,
    Session,
    Sessions,
    check_password,
    dummy_hash,
)
from ivr.errors import IvrError

if TYPE_CHECKING:
    from ivr.calllog.replay import Replayer

STATIC = Path(__file__).parent / "static"
READERS = frozenset({OPS, TRAINER})  # both read calls, audio and figures, and run replays
TRAINERS = frozenset({TRAINER})

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ConsoleContext:
    """What the console reads; the server sets it at startup (``app[CONSOLE]``)."""

    store: CallStore
    recordings: Path | None  # folder the calls' ``recording`` paths are relative to
    replayer: Replayer
    live_calls: Callable[[], int]  # calls in progress on this engine


CONSOLE = web.AppKey("console", ConsoleContext)
SESSIONS = web.AppKey("console_sessions", Sessions)
# One replay at a time: the Replayer's bank stand-in holds one call's recorded
# verification answers while it replays, so two at once would mix them up.
_SESSION = "console_session"  # the request's Session, set by the login check

# Chinese (and Korean) text goes out as is, not as \u escapes.
_dumps = functools.partial(json.dumps, ensure_ascii=False, default=str)
_HEADERS = {
    # Only this server's own scripts, styles and media: the page has no inline script,
    # so an injected <script> cannot run.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",  # call data must not linger in shared caches
}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


async def _blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run a store (or scrypt) call off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args))


class _Refused(Exception):
    """A request the console answers with an error (status and a JSON message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _context(request: web.Request) -> ConsoleContext:
    try:
        return request.app[CONSOLE]
    except KeyError:
        raise _Refused(503, "the call log is not open") from None


def _session(request: web.Request) -> Session:
    return request[_SESSION]


# --- pages and static files ---------------------------------------------------------------
async def _index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html")


async def _login_page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "login.html")


_STATIC_NAME = re.compile(r"[a-z0-9_-]+\.(js|css|svg)")


async def _static(request: web.Request) -> web.StreamResponse:
    """Scripts, styles, the icon (no data in them, so the login page may load them)."""
    name = request.match_info["name"]
    path = STATIC / name
    if not _STATIC_NAME.fullmatch(name) or not path.is_file():
        raise _Refused(404, "no such file")
    return web.FileResponse(path)


# --- signing in and out --------------------------------------------------------------------
async def _login(request: web.Request) -> web.StreamResponse:
    """JSON ``{"name", "password"}`` (JSON only: a cross-site form cannot send it, so no
    other site can log a browser in)."""
    if request.content_type != "application/json":
        return _error(415, "send JSON")
    try:
        body = await request.json()
        name, password = str(body["name"]), str(body["password"])
    except (ValueError, KeyError, TypeError):
        return _error(400, "need JSON with name and password")
    sessions = request.app[SESSIONS]
    if sessions.locked(name):
        return _error(429, "too many wrong passwords: try again in a few minutes")
    user = await _blocking(_context(request).store.user, name)
    ok = await _blocking(check_password, password, user["password_hash"] if user
                         else dummy_hash())
    if not (user and ok and user["role"] in ROLES):
        sessions.failed(name)
        return _error(401, "wrong name or password")
    sessions.succeeded(name)
    session = sessions.open(user["name"], user["role"])
    await _blocking(_context(request).store.audit, session.user, "login", None)
    response = _json({"name": session.user, "role": session.role, "csrf": session.csrf})
    response.set_cookie(COOKIE, session.token, path="/console", httponly=True,
                        samesite="Strict", secure=request.secure)
    return response


async def _logout(request: web.Request) -> web.StreamResponse:
    request.app[SESSIONS].close(_session(request))
    response = _json({"ok": True})
    response.del_cookie(COOKIE, path="/console")
    return response


async def _me(request: web.Request) -> web.StreamResponse:
    session = _session(request)
    return _json({"name": session.user, "role": session.role, "csrf": session.csrf})


# --- calls ---------------------------------------------------------------------------------
def _number(request: web.Request, name: str, default: float | None, low: float,
            high: float) -> float | None:
    raw = request.query.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise _Refused(400, f"{name} must be a number") from None
    return min(max(value, low), high)


async def _calls(request: web.Request) -> web.StreamResponse:
    """Calls, newest first. Query: outcome, queue, intent, caller, status, since/until
    (Unix seconds), limit, offset."""
    q = request.query
    f = CallFilter(
        since=_number(request, "since", None, 0, 1e12),
        until=_number(request, "until", None, 0, 1e12),
        **{k: q.get(k) or None for k in ("outcome", "queue", "intent", "caller", "status")},
        limit=int(_number(request, "limit", 50, 1, 500) or 50),
        offset=int(_number(request, "offset", 0, 0, 1e9) or 0))
    return _json({"calls": await _blocking(_context(request).store.list_calls, f)})


async def _find(request: web.Request) -> dict[str, Any]:
    try:
        return await _blocking(_context(request).store.find_call, request.match_info["call_id"])
    except CallLogError as e:
        raise _Refused(404, str(e)) from None


async def _timeline(request: web.Request) -> web.StreamResponse:
    """A call: its summary, its events, the per-turn view, and who has opened it."""
    store = _context(request).store
    call = await _find(request)
    events = await _blocking(store.events, call["call_id"])
    await _blocking(store.audit, _session(request).user, "view", call["call_id"])
    return _json({"call": call, "events": events, "turns": turn_view(events),
                  "audit": await _blocking(store.audit_log, call["call_id"])})


async def _audio(request: web.Request) -> web.StreamResponse:
    """The call's recording (WAV, with byte ranges for seeking); listening is audited."""
    ctx = _context(request)
    call = await _find(request)
    if not ctx.recordings or not call.get("recording"):
        return _error(404, "this call has no recording")
    root = ctx.recordings.resolve()
    path = (root / call["recording"]).resolve()
    if not path.is_relative_to(root) or path.suffix != ".wav":  # a tampered log row
        return _error(404, "this call has no recording")
    if not path.is_file():
        return _error(404, "the recording file is missing")
    # A player fetches a file in several ranges; the first (from byte 0) is one listen.
    if request.headers.get("Range", "bytes=0-").startswith("bytes=0-"):
        await _blocking(ctx.store.audit, _session(request).user, "listen", call["call_id"])
    return web.FileResponse(path, headers={"Content-Type": "audio/wav"})


# --- replay --------------------------------------------------------------------------------
async def _models(request: web.Request) -> web.StreamResponse:
    """The models this call may be replayed against (file names, newest first) and the
    one it was recorded with."""
    ctx = _context(request)
    call = await _find(request)
    paths = await _blocking(ctx.replayer.models, call.get("locale") or "zh")
    return _json({"models": [p.name for p in paths], "recorded": call.get("model")})


async def _replay(request: web.Request) -> web.StreamResponse:
    """JSON ``{"model": NAME}`` (a name from ``/models``; none: the latest model).
    The browser names a model, never a path: only the replayer's own files are loaded."""
    ctx = _context(request)
    call = await _find(request)
    try:
        body = await request.json() if request.can_read_body else {}
        name = (body or {}).get("model")
    except (ValueError, AttributeError):
        return _error(400, "send JSON like {\"model\": NAME}")
    model: Path | None = None
    if name:
        paths = await _blocking(ctx.replayer.models, call.get("locale") or "zh")
        model = next((p for p in paths if p.name == name), None)
        if model is None:
            return _error(400, f"no model {name!r} for this call's locale")
    await _blocking(ctx.store.audit, _session(request).user, "replay", call["call_id"])
    try:
        result = await ctx.replayer.replay(call["call_id"], model)
    except CallLogError as e:
        return _error(404, str(e))
    except IvrError as e:
        return _error(400, str(e))
    return _json(result)


# --- figures -------------------------------------------------------------------------------
async def _figures(request: web.Request) -> web.StreamResponse:
    """Live figures over the last ``hours`` (default 24)."""
    ctx = _context(request)
    hours = _number(request, "hours", 24, 1 / 60, 24 * 366) or 24
    since = time.time() - hours * 3600
    counts = await _blocking(ctx.store.counts, since)
    signals: dict[str, int] = {}
    for e in await _blocking(ctx.store.events_of_kind, "signal", since):
        name = str(e["data"].get("signal"))
        signals[name] = signals.get(name, 0) + 1
    return _json(figures(counts, signals, ctx.live_calls(), hours, since))


def figures(counts: dict[str, Any], signals: dict[str, int], live: int, hours: float,
            since: float) -> dict[str, Any]:
    """Containment is self-served calls over ended calls (complete or cut off): a call
    still in progress has no outcome yet, so it is left out of both."""
    status, outcome = counts.get("status", {}), counts.get("outcome", {})
    calls = sum(status.values())
    ended = calls - status.get("live", 0)
    served = outcome.get("self_service", 0)
    return {
        "hours": hours, "since": since, "live_calls": live, "calls": calls, "ended": ended,
        "containment": round(served / ended, 4) if ended else None,
        "status": status,
        "outcome": {k: v for k, v in outcome.items() if k != "None"},
        "escalations_by_queue": counts.get("escalations_by_queue", {}),
        "escalations_by_reason": counts.get("escalations_by_reason", {}),
        "misroute_signals": dict(sorted(signals.items(), key=lambda kv: -kv[1])),
    }


# --- trainers ------------------------------------------------------------------------------
async def _review(request: web.Request) -> web.StreamResponse:
    """Placeholder for the trainers' labelling queue (a later issue)."""
    return _json({"items": []})


# --- the role x route table ----------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    roles: frozenset[str] | None  # None: no login needed
    page: bool = False  # anonymous: redirect to the login page (else 401 JSON)


ROUTES: tuple[Route, ...] = (
    Route("GET", "/console/login", _login_page, None),
    Route("GET", "/console/static/{name}", _static, None),
    Route("POST", "/console/api/login", _login, None),
    Route("GET", "/console", _index, READERS, page=True),
    Route("GET", "/console/", _index, READERS, page=True),
    Route("GET", "/console/api/me", _me, READERS),
    Route("POST", "/console/api/logout", _logout, READERS),
    Route("GET", "/console/api/calls", _calls, READERS),
    Route("GET", "/console/api/calls/{call_id}", _timeline, READERS),
    Route("GET", "/console/api/calls/{call_id}/audio", _audio, READERS),
    Route("GET", "/console/api/calls/{call_id}/models", _models, READERS),
    Route("POST", "/console/api/calls/{call_id}/replay", _replay, READERS),
    Route("GET", "/console/api/figures", _figures, READERS),
    Route("GET", "/console/api/review", _review, TRAINERS),
)


def _guarded(route: Route) -> Handler:
    """The route's handler behind its login, role and CSRF checks."""

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            # (A response is a mapping, so an empty one is falsy: compare with None.)
            refused = await _check(request, route)
            response = refused if refused is not None else await route.handler(request)
        except _Refused as e:
            response = _error(e.status, str(e))
        if not response.prepared:
            response.headers.update({k: v for k, v in _HEADERS.items()
                                     if k not in response.headers})
        return response

    return handle


async def _check(request: web.Request, route: Route) -> web.StreamResponse | None:
    """None when the request may go on, else the refusal."""
    if route.roles is None:
        return None
    session = request.app[SESSIONS].get(request.cookies.get(COOKIE))
    if session is None:
        if route.page:
            return web.Response(status=302, headers={"Location": "/console/login"})
        return _error(401, "log in first")
    if session.role not in route.roles:
        return _error(403, f"the {session.role} role may not use this")
    if route.method != "GET" and not session.csrf_ok(request.headers.get(CSRF_HEADER)):
        return _error(403, f"missing or wrong {CSRF_HEADER} header")
    request[_SESSION] = session
    return None


def add_console(app: web.Application) -> None:
    """Register the console's routes; handlers read ``app[CONSOLE]``, which the server
    sets once the call log is open."""
    app[SESSIONS] = Sessions()
    for route in ROUTES:
        app.router.add_route(route.method, route.path, _guarded(route))
