"""The Users page, for admins: the console's users (never a password hash), created,
given another role or password, disabled or enabled; every change audited
(ivr/console/accounts.py)."""

from __future__ import annotations

import functools
import re

from aiohttp import web

from ivr.calllog.store import CallLogError
from ivr.console.accounts import UserChangeRefused
from ivr.console.auth import ADMIN, MIN_PASSWORD, ROLES, hash_password
from ivr.console.handling import blocking, context, error_answer, json_answer, json_body, session

_USER_NAME = re.compile(r"[\w.@-]{1,64}")


async def list_users(request: web.Request) -> web.StreamResponse:
    """Console users: name, role, disabled, created, last login (never a password hash)."""
    return json_answer({"users": await blocking(context(request).accounts.list_users),
                        "roles": list(ROLES)})


async def save_user(request: web.Request) -> web.StreamResponse:
    """JSON ``{"name", "role"?, "password"?, "disabled"?}``: create a user (role and password
    needed) or change the role, reset the password, disable or enable one. Audited; a new
    role, password or disabling ends the user's sessions; the last enabled admin cannot be
    demoted or disabled (409)."""
    body = await json_body(request, "name")
    accounts = context(request).accounts
    name, role, password, disabled = (body["name"].strip(), body.get("role"),
                                      body.get("password"), body.get("disabled"))
    # New names only: a user the CLI made with another name can still be changed.
    if not _USER_NAME.fullmatch(name) and await blocking(accounts.user, name) is None:
        return error_answer(400, "a name is 1 to 64 letters, digits, '.', '_', '@' or '-'")
    if role is not None and role not in ROLES:
        return error_answer(400, f"role must be one of {', '.join(ROLES)}")
    if password is not None and (not isinstance(password, str) or len(password) < MIN_PASSWORD):
        return error_answer(400, f"a password needs at least {MIN_PASSWORD} characters")
    if disabled is not None and not isinstance(disabled, bool):
        return error_answer(400, "disabled must be true or false")
    if role is None and password is None and disabled is None:
        return error_answer(400, "nothing to change: give a role, a password or disabled")
    hashed = await blocking(hash_password, password) if password is not None else None
    try:
        before, after = await blocking(functools.partial(
            accounts.save_user, name, role=role, password_hash=hashed, disabled=disabled,
            keep_role=ADMIN, by=session(request).user))
    except UserChangeRefused as e:
        return error_answer(409, str(e))
    except CallLogError as e:  # an unknown name without a role and a password
        return error_answer(400, str(e))
    return json_answer({"user": after, "created": before is None}, 201 if before is None else 200)
