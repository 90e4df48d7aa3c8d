"""Commands ops run from a shell: console users (add, list, disable, enable, set-role),
phone verification locks, and the call log's retention purge (dry run, confirmation).
They print, and raise ``IvrError`` for anything a user can get wrong."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from ivr.cli.common import open_store
from ivr.cli.printing import print_json
from ivr.core.zone import stamp
from ivr.errors import IvrError


def users(accounts: Any, action: str, name: str | None, role: str | None, by: str) -> int:
    """``ivr users list|disable|enable|set-role`` on the console's ``AccountStore``. The last
    enabled admin is never disabled or demoted: the store refuses (``UserChangeRefused``, one
    error line)."""
    from ivr.console.auth import ADMIN, ROLES

    if action == "list":
        listed = accounts.list_users()
        print(f"{'name':20s} {'role':8s} {'state':9s} {'created':26s} last login")
        for u in listed:
            print(f"{u['name']:20s} {u['role']:8s} "
                  f"{'disabled' if u['disabled'] else 'enabled':9s} "
                  f"{stamp(u['created_at']) if u['created_at'] else '-':26s} "
                  f"{stamp(u['last_login']) if u['last_login'] else 'never'}")
        print(f"({len(listed)} user{'s' if len(listed) != 1 else ''})")
        return 0
    if not name:
        raise IvrError(f"ivr users {action} needs a user name")
    if accounts.user(name) is None:
        raise IvrError(f"no user {name!r} (`ivr users list`)")
    if action == "set-role":
        if role not in ROLES:
            raise IvrError(f"set-role needs --role, one of {', '.join(ROLES)}")
        before, after = accounts.save_user(name, role=role, keep_role=ADMIN, by=by)
        print(f"user {name}: role {before['role']} -> {after['role']}"
              + ("" if before["role"] != after["role"] else " (unchanged)"))
        return 0
    disabled = action == "disable"
    before, _ = accounts.save_user(name, disabled=disabled, keep_role=ADMIN, by=by)
    state = "disabled" if disabled else "enabled"
    print(f"user {name} {state}" + (" (already)" if before["disabled"] == disabled else
                                    "; their console sessions ended" if disabled else ""))
    return 0


def purge(store: Any, settings: Any, days: float, dry_run: bool, yes: bool) -> int:
    """``ivr calls purge``: calls (not live ones), their recordings and dead letters older
    than ``days``. ``dry_run`` lists them and deletes nothing; otherwise the user confirms
    at the terminal, or passes ``yes`` (cron, scripts: no terminal to ask)."""
    from ivr.calllog.store import LIVE, CallFilter

    before = time.time() - days * 86400
    # The store's purge criterion (started before, not live), read without deleting.
    doomed = [c for c in store.list_calls(CallFilter(until=before, limit=10_000_000))
              if c["status"] != LIVE]
    if dry_run:
        for c in doomed:
            print(f"{c['call_id'][:12]}  {stamp(c['started_at'])}  {c.get('status')}  "
                  f"{c.get('outcome') or '-'}" + ("  (recording)" if c.get("recording")
                                                 else ""))
        print(f"dry run: {len(doomed)} call(s) older than {days:g} days would be purged; "
              "nothing was deleted")
        return 0
    if doomed and not yes:  # (with no call to lose, old dead letters go unasked)
        question = f"purge {len(doomed)} call(s) older than {days:g} days? [y/N] "
        if sys.stdin is None or not sys.stdin.isatty():
            raise IvrError(f"purge would delete {len(doomed)} call(s) older than {days:g} "
                           "days and there is no terminal to confirm it: pass --yes "
                           "(or --dry-run to list them)")
        try:
            answer = input(question)
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("not purged")
            return 0
    gone = store.purge(before)
    removed = 0
    for call in gone:
        if settings.recordings and call.get("recording"):
            path = settings.recordings / call["recording"]
            if path.is_file():
                path.unlink()
                removed += 1
    print(f"purged {len(gone)} call(s) older than {days:g} days and {removed} recording(s)")
    return 0


async def cmd_users(args: argparse.Namespace) -> int:
    """Console logins: ``ivr users add NAME --role ops|trainer|admin`` (password from
    $IVR_PASSWORD or asked for). Changing a user's role or password ends their sessions;
    the last enabled admin cannot be demoted."""
    import getpass

    from ivr.console.auth import ADMIN, MIN_PASSWORD, ROLES, hash_password

    if args.action != "add":
        return users(_accounts(args.project_obj), args.action, args.name, args.role, args.by)
    if not args.name:
        raise IvrError("ivr users add needs a user name")
    if args.role not in ROLES:
        raise IvrError(f"role must be one of {', '.join(ROLES)}")
    password = os.environ.get("IVR_PASSWORD")
    if not password:
        if sys.stdin is None or not sys.stdin.isatty():  # (getpass would read a pipe)
            raise IvrError("no password: set $IVR_PASSWORD or run at a terminal")
        password = getpass.getpass(f"password for {args.name}: ")
    if len(password) < MIN_PASSWORD:
        raise IvrError(f"a console password needs at least {MIN_PASSWORD} characters")
    _accounts(args.project_obj).set_user(args.name, args.role, hash_password(password),
                                         keep_role=ADMIN)
    print(f"user {args.name} ({args.role}) saved")
    return 0


async def cmd_verification(args: argparse.Namespace) -> int:
    """Phone verification locks (ivr/dialogue/lockout.py): list them, clear one (audited)."""
    from ivr.console.accounts import AccountStore
    from ivr.dialogue.lockout import SqlLockout, account_key

    store, _ = open_store(args.project_obj)
    lockout = SqlLockout(store.engine)
    if args.action == "unlock":
        account = account_key(args.account)
        cleared = lockout.unlock(account)
        AccountStore(store.engine).audit(args.by, "verification_unlock", None,
                                         f"{account}: {cleared} failure(s)")
        print(f"{account}: {cleared} failure(s) cleared" if cleared else
              f"{account}: no failures to clear (see `ivr verification locks --all`)")
        return 0
    locks = lockout.locks(include_unlocked=args.all)
    policy = lockout.policy

    def when(at: float | None) -> str:
        return stamp(at) if at else "-"

    for lock in locks:
        if args.json:
            print_json(lock.as_dict())
        else:
            state = (f"locked since {when(lock.locked_since)} until {when(lock.locked_until)}"
                     if lock.locked else "not locked")
            print(f"{lock.account}  {lock.failures} failure(s), last {when(lock.last_failure)}"
                  f"  {state}")
    if not args.json:
        print(f"({len(locks)} account(s); the limit: {policy.max_failures} failures within "
              f"{policy.window_h:g} h, times UTC)")
    return 0


def _accounts(project: Any) -> Any:
    """The console's accounts, in the call log's database."""
    from ivr.console.accounts import AccountStore

    return AccountStore(open_store(project)[0].engine)
