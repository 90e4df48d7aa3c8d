"""Console logins: scrypt password hashes, in-memory sessions, CSRF tokens, a login
throttle.

Sessions live in this process only: a restart logs everyone out, which is acceptable for
a handful of ops and trainer users and keeps session secrets out of the database. Each
session has two random tokens: the cookie (HttpOnly, so page scripts never see it) and a
CSRF token that the page reads from ``/console/api/me`` and sends back in the
``X-CSRF-Token`` header on every state-changing request.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field

# scrypt cost: N=2^14, r=8, p=1 (16 MiB, ~50 ms): the interactive-login parameters of the
# scrypt paper, cheap enough for a login form, dear enough to slow a stolen-table attack.
_N, _R, _P, _DKLEN = 2 ** 14, 8, 1, 32
_SCHEME = "scrypt"

OPS, TRAINER = "ops", "trainer"
ROLES = (OPS, TRAINER)  # what each may do: ROUTES in ivr/console/__init__.py

COOKIE = "ivr_console"
CSRF_HEADER = "X-CSRF-Token"
IDLE_S = 8 * 3600  # a session unused this long is gone (a working shift)
MAX_FAILURES = 5  # wrong passwords for one name before it is locked out for a while
LOCKOUT_S = 300


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


@dataclass
class Session:
    user: str
    role: str
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    last_seen: float = field(default_factory=time.monotonic)

    def csrf_ok(self, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(sent.encode(), self.csrf.encode())


class Sessions:
    """Logged-in users of this process, by cookie token."""

    def __init__(self, idle_s: float = IDLE_S) -> None:
        self.idle_s = idle_s
        self._by_token: dict[str, Session] = {}
        self._failures: dict[str, list[float]] = {}  # name -> times of recent failures

    def open(self, user: str, role: str) -> Session:
        self._expire()
        session = Session(user, role)
        self._by_token[session.token] = session
        return session

    def get(self, token: str | None) -> Session | None:
        """The live session of a cookie token (and it counts as used now)."""
        session = self._by_token.get(token or "")
        if session is None:
            return None
        now = time.monotonic()
        if now - session.last_seen > self.idle_s:
            del self._by_token[session.token]
            return None
        session.last_seen = now
        return session

    def close(self, session: Session) -> None:
        self._by_token.pop(session.token, None)

    def _expire(self) -> None:
        now = time.monotonic()
        for token in [t for t, s in self._by_token.items() if now - s.last_seen > self.idle_s]:
            del self._by_token[token]

    # --- throttling password guesses, per user name ------------------------------------
    def locked(self, name: str) -> bool:
        now = time.monotonic()
        recent = [t for t in self._failures.get(name, []) if now - t < LOCKOUT_S]
        if recent:
            self._failures[name] = recent
        else:
            self._failures.pop(name, None)
        return len(recent) >= MAX_FAILURES

    def failed(self, name: str) -> None:
        now = time.monotonic()
        if len(self._failures) > 10_000:  # guesses at many names: forget the stale ones
            self._failures = {n: ts for n, ts in self._failures.items()
                              if now - ts[-1] < LOCKOUT_S}
        self._failures.setdefault(name, []).append(now)

    def succeeded(self, name: str) -> None:
        self._failures.pop(name, None)
