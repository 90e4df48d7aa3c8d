"""The HTTP bank adapter against a fake core-banking server on a real socket: the same
answers as the demo bank, timeouts, bounded retries, idempotent writes, nothing secret in
a URL or a log line, and the configuration that picks it."""

from __future__ import annotations

import asyncio
import datetime
import logging
import threading
import time
from decimal import Decimal

import pytest

from ivr.dialogue.bank import CREDIT, DEBIT, BankUnavailable, DemoBank
from ivr.dialogue.bank_http import HttpBank
from ivr.dialogue.engine_factory import BankSettings, open_bank
from ivr.errors import IvrError
from tests.fake_core_bank import FakeCoreBank

KNOWN_PHONE, CARD, PIN = "+8613800000001", "6222020000001234", "123456"


async def test_every_operation_answers_as_the_demo_bank_does():
    demo = DemoBank()
    async with FakeCoreBank() as server:
        bank = HttpBank(server.url, token="s3cret")
        try:
            assert await bank.customer_by_phone(KNOWN_PHONE) == \
                await demo.customer_by_phone(KNOWN_PHONE)
            assert await bank.customer_by_phone("+8613700000000") is None
            info = await bank.customer_by_card(CARD)
            assert info is not None and info.customer_id == "C0001" and not info.vip
            assert await bank.customer_by_card("6222020000000000") is None
            assert (await bank.customer_info("C0009")).vip is True
            assert await bank.customer_info("C9999") is None
            assert await bank.verify_pin("C0001", PIN) is True
            assert await bank.verify_pin("C0001", "000000") is False
            assert await bank.balance("C0001") == ("1234", Decimal("12345.67"))
            last4, items = await bank.recent_transactions("C0001", limit=2)
            assert last4 == "1234" and [t.amount for t in items] == [Decimal("-268.50"),
                                                                     Decimal("15000.00")]
            assert items[0].date == datetime.date(2026, 11, 20)
            assert items[0].description == "超市消费"
            assert await bank.credit_card_bill("C0001") == await demo.credit_card_bill("C0001")
            assert await bank.credit_card_bill("C0009") is None
            assert await bank.freeze_card("C0001", CREDIT) == "5678"
            assert await bank.freeze_card("C0009", CREDIT) is None  # no credit card
            assert await bank.activate_card("C0001") == ("9012", CREDIT)
            assert await bank.activate_card("C0001") is None  # nothing left to activate
        finally:
            await bank.aclose()
    assert server.bank._customers["C0001"].card(CREDIT, active=True).frozen
    assert {r["headers"].get("Authorization") for r in server.requests} == {"Bearer s3cret"}


async def test_no_card_phone_or_pin_in_any_url_or_log_line(caplog):
    caplog.set_level(logging.WARNING, logger="ivr.dialogue.bank_http")
    async with FakeCoreBank(fail_first=3) as server:  # warnings for the retried ones
        bank = HttpBank(server.url, retries=3, backoff_s=0.01)
        try:
            assert await bank.customer_by_card(CARD) is not None
            server.status = 503
            with pytest.raises(BankUnavailable):
                await bank.verify_pin("C0001", PIN)
            server.status = None
            assert await bank.customer_by_phone(KNOWN_PHONE) is not None
        finally:
            await bank.aclose()
    urls = " ".join(r["path"] for r in server.requests)
    assert len(caplog.records) == 4, "three retried failures and one given up on"
    for secret in (CARD, KNOWN_PHONE[1:], PIN):
        assert secret not in urls, secret
        assert secret not in caplog.text, secret
    assert "C0001" not in caplog.text  # the path is logged as /customers/{id}/verify-pin
    assert "/customers/{id}/verify-pin" in caplog.text
    assert any(r["body"] == {"card_number": CARD} for r in server.requests)


async def test_a_slow_bank_times_out_after_bounded_retries():
    async with FakeCoreBank(delay_s=1.0) as server:
        bank = HttpBank(server.url, timeout_s=0.2, retries=1, backoff_s=0.05)
        started = time.perf_counter()
        try:
            with pytest.raises(BankUnavailable, match="timed out"):
                await bank.balance("C0001")
        finally:
            await bank.aclose()
        took = time.perf_counter() - started
    assert len(server.requests) == 2  # the first try and one retry, then it gives up
    assert took < 0.9, took  # two timeouts and a backoff, not the bank's second


