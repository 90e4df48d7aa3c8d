"""Failed verifications count per account across calls and engine instances (SPEC rule 3):
past the limit the caller goes to an agent with reason ``verification_locked``, even with
the right PIN, until the failures age out of the window or ops clear the lock."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from ivr.calllog.store import CallStore
from ivr.cli import main
from ivr.console import CONSOLE, ConsoleContext, add_console
from ivr.console.accounts import AccountStore
from ivr.console.auth import CSRF_HEADER, hash_password
from ivr.core.inputs import Keys, Say
from ivr.dialogue.call import Call
from ivr.dialogue.knowledge import KnowledgeBase
from ivr.dialogue.lockout import (
    LockoutPolicy,
    MemoryLockout,
    SqlLockout,
    account_key,
    assess,
    caller_key,
    customer_key,
)
from ivr.errors import DataFileError, IvrError
from tests.conftest import KNOWN, UNKNOWN, prompts
from tests.phones import serving

PIN = "123456"
BALANCE = "12345.67"
ACCOUNT = customer_key("C0001")  # the demo customer calling from KNOWN
ZH_LOCKED, KO_LOCKED = "电话验证已暂时锁定", "잠겼습니다"
WRONG = [{"dtmf": "111111#"}, {"dtmf": "222222#"}, {"dtmf": "333333#"}]


class Clock:
    """A clock the test moves forward."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class SharedLog:
    """The zh and ko engines as two instances on one call log: each counts through its own
    connection pool, as two processes would."""

    zh: SqlLockout
    ko: SqlLockout
    clock: Clock
    stores: tuple[CallStore, CallStore]


@pytest.fixture
def shared_log(engine: Any, ko_engine: Any, store_url: str) -> Iterator[SharedLog]:
    clock = Clock()
    stores = (CallStore(store_url), CallStore(store_url))
    lockouts = [SqlLockout(s.engine, LockoutPolicy(5, 24), clock) for s in stores]
    before = engine.lockout, ko_engine.lockout
    engine.lockout, ko_engine.lockout = lockouts
    try:
        yield SharedLog(lockouts[0], lockouts[1], clock, stores)
    finally:
        engine.lockout, ko_engine.lockout = before
        for store in stores:
            store.close()


def _balance(result: dict[str, Any]) -> bool:
    return BALANCE in prompts(result)


def _locked_out(result: dict[str, Any], said: str = ZH_LOCKED) -> bool:
    return (result["outcome"], result["reason"]) == ("escalated", "verification_locked") \
        and said in prompts(result) and not _balance(result)


# --- across calls ------------------------------------------------------------------------------

async def test_three_calls_of_wrong_pins_lock_out_a_fourth_with_the_right_pin(
        call, bank, monkeypatch: pytest.MonkeyPatch) -> None:
    first = await call([{"say": "查余额"}, *WRONG])
    assert first["reason"] == "verification_failed"  # within one call, the old rule
    second = await call([{"say": "查余额"}, *WRONG])
    # Its second wrong PIN is the fifth failure of the account: no third try.
    assert _locked_out(second) and len(second["turns"]) == 3
    assert second["queue"] == "general"  # the topic's queue
    third = await call([{"say": "查余额"}, *WRONG])
    assert _locked_out(third) and len(third["turns"]) == 1
    assert "密码" not in " ".join(third["turns"][0]["prompts"])  # not even asked

    checked: list[str] = []
    verify = bank.verify_pin

    async def counting(customer_id: str, pin: str) -> bool:
        checked.append(customer_id)
        return await verify(customer_id, pin)

    monkeypatch.setattr(bank, "verify_pin", counting)
    fourth = await call([{"say": "查余额"}, {"dtmf": PIN + "#"}, {"say": "查余额"}])
    assert _locked_out(fourth)
    assert fourth["handoff"]["verification"]["verified"] is False
    assert checked == []  # the right PIN was never even checked


async def test_a_locked_account_is_refused_mid_call_even_with_the_right_pin(
        engine, lockout: MemoryLockout) -> None:
    """Locked by other calls while this one was asking for the PIN: the lock is checked
    before the PIN is accepted."""
    call = Call(engine, caller_id=KNOWN, call_id=uuid.uuid4().hex)
    await call.start()
    assert "密码" in " ".join((await call.take(Say("查余额"))).prompts)
    for _ in range(5):
        lockout.fail(ACCOUNT)
    turn = await call.take(Keys(PIN + "#"))
    assert ZH_LOCKED in " ".join(turn.prompts) and BALANCE not in " ".join(turn.prompts)
    assert call.ended and call.result().reason == "verification_locked"


