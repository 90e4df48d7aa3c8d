"""What every console page's handlers share: their context and session, JSON answers and
refusals, reading numbers and JSON bodies from a request, the project a trainer works on,
and running the synchronous store (SQLAlchemy, scrypt, Rasa's loader) off the event loop
the live calls run on.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from ivr.console import CONSOLE, ConsoleContext
from ivr.console.auth import Session
from ivr.errors import Remedy
from ivr.project import Project

T = TypeVar("T")

SESSION = "console_session"  # the request's Session, set by the login check (routes.py)

# Chinese (and Korean) text goes out as is, not as \u escapes.
_dumps = functools.partial(json.dumps, ensure_ascii=False, default=str)


def json_answer(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def error_answer(status: int, message: str, remedy: Remedy | None = None) -> web.Response:
    """``{"error"}``, and the ``remedy`` code the page says in its language: never the
    CLI's flags (ivr/errors.py)."""
    return json_answer({"error": message, **({"remedy": remedy.code} if remedy else {})},
                       status)


async def blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run a store (or scrypt) call off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args))


class Refused(Exception):
    """A request the console answers with an error (status and a JSON message)."""

    def __init__(self, status: int, message: str, remedy: Remedy | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.remedy = remedy


def context(request: web.Request) -> ConsoleContext:
    try:
        return request.app[CONSOLE]
    except KeyError:
        raise Refused(503, "the call log is not open") from None


def session(request: web.Request) -> Session:
    return request[SESSION]


# --- what a request gives -----------------------------------------------------------------
def finite(name: str, raw: Any, low: float, high: float, whole: bool = False) -> float:
    """A number a request gave (query text or a JSON value) from ``low`` to ``high``, else
    a 400 naming it: ``nan``, ``inf``, negative or huge values never reach a query or the
    JSON answer (``limit=nan`` was a 500, ``hours=nan`` a ``NaN`` no JSON parser reads)."""
    kind = "a whole number" if whole else "a number"
    try:
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            raise TypeError(raw)
        value = float(raw)
    except (TypeError, ValueError, OverflowError):
        raise Refused(400, f"{name} must be {kind}") from None
    if not (math.isfinite(value) and low <= value <= high) or (whole and not value.is_integer()):
        raise Refused(400, f"{name} must be {kind} from {low:g} to {high:g}")
    return value


def number(request: web.Request, name: str, default: float, low: float, high: float,
           whole: bool = False) -> float:
    """A query parameter by ``finite`` (absent or empty: ``default``)."""
    raw = request.query.get(name)
    return default if raw in (None, "") else finite(name, raw, low, high, whole)


def optional(request: web.Request, name: str, low: float, high: float) -> float | None:
    """A query parameter by ``finite``, or None when absent or empty."""
    raw = request.query.get(name)
    return None if raw in (None, "") else finite(name, raw, low, high)


async def json_body(request: web.Request, *required: str) -> dict[str, Any]:
    """The request's JSON object, with ``required`` non-empty string fields."""
    try:
        data = await request.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise Refused(400, "send a JSON object")
    missing = [k for k in required if not isinstance(data.get(k), str) or not data[k].strip()]
    if missing:
        raise Refused(400, f"missing {', '.join(missing)}")
    return data


# --- the trainers' project ------------------------------------------------------------------
def root_project(request: web.Request) -> Project:
    project_root = context(request).project_root
    if project_root is None:
        raise Refused(503, "the trainers' pages are not set up on this server")
    return Project(project_root)


def locale_project(request: web.Request, locale: Any) -> Project:
    """The project of a locale it has (the locale names files: never taken as given)."""
    found = root_project(request)
    if locale not in found.locales():
        raise Refused(400, f"no locale {locale!r}: one of {', '.join(found.locales())}")
    return found.with_locale(locale)