async def test_a_busy_bank_is_retried_and_a_refusal_is_not():
    async with FakeCoreBank(fail_first=2) as server:
        bank = HttpBank(server.url, retries=2, backoff_s=0.01)
        try:
            assert await bank.balance("C0001") == ("1234", Decimal("12345.67"))
            assert len(server.requests) == 3
            server.status, before = 400, len(server.requests)
            with pytest.raises(BankUnavailable, match="HTTP 400"):
                await bank.balance("C0001")
            assert len(server.requests) == before + 1
        finally:
            await bank.aclose()


async def test_a_pin_check_is_never_retried():
    """A bank that counts wrong PINs must not count one twice."""
    async with FakeCoreBank(fail_first=1) as server:
        bank = HttpBank(server.url, retries=3, backoff_s=0.01)
        try:
            with pytest.raises(BankUnavailable):
                await bank.verify_pin("C0001", PIN)
        finally:
            await bank.aclose()
    assert len(server.requests) == 1


async def test_a_freeze_is_retried_with_its_idempotency_key_and_happens_once():
    async with FakeCoreBank(delay_s=0.3) as server:
        bank = HttpBank(server.url, timeout_s=0.2, retries=2, backoff_s=0.35)
        try:
            # The first answer is lost to the timeout, but the server froze the card; the
            # retry carries the same key and gets the first answer, not a second freeze.
            task = asyncio.create_task(bank.freeze_card("C0001", DEBIT))
            await asyncio.sleep(0.25)
            server.delay_s = 0.0
            assert await task == "1234"
        finally:
            await bank.aclose()
    freezes = [r for r in server.requests if r["path"].endswith("/cards/freeze")]
    keys = {r["headers"]["Idempotency-Key"] for r in freezes}
    assert len(freezes) >= 2 and len(keys) == 1 and len(server.writes) == 1
    assert server.bank._customers["C0001"].card(DEBIT).frozen


async def test_malformed_answers_and_ids_are_the_bank_failing():
    async with FakeCoreBank(garbage=True) as server:
        bank = HttpBank(server.url, retries=0)
        try:
            with pytest.raises(BankUnavailable):
                await bank.balance("C0001")
            server.garbage = False
            for bad in ("..", "../admin", "C0001/balance", ""):
                with pytest.raises(BankUnavailable, match="malformed customer id"):
                    await bank.balance(bad)
        finally:
            await bank.aclose()
    assert len(server.requests) == 1  # no bad id was ever sent


async def test_the_session_belongs_to_the_loop_that_awaits_the_adapter():
    """Custom actions await the bank on the engine's dialogue thread: a second loop gets
    its own session, and each loop closes its own."""
    async with FakeCoreBank() as server:
        bank = HttpBank(server.url)
        assert await bank.balance("C0001")
        other = asyncio.new_event_loop()
        thread = threading.Thread(target=other.run_forever, name="dialogue", daemon=True)
        thread.start()
        try:
            there = asyncio.run_coroutine_threadsafe(bank.balance("C0009"), other)
            assert (await asyncio.wrap_future(there))[1] == Decimal("2860000.00")
            assert len(bank._sessions) == 2
            sessions = list(bank._sessions.values())
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(bank.aclose(), other))
            assert list(bank._sessions.values()) == sessions[:1]  # this loop's is left open
            assert sessions[1].closed and not sessions[0].closed
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(bank.balance("C0009"),
                                                                       other))
            await bank.aclose_all()  # at a program's end: every loop's, each on its loop
            assert bank._sessions == {} and all(s.closed for s in sessions)
        finally:
            other.call_soon_threadsafe(other.stop)
            thread.join(2)


def test_the_configuration_picks_the_adapter():
    assert isinstance(open_bank(BankSettings.from_env({})), DemoBank)
    http = open_bank(BankSettings.from_env({
        "IVR_BANK": "http", "IVR_BANK_URL": "https://core.example/ivr/v1/",
        "IVR_BANK_TOKEN": "t", "IVR_BANK_TIMEOUT_S": "1.5", "IVR_BANK_RETRIES": "0"}))
    assert isinstance(http, HttpBank) and http.url == "https://core.example/ivr/v1"
    assert http._timeout.total == 1.5 and http._retries == 0
    for env, message in [({"IVR_BANK": "sap"}, "expected one of demo, http"),
                         ({"IVR_BANK": "http"}, "needs IVR_BANK_URL"),
                         ({"IVR_BANK": "http", "IVR_BANK_URL": "core:80"}, "needs IVR_BANK_URL"),
                         ({"IVR_BANK_TIMEOUT_S": "0"}, "positive number"),
                         ({"IVR_BANK_RETRIES": "many"}, "positive number")]:
        with pytest.raises(IvrError, match=message):
            BankSettings.from_env(env)
