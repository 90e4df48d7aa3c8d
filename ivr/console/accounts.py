"""The console's accounts in the call log's database: its users (roles, password hashes,
disabled), the audit log of who looked at, listened to or changed what, and the login
sessions (ivr/console/auth.py). The tables are on the call log's metadata
(ivr/calllog/schema.py), so the ``CallStore`` that opens a database creates them, and every
engine instance sharing that database shares the accounts. The login throttle keeps its
own table (ivr/console/throttle.py).

Synchronous (SQLAlchemy Core): callers on the event loop run these methods on the executor.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from ivr.calllog.schema import audit, sessions, users
from ivr.calllog.store import CallLogError


class UserChangeRefused(CallLogError):
    """A change to console users that would leave a role that must keep one enabled user
    (the admins) without any."""


class AccountStore:
    """Console users, audit and sessions, over the engine of an open ``CallStore``
    (``AccountStore(store.engine)``: the store has created the tables)."""

    def __init__(self, engine: sa.engine.Engine) -> None:
        self.engine = engine

    def set_user(self, name: str, role: str, password_hash: str,
                 keep_role: str | None = None) -> None:
        """Create a console user, or set an existing one's role and password."""
        self.save_user(name, role=role, password_hash=password_hash, keep_role=keep_role)

    def save_user(self, name: str, *, role: str | None = None, password_hash: str | None = None,
                  disabled: bool | None = None, keep_role: str | None = None,
                  by: str | None = None) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """Create a console user (a role and a password hash needed) or change what is
        given, in one transaction; returns the user before (None: created) and after.
        A new role or password, or disabling, ends the user's sessions. A change that would
        leave ``keep_role`` without an enabled user is refused (``UserChangeRefused``).
        ``by``: the change is audited in the same transaction, in that user's name."""
        try:
            return self._save_user(name, role, password_hash, disabled, keep_role, by)
        except sa.exc.IntegrityError:  # created by another request meanwhile
            raise UserChangeRefused(f"user {name!r} was just created elsewhere: "
                                    "try again") from None

    def _save_user(self, name: str, role: str | None, password_hash: str | None,
                   disabled: bool | None, keep_role: str | None,
                   by: str | None) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        now = time.time()
        with self.engine.begin() as db:
            if keep_role and self.engine.dialect.name == "postgresql":
                # Lock that role's users first: two admins demoting each other at once
                # queue here, and the second sees it would leave none. (SQLite writers
                # are serialised by the database lock already.)
                db.execute(sa.select(users.c.name).where(_enabled(keep_role)).with_for_update())
            row = db.execute(sa.select(users).where(users.c.name == name)).first()
            before = _user(row) if row else None
            if before is None:
                if role is None or password_hash is None:
                    raise CallLogError(f"no user {name!r}: a new user needs a role and a "
                                       "password")
                db.execute(users.insert().values(name=name, role=role, disabled=bool(disabled),
                                                 password_hash=password_hash, created_at=now))
            else:
                changes = {k: v for k, v in (("role", role), ("password_hash", password_hash),
                                             ("disabled", disabled)) if v is not None}
                if changes:
                    db.execute(users.update().where(users.c.name == name).values(**changes))
                if (role not in (None, before["role"]) or password_hash is not None
                        or (disabled and not before["disabled"])):
                    db.execute(sessions.delete().where(sessions.c.user == name))
                if (keep_role and before["role"] == keep_role and not before["disabled"]
                        and not db.execute(sa.select(sa.func.count()).select_from(users).where(
                            _enabled(keep_role))).scalar()):
                    raise UserChangeRefused(f"{name} is the last enabled {keep_role}: make "
                                            f"another {keep_role} first")
            after = _user(db.execute(sa.select(users).where(users.c.name == name)).one())
            rows = [{"at": now, "user": by, "action": action, "call_id": None, "detail": detail}
                    for action, detail in _user_changes(before, after, password_hash)]
            if by is not None and rows:  # (a role set to what it was changes nothing)
                db.execute(audit.insert(), rows)
        return before, after

    def user(self, name: str) -> dict[str, Any] | None:
        with self.engine.connect() as db:
            row = db.execute(sa.select(users).where(users.c.name == name)).first()
        return dict(row._mapping) if row else None

    def list_users(self) -> list[dict[str, Any]]:
        """Console users by name: name, role, disabled, created, last login (no hashes)."""
        with self.engine.connect() as db:
            return [_user(r) for r in db.execute(sa.select(users).order_by(users.c.name))]

    def audit(self, user: str, action: str, call_id: str | None = None,
              detail: str | None = None) -> None:
        with self.engine.begin() as db:
            db.execute(audit.insert().values(at=time.time(), user=user, action=action,
                                             call_id=call_id,
                                             detail=detail[:256] if detail else None))

    def audit_log(self, call_id: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(audit).order_by(audit.c.id)
        if call_id:
            query = query.where(audit.c.call_id == call_id)
        with self.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(query)]

    # --- sessions (ivr/console/auth.py) ------------------------------------------------------
    def add_session(self, token_hash: str, csrf: str, user: str, role: str, at: float,
                    seen_before: float, created_before: float) -> None:
        """A login: the session, the user's last login; expired sessions (of anyone) are
        purged while we are at it."""
        with self.engine.begin() as db:
            db.execute(sessions.delete().where(sa.or_(sessions.c.last_seen < seen_before,
                                                      sessions.c.created_at < created_before)))
            db.execute(sessions.insert().values(token_hash=token_hash, csrf=csrf, user=user,
                                                role=role, created_at=at, last_seen=at))
            db.execute(users.update().where(users.c.name == user).values(last_login=at))

    def session(self, token_hash: str) -> dict[str, Any] | None:
        """A session, if its user still exists, is enabled and has the session's role."""
        query = sa.select(sessions).join(users, users.c.name == sessions.c.user).where(
            sessions.c.token_hash == token_hash, users.c.role == sessions.c.role,
            _not_disabled())
        with self.engine.connect() as db:
            row = db.execute(query).first()
        return dict(row._mapping) if row else None

    def touch_session(self, token_hash: str, at: float) -> None:
        with self.engine.begin() as db:
            db.execute(sessions.update().where(sessions.c.token_hash == token_hash).values(
                last_seen=at))

    def end_session(self, token_hash: str) -> None:
        with self.engine.begin() as db:
            db.execute(sessions.delete().where(sessions.c.token_hash == token_hash))


def _not_disabled() -> Any:
    return sa.or_(users.c.disabled.is_(None), users.c.disabled == sa.false())


def _enabled(role: str) -> Any:
    return sa.and_(users.c.role == role, _not_disabled())


def _user(row: Any) -> dict[str, Any]:
    """A user as shown: never the password hash."""
    return {"name": row.name, "role": row.role, "disabled": bool(row.disabled),
            "created_at": row.created_at, "last_login": row.last_login}


def _user_changes(before: dict[str, Any] | None, after: dict[str, Any],
                  password_hash: str | None) -> list[tuple[str, str]]:
    """The audit rows of a change to a user: (action, detail)."""
    name = after["name"]
    if before is None:
        return [("user_create", f"{name} ({after['role']})")]
    out = []
    if before["role"] != after["role"]:
        out.append(("user_role", f"{name}: {before['role']} -> {after['role']}"))
    if password_hash is not None:
        out.append(("user_password", name))
    if before["disabled"] != after["disabled"]:
        out.append(("user_disable" if after["disabled"] else "user_enable", name))
    return out
