"""The console's login throttle: wrong passwords counted per source address and per
(source, name), with a wait that doubles past a few free tries, in the call log's database
(so a load balancer spreading guesses over N instances does not give N times the tries).

Why not a lockout per name (what this replaced): anyone could lock any admin out with five
wrong passwords from anywhere, the right password included, while a spray over many names
went through unslowed. Here a name is only slowed for the source that guessed it wrong, so
a user's own right password from their own address always works after someone else's
failures; and a source is slowed once it has guessed wrong too often, whatever names it
tried. A source is the TCP peer address (an IPv6 address by its /64: one host holds a whole
/64); ``X-Forwarded-For`` counts only from a proxy named in ``$IVR_TRUSTED_PROXIES``.

Each try is a row written *before* its password is checked and removed when the password
was right (or the try was refused), so concurrent tries see each other: a burst of guesses
from one source cannot all slip past the count while the first ones are being checked.
The store is synchronous: callers on the event loop run these methods on the executor.
"""

from __future__ import annotations

import ipaddress
import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

# The call log's metadata: ``CallStore`` creates this table with the others (this module is
# imported by ivr/console/auth.py, so by every process that serves logins).
from ivr.calllog.schema import metadata
from ivr.calllog.store import CallStore

login_attempts = sa.Table(  # tries in progress and wrong passwords, per source and name
    "login_attempts", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("source", sa.String(64), nullable=False, index=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("at", sa.Float, nullable=False, index=True),
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Policy:
    """How many wrong passwords go unslowed, and how the wait grows past them: 1 s after
    the first one over, then 2, 4, 8 ... up to ``max_wait_s``."""

    per_source_free: int = 10  # wrong passwords from one source, whatever the names
    per_name_free: int = 3  # wrong passwords for one name from one source
    max_wait_s: float = 900.0
    window_s: float = 3600.0  # wrong passwords older than this are forgotten

    def wait(self, failures: int, free: int, last: float, now: float) -> float:
        """Seconds still to wait after ``failures`` (the latest at ``last``); 0: go on."""
        if failures < free:
            return 0.0
        return max(0.0, min(self.max_wait_s, 2.0 ** (failures - free)) - (now - last))


@dataclass(frozen=True)
class Attempt:
    """A login try: its row, or how long its source must wait first (``wait_s`` > 0)."""

    source: str
    name: str
    row: int | None
    wait_s: float = 0.0

    @property
    def retry_after(self) -> str:
        """The ``Retry-After`` header's value: whole seconds, at least 1."""
        return str(max(1, math.ceil(self.wait_s)))


def source_key(address: str) -> str:
    """What tries are counted against: an IPv4 address as is, an IPv6 address by its /64
    (an IPv4-mapped one as the IPv4 address); anything else (a Unix socket) as given."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return address[:64] or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def parse_networks(text: str | Iterable[str] | None) -> tuple[IPNetwork, ...]:
    """``"10.0.0.1, 192.168.0.0/16"`` (or a list) as networks; a bad entry is an error."""
    items = text.split(",") if isinstance(text, str) else list(text or ())
    return tuple(ipaddress.ip_network(item.strip(), strict=False)
                 for item in items if item.strip())


class LoginThrottle:
    """Counts login tries per source and per (source, name) in the store's database."""

    def __init__(self, policy: Policy | None = None,
                 trusted_proxies: str | Iterable[str] | None = None) -> None:
        self.policy = policy or Policy()
        # Default: no proxy is trusted, so X-Forwarded-For is ignored (a client could
        # write any address there and escape its own count).
        self.trusted = parse_networks(os.environ.get("IVR_TRUSTED_PROXIES")
                                      if trusted_proxies is None else trusted_proxies)

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%")[0])
        except ValueError:
            return False
        return any(ip in net for net in self.trusted)

    def source(self, peer: str | None, forwarded_for: str | None = None) -> str:
        """The client's address: the TCP peer; when the peer is a trusted proxy, the
        right-most ``X-Forwarded-For`` entry that is not itself a trusted proxy (what our
        own proxy saw: entries left of it are whatever the client wrote)."""
        address = peer or "unknown"
        if forwarded_for and self._trusted(address):
            for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
                if not self._trusted(hop):
                    try:
                        ipaddress.ip_address(hop.split("%")[0])
                    except ValueError:
                        break  # garbage: count it against the proxy, not a made-up key
                    address = hop
                    break
        return source_key(address)

    def begin(self, store: CallStore, source: str, name: str,
              now: float | None = None) -> Attempt:
        """Start a try: write its row, then see whether the source (or this name from this
        source) must wait. A refused try leaves no row (waiting is not guessing)."""
        now = time.time() if now is None else now
        policy, name = self.policy, name[:64]
        with store.engine.begin() as db:
            db.execute(login_attempts.delete().where(login_attempts.c.at < now - policy.window_s))
            row = db.execute(login_attempts.insert().values(source=source, name=name, at=now)
                             ).inserted_primary_key[0]
        # Counted after our own row is committed: two tries at once each see the other.
        with store.engine.connect() as db:
            earlier = db.execute(sa.select(login_attempts.c.name, login_attempts.c.at).where(
                login_attempts.c.source == source, login_attempts.c.id != row,
                login_attempts.c.at >= now - policy.window_s)).all()
        same = [at for n, at in earlier if n == name]
        wait = max(policy.wait(len(earlier), policy.per_source_free,
                               max((at for _, at in earlier), default=now), now),
                   policy.wait(len(same), policy.per_name_free, max(same, default=now), now))
        if wait > 0:
            self._forget(store, login_attempts.c.id == row)
            return Attempt(source, name, None, wait)
        return Attempt(source, name, row)

    def succeeded(self, store: CallStore, attempt: Attempt) -> None:
        """The password was right: this name's wrong passwords from this source are
        forgotten (the source's tries at other names still count)."""
        self._forget(store, sa.and_(login_attempts.c.source == attempt.source,
                                    login_attempts.c.name == attempt.name))

    def failures(self, store: CallStore, source: str, name: str | None = None) -> int:
        """Wrong passwords (and tries in progress) of a source (and name) in the window."""
        query = sa.select(sa.func.count()).select_from(login_attempts).where(
            login_attempts.c.source == source,
            login_attempts.c.at >= time.time() - self.policy.window_s)
        if name is not None:
            query = query.where(login_attempts.c.name == name[:64])
        with store.engine.connect() as db:
            return db.execute(query).scalar() or 0

    @staticmethod
    def _forget(store: CallStore, where: Any) -> None:
        with store.engine.begin() as db:
            db.execute(login_attempts.delete().where(where))