async def test_a_right_pin_before_the_limit_clears_past_failures(call, lockout) -> None:
    await call([{"say": "查余额"}, *WRONG])
    assert lockout.check(ACCOUNT).failures == 3
    ok = await call([{"say": "查余额"}, {"dtmf": PIN + "#"}])
    assert _balance(ok)
    assert lockout.check(ACCOUNT).failures == 0
    await call([{"say": "查余额"}, *WRONG])  # the count started again: 3 of 5
    assert not lockout.check(ACCOUNT).locked


async def test_wrong_card_numbers_count_against_the_unknown_caller_id(call, lockout) -> None:
    cards = [{"dtmf": "6222020000000000#"}, {"dtmf": "6222020000000001#"},
             {"dtmf": "6222020000000002#"}]
    first = await call([{"say": "查一下信用卡账单"}, *cards], caller=UNKNOWN)
    assert first["reason"] == "verification_failed"
    second = await call([{"say": "查一下信用卡账单"}, *cards], caller=UNKNOWN)
    assert _locked_out(second) and second["queue"] == "cards"
    assert lockout.check(caller_key(UNKNOWN)).locked
    # Not asked for a card at all now, not even a right one.
    third = await call([{"say": "查一下信用卡账单"}, {"dtmf": "6258880000005678#"},
                        {"dtmf": PIN + "#"}], caller=UNKNOWN)
    assert _locked_out(third) and len(third["turns"]) == 1
    assert "3210.00" not in prompts(third)
    # The account itself is not locked: its owner, calling from their phone, is served.
    assert _balance(await call([{"say": "查余额"}, {"dtmf": PIN + "#"}]))


async def test_an_unknown_caller_giving_a_locked_accounts_card_is_not_asked_for_its_pin(
        call, lockout) -> None:
    for _ in range(5):
        lockout.fail(ACCOUNT)
    result = await call([{"say": "查余额"}, {"dtmf": "6222020000001234#"}, {"dtmf": PIN + "#"}],
                        caller=UNKNOWN)
    assert _locked_out(result) and len(result["turns"]) == 2


# --- across engine instances, on SQLite and PostgreSQL ------------------------------------------

