"""Failed phone verifications, counted per account across calls and engine instances
(SPEC rule 3: past the limit, the caller goes to an agent with reason ``verification_locked``).

What counts, and against what:

- a wrong PIN (or a malformed one) counts against the account it was tried for: the bank's
  customer id (``customer:C0001``), whether the caller was identified by caller id or card;
- a card number that matches no account names no account, so it counts against the caller
  id it came from (``caller:+8613700000000``); a call without a caller id is only held to
  the per-call limit (three attempts), since there is nothing to count it against.

Policy (``LockoutPolicy``, from ``$IVR_PIN_MAX_FAILURES`` and ``$IVR_PIN_WINDOW_H``): at
``max_failures`` failures within the last ``window_h`` hours the account is locked. Its
callers are not asked for a PIN at all, and a PIN given anyway is refused without being
checked (a right one proves nothing while locked), until enough failures age out of the
window or ops clear the lock (``ivr verification unlock``, the console). A successful
verification, which can only happen while not locked, clears the account's failures.

Where the count lives: ``SqlLockout`` keeps it in the call log's database (table
``verification_failures``, beside the call log's tables), so every engine instance sharing
``IVR_CALL_LOG`` shares it. Where no call log is open (``ivr parse``, ``ivr evaluate``, an
engine a test loads) ``MemoryLockout`` counts within the process; replays use
``NoLockout`` (a replay must never lock a real customer out).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import sqlalchemy as sa

from ivr.calllog.schema import metadata
from ivr.errors import IvrError

T = TypeVar("T")
log = logging.getLogger(__name__)
Clock = Callable[[], float]

DEFAULT_MAX_FAILURES = 5
DEFAULT_WINDOW_H = 24.0
_KEY_LENGTH = 96

# In the call log's metadata, so that the call log creates (and its tests drop) it too.
failures = sa.Table(
    "verification_failures", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("account", sa.String(_KEY_LENGTH), nullable=False),  # customer:ID or caller:ID
    sa.Column("at", sa.Float, nullable=False, index=True),
    sa.Index("ix_verification_failures_account_at", "account", "at"),
)


def customer_key(customer_id: str) -> str:
    """The account a PIN is tried for: the bank's customer id (never a card number)."""
    return f"customer:{customer_id}"[:_KEY_LENGTH]


def caller_key(caller_id: str) -> str:
    """Where wrong card numbers count: the caller id they came from."""
    return f"caller:{caller_id}"[:_KEY_LENGTH]


def account_key(text: str) -> str:
    """An account as ops type it: ``customer:C0001`` or ``caller:+86...`` as listed, or a
    bare phone number (a caller) or customer id."""
    text = text.strip()
    if not text:
        raise IvrError("name an account: customer:ID, caller:PHONE, a customer id or a phone")
    if text.startswith(("customer:", "caller:")):
        return text[:_KEY_LENGTH]
    if text.lstrip("+").isdigit():
        return caller_key(text)
    return customer_key(text)


@dataclass(frozen=True)
class LockoutPolicy:
    max_failures: int = DEFAULT_MAX_FAILURES
    window_h: float = DEFAULT_WINDOW_H

    @property
    def window_s(self) -> float:
        return self.window_h * 3600

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> LockoutPolicy:
        """``$IVR_PIN_MAX_FAILURES`` (default 5) and ``$IVR_PIN_WINDOW_H`` (default 24)."""
        try:
            policy = cls(int(env.get("IVR_PIN_MAX_FAILURES") or DEFAULT_MAX_FAILURES),
                         float(env.get("IVR_PIN_WINDOW_H") or DEFAULT_WINDOW_H))
        except ValueError:
            raise IvrError("IVR_PIN_MAX_FAILURES must be a whole number and IVR_PIN_WINDOW_H "
                           "a number of hours") from None
        if policy.max_failures < 1 or not policy.window_h > 0:
            raise IvrError("IVR_PIN_MAX_FAILURES and IVR_PIN_WINDOW_H must be positive")
        return policy


