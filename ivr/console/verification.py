"""The Verification page, for ops: the phone verification locks (accounts locked after
too many wrong answers: ivr/dialogue/lockout.py) and clearing one, audited."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ivr.console.handling import blocking, context, json_answer, json_body, session


def _lockout(request: web.Request) -> Any:
    from ivr.dialogue.lockout import SqlLockout

    return SqlLockout(context(request).store.engine)


async def locks(request: web.Request) -> web.StreamResponse:
    """Locked accounts (``?all=1``: every account with recent failures) and the policy.
    Accounts are customer ids or caller ids, never a card number."""
    everyone = request.query.get("all") in ("1", "true")

    def read() -> dict[str, Any]:
        lockout = _lockout(request)
        return {"locks": [lock.as_dict() for lock in lockout.locks(everyone)],
                "policy": {"max_failures": lockout.policy.max_failures,
                           "window_h": lockout.policy.window_h}}

    return json_answer(await blocking(read))


async def unlock(request: web.Request) -> web.StreamResponse:
    """JSON ``{"account"}`` (as listed): clear its failures. Audited."""
    from ivr.dialogue.lockout import account_key

    account = account_key((await json_body(request, "account"))["account"])
    cleared = await blocking(lambda: _lockout(request).unlock(account))
    await blocking(context(request).accounts.audit, session(request).user,
                   "verification_unlock", None, f"{account}: {cleared} failure(s)")
    return json_answer({"account": account, "cleared": cleared})