async def test_engines_on_one_call_log_share_the_count_and_ops_clear_it(
        call, ko_call, shared_log: SharedLog, store_url: str,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert (await call([{"say": "查余额"}, *WRONG]))["reason"] == "verification_failed"
    korean = await ko_call([{"say": "잔액 조회"}, *WRONG])  # the other instance
    assert _locked_out(korean, KO_LOCKED) and len(korean["turns"]) == 3
    assert "ko" in korean["skills"]
    assert _locked_out(await call([{"say": "查余额"}, {"dtmf": PIN + "#"}]))
    assert shared_log.zh.check(ACCOUNT).locked and shared_log.ko.check(ACCOUNT).locked

    # Ops see it (no card number anywhere) and clear it.
    monkeypatch.setenv("IVR_CALL_LOG", store_url)
    assert await asyncio.to_thread(main, ["verification", "locks"]) == 0  # its own loop
    listed = capsys.readouterr().out
    assert f"{ACCOUNT}  5 failure(s)" in listed and "locked since" in listed
    assert "6222" not in listed
    assert await asyncio.to_thread(main, ["verification", "unlock", "C0001", "--by",
                                          "olga"]) == 0
    assert f"{ACCOUNT}: 5 failure(s) cleared" in capsys.readouterr().out
    audit = AccountStore(shared_log.stores[0].engine).audit_log()
    assert [(a["user"], a["action"]) for a in audit] == [("olga", "verification_unlock")]

    assert _balance(await call([{"say": "查余额"}, {"dtmf": PIN + "#"}]))
    assert _balance(await ko_call([{"say": "잔액 조회"}, {"dtmf": PIN + "#"}]))


async def test_failures_older_than_the_window_do_not_count(
        call, shared_log: SharedLog) -> None:
    for _ in range(2):
        await call([{"say": "查余额"}, *WRONG])
    shared_log.clock.now += 23 * 3600  # within the window: still locked
    assert _locked_out(await call([{"say": "查余额"}, {"dtmf": PIN + "#"}]))
    shared_log.clock.now += 3600 + 1  # every failure is now older than 24 h
    assert not shared_log.ko.check(ACCOUNT).locked
    assert _balance(await call([{"say": "查余额"}, {"dtmf": PIN + "#"}]))


# --- the console ---------------------------------------------------------------------------------

async def test_the_console_lists_and_clears_locks_for_ops_only(store: CallStore) -> None:
    lockout = SqlLockout(store.engine)
    for _ in range(lockout.policy.max_failures):
        lockout.fail(ACCOUNT)
    accounts = AccountStore(store.engine)
    accounts.set_user("olga", "ops", hash_password("correct horse 电池"))
    accounts.set_user("tom", "trainer", hash_password("staple-기억-42"))
    app = web.Application()
    add_console(app)
    app[CONSOLE] = ConsoleContext(store, None, None, lambda: 0)  # type: ignore[arg-type]
    jar = aiohttp.CookieJar(unsafe=True)
    async with serving(app) as url, aiohttp.ClientSession(cookie_jar=jar) as http:
        async def login(name: str, password: str) -> str:
            resp = await http.post(f"{url}/console/api/login",
                                   json={"name": name, "password": password})
            assert resp.status == 200, await resp.text()
            return (await resp.json())["csrf"]

        await login("tom", "staple-기억-42")
        assert (await http.get(f"{url}/console/api/verification/locks")).status == 403
        csrf = await login("olga", "correct horse 电池")
        locks = await (await http.get(f"{url}/console/api/verification/locks")).json()
        assert [(x["account"], x["failures"], x["locked"]) for x in locks["locks"]] == [
            (ACCOUNT, 5, True)]
        assert locks["locks"][0]["locked_until"] > time.time()
        unlock = f"{url}/console/api/verification/unlock"
        resp = await http.post(unlock, json={"account": ACCOUNT})
        assert resp.status == 403  # no CSRF header: refused
        assert lockout.check(ACCOUNT).locked
        resp = await http.post(unlock, json={"account": ACCOUNT}, headers={CSRF_HEADER: csrf})
        assert (resp.status, await resp.json()) == (200, {"account": ACCOUNT, "cleared": 5})
    assert not lockout.check(ACCOUNT).locked
    assert ("olga", "verification_unlock") in [(a["user"], a["action"])
                                               for a in accounts.audit_log()]


# --- the policy -----------------------------------------------------------------------------------

def test_the_policy_comes_from_the_environment() -> None:
    assert LockoutPolicy.from_env({}) == LockoutPolicy(5, 24.0)
    assert LockoutPolicy.from_env({"IVR_PIN_MAX_FAILURES": "3", "IVR_PIN_WINDOW_H": "0.5"}) \
        == LockoutPolicy(3, 0.5)
    for bad in ({"IVR_PIN_MAX_FAILURES": "many"}, {"IVR_PIN_MAX_FAILURES": "0"},
                {"IVR_PIN_WINDOW_H": "-1"}):
        with pytest.raises(IvrError):
            LockoutPolicy.from_env(bad)


def test_a_lock_lasts_until_enough_failures_age_out() -> None:
    policy, hour = LockoutPolicy(3, 1), 3600.0
    lock = assess(ACCOUNT, [10.0, 20.0, 30.0, 40.0], policy, now=50.0)
    assert (lock.failures, lock.locked_since, lock.locked_until) == (4, 30.0, 20.0 + hour)
    assert not assess(ACCOUNT, [10.0, 20.0, 30.0], policy, now=10.0 + hour).locked
    assert account_key("+8613700000000") == caller_key("+8613700000000")
    assert account_key("C0001") == account_key(ACCOUNT) == ACCOUNT


@pytest.mark.parametrize("locale", ["zh", "ko"])
def test_every_locale_says_the_lock_and_a_knowledge_base_without_it_is_refused(
        project, tmp_path, locale: str) -> None:
    path = project.root / "knowledge" / f"{locale}.yml"
    said = KnowledgeBase.load(path).labels.verification_locked
    assert "{queue}" in said and said.format(queue="x") != said
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    del data["labels"]["verification_locked"]
    broken = tmp_path / f"{locale}.yml"
    broken.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(DataFileError, match=r"labels\.verification_locked is missing"):
        KnowledgeBase.load(broken)


async def test_an_unreachable_database_never_stalls_a_call_and_still_counts(tmp_path) -> None:
    """The call log's database down (or its disk full): the count goes on in this process,
    the call is answered at once, and what was counted still counts when it is back."""
    import sqlalchemy as sa

    store = CallStore(f"sqlite:///{tmp_path / 'calls.sqlite3'}")
    lockout = SqlLockout(store.engine, LockoutPolicy(max_failures=3, window_h=24))
    account = "customer:C0001"
    await lockout.failed(account)  # one in the database

    def down(*_: Any, **__: Any) -> Any:
        raise sa.exc.OperationalError("SELECT", {}, Exception("connection refused"))

    shared = (lockout._times, lockout._add)
    lockout._times, lockout._add = down, down  # type: ignore[method-assign]
    started = time.monotonic()
    await lockout.failed(account)
    await lockout.failed(account)
    state = await lockout.status(account)
    assert time.monotonic() - started < 1.0
    assert lockout.unavailable_since is not None
    assert state.failures == 2 and not state.locked  # this process's count meanwhile
    lockout._times, lockout._add = shared  # type: ignore[method-assign]
    state = await lockout.status(account)
    assert lockout.unavailable_since is None
    assert (state.failures, state.locked) == (3, True)  # the database's 1 and the outage's 2
    assert lockout.unlock(account) == 3
    store.close()
