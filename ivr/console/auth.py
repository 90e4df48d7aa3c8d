"""Console logins: scrypt password hashes, sessions in the call log's database, CSRF
tokens, a login throttle.

Sessions are rows of the ``sessions`` table of the call log's database (SQLite or
PostgreSQL; ivr/console/accounts.py), so a login made on one ``ivr serve`` instance is valid
on every instance sharing that database behind a load balancer, and survives a restart. The
row keeps only a SHA-256 of the cookie token (a copy of the database cannot be replayed as
cookies), the CSRF token, the user, the role, when it was opened and when it was last used.
Each session has two random tokens: the cookie (HttpOnly, so page scripts never see it) and
a CSRF token that the page reads from ``/console/api/me`` and sends back in the
``X-CSRF-Token`` header on every state-changing request. A session ends after ``IDLE_S``
unused or ``MAX_AGE_S`` after the login, whichever comes first, at logout, and when its user
is disabled or given another role (or password). Wrong passwords are counted in the database
too, per source address and per (source, name), so the throttle holds across instances
(ivr/console/throttle.py).

The account store is synchronous: callers on the event loop run these methods on the
executor.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

# Imported here so that its table is on the store's metadata wherever logins are served.
import ivr.console.throttle  # noqa: F401

if TYPE_CHECKING:
    from ivr.console.accounts import AccountStore

# scrypt cost: N=2^14, r=8, p=1 (16 MiB, ~50 ms): the interactive-login parameters of the
# scrypt paper, cheap enough for a login form, dear enough to slow a stolen-table attack.
_N, _R, _P, _DKLEN = 2 ** 14, 8, 1, 32
_SCHEME = "scrypt"

OPS, TRAINER, ADMIN = "ops", "trainer", "admin"
ROLES = (OPS, TRAINER, ADMIN)  # what each may do: ROUTES in ivr/console/routes.py

COOKIE = "ivr_console"
CSRF_HEADER = "X-CSRF-Token"
IDLE_S = 8 * 3600  # a session unused this long is gone (a working shift)
MAX_AGE_S = 12 * 3600  # and any session this long after its login (a stolen cookie expires)
# A session's last use is written at most this often: not a database write per request
# (so the idle expiry is exact to within this).
TOUCH_S = 60
MIN_PASSWORD = 8  # characters


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64), with a fresh random salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_DKLEN)
    return "$".join([_SCHEME, str(_N), str(_R), str(_P), _b64(salt), _b64(digest)])


def check_password(password: str, hashed: str) -> bool:
    """Whether ``password`` matches a ``hash_password`` result (constant-time compare;
    a malformed hash matches nothing)."""
    try:
        scheme, n, r, p, salt, digest = hashed.split("$")
        if scheme != _SCHEME:
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n),
                                r=int(r), p=int(p), dklen=len(expected),
                                maxmem=256 * int(n) * int(r) * int(p) + 2 ** 20)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


@functools.cache
def dummy_hash() -> str:
    """Checked against when the user does not exist, so that an unknown name takes as
    long to refuse as a wrong password (no finding user names by timing)."""
    return hash_password(secrets.token_hex(16))


def token_hash(token: str) -> str:
    """What the database keeps of a cookie token."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Session:
    user: str
    role: str
    csrf: str
    token_hash: str
    created_at: float
    last_seen: float
    token: str | None = None  # the cookie's value: known only to the login that opened it

    def csrf_ok(self, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(sent.encode(), self.csrf.encode())


class Sessions:
    """Logged-in users of every instance sharing the database, by cookie token. Methods
    block on the database: run them on the executor."""

    def __init__(self, idle_s: float = IDLE_S, max_age_s: float = MAX_AGE_S,
                 touch_s: float = TOUCH_S) -> None:
        self.idle_s = idle_s
        self.max_age_s = max_age_s
        self.touch_s = touch_s

    def open(self, accounts: AccountStore, user: str, role: str) -> Session:
        now = time.time()
        token = secrets.token_urlsafe(32)
        session = Session(user, role, secrets.token_urlsafe(32), token_hash(token), now, now,
                          token)
        # Expired rows are purged here, at each login: no timer, and no instance owns it.
        accounts.add_session(session.token_hash, session.csrf, user, role, now,
                             seen_before=now - self.idle_s, created_before=now - self.max_age_s)
        return session

    def get(self, accounts: AccountStore, token: str | None) -> Session | None:
        """The live session of a cookie token (and it counts as used now)."""
        if not token:
            return None
        row = accounts.session(token_hash(token))
        if row is None:
            return None
        now = time.time()
        if now - row["last_seen"] > self.idle_s or now - row["created_at"] > self.max_age_s:
            accounts.end_session(row["token_hash"])
            return None
        if now - row["last_seen"] >= self.touch_s:
            accounts.touch_session(row["token_hash"], now)
            row["last_seen"] = now
        return Session(row["user"], row["role"], row["csrf"], row["token_hash"],
                       row["created_at"], row["last_seen"])

    def close(self, accounts: AccountStore, session: Session) -> None:
        accounts.end_session(session.token_hash)