@dataclass(frozen=True)
class AccountLock:
    """An account's failures within the window, and whether they lock it."""

    account: str
    failures: int
    last_failure: float | None = None
    locked_since: float | None = None  # the failure that reached the limit
    locked_until: float | None = None  # when enough failures will have aged out

    @property
    def locked(self) -> bool:
        return self.locked_since is not None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "locked": self.locked}


def assess(account: str, times: list[float], policy: LockoutPolicy, now: float) -> AccountLock:
    """The account's state from its failure times (older ones than the window ignored)."""
    recent = sorted(t for t in times if t > now - policy.window_s)
    n, limit = len(recent), policy.max_failures
    if n < limit:
        return AccountLock(account, n, recent[-1] if recent else None)
    # Locked until the count drops below the limit: when the (n - limit + 1)-th newest ages out.
    return AccountLock(account, n, recent[-1], recent[limit - 1],
                       recent[n - limit] + policy.window_s)


class Lockout:
    """The count of failed verifications. The dialogue awaits ``status``, ``failed`` and
    ``verified``; ops (CLI, console) call ``locks`` and ``unlock``, off the event loop."""

    blocking = False  # True: the storage calls block (a database), run them in a thread

    def __init__(self, policy: LockoutPolicy | None = None, clock: Clock = time.time) -> None:
        self.policy = policy or LockoutPolicy.from_env()
        self.clock = clock

    # --- where failures live (subclasses) ------------------------------------------------------
    def _times(self, account: str, since: float) -> list[float]:
        raise NotImplementedError

    def _add(self, account: str, at: float, forget_before: float) -> None:
        raise NotImplementedError

    def _clear(self, account: str) -> int:
        raise NotImplementedError

    def _all(self, since: float) -> dict[str, list[float]]:
        raise NotImplementedError

    # --- the policy, synchronously -----------------------------------------------------------
    def check(self, account: str) -> AccountLock:
        now = self.clock()
        return assess(account, self._times(account, now - self.policy.window_s), self.policy,
                      now)

    def fail(self, account: str) -> AccountLock:
        """Count one failure; the account's state after it."""
        now = self.clock()
        since = now - self.policy.window_s
        self._add(account, now, forget_before=since)
        return assess(account, self._times(account, since), self.policy, now)

    def succeed(self, account: str) -> bool:
        """A right PIN: the account's failures are cleared, unless it is locked (then the
        PIN should never have been checked: nothing is cleared). True if cleared."""
        if self.check(account).locked:
            return False
        self._clear(account)
        return True

    def locks(self, include_unlocked: bool = False) -> list[AccountLock]:
        """Locked accounts (with ``include_unlocked``, every account with recent failures),
        most recent failure first."""
        now = self.clock()
        states = [assess(a, t, self.policy, now)
                  for a, t in self._all(now - self.policy.window_s).items()]
        return sorted((s for s in states if include_unlocked or s.locked),
                      key=lambda s: -(s.last_failure or 0))

    def unlock(self, account: str) -> int:
        """Forget the account's failures (ops cleared it); how many there were."""
        return self._clear(account)

    # --- for the dialogue (its event loop must not block on a database) ----------------------
    async def _run(self, fn: Callable[[str], T], account: str) -> T:
        return await asyncio.to_thread(fn, account) if self.blocking else fn(account)

    async def status(self, account: str) -> AccountLock:
        return await self._run(self.check, account)

    async def failed(self, account: str) -> AccountLock:
        return await self._run(self.fail, account)

    async def verified(self, account: str) -> bool:
        return await self._run(self.succeed, account)


# How long a call waits for the shared count before it counts in this process instead.
STORE_TIMEOUT_S = 2.0


