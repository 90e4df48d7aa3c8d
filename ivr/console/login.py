"""Signing in and out of the console: a login checked against the throttle and the users'
password hashes opens a session (ivr/console/auth.py); ``me`` tells the page who it is."""

from __future__ import annotations

from aiohttp import web

from ivr.console import SESSIONS, THROTTLE
from ivr.console.auth import COOKIE, ROLES, check_password, dummy_hash
from ivr.console.handling import blocking, context, error_answer, json_answer, session


async def login(request: web.Request) -> web.StreamResponse:
    """JSON ``{"name", "password"}`` (JSON only: a cross-site form cannot send it, so no
    other site can log a browser in)."""
    if request.content_type != "application/json":
        return error_answer(415, "send JSON")
    try:
        body = await request.json()
        name, password = str(body["name"]), str(body["password"])
    except (ValueError, KeyError, TypeError):
        return error_answer(400, "need JSON with name and password")
    ctx = context(request)
    sessions, throttle, accounts = request.app[SESSIONS], request.app[THROTTLE], ctx.accounts
    # Counted per source and per (source, name), never per name alone: someone else's
    # wrong passwords must not lock a user out (ivr/console/throttle.py).
    # (every X-Forwarded-For line: a proxy may add its own after the client's)
    source = throttle.source(request.remote,
                             ",".join(request.headers.getall("X-Forwarded-For", [])))
    attempt = await blocking(throttle.begin, ctx.store, source, name)
    if attempt.wait_s:
        refused = error_answer(429, "too many wrong passwords from here: try again in "
                                    f"{attempt.retry_after} s")
        refused.headers["Retry-After"] = attempt.retry_after
        return refused
    user = await blocking(accounts.user, name)
    ok = await blocking(check_password, password, user["password_hash"] if user
                        else dummy_hash())
    if not (user and ok and user["role"] in ROLES):
        return error_answer(401, "wrong name or password")  # the try's row stays: a failure
    await blocking(throttle.succeeded, ctx.store, attempt)
    if user.get("disabled"):  # told only to whoever knows the password
        return error_answer(403, "this user is disabled")
    opened = await blocking(sessions.open, accounts, user["name"], user["role"])
    await blocking(accounts.audit, opened.user, "login", None)
    response = json_answer({"name": opened.user, "role": opened.role, "csrf": opened.csrf})
    response.set_cookie(COOKIE, opened.token or "", path="/console", httponly=True,
                        samesite="Strict", secure=request.secure)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    await blocking(request.app[SESSIONS].close, context(request).accounts, session(request))
    response = json_answer({"ok": True})
    response.del_cookie(COOKIE, path="/console")
    return response


async def me(request: web.Request) -> web.StreamResponse:
    current = session(request)
    return json_answer({"name": current.user, "role": current.role, "csrf": current.csrf})