class MemoryLockout(Lockout):
    """Failures in this process only: for an engine with no call log."""

    def __init__(self, policy: LockoutPolicy | None = None, clock: Clock = time.time) -> None:
        super().__init__(policy, clock)
        self._failures: dict[str, list[float]] = defaultdict(list)
        self._lock = threading.Lock()  # ops calls come from other threads

    def _times(self, account: str, since: float) -> list[float]:
        with self._lock:
            return [t for t in self._failures.get(account, ()) if t > since]

    def _add(self, account: str, at: float, forget_before: float) -> None:
        with self._lock:
            self._failures[account] = [t for t in self._failures[account]
                                       if t > forget_before] + [at]

    def _clear(self, account: str) -> int:
        with self._lock:
            return len(self._failures.pop(account, ()))

    def _all(self, since: float) -> dict[str, list[float]]:
        with self._lock:
            return {a: [t for t in ts if t > since] for a, ts in self._failures.items()
                    if any(t > since for t in ts)}

    def clear(self) -> None:
        """Forget every account's failures."""
        with self._lock:
            self._failures.clear()


class NoLockout(Lockout):
    """Counts nothing and never locks: replays re-run old calls, and must not lock anyone."""

    def __init__(self) -> None:
        super().__init__(LockoutPolicy())

    def _times(self, account: str, since: float) -> list[float]:
        return []

    def _add(self, account: str, at: float, forget_before: float) -> None:
        pass

    def _clear(self, account: str) -> int:
        return 0

    def _all(self, since: float) -> dict[str, list[float]]:
        return {}


class SqlLockout(Lockout):
    """Failures in the call log's database (SQLite or PostgreSQL): shared by every engine
    instance on it. ``engine``: the call log's (``CallStore.engine``)."""

    blocking = True

    def __init__(self, engine: sa.engine.Engine, policy: LockoutPolicy | None = None,
                 clock: Clock = time.time) -> None:
        super().__init__(policy, clock)
        self.engine = engine
        # While the database cannot be reached (down, disk full), failures count in this
        # process: a call never stalls on the count, and guessing stays limited. The
        # shared count misses them afterwards (docs/security.md).
        self.local = MemoryLockout(self.policy, clock)
        self.unavailable_since: float | None = None
        try:  # a call log made before this table existed (another instance may race us)
            failures.create(engine, checkfirst=True)
        except sa.exc.SQLAlchemyError:
            if not sa.inspect(engine).has_table(failures.name):
                raise

    async def _run(self, fn: Callable[[str], T], account: str) -> T:
        """The dialogue's calls: the shared count when the database answers in time, else
        this process's (``local``), so the call goes on."""
        try:
            result = await asyncio.wait_for(asyncio.to_thread(fn, account), STORE_TIMEOUT_S)
        except (sa.exc.SQLAlchemyError, OSError, asyncio.TimeoutError) as e:
            if self.unavailable_since is None:
                self.unavailable_since = self.clock()
                log.error("verification failures: the call log's database is unavailable "
                          "(%s); counting in this process until it answers", type(e).__name__)
            return getattr(self.local, fn.__name__)(account)
        if self.unavailable_since is not None:
            self.unavailable_since = None
            log.warning("verification failures: counted in the database again")
        return result

    def _times(self, account: str, since: float) -> list[float]:
        with self.engine.connect() as db:
            shared = list(db.scalars(sa.select(failures.c.at).where(
                failures.c.account == account, failures.c.at > since)))
        return shared + self.local._times(account, since)  # what an outage counted here

    def _add(self, account: str, at: float, forget_before: float) -> None:
        with self.engine.begin() as db:
            db.execute(failures.insert().values(account=account, at=at))
            # Failures past the window never count again: the table stays small.
            db.execute(failures.delete().where(failures.c.at <= forget_before))

    def _clear(self, account: str) -> int:
        with self.engine.begin() as db:
            cleared = db.execute(failures.delete().where(
                failures.c.account == account)).rowcount
        return cleared + self.local._clear(account)

    def _all(self, since: float) -> dict[str, list[float]]:
        found: dict[str, list[float]] = defaultdict(list)
        with self.engine.connect() as db:
            for row in db.execute(sa.select(failures.c.account, failures.c.at).where(
                    failures.c.at > since)):
                found[row.account].append(row.at)
        for account, times in self.local._all(since).items():
            found[account] += times
        return dict(found)
